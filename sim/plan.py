"""What one run needs, compiled once below the engines: ``compile_plan(scenario) -> Plan``; and the one assembly
of a RunResult from an engine's raw columns (``Plan.result``).

Both engines (``sim.engine``, ``sim.solver``) read the plan and never call back into the Scenario while they
run. It owns: the name tables (nodes, pods, clients, Services) and their indices; per stream, its entry nodes,
its draw-stream keys (``StreamPlan.key``), its client's address key and origin; per stream, entry node and
control-plane version, the route the routing layer computes (with its picker object) and what the engines derive
from it (endpoint pods, the wait before a client learns of a drop, the proxy that holds the picker's state, session
affinity); the versions' times and each node's sync lag; the data-plane changes.
"""

from __future__ import annotations

import functools
import math
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

from sim.callgraph import Connection
from sim.cluster import Discipline, Pod, Service, SessionAffinity
from sim.distributions import Dist, Sum
from sim.outcomes import Outcome
from sim.records import COLUMNS, PICK_FRESH, STORED, Columns, RunResult, flag_lookups, monitors, pack_flags
from sim.rng import Seed, Streams, blocks, seed_record
from sim.routing import Chooser, Route, ip_key
from sim.routing.pickers import uniform_indices
from sim.routing.ports import source_ports
from sim.scenario import Connections, Scenario, Stream, entry_nodes, stream_route, stream_source
from sim.timeline import DataChange
from sim.topology import Topology
from sim.workload import ConstantRate, Trace


@dataclass(frozen=True, slots=True)
class RoutePlan:
    """A stream's route through one entry node's proxy as of control-plane ``version``, ready for an engine."""

    node: str
    node_index: int
    version: int
    route: Route
    """The routing layer's answer (``sim.scenario.stream_route``): endpoints, picker object, source kept, drop."""
    pods: tuple[int, ...]
    """Pod index (into ``Plan.pod_names``) of each endpoint of the route."""
    endpoint_nodes: tuple[str, ...]
    """Each endpoint's node (the entry node where an endpoint names none)."""
    fail_after_s: float
    """Seconds a client waits to learn that the route drops its connection (0: refused at once)."""
    proxy: tuple[str, str, str, str]
    """(node, Service, picker name, source): the proxy whose picker keeps state, and its ``("route", ...)`` key."""
    affinity_timeout_s: float | None
    """ClientIP session affinity's timeout (s) where the Service (as of ``version``) has it, else None."""

    @property
    def proxy_key(self) -> tuple[object, ...]:
        """Routes with this key share one chooser (one proxy's state): its proxy and its endpoints' addresses."""
        return (*self.proxy, tuple(ep.address for ep in self.route.endpoints))


@dataclass(frozen=True, slots=True)
class StreamPlan:
    """One client stream as an engine needs it."""

    index: int
    spec: Stream
    nth: int
    """How many earlier streams have this stream's (client, Service): the last part of its draw keys."""
    entries: tuple[str, ...]
    """The nodes whose proxy decides its new connections (more than one: a load balancer picks uniformly)."""
    ip: int
    """``sim.routing.ip_key`` of the client's address: the high part of every flow."""
    origin: str
    """The topology vertex its packets start from."""
    routes: tuple[tuple[RoutePlan, ...], ...]
    """``routes[version][i]``: its route through ``entries[i]`` as of control-plane ``version``."""
    call: bool = False
    """A call stream (``call_streams``): a pod's calls to a Service, sent when its requests' call stages run."""

    def key(self, purpose: str) -> tuple[str | int, ...]:
        """The ``Streams`` key of this stream's draws for ``purpose`` (arrivals, ports, load-balancer, retries)."""
        return (purpose, self.spec.client, self.spec.service, self.nth)


