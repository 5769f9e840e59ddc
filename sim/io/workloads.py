"""Client workloads as a stream's ``workload`` table gives them. One registry line per workload kind."""

from __future__ import annotations

import itertools
from collections.abc import Callable

from sim.distributions import Constant
from sim.io.durations import duration
from sim.io.samples import numbers
from sim.io.typed import Table
from sim.workload import ClosedLoop, ConstantRate, Poisson, Trace, Workload


def _trace(t: Table) -> tuple[float, ...]:
    """Send times in seconds from the stream's start, sorted and >= 0."""
    key, times = numbers(t, "times_s")
    if any(v < 0 for v in times) or any(b < a for a, b in itertools.pairwise(times)):
        raise t.error(key, "send times must be >= 0 and sorted")
    return times


WORKLOADS: dict[str, Callable[[Table], Workload]] = {
    "poisson": lambda t: Poisson(t.number("rate_rps", minimum=0, strict=True)),
    "constant": lambda t: ConstantRate(t.number("rate_rps", minimum=0, strict=True)),
    "closed_loop": lambda t: ClosedLoop(duration(t, "think_s", Constant(0.0))),
    "trace": lambda t: Trace(_trace(t)),
}
"""``kind = NAME`` -> the reader of that workload's fields (rates in requests/s, times in s)."""


def workload(t: Table) -> Workload:
    """A stream's ``workload = { kind = "poisson", rate_rps = 100 }`` table."""
    return t.kind("kind", WORKLOADS, "workload")
