"""Where workloads' pods run: Deployments, ReplicaSets and StatefulSets expanded to their replicas, DaemonSets to
one pod per eligible node, and manifest Pods without a node scheduled, as kube-scheduler's default profile would
(``pkg/scheduler/schedule_one.go`` ``schedulePod``), deterministically given the run's seed.

Filters (``pkg/scheduler/framework/plugins``): ``NodeUnschedulable`` and ``TaintToleration`` (every
NoSchedule/NoExecute taint tolerated, the control-plane taint included), ``NodeAffinity`` (nodeSelector, and
required node affinity: terms ORed, requirements ANDed), ``NodeResourcesFit`` (requests against what allocatable
leaves), ``InterPodAffinity`` (required affinity; required anti-affinity, both ways), ``PodTopologySpread``
(a pod's DoNotSchedule constraints, ``sim.io.cluster.spread``). Among the feasible nodes the default profile's
weighted scores decide (``sim.io.cluster.scoring``), a tie drawn from the seed as ``selectHost`` draws it. Pods
are scheduled in the queue's order (``PrioritySort``: higher priority first, then input order); preemption is
noted, not done. What is placed where is kept as it grows (``sim.io.cluster.nodestate.Ledger``).
A DaemonSet pod also tolerates what the DaemonSet controller adds
(``pkg/controller/daemon/util/daemonset_util.go`` ``AddOrUpdateDaemonPodTolerations``). What cannot be placed is
Pending and reported; every placement is noted with its score and why. Placed pods are Running and Ready: the
steady state the manifests ask for. ``docs/semantics.md`` section 11a has the rules and their simplifications.

Pod names: a StatefulSet's are ``<name>-<ordinal>`` as Kubernetes names them; the others (whose real names end
in random characters) are ``<name>-<node>``, with ``-2``, ``-3``, ... for more on one node.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from sim.cluster import namespace_of
from sim.errors import shown
from sim.io.cluster.nodestate import NOMINAL_ALLOCATABLE, Ledger, matches
from sim.io.cluster.objects import (
    HOSTNAME_LABEL,
    KNode,
    KPod,
    KWorkload,
    Objects,
    Scheduling,
    SpreadConstraint,
    Taint,
    Toleration,
)
from sim.io.cluster.podspec import SYSTEM_PRIORITY_CLASSES, quantity
from sim.io.cluster.scoring import (
    WEIGHTS,
    balanced_allocation,
    default_normalize,
    interpod_normalize,
    least_allocated,
    select_host,
)
from sim.io.cluster.spread import default_selector, spread_filter, spread_score, system_defaults
from sim.io.typed import Table
from sim.rng import Streams

DAEMONSET_TOLERATIONS = (
    Toleration("node.kubernetes.io/not-ready", "Exists", "", "NoExecute"),
    Toleration("node.kubernetes.io/unreachable", "Exists", "", "NoExecute"),
    Toleration("node.kubernetes.io/disk-pressure", "Exists", "", "NoSchedule"),
    Toleration("node.kubernetes.io/memory-pressure", "Exists", "", "NoSchedule"),
    Toleration("node.kubernetes.io/pid-pressure", "Exists", "", "NoSchedule"),
    Toleration("node.kubernetes.io/unschedulable", "Exists", "", "NoSchedule"),
)
"""The tolerations the DaemonSet controller adds to every daemon pod."""


def tolerated(taints: Sequence[Taint], tolerations: Sequence[Toleration]) -> bool:
    """Whether every taint that keeps pods off (NoSchedule, NoExecute) is tolerated (PreferNoSchedule is not)."""
    return all(
        any(t.tolerates(taint) for t in tolerations) for taint in taints if taint.effect in ("NoSchedule", "NoExecute")
    )


def node_matches(node: KNode, rules: Scheduling) -> bool:
    """nodeSelector and required node affinity (``k8s.io/component-helpers/scheduling/corev1/nodeaffinity``)."""
    if any(node.labels.get(k) != v for k, v in rules.node_selector.items()):
        return False
    if not rules.terms:
        return True
    fields = {"metadata.name": node.name}
    return any(
        (exprs or fields_req)
        and all(r.matches(node.labels) for r in exprs)
        and all(r.matches(fields) for r in fields_req)
        for exprs, fields_req in rules.terms
    )


@dataclass(frozen=True)
class _Incoming:
    """The pod being scheduled: its labels, namespace, rules, tolerations and controller."""

    labels: dict[str, str]
    namespace: str
    rules: Scheduling
    tolerations: Sequence[Toleration]
    owner: str = ""
    spread: tuple[SpreadConstraint, ...] = ()
    """Its own topologySpreadConstraints, else the system defaults over ``helper.DefaultSelector``."""


class _Fixed:
    """What does not change while pods of one template are placed: per node, whether its taints are tolerated and
    its labels match the node selector and required affinity, its untolerated PreferNoSchedule taints and its
    matching preferred node terms' weights."""

    def __init__(self, ledger: Ledger, pod: _Incoming) -> None:
        nodes, rules = ledger.nodes, pod.rules
        self.tolerated = np.array([tolerated(n.taints, pod.tolerations) for n in nodes], dtype=bool)
        self.matches = np.array([node_matches(n, rules) for n in nodes], dtype=bool)
        self.soft_taints = np.array(
            [sum(1 for t in n.taints if t.effect == "PreferNoSchedule" and not _tolerates_soft(t, pod)) for n in nodes],
            dtype=np.int64,
        )
        self.preferred = np.array(
            [
                sum(w for w, exprs in rules.preferred_nodes if exprs and all(r.matches(n.labels) for r in exprs))
                for n in nodes
            ],
            dtype=np.int64,
        )


