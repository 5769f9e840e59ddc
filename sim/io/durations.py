"""Durations in seconds as scenario and topology files give them: a number (constant) or a distribution table
``{dist = "exponential", mean_s = 0.002}``. One registry line per distribution kind: its field table, which the
readers read and ``sim import`` writes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sim.distributions import Constant, Dist, Empirical, Exponential, Gamma, LogNormal, Uniform
from sim.io.samples import numbers
from sim.io.typed import MISSING, Table


@dataclass(frozen=True)
class Distribution:
    """One distribution kind as a file gives it: its class and its fields, by the class's attribute names, each a
    number >= 0 (seconds where the name ends in ``_s``; ``positive``: > 0), read in order, then ``check``ed; or
    ``read`` where its fields are read otherwise (an empirical one's samples). Called on a table, it reads one."""

    cls: type[Dist]
    fields: tuple[str, ...]
    positive: tuple[str, ...] = ()
    check: Callable[[Table, Any], None] | None = None
    read: Callable[[Table], Dist] | None = None

    def __call__(self, t: Table) -> Dist:
        """The distribution ``t`` gives (its ``dist`` key already taken)."""
        if self.read is not None:
            return self.read(t)
        dist = self.cls(*(t.number(k, minimum=0, strict=k in self.positive) for k in self.fields))
        if self.check is not None:
            self.check(t, dist)
        return dist


def _ordered(t: Table, d: Uniform) -> None:
    if d.high_s < d.low_s:
        raise t.error("high_s", f"must be >= low_s ({d.low_s:g}), got {d.high_s:g}")


def _empirical(t: Table) -> Dist:
    key, samples = numbers(t, "samples_s")
    if not samples or min(samples) < 0:
        raise t.error(key, "needs at least one sample, every one >= 0 seconds")
    return Empirical(samples)


DISTRIBUTIONS: dict[str, Distribution] = {
    "constant": Distribution(Constant, ("value_s",)),
    "exponential": Distribution(Exponential, ("mean_s",)),
    "lognormal": Distribution(LogNormal, ("mean_s", "sigma")),
    "uniform": Distribution(Uniform, ("low_s", "high_s"), check=_ordered),
    "gamma": Distribution(Gamma, ("mean_s", "shape"), positive=("shape",)),
    "empirical": Distribution(Empirical, ("samples_s",), read=_empirical),
}
"""``dist = NAME`` -> that distribution's field table: what the readers read and ``sim import`` writes
(``duration_value``)."""


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


def duration_value(d: Dist) -> Any:
    """A duration as a scenario file gives it: a number for a constant, else a ``{dist = ...}`` table of the
    fields ``DISTRIBUTIONS`` names."""
    if isinstance(d, Constant):
        return d.value_s
    name, kind = next((name, kind) for name, kind in DISTRIBUTIONS.items() if kind.cls is type(d))
    return {"dist": name, **{k: getattr(d, k) for k in kind.fields}}
