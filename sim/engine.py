"""The only SimPy code: clients, network paths and backend queues. ``run(scenario, seed) -> RunResult``.

A request is a chain of SimPy callbacks rather than a generator process (about 3x faster): send -> (path delay)
-> arrive at the backend pod -> (queue) -> start -> (service time) -> finish -> (path delay back) -> return. Each
step is one ``Timeout`` whose value carries the request, so a request costs four events: the send tick, the trip
out, the service and the trip back. A path's hops are drawn and summed into one delay each way.

Decisions are not made here: routes come from ``Scenario.route`` (the routing layer), precomputed once per
(stream, entry node); pickers and affinity tables are the routing layer's; every draw comes from a ``Streams``
key.
"""

from __future__ import annotations

import itertools
import math
import sys
from array import array
from collections import deque
from collections.abc import Iterator

import numpy as np
import simpy

from sim.cluster import SessionAffinity
from sim.distributions import Sum
from sim.outcomes import DropReason, Outcome
from sim.records import COLUMNS, PICK_AFFINITY, PICK_FRESH, PICK_REUSED, RunResult
from sim.rng import Seed, Streams, blocks
from sim.routing import Affinity, Chooser, ip_key
from sim.scenario import Scenario
from sim.workload import ClosedLoop

_NAN = math.nan
_OK = int(Outcome.OK)
_DROPPED = int(Outcome.DROPPED)
_IN_FLIGHT = int(Outcome.IN_FLIGHT)
EPHEMERAL_PORTS = (32768, 60999)
"""Linux ``net.ipv4.ip_local_port_range``: a new connection's source port, in turn."""


class _Backend:
    """A backend pod: ``capacity`` workers, a FIFO queue, and its own service-time draws (s)."""

    __slots__ = ("busy", "capacity", "queue", "service_times")

    def __init__(self, capacity: int, service_times: Iterator[float]) -> None:
        self.busy = 0
        self.capacity = capacity
        self.queue: deque[tuple[int, _Stream, _Target]] = deque()
        self.service_times = service_times


class _Target:
    """One endpoint as reached through one entry node: backend, pod index, path draws (s) and load slot."""

    __slots__ = ("back", "backend", "load", "out", "pod", "slot")

    def __init__(
        self,
        backend: _Backend,
        pod: int,
        out: Iterator[float],
        back: Iterator[float],
        load: list[int] | None,
        slot: int,
    ) -> None:
        self.backend = backend
        self.pod = pod
        self.out = out
        self.back = back
        self.load = load
        self.slot = slot


class _Entry:
    """A stream's route through one entry node's proxy."""

    __slots__ = ("affinity", "choose", "drop", "fail_after", "node", "preserved", "targets")

    def __init__(self, node: int) -> None:
        self.node = node
        self.targets: tuple[_Target, ...] = ()
        self.choose: Chooser | None = None
        self.affinity: Affinity | None = None
        self.drop = int(DropReason.NONE)
        self.fail_after = 0.0
        self.preserved = 1


class _Stream:
    """A client stream's run-time state."""

    __slots__ = (
        "closed",
        "conn_left",
        "conn_opened",
        "conn_target",
        "entries",
        "gaps",
        "index",
        "ip",
        "lb",
        "max_age_s",
        "max_requests",
        "ports",
        "remaining",
    )

    def __init__(self, index: int) -> None:
        self.index = index
        self.entries: tuple[_Entry, ...] = ()
        self.lb: Iterator[int] | None = None
        self.gaps: Iterator[float] = iter(())
        self.remaining = 0
        self.closed = False
        self.ip = 0
        self.ports = 0
        self.max_requests = 1
        self.max_age_s = math.inf
        self.conn_target: tuple[_Entry, _Target] | None = None
        self.conn_left = 0
        self.conn_opened = 0.0


def _indices(n: int, rng: np.random.Generator, block: int = 4096) -> Iterator[int]:
    while True:
        yield from rng.integers(0, n, size=block).tolist()


