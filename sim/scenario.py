"""A Scenario: topology, cluster objects, client streams, dataplane; validated when built.

It owns the validated objects and their lookups (``Scenario``), what building one checks (``_validate``), and a
stream's way in (``stream_source``, ``entry_nodes``, ``lb_nodes``, ``route_for``, ``stream_route``): the checks use
them, and ``sim.plan.compile_plan`` compiles them once for the engines. What the control plane publishes over time
(versions, endpoints, hints) is ``sim.timeline.ControlPlane``, the Scenario's ``control_plane``.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from functools import cached_property

from sim.callgraph import CallGraph, Parallel, members
from sim.cluster import (
    MAX_AFFINITY_TIMEOUT_S,
    MAX_NODES,
    MAX_PODS,
    MAX_PORT,
    MAX_SERVICES,
    Endpoint,
    Node,
    Pod,
    Service,
    TrafficPolicy,
)
from sim.errors import SpecError, shown
from sim.outcomes import DropReason
from sim.routing import (
    DATAPLANES,
    LOCAL_TRAFFIC_DETECTORS,
    NO_BACKEND_RESPONSES,
    PICKERS,
    Dataplane,
    DataplaneConfig,
    Route,
    Source,
    local_ready_endpoints,
    source_range_denied,
)
from sim.routing.maglev import TABLE_SIZES, seed_word
from sim.rpc import LINUX_SYN_TIMEOUT_S, Retries
from sim.timeline import Action, ControlPlane, Event
from sim.topology import Topology
from sim.workload import ClosedLoop, Trace, Workload

EXCLUDE_FROM_LB = "node.kubernetes.io/exclude-from-external-load-balancers"


class Target(StrEnum):
    """Which address of the Service a stream calls."""

    CLUSTER_IP = "ClusterIP"
    NODE_PORT = "NodePort"
    LOAD_BALANCER = "LoadBalancer"
    EXTERNAL_IP = "ExternalIP"
    """The Service's first externalIP: a pod's own node's proxy captures it; from outside, the network routes it
    to the stream's ``node``."""


@dataclass(frozen=True)
class Connections:
    """How a client uses TCP connections: a new one per request (``max_requests=1``, curl in a loop) or
    keep-alive, where requests share a connection (and so its endpoint) until it has carried ``max_requests`` or
    is ``max_age_s`` seconds old."""

    max_requests: int = 1
    max_age_s: float = float("inf")

    @property
    def keep_alive(self) -> bool:
        """Whether requests may share a connection."""
        return self.max_requests > 1


@dataclass(frozen=True)
class Sync:
    """How long an EndpointSlice change takes to reach each node's proxy (s): ``lag_s``, or ``per_node[name]``."""

    lag_s: float = 1.0
    per_node: Mapping[str, float] = field(default_factory=dict, hash=False, compare=False)

    def lag(self, node: str) -> float:
        """Seconds from a control-plane change to ``node``'s proxy applying it."""
        return self.per_node.get(node, self.lag_s)


@dataclass(frozen=True)
class ExternalClient:
    """A client outside the cluster, attached to a topology vertex (e.g. an ``internet`` router)."""

    name: str
    attach: str
    ip: str


@dataclass(frozen=True)
class Stream:
    """One client (pod or external) calling one Service: ``requests`` sends (None: until ``duration_s``).

    ``target`` picks the Service address: ClusterIP (pods only), NodePort on ``node``, an externalIP (routed to
    ``node`` from outside), or the LoadBalancer, which spreads connections uniformly over nodes (only over nodes
    passing the eTP=Local health check when ``health_checks``; if none passes, over all, as cloud load balancers
    fail open). ``timeout_s`` is the
    client's request timeout (the backend finishes its work anyway); ``retries`` retries failures and timeouts.
    """

    client: str
    service: str
    workload: Workload
    requests: int | None = None
    start_s: float = 0.0
    connect_timeout_s: float = LINUX_SYN_TIMEOUT_S
    target: Target = Target.CLUSTER_IP
    node: str | None = None
    health_checks: bool = False
    connections: Connections = Connections()
    timeout_s: float | None = None
    retries: Retries = Retries()
    port: str = ""
    """The Service port called, by name or number (``Service.port_of``); ``""``: the first."""


SCENARIO = "<scenario>"


def fail(fld: str, problem: str) -> SpecError:
    """A SpecError found while validating a Scenario; ``sim.io`` puts the file's path in."""
    return SpecError(SCENARIO, fld, problem)


