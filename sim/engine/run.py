"""The event path's run: ``Run`` holds one run's SimPy environment, records, backends, proxies and clients, and a
request's life as one callback per step (send, arrive, reply, return or fail, retry, think).

The callbacks read ``env._now`` and ``event._value`` (SimPy's own slots) rather than the ``now`` and ``value``
properties: a property is a Python call, paid on every event. Measured on W3 (benchmarks/run.py's closed loop,
48,000 requests, medians of 5 interleaved rounds, twice; before the lane, ``sim.engine.lane``): with the
properties instead, the event path ran at 0.29-0.35x the minimal callback model, against 0.40-0.41x with the
slots.
"""

from __future__ import annotations

import contextlib
import gc
import math
import sys
from collections.abc import Callable, Iterator

import numpy as np
import simpy

from sim.cluster import Discipline
from sim.distributions import Constant
from sim.engine.backends import Backend, ComputedFifo, EventFifo, Request, Shared
from sim.engine.calls import CallingFifo, CallingShared, Calls, Program, programs, sync_pods
from sim.engine.lane import lane
from sim.engine.proxies import Entry, Proxies, Stream, Target
from sim.engine.records import (
    DROPPED,
    IN_FLIGHT,
    NAN,
    OK,
    REAL_SERVER_DELETED,
    RETURNED,
    TIMEOUT,
    Records,
    schedule,
)
from sim.outcomes import DropReason
from sim.plan import Draws, Plan, StreamPlan, clip_to_horizon, compile_plan
from sim.records import PICK_AFFINITY, PICK_FRESH, PICK_REUSED, RunResult
from sim.rng import Seed, Streams
from sim.rpc import Retries
from sim.scenario import Scenario
from sim.workload import ClosedLoop, send_times, time_order

LINUX_TCP_RTO_MIN_S = 0.2
"""Linux ``TCP_RTO_MIN``: the earliest a retransmission (and the reset it draws) can come."""
LINUX_TCP_RETRIES2_S = 924.6
"""Linux gives up on an established connection whose peer vanished after ~15 retransmissions (tcp_retries2=15)."""


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """Python's cyclic garbage collector off for the block (if it was on): building many objects that all live
    on otherwise triggers full collections that walk every one of them, about a third of a large setup's time."""
    was_on = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_on:
            gc.enable()


def _backends(run: Run, plan: Plan, draws: Draws, shortcuts: bool) -> list[Backend]:
    """One backend per pod, of its discipline, with its service-time draws: a FIFO pod computed on arrival
    (the shortcut) where the cluster does not change, else one event per step; a FIFO pod serving a Service
    with sync calls holds its worker through them (``CallingFifo``)."""
    absent = plan.scenario.absent
    backends: list[Backend] = []
    holding = sync_pods(plan) if plan.call_streams else set()
    for i, pod in enumerate(plan.pods):
        kind: type[Backend] = EventFifo
        if pod.discipline == Discipline.PS:
            kind = CallingShared if i in holding else Shared
        elif i in holding:
            kind = CallingFifo
        elif shortcuts and not plan.dynamic:
            kind = ComputedFifo
        b = kind(run, pod.concurrency, pod.queue_limit, draws.service(pod))
        b.alive = pod.name not in absent
        backends.append(b)
    return backends


