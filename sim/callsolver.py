"""The event-free solver's call graphs: open-loop call trees of FIFO pods, solved tier by tier.

Where ``calls_problem(plan)`` finds nothing that needs events, ``solve_calls(plan, seed)`` computes a call graph's
run without an event loop and writes the event path's records byte for byte (``tests/test_engine.py``,
``tests/test_properties.py``). It takes the Services in an order of tasks (``tasks``):

- ``serve`` a Service once every call into it has been sent: its sends (client requests and calls) routed in send
  order through their proxies (load-balancer pick, source port, picker, path draws out and back, as the event path
  draws them), then each pod's arrivals served in arrival order by the free-time recursion
  (``sim.queueing.fifo_serve``, the recursion the event path's FIFO pods take on arrival). A request of a Service
  that makes no calls replies at once; one of a calling Service (async: the worker is freed after its own work)
  begins its first stage when its own work is done;
- ``stage`` k of a calling Service once the replies of its stage k-1 are known: each request's stage begins when
  the last reply of the stage before reaches it (the stage's join), and its calls go out then;
- ``reply`` of a calling Service once its last stage's replies are known: the reply (or the failure of a call that
  was not optional) leaves at the last stage's join.

Order. Draws that several requests share (a proxy's picker, a path's delays, a pod's service times, a Service's
draws for calls made with a probability) are taken in the event path's order, and where times tie the event path
goes by SimPy's: time, then the order in which the events were scheduled. The solver keeps each event it
reconstructs (a send tick, an arrival, the end of a pod's own work, a reply or failure reaching its caller) with
its time and its position, the event whose callback scheduled it and its place there, and orders ties by walking
up the positions (``_Events.compare``), as SimPy's event ids would. The event path meant is ``sim.engine.run`` as
``simulate`` runs it (its shortcuts on: open-loop sends as one merged schedule, each tick at the one before plus
the gap); with every step an event (``shortcuts=False``) each stream ticks on its own, so sends at one instant can
come in another order and interleaved ticks land on the send times to the last bit: the same run within rounding.

Sync calls are solved where the calling pods never run out of workers (``_sync_problem``: a worker for every request
that can reach the pod), so a worker held through its request's calls holds up no other request.

What needs events instead (``calls_problem``): sync calls from a pod that can run out of workers (the worker waits
for its calls, so the pod's queue depends on its callees), a call's timeout or retries, a Service called again after
its own replies (``count`` calls one after another, or one Service in two stages of a caller: its arrivals depend on
its own queue), draws for calls with a probability in two stages of one Service (drawn in the order stages begin,
across requests), a pod that shares its CPUs or serves two Services, and random network delays on a path that
requests into two Services take (its draws go in send order across both).
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np

from sim.callgraph import Call, CallMode, Parallel, ServiceCalls, members
from sim.cluster import Discipline
from sim.distributions import fixed_value
from sim.outcomes import DropReason, Outcome
from sim.plan import Draws, Plan, StreamPlan, clip_to_horizon, first_attempts, stream_bound
from sim.queueing import fifo_serve
from sim.records import COLUMNS, RunResult
from sim.rng import Seed, Streams
from sim.workload import send_times, time_order

Task = tuple[str, str, int]
"""One step of the solver: (``serve`` | ``stage`` | ``reply``, Service, stage number; 0 but for ``stage``)."""

_OK, _DROPPED, _QUEUE_FULL = int(Outcome.OK), int(Outcome.DROPPED), int(DropReason.QUEUE_FULL)


def calls_problem(plan: Plan) -> str | None:
    """Why the plan's call graph needs events (None: ``solve_calls`` writes its run exactly)."""
    for name, calls in plan.scenario.call_graph.services.items():
        problem = _caller_problem(name, calls)
        if problem is None and calls.stages and calls.mode == CallMode.SYNC:
            problem = _sync_problem(plan, name)
        if problem is not None:
            return problem
    problem = _pods_problem(plan) or _paths_problem(plan)
    if problem is not None:
        return problem
    order = tasks(plan)
    return order if isinstance(order, str) else None


