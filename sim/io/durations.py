"""Durations in seconds as scenario and topology files give them: a number (constant) or a distribution table
``{dist = "exponential", mean_s = 0.002}``. One registry line per distribution kind."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sim.distributions import Constant, Dist, Empirical, Exponential, Gamma, LogNormal, Uniform
from sim.io.samples import numbers
from sim.io.tables import MISSING, Table


def _uniform(t: Table) -> Dist:
    low = t.number("low_s", minimum=0)
    high = t.number("high_s", minimum=0)
    if high < low:
        raise t.error("high_s", f"must be >= low_s ({low:g}), got {high:g}")
    return Uniform(low, high)


def _empirical(t: Table) -> Dist:
    key, samples = numbers(t, "samples_s")
    if not samples or min(samples) < 0:
        raise t.error(key, "needs at least one sample, every one >= 0 seconds")
    return Empirical(samples)


DISTRIBUTIONS: dict[str, Callable[[Table], Dist]] = {
    "constant": lambda t: Constant(t.number("value_s", minimum=0)),
    "exponential": lambda t: Exponential(t.number("mean_s", minimum=0)),
    "lognormal": lambda t: LogNormal(t.number("mean_s", minimum=0), t.number("sigma", minimum=0)),
    "uniform": _uniform,
    "gamma": lambda t: Gamma(t.number("mean_s", minimum=0), t.number("shape", minimum=0, strict=True)),
    "empirical": _empirical,
}
"""``dist = NAME`` -> the reader of that distribution's fields (seconds)."""


def duration(parent: Table, key: str, default: Any = MISSING) -> Any:
    """A duration in seconds taken from ``parent[key]``: a number (constant) or a table ``{dist = "...", ...}``."""
    if key not in parent.data:
        if default is MISSING:
            raise parent.error(key, "is required")
        return default
    raw = parent.data[key]
    if isinstance(raw, (int, float)) and not isinstance(raw, bool):
        value = parent.number(key, minimum=0)
        return Constant(value)
    parent.take(key, (dict, int, float))
    t = Table(parent.path, parent.field(key), raw)
    return t.kind("dist", DISTRIBUTIONS, "distribution")