def _stream(sp: StreamPlan, proxies: Proxies, draws: Draws, shortcuts: bool, progs: dict[str, Program]) -> Stream:
    """A stream's run-time state: its entries (routes as of version 0), draws and options; where it is a call
    stream or its Service makes calls, no shortcut past its reply."""
    spec = sp.spec
    s = Stream(sp.index)
    s.program = progs.get(spec.service)
    s.is_call = sp.call
    shortcuts = shortcuts and not sp.call
    s.entries = proxies.entries(sp)
    s.lb = draws.entries(sp)
    s.ports = draws.ports(sp)
    s.remaining = sys.maxsize if spec.requests is None else spec.requests
    s.closed = isinstance(spec.workload, ClosedLoop)
    s.think_zero = s.closed and spec.workload.think == Constant(0.0)  # type: ignore[union-attr]
    s.ip = sp.ip
    s.max_requests = spec.connections.max_requests
    s.max_age_s = spec.connections.max_age_s
    s.connect_timeout_s = spec.connect_timeout_s
    s.timeout_s = spec.timeout_s
    s.passive = shortcuts and not s.closed and spec.timeout_s is None
    loads = any(rp.route.picker.needs_load for routes in sp.routes for rp in routes if rp.route.endpoints)
    s.fold = shortcuts and s.closed and spec.timeout_s is None and not loads
    s.retries = spec.retries
    if s.retries.attempts or s.is_call:  # a call stream's calls may be retried (``Calls.returned``)
        s.backoff = draws.retries(sp)
    return s


def _merge(merged: list[tuple[np.ndarray, int]]) -> Iterator[tuple[float, int]]:
    """The open-loop streams' send times (s, each stream's array with its index) as one time-ordered schedule of
    (time, stream) pairs, equal times in stream order, as the streams' own ticks would go (``schedule``)."""
    if not merged:
        return iter(())
    at = np.concatenate([times for times, _ in merged])
    who = np.concatenate([np.full(len(times), k, dtype=np.int32) for times, k in merged])
    merged.clear()  # the streams' own arrays, merged now
    return schedule(at, who, time_order(at))


def _affinity_target(s: Stream, entry: Entry, now: float) -> tuple[Target, int]:
    """ClientIP session affinity: the endpoint the client's address last reached (if it is still in the
    route and not expired), else the picker's; either way, remembered now."""
    affinity = entry.affinity
    assert affinity is not None
    k = entry.slot_of.get(affinity.lookup(s.ip, now), -1)
    pick = PICK_AFFINITY if k >= 0 else PICK_FRESH
    if k < 0:
        k = entry.choose((s.ip << 16) | next(s.ports))  # type: ignore[misc]
    target = entry.targets[k]
    affinity.record(s.ip, target.pod, now)
    return target, pick


def _schedule_sends(run: Run, draws: Draws, shortcuts: bool) -> None:
    """Each stream's first send scheduled; with the shortcuts, in a cluster that does not change, open-loop
    sends (which nothing in the system can move) are one time-ordered schedule, one pending event at a time
    instead of one per stream (a smaller heap to push and pop). (In a changing cluster a send and a proxy
    update can fall on the same instant, where SimPy's order is the order of scheduling, which one schedule
    would change.)"""
    plan, env = run.plan, run.env
    merged: list[tuple[np.ndarray, int]] = []  # open-loop send times (s) per stream, with the shortcuts
    for sp, s in zip(plan.streams, run.streams, strict=True):
        spec = sp.spec
        arrivals = draws.rngs.generator(*sp.key("arrivals"))
        if shortcuts and not s.closed and not run.dynamic:
            gaps = spec.workload.gap_blocks(arrivals)  # type: ignore[union-attr]
            merged.append((send_times(gaps, spec.start_s, spec.requests, plan.duration_s), sp.index))
            continue
        s.gaps = spec.workload.gaps(arrivals)
        if s.remaining > 0:
            start = spec.start_s if s.closed else spec.start_s + next(s.gaps, NAN)
            if not math.isnan(start):
                env.timeout(start, s).callbacks.append(run.tick)
    run.sends = _merge(merged)
    first = next(run.sends, None)
    if first is not None:
        env.timeout(first[0], first).callbacks.append(run.tick_schedule)