def _caller_problem(name: str, calls: ServiceCalls) -> str | None:
    """Why a calling Service's requests need events (None: they do not)."""
    if not calls.stages:
        return None
    drawn = []
    for k, stage in enumerate(calls.stages, start=1):
        if not isinstance(stage, Parallel) and stage.count > 1:
            return (
                f"service {name} calls {stage.service} {stage.count} times one after another: "
                "each call is sent when the one before replies"
            )
        for call in members(stage):
            if call.timeout_s is not None:
                return (
                    f"the calls of {name} to {call.service} time out ({call.timeout_s:g} s): "
                    "the give-up races the reply"
                )
            if call.retries.attempts:
                return f"the calls of {name} to {call.service} are retried: a retry is sent when the failure is seen"
        if any(c.probability < 1.0 for c in members(stage)):
            drawn.append(k)
    if len(drawn) > 1:
        return (
            f"service {name} draws its calls with a probability in stages {drawn[0]} and {drawn[1]}: "
            "the draws go in the order the stages begin, across requests"
        )
    return None


def _sync_problem(plan: Plan, name: str) -> str | None:
    """Why a Service's sync calls need events (None: none of its pods can run out of workers, so a worker held
    through its request's calls never holds up another request)."""
    most = _most_requests(plan, name)
    pods = sorted({i for sp in plan.streams if sp.spec.service == name for rp in sp.routes[0] for i in rp.pods})
    for i in pods:
        pod = plan.pods[i]
        if most is None or pod.concurrency < most:
            can = "an unbounded number of" if most is None else f"up to {most}"
            return (
                f"service {name} makes sync calls: pod {pod.name}'s {pod.concurrency} workers wait for them and "
                f"{can} requests can reach it, so its queue can depend on its callees"
            )
    return None


def _most_requests(plan: Plan, name: str) -> int | None:
    """Most requests Service ``name`` can receive in a run: its client streams' bounds, plus each caller's most
    requests times the calls each makes to it (every probability taken as 1; None: no bound)."""
    total = 0
    for sp in plan.streams:
        if not sp.call and sp.spec.service == name:
            bound = stream_bound(sp.spec, plan.duration_s)
            if bound is None:
                return None
            total += bound
    graph = plan.scenario.call_graph
    for caller in graph.services:
        per = sum(c.count for c in graph.of(caller).calls() if c.service == name)
        if per:
            most = _most_requests(plan, caller)
            if most is None:
                return None
            total += most * per
    return total


def _pods_problem(plan: Plan) -> str | None:
    """Why a pod that requests reach needs events in a call graph (None: each is FIFO and serves one Service)."""
    serves: dict[int, set[str]] = {}
    for sp in plan.streams:
        for rp in sp.routes[0]:
            for i in rp.pods:
                serves.setdefault(i, set()).add(sp.spec.service)
    for i, names in sorted(serves.items()):
        pod = plan.pods[i]
        if pod.discipline != Discipline.FIFO:
            return f"pod {pod.name} shares its CPUs (processor sharing): each request's pace depends on the others"
        if len(names) > 1:
            return f"pod {pod.name} serves {' and '.join(sorted(names))}: its queue mixes requests of two tiers"
    return None


def _paths_problem(plan: Plan) -> str | None:
    """Why path delays need events (None: each path of random delay carries requests into one Service only)."""
    users: dict[tuple[int, ...], set[str]] = {}
    for sp in plan.streams:
        for rp in sp.routes[0]:
            for out, back in plan.path_classes(sp.origin, rp.node, rp.endpoint_nodes):
                for classes in (out, back):
                    if fixed_value(plan.path_dist(classes)) is None:
                        users.setdefault(classes, set()).add(sp.spec.service)
    for names in users.values():
        if len(names) > 1:
            first, second = sorted(names)[:2]
            return (
                f"requests into {first} and into {second} take a path of random network delay, whose draws go "
                "in send order across both"
            )
    return None