NAMES_SHOWN = 12
"""How many valid names an error lists before it says how many more there are."""


def no_such(what: str, name: object, names: Iterable[str], plural: str = "") -> str:
    """The problem of a name that names nothing, with the names that would do.

    >>> no_such("service", "nope", ["echo-2", "echo-1"])
    "no service named 'nope'; the services are echo-1, echo-2"
    """
    known = sorted(names)
    more = len(known) - NAMES_SHOWN
    listed = ", ".join(known[:NAMES_SHOWN]) + (f" and {more} more" if more > 0 else "")
    return f"no {what} named {name!r}; the {plural or what + 's'} are {listed or 'none'}"


def _ip(fld: str, text: str) -> None:
    """Refuse ``text`` unless it is an IP address."""
    try:
        ipaddress.ip_address(text)
    except ValueError:
        raise fail(fld, f"must be an IP address, got {shown(text)}") from None


@dataclass(frozen=True, eq=False)
class Scenario:
    """Everything one run needs. Building one checks every reference, and raises SpecError on the first problem."""

    name: str
    topology: Topology
    pods: tuple[Pod, ...]
    services: tuple[Service, ...]
    streams: tuple[Stream, ...]
    dataplane: DataplaneConfig = DataplaneConfig()
    external_clients: tuple[ExternalClient, ...] = ()
    duration_s: float | None = None
    warmup_s: float = 0.0
    timeline: tuple[Event, ...] = ()
    absent: frozenset[str] = frozenset()
    sync: Sync = Sync()
    given_endpoints: Mapping[str, tuple[Endpoint, ...]] = field(default_factory=dict, hash=False, compare=False)
    """EndpointSlices read from a cluster, by Service: they win over what endpoints_for derives (see _given)."""
    call_graph: CallGraph = CallGraph()
    """The calls each Service's pods make for a request (``sim.callgraph``); checked against the Services."""

    def __post_init__(self) -> None:
        _validate(self)

    # --- lookups ---------------------------------------------------------------------------------------------

    @cached_property
    def nodes(self) -> dict[str, Node]:
        """Kubernetes Nodes by name, with labels, allocatable CPU and readiness from the topology."""
        topo = self.topology
        return {
            name: Node(name, dict(labels), topo.allocatable_cpu.get(name, 0.0), name not in topo.unready)
            for name, labels in topo.nodes.items()
        }

    @cached_property
    def _pods_by_name(self) -> dict[str, Pod]:
        return {pod.name: pod for pod in self.pods}

    @cached_property
    def _external_by_name(self) -> dict[str, ExternalClient]:
        return {c.name: c for c in self.external_clients}

    @cached_property
    def _services_by_name(self) -> dict[str, Service]:
        return {svc.name: svc for svc in self.services}

    @cached_property
    def control_plane(self) -> ControlPlane:
        """What the control plane publishes over the run: versions, data-plane changes, each version's Services
        and endpoints with the controller's hints (``sim.timeline.ControlPlane``)."""
        return ControlPlane(self.pods, self.services, self.absent, self.timeline, self.nodes, self.given_endpoints)

    @cached_property
    def _pods_by_label(self) -> dict[tuple[str, str], list[Pod]]:
        """``pods`` by each of their labels: a selector's first label narrows the pods to test."""
        by_label: dict[tuple[str, str], list[Pod]] = {}
        for pod in self.pods:
            for item in pod.labels.items():
                by_label.setdefault(item, []).append(pod)
        return by_label

    def selected(self, service: str) -> list[Pod]:
        """The pods (of ``pods``, in their order) the Service's selector matches (``Service.selects``)."""
        svc = self.service(service)
        first = next(iter(svc.selector.items()), None)
        return [] if first is None else [p for p in self._pods_by_label.get(first, []) if svc.selects(p)]

    @property
    def dataplane_impl(self) -> Dataplane:
        """The Dataplane named by the config."""
        return DATAPLANES[self.dataplane.name]

    def pod(self, name: str) -> Pod:
        """The pod called ``name``."""
        return self._pods_by_name[name]

    def service(self, name: str) -> Service:
        """The Service called ``name``."""
        return self._services_by_name[name]

    def is_external(self, client: str) -> bool:
        """Whether ``client`` is outside the cluster."""
        return client in self._external_by_name

    def client_ip(self, client: str) -> str:
        """The address a client's connections come from."""
        return self._external_by_name[client].ip if self.is_external(client) else self.pod(client).ip

    def origin(self, client: str) -> str:
        """The topology vertex a client's packets start from: its pod's node, or where it attaches."""
        return self._external_by_name[client].attach if self.is_external(client) else self.pod(client).node