def resources_fit(ledger: Ledger, rules: Scheduling) -> np.ndarray:
    """NodeResourcesFit's Filter (``fitsRequest``) on every node: the pod's CPU and memory requests fit in what the
    node's allocatable leaves after its pods' requests, and one more pod fits under its pod count."""
    fit = ledger.count + 1 <= ledger.max_pods
    for i, want in enumerate(rules.requests):
        if want:
            fit &= ~(want > ledger.alloc[:, i] - ledger.requested[:, i]).astype(bool)
    return fit


def anti_affinity_ok(ledger: Ledger, pod: _Incoming) -> np.ndarray:
    """Required pod anti-affinity on every node, both ways: the new pod's terms against placed pods, and placed
    pods' terms against the new pod (``InterPodAffinity`` Filter)."""
    ok = np.ones(len(ledger.nodes), dtype=bool)
    for term in pod.rules.anti_affinity:
        ok &= ~ledger.same_domain(term.topology_key, ledger.matching(term))
    for (kind, _, _), (term, carriers) in ledger.carried.items():
        if kind == "anti" and matches(term, pod.namespace, pod.labels):
            ok &= ~ledger.same_domain(term.topology_key, carriers)
    return ok


def affinity_ok(ledger: Ledger, pod: _Incoming) -> np.ndarray:
    """Required pod affinity (``InterPodAffinity`` Filter) on every node: every term has a matching pod on a node
    with this node's value of its topology key; a term no pod matches anywhere passes if the pod matches it itself
    (the first pod of a group)."""
    ok = np.ones(len(ledger.nodes), dtype=bool)
    for term in pod.rules.affinity:
        counts = ledger.matching(term)
        if not counts.any() and matches(term, pod.namespace, pod.labels):
            continue
        ok &= ledger.same_domain(term.topology_key, counts)
    return ok


