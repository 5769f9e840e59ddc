"""Client request streams: open loop (Poisson, constant rate, trace replay) and closed loop (curl in a loop)."""

from __future__ import annotations

import itertools
import math
import sys
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from sim.distributions import ZERO, Constant, Dist, Exponential
from sim.rng import block_arrays, blocks


@dataclass(frozen=True)
class Poisson:
    """Open loop: exponential gaps at ``rate_rps`` requests/s."""

    rate_rps: float

    def gaps(self, rng: np.random.Generator) -> Iterator[float]:
        """Seconds from one send to the next (the first send happens one gap after the stream starts)."""
        return blocks(Exponential(1.0 / self.rate_rps), rng)

    def gap_blocks(self, rng: np.random.Generator) -> Iterator[np.ndarray]:
        """``gaps`` (s) as the arrays they are drawn in."""
        return block_arrays(Exponential(1.0 / self.rate_rps), rng)


@dataclass(frozen=True)
class ConstantRate:
    """Open loop: one request every ``1 / rate_rps`` seconds."""

    rate_rps: float

    def gaps(self, rng: np.random.Generator) -> Iterator[float]:
        """Seconds between sends (the rng is not used)."""
        return itertools.repeat(1.0 / self.rate_rps)

    def gap_blocks(self, rng: np.random.Generator) -> Iterator[np.ndarray]:
        """``gaps`` (s) in arrays of 4096."""
        return itertools.repeat(np.full(4096, 1.0 / self.rate_rps))


@dataclass(frozen=True)
class Trace:
    """Open loop: replay of absolute send times in seconds from the stream's start (sorted, non-negative)."""

    times_s: tuple[float, ...]

    def gaps(self, rng: np.random.Generator) -> Iterator[float]:
        """Seconds between consecutive trace entries (the rng is not used)."""
        return iter(next(self.gap_blocks(rng)).tolist())

    def gap_blocks(self, rng: np.random.Generator) -> Iterator[np.ndarray]:
        """``gaps`` (s) in one array."""
        return iter((np.diff(np.asarray(self.times_s, dtype=float), prepend=0.0),))


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


def send_times(
    gap_blocks: Iterator[np.ndarray], start_s: float, requests: int | None, horizon_s: float | None
) -> np.ndarray:
    """An open-loop stream's send times (s): ``start_s`` plus the running sum of its gaps (``gap_blocks``, as an
    open-loop workload draws them), at most ``requests`` of them (None: no cap) and only those before
    ``horizon_s`` (None or inf: no horizon). One of the two, or the gaps themselves (a trace), must end.

    The sums are sequential float64 additions, the very times one tick event after another would reach, so the
    DES's merged schedule, its per-stream ticks and the fast path all send at the same instants.

    >>> send_times(ConstantRate(2.0).gap_blocks(np.random.default_rng()), 1.0, None, 2.6).tolist()
    [1.5, 2.0, 2.5]
    """
    horizon = math.inf if horizon_s is None else horizon_s
    left = sys.maxsize if requests is None else requests
    parts: list[np.ndarray] = []
    last: float | None = None
    while left > 0 and (last is None or last < horizon):
        block = next(gap_blocks, None)
        if block is None or not len(block):
            break  # a trace ran out
        block = block[:left].copy()
        left -= len(block)
        if last is None:
            block[0] = start_s + block[0]
            times = np.cumsum(block)
        else:
            times = np.cumsum(np.concatenate(([last], block)))[1:]
        parts.append(times)
        last = float(times[-1])
    times = np.concatenate(parts) if parts else np.zeros(0)
    return times[times < horizon]


def time_order(times: np.ndarray) -> np.ndarray:
    """The stable order of ``times`` (s): equal times keep their row order. Times of +0.0 and above sort as their
    IEEE bits read as int64 (the same order, and a quarter faster to sort than floats); otherwise as floats."""
    if len(times) and not np.signbit(times).any() and not np.isnan(times).any():
        return np.argsort(times.view(np.int64), kind="stable")
    return np.argsort(times, kind="stable")