# --- a stream's way in: compiled once by sim.plan (StreamPlan.entries, RoutePlan.route), checked on building ---


def stream_source(sc: Scenario, stream: Stream) -> Source:
    """What kind of connection a stream makes, as the deciding node's proxy sees it (``sim.routing.Source``)."""
    if sc.is_external(stream.client):
        return Source.EXTERNAL
    host = sc.pod(stream.client).host_network  # the node's own traffic: --src-type LOCAL where it is decided
    if stream.target == Target.CLUSTER_IP:
        return Source.NODE if host else Source.POD
    remote = stream.target == Target.NODE_PORT and stream.node != sc.pod(stream.client).node
    if remote and sc.dataplane_impl.remote_node_port_decided_there(sc.dataplane):
        return Source.EXTERNAL if host else Source.POD_NODE_PORT  # another node's address: not local there
    return Source.NODE_EXTERNAL if host else Source.POD_EXTERNAL


def lb_nodes(sc: Scenario, stream: Stream) -> tuple[str, ...]:
    """The nodes a load balancer sends the stream's connections to."""
    nodes = tuple(n for n, node in sc.nodes.items() if EXCLUDE_FROM_LB not in node.labels and node.ready)
    if stream.health_checks:
        eps = sc.control_plane.endpoints(stream.service)
        if sc.service(stream.service).external_traffic_policy == TrafficPolicy.LOCAL:
            healthy = tuple(n for n in nodes if local_ready_endpoints(eps, sc.nodes[n]) > 0)
            return healthy or nodes
    return nodes


def entry_nodes(sc: Scenario, stream: Stream) -> tuple[str, ...]:
    """The nodes whose proxy handles the stream's new connections."""
    if stream.target == Target.LOAD_BALANCER and sc.is_external(stream.client):
        return lb_nodes(sc, stream)
    if stream.target in (Target.NODE_PORT, Target.EXTERNAL_IP) and sc.is_external(stream.client):
        return (stream.node or "",)
    if stream_source(sc, stream) in (Source.POD_NODE_PORT, Source.EXTERNAL):  # that node's proxy decides
        return (stream.node or "",)
    return (sc.pod(stream.client).node,)


def route_for(sc: Scenario, service: str, node: str, source: Source, version: int = 0, port: str = "") -> Route:
    """The dataplane's route for a connection of ``source`` into ``service``'s port ``port`` entering at ``node``
    as of control-plane ``version`` (``sim routes``: every node, no stream needed)."""
    svc = sc.control_plane.service_at(service, version).at_port(port)
    endpoints = sc.control_plane.endpoints(service, version, port)
    return sc.dataplane_impl.route(svc, endpoints, sc.nodes[node], source, sc.dataplane)


def stream_route(sc: Scenario, stream: Stream, node: str, version: int = 0) -> Route:
    """Which endpoints a new connection of ``stream`` entering at ``node`` may reach, per the dataplane, as that
    node's proxy sees control-plane version ``version``."""
    route = route_for(sc, stream.service, node, stream_source(sc, stream), version, stream.port)
    if stream.target == Target.LOAD_BALANCER and source_range_denied(
        sc.control_plane.service_at(stream.service, version), sc.client_ip(stream.client), sc.dataplane
    ):
        return replace(route, endpoints=(), drop=DropReason.SOURCE_RANGE_DENIED)
    return route


# --- what building a Scenario checks ---------------------------------------------------------------------


