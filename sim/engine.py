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
Where, beyond that, every pod is such a FIFO pod, nothing in the run reads a pod's state or waits for a reply:
the run is *settled* (``_Run._settled``), its sends made in one pass and then each pod's arrivals served in
arrival order (``settle``, by ``sim.queueing.fifo_serve``), with no event per request at all; its records are
those of the run with every step an event, to the bit (tested).

It owns the run in time: the record writer (``_Records``: named operations on three flat arrays), the request
in flight (``_Request``, the value of every event of its life), one backend class per discipline with its own
arrival (``_EventFifo``, ``_ComputedFifo``: the shortcut, ``_Shared``: processor sharing), the proxies' run-time
state (choosers, load counts, affinity tables) and the clients. Decisions are not made here: routes come from the
plan (``sim.plan``, the routing layer's answers compiled once per stream, entry node and control-plane version);
pickers and affinity tables are the routing layer's; every draw comes from a ``Streams`` key; the RunResult is
assembled by ``Plan.result``, as the fast path's is.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import itertools
import math
import sys
from array import array
from collections import deque
from collections.abc import Iterator

import numpy as np
import simpy

from sim.cluster import Discipline
from sim.distributions import Constant, Sum
from sim.outcomes import DropReason, Outcome
from sim.plan import Plan, RoutePlan, StreamPlan, compile_plan
from sim.queueing import FifoPod, fifo_serve
from sim.records import COLUMNS, PICK_AFFINITY, PICK_FRESH, PICK_REUSED, RunResult
from sim.rng import Seed, Streams, blocks
from sim.routing import Affinity, Chooser
from sim.routing.pickers import uniform_indices
from sim.routing.ports import source_ports
from sim.scenario import Scenario
from sim.workload import ClosedLoop, send_times, time_order

_NAN = math.nan
_OK = int(Outcome.OK)
_DROPPED = int(Outcome.DROPPED)
_IN_FLIGHT = int(Outcome.IN_FLIGHT)
_TIMEOUT = int(Outcome.TIMEOUT)
REAL_SERVER_DELETED = int(DropReason.REAL_SERVER_DELETED)


LINUX_TCP_RTO_MIN_S = 0.2
"""Linux ``TCP_RTO_MIN``: the earliest a retransmission (and the reset it draws) can come."""
LINUX_TCP_RETRIES2_S = 924.6
"""Linux gives up on an established connection whose peer vanished after ~15 retransmissions (tcp_retries2=15)."""


_RETURNED = 4
"""Offset of the return time in a request's five ``times`` slots (``_Records``)."""


class _Records:
    """The records while the run writes them: three flat arrays, five slots per request, so that a send costs
    three ``extend``s (``open``). A request's slots start at its ``base`` (five times its row):

    - ``ints``: stream, request (the first attempt's row), endpoint (pod index, -1: none), entry node, version;
    - ``small``: attempt, pick, source preserved, outcome, reason;
    - ``times`` (s): sent, arrived, started, finished, returned (NaN until written).

    The named operations below are the only writes; the two hottest callbacks (``_ComputedFifo.arrive`` and
    ``_Run.reply``) write ``times`` slots directly at the offsets these operations name, to save a call. A settled
    run (``_Run._run_settled``) writes nothing here: it builds its columns whole."""

    __slots__ = ("ints", "small", "times")

    def __init__(self) -> None:
        self.ints = array("i")
        self.small = array("b")
        self.times = array("d")

    def open(
        self, at: float, stream: int, request: int, endpoint: int, node: int, version: int, attempt: int, pick: int,
        preserved: int,
    ) -> int:  # fmt: skip
        """A new attempt sent at ``at`` (s), in flight; ``request`` -1 for a first attempt. Returns its base."""
        base = len(self.times)
        self.times.extend((at, _NAN, _NAN, _NAN, _NAN))
        self.ints.extend((stream, base // 5 if request < 0 else request, endpoint, node, version))
        self.small.extend((attempt, pick, preserved, _IN_FLIGHT, 0))
        return base

    def arrived(self, base: int, at: float) -> None:
        """The request reached its pod at ``at`` (s)."""
        self.times[base + 1] = at

    def started(self, base: int, at: float) -> None:
        """Its service started at ``at`` (s)."""
        self.times[base + 2] = at

    def finished(self, base: int, at: float) -> None:
        """The pod was done with it at ``at`` (s): served, refused (queue full) or killed."""
        self.times[base + 3] = at

    def in_flight(self, base: int) -> bool:
        """Whether the client still waits for it."""
        return self.small[base + 3] == _IN_FLIGHT

    def end(self, base: int, at: float, outcome: int, reason: int = 0) -> None:
        """The client is done with it at ``at`` (s): ``outcome`` (ok, dropped, timeout), and why it was dropped."""
        self.times[base + _RETURNED] = at
        self.small[base + 3] = outcome
        if reason:
            self.small[base + 4] = reason

    def sent(self, base: int) -> float:
        """When it was sent (s)."""
        return self.times[base]

    def request(self, base: int) -> int:
        """The row of its request's first attempt."""
        return self.ints[base + 1]

    def attempt(self, base: int) -> int:
        """Which attempt it is (0: the first)."""
        return self.small[base]

    def columns(self) -> dict[str, np.ndarray]:
        """The fifteen raw columns with their RunResult dtypes, each array handed over (the records are empty
        after): the times and the small ints as strided views on their raw arrays (every slot is a column: no
        second copy), the ints copied out into their own arrays while the raw one shrinks (``_unpack``)."""
        cols = _unpack(self.times, ("t_sent", "t_arrived", "t_started", "t_finished", "t_returned"))
        self.times = array("d")
        cols |= _unpack(self.ints, ("stream", "request", "endpoint", "entry_node", "version"))
        self.ints = array("i")
        cols |= _unpack(self.small, ("attempt", "pick", "source_preserved", "outcome", "reason"))
        self.small = array("b")
        return cols


_UNPACK_ROWS = 1 << 16
"""Rows copied out of a raw record array per step where it is copied (``_unpack``)."""


def _unpack(raw: array, names: tuple[str, str, str, str, str]) -> dict[str, np.ndarray]:
    """The five interleaved columns of a raw record array with their RunResult dtypes. Where all five have the
    raw dtype: strided views on it (no copy). Else each is copied into its own array, a block of rows at a
    time from the end, and the raw array is cut back after each block (its tail freed): the memory held stays
    about that of the larger of the two, not both (the ints: 20 bytes a request raw, 16 copied)."""
    if all(np.dtype(raw.typecode) == COLUMNS[name] for name in names):
        view = np.frombuffer(raw, dtype=raw.typecode).reshape(-1, 5)
        return {name: view[:, i] for i, name in enumerate(names)}
    n = len(raw) // 5
    cols = {name: np.empty(n, dtype=COLUMNS[name]) for name in names}  # pages taken as they are written
    for hi in range(n, 0, -_UNPACK_ROWS):
        lo = max(0, hi - _UNPACK_ROWS)
        block = np.frombuffer(raw, dtype=raw.typecode, count=5 * (hi - lo), offset=5 * lo * raw.itemsize)
        for i, name in enumerate(names):
            cols[name][lo:hi] = block[i::5]
        del block  # no view left on the raw array: it may shrink
        del raw[5 * lo :]
    return cols


_SCHEDULE_ROWS = 1 << 16
"""Sends per block of the merged schedule (``_schedule``)."""


def _schedule(at: np.ndarray, who: np.ndarray, order: np.ndarray) -> Iterator[tuple[float, int]]:
    """The sends (time in s, stream) in ``order``, one pair per ``next()`` (a C call), held as blocks of
    ``array``s that are freed as they are used up: by the end of a run the schedule holds nothing."""
    blocks = deque(
        (array("d", at[rows].tobytes()), array("i", who[rows].tobytes()))
        for rows in (order[lo : lo + _SCHEDULE_ROWS] for lo in range(0, len(order), _SCHEDULE_ROWS))
    )

    def drain() -> Iterator[tuple[array, array]]:
        while blocks:
            yield blocks.popleft()

    return itertools.chain.from_iterable(itertools.starmap(functools.partial(zip, strict=True), drain()))


class _Request:
    """An attempt in flight, the value of every event of its life: its records' ``base``, its stream, its
    endpoint (None where it was never routed), its trip back (s), drawn with the trip out when it is sent so
    that every way of running it gives it the same draws, and the reason it fails (once it does)."""

    __slots__ = ("back", "base", "reason", "stream", "target")
    reason: int

    def __init__(self, base: int, stream: _Stream, target: _Target | None, back: float) -> None:
        self.base = base
        self.stream = stream
        self.target = target
        self.back = back  # ``reason`` is set when it fails (``_Run.fail_after``, ``_Run._unrouted``)


# --- backends: one class per discipline, each with its own arrival --------------------------------------------


class _Backend:
    """A backend pod: ``capacity`` workers (or CPUs), at most ``limit`` requests waiting beyond them, its
    service-time draws (s), and whether it answers (``alive``). ``arrive`` is the callback of a request's trip
    out; ``stop`` takes back every request it holds when the pod stops (a changing cluster)."""

    __slots__ = ("alive", "capacity", "env", "limit", "records", "reply", "run", "service_times")

    def __init__(self, run: _Run, capacity: int, limit: int | None, service_times: Iterator[float]) -> None:
        self.run = run
        self.env = run.env
        self.records = run.records
        self.reply = run.reply  # bound once: the call every served request makes
        self.alive = True
        self.capacity = capacity
        self.limit = sys.maxsize if limit is None else limit
        self.service_times = service_times

    def arrive(self, ev: simpy.Event) -> None:
        """A request reaches the pod."""
        raise NotImplementedError

    def stop(self) -> list[_Request]:
        """The pod stops answering: every request it holds, now dropped from it."""
        self.alive = False
        return []

    def _stale(self, req: _Request, now: float) -> bool:
        """A proxy not yet synced sent the request to a pod that is gone: the SYN goes unanswered, and the client
        learns of it at its connect timeout."""
        if self.alive:
            return False
        wait = max(0.0, self.records.sent(req.base) + req.stream.connect_timeout_s - now)
        self.run.fail_after(wait, req, DropReason.STALE_ENDPOINT)
        return True

    def _refuse(self, req: _Request, now: float) -> None:
        """The queue is full: the pod is done with the request at once, and its refusal travels back."""
        self.records.finished(req.base, now)
        self.run.fail_after(req.back, req, DropReason.QUEUE_FULL)


class _EventFifo(_Backend):
    """FIFO with every step an event: a worker takes the request at once, or it waits in ``queue``; a finish
    starts the next. In a changing cluster the requests in service are kept (``serving``) to fail them."""

    __slots__ = ("busy", "dynamic", "queue", "serving")

    def __init__(self, run: _Run, capacity: int, limit: int | None, service_times: Iterator[float]) -> None:
        super().__init__(run, capacity, limit, service_times)
        self.busy = 0
        self.dynamic = run.dynamic
        self.queue: deque[_Request] = deque()
        self.serving: dict[int, _Request] = {}

    def arrive(self, ev: simpy.Event) -> None:
        """Start on a free worker, wait in the queue, or be refused (queue full)."""
        req: _Request = ev._value
        now = self.env._now
        if self._stale(req, now):
            return
        self.records.arrived(req.base, now)
        if self.busy < self.capacity:
            self.busy += 1
            self._start(req, now)
        elif len(self.queue) < self.limit:
            self.queue.append(req)
        else:
            self._refuse(req, now)

    def _start(self, req: _Request, now: float) -> None:
        self.records.started(req.base, now)
        if self.dynamic:
            self.serving[req.base] = req
        self.env.timeout(next(self.service_times), req).callbacks.append(self._finish)

    def _finish(self, ev: simpy.Event) -> None:
        """Service done: the reply leaves, and the next in the queue starts."""
        req: _Request = ev._value
        if self.dynamic and self.serving.pop(req.base, None) is None:
            return  # the pod stopped while serving it; the failure is already recorded
        now = self.env._now
        self.records.finished(req.base, now)
        self.reply(req, now)
        if self.queue:
            self._start(self.queue.popleft(), now)
        else:
            self.busy -= 1

    def stop(self) -> list[_Request]:
        """The requests in service, then the queue."""
        super().stop()
        doomed = [*self.serving.values(), *self.queue]
        self.serving.clear()
        self.queue.clear()
        self.busy = 0
        return doomed


class _ComputedFifo(_Backend):
    """FIFO in a cluster that does not change (the shortcut): the request takes the worker that frees first, so
    its start and finish are known on arrival (``sim.queueing.FifoPod``: the Kiefer-Wolfowitz recursion over the
    workers' free times, and the queue limit), with no queue events."""

    __slots__ = ("admit", "pod", "times")

    def __init__(self, run: _Run, capacity: int, limit: int | None, service_times: Iterator[float]) -> None:
        super().__init__(run, capacity, limit, service_times)
        self.times = run.records.times  # the array the run appends to (replaced only when the run is over)
        self.pod = FifoPod(capacity, limit)
        self.admit = self.pod.admit  # bound once: the call every arrival makes

    def arrive(self, ev: simpy.Event) -> None:
        """Start and finish computed now; refused where the queue is full."""
        req: _Request = ev._value
        now = self.env._now
        times, base = self.times, req.base
        times[base + 1] = now  # records.arrived
        got = self.admit(now, self.service_times)
        if got is None:
            self._refuse(req, now)
            return
        times[base + 2], times[base + 3] = got  # records.started, records.finished
        self.reply(req, got[1])


class _Shared(_Backend):
    """Processor sharing: every request in service at once, each at rate min(1, capacity / n); at most
    ``capacity + limit`` held. ``jobs``: base -> [work left (s at full speed), request]; one pending completion
    event, for the job with the least work left (``version`` makes earlier ones stale)."""

    __slots__ = ("jobs", "last", "version")

    def __init__(self, run: _Run, capacity: int, limit: int | None, service_times: Iterator[float]) -> None:
        super().__init__(run, capacity, limit, service_times)
        self.jobs: dict[int, list] = {}
        self.last = 0.0
        self.version = 0

    def arrive(self, ev: simpy.Event) -> None:
        """Join the jobs in service (or be refused), and reschedule the next completion."""
        req: _Request = ev._value
        now = self.env._now
        if self._stale(req, now):
            return
        self.records.arrived(req.base, now)
        self._advance(now)
        if len(self.jobs) >= self.capacity + self.limit:
            self._refuse(req, now)
            return
        self.records.started(req.base, now)
        self.jobs[req.base] = [next(self.service_times), req]
        self._next()

    def _advance(self, now: float) -> None:
        """Credit every job with the work done since the last change (seconds of service at full speed)."""
        if self.jobs:
            done = (now - self.last) * min(1.0, self.capacity / len(self.jobs))
            for job in self.jobs.values():
                job[0] -= done
        self.last = now

    def _next(self) -> None:
        """Schedule the next completion (of the job with the least work left); earlier schedules go stale."""
        self.version += 1
        jobs = self.jobs
        if jobs:
            rate = min(1.0, self.capacity / len(jobs))
            base = min(jobs, key=lambda r: jobs[r][0])
            delay = max(0.0, jobs[base][0]) / rate
            self.env.timeout(delay, (self.version, base)).callbacks.append(self._done)

    def _done(self, ev: simpy.Event) -> None:
        version, base = ev._value
        if version != self.version:
            return
        now = self.env._now
        self._advance(now)
        # The scheduled job is done whatever rounding left on it (a delay below the clock's resolution would
        # otherwise fire again and again at the same instant); so is any job left with under a nanosecond.
        for done in [r for r, job in self.jobs.items() if r == base or job[0] <= 1e-9]:
            req = self.jobs.pop(done)[1]
            self.records.finished(done, now)
            self.reply(req, now)
        self._next()

    def stop(self) -> list[_Request]:
        """Every job in service."""
        super().stop()
        doomed = [job[1] for job in self.jobs.values()]
        self.jobs.clear()
        self.version += 1
        return doomed


def settle(
    backends: list[_Backend], endpoint: np.ndarray, arrived: np.ndarray, back: np.ndarray, horizon_s: float
) -> dict[str, np.ndarray]:
    """A settled run's pods at work (``_Run._run_settled``): each FIFO pod serves the requests that arrived
    (``arrived``, s, at pod ``endpoint``) before ``horizon_s``, in arrival order (equal times in send order, as
    SimPy takes events scheduled in that order), by the free-time recursion with its service draws in that order
    (``sim.queueing.fifo_serve``). Returns the rows' started, finished and returned times (s; a reply or a
    refusal takes ``back`` s to travel, and ``back`` becomes the returned column; NaN where the step never
    happened), outcomes and drop reasons."""
    n = len(arrived)
    started, finished = np.full(n, _NAN), np.full(n, _NAN)
    order = np.lexsort((arrived, endpoint))  # by pod, then arrival; stable: equal times in send order
    if horizon_s < math.inf:
        order = order[arrived[order] < horizon_s]  # those at or after it never arrived
    bounds = np.concatenate(([0], np.cumsum(np.bincount(endpoint[order], minlength=len(backends))))).tolist()
    busy = [i for i in range(len(backends)) if bounds[i + 1] > bounds[i]]
    limits = [b.pod.limit if isinstance(b, _ComputedFifo) else None for b in backends]
    first = 0
    while first < len(busy):  # pods in chunks of about _CHUNK rows: their arrivals as one list of floats
        last = first + 1
        while last < len(busy) and bounds[busy[last] + 1] - bounds[busy[first]] <= _CHUNK:
            last += 1
        lo, hi = bounds[busy[first]], bounds[busy[last - 1] + 1]
        rows = order[lo:hi]
        times = arrived[rows].tolist()
        starts: list[float] = []
        finishes: list[float] = []
        for i in busy[first:last]:
            b = backends[i]
            s, f = fifo_serve(times[bounds[i] - lo : bounds[i + 1] - lo], b.service_times, b.capacity, limits[i])
            starts += s
            finishes += f
        started[rows], finished[rows] = starts, finishes
        first = last
    del order
    outcome = np.full(n, _IN_FLIGHT, dtype=COLUMNS["outcome"])
    outcome[~np.isnan(finished)] = _OK
    refused = np.isnan(started) & ~np.isnan(finished)
    outcome[refused] = _DROPPED
    reason = np.zeros(n, dtype=COLUMNS["reason"])
    reason[refused] = int(DropReason.QUEUE_FULL)
    returned = np.add(finished, back, out=back)
    return {"t_started": started, "t_finished": finished, "t_returned": returned, "outcome": outcome, "reason": reason}


# --- proxies and clients ----------------------------------------------------------------------------------------


class _Target:
    """One endpoint as reached through one entry node: backend (and its arrival callback, bound once), pod index,
    path draws (s) and load slot."""

    __slots__ = ("arrive", "back", "backend", "load", "out", "pod", "slot")

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
        self.arrive = backend.arrive
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
        "simple",
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
        self.simple = False  # one entry node, a connection per request, no timeout (see _Run._ahead_safe)
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


_CHUNK = 1 << 16
"""Sends per chunk of a settled run's schedule turned into Python ints at once."""

_AHEAD = 127
"""Sends made ahead per schedule event where that changes nothing (``_Run._ahead_safe``): fewer events, and at
most this many more arrivals pending."""


class _Run:
    """The state of one run: SimPy environment, record columns, backends, proxies and streams."""

    def __init__(self, plan: Plan | Scenario, streams: Streams, shortcuts: bool = True, settle: bool = True) -> None:
        """The run's state, ready to run; from a scenario, its plan is compiled first (``benchmarks/scale.py``
        times this setup: plan, backends, routes and the send schedule). ``settle=False`` keeps a run that could
        be settled (``_settled``) on events, one per arrival (``benchmarks/run.py`` shows what settling saves)."""
        self._settle = settle and shortcuts
        with _gc_paused():  # a large cluster builds ~10^6 long-lived objects: no collection passes over them
            self._setup(plan if isinstance(plan, Plan) else compile_plan(plan), streams, shortcuts)

    def _setup(self, plan: Plan, streams: Streams, shortcuts: bool) -> None:
        """Backends, proxies and routes, streams and their first sends, control-plane and data-plane changes."""
        self.env = simpy.Environment()
        self.plan = plan
        self.rngs = streams
        self.dynamic = plan.dynamic
        self.records = _Records()
        # the records' arrays, for the two inlined writes (_send, reply); replaced only when the run is over
        self._times, self._ints, self._small = self.records.times, self.records.ints, self.records.small
        self._paths: dict[tuple[int, ...], Iterator[float]] = {}  # by the legs' delay classes
        self._proxies: dict[tuple[object, ...], tuple[Chooser, list[int] | None]] = {}
        self._affinity: dict[tuple[str, str], Affinity] = {}
        self._sends: Iterator[tuple[float, int]] = iter(())
        self._ahead = 0  # sends made ahead of their time per schedule event (see _ahead_safe)
        self._schedule: tuple[np.ndarray, np.ndarray] | None = None  # a settled run's sends: times (s), streams
        self._columns: dict[str, np.ndarray] | None = None  # a settled run's records, once it has run
        self._setup_backends(shortcuts)
        schedule = self._setup_streams(shortcuts)
        self._setup_schedule(schedule)
        self._setup_changes()

    def _setup_backends(self, shortcuts: bool) -> None:
        """One backend per pod, of its discipline, with its service-time draws: a FIFO pod computed on arrival
        (the shortcut) where the cluster does not change, else one event per step."""
        plan, streams = self.plan, self.rngs
        absent = plan.scenario.absent
        self.backends: list[_Backend] = []
        for pod in plan.pods:
            draws = blocks(pod.service_time, functools.partial(streams.generator, "service", pod.name))
            kind: type[_Backend] = _EventFifo
            if pod.discipline == Discipline.PS:
                kind = _Shared
            elif shortcuts and not self.dynamic:
                kind = _ComputedFifo
            b = kind(self, pod.concurrency, pod.queue_limit, draws)
            b.alive = pod.name not in absent
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
            s.simple = len(entries) == 1 and not spec.connections.keep_alive and s.timeout_s is None
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
        schedule.clear()  # the streams' own arrays, merged now
        order = time_order(at)  # equal times: in stream order, as the stream ticks would go
        if not len(order):
            return
        if self._settled():  # the run's t_sent and stream columns: held whole
            self._schedule = (at[order], who[order])
            del at, who
            self.env.timeout(float(self._schedule[0][0])).callbacks.append(self._run_settled)
            return
        self._sends = _schedule(at, who, order)
        del at, who, order
        first = next(self._sends)
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

    def _settled(self) -> bool:
        """Whether the run is its send schedule and then each pod's arrivals, with no event between them: every
        stream's sends may be made ahead (``_ahead_safe``: nothing but the schedule sends, and no send reads the
        clock or the system's state) and every pod computes its FIFO steps on arrival (``_ComputedFifo``), so
        no pod's state is read and no reply is waited for (``_run_settled``)."""
        return (
            self._settle
            and all(self._ahead_safe(s) for s in self.streams)
            and all(isinstance(b, _ComputedFifo) for b in self.backends)
        )

    def _ahead_safe(self, s: _Stream) -> bool:
        """Whether the stream's sends may be made ahead of their time, in schedule order: when nothing but the
        schedule ever sends (no closed loop, no retries) and a send reads no state that time changes (a static
        cluster, no affinity, keep-alive, timeout or connection-counting picker), a send's records and draws are
        the same whenever it is made, as long as sends are made in time order. Its arrival is scheduled from the
        earlier instant, so its time can differ from the one-send-per-event run in the last bit."""
        entry = s.entries[0]
        return (
            s.simple
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
        pod_index = self.plan.pod_index
        for name in sorted(change.stop):
            b = self.backends[pod_index[name]]
            if not b.alive:
                continue
            for req in b.stop():
                self.records.finished(req.base, now)  # the work ends here, unfinished
                # a dead node says nothing (the client's TCP gives up); a killed pod's reset travels back
                self.fail_after(LINUX_TCP_RETRIES2_S if reason == DropReason.NODE_FAILED else req.back, req, reason)
        for name in sorted(change.start):
            self.backends[pod_index[name]].alive = True

    # --- the request's life, one callback per step -------------------------------------------------------------

    def _tick(self, ev: simpy.Event) -> None:
        """A stream's send time has come: send, and for open loop schedule the next send."""
        s: _Stream = ev._value
        s.remaining -= 1
        self._send(s, -1, 0, self.env._now)
        if not s.closed and s.remaining > 0:
            gap = next(s.gaps, None)
            if gap is not None:
                self.env.timeout(gap, s).callbacks.append(self._tick)

    def _tick_schedule(self, ev: simpy.Event) -> None:
        """The next open-loop send of the merged schedule (and, where allowed, the next ``_ahead`` too): send it,
        and schedule the one after."""
        streams, sends, send = self.streams, self._sends, self._send
        at, k = ev._value
        send(streams[k], -1, 0, at)
        if self._ahead:
            for at, k in itertools.islice(sends, self._ahead):
                send(streams[k], -1, 0, at)
        after = next(sends, None)
        if after is not None:
            self.env.timeout(after[0] - self.env._now, after).callbacks.append(self._tick_schedule)

    def _run_settled(self, ev: simpy.Event) -> None:
        """A settled run (``_settled``), at its first send: every send of the merged schedule in order, as
        ``_send`` makes it (each a new connection: the same picks and draws, trips out and back drawn at the
        send), then each pod serves its arrivals in arrival order (``settle``). The records are those of the run
        with every step an event (``shortcuts=False``), to the bit: an arrival is its send time plus its trip out,
        the sum SimPy makes; a pod's steps follow the same recursion with the same service draws."""
        at, who = self._schedule  # type: ignore[misc]
        lanes = []  # per stream: its one entry's chooser and endpoints, its flow's address part, its ports
        for s in self.streams:
            entry = s.entries[0]
            lanes.append((entry.choose, entry.targets, s.ip << 16, s.ports))
        pods, outs, backs = array("i"), array("d"), array("d")
        pod, out, back = pods.append, outs.append, backs.append
        for lo in range(0, len(who), _CHUNK):  # in chunks: a list of every stream index would cost 36 B a send
            for k in who[lo : lo + _CHUNK].tolist():
                choose, targets, ip, ports = lanes[k]
                target = targets[choose(ip | next(ports))]
                pod(target.pod)
                out(next(target.out))
                back(next(target.back))
        horizon_s = math.inf if self.plan.duration_s is None else self.plan.duration_s
        entry_node = np.array([s.entries[0].node for s in self.streams], dtype=COLUMNS["entry_node"])
        preserved = np.array([s.entries[0].preserved for s in self.streams], dtype=COLUMNS["source_preserved"])
        endpoint = np.frombuffer(pods, dtype=np.int32)  # views on the arrays just written, no second copy
        arrived = np.add(at, np.frombuffer(outs), out=np.frombuffer(outs))  # sent + trip out, in place
        n = len(at)
        self._columns = {
            "stream": who,
            "request": np.arange(n, dtype=COLUMNS["request"]),
            "attempt": np.zeros(n, dtype=COLUMNS["attempt"]),
            "version": np.zeros(n, dtype=COLUMNS["version"]),
            "entry_node": entry_node[who],
            "endpoint": endpoint,
            "pick": np.full(n, PICK_FRESH, dtype=COLUMNS["pick"]),
            "source_preserved": preserved[who],
            "t_sent": at,
            "t_arrived": arrived,
            **settle(self.backends, endpoint, arrived, np.frombuffer(backs), horizon_s),  # backs: returned
        }

    def _send(self, s: _Stream, request: int, attempt: int, at: float) -> None:
        """Open (or reuse) a connection and send one attempt at ``at`` (s); ``request`` is the first attempt's row,
        or -1. ``at`` is now, or later only for a send made ahead (``_tick_schedule``, ``_ahead_safe``: a send
        that reads no clock), whose trip out is then scheduled from now."""
        now = self.env._now
        conn = s.conn_target
        if conn is None or s.conn_left <= 0 or now - s.conn_opened >= s.max_age_s:  # a new connection
            entry = s.entries[0] if s.lb is None else s.entries[next(s.lb)]
            choose = entry.choose
            if choose is None:
                self._unrouted(s, entry, request, attempt, PICK_FRESH, entry.fail_after, entry.drop)
                return
            if entry.affinity is None:
                target, pick = entry.targets[choose((s.ip << 16) | next(s.ports))], PICK_FRESH
            else:
                target, pick = self._affine(s, entry, now)
            if s.max_requests > 1:
                s.conn_target = (entry, target)
                s.conn_left = s.max_requests - 1
                s.conn_opened = now
        else:
            entry, target = conn
            if entry.expire is not None and target.pod not in entry.expire:  # its real server was deleted
                s.conn_target = None
                self._unrouted(s, entry, request, attempt, PICK_REUSED, LINUX_TCP_RTO_MIN_S, REAL_SERVER_DELETED)
                return
            s.conn_left -= 1
            pick = PICK_REUSED
        if target.load is not None:
            target.load[target.slot] += 1
        times = self._times  # records.open, inlined: the write every request makes
        base = len(times)
        times.extend((at, _NAN, _NAN, _NAN, _NAN))
        self._ints.extend((s.index, base // 5 if request < 0 else request, target.pod, entry.node, entry.version))
        self._small.extend((attempt, pick, entry.preserved, _IN_FLIGHT, 0))
        out = at - now + next(target.out)  # at == now: exactly the trip out
        req = _Request(base, s, target, next(target.back))
        self.env.timeout(out, req).callbacks.append(target.arrive)
        if s.timeout_s is not None:
            self.env.timeout(s.timeout_s, req).callbacks.append(self._expire)

    def _affine(self, s: _Stream, entry: _Entry, now: float) -> tuple[_Target, int]:
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

    def _unrouted(
        self, s: _Stream, entry: _Entry, request: int, attempt: int, pick: int, after_s: float, reason: int
    ) -> None:
        """An attempt that reaches no endpoint: it fails for ``reason`` after ``after_s`` seconds (or its timeout)."""
        now = self.env._now
        base = self.records.open(now, s.index, request, -1, entry.node, entry.version, attempt, pick, entry.preserved)
        req = _Request(base, s, None, 0.0)
        req.reason = reason
        self.env.timeout(after_s, req).callbacks.append(self._fail)
        if s.timeout_s is not None:
            self.env.timeout(s.timeout_s, req).callbacks.append(self._expire)

    def reply(self, req: _Request, finished: float) -> None:
        """The reply leaves the pod at ``finished`` (s): written now if nobody waits for it, else an event."""
        target = req.target
        assert target is not None
        if req.stream.passive and target.load is None:  # past the horizon, result() marks it in flight
            base = req.base
            self._times[base + _RETURNED] = finished + req.back  # records.end(base, ..., OK), inlined
            self._small[base + 3] = _OK
        else:
            self.env.timeout(finished - self.env._now + req.back, req).callbacks.append(self._return)

    def _return(self, ev: simpy.Event) -> None:
        """The reply reaches the client (unless it gave up already; the backend did the work anyway)."""
        self._over(ev._value, _OK)

    def fail_after(self, delay: float, req: _Request, reason: DropReason) -> None:
        """The attempt fails for ``reason`` after ``delay`` seconds (as the client learns of it)."""
        req.reason = int(reason)
        self.env.timeout(delay, req).callbacks.append(self._fail)

    def _fail(self, ev: simpy.Event) -> None:
        """The client learns that the attempt failed (for the request's ``reason``)."""
        req: _Request = ev._value
        self._over(req, _DROPPED, req.reason)

    def _expire(self, ev: simpy.Event) -> None:
        """The client's request timeout."""
        self._over(ev._value, _TIMEOUT)

    def _over(self, req: _Request, outcome: int, reason: int = 0) -> None:
        """The attempt is over for the client with ``outcome``, unless it was already: free its connection slot,
        then retry or go on."""
        records, base, s = self.records, req.base, req.stream
        if not records.in_flight(base):
            return
        records.end(base, self.env._now, outcome, reason)
        target = req.target
        if target is not None and target.load is not None:
            target.load[target.slot] -= 1
        if outcome != _OK and s.retries:
            attempt = records.attempt(base)
            if attempt < s.retries:
                cap = min(s.retry_max_s, s.retry_base_s * 2**attempt)
                self.env.timeout(next(s.backoff) * cap, req).callbacks.append(self._retry)
                return
        if s.closed and s.remaining > 0:
            s.remaining -= 1
            if s.think_zero:
                self._send(s, -1, 0, self.env._now)
            else:
                self.env.timeout(next(s.gaps), s).callbacks.append(self._again)

    def _retry(self, ev: simpy.Event) -> None:
        """The backoff is over: the failed attempt's request is sent again, as its next attempt."""
        req: _Request = ev._value
        records = self.records
        self._send(req.stream, records.request(req.base), records.attempt(req.base) + 1, self.env._now)

    def _again(self, ev: simpy.Event) -> None:
        """Closed loop: the think time is over; send the next request."""
        self._send(ev._value, -1, 0, self.env._now)

    # --- results -------------------------------------------------------------------------------------------------

    def result(self, seed: Seed) -> RunResult:
        """Freeze the raw columns into a RunResult (``Plan.result``): steps written ahead of the clock at or past
        the horizon have not happened; without a horizon, the run ends at its last event or reply."""
        cols = self.records.columns() if self._columns is None else self._columns
        end, duration_s = self.env.now, self.plan.duration_s
        if duration_s is not None:  # shortcuts wrote steps ahead: those at or past the horizon have not happened
            for name in ("t_arrived", "t_started", "t_finished", "t_returned"):
                column = cols[name] = cols[name].astype(COLUMNS[name], copy=False)
                column[column >= duration_s] = _NAN
            outcome = cols["outcome"] = cols["outcome"].astype(COLUMNS["outcome"], copy=False)
            pending = ((outcome == _OK) | (outcome == _DROPPED)) & np.isnan(cols["t_returned"])
            outcome[pending] = _IN_FLIGHT  # a reply (or a refusal, settled) whose news had not come back
            cols["reason"][pending] = 0
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
