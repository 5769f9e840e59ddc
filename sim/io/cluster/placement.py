"""Where workloads' pods run: Deployments, ReplicaSets and StatefulSets expanded to their replicas, DaemonSets to
one pod per eligible node, and manifest Pods without a node scheduled, as kube-scheduler's default profile would
(``pkg/scheduler/schedule_one.go`` ``schedulePod``), deterministically given the run's seed.

Filters (``pkg/scheduler/framework/plugins``): ``NodeUnschedulable`` and ``TaintToleration`` (every
NoSchedule/NoExecute taint tolerated, the control-plane taint included), ``NodeAffinity`` (nodeSelector, and
required node affinity: terms ORed, requirements ANDed), ``NodeResourcesFit`` (requests against what allocatable
leaves), ``InterPodAffinity`` (required affinity; required anti-affinity, both ways). Among the feasible nodes the
default profile's weighted scores decide (``sim.io.cluster.scoring``), a tie drawn from the seed as ``selectHost``
draws it.
A DaemonSet pod also tolerates what the DaemonSet controller adds
(``pkg/controller/daemon/util/daemonset_util.go`` ``AddOrUpdateDaemonPodTolerations``). What cannot be placed is
Pending and reported; every placement is noted with its score and why. Placed pods are Running and Ready: the
steady state the manifests ask for. ``docs/semantics.md`` section 11a has the rules and their simplifications.

Pod names: a StatefulSet's are ``<name>-<ordinal>`` as Kubernetes names them; the others (whose real names end
in random characters) are ``<name>-<node>``, with ``-2``, ``-3``, ... for more on one node.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np

from sim.cluster import namespace_of
from sim.io.cluster.objects import (
    HOSTNAME_LABEL,
    AntiAffinity,
    KNode,
    KPod,
    KWorkload,
    Objects,
    Scheduling,
    Taint,
    Toleration,
)
from sim.io.cluster.scoring import (
    SYSTEM_DEFAULT_CONSTRAINTS,
    WEIGHTS,
    balanced_allocation,
    default_normalize,
    interpod_normalize,
    least_allocated,
    select_host,
    spread_scores,
)
from sim.rng import Streams

DEFAULT_MAX_PODS = 110
"""kubelet's ``--max-pods`` default: a node's pod count where its ``status.allocatable.pods`` is not given."""
NOMINAL_ALLOCATABLE = (8000, 16 * 1024**3)
"""CPU (millicores) and memory (bytes) taken for a node whose allocatable is not given (a kind config's nodes, which
report their host's, and nodes only a pod names): the same for every such node, so that the resource scores still
compare what is placed on them."""
HARD_POD_AFFINITY_WEIGHT = 1
"""``InterPodAffinityArgs.HardPodAffinityWeight`` default: what a placed pod's required affinity term that the new
pod matches adds to its score."""

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


def anti_affinity_ok(
    pod_labels: dict[str, str],
    namespace: str,
    node: KNode,
    rules: Scheduling,
    placed: Sequence[KPod],
    nodes: dict[str, KNode],
) -> bool:
    """Required pod anti-affinity, both ways: the new pod's terms against placed pods, and placed pods' terms
    against the new pod (``InterPodAffinity`` Filter)."""
    for term in rules.anti_affinity:
        value = node.labels.get(term.topology_key)
        if value is None:
            continue
        for other in placed:
            where = nodes.get(other.node or "")
            if where is None or where.labels.get(term.topology_key) != value:
                continue
            if namespace_of(other.name) in term.namespaces and term.selector.matches(other.labels):
                return False
    for other in placed:
        where = nodes.get(other.node or "")
        for term in other.scheduling.anti_affinity:
            value = node.labels.get(term.topology_key)
            if value is None or where is None or where.labels.get(term.topology_key) != value:
                continue
            if namespace in term.namespaces and term.selector.matches(pod_labels):
                return False
    return True


def resources_fit(node: KNode, rules: Scheduling, on_node: Sequence[KPod]) -> bool:
    """NodeResourcesFit's Filter (``fitsRequest``): the pod's CPU and memory requests fit in what the node's
    allocatable leaves after its pods' requests, and one more pod fits under its pod count."""
    if len(on_node) + 1 > (node.pods or DEFAULT_MAX_PODS):
        return False
    free = allocatable(node)
    for i, want in enumerate(rules.requests):
        if want and want > free[i] - sum(p.scheduling.requests[i] for p in on_node):
            return False
    return True


def affinity_ok(
    labels: dict[str, str],
    namespace: str,
    node: KNode,
    rules: Scheduling,
    placed: Sequence[KPod],
    nodes: dict[str, KNode],
) -> bool:
    """Required pod affinity (``InterPodAffinity`` Filter): every term has a matching pod on a node with this
    node's value of its topology key; a term no pod matches anywhere passes if the pod matches it itself (the
    first pod of a group)."""
    for term in rules.affinity:
        matching = [p for p in placed if namespace_of(p.name) in term.namespaces and term.selector.matches(p.labels)]
        if not matching and namespace in term.namespaces and term.selector.matches(labels):
            continue
        value = node.labels.get(term.topology_key)
        if value is None or not any(nodes[p.node or ""].labels.get(term.topology_key) == value for p in matching):
            return False
    return True


def _eligible(
    node: KNode,
    labels: dict[str, str],
    namespace: str,
    rules: Scheduling,
    tolerations: Sequence[Toleration],
    placed: Sequence[KPod],
    nodes: dict[str, KNode],
    on_node: Sequence[KPod] | None = None,
) -> bool:
    """Every filter; ``on_node``: the pods already on ``node`` (found in ``placed`` when not given)."""
    return (
        tolerated(node.taints, tolerations)
        and node_matches(node, rules)
        and resources_fit(node, rules, [p for p in placed if p.node == node.name] if on_node is None else on_node)
        and anti_affinity_ok(labels, namespace, node, rules, placed, nodes)
        and affinity_ok(labels, namespace, node, rules, placed, nodes)
    )


def place(objects: Objects, seed: int = 0) -> tuple[list[KNode], list[KPod], list[str]]:
    """The cluster's nodes (those given, then bare ones named only by a pod or endpoint), its pods (those given,
    then each workload's, in input order, placed as kube-scheduler would with ties drawn from ``seed``) and notes:
    what was created bare, where each pod went and why, what stays Pending."""
    notes: list[str] = []
    nodes = {n.name: n for n in objects.nodes}
    for name in [p.node for p in objects.pods] + [ep.node for s in objects.slices for ep in s.endpoints]:
        if name and name not in nodes:
            nodes[name] = KNode(name, {HOSTNAME_LABEL: name}, bare=True)
            notes.append(f"node {name}: named by a pod or an endpoint but not given: created bare (no zone, no CPU)")
    rng = Streams(seed).generator("placement")
    placed: list[KPod] = []
    waiting: list[KPod] = []
    for pod in objects.pods:
        if pod.node is not None:
            placed.append(pod)
        elif pod.has_status:
            notes.append(f"Pod {pod.name}: Pending (not scheduled in the dump)")
        else:
            waiting.append(pod)
    for pod in waiting:  # manifest pods with no node: the scheduler places them
        rules = pod.scheduling
        incoming = _Incoming(dict(pod.labels), namespace_of(pod.name), rules, rules.tolerations, pod.owner)
        node, why = _choose(nodes, incoming, placed, rng)
        if node is None:
            notes.append(f"Pod {pod.name}: Pending: {_why(nodes, rules, rules.tolerations)}")
        else:
            placed.append(replace(pod, node=node))
            notes.append(f"placed Pod {pod.name} on {node}: {why}")
    for w in objects.workloads:
        if _running(w, objects.pods) or _owner_given(w, objects.workloads):
            continue
        placed.extend(_expand(w, nodes, placed, notes, rng))
    return list(nodes.values()), placed, notes


def _running(w: KWorkload, pods: Sequence[KPod]) -> bool:
    """Whether the input already holds the workload's pods (a dump): its selector matches a pod of its namespace."""
    ns = namespace_of(w.name)
    selector = w.selector if (w.selector.match_labels or w.selector.expressions) else None
    return selector is not None and any(namespace_of(p.name) == ns and selector.matches(p.labels) for p in pods)


def _owner_given(w: KWorkload, workloads: Sequence[KWorkload]) -> bool:
    """Whether a ReplicaSet's Deployment is in the input (then the Deployment's replicas are its pods)."""
    return bool(w.owner) and any(o.kind == "Deployment" and o.name == w.owner for o in workloads)


def _expand(
    w: KWorkload, nodes: dict[str, KNode], placed: list[KPod], notes: list[str], rng: np.random.Generator
) -> list[KPod]:
    ns = namespace_of(w.name)
    short = w.name.partition("/")[2]
    mine: list[KPod] = []
    tolerations = w.scheduling.tolerations + (DAEMONSET_TOLERATIONS if w.kind == "DaemonSet" else ())
    if w.kind == "DaemonSet":
        for node in nodes.values():
            if _eligible(node, dict(w.labels), ns, w.scheduling, tolerations, placed + mine, nodes):
                mine.append(_pod(w, f"{w.name}-{node.name}", node.name))
        if not mine:
            notes.append(f"DaemonSet {w.name}: no eligible node: {_why(nodes, w.scheduling, tolerations)}")
        return mine
    pending = 0
    incoming = _Incoming(dict(w.labels), ns, w.scheduling, tolerations, f"{w.kind}/{w.name}")
    for k in range(w.replicas):
        chosen, why = _choose(nodes, incoming, placed + mine, rng)
        if chosen is None:
            pending += 1
            continue
        if w.kind == "StatefulSet":
            name = f"{w.name}-{k}"
        else:
            n = sum(1 for p in mine if p.node == chosen)
            name = f"{ns}/{short}-{chosen}" + (f"-{n + 1}" if n else "")
        mine.append(_pod(w, name, chosen))
        notes.append(f"placed {w.kind} {w.name} pod {name} on {chosen}: {why}")
    if pending:
        notes.append(
            f"{w.kind} {w.name}: {pending} of {w.replicas} replicas Pending: "
            f"{_why(nodes, w.scheduling, tolerations, placed + mine, dict(w.labels), ns)}"
        )
    return mine if w.kind == "StatefulSet" else sorted(mine, key=lambda p: p.name)  # listed by name, as the API does


def _pod(w: KWorkload, name: str, node: str) -> KPod:
    return KPod(
        name, node, dict(w.labels), scheduling=w.scheduling, ports=w.ports, file=w.file, owner=f"{w.kind}/{w.name}"
    )


@dataclass(frozen=True)
class _Incoming:
    """The pod being scheduled: its labels, namespace, rules, tolerations and controller."""

    labels: dict[str, str]
    namespace: str
    rules: Scheduling
    tolerations: Sequence[Toleration]
    owner: str = ""


def _choose(
    nodes: dict[str, KNode], pod: _Incoming, placed: Sequence[KPod], rng: np.random.Generator
) -> tuple[str | None, str]:
    """The node kube-scheduler picks for ``pod`` (``schedulePod``: the filters, then the default profile's
    weighted scores, ``selectHost`` among the best), and a few words on why; None when no node passes."""
    on: dict[str, list[KPod]] = {}
    for p in placed:
        on.setdefault(p.node or "", []).append(p)
    feasible = [
        n
        for n in nodes.values()
        if _eligible(n, pod.labels, pod.namespace, pod.rules, pod.tolerations, placed, nodes, on.get(n.name, []))
    ]
    if len(feasible) <= 1:
        return (feasible[0].name, "the only node that fits") if feasible else (None, "")
    plugins = _scores(feasible, pod, placed, nodes, on)
    totals = [sum(WEIGHTS[name] * scores[i] for name, scores in plugins.items()) for i in range(len(feasible))]
    chosen, tied = select_host(totals, rng)
    ranked = [i for i in sorted(range(len(feasible)), key=lambda i: -totals[i]) if i != chosen]
    others = ", ".join(f"{feasible[i].name} {totals[i]}" for i in ranked[:2])
    if tied > 1:
        why = f"a tie of {tied} broken by the seed"
    else:
        gains = {n: WEIGHTS[n] * (s[chosen] - s[ranked[0]]) for n, s in plugins.items()}
        why = "ahead on " + ", ".join(f"{n} {g:+d}" for n, g in gains.items() if g)
    return feasible[chosen].name, f"score {totals[chosen]} of {len(feasible)} nodes (next: {others}; {why})"


def _scores(
    feasible: Sequence[KNode],
    pod: _Incoming,
    placed: Sequence[KPod],
    nodes: dict[str, KNode],
    on: Mapping[str, Sequence[KPod]],
) -> dict[str, list[int]]:
    """Each score plugin of the default profile: its normalized score (0-100) of each feasible node (``on``: the
    pods on each node)."""
    rules = pod.rules
    plugins: dict[str, list[int]] = {}
    use = [tuple(sum(p.scheduling.nonzero_requests[i] for p in on.get(n.name, ())) for i in range(2)) for n in feasible]
    alloc = [allocatable(n) for n in feasible]
    plugins["NodeResourcesFit"] = [
        least_allocated([u[i] + rules.nonzero_requests[i] for i in range(2)], a)
        for u, a in zip(use, alloc, strict=True)
    ]
    if any(rules.requests):  # a best-effort pod skips it (kubernetes#129138)
        requested = [
            tuple(sum(p.scheduling.requests[i] for p in on.get(n.name, ())) for i in range(2)) for n in feasible
        ]
        plugins["NodeResourcesBalancedAllocation"] = [
            balanced_allocation([r[i] + rules.requests[i] for i in range(2)], a)
            for r, a in zip(requested, alloc, strict=True)
        ]
    plugins["PodTopologySpread"] = _spread(feasible, pod, placed, nodes)
    plugins["TaintToleration"] = default_normalize(
        [sum(1 for t in n.taints if t.effect == "PreferNoSchedule" and not _tolerates_soft(t, pod)) for n in feasible],
        reverse=True,
    )
    plugins["NodeAffinity"] = default_normalize(
        [
            sum(w for w, exprs in rules.preferred_nodes if exprs and all(r.matches(n.labels) for r in exprs))
            for n in feasible
        ]
    )
    plugins["InterPodAffinity"] = interpod_affinity_scores(feasible, pod, placed, nodes)
    return plugins


def _tolerates_soft(taint: Taint, pod: _Incoming) -> bool:
    """TaintToleration's score counts only tolerations with effect PreferNoSchedule or none."""
    return any(t.tolerates(taint) for t in pod.tolerations if t.effect in ("", "PreferNoSchedule"))


def _spread(feasible: Sequence[KNode], pod: _Incoming, placed: Sequence[KPod], nodes: dict[str, KNode]) -> list[int]:
    """PodTopologySpread with the system default constraints, counting the pods of the pod's own controller
    (``PodsWithOwnerRef``) on the nodes its node selector and required affinity accept; 0 for a pod without one."""
    if not pod.owner:
        return [0 for _ in feasible]
    mine: dict[str, int] = {}
    for p in placed:
        if p.owner == pod.owner and p.node:
            mine[p.node] = mine.get(p.node, 0) + 1
    counted = [(_labels(n), mine.get(n.name, 0)) for n in nodes.values() if node_matches(n, pod.rules)]
    candidates = [(_labels(n), mine.get(n.name, 0)) for n in feasible]
    return spread_scores(candidates, counted, SYSTEM_DEFAULT_CONSTRAINTS)


def _labels(node: KNode) -> Mapping[str, str]:
    """A node's labels, with the hostname label kubelet always sets."""
    return node.labels if HOSTNAME_LABEL in node.labels else {**node.labels, HOSTNAME_LABEL: node.name}


def interpod_affinity_scores(
    feasible: Sequence[KNode], pod: _Incoming, placed: Sequence[KPod], nodes: dict[str, KNode]
) -> list[int]:
    """InterPodAffinity's score: per topology value, the weights of the pod's preferred terms that placed pods
    match, and of placed pods' preferred terms (and, at weight 1, required affinity terms) the pod matches."""
    pairs: dict[tuple[str, str], int] = {}
    for other in placed:
        where = nodes.get(other.node or "")
        if where is None:
            continue
        terms: list[tuple[int, AntiAffinity, KPod | None]] = [(w, t, other) for w, t in pod.rules.preferred_pods]
        for w, t in other.scheduling.preferred_pods + tuple(
            (HARD_POD_AFFINITY_WEIGHT, a) for a in other.scheduling.affinity
        ):
            if pod.namespace in t.namespaces and t.selector.matches(pod.labels):
                terms.append((w, t, None))
        for w, t, target in terms:
            if target is not None and not (
                namespace_of(target.name) in t.namespaces and t.selector.matches(target.labels)
            ):
                continue
            value = where.labels.get(t.topology_key)
            if value is not None:
                pairs[(t.topology_key, value)] = pairs.get((t.topology_key, value), 0) + w
    if not pairs:
        return [0 for _ in feasible]
    return interpod_normalize([sum(v for (k, val), v in pairs.items() if n.labels.get(k) == val) for n in feasible])


def allocatable(node: KNode) -> tuple[int, int]:
    """CPU (millicores) and memory (bytes) a node offers pods; ``NOMINAL_ALLOCATABLE`` where not given."""
    cpu = round(node.cpu * 1000) or NOMINAL_ALLOCATABLE[0]
    return cpu, node.memory or NOMINAL_ALLOCATABLE[1]


def _why(
    nodes: dict[str, KNode],
    rules: Scheduling,
    tolerations: Sequence[Toleration],
    placed: Sequence[KPod] = (),
    labels: dict[str, str] | None = None,
    ns: str = "",
) -> str:
    """Why no node takes the pod: the counts the scheduler's "0/N nodes are available" message gives."""
    if not nodes:
        return "no nodes"
    tainted = sum(1 for n in nodes.values() if not tolerated(n.taints, tolerations))
    unmatched = sum(1 for n in nodes.values() if tolerated(n.taints, tolerations) and not node_matches(n, rules))
    parts = []
    if tainted:
        parts.append(f"{tainted} with untolerated taints")
    if unmatched:
        parts.append(f"{unmatched} not matching the node selector/affinity")
    rest = [n for n in nodes.values() if tolerated(n.taints, tolerations) and node_matches(n, rules)]
    if labels is not None:
        short = sum(1 for n in rest if not resources_fit(n, rules, [p for p in placed if p.node == n.name]))
        if short:
            parts.append(f"{short} with too little CPU, memory or pod room left")
        if len(rest) > short:
            parts.append(f"{len(rest) - short} excluded by pod affinity or anti-affinity")
    return f"0/{len(nodes)} nodes are available" + (f": {', '.join(parts)}" if parts else "")