def _validate(sc: Scenario) -> None:
    """What building a Scenario checks (its ``__post_init__``): every reference, limit, address, call and
    event; the first problem raised as a SpecError."""
    dp = sc.dataplane
    if dp.name not in DATAPLANES:
        raise fail("dataplane.name", f"unknown dataplane {dp.name!r}; expected one of {sorted(DATAPLANES)}")
    if dp.picker and dp.picker not in PICKERS:
        raise fail("dataplane.picker", f"unknown picker {dp.picker!r}; expected one of {sorted(PICKERS)}")
    if dp.picker and not DATAPLANES[dp.name].offers(dp.picker):
        offered = [p for p in PICKERS if DATAPLANES[dp.name].offers(p)]
        raise fail("dataplane.picker", f"dataplane {dp.name} has no picker {dp.picker!r}; it offers {offered}")
    if dp.maglev_table_size not in TABLE_SIZES:
        raise fail("dataplane.maglev_table_size", f"must be one of Cilium's primes {list(TABLE_SIZES)}")
    try:
        seed_word(dp.maglev_hash_seed)
    except ValueError as err:
        raise fail("dataplane.maglev_hash_seed", str(err)) from None
    _validate_detector(sc)
    if dp.service_no_backend_response not in NO_BACKEND_RESPONSES:
        raise fail(
            "dataplane.service_no_backend_response",
            f"unknown value {dp.service_no_backend_response!r}; expected one of {list(NO_BACKEND_RESPONSES)}",
        )
    if dp.masquerade_all and dp.name not in ("iptables", "nftables"):
        raise fail("dataplane.masquerade_all", f"is modelled for iptables and nftables only, not {dp.name!r}")
    if dp.recent_list_size < 0:
        raise fail("dataplane.recent_list_size", f"must be >= 0 (0: no limit), got {dp.recent_list_size}")
    if sc.duration_s is not None and not sc.duration_s > 0:
        raise fail("duration_s", f"must be > 0 seconds, got {sc.duration_s}")
    if sc.warmup_s < 0 or (sc.duration_s is not None and sc.warmup_s >= sc.duration_s):
        raise fail("warmup_s", f"must be >= 0 and below duration_s, got {sc.warmup_s}")
    _validate_sizes(sc)
    names: set[str] = set()
    for i, pod in enumerate(sc.pods):
        if pod.name in names:
            raise fail(f"pods[{i}].name", f"duplicate pod name {pod.name!r}")
        names.add(pod.name)
        if pod.node not in sc.topology.nodes:
            raise fail(f"pods[{i}].node", f"node {pod.node!r} is not in topology {sc.topology.name!r}")
        if pod.concurrency < 1:
            raise fail(f"pods[{i}].concurrency", f"must be >= 1, got {pod.concurrency}")
    for i, ext in enumerate(sc.external_clients):
        if ext.name in names:
            raise fail(f"external_clients[{i}].name", f"duplicate client name {ext.name!r}")
        names.add(ext.name)
        if ext.attach not in sc.topology:
            raise fail(f"external_clients[{i}].attach", f"{ext.attach!r} is not in topology {sc.topology.name!r}")
    service_names: set[str] = set()
    for i, svc in enumerate(sc.services):
        if svc.name in service_names:
            raise fail(f"services[{i}].name", f"duplicate service name {svc.name!r}")
        service_names.add(svc.name)
        if not 1 <= svc.session_affinity_timeout_s <= MAX_AFFINITY_TIMEOUT_S:
            raise fail(f"services[{i}].timeoutSeconds", f"must be between 1 and {MAX_AFFINITY_TIMEOUT_S:.0f} seconds")
    _validate_addresses(sc)
    for i, ev in enumerate(sc.timeline):
        _validate_event(sc, i, ev, names, service_names)
    _validate_given(sc, service_names)
    _validate_calls(sc)
    components: dict[str, dict[int, Endpoint]] = {}  # by Service: each its endpoints' network components, once
    for i, stream in enumerate(sc.streams):
        _validate_stream(sc, i, stream, names, service_names, components)


def _validate_detector(sc: Scenario) -> None:
    """kube-proxy's ``validateDetectLocalConfiguration``: a known mode, and what it needs given."""
    dp = sc.dataplane
    mode = dp.local_traffic_detector
    if mode not in LOCAL_TRAFFIC_DETECTORS:
        raise fail(
            "dataplane.local_traffic_detector",
            f"unknown detector {mode!r}; expected one of {list(LOCAL_TRAFFIC_DETECTORS)}",
        )
    try:
        net = ipaddress.ip_network(dp.cluster_cidr)
    except ValueError:
        raise fail("dataplane.cluster_cidr", f"{shown(dp.cluster_cidr)} is not a CIDR (e.g. 10.244.0.0/16)") from None
    if net.version != 4:
        raise fail("dataplane.cluster_cidr", "only IPv4 is modelled")
    needs = {"BridgeInterface": "bridge_interface", "InterfaceNamePrefix": "interface_name_prefix"}.get(mode)
    if needs and not getattr(dp, needs):
        raise fail(f"dataplane.{needs}", f"is required with local_traffic_detector = {mode!r}")


