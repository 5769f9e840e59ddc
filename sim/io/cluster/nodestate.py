"""What is placed where, kept as it grows: per node the pods, their requests (as the filter and as the scores count
them), and per pod (anti-)affinity term the pods it matches; so that scheduling one more pod costs a few vector
operations over the nodes, not a pass over every pod placed before it (issue 24: 140,000 replicas). What
kube-scheduler keeps in its ``NodeInfo`` (``pkg/scheduler/framework/types.go``: ``Requested``,
``NonZeroRequested``, ``Pods``, ``PodsWithAffinity``, ``PodsWithRequiredAntiAffinity``), as arrays over nodes.
``sim.io.cluster.placement`` asks it; the scores themselves are ``sim.io.cluster.scoring``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from sim.cluster import namespace_of
from sim.io.cluster.objects import HOSTNAME_LABEL, AntiAffinity, KNode, KPod, LabelSelector

DEFAULT_MAX_PODS = 110
"""kubelet's ``--max-pods`` default: a node's pod count where its ``status.allocatable.pods`` is not given."""
NOMINAL_ALLOCATABLE = (8000, 16 * 1024**3)
"""CPU (millicores) and memory (bytes) taken for a node whose allocatable is not given (a kind config's nodes, which
report their host's, and nodes only a pod names): the same for every such node, so that the resource scores still
compare what is placed on them."""
HARD_POD_AFFINITY_WEIGHT = 1
"""``InterPodAffinityArgs.HardPodAffinityWeight`` default: what a placed pod's required affinity term that the new
pod matches adds to its score."""
EXACT_INT = 2**52
"""Above this (bytes, millicores), requests are kept as Python integers: int64 products and float conversions
would no longer be exact (``resource_allocation.go`` computes in int64 and float64 on values far below it)."""


def allocatable(node: KNode, nominal: tuple[int, int] = NOMINAL_ALLOCATABLE) -> tuple[int, int]:
    """CPU (millicores) and memory (bytes) a node offers pods; ``nominal`` where not given."""
    cpu = round(node.cpu * 1000) or nominal[0]
    return cpu, node.memory or nominal[1]


def term_key(term: AntiAffinity) -> tuple[Any, ...]:
    """A pod (anti-)affinity term as a key: its selector in full (``LabelSelector`` compares without its
    ``matchLabels``), topology key and namespaces."""
    return (selector_key(term.selector), term.topology_key, term.namespaces)


def selector_key(selector: LabelSelector) -> tuple[Any, ...]:
    """A label selector as a key: its matchLabels and its expressions."""
    return (tuple(sorted(selector.match_labels.items())), selector.expressions)


class Ledger:
    """The nodes (in the cluster's order) and what is placed on them, as arrays over the nodes."""

    def __init__(self, nodes: Sequence[KNode], nominal: tuple[int, int] = NOMINAL_ALLOCATABLE) -> None:
        self.nodes = list(nodes)
        self.index = {n.name: i for i, n in enumerate(self.nodes)}
        alloc = [allocatable(n, nominal) for n in self.nodes]
        self.exact = max((max(a) for a in alloc), default=0) < EXACT_INT
        self.alloc = self.array(alloc, (len(self.nodes), 2))
        self.max_pods = np.array([n.pods or DEFAULT_MAX_PODS for n in self.nodes], dtype=np.int64)
        self.count = np.zeros(len(self.nodes), dtype=np.int64)
        self.requested = self.array([], (len(self.nodes), 2))
        self.nonzero = self.array([], (len(self.nodes), 2))
        self.placed: list[KPod] = []
        self._codes: dict[tuple[str, bool], tuple[np.ndarray, list[str]]] = {}
        self._matching: dict[tuple[Any, ...], tuple[AntiAffinity, np.ndarray]] = {}
        self._selected: dict[tuple[Any, ...], tuple[LabelSelector, str, np.ndarray]] = {}
        self._owned: dict[str, np.ndarray] = {}
        self.carried: dict[tuple[str, int, tuple[Any, ...]], tuple[AntiAffinity, np.ndarray]] = {}
        """Terms placed pods carry, keyed by (kind: "anti" | "preferred", weight, term key): per node, how many
        placed pods carry the term there."""

    def array(self, rows: Sequence[Sequence[int]], shape: tuple[int, int]) -> np.ndarray:
        """An integer array of ``shape`` (zeros where ``rows`` is empty): int64, or Python integers where
        requests could pass ``EXACT_INT``."""
        if not self.exact:
            out = np.empty(shape, dtype=object)
            out[...] = 0
            if len(rows):
                out[...] = [list(r) for r in rows]
            return out
        return np.array(rows, dtype=np.int64).reshape(shape) if len(rows) else np.zeros(shape, dtype=np.int64)

    def add(self, pod: KPod) -> None:
        """Place ``pod`` (its node already set and known) and count it everywhere it counts."""
        i = self.index[pod.node or ""]
        self.placed.append(pod)
        self.count[i] += 1
        req, nonzero = pod.scheduling.requests, pod.scheduling.nonzero_requests
        if self.exact and max(max(req), max(nonzero)) >= EXACT_INT:
            self._widen()
        for r in range(2):
            self.requested[i, r] += req[r]
            self.nonzero[i, r] += nonzero[r]
        namespace = namespace_of(pod.name)
        for term, counts in self._matching.values():
            if namespace in term.namespaces and term.selector.matches(pod.labels):
                counts[i] += 1
        for selector, ns, counts in self._selected.values():
            if namespace == ns and not pod.terminating and selector.matches(pod.labels):
                counts[i] += 1
        if pod.owner in self._owned:
            self._owned[pod.owner][i] += 1
        rules = pod.scheduling
        carried = [("anti", 0, t) for t in rules.anti_affinity] + [("preferred", w, t) for w, t in rules.preferred_pods]
        carried += [("preferred", HARD_POD_AFFINITY_WEIGHT, t) for t in rules.affinity]
        for kind, weight, term in carried:
            key = (kind, weight, term_key(term))
            if key not in self.carried:
                self.carried[key] = (term, np.zeros(len(self.nodes), dtype=np.int64))
            self.carried[key][1][i] += 1

    def _widen(self) -> None:
        """Switch the request sums to Python integers (a request at or past ``EXACT_INT``)."""
        self.exact = False
        arrays = (self.alloc, self.requested, self.nonzero)
        self.alloc, self.requested, self.nonzero = (a.astype(object) for a in arrays)

    def codes(self, key: str, hostname: bool = False) -> tuple[np.ndarray, list[str]]:
        """Each node's value of label ``key`` as a code into the returned values (-1: the node has no such label);
        ``hostname``: a node without the hostname label takes its name, as kubelet sets it."""
        if (key, hostname) not in self._codes:
            values: dict[str, int] = {}
            out = np.full(len(self.nodes), -1, dtype=np.int64)
            for i, n in enumerate(self.nodes):
                value = n.labels.get(key)
                if value is None and hostname and key == HOSTNAME_LABEL:
                    value = n.name
                if value is not None:
                    out[i] = values.setdefault(value, len(values))
            self._codes[(key, hostname)] = (out, list(values))
        return self._codes[(key, hostname)]

    def matching(self, term: AntiAffinity) -> np.ndarray:
        """Per node, the placed pods ``term`` matches (its namespaces and selector); kept up to date from here on."""
        key = term_key(term)
        if key not in self._matching:
            counts = np.zeros(len(self.nodes), dtype=np.int64)
            for p in self.placed:
                if namespace_of(p.name) in term.namespaces and term.selector.matches(p.labels):
                    counts[self.index[p.node or ""]] += 1
            self._matching[key] = (term, counts)
        return self._matching[key][1]

    def selected(self, selector: LabelSelector, namespace: str) -> np.ndarray:
        """Per node, the placed pods of ``namespace`` that ``selector`` selects, terminating ones left out
        (``podtopologyspread/common.go`` ``countPodsMatchSelector``); kept up to date from here on."""
        key = (selector_key(selector), namespace)
        if key not in self._selected:
            counts = np.zeros(len(self.nodes), dtype=np.int64)
            for p in self.placed:
                if namespace_of(p.name) == namespace and not p.terminating and selector.matches(p.labels):
                    counts[self.index[p.node or ""]] += 1
            self._selected[key] = (selector, namespace, counts)
        return self._selected[key][2]

    def owned(self, owner: str) -> np.ndarray:
        """Per node, the placed pods of controller ``owner``; kept up to date from here on."""
        if owner not in self._owned:
            counts = np.zeros(len(self.nodes), dtype=np.int64)
            for p in self.placed:
                if p.owner == owner:
                    counts[self.index[p.node or ""]] += 1
            self._owned[owner] = counts
        return self._owned[owner]

    def same_domain(self, key: str, counts: np.ndarray) -> np.ndarray:
        """Per node: whether it has label ``key`` with the value of some node where ``counts`` is above 0."""
        codes, values = self.codes(key)
        hit = np.zeros(len(values) + 1, dtype=bool)
        hit[codes[(counts > 0) & (codes >= 0)]] = True
        return (codes >= 0) & hit[codes]

    def domain_sums(self, key: str, weights: np.ndarray) -> np.ndarray:
        """Per node: ``weights`` summed over the nodes with its value of label ``key`` (0 without the label)."""
        codes, values = self.codes(key)
        has = codes >= 0
        sums = np.zeros(len(values), dtype=np.int64)
        np.add.at(sums, codes[has], weights[has])
        out = np.zeros(len(self.nodes), dtype=np.int64)
        out[has] = sums[codes[has]]
        return out


def matches(term: AntiAffinity, namespace: str, labels: Mapping[str, str]) -> bool:
    """Whether a pod of ``namespace`` with ``labels`` is one ``term`` selects."""
    return namespace in term.namespaces and term.selector.matches(labels)
