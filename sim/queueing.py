"""The FIFO recursion both engines solve a pod with: each request takes the worker that frees first.

A FIFO pod with ``c`` workers serves its requests in arrival order; request n starts at the later of its arrival
and the earliest time a worker is free, and that worker is then busy until the start plus its service time (the
Kiefer-Wolfowitz recursion over the workers' free times; for one worker, Lindley's). With a queue limit, a request
that finds no free worker and ``limit`` requests admitted but not started is refused on arrival and takes no
service draw. ``FifoPod.admit`` is one step; the event path takes it on each arrival
(``sim.engine.backends.ComputedFifo``); ``fifo_serve`` runs it over a pod's arrivals, for the event-free solver
(``sim.solver``, both its exact and its fast way).
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from collections.abc import Iterable, Iterator


class FifoPod:
    """A FIFO pod's state in the free-time recursion: its workers' free times (s, a heap) and, with a queue
    limit, the start times (s) of the requests admitted but not started as of the latest arrival."""

    __slots__ = ("free", "limit", "waiting")

    def __init__(self, workers: int, limit: int | None = None) -> None:
        self.free = [0.0] * workers
        self.limit = limit
        self.waiting: deque[float] | None = None if limit is None else deque()

    def admit(self, a: float, service: Iterator[float]) -> tuple[float, float] | None:
        """Start and finish (s) of a request arriving at ``a`` (s, no earlier than the last), its service time
        taken from ``service``; None where the queue is full (refused: no draw taken).

        >>> pod = FifoPod(1, limit=0)
        >>> pod.admit(0.0, iter([1.0])), pod.admit(0.5, iter([1.0])), pod.admit(1.0, iter([2.0]))
        ((0.0, 1.0), None, (1.0, 3.0))
        """
        first = self.free[0]
        waiting = self.waiting
        if waiting is not None:
            while waiting and waiting[0] <= a:
                waiting.popleft()
            if first > a and len(waiting) >= self.limit:  # type: ignore[operator]  # waiting is kept with a limit
                return None
        start = first if first > a else a
        finish = start + next(service)
        heapq.heapreplace(self.free, finish)
        if waiting is not None and start > a:
            waiting.append(start)
        return start, finish


def fifo_serve(
    arrived: Iterable[float], service: Iterator[float], workers: int, limit: int | None = None
) -> tuple[list[float], list[float]]:
    """Start and finish times (s) of requests arriving at ``arrived`` (s, in arrival order) at one FIFO pod of
    ``workers`` workers, taking service times (s) from ``service`` in that order, one per request served; with
    at most ``limit`` waiting (None: no limit). A refused request starts at NaN and finishes on arrival.

    >>> fifo_serve([0.0, 0.0, 0.0, 5.0], iter([2.0, 3.0, 1.0, 1.0]), 2)
    ([0.0, 0.0, 2.0, 5.0], [2.0, 3.0, 3.0, 6.0])
    >>> fifo_serve([0.0, 0.0, 1.5], iter([1.0, 1.0, 1.0]), 1, limit=0)
    ([0.0, nan, 1.5], [1.0, 0.0, 2.5])
    """
    starts: list[float] = []
    finishes: list[float] = []
    start_at, finish_at = starts.append, finishes.append
    if limit is None and workers == 1:  # FifoPod.admit with one free time and no limit, unrolled: Lindley's
        free = 0.0
        for a, s in zip(arrived, service, strict=False):  # ``arrived`` first: no draw past its end
            start = free if free > a else a
            free = start + s
            start_at(start)
            finish_at(free)
        return starts, finishes
    admit = FifoPod(workers, limit).admit
    for a in arrived:
        got = admit(a, service)
        start_at(math.nan if got is None else got[0])
        finish_at(a if got is None else got[1])
    return starts, finishes
