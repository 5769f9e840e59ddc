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
up the positions (``_Events.compare``), as SimPy's event ids would.

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
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np

from sim.callgraph import Call, CallMode, Parallel, ServiceCalls, members
from sim.cluster import Discipline
from sim.distributions import fixed_value
from sim.outcomes import DropReason, Outcome
from sim.plan import Draws, Plan, RoutePlan, StreamPlan, clip_to_horizon, first_attempts, stream_bound
from sim.queueing import fifo_serve
from sim.records import COLUMNS, RunResult
from sim.rng import Seed, Streams
from sim.workload import send_times, time_order

Task = tuple[str, str, int]
"""One step of the solver: (``serve`` | ``stage`` | ``reply``, Service, stage number; 0 but for ``stage``)."""

_OK, _DROPPED = int(Outcome.OK), int(Outcome.DROPPED)


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
    """The event path's events as the solver reconstructs them: each one's time (s) and position (the event
    whose callback scheduled it, -1 for the run's setup, and its place among that callback's schedulings)."""

    __slots__ = ("parent", "place", "t")

    def __init__(self) -> None:
        self.t: list[float] = []
        self.parent: list[int] = []
        self.place: list[int] = []

    def add(self, t: float, parent: int, place: int) -> int:
        """A new event at ``t`` (s), scheduled by ``parent``'s callback as its ``place``-th; its id."""
        self.t.append(t)
        self.parent.append(parent)
        self.place.append(place)
        return len(self.t) - 1

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
            e1, s1, e2, s2 = parent[e1], place[e1], parent[e2], place[e2]
        return (s1 > s2) - (s1 < s2)

    def _by_position(self, position: Callable[[int], tuple[int, int]]) -> Callable[[int, int], int]:
        """``compare`` of two items' positions."""
        return lambda a, b: self.compare(position(a), position(b))

    def order(self, items: list[int], position: Callable[[int], tuple[int, int]]) -> list[int]:
        """``items`` in SimPy's order of their positions: by time, runs of equal times by ``compare``."""
        t = self.t
        items = sorted(items, key=lambda i: t[position(i)[0]])
        key = functools.cmp_to_key(self._by_position(position))
        lo = 0
        while lo < len(items):
            at, hi = t[position(items[lo])[0]], lo + 1
            while hi < len(items) and t[position(items[hi])[0]] == at:
                hi += 1
            if hi - lo > 1:
                items[lo:hi] = sorted(items[lo:hi], key=key)
            lo = hi
        return items


@dataclass
class _Job:
    """A calling Service's request: the stage it begins next (1-based), the event whose callback begins it (-1:
    never, its reply never comes), the calls of its current stage and the first failure's reason (0: none)."""

    row: int
    stage: int
    begins: int
    pending: list[int] = field(default_factory=list)
    reason: int = 0


@dataclass
class _Rows:
    """One record row per send, in the order made (``solve_calls`` puts them in send order at the end)."""

    sent_by: list[int] = field(default_factory=list)  # the event whose callback sent it
    place: list[int] = field(default_factory=list)  # ... and its place there
    stream: list[int] = field(default_factory=list)
    parent: list[int] = field(default_factory=list)  # the row whose call it is (-1: a client's request)
    call: list[Call | None] = field(default_factory=list)
    entry: list[int] = field(default_factory=list)
    preserved: list[int] = field(default_factory=list)
    endpoint: list[int] = field(default_factory=list)
    back: list[float] = field(default_factory=list)  # its trip back (s), drawn with the trip out
    arrival: list[int] = field(default_factory=list)  # its arrival event (-1: none)
    started: list[float] = field(default_factory=list)
    finished: list[float] = field(default_factory=list)
    returned: list[float] = field(default_factory=list)
    ends: list[int] = field(default_factory=list)  # the event where its caller learns of its end (-1: none)
    outcome: list[int] = field(default_factory=list)
    reason: list[int] = field(default_factory=list)

    def add(self, sent_by: int, place: int, stream: int, parent: int, call: Call | None) -> int:
        """A new row, sent from ``sent_by``'s callback as its ``place``-th scheduling; its index."""
        self.sent_by.append(sent_by)
        self.place.append(place)
        self.stream.append(stream)
        self.parent.append(parent)
        self.call.append(call)
        for ints in (self.entry, self.endpoint, self.arrival, self.ends):
            ints.append(-1)
        for floats in (self.started, self.finished, self.returned):
            floats.append(math.nan)
        self.preserved.append(0)
        self.back.append(0.0)
        self.outcome.append(_OK)
        self.reason.append(0)
        return len(self.stream) - 1


