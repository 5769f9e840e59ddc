"""The only SimPy code: clients, network paths and backend queues. ``run(scenario, seed) -> RunResult``.

The per-request callbacks read ``env._now`` and ``event._value`` (SimPy's own slots) rather than the ``now``
and ``value`` properties: a property is a Python call, paid four times a request.

A request is a chain of SimPy callbacks rather than a generator process (about 3x faster): send -> (path delay)
-> arrive at the backend pod -> (queue) -> start -> (service time) -> finish -> (path delay back) -> return. Each
step is one ``Timeout`` whose value carries the request, so a request costs at most four events: the send tick,
the trip out, the service and the trip back. A path's hops are drawn and summed into one delay each way.

Steps that nothing can change are not events (``shortcuts``, on by default; off, every step is an event and the
records are the same, times to the last bits, which the tests check). In a cluster that does not change, a FIFO
pod's start and finish follow from the arrival order alone: each request takes the worker that frees first (the
Kiefer-Wolfowitz recursion over the workers' free times), so arriving computes both, and the service draws fall
to the same requests, in the same order. A reply that nobody waits for (an open-loop client without a request
timeout, a picker that does not count connections) is written when it is known, not scheduled. Open-loop sends,
which nothing in the system can move, are one merged schedule with one pending event, not one pending tick per
stream; and where nothing else sends and no send reads the clock (``_Run._ahead_safe``), each schedule event
makes the next sends too, in order, scheduling their arrivals. A request then costs one to two events, not four.

Decisions are not made here: routes come from ``Scenario.route`` (the routing layer), precomputed once per
(stream, entry node); pickers and affinity tables are the routing layer's; every draw comes from a ``Streams``
key.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import heapq
import itertools
import math
import sys
from array import array
from collections import deque
from collections.abc import Callable, Iterator

import numpy as np
import simpy

from sim.cluster import Discipline
from sim.distributions import Constant, Sum
from sim.outcomes import DropReason, Outcome
from sim.plan import Plan, RoutePlan, StreamPlan, compile_plan
from sim.records import COLUMNS, PICK_AFFINITY, PICK_FRESH, PICK_REUSED, RunResult
from sim.rng import Seed, Streams, blocks
from sim.routing import Affinity, Chooser
from sim.routing.pickers import uniform_indices
from sim.routing.ports import source_ports
from sim.scenario import Scenario
from sim.workload import ClosedLoop, send_times

_NAN = math.nan
_OK = int(Outcome.OK)
_DROPPED = int(Outcome.DROPPED)
_IN_FLIGHT = int(Outcome.IN_FLIGHT)
_TIMEOUT = int(Outcome.TIMEOUT)


LINUX_TCP_RTO_MIN_S = 0.2
"""Linux ``TCP_RTO_MIN``: the earliest a retransmission (and the reset it draws) can come."""
LINUX_TCP_RETRIES2_S = 924.6
"""Linux gives up on an established connection whose peer vanished after ~15 retransmissions (tcp_retries2=15)."""


class _Backend:
    """A backend pod: ``capacity`` workers and a FIFO queue (at most ``limit`` waiting), or processor sharing
    (``ps``: every request in service, sharing ``capacity`` CPUs); its service-time draws (s); and, in a
    changing cluster, the requests in service, so that they can fail when the pod stops."""

    __slots__ = (
        "alive",
        "arrive",
        "busy",
        "capacity",
        "free",
        "jobs",
        "limit",
        "ps",
        "ps_last",
        "ps_version",
        "queue",
        "service_times",
        "serving",
        "waiting",
    )

    def __init__(self, capacity: int, limit: int | None, service_times: Iterator[float], ps: bool = False) -> None:
        self.alive = True
        self.busy = 0
        self.capacity = capacity
        self.limit = sys.maxsize if limit is None else limit
        self.queue: deque[tuple[int, _Stream, _Target]] = deque()
        self.serving: dict[int, tuple[int, _Stream, _Target]] = {}
        self.service_times = service_times
        self.ps = ps
        self.jobs: dict[int, list] = {}  # processor sharing: row -> [remaining work (s), request]
        self.ps_last = 0.0
        self.ps_version = 0
        # shortcut FIFO (a cluster that does not change): when each worker is next free (a heap, s), and the start
        # times (s) of the requests admitted but not yet started as of the latest arrival (kept for a queue limit)
        self.free: list[float] | None = None
        self.waiting: deque[float] | None = None
        self.arrive: Callable[[simpy.Event], None] = _ignore  # _Run._arrive, or _arrive_fifo with the shortcut


def _ignore(ev: simpy.Event) -> None:
    """A backend's arrival callback before the run sets it."""


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
    """A stream's route through one entry node's proxy, as of control-plane ``version``."""

    __slots__ = (
        "affinity",
        "choose",
        "drop",
        "expire",
        "fail_after",
        "node",
        "preserved",
        "slot_of",
        "targets",
        "version",
    )

    def __init__(self, node: int) -> None:
        self.node = node
        self.version = 0
        self.targets: tuple[_Target, ...] = ()
        self.slot_of: dict[int, int] = {}
        self.choose: Chooser | None = None
        self.affinity: Affinity | None = None
        self.drop = int(DropReason.NONE)
        self.fail_after = 0.0
        self.preserved = 1
        self.expire: frozenset[int] | None = None  # the route's pods, where connections to others are expired