def _eligible(ledger: Ledger, fixed: _Fixed, pod: _Incoming) -> np.ndarray:
    """Every filter, on every node: whether the node may take ``pod``."""
    ok = fixed.tolerated & fixed.matches
    if not ok.any():
        return ok
    ok &= resources_fit(ledger, pod.rules) & anti_affinity_ok(ledger, pod) & affinity_ok(ledger, pod)
    if any(c.when_unsatisfiable == "DoNotSchedule" for c in pod.spread):
        ok &= spread_filter(ledger, pod.spread, pod.namespace, pod.labels, fixed.matches, fixed.tolerated)
    return ok


def place(
    objects: Objects, seed: int = 0, nominal: tuple[int, int] = NOMINAL_ALLOCATABLE
) -> tuple[list[KNode], list[KPod], list[str]]:
    """The cluster's nodes (those given, then bare ones named only by a pod or endpoint), its pods (those given,
    then the manifest pods' and each workload's, in priority then input order, placed as kube-scheduler would with
    ties drawn from ``seed``) and notes:
    what was created bare, where each pod went and why, what stays Pending. ``nominal``: the CPU (millicores) and
    memory (bytes) of a node whose allocatable is not given."""
    notes: list[str] = []
    nodes = {n.name: n for n in objects.nodes}
    for name in [p.node for p in objects.pods] + [ep.node for s in objects.slices for ep in s.endpoints]:
        if name and name not in nodes:
            nodes[name] = KNode(name, {HOSTNAME_LABEL: name}, bare=True)
            notes.append(f"node {name}: named by a pod or an endpoint but not given: created bare (no zone, no CPU)")
    rng = Streams(seed).generator("placement")
    ledger = Ledger(list(nodes.values()), nominal)
    waiting: list[KPod] = []
    for pod in objects.pods:
        if pod.node is not None:
            ledger.add(pod)
        elif pod.has_status:
            notes.append(f"Pod {pod.name}: Pending (not scheduled in the dump)")
        else:
            waiting.append(pod)
    queue: list[tuple[int, KPod | KWorkload]] = [(priority(p.scheduling, objects, notes), p) for p in waiting]
    queue += [
        (priority(w.scheduling, objects, notes), w)
        for w in objects.workloads
        if not (_running(w, objects.pods) or _owner_given(w, objects.workloads))
    ]
    queue.sort(key=lambda item: -item[0])  # PrioritySort: higher first; ties in input order (the queue's timestamps)
    for rank, item in queue:
        place_one = _expand if isinstance(item, KWorkload) else _place_pod
        if place_one(item, objects, ledger, notes, rng):  # type: ignore[arg-type]
            _note_preemption(item.name, rank, ledger, objects, notes)
    return list(nodes.values()), ledger.placed, notes


KIND_NODE_CAPACITY_KEY = "kind_node_capacity"
"""The scenario key (and, as ``--kind-node-capacity``, the flag) setting ``NOMINAL_ALLOCATABLE``."""
MAX_NODE_CPU_CORES, MAX_NODE_MEMORY = 1e6, 2**60
"""The largest capacity the setting takes: far above any machine."""


def kind_node_capacity(top: Table) -> tuple[int, int]:
    """``kind_node_capacity = {cpu = "8", memory = "16Gi"}``: the CPU (cores, a Kubernetes quantity) and memory
    (bytes, a quantity) of every node whose allocatable is not given: a kind config's nodes (each reports the
    host's whole capacity; give the machine's, ``nproc`` and ``free -b``) and bare nodes. Default 8 cores and
    16 GiB. Returns millicores and bytes."""
    if KIND_NODE_CAPACITY_KEY not in top.data:
        return NOMINAL_ALLOCATABLE
    t = Table(top.path, KIND_NODE_CAPACITY_KEY, top.take(KIND_NODE_CAPACITY_KEY, dict))
    out = []
    for key, scale, default, top_value in (
        ("cpu", 1000, NOMINAL_ALLOCATABLE[0] / 1000, MAX_NODE_CPU_CORES),
        ("memory", 1, NOMINAL_ALLOCATABLE[1], MAX_NODE_MEMORY),
    ):
        raw = t.take(key, (str, int, float), default)
        value = quantity(raw)
        if value is None or not 0 < value <= top_value:  # NaN and inf fail the comparison
            raise t.error(
                key, f"must be a positive quantity (e.g. '8', '16Gi') at most {top_value:g}, got {shown(raw)}"
            )
        out.append(max(1, round(value * scale)))
    t.done()
    return out[0], out[1]