def tasks(plan: Plan) -> list[Task] | str:
    """The order of the solver's steps (each after the steps it needs: Kahn's algorithm, ties in the order the
    steps are named), or why there is none (a Service whose arrivals wait on its own replies)."""
    graph = plan.scenario.call_graph
    names = dict.fromkeys([*(sp.spec.service for sp in plan.streams if not sp.call), *graph.names()])
    needs: dict[Task, set[Task]] = {}
    for name in names:
        stages = graph.of(name).stages
        needs.setdefault(("serve", name, 0), set())
        for k, stage in enumerate(stages, start=1):
            before = {("serve", name, 0)} if k == 1 else {("stage", name, k - 1)}
            if k > 1:
                before |= {("reply", c.service, 0) for c in members(stages[k - 2])}
            needs[("stage", name, k)] = before
            for c in members(stage):
                needs.setdefault(("serve", c.service, 0), set()).add(("stage", name, k))
        last = {("serve", name, 0)}
        if stages:
            last = {("stage", name, len(stages))} | {("reply", c.service, 0) for c in members(stages[-1])}
        needs[("reply", name, 0)] = last
    order: list[Task] = []
    done: set[Task] = set()
    while len(order) < len(needs):
        ready = [t for t, before in needs.items() if t not in done and before <= done]
        if not ready:
            stuck = next(t[1] for t in needs if t[0] == "serve" and t not in done and _waits_on(needs, t, t))
            return (
                f"calls into {stuck} are sent only after replies that wait on {stuck}'s own queue: "
                "its arrivals and its replies cannot be solved apart"
            )
        order += ready
        done.update(ready)
    return order


def _waits_on(needs: dict[Task, set[Task]], task: Task, target: Task) -> bool:
    """Whether ``task`` needs ``target``, directly or through the steps it needs."""
    seen: set[Task] = set()
    todo = list(needs[task])
    while todo:
        t = todo.pop()
        if t == target:
            return True
        if t not in seen:
            seen.add(t)
            todo.extend(needs[t])
    return False


class _Events:
    """The event path's events as the solver reconstructs them, in batches: each one's time (s) and position (the
    event whose callback scheduled it, -1 for the run's setup, and its place among that callback's schedulings)."""

    __slots__ = ("parent", "place", "t")

    def __init__(self) -> None:
        self.t = np.zeros(0)
        self.parent = np.zeros(0, dtype=np.int64)
        self.place = np.zeros(0, dtype=np.int64)

    def add(self, t: np.ndarray, parent: np.ndarray, place: np.ndarray | int) -> np.ndarray:
        """New events at ``t`` (s), each scheduled by ``parent``'s callback as its ``place``-th; their ids."""
        first = len(self.t)
        self.t = np.concatenate((self.t, t))
        self.parent = np.concatenate((self.parent, parent))
        self.place = np.concatenate((self.place, np.broadcast_to(np.asarray(place, dtype=np.int64), t.shape)))
        return np.arange(first, len(self.t), dtype=np.int64)

    def compare(self, a: tuple[int, int], b: tuple[int, int]) -> int:
        """SimPy's order of two positions (event, place in its callback; an event itself: place -1): by the
        events' times, then by the positions they were scheduled from (negative: ``a`` first)."""
        (e1, s1), (e2, s2) = a, b
        t, parent, place = self.t, self.parent, self.place
        while e1 != e2:
            if e1 < 0 or e2 < 0:  # the setup schedules before any callback runs
                return -1 if e1 < 0 else 1
            t1, t2 = t[e1], t[e2]
            if t1 != t2:
                return -1 if t1 < t2 else 1
            e1, s1, e2, s2 = int(parent[e1]), int(place[e1]), int(parent[e2]), int(place[e2])
        return (s1 > s2) - (s1 < s2)

    def _by_position(self, events: list[int], places: list[int]) -> Callable[[int, int], int]:
        """``compare`` of items ``i`` and ``j`` at positions (``events[i]``, ``places[i]``)."""
        return lambda i, j: self.compare((events[i], places[i]), (events[j], places[j]))

    def order(self, events: np.ndarray, places: np.ndarray | None = None) -> np.ndarray:
        """The permutation putting positions (``events``, ``places``; None: the events themselves) in SimPy's
        order: by time (a stable sort), runs of equal times by ``compare`` where their order is not already that
        of one callback's places."""
        times = self.t[events]
        perm = np.argsort(times, kind="stable")
        if len(perm) < 2:
            return perm
        tied = times[perm][1:] == times[perm][:-1]
        if not tied.any():
            return perm
        ev = events[perm]
        pl = np.full(len(perm), -1, dtype=np.int64) if places is None else places[perm]
        doubt = tied & ~((ev[1:] == ev[:-1]) & (pl[1:] > pl[:-1]))
        if not doubt.any():
            return perm
        starts = np.flatnonzero(np.concatenate(([True], ~tied)))
        ends = np.append(starts[1:], len(perm))
        run_of = np.cumsum(np.concatenate(([True], ~tied))) - 1
        out = perm.tolist()
        unplaced = np.full(len(events), -1, dtype=np.int64)
        key = functools.cmp_to_key(
            self._by_position(events.tolist(), (unplaced if places is None else places).tolist())
        )
        for run in np.unique(run_of[1:][doubt]).tolist():
            lo, hi = int(starts[run]), int(ends[run])
            out[lo:hi] = sorted(out[lo:hi], key=key)
        return np.array(out, dtype=np.int64)