class _Run:
    """The state of one run: SimPy environment, record columns, backends and streams."""

    def __init__(self, scenario: Scenario, streams: Streams) -> None:
        self.env = env = simpy.Environment()
        self.scenario = scenario
        topo = scenario.topology
        self.node_names = tuple(topo.nodes)
        self.pod_names = tuple(p.name for p in scenario.pods)
        self.client_names = self.pod_names + tuple(c.name for c in scenario.external_clients)
        node_index = {name: i for i, name in enumerate(self.node_names)}
        pod_index = {name: i for i, name in enumerate(self.pod_names)}
        # Raw columns, appended at send time and filled in as the request moves on.
        self.c_stream = array("i")
        self.c_entry = array("h")
        self.c_endpoint = array("i")
        self.c_pick = array("b")
        self.c_preserved = array("b")
        self.c_sent = array("d")
        self.c_arrived = array("d")
        self.c_started = array("d")
        self.c_finished = array("d")
        self.c_returned = array("d")
        self.c_outcome = array("b")
        self.c_reason = array("b")

        backends: dict[str, _Backend] = {}
        paths: dict[tuple[str, ...], Iterator[float]] = {}
        proxies: dict[tuple[object, ...], tuple[Chooser, list[int] | None, Affinity | None]] = {}

        def path_draws(*vertices: str) -> Iterator[float]:
            """Draws of the delay along consecutive vertices (each leg its own lowest-latency path)."""
            if vertices not in paths:
                legs = tuple(topo.path(a, b).delay for a, b in itertools.pairwise(vertices))
                dist = legs[0] if len(legs) == 1 else Sum(legs)
                paths[vertices] = blocks(dist, streams.generator("network", *vertices))
            return paths[vertices]

        def backend(pod_name: str) -> _Backend:
            if pod_name not in backends:
                pod = scenario.pod(pod_name)
                draws = blocks(pod.service_time, streams.generator("service", pod_name))
                backends[pod_name] = _Backend(pod.concurrency, draws)
            return backends[pod_name]

        self.streams: list[_Stream] = []
        occurrences: dict[tuple[str, str], int] = {}
        for k, spec in enumerate(scenario.streams):
            s = _Stream(k)
            svc = scenario.service(spec.service)
            origin = scenario.origin(spec.client)
            entries = []
            for node in scenario.entry_nodes(spec):
                e = _Entry(node_index[node])
                route = scenario.route(spec, node)
                e.preserved = int(route.source_preserved)
                if not route.endpoints:
                    e.drop = int(route.drop)
                    e.fail_after = spec.connect_timeout_s if route.drop.client_waits else 0.0
                    entries.append(e)
                    continue
                key = (node, spec.service, route.picker, scenario.source(spec).value, route.endpoints)
                if key not in proxies:
                    picker = scenario.picker(route.picker)
                    load = [0] * len(route.endpoints) if picker.needs_load else None
                    rng = streams.generator("route", node, spec.service, route.picker)
                    affinity = (
                        Affinity(svc.session_affinity_timeout_s)
                        if svc.session_affinity == SessionAffinity.CLIENT_IP
                        else None
                    )
                    proxies[key] = (picker.chooser(route.endpoints, rng, load or []), load, affinity)
                e.choose, load, e.affinity = proxies[key]
                hops_out = (origin, node) if origin != node else ()
                e.targets = tuple(
                    _Target(
                        backend(ep.pod or ""),
                        pod_index[ep.pod or ""],
                        path_draws(*hops_out, node, ep.node_name or node)
                        if hops_out
                        else path_draws(node, ep.node_name or node),
                        path_draws(ep.node_name or node, node, origin)
                        if hops_out
                        else path_draws(ep.node_name or node, node),
                        load,
                        slot,
                    )
                    for slot, ep in enumerate(route.endpoints)
                )
                entries.append(e)
            s.entries = tuple(entries)
            if len(entries) > 1:
                s.lb = _indices(len(entries), streams.generator("load-balancer", spec.client, spec.service))
            nth = occurrences.get((spec.client, spec.service), 0)
            occurrences[spec.client, spec.service] = nth + 1
            s.gaps = spec.workload.gaps(streams.generator("arrivals", spec.client, spec.service, nth))
            s.remaining = sys.maxsize if spec.requests is None else spec.requests
            s.closed = isinstance(spec.workload, ClosedLoop)
            s.ip = ip_key(scenario.client_ip(spec.client))
            s.max_requests = spec.connections.max_requests
            s.max_age_s = spec.connections.max_age_s
            self.streams.append(s)
            if s.remaining > 0:
                start = spec.start_s if s.closed else spec.start_s + next(s.gaps, _NAN)
                if not math.isnan(start):
                    env.timeout(start, s).callbacks.append(self._tick)

    # --- the request's life, one callback per step -------------------------------------------------------------

    def _tick(self, ev: simpy.Event) -> None:
        """A stream's send time has come: send, and for open loop schedule the next send."""
        s: _Stream = ev._value
        self._send(s)
        if not s.closed and s.remaining > 0:
            gap = next(s.gaps, None)
            if gap is not None:
                self.env.timeout(gap, s).callbacks.append(self._tick)

    def _send(self, s: _Stream) -> None:
        i = len(self.c_sent)
        now = self.env.now
        s.remaining -= 1
        self.c_stream.append(s.index)
        self.c_sent.append(now)
        self.c_arrived.append(_NAN)
        self.c_started.append(_NAN)
        self.c_finished.append(_NAN)
        self.c_returned.append(_NAN)
        self.c_outcome.append(_IN_FLIGHT)
        self.c_reason.append(0)
        conn = s.conn_target
        if conn is not None and s.conn_left > 0 and now - s.conn_opened < s.max_age_s:
            entry, target = conn
            s.conn_left -= 1
            pick = PICK_REUSED
        else:
            entry = s.entries[next(s.lb)] if s.lb is not None else s.entries[0]
            if entry.choose is None:
                self.c_entry.append(entry.node)
                self.c_endpoint.append(-1)
                self.c_pick.append(PICK_FRESH)
                self.c_preserved.append(entry.preserved)
                self.env.timeout(entry.fail_after, (i, s, entry)).callbacks.append(self._fail)
                return
            pick = PICK_FRESH
            k = -1
            if entry.affinity is not None:
                k = entry.affinity.lookup(s.ip, now)
                if k >= 0:
                    pick = PICK_AFFINITY
            if k < 0:
                s.ports += 1
                k = entry.choose(
                    (s.ip << 16) | (EPHEMERAL_PORTS[0] + s.ports % (EPHEMERAL_PORTS[1] - EPHEMERAL_PORTS[0]))
                )
            if entry.affinity is not None:
                entry.affinity.record(s.ip, k, now)
            target = entry.targets[k]
            if s.max_requests > 1:
                s.conn_target = (entry, target)
                s.conn_left = s.max_requests - 1
                s.conn_opened = now
        if target.load is not None:
            target.load[target.slot] += 1
        self.c_entry.append(entry.node)
        self.c_endpoint.append(target.pod)
        self.c_pick.append(pick)
        self.c_preserved.append(entry.preserved)
        self.env.timeout(next(target.out), (i, s, target)).callbacks.append(self._arrive)

    def _arrive(self, ev: simpy.Event) -> None:
        req = ev._value
        self.c_arrived[req[0]] = self.env.now
        b = req[2].backend
        if b.busy < b.capacity:
            b.busy += 1
            self._start(req, b)
        else:
            b.queue.append(req)

    def _start(self, req: tuple[int, _Stream, _Target], b: _Backend) -> None:
        self.c_started[req[0]] = self.env.now
        self.env.timeout(next(b.service_times), req).callbacks.append(self._finish)

    def _finish(self, ev: simpy.Event) -> None:
        req = ev._value
        target = req[2]
        self.c_finished[req[0]] = self.env.now
        self.env.timeout(next(target.back), req).callbacks.append(self._return)
        b = target.backend
        if b.queue:
            self._start(b.queue.popleft(), b)
        else:
            b.busy -= 1

    def _return(self, ev: simpy.Event) -> None:
        i, s, target = ev._value
        self.c_returned[i] = self.env.now
        self.c_outcome[i] = _OK
        if target.load is not None:
            target.load[target.slot] -= 1
        if s.closed:
            self._again(s)

    def _fail(self, ev: simpy.Event) -> None:
        i, s, entry = ev._value
        self.c_returned[i] = self.env.now
        self.c_outcome[i] = _DROPPED
        self.c_reason[i] = entry.drop
        if s.closed:
            self._again(s)

    def _again(self, s: _Stream) -> None:
        """Closed loop: think, then send the next request if any remain."""
        if s.remaining > 0:
            self.env.timeout(next(s.gaps), s).callbacks.append(self._tick)

    # --- results -------------------------------------------------------------------------------------------------

    def result(self, seed: int) -> RunResult:
        """Freeze the raw columns into a RunResult, deriving client, node, service and hop columns."""
        sc = self.scenario
        node_index = {n: i for i, n in enumerate(self.node_names)}
        pod_node = np.array([node_index[p.node] for p in sc.pods] + [-1], dtype=np.int16)
        client_node = np.array([node_index[p.node] for p in sc.pods] + [-1] * len(sc.external_clients), dtype=np.int16)
        service_index = {n: i for i, n in enumerate(s.name for s in sc.services)}
        client_index = {n: i for i, n in enumerate(self.client_names)}
        stream_client = np.array([client_index[s.client] for s in sc.streams], dtype=np.int32)
        stream_service = np.array([service_index[s.service] for s in sc.streams], dtype=np.int16)

        raw: dict[str, array] = {
            "stream": self.c_stream,
            "entry_node": self.c_entry,
            "endpoint": self.c_endpoint,
            "pick": self.c_pick,
            "source_preserved": self.c_preserved,
            "t_sent": self.c_sent,
            "t_arrived": self.c_arrived,
            "t_started": self.c_started,
            "t_finished": self.c_finished,
            "t_returned": self.c_returned,
            "outcome": self.c_outcome,
            "reason": self.c_reason,
        }
        cols = {name: np.frombuffer(col, dtype=COLUMNS[name]).copy() for name, col in raw.items()}
        stream = cols["stream"]
        cols["client"] = stream_client[stream]
        cols["client_node"] = client_node[cols["client"]]
        cols["service"] = stream_service[stream]
        cols["endpoint_node"] = pod_node[cols["endpoint"]]  # endpoint -1 picks the trailing -1
        cols["hops"] = self._hops(cols)
        ordered = {name: cols[name].astype(dtype, copy=False) for name, dtype in COLUMNS.items()}
        return RunResult(
            sc,
            seed,
            ordered,
            self.node_names,
            self.pod_names,
            tuple(s.name for s in sc.services),
            self.env.now,
            self.client_names,
        )

    def _hops(self, cols: dict[str, np.ndarray]) -> np.ndarray:
        """Links crossed one way: client's vertex -> entry node -> endpoint's node (0 for unrouted requests)."""
        sc = self.scenario
        n = len(self.node_names)
        key = (cols["stream"].astype(np.int64) * (n + 1) + cols["entry_node"]) * (n + 1) + (cols["endpoint_node"] + 1)
        keys, inverse = np.unique(key, return_inverse=True)
        hops = []
        for k in keys.tolist():
            stream, rest = divmod(k, (n + 1) * (n + 1))
            entry, ep = divmod(rest, n + 1)
            if ep == 0:
                hops.append(0)
                continue
            origin = sc.origin(sc.streams[stream].client)
            entry_name, ep_name = self.node_names[entry], self.node_names[ep - 1]
            first = sc.topology.path(origin, entry_name).hops if origin != entry_name else 0
            hops.append(first + sc.topology.path(entry_name, ep_name).hops)
        return np.asarray(hops, dtype=np.int8)[inverse.reshape(-1)] if len(key) else np.zeros(0, np.int8)


def run(scenario: Scenario, seed: Seed) -> RunResult:
    """Simulate ``scenario`` until every stream is done (or ``duration_s`` of simulated time); return its records."""
    streams = Streams(seed)
    state = _Run(scenario, streams)
    state.env.run(until=scenario.duration_s)
    seed_value = seed if isinstance(seed, int) else int(np.asarray(seed.entropy).ravel()[0])
    return state.result(seed_value)