class _Stream:
    """A client stream's run-time state."""

    __slots__ = (
        "backoff",
        "closed",
        "conn_left",
        "conn_opened",
        "conn_target",
        "connect_timeout_s",
        "entries",
        "gaps",
        "index",
        "ip",
        "lb",
        "max_age_s",
        "max_requests",
        "passive",
        "ports",
        "remaining",
        "retries",
        "retry_base_s",
        "retry_max_s",
        "send",
        "think_zero",
        "timeout_s",
    )

    def __init__(self, index: int) -> None:
        self.index = index
        self.entries: tuple[_Entry, ...] = ()
        self.lb: Iterator[int] | None = None
        self.gaps: Iterator[float] = iter(())
        self.remaining = 0
        self.closed = False
        self.think_zero = False
        self.passive = False  # open loop without a request timeout: nothing happens when a reply arrives
        self.send: Callable[[_Stream, int, int, float], None] = _noop  # _Run._send, or _send_simple
        self.ip = 0
        self.ports: Iterator[int] = iter(())  # source ports of new connections (sim.routing.ports)
        self.max_requests = 1
        self.max_age_s = math.inf
        self.conn_target: tuple[_Entry, _Target] | None = None
        self.conn_left = 0
        self.conn_opened = 0.0
        self.connect_timeout_s = 0.0
        self.timeout_s: float | None = None
        self.retries = 0
        self.retry_base_s = 0.0
        self.retry_max_s = 0.0
        self.backoff: Iterator[float] = iter(())


def _unpack(raw: array, names: tuple[str, str, str, str, str]) -> dict[str, np.ndarray]:
    """The five interleaved columns of a raw record array with their RunResult dtypes: copies where the dtype
    differs, else strided views on the raw array (the five times: no second copy of the largest array)."""
    view = np.frombuffer(raw, dtype=raw.typecode).reshape(-1, 5)
    return {
        name: view[:, i] if view.dtype == COLUMNS[name] else view[:, i].astype(COLUMNS[name])
        for i, name in enumerate(names)
    }


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


_AHEAD = 127
"""Sends made ahead per schedule event where that changes nothing (``_Run._ahead_safe``): fewer events, and at
most this many more arrivals pending."""


def _noop(s: _Stream, request: int, attempt: int, at: float) -> None:
    """A stream's send before the run sets it."""


Request = tuple[int, _Stream, _Target, float]
"""A request attempt in flight: its record's offset, its stream, its endpoint, and its trip back (s), drawn with
the trip out when it is sent, so that every way of running it gives each request the same draws."""


# Record layout while running: three flat arrays, five slots per request, so a send costs three ``extend``s.
_I_STREAM, _I_REQUEST, _I_ENDPOINT, _I_ENTRY, _I_VERSION = range(5)
_S_ATTEMPT, _S_PICK, _S_PRESERVED, _S_OUTCOME, _S_REASON = range(5)
_T_SENT, _T_ARRIVED, _T_STARTED, _T_FINISHED, _T_RETURNED = range(5)


