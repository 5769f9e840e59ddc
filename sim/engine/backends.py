"""The event path's backends: the request in flight, and one backend class per discipline with its own arrival.

The callbacks read ``env._now`` and ``event._value`` (SimPy's own slots), for the reason measured in
``sim.engine.run``'s docstring (a property call on every event).
"""

from __future__ import annotations

import sys
from collections import deque
from collections.abc import Iterator
from typing import TYPE_CHECKING

import simpy

from sim.outcomes import DropReason
from sim.queueing import FifoPod

if TYPE_CHECKING:
    from sim.engine.proxies import Stream, Target
    from sim.engine.run import Run


class Request:
    """An attempt in flight, the value of every event of its life: its records' ``base``, its stream, its
    endpoint (None where it was never routed), its trip back (s), drawn with the trip out when it is sent so
    that every way of running it gives it the same draws, and the reason it fails (once it does)."""

    __slots__ = ("back", "base", "job", "reason", "stream", "target")
    reason: int
    job: tuple  # a call's (Job, Call) (``sim.engine.calls``); set on calls only

    def __init__(self, base: int, stream: Stream, target: Target | None, back: float) -> None:
        self.base = base
        self.stream = stream
        self.target = target
        self.back = back  # ``reason`` is set when it fails (``Run.fail_after``, ``Run.unrouted``)


class Backend:
    """A backend pod: ``capacity`` workers (or CPUs), at most ``limit`` requests waiting beyond them, its
    service-time draws (s), and whether it answers (``alive``). ``arrive`` is the callback of a request's trip
    out; ``stop`` takes back every request it holds when the pod stops (a changing cluster)."""

    __slots__ = ("alive", "capacity", "env", "limit", "records", "reply", "run", "service_times")

    def __init__(self, run: Run, capacity: int, limit: int | None, service_times: Iterator[float]) -> None:
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

    def stop(self) -> list[Request]:
        """The pod stops answering: every request it holds, now dropped from it."""
        self.alive = False
        return []

    def _stale(self, req: Request, now: float) -> bool:
        """A proxy not yet synced sent the request to a pod that is gone: the SYN goes unanswered, and the client
        learns of it at its connect timeout."""
        if self.alive:
            return False
        wait = max(0.0, self.records.sent(req.base) + req.stream.connect_timeout_s - now)
        self.run.fail_after(wait, req, DropReason.STALE_ENDPOINT)
        return True

    def refuse(self, req: Request, now: float) -> None:
        """The queue is full: the pod is done with the request at once, and its refusal travels back."""
        self.records.finished(req.base, now)
        self.run.fail_after(req.back, req, DropReason.QUEUE_FULL)


class EventFifo(Backend):
    """FIFO with every step an event: a worker takes the request at once, or it waits in ``queue``; a finish
    starts the next. In a changing cluster the requests in service are kept (``serving``) to fail them."""

    __slots__ = ("busy", "dynamic", "queue", "serving")

    def __init__(self, run: Run, capacity: int, limit: int | None, service_times: Iterator[float]) -> None:
        super().__init__(run, capacity, limit, service_times)
        self.busy = 0
        self.dynamic = run.dynamic
        self.queue: deque[Request] = deque()
        self.serving: dict[int, Request] = {}

    def arrive(self, ev: simpy.Event) -> None:
        """Start on a free worker, wait in the queue, or be refused (queue full)."""
        req: Request = ev._value
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
            self.refuse(req, now)

    def _start(self, req: Request, now: float) -> None:
        self.records.started(req.base, now)
        if self.dynamic:
            self.serving[req.base] = req
        self.env.timeout(next(self.service_times), req).callbacks.append(self._finish)

    def _finish(self, ev: simpy.Event) -> None:
        """Service done: the reply leaves, and the next in the queue starts."""
        req: Request = ev._value
        if self.dynamic and self.serving.pop(req.base, None) is None:
            return  # the pod stopped while serving it; the failure is already recorded
        now = self.env._now
        self.records.finished(req.base, now)
        self.reply(req, now)
        if self.queue:
            self._start(self.queue.popleft(), now)
        else:
            self.busy -= 1

    def stop(self) -> list[Request]:
        """The requests in service, then the queue."""
        super().stop()
        doomed = [*self.serving.values(), *self.queue]
        self.serving.clear()
        self.queue.clear()
        self.busy = 0
        return doomed


class ComputedFifo(Backend):
    """FIFO in a cluster that does not change (the shortcut): the request takes the worker that frees first, so
    its start and finish are known on arrival (``sim.queueing.FifoPod``: the Kiefer-Wolfowitz recursion over the
    workers' free times, and the queue limit), with no queue events."""

    __slots__ = ("admit", "pod", "times")

    def __init__(self, run: Run, capacity: int, limit: int | None, service_times: Iterator[float]) -> None:
        super().__init__(run, capacity, limit, service_times)
        self.times = run.records.times  # the array the run appends to (replaced only when the run is over)
        self.pod = FifoPod(capacity, limit)
        self.admit = self.pod.admit  # bound once: the call every arrival makes

    def arrive(self, ev: simpy.Event) -> None:
        """Start and finish computed now; refused where the queue is full."""
        req: Request = ev._value
        now = self.env._now
        times, base = self.times, req.base
        times[base + 1] = now  # records.arrived
        got = self.admit(now, self.service_times)
        if got is None:
            self.refuse(req, now)
            return
        times[base + 2], times[base + 3] = got  # records.started, records.finished
        self.reply(req, got[1])


class Shared(Backend):
    """Processor sharing: every request in service at once, each at rate min(1, capacity / n); at most
    ``capacity + limit`` held. ``jobs``: base -> [work left (s at full speed), request]; one pending completion
    event, for the job with the least work left (``version`` makes earlier ones stale)."""

    __slots__ = ("jobs", "last", "version")

    def __init__(self, run: Run, capacity: int, limit: int | None, service_times: Iterator[float]) -> None:
        super().__init__(run, capacity, limit, service_times)
        self.jobs: dict[int, list] = {}
        self.last = 0.0
        self.version = 0

    def arrive(self, ev: simpy.Event) -> None:
        """Join the jobs in service (or be refused), and reschedule the next completion."""
        req: Request = ev._value
        now = self.env._now
        if self._stale(req, now):
            return
        self.records.arrived(req.base, now)
        self._advance(now)
        if len(self.jobs) + self.held() >= self.capacity + self.limit:
            self.refuse(req, now)
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
            self.served(self.jobs.pop(done)[1], now)
        self._next()

    def served(self, req: Request, now: float) -> None:
        """The request's work is done at ``now`` (s): it leaves the CPUs and its reply leaves."""
        self.records.finished(req.base, now)
        self.reply(req, now)

    def held(self) -> int:
        """Requests the pod holds beyond those sharing its CPUs (``sim.engine.calls.CallingShared``: none here)."""
        return 0

    def stop(self) -> list[Request]:
        """Every job in service."""
        super().stop()
        doomed = [job[1] for job in self.jobs.values()]
        self.jobs.clear()
        self.version += 1
        return doomed
