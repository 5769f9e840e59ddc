"""Where workloads' pods run: Deployments, ReplicaSets and StatefulSets expanded to their replicas, DaemonSets to
one pod per eligible node, and manifest Pods without a node scheduled, deterministically.

A node is eligible for a pod when the scheduler's filters pass (``pkg/scheduler/framework/plugins``):
``NodeUnschedulable`` and ``TaintToleration`` (every NoSchedule/NoExecute taint tolerated, the control-plane taint
included), ``NodeAffinity`` (nodeSelector, and required node affinity: terms ORed, requirements ANDed),
``InterPodAffinity`` (required anti-affinity: no matching pod on a node with the same topologyKey value). Among
eligible nodes a replica goes where its workload has the fewest pods (then the fewest in the node's zone, then
the first node in input order): a deterministic stand-in for the default spreading score. Resources are not
modelled. A DaemonSet pod also tolerates what the DaemonSet controller adds
(``pkg/controller/daemon/util/daemonset_util.go`` ``AddOrUpdateDaemonPodTolerations``). What cannot be placed
is Pending and reported. Placed pods are Running and Ready: the steady state the manifests ask for.

Pod names: a StatefulSet's are ``<name>-<ordinal>`` as Kubernetes names them; the others (whose real names end
in random characters) are ``<name>-<node>``, with ``-2``, ``-3``, ... for more on one node.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from sim.cluster import namespace_of
from sim.io.kubernetes import (
    HOSTNAME_LABEL,
    ZONE_LABEL,
    KNode,
    KPod,
    KWorkload,
    Objects,
    Scheduling,
    Taint,
    Toleration,
)

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


def _eligible(
    node: KNode,
    labels: dict[str, str],
    namespace: str,
    rules: Scheduling,
    tolerations: Sequence[Toleration],
    placed: Sequence[KPod],
    nodes: dict[str, KNode],
) -> bool:
    return (
        tolerated(node.taints, tolerations)
        and node_matches(node, rules)
        and anti_affinity_ok(labels, namespace, node, rules, placed, nodes)
    )


def place(objects: Objects) -> tuple[list[KNode], list[KPod], list[str]]:
    """The cluster's nodes (those given, then bare ones named only by a pod or endpoint), its pods (those given,
    then each workload's, in input order) and notes on what was created bare or left Pending."""
    notes: list[str] = []
    nodes = {n.name: n for n in objects.nodes}
    for name in [p.node for p in objects.pods] + [ep.node for s in objects.slices for ep in s.endpoints]:
        if name and name not in nodes:
            nodes[name] = KNode(name, {HOSTNAME_LABEL: name}, bare=True)
            notes.append(f"node {name}: named by a pod or an endpoint but not given: created bare (no zone, no CPU)")
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
        node = _choose(
            nodes, dict(pod.labels), namespace_of(pod.name), pod.scheduling, pod.scheduling.tolerations, placed, []
        )
        if node is None:
            notes.append(f"Pod {pod.name}: Pending: {_why(nodes, pod.scheduling, pod.scheduling.tolerations)}")
        else:
            placed.append(replace(pod, node=node))
    for w in objects.workloads:
        if _running(w, objects.pods) or _owner_given(w, objects.workloads):
            continue
        placed.extend(_expand(w, nodes, placed, notes))
    return list(nodes.values()), placed, notes


def _running(w: KWorkload, pods: Sequence[KPod]) -> bool:
    """Whether the input already holds the workload's pods (a dump): its selector matches a pod of its namespace."""
    ns = namespace_of(w.name)
    selector = w.selector if (w.selector.match_labels or w.selector.expressions) else None
    return selector is not None and any(namespace_of(p.name) == ns and selector.matches(p.labels) for p in pods)


def _owner_given(w: KWorkload, workloads: Sequence[KWorkload]) -> bool:
    """Whether a ReplicaSet's Deployment is in the input (then the Deployment's replicas are its pods)."""
    return bool(w.owner) and any(o.kind == "Deployment" and o.name == w.owner for o in workloads)


def _expand(w: KWorkload, nodes: dict[str, KNode], placed: list[KPod], notes: list[str]) -> list[KPod]:
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
    for k in range(w.replicas):
        chosen = _choose(nodes, dict(w.labels), ns, w.scheduling, tolerations, placed + mine, mine)
        if chosen is None:
            pending += 1
            continue
        if w.kind == "StatefulSet":
            name = f"{w.name}-{k}"
        else:
            n = sum(1 for p in mine if p.node == chosen)
            name = f"{ns}/{short}-{chosen}" + (f"-{n + 1}" if n else "")
        mine.append(_pod(w, name, chosen))
    if pending:
        notes.append(
            f"{w.kind} {w.name}: {pending} of {w.replicas} replicas Pending: "
            f"{_why(nodes, w.scheduling, tolerations, placed + mine, dict(w.labels), ns)}"
        )
    return mine


def _pod(w: KWorkload, name: str, node: str) -> KPod:
    return KPod(name, node, dict(w.labels), scheduling=w.scheduling, ports=w.ports, file=w.file)


def _choose(
    nodes: dict[str, KNode],
    labels: dict[str, str],
    ns: str,
    rules: Scheduling,
    tolerations: Sequence[Toleration],
    placed: Sequence[KPod],
    mine: Sequence[KPod],
) -> str | None:
    """The eligible node with the fewest of ``mine``, then fewest of ``mine`` in its zone, then the first."""
    best: tuple[int, int, int] | None = None
    choice = None
    for i, node in enumerate(nodes.values()):
        if not _eligible(node, labels, ns, rules, tolerations, placed, nodes):
            continue
        zone = node.labels.get(ZONE_LABEL)
        on_node = sum(1 for p in mine if p.node == node.name)
        in_zone = sum(1 for p in mine if zone is not None and nodes[p.node or ""].labels.get(ZONE_LABEL) == zone)
        key = (on_node, in_zone, i)
        if best is None or key < best:
            best, choice = key, node.name
    return choice


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
    rest = len(nodes) - tainted - unmatched
    if rest and labels is not None:
        parts.append(f"{rest} excluded by pod anti-affinity")
    return f"0/{len(nodes)} nodes are available" + (f": {', '.join(parts)}" if parts else "")