class _Run:
    """The state of one run: SimPy environment, record columns, backends, proxies and streams."""

    def __init__(self, plan: Plan, streams: Streams, shortcuts: bool = True) -> None:
        with _gc_paused():  # a large cluster builds ~10^6 long-lived objects: no collection passes over them
            self._setup(plan, streams, shortcuts)

    def _setup(self, plan: Plan, streams: Streams, shortcuts: bool) -> None:
        """Backends, proxies and routes, streams and their first sends, control-plane and data-plane changes."""
        self.env = simpy.Environment()
        self.plan = plan
        self.rngs = streams
        self.dynamic = plan.dynamic
        self.ints = array("i")  # stream, request, endpoint, entry node, version
        self.small = array("b")  # attempt, pick, source preserved, outcome, reason
        self.times = array("d")  # sent, arrived, started, finished, returned
        self._paths: dict[tuple[int, ...], Iterator[float]] = {}  # by the legs' delay classes
        self._proxies: dict[tuple[object, ...], tuple[Chooser, list[int] | None]] = {}
        self._affinity: dict[tuple[str, str], Affinity] = {}
        self._sends: Iterator[tuple[float, int]] = iter(())
        self._ahead = 0  # sends made ahead of their time per schedule event (see _ahead_safe)
        self._setup_backends(shortcuts)
        schedule = self._setup_streams(shortcuts)
        self._setup_schedule(schedule)
        self._setup_changes()

    def _setup_backends(self, shortcuts: bool) -> None:
        """One backend per pod, with its service-time draws; the FIFO shortcut where the cluster does not change."""
        plan, streams = self.plan, self.rngs
        absent = plan.scenario.absent
        self.backends: list[_Backend] = []
        for pod in plan.pods:
            draws = blocks(pod.service_time, functools.partial(streams.generator, "service", pod.name))
            b = _Backend(pod.concurrency, pod.queue_limit, draws, pod.discipline == Discipline.PS)
            b.alive = pod.name not in absent
            b.arrive = self._arrive
            if shortcuts and not self.dynamic and pod.discipline == Discipline.FIFO:
                b.free = [0.0] * pod.concurrency
                b.waiting = deque() if pod.queue_limit is not None else None
                b.arrive = self._arrive_fifo
            self.backends.append(b)

    def _setup_streams(self, shortcuts: bool) -> list[tuple[np.ndarray, int]]:
        """Each stream's entries (routes as of version 0), draws and options; its first send scheduled, or, with
        the shortcuts, its open-loop send times returned for the merged schedule."""
        plan, streams, env = self.plan, self.rngs, self.env
        self.by_node: list[list[tuple[StreamPlan, int, _Entry]]] = [[] for _ in plan.node_names]
        self.streams: list[_Stream] = []
        schedule: list[tuple[np.ndarray, int]] = []  # open-loop send times (s) per stream, with the shortcuts
        for sp in plan.streams:
            k, spec = sp.index, sp.spec
            s = _Stream(k)
            entries = []
            for i, rp in enumerate(sp.routes[0]):
                e = _Entry(rp.node_index)
                self._build(sp, i, e, 0)
                self.by_node[rp.node_index].append((sp, i, e))
                entries.append(e)
            s.entries = tuple(entries)
            if len(entries) > 1:
                s.lb = uniform_indices(len(entries), streams.generator(*sp.key("load-balancer")))
            arrivals = streams.generator(*sp.key("arrivals"))
            s.ports = source_ports(functools.partial(streams.generator, *sp.key("ports")))
            s.remaining = sys.maxsize if spec.requests is None else spec.requests
            s.closed = isinstance(spec.workload, ClosedLoop)
            s.think_zero = s.closed and spec.workload.think == Constant(0.0)  # type: ignore[union-attr]
            s.ip = sp.ip
            s.max_requests = spec.connections.max_requests
            s.max_age_s = spec.connections.max_age_s
            s.connect_timeout_s = spec.connect_timeout_s
            s.timeout_s = spec.timeout_s
            s.passive = shortcuts and not s.closed and spec.timeout_s is None
            simple = len(entries) == 1 and not spec.connections.keep_alive and s.timeout_s is None
            s.send = self._send_simple if shortcuts and simple else self._send
            s.retries = spec.retries.attempts
            s.retry_base_s, s.retry_max_s = spec.retries.base_s, spec.retries.max_s
            if s.retries:
                uniform = streams.generator(*sp.key("retries"))
                s.backoff = blocks(lambda rng, n: rng.random(n), uniform)
            self.streams.append(s)
            if shortcuts and not isinstance(spec.workload, ClosedLoop) and not self.dynamic:
                gaps = spec.workload.gap_blocks(arrivals)
                schedule.append((send_times(gaps, spec.start_s, spec.requests, plan.duration_s), k))
                continue
            s.gaps = spec.workload.gaps(arrivals)
            if s.remaining > 0:
                start = spec.start_s if s.closed else spec.start_s + next(s.gaps, _NAN)
                if not math.isnan(start):
                    env.timeout(start, s).callbacks.append(self._tick)
        return schedule

    def _setup_schedule(self, schedule: list[tuple[np.ndarray, int]]) -> None:
        """Open-loop sends do not depend on the system: with the shortcuts, in a cluster that does not change, all
        of them are one time-ordered schedule, one pending event at a time instead of one per stream (a smaller
        heap to push and pop). (In a changing cluster a send and a proxy update can fall on the same instant,
        where SimPy's order is the order of scheduling, which one schedule would change.)"""
        if not schedule:
            return
        at = np.concatenate([times for times, _ in schedule])
        who = np.concatenate([np.full(len(times), k, dtype=np.int32) for times, k in schedule])
        order = np.argsort(at, kind="stable")  # equal times: in stream order, as the stream ticks would go
        self._sends = zip(array("d", at[order].tobytes()), array("i", who[order].tobytes()), strict=True)
        first = next(self._sends, None)
        if first is not None:
            self.env.timeout(first[0], first).callbacks.append(self._tick_schedule)
        if all(self._ahead_safe(s) for s in self.streams):
            self._ahead = _AHEAD

    def _setup_changes(self) -> None:
        """Each control-plane version reaches each node's proxy after its lag; data-plane changes at their time."""
        plan, env = self.plan, self.env
        for version, at_s in enumerate(plan.version_times_s[1:], start=1):
            for node, lag_s in enumerate(plan.sync_lag_s):
                env.timeout(at_s + lag_s, (node, version)).callbacks.append(self._sync)
        for change in plan.data_changes:
            env.timeout(change.at_s, change).callbacks.append(self._data_change)

    def _ahead_safe(self, s: _Stream) -> bool:
        """Whether the stream's sends may be made ahead of their time, in schedule order: when nothing but the
        schedule ever sends (no closed loop, no retries) and a send reads no state that time changes (a static
        cluster, no affinity, keep-alive, timeout or connection-counting picker), a send's records and draws are
        the same whenever it is made, as long as sends are made in time order. Its arrival is scheduled from the
        earlier instant, so its time can differ from the one-send-per-event run in the last bit."""
        entry = s.entries[0]
        return (
            s.send == self._send_simple
            and s.passive
            and not s.retries
            and not self.dynamic
            and entry.choose is not None
            and entry.affinity is None
            and entry.targets[0].load is None
        )

    # --- proxies: routes per entry node and control-plane version --------------------------------------------

    def _draws(self, classes: tuple[int, ...]) -> Iterator[float]:
        """Draws (s) of the delay along legs of these delay classes (each leg a lowest-latency path).

        Paths whose legs are of the same delay classes share one stream of draws: they have one distribution.
        """
        draws = self._paths.get(classes)
        if draws is None:
            topo = self.plan.topology
            legs = tuple(topo.class_delay(c) for c in classes)
            dist = legs[0] if len(legs) == 1 else Sum(legs)
            draws = self._paths[classes] = blocks(dist, functools.partial(self.rngs.generator, "network", *classes))
        return draws

    def _build(self, sp: StreamPlan, i: int, e: _Entry, version: int) -> None:
        """(Re)build entry ``e`` (stream ``sp``'s ``i``-th) from the route its node's proxy has at ``version``."""
        rp = sp.routes[version][i]
        route = rp.route
        e.version = version
        e.preserved = int(route.source_preserved)
        e.drop = int(route.drop)
        e.fail_after = rp.fail_after_s
        e.targets, e.slot_of, e.choose, e.affinity = (), {}, None, None
        e.expire = frozenset(rp.pods) if route.expire_removed else None
        if not route.endpoints:
            return
        key = rp.proxy_key
        proxy = self._proxies.get(key)
        if proxy is None:
            picker = route.picker
            load = [0] * len(route.endpoints) if picker.needs_load else None
            rng = self.rngs.generator("route", *rp.proxy, version)
            proxy = self._proxies[key] = (picker.chooser(route.endpoints, rng, load or []), load)
        e.choose, load = proxy
        if rp.affinity_timeout_s is not None:
            table = self._affinity.setdefault(
                (rp.node, rp.proxy[1]), Affinity(rp.affinity_timeout_s, route.affinity_limit)
            )
            table.timeout_s = rp.affinity_timeout_s
            e.affinity = table
        e.slot_of = {pod: slot for slot, pod in enumerate(rp.pods)} if e.affinity is not None else {}
        e.targets = tuple(
            _Target(self.backends[pod], pod, *ways, load, slot)
            for slot, (pod, ways) in enumerate(zip(rp.pods, self._ways(sp.origin, rp), strict=True))
        )

    def _ways(self, origin: str, rp: RoutePlan) -> list[tuple[Iterator[float], Iterator[float]]]:
        """Per endpoint of the route, the draws (s) of its trips out and back: the legs (origin ->) node ->
        endpoint's node and back, by delay class; an external client's packets pass through the entry node."""
        topo, node = self.plan.topology, rp.node
        legs = topo.delay_classes_between(node, list(rp.endpoint_nodes))
        ways: dict[tuple[int, int], tuple[Iterator[float], Iterator[float]]] = {}
        lead = (topo.delay_class(origin, node), topo.delay_class(node, origin)) if origin != node else None
        for out, back in set(legs):
            if lead is None:
                ways[out, back] = (self._draws((out,)), self._draws((back,)))
            else:
                ways[out, back] = (self._draws((lead[0], out)), self._draws((back, lead[1])))
        return [ways[way] for way in legs]

    def _sync(self, ev: simpy.Event) -> None:
        """A node's proxy applies a control-plane version (after that node's sync lag)."""
        node, version = ev._value
        for sp, i, e in self.by_node[node]:
            if version > e.version:
                self._build(sp, i, e, version)

    def _data_change(self, ev: simpy.Event) -> None:
        """Pods stop answering (deleted, or their node died) or start (added, node back)."""
        change = ev._value
        now = self.env.now
        reason = DropReason.NODE_FAILED if change.node_failed else DropReason.BACKEND_GONE
        times = self.times
        pod_index = self.plan.pod_index
        for name in sorted(change.stop):
            b = self.backends[pod_index[name]]
            if not b.alive:
                continue
            b.alive = False
            doomed = list(b.serving.values()) + list(b.queue) + [job[1] for job in b.jobs.values()]
            b.serving.clear()
            b.queue.clear()
            b.jobs.clear()
            b.ps_version += 1
            b.busy = 0
            for req in doomed:
                times[req[0] + _T_FINISHED] = now  # the work ends here, unfinished
                # a dead node says nothing (the client's TCP gives up); a killed pod's reset travels back
                delay = LINUX_TCP_RETRIES2_S if reason == DropReason.NODE_FAILED else req[3]
                self._fail_after(delay, req, reason)
        for name in sorted(change.start):
            self.backends[pod_index[name]].alive = True

    # --- the request's life, one callback per step -------------------------------------------------------------

    def _tick(self, ev: simpy.Event) -> None:
        """A stream's send time has come: send, and for open loop schedule the next send."""
        s: _Stream = ev._value
        s.remaining -= 1
        s.send(s, -1, 0, self.env._now)
        if not s.closed and s.remaining > 0:
            gap = next(s.gaps, None)
            if gap is not None:
                self.env.timeout(gap, s).callbacks.append(self._tick)

    def _tick_schedule(self, ev: simpy.Event) -> None:
        """The next open-loop send of the merged schedule (and, where allowed, the next ``_ahead`` too): send it,
        and schedule the one after."""
        streams, sends = self.streams, self._sends
        at, k = ev._value
        s = streams[k]
        s.send(s, -1, 0, at)
        if self._ahead:
            for at, k in itertools.islice(sends, self._ahead):
                s = streams[k]
                s.send(s, -1, 0, at)
        after = next(sends, None)
        if after is not None:
            self.env.timeout(after[0] - self.env._now, after).callbacks.append(self._tick_schedule)

    def _retry(self, ev: simpy.Event) -> None:
        s, request, attempt = ev._value
        s.send(s, request, attempt, self.env._now)

    def _send_simple(self, s: _Stream, request: int, attempt: int, at: float) -> None:
        """``_send`` for a stream with one entry node, a connection per request and no timeout, while its proxy
        routes without session affinity: the same records and draws with fewer branches. ``at`` is the send time
        (s): now, or later for a send made ahead (``_tick_schedule``), whose arrival is then scheduled from now."""
        entry = s.entries[0]
        if entry.choose is None or entry.affinity is not None:
            self._send(s, request, attempt, at)
            return
        times = self.times
        b5 = len(times)
        times.extend((at, _NAN, _NAN, _NAN, _NAN))
        target = entry.targets[entry.choose((s.ip << 16) | next(s.ports))]
        if target.load is not None:
            target.load[target.slot] += 1
        self.ints.extend((s.index, b5 // 5 if request < 0 else request, target.pod, entry.node, entry.version))
        self.small.extend((attempt, PICK_FRESH, entry.preserved, _IN_FLIGHT, 0))
        out = at - self.env._now + next(target.out)  # at == now: exactly the trip out
        self.env.timeout(out, (b5, s, target, next(target.back))).callbacks.append(target.backend.arrive)

    def _send(self, s: _Stream, request: int, attempt: int, at: float) -> None:
        """Open (or reuse) a connection and send one attempt; ``request`` is the first attempt's row, or -1.
        ``at`` must be now: this send reads the clock (affinity, connection age, timeouts)."""
        times = self.times
        b5 = len(times)
        row = b5 // 5
        now = self.env._now
        times.extend((now, _NAN, _NAN, _NAN, _NAN))
        conn = s.conn_target
        if conn is not None and s.conn_left > 0 and now - s.conn_opened < s.max_age_s:
            entry, target = conn
            if entry.expire is not None and target.pod not in entry.expire:  # its real server was deleted
                s.conn_target = None
                self.ints.extend((s.index, row if request < 0 else request, -1, entry.node, entry.version))
                self.small.extend((attempt, PICK_REUSED, entry.preserved, _IN_FLIGHT, 0))
                fail = (b5, s, None, int(DropReason.REAL_SERVER_DELETED))
                self.env.timeout(LINUX_TCP_RTO_MIN_S, fail).callbacks.append(self._fail)
                if s.timeout_s is not None:
                    self.env.timeout(s.timeout_s, (b5, s, None)).callbacks.append(self._expire)
                return
            s.conn_left -= 1
            pick = PICK_REUSED
        else:
            entry = s.entries[next(s.lb)] if s.lb is not None else s.entries[0]
            if entry.choose is None:
                self.ints.extend((s.index, row if request < 0 else request, -1, entry.node, entry.version))
                self.small.extend((attempt, PICK_FRESH, entry.preserved, _IN_FLIGHT, 0))
                self.env.timeout(entry.fail_after, (b5, s, None, entry.drop)).callbacks.append(self._fail)
                if s.timeout_s is not None:
                    self.env.timeout(s.timeout_s, (b5, s, None)).callbacks.append(self._expire)
                return
            pick = PICK_FRESH
            k = -1
            if entry.affinity is not None:
                k = entry.slot_of.get(entry.affinity.lookup(s.ip, now), -1)
                if k >= 0:
                    pick = PICK_AFFINITY
            if k < 0:
                k = entry.choose((s.ip << 16) | next(s.ports))
            target = entry.targets[k]
            if entry.affinity is not None:
                entry.affinity.record(s.ip, target.pod, now)
            if s.max_requests > 1:
                s.conn_target = (entry, target)
                s.conn_left = s.max_requests - 1
                s.conn_opened = now
        if target.load is not None:
            target.load[target.slot] += 1
        self.ints.extend((s.index, row if request < 0 else request, target.pod, entry.node, entry.version))
        self.small.extend((attempt, pick, entry.preserved, _IN_FLIGHT, 0))
        out = next(target.out)
        req = (b5, s, target, next(target.back))
        self.env.timeout(out, req).callbacks.append(target.backend.arrive)
        if s.timeout_s is not None:
            self.env.timeout(s.timeout_s, req).callbacks.append(self._expire)

    def _arrive(self, ev: simpy.Event) -> None:
        req = ev._value
        b5, s, target, _ = req
        now = self.env._now
        b = target.backend
        if not b.alive:  # a proxy not yet synced sent it to a pod that is gone: the SYN goes unanswered
            wait = max(0.0, self.times[b5] + s.connect_timeout_s - now)
            self._fail_after(wait, req, DropReason.STALE_ENDPOINT)
            return
        self.times[b5 + _T_ARRIVED] = now
        if b.ps:
            self._ps_arrive(req, b, now)
        elif b.busy < b.capacity:
            b.busy += 1
            self.times[b5 + _T_STARTED] = now
            if self.dynamic:
                b.serving[b5] = req
            self.env.timeout(next(b.service_times), req).callbacks.append(self._finish)
        elif len(b.queue) < b.limit:
            b.queue.append(req)
        else:
            self.times[b5 + _T_FINISHED] = now  # refused: the pod is done with it at once
            self._fail_after(req[3], req, DropReason.QUEUE_FULL)

    def _arrive_fifo(self, ev: simpy.Event) -> None:
        """``_arrive`` at a FIFO pod in a cluster that does not change: the request takes the worker that frees
        first, so its start and finish are known now (the Kiefer-Wolfowitz recursion), with no queue events."""
        req = ev._value
        b5, _, target, back = req
        now = self.env._now
        b = target.backend
        free, waiting, times = b.free, b.waiting, self.times
        assert free is not None
        times[b5 + _T_ARRIVED] = now
        first_free = free[0]
        if waiting is not None:  # a queue limit: count the requests admitted that have not started
            while waiting and waiting[0] <= now:
                waiting.popleft()
            if first_free > now and len(waiting) >= b.limit:
                times[b5 + _T_FINISHED] = now  # refused: the pod is done with it at once
                self._fail_after(back, req, DropReason.QUEUE_FULL)
                return
        start = first_free if first_free > now else now
        finish = start + next(b.service_times)
        heapq.heapreplace(free, finish)
        if waiting is not None and start > now:
            waiting.append(start)
        times[b5 + _T_STARTED] = start
        times[b5 + _T_FINISHED] = finish
        self._reply(req, finish)

    def _reply(self, req: Request, finished: float) -> None:
        """The reply leaves the pod at ``finished`` (s): written now if nobody waits for it, else an event."""
        target, back = req[2], req[3]
        if req[1].passive and target.load is None:  # past the horizon, result() marks it in flight
            self.times[req[0] + _T_RETURNED] = finished + back
            self.small[req[0] + _S_OUTCOME] = _OK
        else:
            self.env.timeout(finished - self.env._now + back, req).callbacks.append(self._return)

    def _finish(self, ev: simpy.Event) -> None:
        req = ev._value
        target = req[2]
        b = target.backend
        if self.dynamic and b.serving.pop(req[0], None) is None:
            return  # the pod stopped while serving it; the failure is already recorded
        now = self.env._now
        self.times[req[0] + _T_FINISHED] = now
        self._reply(req, now)
        if b.queue:
            nxt = b.queue.popleft()
            self.times[nxt[0] + _T_STARTED] = now
            if self.dynamic:
                b.serving[nxt[0]] = nxt
            self.env.timeout(next(b.service_times), nxt).callbacks.append(self._finish)
        else:
            b.busy -= 1

    # --- processor sharing: every request in service at once, each at rate min(1, capacity / n) -----------------

    def _ps_arrive(self, req: Request, b: _Backend, now: float) -> None:
        self._ps_advance(b, now)
        if len(b.jobs) >= b.capacity + b.limit:
            self.times[req[0] + _T_FINISHED] = now
            self._fail_after(req[3], req, DropReason.QUEUE_FULL)
            return
        self.times[req[0] + _T_STARTED] = now
        b.jobs[req[0]] = [next(b.service_times), req]
        self._ps_next(b)

    @staticmethod
    def _ps_advance(b: _Backend, now: float) -> None:
        """Credit every job with the work done since the last change (seconds of service at full speed)."""
        if b.jobs:
            done = (now - b.ps_last) * min(1.0, b.capacity / len(b.jobs))
            for job in b.jobs.values():
                job[0] -= done
        b.ps_last = now

    def _ps_next(self, b: _Backend) -> None:
        """Schedule the next completion (of the job with the least work left); earlier schedules go stale."""
        b.ps_version += 1
        if b.jobs:
            rate = min(1.0, b.capacity / len(b.jobs))
            row = min(b.jobs, key=lambda r: b.jobs[r][0])
            delay = max(0.0, b.jobs[row][0]) / rate
            self.env.timeout(delay, (b, b.ps_version, row)).callbacks.append(self._ps_done)

    def _ps_done(self, ev: simpy.Event) -> None:
        b, version, row = ev._value
        if version != b.ps_version:
            return
        now = self.env._now
        self._ps_advance(b, now)
        # The scheduled job is done whatever rounding left on it (a delay below the clock's resolution would
        # otherwise fire again and again at the same instant); so is any job left with under a nanosecond.
        for done in [r for r, job in b.jobs.items() if r == row or job[0] <= 1e-9]:
            req = b.jobs.pop(done)[1]
            self.times[done + _T_FINISHED] = now
            self._reply(req, now)
        self._ps_next(b)

    def _return(self, ev: simpy.Event) -> None:
        b5, s, target, _ = ev._value
        if self.small[b5 + _S_OUTCOME] != _IN_FLIGHT:
            return  # the client gave up already (timeout); the backend did the work anyway
        self.times[b5 + _T_RETURNED] = self.env._now
        self.small[b5 + _S_OUTCOME] = _OK
        self._resolve(b5, s, target, True)

    def _fail_after(self, delay: float, req: Request, reason: DropReason) -> None:
        """The attempt fails for ``reason`` after ``delay`` seconds (as the client learns of it)."""
        self.env.timeout(delay, (req[0], req[1], req[2], int(reason))).callbacks.append(self._fail)

    def _fail(self, ev: simpy.Event) -> None:
        b5, s, target, reason = ev._value
        if self.small[b5 + _S_OUTCOME] != _IN_FLIGHT:
            return
        self.times[b5 + _T_RETURNED] = self.env.now
        self.small[b5 + _S_OUTCOME] = _DROPPED
        self.small[b5 + _S_REASON] = reason
        self._resolve(b5, s, target, False)

    def _expire(self, ev: simpy.Event) -> None:
        b5, s, target = ev._value[:3]
        if self.small[b5 + _S_OUTCOME] != _IN_FLIGHT:
            return
        self.times[b5 + _T_RETURNED] = self.env.now
        self.small[b5 + _S_OUTCOME] = _TIMEOUT
        self._resolve(b5, s, target, False)

    def _resolve(self, b5: int, s: _Stream, target: _Target | None, ok: bool) -> None:
        """A request attempt is over for the client: free its connection slot, then retry or go on."""
        if target is not None and target.load is not None:
            target.load[target.slot] -= 1
        if not ok and s.retries:
            attempt = self.small[b5 + _S_ATTEMPT]
            if attempt < s.retries:
                cap = min(s.retry_max_s, s.retry_base_s * 2**attempt)
                value = (s, self.ints[b5 + _I_REQUEST], attempt + 1)
                self.env.timeout(next(s.backoff) * cap, value).callbacks.append(self._retry)
                return
        if s.closed and s.remaining > 0:
            s.remaining -= 1
            if s.think_zero:
                s.send(s, -1, 0, self.env._now)
            else:
                self.env.timeout(next(s.gaps), s).callbacks.append(self._again)

    def _again(self, ev: simpy.Event) -> None:
        """Closed loop: the think time is over; send the next request."""
        s: _Stream = ev._value
        s.send(s, -1, 0, self.env._now)

    # --- results -------------------------------------------------------------------------------------------------

    def result(self, seed: Seed) -> RunResult:
        """Freeze the raw columns into a RunResult (``Plan.result``): steps written ahead of the clock at or past
        the horizon have not happened; without a horizon, the run ends at its last event or reply."""
        # Take each raw array's five columns, then drop the run's reference to it (views keep what they need).
        cols = _unpack(self.times, ("t_sent", "t_arrived", "t_started", "t_finished", "t_returned"))
        self.times = array("d")
        cols |= _unpack(self.ints, ("stream", "request", "endpoint", "entry_node", "version"))
        self.ints = array("i")
        cols |= _unpack(self.small, ("attempt", "pick", "source_preserved", "outcome", "reason"))
        self.small = array("b")
        end, duration_s = self.env.now, self.plan.duration_s
        if duration_s is not None:  # shortcuts wrote steps ahead: those at or past the horizon have not happened
            for name in ("t_started", "t_finished", "t_returned"):
                column = cols[name] = cols[name].astype(COLUMNS[name], copy=False)
                column[column >= duration_s] = _NAN
            outcome = cols["outcome"] = cols["outcome"].astype(COLUMNS["outcome"], copy=False)
            outcome[(outcome == _OK) & np.isnan(cols["t_returned"])] = _IN_FLIGHT
        elif len(cols["t_returned"]) and not np.isnan(cols["t_returned"]).all():
            end = max(end, float(np.nanmax(cols["t_returned"])))  # the last reply may not have been an event
        return self.plan.result(seed, cols, end)


def run(scenario: Scenario, seed: Seed, *, shortcuts: bool = True) -> RunResult:
    """Simulate ``scenario`` until every stream is done (or ``duration_s`` of simulated time); return its records.

    ``shortcuts=False`` makes every step of every request a SimPy event (the same records, about half as fast).
    """
    state = _Run(compile_plan(scenario), Streams(seed), shortcuts)
    state.env.run(until=scenario.duration_s)
    return state.result(seed)