def _place_pod(pod: KPod, objects: Objects, ledger: Ledger, notes: list[str], rng: np.random.Generator) -> bool:
    """Schedule one manifest pod without a node, and note where and why, or why it stays Pending (then True)."""
    rules = pod.scheduling
    incoming = _incoming(objects, dict(pod.labels), namespace_of(pod.name), rules, rules.tolerations, pod.owner)
    fixed = _Fixed(ledger, incoming)
    node, why = _choose(ledger, fixed, incoming, rng)
    if node is None:
        notes.append(f"Pod {pod.name}: Pending: {_why(ledger, fixed)}")
        return True
    ledger.add(replace(pod, node=node))
    notes.append(f"placed Pod {pod.name} on {node}: {why}")
    return False


def priority(rules: Scheduling, objects: Objects, notes: list[str]) -> int:
    """A pod's priority (``Priority`` admission, ``plugin/pkg/admission/priority``): ``spec.priority`` where
    given, else its PriorityClass's value (the built-in system classes included), else the globalDefault class's,
    else 0; a class not among the objects is noted once and taken as 0."""
    if rules.priority is not None:
        return rules.priority
    classes = {**{k: (v, False) for k, v in SYSTEM_PRIORITY_CLASSES.items()}, **objects.priority_classes}
    if rules.priority_class:
        if rules.priority_class in classes:
            return classes[rules.priority_class][0]
        line = f"priorityClassName {rules.priority_class}: no such PriorityClass among the objects: priority 0 taken"
        if line not in notes:
            notes.append(line)
        return 0
    return next((value for value, default in objects.priority_classes.values() if default), 0)


def _note_preemption(name: str, rank: int, ledger: Ledger, objects: Objects, notes: list[str]) -> None:
    """One line where a Pending pod outranks a placed one: kube-scheduler's PostFilter (``defaultpreemption``)
    would try to evict lower-priority pods for it; the model does not preempt."""
    lower = sum(1 for p in ledger.placed if priority(p.scheduling, objects, []) < rank)
    if lower:
        notes.append(
            f"{name}: Pending at priority {rank} while {lower} placed pods have a lower one: kube-scheduler would "
            "try to preempt them (defaultpreemption); preemption is not modelled"
        )


def _incoming(
    objects: Objects,
    labels: dict[str, str],
    namespace: str,
    rules: Scheduling,
    tolerations: Sequence[Toleration],
    owner: str,
) -> _Incoming:
    """The pod to schedule, with its spread constraints: its own, else the system defaults over the selector of
    the Services selecting it and of its ReplicaSet or StatefulSet (``helper.DefaultSelector``)."""
    kind, _, name = owner.partition("/")
    controller = None
    if kind in ("Deployment", "ReplicaSet", "StatefulSet", "ReplicationController"):  # a Deployment's: its RS's
        controller = next((w.selector for w in objects.workloads if w.kind == kind and w.name == name), None)
    spread = rules.spread or system_defaults(default_selector(namespace, labels, objects.services, controller))
    return _Incoming(labels, namespace, rules, tolerations, owner, spread)


def _running(w: KWorkload, pods: Sequence[KPod]) -> bool:
    """Whether the input already holds the workload's pods (a dump): its selector matches a pod of its namespace."""
    ns = namespace_of(w.name)
    selector = w.selector if (w.selector.match_labels or w.selector.expressions) else None
    return selector is not None and any(namespace_of(p.name) == ns and selector.matches(p.labels) for p in pods)