_ROW_COLUMNS: dict[str, tuple[type, float]] = {
    "sent_by": (np.int64, -1), "place": (np.int64, 0), "stream": (np.int64, -1), "parent": (np.int64, -1),
    "call": (np.int64, -1), "entry": (np.int64, -1), "preserved": (np.int64, 0), "endpoint": (np.int64, -1),
    "back": (np.float64, 0.0), "arrival": (np.int64, -1), "started": (np.float64, math.nan),
    "finished": (np.float64, math.nan), "returned": (np.float64, math.nan), "ends": (np.int64, -1),
    "outcome": (np.int64, _OK), "reason": (np.int64, 0),
}  # fmt: skip
"""The solver's columns per row (a send): its position (the event whose callback sent it, its place there), stream,
parent row (-1: a client's request), call (index into ``_Solver.calls``), entry node, source kept, endpoint pod,
trip back (s), arrival event, start and finish (s), return (s), the event where its caller learns of its end,
outcome and reason; with their defaults."""


@dataclass
class _Jobs:
    """A calling Service's requests, one entry each: its row, the stage it begins next (1-based), the event whose
    callback begins it (-1: never: its reply never comes), its failure's reason (0: none); and the calls of the
    stage in flight (rows, each with its job)."""

    row: np.ndarray
    stage: np.ndarray
    begins: np.ndarray
    reason: np.ndarray
    pending: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    pending_job: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))