class _Solver:
    """One call-graph run solved without events: its events, rows, jobs and the draws they share."""

    def __init__(self, plan: Plan, draws: Draws) -> None:
        self.plan = plan
        self.draws = draws
        self.horizon_s = plan.horizon_s
        self.events = _Events()
        self.rows = _Rows()
        self.into: dict[str, list[int]] = {}  # Service -> the rows sent into it, not yet served
        self.jobs: dict[str, list[_Job]] = {}  # calling Service -> its requests' calls
        self.graph = plan.scenario.call_graph
        self.lbs = [draws.entries(sp) for sp in plan.streams]
        self.ports = [draws.ports(sp) for sp in plan.streams]
        self.choosers: dict[tuple[object, ...], Callable[[int], int]] = {}
        self.ways: dict[tuple[int, int], list[tuple[Iterator[float], Iterator[float]]]] = {}
        self.chance = {name: draws.calls(name) for name, calls in self.graph.services.items() if calls.stages}

    def send(self, sent_by: int, place: int, stream: int, parent: int, call: Call | None) -> int:
        """A send from ``sent_by``'s callback, queued for its Service's ``serve``; its row."""
        row = self.rows.add(sent_by, place, stream, parent, call)
        self.into.setdefault(self.plan.streams[stream].spec.service, []).append(row)
        return row

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
        who = np.concatenate([np.full(len(times), k, dtype=np.int32) for times, k in merged])
        order = time_order(at)
        tick, now = -1, 0.0
        for t, k in zip(at[order].tolist(), who[order].tolist(), strict=True):
            now += t - now  # the tick's time as SimPy reaches it: the one before plus the delay to this send
            tick = self.events.add(now, tick, 0 if tick < 0 else 1)
            self.send(tick, 0, k, -1, None)

    def end(self, row: int, event: int, outcome: int, reason: int) -> None:
        """The row's caller learns of its end at ``event`` (if that comes before the horizon)."""
        t = self.events.t[event]
        if t < self.horizon_s:
            rows = self.rows
            rows.ends[row], rows.returned[row], rows.outcome[row], rows.reason[row] = event, t, outcome, reason

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
        rows = self.rows
        sends = self.events.order(self.into.pop(name, []), lambda r: (rows.sent_by[r], rows.place[r]))
        by_pod: dict[int, list[int]] = {}
        for row in sends:
            pod = self.route(row)
            if pod >= 0 and self.events.t[rows.arrival[row]] < self.horizon_s:
                by_pod.setdefault(pod, []).append(row)
        for pod, arrivals in sorted(by_pod.items()):
            self.serve_pod(pod, self.events.order(arrivals, lambda r: (rows.arrival[r], -1)))

    def route(self, row: int) -> int:
        """The row's entry, endpoint and trips out and back, drawn as the event path draws them at its send; its
        arrival event; the endpoint's pod (-1: unrouted, its drop reaches the caller after the route's wait)."""
        rows, events = self.rows, self.events
        k = rows.stream[row]
        sp = self.plan.streams[k]
        lb = self.lbs[k]
        i = 0 if lb is None else next(lb)
        rp = sp.routes[0][i]
        rows.entry[row], rows.preserved[row] = rp.node_index, int(rp.route.source_preserved)
        sent_by, place = rows.sent_by[row], rows.place[row]
        t = events.t[sent_by]
        if not rp.route.endpoints:
            self.end(row, events.add(t + rp.fail_after_s, sent_by, place), _DROPPED, int(rp.route.drop))
            return -1
        choose, ways = self.proxy(sp, i, rp)
        slot = choose((sp.ip << 16) | next(self.ports[k]))
        out, back = ways[slot]
        delay = next(out)
        rows.back[row] = next(back)
        rows.endpoint[row] = rp.pods[slot]
        rows.arrival[row] = events.add(t + delay, sent_by, place)
        return rp.pods[slot]

    def proxy(
        self, sp: StreamPlan, i: int, rp: RoutePlan
    ) -> tuple[Callable[[int], int], list[tuple[Iterator[float], Iterator[float]]]]:
        """The chooser of the route's proxy (keyed as the event path keys it) and per endpoint its path draws."""
        choose = self.choosers.get(rp.proxy_key)
        if choose is None:
            rng = self.draws.rngs.generator("route", *rp.proxy, 0)
            choose = self.choosers[rp.proxy_key] = rp.route.picker.chooser(rp.route.endpoints, rng, [])
        ways = self.ways.get((sp.index, i))
        if ways is None:
            paths = self.plan.path_classes(sp.origin, rp.node, rp.endpoint_nodes)
            ways = self.ways[sp.index, i] = [(self.draws.path(o), self.draws.path(b)) for o, b in paths]
        return choose, ways

    def serve_pod(self, pod: int, arrivals: list[int]) -> None:
        """The pod's arrivals (before the horizon, in arrival order) by the free-time recursion; each served
        request replies or begins its calls, each refused one's refusal travels back."""
        rows, events, spec = self.rows, self.events, self.plan.pods[pod]
        times = [events.t[rows.arrival[r]] for r in arrivals]
        name = self.plan.streams[rows.stream[arrivals[0]]].spec.service
        program = self.graph.of(name)
        if program.stages and program.mode == CallMode.SYNC:
            self.serve_sync(name, arrivals, times, self.draws.service(spec))
            return
        starts, finishes = fifo_serve(times, self.draws.service(spec), spec.concurrency, spec.queue_limit)
        calling = bool(program.stages)
        for row, a, start, finish in zip(arrivals, times, starts, finishes, strict=True):
            rows.started[row], rows.finished[row] = start, finish
            arrival = rows.arrival[row]
            if math.isnan(start):
                self.end(row, events.add(a + rows.back[row], arrival, 0), _DROPPED, int(DropReason.QUEUE_FULL))
            elif calling:  # its calls begin when its own work is done (in this callback, if it is done now)
                begins = events.add(a + (finish - a), arrival, 0) if finish > a else arrival
                if events.t[begins] < self.horizon_s:
                    self.jobs.setdefault(name, []).append(_Job(row, 1, begins))
            elif self.plan.streams[rows.stream[row]].call:  # its reply is an event, as the caller waits for it
                self.end(row, events.add(a + ((finish - a) + rows.back[row]), arrival, 0), _OK, 0)
            else:  # nobody waits: the event path writes it at once
                rows.returned[row] = finish + rows.back[row]

    def serve_sync(self, name: str, arrivals: list[int], times: list[float], service: Iterator[float]) -> None:
        """A sync caller's pod that never runs out of workers (``_sync_problem``): each request starts on arrival,
        its own work is an event (the event path's ``CallingFifo``), at whose end its calls begin; it is finished
        when its last stage joins (``reply``)."""
        rows, events = self.rows, self.events
        for row, a in zip(arrivals, times, strict=True):
            rows.started[row] = a
            begins = events.add(a + next(service), rows.arrival[row], 0)
            if events.t[begins] < self.horizon_s:
                self.jobs.setdefault(name, []).append(_Job(row, 1, begins))

    # --- stages and replies --------------------------------------------------------------------------------------

    def join(self, job: _Job) -> None:
        """The job's stage in flight joins where its last call's end reaches it (never, if one never does); the
        first failed call that is not optional (in the order their ends come) fails it."""
        if not job.pending:
            return
        rows = self.rows
        if any(rows.ends[r] < 0 for r in job.pending):
            job.begins = -1
        else:
            ended = self.events.order(job.pending, lambda r: (rows.ends[r], -1))
            job.begins = rows.ends[ended[-1]]
            for r in ended:
                call = rows.call[r]
                if rows.outcome[r] != _OK and not job.reason and call is not None and not call.optional:
                    job.reason = rows.reason[r]
        job.pending = []

    def stage(self, name: str, k: int) -> None:
        """Stage ``k`` of ``name``'s requests: each joins its stage before, then (unless failed) draws the calls
        made with a probability (in the order the stages begin) and sends its calls, one after another in its
        callback; a stage that makes no call hands its request to the next at once."""
        jobs = self.jobs.get(name, [])
        for job in jobs:
            self.join(job)
        ready = [j for j in jobs if j.stage == k and j.begins >= 0 and not j.reason]
        stage = self.graph.of(name).stages[k - 1]
        calls = members(stage)
        draws = self.chance[name]
        if any(c.probability < 1.0 for c in calls):
            ready = [ready[i] for i in self.events.order(list(range(len(ready))), lambda i: (ready[i].begins, -1))]
        rows = self.rows
        for job in ready:
            job.stage = k + 1
            made = [c for c in calls if c.probability >= 1.0 or next(draws) < c.probability]
            pod = rows.endpoint[job.row]
            place = 0
            for c in made:
                stream = self.plan.call_streams[pod, c.service, c.port]
                for _ in range(c.count if isinstance(stage, Parallel) else 1):
                    job.pending.append(self.send(job.begins, place, stream, job.row, c))
                    place += 1

    def reply(self, name: str) -> None:
        """The calling requests of ``name`` whose last stage joined: the reply, or the failure, leaves."""
        rows, events = self.rows, self.events
        sync = self.graph.of(name).mode == CallMode.SYNC
        for job in self.jobs.get(name, []):
            self.join(job)
            at = job.begins
            if at < 0:
                continue
            t, back, row = events.t[at], rows.back[job.row], job.row
            if sync:  # the worker is released now: the request is finished
                rows.finished[row] = t
            if job.reason:
                self.end(row, events.add(t + back, at, 0), _DROPPED, job.reason)
            elif self.plan.streams[rows.stream[row]].call:
                self.end(row, events.add(t + ((t - t) + back), at, 0), _OK, 0)
            else:
                rows.returned[row] = t + back

    # --- the records ---------------------------------------------------------------------------------------------

    def result(self, seed: Seed, engine: str) -> RunResult:
        """The records, rows in send order, with the horizon rule and each call's parent row."""
        rows, t = self.rows, self.events.t
        n = len(rows.stream)
        order = self.events.order(list(range(n)), lambda r: (rows.sent_by[r], rows.place[r]))
        rank = [0] * n
        for i, r in enumerate(order):
            rank[r] = i

        def column(values: list, name: str) -> np.ndarray:
            return np.array([values[r] for r in order], dtype=COLUMNS[name])

        arrived = [t[a] if a >= 0 else math.nan for a in rows.arrival]
        cols = {
            "t_sent": np.array([t[rows.sent_by[r]] for r in order]),
            "t_arrived": column(arrived, "t_arrived"),
            "t_started": column(rows.started, "t_started"),
            "t_finished": column(rows.finished, "t_finished"),
            "t_returned": column(rows.returned, "t_returned"),
            "outcome": column(rows.outcome, "outcome"),
            "reason": column(rows.reason, "reason"),
            "stream": column(rows.stream, "stream"),
            "entry_node": column(rows.entry, "entry_node"),
            "endpoint": column(rows.endpoint, "endpoint"),
            "source_preserved": column(rows.preserved, "source_preserved"),
        }
        parent = np.array([rank[rows.parent[r]] if rows.parent[r] >= 0 else -1 for r in order], dtype=np.int32)
        clip_to_horizon(cols, self.horizon_s)
        end_s = self.plan.duration_s
        if end_s is None:  # the event loop runs until its last event: a send, a reply or a failure
            last = float(np.nanmax(cols["t_returned"])) if n and not np.isnan(cols["t_returned"]).all() else 0.0
            end_s = max(float(cols["t_sent"][-1]), last) if n else 0.0
        cols |= first_attempts(n)
        return self.plan.result(seed, cols, end_s, engine, parent=parent)


def solve_calls(plan: Plan, seed: Seed, engine: str = "solver") -> RunResult:
    """The run of a call graph under ``seed`` without an event loop, where ``calls_problem(plan)`` is None: the
    event path's records byte for byte. Raises ValueError naming the reason where it needs events."""
    order = tasks(plan)
    problem = calls_problem(plan)
    if problem is not None or isinstance(order, str):
        raise ValueError(f"scenario {plan.scenario.name!r} needs the event path: {problem or order}")
    solver = _Solver(plan, Draws(plan, Streams(seed)))
    solver.client_sends()
    for task in order:
        solver.run(task)
    return solver.result(seed, engine)
