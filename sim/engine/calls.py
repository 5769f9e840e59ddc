"""The event path's call graphs: after a pod's own work, the stages of its Service's calls (``sim.callgraph``).

A ``Job`` is one request's calls in progress. A stage of one ``Call`` makes its ``count`` calls one after another;
a ``Parallel`` stage makes every member's calls at once and joins when all reply. A call with a probability below
1 is made (all its ``count`` calls) or not once per parent request, from the caller Service's own draw stream
(``Draws.calls``). Each call is an attempt of the calling pod's call stream for the callee (``Plan.call_streams``):
sent by ``Run._send`` from the pod, through its node's proxy, routed as a client's request is. A failed call
(dropped: no endpoint, queue full, ...; or timed out, after its ``timeout_s``) is retried as a stream's request is
(``retries``: full-jitter backoff, from the call stream's own draws); its last attempt's failure fails the parent
with the callee's reason (a timeout: the parent times out) unless the call is ``optional``; the stage still joins,
and no later stage is made. ``sync``: the pod's worker is held until the last stage joins
(``CallingFifo``); ``async``: the worker is freed after the pod's own work, the reply leaves when the last stage
joins (the backend's reply is deferred, ``Calls.reply_or_call``).
"""

from __future__ import annotations

from array import array
from collections.abc import Callable, Iterator
from itertools import repeat
from typing import TYPE_CHECKING

import numpy as np
import simpy

from sim.callgraph import Call, CallMode, Parallel, members
from sim.engine.backends import EventFifo, Request, Shared
from sim.engine.records import OK
from sim.outcomes import DropReason
from sim.plan import Draws, Plan

if TYPE_CHECKING:
    from sim.engine.proxies import Stream
    from sim.engine.run import Run

Done = Callable[[Request, int], None]
"""What a job calls when its last stage has joined: the parent request and the reason it fails (0: it does not;
``TIMED_OUT``: a call timed out)."""

TIMED_OUT = -1
"""A job's failure where a call timed out (the DropReasons are the positive ones)."""


class Program:
    """A calling Service's stages as the engine runs them (each: whether parallel, its calls), its mode and its
    draws (uniform in [0, 1)) for the calls made with a probability."""

    __slots__ = ("draws", "stages", "sync")

    def __init__(self, stages: tuple[tuple[bool, tuple[Call, ...]], ...], sync: bool, draws: Iterator[float]) -> None:
        self.stages = stages
        self.sync = sync
        self.draws = draws


class Job:
    """One request's calls in progress: its stage, the calls pending in it, the sequential calls left, the first
    failure's reason (0: none), what to do when done, and whether its pod stopped (``dead``: no more calls)."""

    __slots__ = ("dead", "done", "left", "pending", "program", "reason", "req", "stage")

    def __init__(self, req: Request, program: Program, done: Done) -> None:
        self.req = req
        self.program = program
        self.done = done
        self.stage = 0
        self.pending = 0
        self.left = 0
        self.reason = 0
        self.dead = False


def programs(plan: Plan, draws: Draws) -> dict[str, Program]:
    """Per calling Service, its ``Program``."""
    graph = plan.scenario.call_graph
    return {
        name: Program(
            tuple((isinstance(st, Parallel), members(st)) for st in calls.stages),
            calls.mode == CallMode.SYNC,
            draws.calls(name),
        )
        for name, calls in graph.services.items()
        if calls.stages
    }


def sync_pods(plan: Plan) -> set[int]:
    """The pods that serve a Service making sync calls (their workers wait for the calls: ``CallingFifo``)."""
    sc = plan.scenario
    cp = sc.control_plane
    return {
        plan.pod_index[ep.pod]
        for name, calls in sc.call_graph.services.items()
        if calls.stages and calls.mode == CallMode.SYNC
        for v in range(len(cp.versions))
        for ep in cp.endpoints(name, v)
        if ep.pod
    }