def _validate_sizes(sc: Scenario) -> None:
    """Kubernetes' own limits: at most 5,000 nodes, 150,000 pods and 10,000 Services."""
    for what, n, limit in (
        ("topology.nodes", len(sc.topology.nodes), MAX_NODES),
        ("pods", len(sc.pods), MAX_PODS),
        ("services", len(sc.services), MAX_SERVICES),
    ):
        if n > limit:
            raise fail(what, f"{n:,} of them: Kubernetes supports at most {limit:,}")


def _validate_addresses(sc: Scenario) -> None:
    """Every address an IP address and every port 1-65535 (0: none, for targetPort and nodePort), so that no
    rule or route is built from anything else."""
    for i, pod in enumerate(sc.pods):
        _ip(f"pods[{i}].ip", pod.ip)
    for i, ext in enumerate(sc.external_clients):
        _ip(f"external_clients[{i}].ip", ext.ip)
    for i, svc in enumerate(sc.services):
        for key, value, low in (
            ("port", svc.port, 1),
            ("targetPort", svc.target_port, 0),
            ("nodePort", svc.node_port, 0),
        ):
            if not (value == low == 0 or 1 <= value <= MAX_PORT):
                raise fail(f"services[{i}].{key}", f"must be a port 1-{MAX_PORT}, got {value}")
        for key, ips in (("externalIPs", svc.external_ips), ("loadBalancerIPs", svc.load_balancer_ips)):
            for j, ip in enumerate(ips):
                _ip(f"services[{i}].{key}[{j}]", ip)
    for svc_name, endpoints in sc.given_endpoints.items():
        for ep in endpoints:
            ip, colon, port = ep.address.rpartition(":")
            _ip(f"given_endpoints.{svc_name}", ip if colon else ep.address)
            if colon and not (port.isascii() and port.isdigit() and 1 <= int(port[:6]) <= MAX_PORT):
                raise fail(f"given_endpoints.{svc_name}", f"endpoint port must be 1-{MAX_PORT}, got {shown(port)}")


def _validate_given(sc: Scenario, services: set[str]) -> None:
    for svc, endpoints in sc.given_endpoints.items():
        if svc not in services:
            raise fail(f"given_endpoints.{svc}", no_such("service", svc, services))
        for ep in endpoints:
            if ep.pod is None or ep.pod not in sc._pods_by_name:
                raise fail(f"given_endpoints.{svc}", f"endpoint {ep.address} names no pod of the scenario")
            if ep.node_name is not None and ep.node_name not in sc.topology.nodes:
                raise fail(f"given_endpoints.{svc}", f"endpoint {ep.address} is on unknown node {ep.node_name!r}")


def _validate_calls(sc: Scenario) -> None:
    """Every caller and callee a Service of the scenario, every port one of the callee's, and no cycle."""
    services = sc._services_by_name
    known = f"the Services are {sorted(services)}"
    for caller, calls in sc.call_graph.services.items():
        where = f"services.{caller}"
        if caller not in services:
            raise fail(where, f"no service named {caller!r}; {known}")
        for i, stage in enumerate(calls.stages):
            for j, call in enumerate(members(stage)):
                at = f"{where}.calls[{i}]" + (f".parallel[{j}]" if isinstance(stage, Parallel) else "")
                svc = services.get(call.service)
                if svc is None:
                    raise fail(f"{at}.service", f"no service named {call.service!r}; {known}")
                if svc.port_of(call.port) is None:
                    raise fail(f"{at}.port", _no_port(svc, call.port))
    cycle = sc.call_graph.find_cycle()
    if cycle is not None:
        raise fail(f"services.{cycle[0]}.calls", f"the calls form a cycle: {' -> '.join(cycle)}")


def _no_port(svc: Service, port: str) -> str:
    """The problem of a port (a call's or a stream's) that the Service does not have, with the ports it has."""
    named = [p.name or str(p.port) for p in svc.ports]
    return f"service {svc.name!r} has no port {port!r}; it has {named}"


