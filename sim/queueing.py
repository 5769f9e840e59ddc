"""The FIFO recursion both engines solve a pod with: each request takes the worker that frees first.

A FIFO pod with ``c`` workers serves its requests in arrival order; request n starts at the later of its arrival
and the earliest time a worker is free, and that worker is then busy until the start plus its service time (the
Kiefer-Wolfowitz recursion over the workers' free times; for one worker, Lindley's). With a queue limit, a request
that finds no free worker and ``limit`` requests admitted but not started is refused on arrival and takes no
service draw. The DES runs this step by step on arrival (``sim.engine._ComputedFifo``) or over a settled run's
arrivals (``sim.engine.settle``); the fast path over a pod's arrivals (``sim.fastpath``).
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from collections.abc import Iterable, Iterator


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
    if limit is None and workers == 1:  # Lindley's recursion: the heap of one free time, unrolled
        free = 0.0
        for a, s in zip(arrived, service, strict=False):  # ``arrived`` first: no draw past its end
            start = free if free > a else a
            free = start + s
            start_at(start)
            finish_at(free)
        return starts, finishes
    frees = [0.0] * workers
    replace = heapq.heapreplace
    waiting: deque[float] = deque()  # with a limit: start times of the admitted requests not yet started
    for a in arrived:
        first = frees[0]
        if limit is not None:
            while waiting and waiting[0] <= a:
                waiting.popleft()
            if first > a and len(waiting) >= limit:
                start_at(math.nan)
                finish_at(a)
                continue
        start = first if first > a else a
        finish = start + next(service)
        replace(frees, finish)
        if limit is not None and start > a:
            waiting.append(start)
        start_at(start)
        finish_at(finish)
    return starts, finishes