class _Solver:
    """One call-graph run solved without events: its events, rows, jobs and the draws they share."""

    def __init__(self, plan: Plan, draws: Draws) -> None:
        self.plan = plan
        self.draws = draws
        self.horizon_s = plan.horizon_s
        self.events = _Events()
        self.rows: dict[str, np.ndarray] = {name: np.zeros(0, dtype=dtype) for name, (dtype, _) in _ROW_COLUMNS.items()}
        self.into: dict[str, list[np.ndarray]] = {}  # Service -> the rows sent into it, not yet served
        self.jobs: dict[str, _Jobs] = {}  # calling Service -> its requests' calls
        self.calls: list[Call] = []
        self.graph = plan.scenario.call_graph
        self.router = _Router(plan, draws)
        self.is_call = np.array([sp.call for sp in plan.streams], dtype=bool)

    def send(self, service: str, **columns: np.ndarray) -> np.ndarray:
        """New rows (sends into ``service``, queued for its ``serve``) with ``columns``, the rest at defaults;
        their indices."""
        n = len(columns["sent_by"])
        first = len(self.rows["stream"])
        for name, (dtype, default) in _ROW_COLUMNS.items():
            add = columns[name] if name in columns else np.full(n, default, dtype=dtype)
            self.rows[name] = np.concatenate((self.rows[name], add.astype(dtype, copy=False)))
        ids = np.arange(first, first + n, dtype=np.int64)
        self.into.setdefault(service, []).append(ids)
        return ids

    def client_sends(self) -> None:
        """The open-loop streams' sends, one merged schedule as the event path ticks it: each tick scheduled by
        the one before, after that one's send, at that one's time plus the gap between the two send times (which
        may round away from the send time where two streams interleave)."""
        plan, merged = self.plan, []
        for sp in plan.streams:
            if not sp.call:
                spec = sp.spec
                gaps = spec.workload.gap_blocks(self.draws.rngs.generator(*sp.key("arrivals")))  # type: ignore[union-attr]
                merged.append((send_times(gaps, spec.start_s, spec.requests, plan.duration_s), sp.index))
        if not merged:
            return
        at = np.concatenate([times for times, _ in merged])
        who = np.concatenate([np.full(len(times), k, dtype=np.int64) for times, k in merged])
        order = time_order(at)
        ticks, now = [], 0.0
        for t in at[order].tolist():
            now += t - now  # the tick's time as SimPy reaches it: the one before plus the delay to this send
            ticks.append(now)
        n = len(ticks)
        ids = self.events.add(np.array(ticks), np.arange(-1, n - 1), np.minimum(np.arange(n), 1))
        for k in np.unique(who).tolist():
            mine = who[order] == k
            self.send(plan.streams[k].spec.service, sent_by=ids[mine], place=np.zeros(int(mine.sum())),
                      stream=np.full(int(mine.sum()), k))  # fmt: skip

    def end(self, rows: np.ndarray, events: np.ndarray, outcome: int, reason: np.ndarray | int) -> None:
        """The rows' callers learn of their ends at ``events`` (those that come before the horizon)."""
        t = self.events.t[events]
        happen = t < self.horizon_s
        r = rows[happen]
        self.rows["ends"][r], self.rows["returned"][r] = events[happen], t[happen]
        self.rows["outcome"][r] = outcome
        self.rows["reason"][r] = np.broadcast_to(reason, rows.shape)[happen]

    def run(self, task: Task) -> None:
        """One step of ``tasks``."""
        kind, name, k = task
        if kind == "serve":
            self.serve(name)
        elif kind == "stage":
            self.stage(name, k)
        else:
            self.reply(name)

    # --- serve: route, arrive, queue ---------------------------------------------------------------------------

    def serve(self, name: str) -> None:
        """Route the sends into ``name`` in send order, then serve each pod's arrivals in arrival order."""
        cols, events = self.rows, self.events
        sends = np.concatenate(self.into.pop(name, [np.zeros(0, dtype=np.int64)]))
        sends = sends[events.order(cols["sent_by"][sends], cols["place"][sends])]
        pod, out, fail, drop = self.router.route(cols, sends)
        t = events.t[cols["sent_by"][sends]]
        routed = pod >= 0
        if not routed.all():
            lost = sends[~routed]
            failed = events.add(t[~routed] + fail[~routed], cols["sent_by"][lost], cols["place"][lost])
            self.end(lost, failed, _DROPPED, drop[~routed])
        sends, t, out, pod = sends[routed], t[routed], out[routed], pod[routed]
        cols["arrival"][sends] = events.add(t + out, cols["sent_by"][sends], cols["place"][sends])
        came = events.t[cols["arrival"][sends]] < self.horizon_s
        sends, pod = sends[came], pod[came]
        by_time = events.order(cols["arrival"][sends])
        sends, pod = sends[by_time], pod[by_time]
        by_pod = np.argsort(pod, kind="stable")
        sends, pod = sends[by_pod], pod[by_pod]
        bounds = [0, *(np.flatnonzero(pod[1:] != pod[:-1]) + 1).tolist(), len(pod)] if len(pod) else []
        program = self.graph.of(name)
        found = [self.serve_pod(int(pod[lo]), sends[lo:hi], program) for lo, hi in itertools.pairwise(bounds)]
        if program.stages:
            rows = np.concatenate([np.zeros(0, dtype=np.int64), *(r for r, _ in found)])
            begins = np.concatenate([np.zeros(0, dtype=np.int64), *(b for _, b in found)])
            n = len(rows)
            self.jobs[name] = _Jobs(rows, np.ones(n, dtype=np.int64), begins, np.zeros(n, dtype=np.int64))

    def serve_pod(self, pod: int, arrivals: np.ndarray, program: ServiceCalls) -> tuple[np.ndarray, np.ndarray]:
        """The pod's arrivals (before the horizon, in arrival order) by the free-time recursion (a sync caller's
        pod, which never runs out of workers: each starts on arrival, its own work an event as ``CallingFifo``'s);
        each served request replies or begins its calls, each refused one's refusal travels back. Returns the rows
        that begin calls and the events whose callbacks begin them."""
        cols, events, spec = self.rows, self.events, self.plan.pods[pod]
        arrival = cols["arrival"][arrivals]
        a = events.t[arrival]
        service = self.draws.service(spec)
        if program.stages and program.mode == CallMode.SYNC:
            cols["started"][arrivals] = a
            begins = events.add(a + np.array([next(service) for _ in range(len(a))]), arrival, 0)
            return self._begin(arrivals, begins)
        starts, finishes = fifo_serve(a.tolist(), service, spec.concurrency, spec.queue_limit)
        start, finish = np.array(starts), np.array(finishes)
        cols["started"][arrivals], cols["finished"][arrivals] = start, finish
        refused = np.isnan(start)
        if refused.any():
            back = cols["back"][arrivals[refused]]
            self.end(arrivals[refused], events.add(a[refused] + back, arrival[refused], 0), _DROPPED, _QUEUE_FULL)
        ok = ~refused
        rows, a, f, arrival = arrivals[ok], a[ok], finish[ok], arrival[ok]
        back = cols["back"][rows]
        if program.stages:  # its calls begin when its own work is done (in the arrival's callback, if done now)
            begins = arrival.copy()
            later = f > a
            begins[later] = events.add(a[later] + (f[later] - a[later]), arrival[later], 0)
            return self._begin(rows, begins)
        call = self.is_call[cols["stream"][rows]]
        self.end(rows[call], events.add(a[call] + ((f[call] - a[call]) + back[call]), arrival[call], 0), _OK, 0)
        cols["returned"][rows[~call]] = f[~call] + back[~call]  # nobody waits: the event path writes it at once
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)

    def _begin(self, rows: np.ndarray, begins: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The rows whose calls begin at ``begins``, and those events, where they come before the horizon."""
        happen = self.events.t[begins] < self.horizon_s
        return rows[happen], begins[happen]

    # --- stages and replies --------------------------------------------------------------------------------------

    def join(self, jobs: _Jobs) -> None:
        """Each job's stage in flight joins where its last call's end reaches it (never, if one never does); the
        first failed call that is not optional (in the order their ends come) fails it."""
        if not len(jobs.pending):
            return
        cols = self.rows
        ends = cols["ends"][jobs.pending]
        stuck = jobs.pending_job[ends < 0]
        done = ends >= 0
        calls, job = jobs.pending[done], jobs.pending_job[done]
        order = self.events.order(ends[done])
        calls, job = calls[order], job[order]
        last, at = np.unique(job[::-1], return_index=True)
        jobs.begins[last] = cols["ends"][calls[len(calls) - 1 - at]]
        optional = np.array([c.optional for c in self.calls], dtype=bool)[cols["call"][calls]]
        failed = (cols["outcome"][calls] != _OK) & ~optional
        first, at = np.unique(job[failed], return_index=True)
        jobs.reason[first] = cols["reason"][calls[failed][at]]
        jobs.begins[stuck] = -1
        jobs.pending = jobs.pending_job = np.zeros(0, dtype=np.int64)

    def stage(self, name: str, k: int) -> None:
        """Stage ``k`` of ``name``'s requests: each joins its stage before, then (unless failed) draws the calls
        made with a probability (in the order the stages begin) and sends its calls, one after another in its
        callback; a stage that makes no call hands its request to the next at once."""
        jobs = self.jobs.get(name)
        if jobs is None:
            return
        self.join(jobs)
        ready = np.flatnonzero((jobs.stage == k) & (jobs.begins >= 0) & (jobs.reason == 0))
        stage = self.graph.of(name).stages[k - 1]
        calls = members(stage)
        made = np.ones((len(ready), len(calls)), dtype=bool)
        if any(c.probability < 1.0 for c in calls):
            ready = ready[self.events.order(jobs.begins[ready])]
            draws = self.draws.calls(name)  # the Service's one draw stream: only this stage draws from it
            for j in range(len(ready)):
                for m, c in enumerate(calls):
                    made[j, m] = c.probability >= 1.0 or next(draws) < c.probability
        jobs.stage[ready] = k + 1
        counts = np.array([c.count if isinstance(stage, Parallel) else 1 for c in calls])
        places = np.cumsum(made * counts, axis=1) - made * counts  # each member's first place in the callback
        caller = self.rows["endpoint"][jobs.row[ready]]
        sent, of_job = [], []
        for m, c in enumerate(calls):
            self.calls.append(c)
            streams = np.array([self.plan.call_streams[p, c.service, c.port] for p in caller.tolist()], dtype=np.int64)
            who = made[:, m]
            for n in range(int(counts[m])):
                rows = self.send(
                    c.service, sent_by=jobs.begins[ready][who], place=places[who, m] + n, stream=streams[who],
                    parent=jobs.row[ready][who], call=np.full(int(who.sum()), len(self.calls) - 1),
                )  # fmt: skip
                sent.append(rows)
                of_job.append(ready[who])
        jobs.pending = np.concatenate([np.zeros(0, dtype=np.int64), *sent])
        jobs.pending_job = np.concatenate([np.zeros(0, dtype=np.int64), *of_job])

    def reply(self, name: str) -> None:
        """The calling requests of ``name`` whose last stage joined: the reply, or the failure, leaves (a sync
        caller's worker is released: the request is finished)."""
        jobs = self.jobs.get(name)
        if jobs is None:
            return
        self.join(jobs)
        cols, events = self.rows, self.events
        live = jobs.begins >= 0
        rows, at, reason = jobs.row[live], jobs.begins[live], jobs.reason[live]
        t, back = events.t[at], cols["back"][rows]
        if self.graph.of(name).mode == CallMode.SYNC:
            cols["finished"][rows] = t
        failed = reason != 0
        self.end(rows[failed], events.add(t[failed] + back[failed], at[failed], 0), _DROPPED, reason[failed])
        call = self.is_call[cols["stream"][rows]] & ~failed
        self.end(rows[call], events.add(t[call] + back[call], at[call], 0), _OK, 0)  # now + ((now - now) + back)
        client = ~failed & ~call
        cols["returned"][rows[client]] = t[client] + back[client]


def _records(solver: _Solver, seed: Seed, engine: str) -> RunResult:
    """A solved run's records, rows in send order, with the horizon rule and each call's parent row."""
    cols, t = solver.rows, solver.events.t
    n = len(cols["stream"])
    order = solver.events.order(cols["sent_by"], cols["place"])
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n)
    arrival = cols["arrival"][order]
    parent = cols["parent"][order]
    raw = {
        "t_sent": t[cols["sent_by"][order]],
        "t_arrived": np.where(arrival >= 0, t[np.maximum(arrival, 0)] if len(t) else 0.0, np.nan),
        "t_started": cols["started"][order],
        "t_finished": cols["finished"][order],
        "t_returned": cols["returned"][order],
        "outcome": cols["outcome"][order],
        "reason": cols["reason"][order],
        "stream": cols["stream"][order],
        "entry_node": cols["entry"][order],
        "endpoint": cols["endpoint"][order],
        "source_preserved": cols["preserved"][order],
    }
    out = {name: values.astype(COLUMNS[name], copy=False) for name, values in raw.items()}
    clip_to_horizon(out, solver.horizon_s)
    end_s = solver.plan.duration_s
    if end_s is None:  # the event loop runs until its last event: a send, a reply or a failure
        returned = out["t_returned"]
        last = float(np.nanmax(returned)) if n and not np.isnan(returned).all() else 0.0
        end_s = max(float(out["t_sent"][-1]), last) if n else 0.0
    out |= first_attempts(n)
    links = np.where(parent >= 0, rank[np.maximum(parent, 0)], -1).astype(np.int32)
    return solver.plan.result(seed, out, end_s, engine, parent=links)


class _Router:
    """The proxies' state as the solver routes sends: per stream its load-balancer picks and source ports, per
    proxy its chooser, per (stream, entry) its ``_Way``; each drawn from ``Draws`` as the event path draws them."""

    def __init__(self, plan: Plan, draws: Draws) -> None:
        self.plan = plan
        self.draws = draws
        self.lbs = [draws.entries(sp) for sp in plan.streams]
        self.ports = [draws.ports(sp) for sp in plan.streams]
        self.choosers: dict[tuple[object, ...], Callable[[int], int]] = {}
        self.ways: dict[tuple[int, int], _Way] = {}

    def route(
        self, cols: dict[str, np.ndarray], sends: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Per send, in send order, as the event path draws them at its send: its entry (load-balancer pick), its
        proxy's pick for its new connection's flow and its trips out and back (written to the rows); returns
        per send its pod (-1: unrouted), trip out (s), and for the unrouted the wait (s) and the drop reason."""
        plan = self.plan
        n = len(sends)
        pods, outs, backs = np.full(n, -1, dtype=np.int64), np.zeros(n), np.zeros(n)
        entry, kept = np.zeros(n, dtype=np.int64), np.zeros(n, dtype=np.int64)
        fail, drop = np.zeros(n), np.zeros(n, dtype=np.int64)
        lbs, ports, ways = self.lbs, self.ports, self.ways
        for j, k in enumerate(cols["stream"][sends].tolist()):
            lb = lbs[k]
            i = 0 if lb is None else next(lb)
            way = ways.get((k, i)) or self.way(plan.streams[k], i)
            entry[j], kept[j] = way.node, way.preserved
            if way.choose is None:
                fail[j], drop[j] = way.fail_after_s, way.drop
                continue
            slot = way.choose(way.ip | next(ports[k]))
            out, back = way.paths[slot]
            outs[j] = next(out)
            backs[j] = next(back)
            pods[j] = way.pods[slot]
        cols["entry"][sends], cols["preserved"][sends], cols["endpoint"][sends] = entry, kept, pods
        cols["back"][sends] = backs
        return pods, outs, fail, drop

    def way(self, sp: StreamPlan, i: int) -> _Way:
        """The stream's route through its ``i``-th entry node: the chooser of its proxy (keyed as the event path
        keys it) and per endpoint its pod and path draws out and back."""
        rp = sp.routes[0][i]
        route = rp.route
        choose = None
        paths: list[tuple[Iterator[float], Iterator[float]]] = []
        if route.endpoints:
            choose = self.choosers.get(rp.proxy_key)
            if choose is None:
                choose = self.choosers[rp.proxy_key] = self.draws.chooser(rp)
            classes = self.plan.path_classes(sp.origin, rp.node, rp.endpoint_nodes)
            paths = [(self.draws.path(o), self.draws.path(b)) for o, b in classes]
        way = _Way(rp.node_index, int(route.source_preserved), choose, sp.ip << 16, paths, rp.pods,
                   rp.fail_after_s, int(route.drop))  # fmt: skip
        self.ways[sp.index, i] = way
        return way


@dataclass(frozen=True, slots=True)
class _Way:
    """A stream's route through one entry node, as the solver routes its sends: entry node, source kept, the
    chooser of its proxy (None: no endpoint), the client's address shifted for the flow, per endpoint its path
    draws (out, back) and pod, and for a drop the client's wait (s) and the reason."""

    node: int
    preserved: int
    choose: Callable[[int], int] | None
    ip: int
    paths: list[tuple[Iterator[float], Iterator[float]]]
    pods: tuple[int, ...]
    fail_after_s: float
    drop: int


def solve_calls(plan: Plan, seed: Seed, engine: str = "solver") -> RunResult:
    """The run of a call graph under ``seed`` without an event loop, where ``calls_problem(plan)`` is None: the
    event path's records byte for byte. Raises ValueError naming the reason where it needs events."""
    problem = calls_problem(plan)  # among its reasons, that ``tasks`` finds no order
    if problem is not None:
        raise ValueError(f"scenario {plan.scenario.name!r} needs the event path: {problem}")
    order = tasks(plan)
    assert not isinstance(order, str)
    solver = _Solver(plan, Draws(plan, Streams(seed)))
    solver.client_sends()
    for task in order:
        solver.run(task)
    return _records(solver, seed, engine)