@dataclass(frozen=True, eq=False)
class Plan:
    """Everything a run reads, compiled from its Scenario (``compile_plan``)."""

    scenario: Scenario
    topology: Topology
    node_names: tuple[str, ...]
    pod_names: tuple[str, ...]
    client_names: tuple[str, ...]
    service_names: tuple[str, ...]
    node_index: dict[str, int]
    pod_index: dict[str, int]
    pods: tuple[Pod, ...]
    streams: tuple[StreamPlan, ...]
    version_times_s: tuple[float, ...]
    """When each control-plane version is published (s); version 0 at 0 s."""
    sync_lag_s: tuple[float, ...]
    """Per node (aligned with ``node_names``), seconds from a publication to its proxy applying it."""
    data_changes: tuple[DataChange, ...]
    duration_s: float | None
    warmup_s: float
    call_streams: dict[tuple[int, str, str], int] = field(default_factory=dict)
    """(calling pod index, callee Service) -> index in ``streams`` of that pod's call stream (empty: no calls)."""

    @property
    def dynamic(self) -> bool:
        """Whether the cluster changes during the run (a timeline)."""
        return bool(self.scenario.timeline)

    @property
    def horizon_s(self) -> float:
        """The simulated time (s) at which the run stops (``duration_s``; infinity where none is set)."""
        return math.inf if self.duration_s is None else self.duration_s

    def path_classes(
        self, origin: str, node: str, endpoint_nodes: Sequence[str]
    ) -> list[tuple[tuple[int, ...], tuple[int, ...]]]:
        """Per endpoint node, the delay classes of the legs out, (origin ->) entry ``node`` -> endpoint's node, and
        back: each leg its own lowest-latency path; an external client's packets pass through the entry node."""
        topo = self.topology
        legs = topo.delay_classes_between(node, list(endpoint_nodes))
        if origin == node:
            return [((out,), (back,)) for out, back in legs]
        lead_out, lead_back = topo.delay_class(origin, node), topo.delay_class(node, origin)
        return [((lead_out, out), (back, lead_back)) for out, back in legs]

    def path_dist(self, classes: tuple[int, ...]) -> Dist:
        """The delay (s) along legs of these delay classes: paths whose legs are of the same classes share it."""
        legs = tuple(self.topology.class_delay(c) for c in classes)
        return legs[0] if len(legs) == 1 else Sum(legs)

    def result(
        self, seed: Seed, raw: dict[str, np.ndarray], end_s: float, engine: str = "events",
        parent: np.ndarray | None = None,
    ) -> RunResult:  # fmt: skip
        """The RunResult of a run from an engine's raw columns (stream, request, attempt, version, entry_node,
        endpoint, pick, source_preserved, the five times, outcome, reason, optionally hops; rows in send order)
        and its simulated end (s): computes the hop column unless given, packs pick, source_preserved and reason
        into ``flags`` (``pack_flags``), keeps the ``STORED`` columns in their dtypes (no copy where they have them
        already) with the lookups of the ``DERIVED`` ones (client, client's node, Service, endpoint's node, the
        packed ones), and computes the monitors. Both engines return through here, ``engine``
        naming the way (events, solver, fast); ``parent``: a call graph's span links (``RunResult.parent``)."""
        cols = dict(raw)
        lookups = self.lookups()
        if "hops" not in cols:
            cols["hops"] = self._hops(cols, lookups["endpoint_node"])
        cols["flags"] = pack_flags(cols)
        stored = {name: cols.pop(name).astype(dtype, copy=False) for name, dtype in STORED.items()}
        del cols, raw
        capacities = [p.concurrency for p in self.pods]
        shared = [p.discipline == Discipline.PS for p in self.pods]
        pods = monitors(stored, capacities, self.warmup_s, end_s, shared)
        seed_value = seed_record(seed)  # a SeedSequence's entropy and spawn key: what redoes this run
        return RunResult(
            self.scenario,
            seed_value,
            Columns(stored, lookups),
            self.node_names,
            self.pod_names,
            self.service_names,
            end_s,
            self.client_names,
            pods,
            engine,
            call_streams=tuple(sp.spec for sp in self.streams if sp.call),
            parent=parent,
        )

    def lookups(self) -> dict[str, np.ndarray]:
        """The tables of the ``DERIVED`` columns: per stream its client (into ``client_names``), the client's node
        (-1: an external client) and its Service; per pod its node, then -1 (the node of endpoint -1: none); per
        ``flags`` byte its packed columns (``flag_lookups``)."""
        node_index = self.node_index
        pod_node = [node_index[p.node] for p in self.pods]
        client_node = pod_node + [-1] * (len(self.client_names) - len(self.pods))
        client_index = {n: i for i, n in enumerate(self.client_names)}
        service_index = {n: i for i, n in enumerate(self.service_names)}
        stream_client = [client_index[s.spec.client] for s in self.streams]
        return {
            "client": np.array(stream_client, dtype=COLUMNS["client"]),
            "client_node": np.array([client_node[c] for c in stream_client], dtype=COLUMNS["client_node"]),
            "service": np.array([service_index[s.spec.service] for s in self.streams], dtype=COLUMNS["service"]),
            "endpoint_node": np.array([*pod_node, -1], dtype=COLUMNS["endpoint_node"]),
        } | flag_lookups()

    def _hops(self, cols: dict[str, np.ndarray], pod_node: np.ndarray) -> np.ndarray:
        """Links crossed one way: client's vertex -> entry node -> endpoint's node (0 for unrouted requests), in
        chunks of rows (temporaries of a few MB), from hop tables built a block of rows at a time."""
        names = self.node_names
        row = {origin: i for i, origin in enumerate(dict.fromkeys(s.origin for s in self.streams))}
        origin_of = np.array([row[s.origin] for s in self.streams], dtype=np.int32)
        first = self._hop_table(list(row), names)  # client's vertex x entry node
        second = self._hop_table(names, names)  # entry node x endpoint's node
        stream, entry_node, endpoint = cols["stream"], cols["entry_node"], cols["endpoint"]
        hops = np.empty(len(stream), dtype=COLUMNS["hops"])
        for lo in range(0, len(stream), _CHUNK_ROWS):
            rows = slice(lo, lo + _CHUNK_ROWS)
            entry, ep_node = entry_node[rows], pod_node[endpoint[rows]]
            routed = ep_node >= 0
            both = first[origin_of[stream[rows]], entry] + second[entry, np.where(routed, ep_node, 0)]
            hops[rows] = np.where(routed, both, 0)
        return hops

    def _hop_table(self, srcs: Sequence[str], dsts: Sequence[str]) -> np.ndarray:
        """``Topology.hop_matrix(srcs, dsts)`` in the hop column's dtype (int8: a sum of two entries wraps as the
        column's cast of the int16 sum did), built a block of rows at a time: its temporaries are a block's, not
        several full int16 matrices' (5,000 x 5,000 nodes: 50 MB each; this table 25 MB)."""
        table = np.empty((len(srcs), len(dsts)), dtype=COLUMNS["hops"])
        block = max(1, _CHUNK_ROWS // max(1, len(dsts)))
        for lo in range(0, len(srcs), block):
            table[lo : lo + block] = self.topology.hop_matrix(srcs[lo : lo + block], dsts)
        return table


_CHUNK_ROWS = 1 << 17
"""Rows per chunk where the records are processed in chunks (``Plan._hops``)."""


def stream_bound(spec: Stream, duration_s: float | None) -> int | None:
    """Most requests ``spec`` can send in a run (None: no bound, e.g. Poisson until ``duration_s``)."""
    w = spec.workload
    bounds = [] if spec.requests is None else [spec.requests]
    if isinstance(w, Trace):
        bounds.append(len(w.times_s))
    elif isinstance(w, ConstantRate) and duration_s is not None:
        bounds.append(max(0, math.floor((duration_s - spec.start_s) * w.rate_rps) + 1))
    return min(bounds) if bounds else None


def first_attempts(n: int) -> dict[str, np.ndarray]:
    """The columns of ``n`` first attempts on fresh connections, rows in send order, each its own request (an
    open-loop run without retries or keep-alive, as the event-free solver runs): request, attempt, version, pick."""
    return {
        "request": np.arange(n, dtype=COLUMNS["request"]),
        "attempt": np.zeros(n, dtype=COLUMNS["attempt"]),
        "version": np.zeros(n, dtype=COLUMNS["version"]),
        "pick": np.full(n, PICK_FRESH, dtype=COLUMNS["pick"]),
    }


def clip_to_horizon(cols: dict[str, np.ndarray], horizon_s: float) -> None:
    """The horizon rule, in place: a step at or after ``horizon_s`` (s) has not happened (the event loop stops
    before events at ``duration_s``): its time is NaN; a request whose reply (or refusal, or drop) had not come
    back by then is in flight, with no reason."""
    if horizon_s == math.inf:
        return
    for name in ("t_arrived", "t_started", "t_finished", "t_returned"):
        column = cols[name] = cols[name].astype(COLUMNS[name], copy=False)
        column[column >= horizon_s] = np.nan
    outcome = cols["outcome"] = cols["outcome"].astype(COLUMNS["outcome"], copy=False)
    pending = ((outcome == int(Outcome.OK)) | (outcome == int(Outcome.DROPPED))) & np.isnan(cols["t_returned"])
    outcome[pending] = int(Outcome.IN_FLIGHT)
    cols["reason"][pending] = 0


class Draws:
    """A run's random draws, each kind from its own ``Streams`` key, made once here for every engine that draws
    request by request (the event path, and the event-free solver where it is exact): service times (s) per
    pod, path delays (s) per tuple of legs' delay classes, per stream its source ports, load-balancer picks and
    retries' backoff, per calling Service its draws for calls made with a probability, and per proxy its picker
    (``chooser``). Each is a lazy iterator of blocks (``sim.rng.blocks``); asking twice for a path gives the same
    one."""

    __slots__ = ("_paths", "plan", "rngs")

    def __init__(self, plan: Plan, rngs: Streams) -> None:
        self.plan = plan
        self.rngs = rngs
        self._paths: dict[tuple[int, ...], Iterator[float]] = {}

    def service(self, pod: Pod) -> Iterator[float]:
        """The pod's service times (s), in the order it serves requests."""
        return blocks(pod.service_time, functools.partial(self.rngs.generator, "service", pod.name))

    def path(self, classes: tuple[int, ...]) -> Iterator[float]:
        """Delays (s) along legs of these delay classes; paths of the same classes share one stream of draws."""
        draws = self._paths.get(classes)
        if draws is None:
            dist = self.plan.path_dist(classes)
            draws = blocks(dist, functools.partial(self.rngs.generator, "network", *classes))
            self._paths[classes] = draws
        return draws

    def ports(self, sp: StreamPlan) -> Iterator[int]:
        """The stream's source ports of new connections (``sim.routing.ports``)."""
        return source_ports(functools.partial(self.rngs.generator, *sp.key("ports")))

    def calls(self, service: str) -> Iterator[float]:
        """Uniform draws in [0, 1) deciding the calls of ``service``'s requests made with a probability below 1:
        one per such call per parent request, in the order the calls come due."""
        return blocks(_uniform, functools.partial(self.rngs.generator, "calls", service))

    def chooser(self, rp: RoutePlan, version: int = 0, load: Sequence[int] = ()) -> Chooser:
        """The picker of ``rp``'s proxy over its route's endpoints, drawing from the proxy's own key as of the
        control-plane ``version`` that made it (``load``: its live connection counts, where the picker reads them)."""
        route = rp.route
        return route.picker.chooser(route.endpoints, self.rngs.generator("route", *rp.proxy, version), load)

    def retries(self, sp: StreamPlan) -> Iterator[float]:
        """Uniform draws in [0, 1) scaling the backoff of the stream's retried attempts (full jitter): a client's
        retries (``Stream.retries``) or, on a call stream, its calls' (``Call.retries``)."""
        return blocks(_uniform, functools.partial(self.rngs.generator, *sp.key("retries")))

    def entries(self, sp: StreamPlan) -> Iterator[int] | None:
        """A load balancer's uniform picks of the stream's entry node (None: one entry node, nothing drawn)."""
        if len(sp.entries) < 2:
            return None
        return uniform_indices(len(sp.entries), self.rngs.generator(*sp.key("load-balancer")))


def _uniform(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` uniform draws in [0, 1)."""
    return rng.random(n)


def _route_plan(
    sc: Scenario, spec: Stream, node: str, node_index: int, version: int, pod_index: dict[str, int]
) -> RoutePlan:
    """A stream's route at ``node`` as of ``version``, from the routing layer (``sim.scenario.stream_route``)."""
    route = stream_route(sc, spec, node, version)
    svc = sc.control_plane.service_at(spec.service, version)
    affinity = svc.session_affinity_timeout_s if svc.session_affinity == SessionAffinity.CLIENT_IP else None
    return RoutePlan(
        node=node,
        node_index=node_index,
        version=version,
        route=route,
        pods=tuple(pod_index[ep.pod or ""] for ep in route.endpoints),
        endpoint_nodes=tuple(ep.node_name or node for ep in route.endpoints),
        fail_after_s=spec.connect_timeout_s if route.drop.client_waits else 0.0,
        proxy=(node, _service_port(svc, spec), route.picker.name, stream_source(sc, spec).value),
        affinity_timeout_s=affinity,
    )


def _service_port(svc: Service, spec: Stream) -> str:
    """The proxy's name for the stream's Service port: the Service's name for its first port (as before ports
    were told apart), ``name:port`` for another (each port is its own virtual server to the proxy)."""
    port = svc.at_port(spec.port)
    return spec.service if port.port_name == svc.port_name else f"{spec.service}:{port.port_name or port.port}"


def compile_plan(scenario: Scenario) -> Plan:
    """Everything a run of ``scenario`` reads, computed once: names, streams with their routes for every
    (entry node, control-plane version), version times, sync lags and data-plane changes. A plan is immutable:
    compile it once and hand it to whatever reads it (``sim.facade`` does)."""
    sc = scenario
    node_names = tuple(sc.topology.nodes)
    node_index = {name: i for i, name in enumerate(node_names)}
    pod_names = tuple(p.name for p in sc.pods)
    pod_index = {name: i for i, name in enumerate(pod_names)}
    n_versions = len(sc.control_plane.versions)
    occurrences: dict[tuple[str, str], int] = {}
    streams = []
    for k, spec in enumerate(sc.streams):
        nth = occurrences.get((spec.client, spec.service), 0)
        occurrences[spec.client, spec.service] = nth + 1
        entries = entry_nodes(sc, spec)
        routes = tuple(
            tuple(_route_plan(sc, spec, node, node_index[node], v, pod_index) for node in entries)
            for v in range(n_versions)
        )
        ip, origin = ip_key(sc.client_ip(spec.client)), sc.origin(spec.client)
        streams.append(StreamPlan(k, spec, nth, entries, ip, origin, routes))
    call_streams = _call_streams(sc, streams, occurrences, node_index, pod_index)
    return Plan(
        scenario=sc,
        topology=sc.topology,
        node_names=node_names,
        pod_names=pod_names,
        client_names=pod_names + tuple(c.name for c in sc.external_clients),
        service_names=tuple(s.name for s in sc.services),
        node_index=node_index,
        pod_index=pod_index,
        pods=sc.pods,
        streams=tuple(streams),
        version_times_s=tuple(at_s for at_s, _ in sc.control_plane.versions),
        sync_lag_s=tuple(sc.sync.lag(n) for n in node_names),
        data_changes=tuple(sc.control_plane.data_changes),
        duration_s=sc.duration_s,
        warmup_s=sc.warmup_s,
        call_streams=call_streams,
    )


ONE_CONNECTION = Connections(max_requests=sys.maxsize)
"""A call stream's connection under ``Connection.PER_POD``: opened by the first call and never closed (a gRPC
channel's HTTP/2 connection, which its calls share as streams)."""


def _call_streams(
    sc: Scenario,
    streams: list[StreamPlan],
    occurrences: dict[tuple[str, str], int],
    node_index: dict[str, int],
    pod_index: dict[str, int],
) -> dict[tuple[int, str, str], int]:
    """Per pod that serves a calling Service (an endpoint of it at any version) and Service port it calls, a call
    stream appended to ``streams``: the pod as client, no sends of its own, its routes from the routing layer
    exactly as a client stream's (the pod's node's proxy, per version); where a call to it says ``per_pod``, one
    kept connection (``ONE_CONNECTION``: the stream's keep-alive, so every call after the first rides the first
    one's pick). Returns (pod index, callee, port) -> index."""
    out: dict[tuple[int, str, str], int] = {}
    graph = sc.call_graph
    for caller in graph.services:
        callees = {(c.service, c.port): c for c in graph.of(caller).calls()}
        cp = sc.control_plane
        per_pod = {(c.service, c.port) for c in graph.of(caller).calls() if c.connection == Connection.PER_POD}
        callers = {ep.pod for v in range(len(cp.versions)) for ep in cp.endpoints(caller, v) if ep.pod}
        for pod in sorted(callers, key=pod_index.__getitem__):
            for (callee, port), call in callees.items():
                if (pod_index[pod], callee, port) in out:
                    continue
                spec = Stream(
                    pod, callee, ConstantRate(1.0), requests=0, connect_timeout_s=call.connect_timeout_s, port=port,
                    connections=ONE_CONNECTION if (callee, port) in per_pod else Connections(),
                )  # fmt: skip
                nth = occurrences.get((pod, callee), 0)
                occurrences[pod, callee] = nth + 1
                entries = entry_nodes(sc, spec)
                routes = tuple(
                    tuple(_route_plan(sc, spec, n, node_index[n], v, pod_index) for n in entries)
                    for v in range(len(sc.control_plane.versions))
                )
                ip, origin = ip_key(sc.client_ip(pod)), sc.origin(pod)
                out[pod_index[pod], callee, port] = len(streams)
                streams.append(StreamPlan(len(streams), spec, nth, entries, ip, origin, routes, call=True))
    return out
