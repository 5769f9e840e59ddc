"""``sim.queueing.fifo_serve`` against a worker-by-worker simulation with an explicit waiting line."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from sim.queueing import fifo_serve


def reference(jobs: list[tuple[float, float]], workers: int, limit: int | None) -> list[tuple[float, float]]:
    """(start, finish) per job (arrival, service), by brute force: at each arrival, every worker's free time in a
    plain list, the admitted jobs that have not started counted one by one; a refused job takes no service draw."""
    free = [0.0] * workers
    starts: list[float] = []  # of admitted jobs
    out = []
    draws = iter(s for _, s in jobs)
    for a, _ in jobs:
        w = min(range(workers), key=lambda k: free[k])
        waiting = sum(1 for st_ in starts if st_ > a)
        if limit is not None and free[w] > a and waiting >= limit:
            out.append((math.nan, a))
            continue
        start = max(a, free[w])
        free[w] = start + next(draws)
        starts.append(start)
        out.append((start, free[w]))
    return out


jobs_st = st.lists(st.tuples(st.floats(0, 10), st.floats(0, 3)), min_size=1, max_size=60).map(sorted)


@given(jobs_st, st.integers(1, 4), st.one_of(st.none(), st.integers(0, 4)))
def test_fifo_serve_matches_the_brute_force_queue(jobs, workers, limit):
    got = fifo_serve([a for a, _ in jobs], iter([s for _, s in jobs]), workers, limit)
    want = reference(jobs, workers, limit)
    assert len(got[0]) == len(got[1]) == len(jobs)
    for (start, finish), (w_start, w_finish) in zip(zip(*got, strict=True), want, strict=True):
        assert (math.isnan(start) and math.isnan(w_start)) or start == w_start
        assert finish == w_finish


@given(jobs_st, st.integers(1, 4))
def test_fifo_serve_takes_one_draw_per_request_served_and_no_more(jobs, workers):
    service = iter([s for _, s in jobs] + [123.0])
    fifo_serve([a for a, _ in jobs], service, workers)
    assert next(service) == 123.0  # the draw after the last request's is still there