class Run:
    """The state of one run on events: SimPy environment, record columns, backends, proxies and streams."""

    def __init__(self, plan: Plan, streams: Streams, shortcuts: bool = True) -> None:
        """The run's state, ready to run (``benchmarks/scale.py`` times this setup: backends, routes and the send
        schedule)."""
        with _gc_paused():  # a large cluster builds ~10^6 long-lived objects: no collection passes over them
            self._setup(plan, streams, shortcuts)

    def _setup(self, plan: Plan, streams: Streams, shortcuts: bool) -> None:
        """Backends, proxies and routes, streams and their first sends, control-plane and data-plane changes."""
        self.env = simpy.Environment()
        self.plan = plan
        self.dynamic = plan.dynamic
        self.records = Records()
        # the records' arrays, for the two inlined writes (_send, reply); replaced only when the run is over
        self._times, self._ints, self._small = self.records.times, self.records.ints, self.records.small
        self.sends: Iterator[tuple[float, int]] = iter(())
        draws = Draws(plan, streams)
        self.backends = _backends(self, plan, draws, shortcuts)
        self.proxies = Proxies(plan, draws, self.backends)
        progs = programs(plan, draws) if plan.call_streams else {}
        self.streams = [_stream(sp, self.proxies, draws, shortcuts, progs) for sp in plan.streams]
        self.calls: Calls | None = None
        if plan.call_streams:  # every reply past the calls; no stream on the lane (it serves in its own callback)
            self.calls = Calls(self, plan)
            for b in self.backends:
                b.reply = self.calls.reply_or_call
        _schedule_sends(self, draws, shortcuts)
        for s in self.streams:
            s.resend = (None if self.calls else lane(self, s)) or self._send_next
        self._setup_changes()

    def _setup_changes(self) -> None:
        """Each control-plane version reaches each node's proxy after its lag; data-plane changes at their time."""
        plan, env = self.plan, self.env
        for version, at_s in enumerate(plan.version_times_s[1:], start=1):
            for node, lag_s in enumerate(plan.sync_lag_s):
                env.timeout(at_s + lag_s, (node, version)).callbacks.append(self.proxies.sync)
        for change in plan.data_changes:
            env.timeout(change.at_s, change).callbacks.append(self._data_change)

    def _data_change(self, ev: simpy.Event) -> None:
        """Pods stop answering (deleted, or their node died) or start (added, node back)."""
        change = ev._value
        now = self.env.now
        reason = DropReason.NODE_FAILED if change.node_failed else DropReason.BACKEND_GONE
        pod_index = self.plan.pod_index
        for name in sorted(change.stop):
            b = self.backends[pod_index[name]]
            if not b.alive:
                continue
            doomed = b.stop()
            for req in doomed:
                self.records.finished(req.base, now)  # the work ends here, unfinished
            if self.calls is not None:  # async requests waiting for their calls: own work done, reply not sent
                doomed += self.calls.stop(pod_index[name])
            for req in doomed:  # a dead node says nothing (the client's TCP gives up); a killed pod's reset travels
                self.fail_after(LINUX_TCP_RETRIES2_S if reason == DropReason.NODE_FAILED else req.back, req, reason)
        for name in sorted(change.start):
            self.backends[pod_index[name]].alive = True

    # --- the request's life, one callback per step -------------------------------------------------------------

    def tick(self, ev: simpy.Event) -> None:
        """A stream's send time has come: send, and for open loop schedule the next send."""
        s: Stream = ev._value
        s.remaining -= 1
        self.send(s, -1, 0)
        if not s.closed and s.remaining > 0:
            gap = next(s.gaps, None)
            if gap is not None:
                self.env.timeout(gap, s).callbacks.append(self.tick)

    def tick_schedule(self, ev: simpy.Event) -> None:
        """The next open-loop send of the merged schedule: send it, and schedule the one after."""
        self.send(self.streams[ev._value[1]], -1, 0)
        after = next(self.sends, None)
        if after is not None:
            self.env.timeout(after[0] - self.env._now, after).callbacks.append(self.tick_schedule)

    def send(self, s: Stream, request: int, attempt: int) -> Request:
        """Open (or reuse) a connection and send one attempt now; ``request`` is the first attempt's row, or -1.
        Returns the attempt."""
        now = self.env._now
        conn = s.conn_target
        if conn is None or s.conn_left <= 0 or now - s.conn_opened >= s.max_age_s:  # a new connection
            entry = s.entries[0] if s.lb is None else s.entries[next(s.lb)]
            choose = entry.choose
            if choose is None:
                return self.unrouted(s, entry, request, attempt, PICK_FRESH, entry.fail_after, entry.drop)
            if entry.affinity is None:
                target, pick = entry.targets[choose((s.ip << 16) | next(s.ports))], PICK_FRESH
            else:
                target, pick = _affinity_target(s, entry, now)
            if s.max_requests > 1:
                s.conn_target = (entry, target)
                s.conn_left = s.max_requests - 1
                s.conn_opened = now
        else:
            entry, target = conn
            if entry.expire is not None and target.pod not in entry.expire:  # its real server was deleted
                s.conn_target = None
                return self.unrouted(s, entry, request, attempt, PICK_REUSED, LINUX_TCP_RTO_MIN_S, REAL_SERVER_DELETED)
            s.conn_left -= 1
            pick = PICK_REUSED
        if target.load is not None:
            target.load[target.slot] += 1
        times = self._times  # records.open, inlined: the write every request makes
        base = len(times)
        times.extend((now, NAN, NAN, NAN, NAN))
        self._ints.extend((s.index, base // 5 if request < 0 else request, target.pod, entry.node, entry.version))
        self._small.extend((attempt, pick, entry.preserved, IN_FLIGHT, 0))
        out = next(target.out)
        req = Request(base, s, target, next(target.back))
        self.env.timeout(out, req).callbacks.append(target.arrive)
        if s.timeout_s is not None:
            self.env.timeout(s.timeout_s, req).callbacks.append(self.expire)
        return req

    def unrouted(
        self, s: Stream, entry: Entry, request: int, attempt: int, pick: int, after_s: float, reason: int
    ) -> Request:
        """An attempt that reaches no endpoint: it fails for ``reason`` after ``after_s`` seconds (or its timeout).
        Returns the attempt."""
        now = self.env._now
        base = self.records.open(now, s.index, request, -1, entry.node, entry.version, attempt, pick, entry.preserved)
        req = Request(base, s, None, 0.0)
        req.reason = reason
        self.env.timeout(after_s, req).callbacks.append(self._fail)
        if s.timeout_s is not None:
            self.env.timeout(s.timeout_s, req).callbacks.append(self.expire)
        return req

    def reply(self, req: Request, finished: float) -> None:
        """The reply leaves the pod at ``finished`` (s): written now if nobody waits for it, folded into the next
        send where only that waits for it (``fold``), else an event."""
        target = req.target
        assert target is not None
        s = req.stream
        if s.fold:
            self.fold(req.base, s, req.back, finished)
        elif s.passive and target.load is None:  # past the horizon, result() marks it in flight
            base = req.base
            self._times[base + RETURNED] = finished + req.back  # records.end(base, ..., OK), inlined
            self._small[base + 3] = OK
        else:
            self.env.timeout(finished - self.env._now + req.back, req).callbacks.append(self._return)

    def fold(self, base: int, s: Stream, back: float, finished: float) -> None:
        """A closed-loop reply that only the client's next send waits for (``Stream.fold``: no request timeout,
        no connection counts): the return written now, at the time its event would have had (now plus the same
        delay), and the next send scheduled from here, after the think time: one event fewer per request. With
        no think time the send's event is the return's event, at the same instant and place in SimPy's order; with
        one, its time is the same sum in another order (within rounding: ``tests/conftest.py``
        ``rounding_drift_s``)."""
        delay = finished - self.env._now + back
        self._times[base + RETURNED] = self.env._now + delay  # records.end(base, ..., OK), inlined
        self._small[base + 3] = OK
        if s.remaining > 0:
            s.remaining -= 1
            if not s.think_zero:
                delay += next(s.gaps)
            self.env.timeout(delay, s).callbacks.append(s.resend)

    def _return(self, ev: simpy.Event) -> None:
        """The reply reaches the client (unless it gave up already; the backend did the work anyway)."""
        self._finish(ev._value, OK)

    def fail_after(self, delay: float, req: Request, reason: DropReason) -> None:
        """The attempt fails for ``reason`` after ``delay`` seconds (as the client learns of it)."""
        req.reason = int(reason)
        self.env.timeout(delay, req).callbacks.append(self._fail)

    def _fail(self, ev: simpy.Event) -> None:
        """The client learns that the attempt failed (for the request's ``reason``)."""
        req: Request = ev._value
        self._finish(req, DROPPED, req.reason)

    def expire(self, ev: simpy.Event) -> None:
        """The client's request timeout (or, for a caller's request, a call of it that timed out)."""
        self._finish(ev._value, TIMEOUT)

    def _finish(self, req: Request, outcome: int, reason: int = 0) -> None:
        """The attempt is over for the client with ``outcome``, unless it was already: free its connection slot,
        then retry or go on."""
        records, base, s = self.records, req.base, req.stream
        if not records.in_flight(base):
            return
        records.end(base, self.env._now, outcome, reason)
        target = req.target
        if target is not None and target.load is not None:
            target.load[target.slot] -= 1
        if s.is_call:
            self.calls.returned(req, outcome, reason)  # type: ignore[union-attr]
            return
        if outcome != OK and s.retries.attempts and self.retry_later(req, s.retries, self._retry):
            return
        if s.closed and s.remaining > 0:
            s.remaining -= 1
            if s.think_zero:
                self.send(s, -1, 0)
            else:
                self.env.timeout(next(s.gaps), s).callbacks.append(s.resend)

    def retry_later(self, req: Request, retries: Retries, callback: Callable[[simpy.Event], None]) -> bool:
        """Where the failed attempt ``req`` has a retry left, its next attempt scheduled (``callback``) after a
        full-jitter backoff, uniform on [0, min(max_s, base_s * 2**k)) before retry k (from its stream's draws);
        whether it was."""
        attempt = self.records.attempt(req.base)
        if attempt >= retries.attempts:
            return False
        cap = min(retries.max_s, retries.base_s * 2**attempt)
        self.env.timeout(next(req.stream.backoff) * cap, req).callbacks.append(callback)
        return True

    def _retry(self, ev: simpy.Event) -> None:
        """The backoff is over: the failed attempt's request is sent again, as its next attempt."""
        req: Request = ev._value
        records = self.records
        self.send(req.stream, records.request(req.base), records.attempt(req.base) + 1)

    def _send_next(self, ev: simpy.Event) -> None:
        """Closed loop: the think time is over; send the next request."""
        self.send(ev._value, -1, 0)

    # --- results -------------------------------------------------------------------------------------------------

    def result(self, seed: Seed) -> RunResult:
        """Freeze the raw columns into a RunResult (``Plan.result``): steps written ahead of the clock at or past
        the horizon have not happened (``clip_to_horizon``); without a horizon, the run ends at its last event or
        reply."""
        rows = len(self.records.times) // 5
        parent = None if self.calls is None else self.calls.parent_column(rows)
        cols = self.records.columns()
        end = self.env.now
        if self.plan.duration_s is not None:
            clip_to_horizon(cols, self.plan.duration_s)
        elif len(cols["t_returned"]) and not np.isnan(cols["t_returned"]).all():
            end = max(end, float(np.nanmax(cols["t_returned"])))  # the last reply may not have been an event
        return self.plan.result(seed, cols, end, parent=parent)


def run(scenario: Scenario | Plan, seed: Seed, *, shortcuts: bool = True) -> RunResult:
    """The event path: simulate ``scenario`` until every stream is done (or ``duration_s`` of simulated time);
    return its records. ``shortcuts=False`` makes every step of every request a SimPy event (the same records)."""
    state = Run(scenario if isinstance(scenario, Plan) else compile_plan(scenario), Streams(seed), shortcuts)
    state.env.run(until=state.plan.duration_s)
    return state.result(seed)