def _owner_given(w: KWorkload, workloads: Sequence[KWorkload]) -> bool:
    """Whether a ReplicaSet's Deployment is in the input (then the Deployment's replicas are its pods)."""
    return bool(w.owner) and any(o.kind == "Deployment" and o.name == w.owner for o in workloads)


def _expand(w: KWorkload, objects: Objects, ledger: Ledger, notes: list[str], rng: np.random.Generator) -> bool:
    """Place a workload's pods (a DaemonSet's on each eligible node in order; the others' replicas one by one) and
    note where and why, or why not; True where replicas stay Pending."""
    ns = namespace_of(w.name)
    short = w.name.partition("/")[2]
    tolerations = w.scheduling.tolerations + (DAEMONSET_TOLERATIONS if w.kind == "DaemonSet" else ())
    incoming = _incoming(objects, dict(w.labels), ns, w.scheduling, tolerations, f"{w.kind}/{w.name}")
    fixed = _Fixed(ledger, incoming)
    first = len(ledger.placed)
    if w.kind == "DaemonSet":
        eligible = _eligible(ledger, fixed, incoming)
        for i, node in enumerate(ledger.nodes):
            if eligible[i]:
                ledger.add(_pod(w, f"{w.name}-{node.name}", node.name))
                eligible = _eligible(ledger, fixed, incoming)
        if len(ledger.placed) == first:
            notes.append(f"DaemonSet {w.name}: no eligible node: {_why(ledger, fixed)}")
        return False
    pending = 0
    mine: dict[str, int] = {}
    for k in range(w.replicas):
        chosen, why = _choose(ledger, fixed, incoming, rng)
        if chosen is None:
            pending += 1
            continue
        if w.kind == "StatefulSet":
            name = f"{w.name}-{k}"
        else:
            n = mine.get(chosen, 0)
            name = f"{ns}/{short}-{chosen}" + (f"-{n + 1}" if n else "")
        mine[chosen] = mine.get(chosen, 0) + 1
        ledger.add(_pod(w, name, chosen))
        notes.append(f"placed {w.kind} {w.name} pod {name} on {chosen}: {why}")
    if pending:
        notes.append(
            f"{w.kind} {w.name}: {pending} of {w.replicas} replicas Pending: {_why(ledger, fixed, w.scheduling)}"
        )
    if w.kind != "StatefulSet":  # listed by name, as the API does
        ledger.placed[first:] = sorted(ledger.placed[first:], key=lambda p: p.name)
    return pending > 0


def _pod(w: KWorkload, name: str, node: str) -> KPod:
    return KPod(
        name,
        node,
        dict(w.labels),
        scheduling=w.scheduling,
        ports=w.ports,
        file=w.file,
        owner=f"{w.kind}/{w.name}",
        host_network=w.host_network,
    )


def _choose(ledger: Ledger, fixed: _Fixed, pod: _Incoming, rng: np.random.Generator) -> tuple[str | None, str]:
    """The node kube-scheduler picks for ``pod`` (``schedulePod``: the filters, then the default profile's
    weighted scores, ``selectHost`` among the best), and a few words on why; None when no node passes."""
    feasible = np.flatnonzero(_eligible(ledger, fixed, pod))
    names = ledger.nodes
    if len(feasible) <= 1:
        return (names[feasible[0]].name, "the only node that fits") if len(feasible) else (None, "")
    plugins = _scores(ledger, fixed, feasible, pod)
    totals = np.zeros(len(feasible), dtype=np.int64)
    for name, scores in plugins.items():
        totals += WEIGHTS[name] * scores
    chosen, tied = select_host(totals, rng)
    order = np.argsort(-totals, kind="stable")[:3]
    ranked = [int(i) for i in order if i != chosen][:2]
    others = ", ".join(f"{names[feasible[i]].name} {int(totals[i])}" for i in ranked)
    if tied > 1:
        why = f"a tie of {tied} broken by the seed"
    else:
        gains = {n: WEIGHTS[n] * int(s[chosen] - s[ranked[0]]) for n, s in plugins.items()}
        why = "ahead on " + ", ".join(f"{n} {g:+d}" for n, g in gains.items() if g)
    where = names[feasible[chosen]].name
    return where, f"score {int(totals[chosen])} of {len(feasible)} nodes (next: {others}; {why})"