def _validate_event(sc: Scenario, i: int, ev: Event, pods: set[str], services: set[str]) -> None:
    pod_actions = (Action.TERMINATE, Action.READY, Action.UNREADY, Action.ADD)
    if ev.action in pod_actions and ev.pod not in sc._pods_by_name:
        raise fail(f"timeline[{i}].pod", no_such("pod", ev.pod, sc._pods_by_name))
    if ev.action == Action.ADD and ev.pod not in sc.absent:
        raise fail(f"timeline[{i}].pod", f"pod {ev.pod!r} is already present: declare it with present = false")
    if ev.action in (Action.FAIL, Action.RECOVER) and ev.node not in sc.topology.nodes:
        raise fail(f"timeline[{i}].node", f"node {ev.node!r} is not in topology {sc.topology.name!r}")
    if ev.action == Action.UPDATE and ev.service not in services:
        raise fail(f"timeline[{i}].service", no_such("service", ev.service, services))
    if ev.at_s < 0:
        raise fail(f"timeline[{i}].at_s", f"must be >= 0 seconds, got {ev.at_s}")


def _validate_stream(
    sc: Scenario,
    i: int,
    stream: Stream,
    names: set[str],
    services: set[str],
    components: dict[str, dict[int, Endpoint]],
) -> None:
    if stream.client not in names:
        raise fail(f"streams[{i}].client", no_such("pod or external client", stream.client, names, "clients"))
    if stream.service not in services:
        raise fail(f"streams[{i}].service", no_such("service", stream.service, services))
    if stream.requests is None and sc.duration_s is None and not isinstance(stream.workload, Trace):
        raise fail(f"streams[{i}].requests", "give requests, or duration_s for the scenario")
    if stream.requests is not None and stream.requests < 0:
        raise fail(f"streams[{i}].requests", f"must be >= 0, got {stream.requests}")
    svc = sc.service(stream.service)
    if svc.port_of(stream.port) is None:
        raise fail(f"streams[{i}].port", _no_port(svc, stream.port))
    svc = svc.at_port(stream.port)
    external = sc.is_external(stream.client)
    if external and stream.target == Target.CLUSTER_IP:
        raise fail(f"streams[{i}].target", "a client outside the cluster cannot reach a ClusterIP")
    if stream.target == Target.NODE_PORT:
        if svc.node_port == 0:
            raise fail(f"streams[{i}].target", f"service {svc.name!r} has no nodePort")
        if stream.node not in sc.topology.nodes:
            raise fail(f"streams[{i}].node", f"NodePort target needs a node of the topology, got {stream.node!r}")
    if stream.target == Target.EXTERNAL_IP:
        if not svc.external_ips:
            raise fail(f"streams[{i}].target", f"service {svc.name!r} has no externalIPs")
        if external and stream.node not in sc.topology.nodes:
            raise fail(
                f"streams[{i}].node",
                f"an ExternalIP from outside needs the node it is routed to, got {stream.node!r}",
            )
    if stream.target == Target.LOAD_BALANCER and not svc.load_balancer_ips:
        raise fail(f"streams[{i}].target", f"service {svc.name!r} has no loadBalancerIPs")
    if stream.target == Target.LOAD_BALANCER and not lb_nodes(sc, stream):
        raise fail(f"streams[{i}].target", "every node is excluded from external load balancers")
    entries = entry_nodes(sc, stream)
    if (
        stream.requests is None
        and isinstance(stream.workload, ClosedLoop)
        and stream.workload.think.mean_s == 0
        and any(_fails_at_once(stream_route(sc, stream, n)) for n in entries)
    ):
        raise fail(f"streams[{i}].requests", "a closed loop failing at once with no think time never ends")
    origin = sc.origin(stream.client)
    topo = sc.topology
    for entry in entries:
        if not topo.connected(origin, entry):
            raise fail(f"streams[{i}]", f"client {stream.client!r} at {origin!r} has no path to node {entry!r}")
        if stream.service not in components:
            components[stream.service] = _backend_components(sc, stream.service)
        for component, ep in components[stream.service].items():
            if component != topo.component(entry):
                raise fail(
                    f"streams[{i}]",
                    f"client {stream.client!r} on node {entry!r} has no network path to backend "
                    f"{ep.pod!r} on node {ep.node_name!r}",
                )


def _fails_at_once(route: Route) -> bool:
    """Whether a route drops its connections without the client waiting."""
    return bool(route.drop) and not route.drop.client_waits


def _backend_components(sc: Scenario, service: str) -> dict[int, Endpoint]:
    """The network components the Service's endpoints are in, each with its first endpoint (by address)."""
    out: dict[int, Endpoint] = {}
    for ep in sc.control_plane.endpoints(service):
        if ep.node_name:
            out.setdefault(sc.topology.component(ep.node_name), ep)
    return out
