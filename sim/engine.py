"""The only SimPy code: clients, network paths and backend queues. ``run(scenario, seed) -> RunResult``.

A request is a chain of SimPy callbacks rather than a generator process (about 3x faster): send -> (path delay)
-> arrive at the backend pod -> (queue) -> start -> (service time) -> finish -> (path delay back) -> return. Each
step is one ``Timeout`` whose value carries the request, so a request costs four events: the send tick, the trip
out, the service and the trip back. A path's hops are drawn and summed into one delay each way.

Decisions are not made here: routing comes from ``Scenario.route`` (the routing layer), precomputed once per
(service, client node); every draw comes from a ``Streams`` key.
"""

from __future__ import annotations

import math
import sys
from array import array
from collections import deque
from collections.abc import Iterator

import numpy as np
import simpy

from sim.outcomes import DropReason, Outcome
from sim.records import COLUMNS, RunResult
from sim.rng import Seed, Streams, blocks
from sim.routing import Chooser
from sim.scenario import Scenario
from sim.workload import ClosedLoop

_NAN = math.nan
_OK = int(Outcome.OK)
_DROPPED = int(Outcome.DROPPED)
_IN_FLIGHT = int(Outcome.IN_FLIGHT)


class _Backend:
    """A backend pod: ``capacity`` workers, a FIFO queue, and its own service-time draws (s)."""

    __slots__ = ("busy", "capacity", "queue", "service_times")

    def __init__(self, capacity: int, service_times: Iterator[float]) -> None:
        self.busy = 0
        self.capacity = capacity
        self.queue: deque[tuple[int, _Stream, _Target]] = deque()
        self.service_times = service_times


class _Target:
    """One endpoint as seen from one client node: its backend, pod index and the two path-delay draws (s)."""

    __slots__ = ("back", "backend", "out", "pod")

    def __init__(self, backend: _Backend, pod: int, out: Iterator[float], back: Iterator[float]) -> None:
        self.backend = backend
        self.pod = pod
        self.out = out
        self.back = back


class _Stream:
    """A client stream's run-time state."""

    __slots__ = ("choose", "closed", "drop", "fail_after", "flow", "gaps", "index", "remaining", "targets")

    def __init__(self, index: int) -> None:
        self.index = index
        self.targets: tuple[_Target, ...] = ()
        self.choose: Chooser | None = None
        self.drop = int(DropReason.NONE)
        self.fail_after = 0.0
        self.gaps: Iterator[float] = iter(())
        self.remaining = 0
        self.closed = False
        self.flow = 0


