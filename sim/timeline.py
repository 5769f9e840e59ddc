"""A cluster that changes over time: timeline events as data, and the endpoint states they lead to, pure.

Two clocks matter. The *data plane* changes at once: a deleted pod stops answering, a failed node takes its pods
down. The *control plane* learns later: a terminating pod's endpoint changes when the kubelet reports it, a
failed node's pods stay "ready" until the node lifecycle controller notices (``node-monitor-grace-period``),
and every node's proxy applies an EndpointSlice change only after its own sync lag. ``control_versions`` lists
the endpoint states in the order the control plane publishes them; the engine applies each on each node after
that node's lag. ``ControlPlane`` is what it publishes, version by version: the Services and their endpoints with
the EndpointSlice controller's hints.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum

from sim.cluster import Endpoint, Node, Pod, Service, endpoints_for
from sim.routing import Hints, generate_hints

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


def history(
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


class ControlPlane:
    """What the control plane publishes over a run (a Scenario's ``control_plane``): its versions (``plan``), the
    data-plane changes, and per version each Service as published and its endpoints with the EndpointSlice
    controller's hints (``sim.routing.generate_hints``), or the EndpointSlices given (read from a cluster),
    and a further port's endpoints, each computed once when first asked for."""

    def __init__(
        self,
        pods: Sequence[Pod],
        services: Sequence[Service],
        absent: frozenset[str],
        events: Sequence[Event],
        nodes: Mapping[str, Node],
        given_endpoints: Mapping[str, tuple[Endpoint, ...]],
    ) -> None:
        self.versions, self.data_changes = history(pods, services, absent, events)
        """Control-plane states over time: (seconds, state), the first at 0 s; data-plane changes over time."""
        self.nodes = nodes
        self.given_endpoints = given_endpoints
        self.absent = absent
        self._pods_at_start = {p.name: p for p in pods}
        self._hints_by_version: dict[int, dict[str, Hints]] = {}
        self._at_port: dict[tuple[str, int, str], tuple[Endpoint, ...]] = {}
        self._services_at: list[dict[str, Service]] = []
        for _, state in self.versions:  # one lookup per stream and entry node, not a scan of 10,000 Services
            by_name: dict[str, Service] = {}
            for svc in state.services:
                by_name.setdefault(svc.name, svc)
            self._services_at.append(by_name)

    def service_at(self, name: str, version: int) -> Service:
        """The Service called ``name`` as published in control-plane version ``version``."""
        return self._services_at[version][name]

    def endpoints(self, service: str, version: int = 0, port: str = "") -> tuple[Endpoint, ...]:
        """The Service's endpoints with conditions and the controller's hints, sorted by address, for its port
        ``port`` (``Service.port_of``: kube-proxy's ServicePortName; endpoints whose slice lacks it left out)."""
        endpoints = self._hints(version)[service].endpoints
        svc = self.service_at(service, version)
        if not svc.other_ports:
            return endpoints
        cached = self._at_port.get((service, version, port))
        if cached is None:  # once per port and version, not per stream and entry node that asks
            name = svc.at_port(port).port_name
            moved = (ep.at_port(name) if ep.ports else ep for ep in endpoints)
            cached = tuple(sorted((ep for ep in moved if ep is not None), key=lambda ep: ep.address))
            self._at_port[service, version, port] = cached
        return cached

    def hints(self, service: str, version: int = 0) -> Hints:
        """The hints the EndpointSlice controller wrote for ``service`` (or why it wrote none)."""
        return self._hints(version)[service]

    def _hints(self, version: int) -> dict[str, Hints]:
        cached = self._hints_by_version.get(version)
        if cached is None:
            state = self.versions[version][1]
            by_label: dict[tuple[str, str], list[Pod]] = {}  # a selector's first label narrows the pods to test
            for pod in state.pods:
                for item in pod.labels.items():
                    by_label.setdefault(item, []).append(pod)
            cached = {
                svc.name: self._given(svc, state)
                if svc.name in self.given_endpoints
                else generate_hints(
                    svc,
                    endpoints_for(svc, by_label.get(next(iter(svc.selector.items()), ("", "")), []), self.nodes),
                    self.nodes,
                )
                for svc in state.services
            }
            self._hints_by_version[version] = cached
        return cached

    def _given(self, svc: Service, state: ClusterState) -> Hints:
        """A Service's given EndpointSlices as the control plane publishes them in ``state``: as given, but an
        endpoint whose pod the timeline changed or removed follows its pod (as the controller would rewrite it),
        and a pod added later that the selector matches gets an endpoint (kube-proxy
        ``endpointslicecache.go`` ``addEndpoints`` reads what the slices say)."""
        given = self.given_endpoints[svc.name]
        now = {p.name: p for p in state.pods}
        derived = {ep.pod: ep for ep in endpoints_for(svc, state.pods, self.nodes)}
        out: list[Endpoint] = []
        for ep in given:
            pod = now.get(ep.pod or "")
            if pod is None:
                continue
            if pod == self._pods_at_start[pod.name]:
                out.append(ep)
            else:
                out.append(
                    replace(ep, ready=pod.ready and not pod.terminating, serving=pod.ready, terminating=pod.terminating)
                )
        named = {ep.pod for ep in given}
        out.extend(ep for name, ep in derived.items() if name not in named and name in self.absent)
        endpoints = tuple(sorted(out, key=lambda ep: ep.address))
        implied = generate_hints(svc, tuple(derived.values()), self.nodes)
        if implied.endpoints == endpoints:
            return implied  # what the controller would write: with its reason for writing no hints
        hinted = any(ep.zone_hints or ep.node_hints for ep in endpoints)
        return Hints(endpoints, "" if hinted else "none in the EndpointSlices")
