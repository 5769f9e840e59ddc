"""A cluster that changes over time: timeline events as data, and the endpoint states they lead to, pure.

Two clocks matter. The *data plane* changes at once: a deleted pod stops answering, a failed node takes its pods
down. The *control plane* learns later: a terminating pod's endpoint changes when the kubelet reports it, a
failed node's pods stay "ready" until the node lifecycle controller notices (``node-monitor-grace-period``),
and every node's proxy applies an EndpointSlice change only after its own sync lag. ``control_versions`` lists
the endpoint states in the order the control plane publishes them; the engine applies each on each node after
that node's lag.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum

from sim.cluster import Pod, Service

NODE_MONITOR_GRACE_PERIOD_S = 40.0
"""kube-controller-manager's default: a node is NotReady (and its pods' endpoints not ready) 40 s after it died."""


class Action(StrEnum):
    """What a timeline event does."""

    TERMINATE = "terminate"
    """The pod is deleted: terminating and (while its readiness holds) serving for ``grace_s``, then gone."""
    READY = "ready"
    UNREADY = "unready"
    ADD = "add"
    """A pod declared with ``present = false`` starts (with the readiness it was declared with)."""
    FAIL = "fail"
    """A node dies: its pods stop at once; the control plane notices after ``detect_s``."""
    RECOVER = "recover"
    """A failed node is back, with its pods as they were."""
    UPDATE = "update"
    """A Service's fields change (``set``), e.g. its internalTrafficPolicy."""


@dataclass(frozen=True)
class Event:
    """One timeline entry at ``at_s`` seconds: an action on a pod, a node or a Service."""

    at_s: float
    action: Action
    pod: str = ""
    node: str = ""
    service: str = ""
    grace_s: float = 30.0
    detect_s: float = NODE_MONITOR_GRACE_PERIOD_S
    changes: Mapping[str, object] = field(default_factory=dict, hash=False, compare=False)


@dataclass(frozen=True)
class ClusterState:
    """The pods (with conditions) and Services as the control plane publishes them at one moment."""

    pods: tuple[Pod, ...]
    services: tuple[Service, ...]
    down: frozenset[str] = frozenset()


@dataclass(frozen=True)
class DataChange:
    """A data-plane change at ``at_s``: pods that stop answering (``stop``) or start (``start``)."""

    at_s: float
    stop: frozenset[str] = frozenset()
    start: frozenset[str] = frozenset()
    node_failed: str = ""


def _set_pod(pods: Sequence[Pod], name: str, **changes: object) -> tuple[Pod, ...]:
    return tuple(replace(p, **changes) if p.name == name else p for p in pods)  # type: ignore[arg-type]


def plan(
    pods: Sequence[Pod], services: Sequence[Service], absent: frozenset[str], events: Sequence[Event]
) -> tuple[list[tuple[float, ClusterState]], list[DataChange]]:
    """The control-plane versions (time, state) starting at 0 s, and the data-plane changes, from the events.

    Pods in ``absent`` are not published until an ``add``. A terminating pod is published as terminating at the
    event and removed after ``grace_s``; a failed node's pods are published not ready ``detect_s`` later.
    """
    # (time, order, transition) for the control plane; the order keeps simultaneous changes in file order
    control: list[tuple[float, int, Event, str]] = []
    data: list[DataChange] = []
    node_of = {p.name: p.node for p in pods}
    for k, ev in enumerate(events):
        if ev.action == Action.TERMINATE:
            control.append((ev.at_s, k, ev, "terminating"))
            control.append((ev.at_s + ev.grace_s, k, ev, "gone"))
            data.append(DataChange(ev.at_s + ev.grace_s, stop=frozenset({ev.pod})))
        elif ev.action == Action.FAIL:
            on_node = frozenset(n for n, node in node_of.items() if node == ev.node)
            data.append(DataChange(ev.at_s, stop=on_node, node_failed=ev.node))
            control.append((ev.at_s + ev.detect_s, k, ev, "down"))
        elif ev.action == Action.RECOVER:
            on_node = frozenset(n for n, node in node_of.items() if node == ev.node)
            data.append(DataChange(ev.at_s, start=on_node))
            control.append((ev.at_s, k, ev, "up"))
        elif ev.action == Action.ADD:
            data.append(DataChange(ev.at_s, start=frozenset({ev.pod})))
            control.append((ev.at_s, k, ev, "add"))
        else:
            control.append((ev.at_s, k, ev, ev.action.value))
    control.sort(key=lambda c: (c[0], c[1]))
    present = {p.name for p in pods if p.name not in absent}
    pod_list, svc_list, down = tuple(pods), tuple(services), frozenset[str]()
    versions = [(0.0, ClusterState(tuple(p for p in pod_list if p.name in present), svc_list, down))]
    for at, _, ev, what in control:
        if what == "terminating":
            pod_list = _set_pod(pod_list, ev.pod, terminating=True)
        elif what == "gone":
            present.discard(ev.pod)
        elif what == "down":
            down = down | {ev.node}
        elif what == "up":
            down = down - {ev.node}
        elif what == "add":
            present.add(ev.pod)
        elif what == "ready":
            pod_list = _set_pod(pod_list, ev.pod, ready=True)
        elif what == "unready":
            pod_list = _set_pod(pod_list, ev.pod, ready=False)
        elif what == "update":
            svc_list = tuple(replace(s, **ev.changes) if s.name == ev.service else s for s in svc_list)  # type: ignore[arg-type]
        visible = tuple(replace(p, ready=False) if p.node in down else p for p in pod_list if p.name in present)
        versions.append((at, ClusterState(visible, svc_list, down)))
    data.sort(key=lambda d: d.at_s)
    return versions, data
