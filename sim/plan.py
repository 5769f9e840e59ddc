"""What one run needs, compiled once below the engines: ``compile_plan(scenario) -> Plan``; and the one assembly
of a RunResult from an engine's raw columns (``Plan.result``).

Both engines (``sim.engine``, ``sim.fastpath``) read the plan and never call back into the Scenario while they
run. It owns: the name tables (nodes, pods, clients, Services) and their indices; per stream, its entry nodes,
its draw-stream keys (``StreamPlan.key``), its client's address key and origin; per stream, entry node and
control-plane version, the route the routing layer computes (with its picker object) and what the engines derive
from it (endpoint pods, the wait before a client learns of a drop, the proxy that holds the picker's state, session
affinity); the versions' times and each node's sync lag; the data-plane changes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from sim.cluster import Discipline, Pod, Service, SessionAffinity
from sim.records import COLUMNS, STORED, Columns, RunResult, monitors
from sim.rng import Seed, seed_record
from sim.routing import Route, ip_key
from sim.scenario import Scenario, Stream
from sim.timeline import DataChange
from sim.topology import Topology


@dataclass(frozen=True, slots=True)
class RoutePlan:
    """A stream's route through one entry node's proxy as of control-plane ``version``, ready for an engine."""

    node: str
    node_index: int
    version: int
    route: Route
    """The routing layer's answer (``Scenario.route``): endpoints, picker object, source kept, drop."""
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

    @property
    def dynamic(self) -> bool:
        """Whether the cluster changes during the run (a timeline)."""
        return bool(self.scenario.timeline)

    def result(self, seed: Seed, raw: dict[str, np.ndarray], end_s: float) -> RunResult:
        """The RunResult of a run from an engine's raw columns (stream, request, attempt, version, entry_node,
        endpoint, pick, source_preserved, the five times, outcome, reason, optionally hops; rows in send order)
        and its simulated end (s): computes the hop column unless given, keeps the ``STORED`` columns in their
        dtypes (no copy where they have them already) with the lookups of the ``DERIVED`` ones (client, client's
        node, Service, endpoint's node), and computes the monitors. Both engines return through here."""
        cols = dict(raw)
        lookups = self.lookups()
        if "hops" not in cols:
            cols["hops"] = self._hops(cols, lookups["endpoint_node"])
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
        )

    def lookups(self) -> dict[str, np.ndarray]:
        """The tables of the ``DERIVED`` columns: per stream its client (into ``client_names``), the client's node
        (-1: an external client) and its Service; per pod its node, then -1 (the node of endpoint -1: none)."""
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
        }

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


def _route_plan(
    sc: Scenario, spec: Stream, node: str, node_index: int, version: int, pod_index: dict[str, int]
) -> RoutePlan:
    """A stream's route at ``node`` as of ``version``, from the routing layer (``Scenario.route``)."""
    route = sc.route(spec, node, version)
    svc = sc.service_at(spec.service, version)
    affinity = svc.session_affinity_timeout_s if svc.session_affinity == SessionAffinity.CLIENT_IP else None
    return RoutePlan(
        node=node,
        node_index=node_index,
        version=version,
        route=route,
        pods=tuple(pod_index[ep.pod or ""] for ep in route.endpoints),
        endpoint_nodes=tuple(ep.node_name or node for ep in route.endpoints),
        fail_after_s=spec.connect_timeout_s if route.drop.client_waits else 0.0,
        proxy=(node, _service_port(svc, spec), route.picker.name, sc.source(spec).value),
        affinity_timeout_s=affinity,
    )


def _service_port(svc: Service, spec: Stream) -> str:
    """The proxy's name for the stream's Service port: the Service's name for its first port (as before ports
    were told apart), ``name:port`` for another (each port is its own virtual server to the proxy)."""
    port = svc.at_port(spec.port)
    return spec.service if port.port_name == svc.port_name else f"{spec.service}:{port.port_name or port.port}"


_LAST: list[Plan] = []
"""The latest plan compiled: ``fast_path_problem`` and then ``run_fast`` (or ``run``) on one scenario compile once."""


def compile_plan(scenario: Scenario) -> Plan:
    """Everything a run of ``scenario`` reads, computed once: names, streams with their routes for every
    (entry node, control-plane version), version times, sync lags and data-plane changes. A plan is immutable;
    the latest one is kept, so asking again for the same scenario object returns it."""
    last = next(iter(_LAST), None)  # read once: another thread may replace it
    if last is not None and last.scenario is scenario:
        return last
    plan = _compile(scenario)
    _LAST[:] = [plan]
    return plan


def _compile(scenario: Scenario) -> Plan:
    """``compile_plan`` without the cache."""
    sc = scenario
    node_names = tuple(sc.topology.nodes)
    node_index = {name: i for i, name in enumerate(node_names)}
    pod_names = tuple(p.name for p in sc.pods)
    pod_index = {name: i for i, name in enumerate(pod_names)}
    n_versions = len(sc.versions)
    occurrences: dict[tuple[str, str], int] = {}
    streams = []
    for k, spec in enumerate(sc.streams):
        nth = occurrences.get((spec.client, spec.service), 0)
        occurrences[spec.client, spec.service] = nth + 1
        entries = sc.entry_nodes(spec)
        routes = tuple(
            tuple(_route_plan(sc, spec, node, node_index[node], v, pod_index) for node in entries)
            for v in range(n_versions)
        )
        ip, origin = ip_key(sc.client_ip(spec.client)), sc.origin(spec.client)
        streams.append(StreamPlan(k, spec, nth, entries, ip, origin, routes))
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
        version_times_s=tuple(at_s for at_s, _ in sc.versions),
        sync_lag_s=tuple(sc.sync.lag(n) for n in node_names),
        data_changes=tuple(sc.data_changes),
        duration_s=sc.duration_s,
        warmup_s=sc.warmup_s,
    )
