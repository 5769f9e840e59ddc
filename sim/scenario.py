"""A Scenario: topology, cluster objects, client streams, dataplane; validated when built."""

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
    endpoints_for,
)
from sim.errors import SpecError
from sim.outcomes import DropReason
from sim.routing import (
    DATAPLANES,
    LOCAL_TRAFFIC_DETECTORS,
    NO_BACKEND_RESPONSES,
    PICKERS,
    Dataplane,
    DataplaneConfig,
    Hints,
    Route,
    Source,
    generate_hints,
    local_ready_endpoints,
    source_range_denied,
)
from sim.routing.maglev import TABLE_SIZES, seed_word
from sim.rpc import LINUX_SYN_TIMEOUT_S, Retries
from sim.timeline import Action, ClusterState, DataChange, Event, plan
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
        raise fail(fld, f"must be an IP address, got {text[:80]!r}") from None


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
    def _plan(self) -> tuple[list[tuple[float, ClusterState]], list[DataChange]]:
        return plan(self.pods, self.services, self.absent, self.timeline)

    @property
    def versions(self) -> list[tuple[float, ClusterState]]:
        """Control-plane states over time: (seconds, state), the first at 0 s."""
        return self._plan[0]

    @property
    def data_changes(self) -> list[DataChange]:
        """Data-plane changes over time: pods that stop or start answering."""
        return self._plan[1]

    @cached_property
    def _components_by_service(self) -> dict[str, dict[int, Endpoint]]:
        return {}

    def _backend_components(self, service: str) -> dict[int, Endpoint]:
        """The network components the Service's endpoints are in, each with its first endpoint (by address)."""
        cached = self._components_by_service.get(service)
        if cached is None:
            cached = self._components_by_service[service] = {}
            for ep in self.endpoints(service):
                if ep.node_name:
                    cached.setdefault(self.topology.component(ep.node_name), ep)
        return cached

    @cached_property
    def _hints_by_version(self) -> dict[int, dict[str, Hints]]:
        return {}

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
            if pod == self._pods_by_name[pod.name]:
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

    def service_at(self, name: str, version: int) -> Service:
        """The Service called ``name`` as published in control-plane version ``version``."""
        return self._services_at[version][name]

    @cached_property
    def _services_at(self) -> list[dict[str, Service]]:
        """Per control-plane version, its Services by name (the first of a name): one lookup per stream and entry
        node, not a scan of every Service (10,000 at Kubernetes' limit)."""
        out: list[dict[str, Service]] = []
        for _, state in self.versions:
            by_name: dict[str, Service] = {}
            for svc in state.services:
                by_name.setdefault(svc.name, svc)
            out.append(by_name)
        return out

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

    def endpoints(self, service: str, version: int = 0, port: str = "") -> tuple[Endpoint, ...]:
        """The Service's endpoints with conditions and the controller's hints, sorted by address, for its port
        ``port`` (``Service.port_of``: kube-proxy's ServicePortName; endpoints whose slice lacks it left out)."""
        endpoints = self._hints(version)[service].endpoints
        svc = self.service_at(service, version)
        if not svc.other_ports:
            return endpoints
        name = svc.at_port(port).port_name
        moved = (ep.at_port(name) if ep.ports else ep for ep in endpoints)
        return tuple(sorted((ep for ep in moved if ep is not None), key=lambda ep: ep.address))

    def hints(self, service: str, version: int = 0) -> Hints:
        """The hints the EndpointSlice controller wrote for ``service`` (or why it wrote none)."""
        return self._hints(version)[service]

    def source(self, stream: Stream) -> Source:
        """What kind of connection a stream makes, as the deciding node's proxy sees it (``sim.routing.Source``)."""
        if self.is_external(stream.client):
            return Source.EXTERNAL
        if stream.target == Target.CLUSTER_IP:
            return Source.POD
        remote = stream.target == Target.NODE_PORT and stream.node != self.pod(stream.client).node
        if remote and self.dataplane_impl.remote_node_port_decided_there(self.dataplane):
            return Source.POD_NODE_PORT
        return Source.POD_EXTERNAL

    def lb_nodes(self, stream: Stream) -> tuple[str, ...]:
        """The nodes a load balancer sends the stream's connections to."""
        nodes = tuple(n for n, node in self.nodes.items() if EXCLUDE_FROM_LB not in node.labels and node.ready)
        if stream.health_checks:
            eps = self.endpoints(stream.service)
            if self.service(stream.service).external_traffic_policy == TrafficPolicy.LOCAL:
                healthy = tuple(n for n in nodes if local_ready_endpoints(eps, self.nodes[n]) > 0)
                return healthy or nodes
        return nodes

    def entry_nodes(self, stream: Stream) -> tuple[str, ...]:
        """The nodes whose proxy handles the stream's new connections."""
        if stream.target == Target.LOAD_BALANCER and self.is_external(stream.client):
            return self.lb_nodes(stream)
        if stream.target in (Target.NODE_PORT, Target.EXTERNAL_IP) and self.is_external(stream.client):
            return (stream.node or "",)
        if self.source(stream) == Source.POD_NODE_PORT:  # that node's proxy decides, not the client's
            return (stream.node or "",)
        return (self.pod(stream.client).node,)

    def route_for(self, service: str, node: str, source: Source, version: int = 0, port: str = "") -> Route:
        """What ``route`` gives a stream of ``source`` into ``service``'s port ``port`` entering at ``node``
        (``sim routes``: every node, no stream needed); the same dataplane call."""
        svc = self.service_at(service, version).at_port(port)
        return self.dataplane_impl.route(
            svc, self.endpoints(service, version, port), self.nodes[node], source, self.dataplane
        )

    def route(self, stream: Stream, node: str, version: int = 0) -> Route:
        """Which endpoints a new connection of ``stream`` entering at ``node`` may reach, per the dataplane, as
        that node's proxy sees control-plane version ``version``."""
        route = self.route_for(stream.service, node, self.source(stream), version, stream.port)
        if stream.target == Target.LOAD_BALANCER and source_range_denied(
            self.service_at(stream.service, version), self.client_ip(stream.client), self.dataplane
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
    for i, stream in enumerate(sc.streams):
        _validate_stream(sc, i, stream, names, service_names)


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
        raise fail("dataplane.cluster_cidr", f"{dp.cluster_cidr!r} is not a CIDR (e.g. 10.244.0.0/16)") from None
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
                raise fail(f"given_endpoints.{svc_name}", f"endpoint port must be 1-{MAX_PORT}, got {port[:20]!r}")


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
                    named = [p.name or str(p.port) for p in svc.ports]
                    raise fail(f"{at}.port", f"service {svc.name!r} has no port {call.port!r}; it has {named}")
    cycle = sc.call_graph.find_cycle()
    if cycle is not None:
        raise fail(f"services.{cycle[0]}.calls", f"the calls form a cycle: {' -> '.join(cycle)}")


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


def _validate_stream(sc: Scenario, i: int, stream: Stream, names: set[str], services: set[str]) -> None:
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
        named = [p.name or str(p.port) for p in svc.ports]
        raise fail(f"streams[{i}].port", f"service {svc.name!r} has no port {stream.port!r}; it has {named}")
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
    if stream.target == Target.LOAD_BALANCER and not sc.lb_nodes(stream):
        raise fail(f"streams[{i}].target", "every node is excluded from external load balancers")
    if (
        stream.requests is None
        and isinstance(stream.workload, ClosedLoop)
        and stream.workload.think.mean_s == 0
        and any(sc.route(stream, n).drop and not sc.route(stream, n).drop.client_waits for n in sc.entry_nodes(stream))
    ):
        raise fail(f"streams[{i}].requests", "a closed loop failing at once with no think time never ends")
    origin = sc.origin(stream.client)
    topo = sc.topology
    for entry in sc.entry_nodes(stream):
        if not topo.connected(origin, entry):
            raise fail(f"streams[{i}]", f"client {stream.client!r} at {origin!r} has no path to node {entry!r}")
        for component, ep in sc._backend_components(stream.service).items():
            if component != topo.component(entry):
                raise fail(
                    f"streams[{i}]",
                    f"client {stream.client!r} on node {entry!r} has no network path to backend "
                    f"{ep.pod!r} on node {ep.node_name!r}",
                )