class _Run:
    """The state of one run: SimPy environment, record columns, backends and streams."""

    def __init__(self, scenario: Scenario, streams: Streams) -> None:
        self.env = env = simpy.Environment()
        self.scenario = scenario
        topo = scenario.topology
        self.node_names = tuple(topo.nodes)
        self.pod_names = tuple(p.name for p in scenario.pods)
        self.service_names = tuple(s.name for s in scenario.services)
        pod_index = {name: i for i, name in enumerate(self.pod_names)}
        # Raw columns, appended at send time and filled in as the request moves on.
        self.c_stream = array("i")
        self.c_endpoint = array("i")
        self.c_sent = array("d")
        self.c_arrived = array("d")
        self.c_started = array("d")
        self.c_finished = array("d")
        self.c_returned = array("d")
        self.c_outcome = array("b")
        self.c_reason = array("b")

        backends: dict[str, _Backend] = {}
        paths: dict[tuple[str, str], Iterator[float]] = {}
        choosers: dict[tuple[str, str], Chooser] = {}
        picker = scenario.picker_impl

        def path_draws(src: str, dst: str) -> Iterator[float]:
            if (src, dst) not in paths:
                paths[src, dst] = blocks(topo.path(src, dst).delay, streams.generator("network", src, dst))
            return paths[src, dst]

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
            node = scenario.pod(spec.client).node
            route = scenario.route(spec.service, node)
            if route.endpoints:
                key = (node, spec.service)
                if key not in choosers:
                    choosers[key] = picker.chooser(route.endpoints, streams.generator("route", node, spec.service))
                s.choose = choosers[key]
                s.targets = tuple(
                    _Target(
                        backend(ep.pod or ""),
                        pod_index[ep.pod or ""],
                        path_draws(node, ep.node_name or node),
                        path_draws(ep.node_name or node, node),
                    )
                    for ep in route.endpoints
                )
            else:
                s.drop = int(route.drop)
                s.fail_after = spec.connect_timeout_s if route.drop.client_waits else 0.0
            nth = occurrences.get((spec.client, spec.service), 0)
            occurrences[spec.client, spec.service] = nth + 1
            s.gaps = spec.workload.gaps(streams.generator("arrivals", spec.client, spec.service, nth))
            s.remaining = sys.maxsize if spec.requests is None else spec.requests
            s.closed = isinstance(spec.workload, ClosedLoop)
            s.flow = pod_index[spec.client] << 20
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
        s.remaining -= 1
        self.c_stream.append(s.index)
        self.c_sent.append(self.env.now)
        self.c_arrived.append(_NAN)
        self.c_started.append(_NAN)
        self.c_finished.append(_NAN)
        self.c_returned.append(_NAN)
        self.c_outcome.append(_IN_FLIGHT)
        self.c_reason.append(0)
        if s.choose is None:
            self.c_endpoint.append(-1)
            self.env.timeout(s.fail_after, (i, s, None)).callbacks.append(self._fail)
            return
        target = s.targets[s.choose(s.flow)]
        s.flow += 1
        self.c_endpoint.append(target.pod)
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
        i, s, _ = ev._value
        self.c_returned[i] = self.env.now
        self.c_outcome[i] = _OK
        if s.closed:
            self._again(s)

    def _fail(self, ev: simpy.Event) -> None:
        i, s, _ = ev._value
        self.c_returned[i] = self.env.now
        self.c_outcome[i] = _DROPPED
        self.c_reason[i] = s.drop
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
        service_index = {n: i for i, n in enumerate(self.service_names)}
        pod_index = {n: i for i, n in enumerate(self.pod_names)}
        stream_client = np.array([pod_index[s.client] for s in sc.streams], dtype=np.int32)
        stream_service = np.array([service_index[s.service] for s in sc.streams], dtype=np.int16)

        raw: dict[str, array] = {
            "stream": self.c_stream,
            "endpoint": self.c_endpoint,
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
        cols["client_node"] = pod_node[cols["client"]]
        cols["service"] = stream_service[stream]
        cols["endpoint_node"] = pod_node[cols["endpoint"]]  # endpoint -1 picks the trailing -1
        n_nodes = len(self.node_names)
        pair = cols["client_node"].astype(np.int64) * (n_nodes + 1) + cols["endpoint_node"]
        pairs, inverse = np.unique(pair, return_inverse=True)
        pair_hops = np.array(
            [
                sc.topology.path(self.node_names[p // (n_nodes + 1)], self.node_names[p % (n_nodes + 1)]).hops
                if p % (n_nodes + 1) < n_nodes
                else 0
                for p in pairs.tolist()
            ],
            dtype=np.int8,
        )
        cols["hops"] = pair_hops[inverse.reshape(-1)] if len(pair) else np.zeros(0, np.int8)
        ordered = {name: cols[name].astype(dtype, copy=False) for name, dtype in COLUMNS.items()}
        return RunResult(sc, seed, ordered, self.node_names, self.pod_names, self.service_names, self.env.now)


def run(scenario: Scenario, seed: Seed) -> RunResult:
    """Simulate ``scenario`` until every stream is done (or ``duration_s`` of simulated time); return its records."""
    streams = Streams(seed)
    state = _Run(scenario, streams)
    state.env.run(until=scenario.duration_s)
    seed_value = seed if isinstance(seed, int) else int(np.asarray(seed.entropy).ravel()[0])
    return state.result(seed_value)