def _scores(ledger: Ledger, fixed: _Fixed, feasible: np.ndarray, pod: _Incoming) -> dict[str, np.ndarray]:
    """Each score plugin of the default profile: its normalized score (0-100) of each feasible node."""
    rules = pod.rules
    plugins: dict[str, np.ndarray] = {}
    alloc = ledger.alloc[feasible]
    plugins["NodeResourcesFit"] = least_allocated(ledger.nonzero[feasible] + list(rules.nonzero_requests), alloc)
    if any(rules.requests):  # a best-effort pod skips it (kubernetes#129138)
        plugins["NodeResourcesBalancedAllocation"] = balanced_allocation(
            ledger.requested[feasible] + list(rules.requests), alloc
        )
    plugins["PodTopologySpread"] = spread_score(
        ledger, feasible, pod.spread, pod.namespace, fixed.matches, fixed.tolerated, require_all=bool(rules.spread)
    )
    plugins["TaintToleration"] = default_normalize(fixed.soft_taints[feasible], reverse=True)
    plugins["NodeAffinity"] = default_normalize(fixed.preferred[feasible])
    plugins["InterPodAffinity"] = interpod_affinity_scores(ledger, feasible, pod)
    return plugins


def _tolerates_soft(taint: Taint, pod: _Incoming) -> bool:
    """TaintToleration's score counts only tolerations with effect PreferNoSchedule or none."""
    return any(t.tolerates(taint) for t in pod.tolerations if t.effect in ("", "PreferNoSchedule"))


def interpod_affinity_scores(ledger: Ledger, feasible: np.ndarray, pod: _Incoming) -> np.ndarray:
    """InterPodAffinity's score: per topology value, the weights of the pod's preferred terms that placed pods
    match, and of placed pods' preferred terms (and, at weight 1, required affinity terms) the pod matches."""
    per_node = np.zeros(len(ledger.nodes), dtype=np.int64)
    for w, term in pod.rules.preferred_pods:
        per_node += ledger.domain_sums(term.topology_key, ledger.matching(term) * w)
    for (kind, w, _), (term, carriers) in ledger.carried.items():
        if kind == "preferred" and matches(term, pod.namespace, pod.labels):
            per_node += ledger.domain_sums(term.topology_key, carriers * w)
    return interpod_normalize(per_node[feasible])


def _why(ledger: Ledger, fixed: _Fixed, rules: Scheduling | None = None) -> str:
    """Why no node takes the pod (``fixed``: its filters that do not change): the counts the scheduler's "0/N nodes
    are available" message gives; with its ``rules``, also the nodes short of room and those pod (anti-)affinity
    excludes."""
    nodes = ledger.nodes
    if not nodes:
        return "no nodes"
    ok, matched = fixed.tolerated, fixed.matches
    tainted, unmatched = int((~ok).sum()), int((ok & ~matched).sum())
    parts = []
    if tainted:
        parts.append(f"{tainted} with untolerated taints")
    if unmatched:
        parts.append(f"{unmatched} not matching the node selector/affinity")
    rest = ok & matched
    if rules is not None:
        short = int((rest & ~resources_fit(ledger, rules)).sum())
        if short:
            parts.append(f"{short} with too little CPU, memory or pod room left")
        if int(rest.sum()) > short:
            parts.append(f"{int(rest.sum()) - short} excluded by pod affinity or anti-affinity")
    return f"0/{len(nodes)} nodes are available" + (f": {', '.join(parts)}" if parts else "")
