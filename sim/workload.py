"""Client request streams: open loop (Poisson, constant rate, trace replay) and closed loop (curl in a loop)."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from sim.distributions import ZERO, Constant, Dist, Exponential
from sim.rng import blocks


@dataclass(frozen=True)
class Poisson:
    """Open loop: exponential gaps at ``rate_rps`` requests/s."""

    rate_rps: float

    def gaps(self, rng: np.random.Generator) -> Iterator[float]:
        """Seconds from one send to the next (the first send happens one gap after the stream starts)."""
        return blocks(Exponential(1.0 / self.rate_rps), rng)


@dataclass(frozen=True)
class ConstantRate:
    """Open loop: one request every ``1 / rate_rps`` seconds."""

    rate_rps: float

    def gaps(self, rng: np.random.Generator) -> Iterator[float]:
        """Seconds between sends (the rng is not used)."""
        return itertools.repeat(1.0 / self.rate_rps)


@dataclass(frozen=True)
class Trace:
    """Open loop: replay of absolute send times in seconds from the stream's start (sorted, non-negative)."""

    times_s: tuple[float, ...]

    def gaps(self, rng: np.random.Generator) -> Iterator[float]:
        """Seconds between consecutive trace entries (the rng is not used)."""
        return iter(np.diff(np.asarray(self.times_s), prepend=0.0).tolist())


@dataclass(frozen=True)
class ClosedLoop:
    """Closed loop, like ``while true; do curl ...; done``: the next request leaves ``think`` after the reply."""

    think: Dist = ZERO

    def gaps(self, rng: np.random.Generator) -> Iterator[float]:
        """Think times in seconds between a reply (or failure) and the next send."""
        if isinstance(self.think, Constant):
            return itertools.repeat(self.think.value_s)
        return blocks(self.think, rng)


Workload = Poisson | ConstantRate | Trace | ClosedLoop
OPEN_LOOP = (Poisson, ConstantRate, Trace)