class Calls:
    """A run's jobs: ``begin`` one when a request's own work is done, ``returned`` when a call is over; the
    parent row of every row sent so far (``parents``: an int32 array indexed by row, -1 for a client's request,
    written when a call is sent: 4 bytes a record, where a dict took about 100 a call)."""

    __slots__ = ("by_pod", "index", "parents", "run", "streams")

    def __init__(self, run: Run, plan: Plan) -> None:
        self.run = run
        self.index = plan.call_streams
        self.streams: list[Stream] = run.streams
        self.parents = array("i")
        # in a changing cluster, per pod its requests' jobs in progress (base -> job), to end them if it stops
        self.by_pod: dict[int, dict[int, Job]] | None = {} if plan.dynamic else None

    def reply_or_call(self, req: Request, finished: float) -> None:
        """Every backend's reply where the run has calls: a request whose Service makes calls starts them at
        ``finished`` (s; async: the pod's worker is free already), the others reply (``Run.reply``)."""
        run = self.run
        if req.stream.program is None:
            run.reply(req, finished)
        elif finished > run.env._now:
            run.env.timeout(finished - run.env._now, req).callbacks.append(self._begin_calls)
        else:
            self.begin(req, self.answer)

    def _begin_calls(self, ev: simpy.Event) -> None:
        """The pod's own work on an async caller's request is done: its calls start."""
        self.begin(ev._value, self.answer)

    def answer(self, req: Request, reason: int) -> None:
        """A caller's calls are over now: its reply leaves, or, where a call failed, its failure for that reason."""
        run = self.run
        if reason == TIMED_OUT:
            run.env.timeout(req.back, req).callbacks.append(run.expire)
        elif reason:
            run.fail_after(req.back, req, DropReason(reason))
        else:
            run.reply(req, run.env._now)

    def begin(self, req: Request, done: Done) -> None:
        """The request's own work is done now: its first stage starts."""
        program = req.stream.program
        assert program is not None
        job = Job(req, program, done)
        if self.by_pod is not None:
            self.by_pod.setdefault(req.target.pod, {})[req.base] = job  # type: ignore[union-attr]
        self._stage(job)

    def stop(self, pod: int) -> list[Request]:
        """The pod stopped: its jobs make no more calls; its async requests (whose workers are free already, so
        its backend does not hold them) are returned to fail."""
        jobs = self.by_pod.pop(pod, {}) if self.by_pod is not None else {}
        for job in jobs.values():
            job.dead = True
        return [job.req for job in jobs.values() if not job.program.sync]

    def _stage(self, job: Job) -> None:
        """The job's next stage with a call to make (the calls of probability p drawn now), or done (nothing
        where its pod stopped: the request has failed already)."""
        if job.dead:
            return
        program = job.program
        while job.stage < len(program.stages) and not job.reason:
            parallel, calls = program.stages[job.stage]
            job.stage += 1
            draws = program.draws
            made = [c for c in calls if c.probability >= 1.0 or next(draws) < c.probability]
            if not made:
                continue
            if parallel:
                job.pending = sum(c.count for c in made)
                for c in made:
                    for _ in range(c.count):
                        self._call(job, c)
            else:
                job.pending, job.left = 1, made[0].count - 1
                self._call(job, made[0])
            return
        if self.by_pod is not None:
            self.by_pod.get(job.req.target.pod, {}).pop(job.req.base, None)  # type: ignore[union-attr]
        job.done(job.req, job.reason)

    def _call(self, job: Job, call: Call, request: int = -1, attempt: int = 0) -> None:
        """One call (an attempt of it: ``request`` its first attempt's row, or -1) sent now from the job's pod,
        on its call stream to the callee, with its timeout."""
        target = job.req.target
        assert target is not None
        s = self.streams[self.index[target.pod, call.service, call.port]]
        run = self.run
        req = run.send(s, request, attempt)
        req.job = (job, call)
        parents, row = self.parents, req.base // 5  # the newest row: the rows before it have their parent
        if len(parents) < row:
            parents.extend(repeat(-1, row - len(parents)))  # clients' requests sent since the last call
        parents.append(job.req.base // 5)
        if call.timeout_s is not None:
            run.env.timeout(call.timeout_s, req).callbacks.append(run.expire)

    def _retry(self, ev: simpy.Event) -> None:
        """A failed call's backoff is over: its next attempt."""
        req: Request = ev._value
        job, call = req.job
        if job.dead:
            return
        records = self.run.records
        self._call(job, call, records.request(req.base), records.attempt(req.base) + 1)

    def returned(self, req: Request, outcome: int, reason: int) -> None:
        """A call is over for its caller (``Run._finish``): retried (``call.retries``), or the next sequential call,
        the stage joined, or done."""
        job, call = req.job
        if job.dead:
            return
        if outcome != OK and self.run.retry_later(req, call.retries, self._retry):
            return
        if outcome != OK and not call.optional and not job.reason:
            job.reason = reason or TIMED_OUT
        job.pending -= 1
        if job.left > 0 and not job.reason:
            job.left -= 1
            job.pending = 1
            self._call(job, call)
        elif job.pending == 0:
            self._stage(job)

    def parent_column(self, rows: int) -> np.ndarray:
        """Per record row (``rows`` of them), the row of the request whose call it is (-1: a client's request), as
        the RunResult's int32 column: the array handed over (no copy; ``parents`` is empty after)."""
        parents, self.parents = self.parents, array("i")
        if len(parents) < rows:
            parents.extend(repeat(-1, rows - len(parents)))
        return np.frombuffer(parents, dtype=np.int32)


class CallingFifo(EventFifo):
    """FIFO whose worker stays busy while a request's sync calls run: the request is finished (``t_finished``)
    and replies when its last stage joins, and only then does the worker take the next."""

    __slots__ = ()

    def _finish(self, ev: simpy.Event) -> None:
        req: Request = ev._value
        program = req.stream.program
        if program is None or not program.sync:
            super()._finish(ev)
            return
        if self.dynamic and req.base not in self.serving:
            return  # the pod stopped while serving it; the failure is already recorded
        calls = self.run.calls
        assert calls is not None
        calls.begin(req, self._release)

    def _release(self, req: Request, reason: int) -> None:
        """The calls are over: the reply (or the failure) leaves, and the worker takes the next request (unless
        the pod stopped meanwhile: its failure is recorded, its workers were reset)."""
        if self.dynamic and self.serving.pop(req.base, None) is None:
            return
        now = self.env._now
        self.records.finished(req.base, now)
        calls = self.run.calls
        assert calls is not None
        calls.answer(req, reason)
        if self.queue:
            self._start(self.queue.popleft(), now)
        else:
            self.busy -= 1


class CallingShared(Shared):
    """Processor sharing where a request's sync calls run after its own work: a thread per request, so the waiting
    request uses no CPU (it leaves the set sharing the CPUs) but is still held (it counts toward the requests the
    pod holds, ``capacity + limit``); it is finished (``t_finished``) and replies when its last stage joins."""

    __slots__ = ("waiting",)

    def __init__(self, run: Run, capacity: int, limit: int | None, service_times: Iterator[float]) -> None:
        super().__init__(run, capacity, limit, service_times)
        self.waiting: dict[int, Request] = {}

    def served(self, req: Request, now: float) -> None:
        """Own work done: a request with sync calls waits for them off the CPUs; the others reply."""
        program = req.stream.program
        if program is None or not program.sync:
            super().served(req, now)
            return
        self.waiting[req.base] = req
        calls = self.run.calls
        assert calls is not None
        calls.begin(req, self._release)

    def held(self) -> int:
        """The requests waiting for their calls."""
        return len(self.waiting)

    def _release(self, req: Request, reason: int) -> None:
        """The calls are over: the reply (or the failure) leaves, unless the pod stopped meanwhile."""
        if self.waiting.pop(req.base, None) is None:
            return  # the pod stopped while its calls ran: its failure is recorded already
        self.records.finished(req.base, self.env._now)
        calls = self.run.calls
        assert calls is not None
        calls.answer(req, reason)

    def stop(self) -> list[Request]:
        """Every job in service, then every request waiting for its calls."""
        doomed = [*super().stop(), *self.waiting.values()]
        self.waiting.clear()
        return doomed
