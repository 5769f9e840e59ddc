"""Distributions of durations in seconds (hop latency, service time, think time), drawn in numpy blocks."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Constant:
    """Always ``value_s`` seconds."""

    value_s: float

    @property
    def mean_s(self) -> float:
        """Mean in seconds."""
        return self.value_s

    def __call__(self, rng: np.random.Generator, size: int) -> np.ndarray:
        """``size`` draws in seconds (the rng is not advanced)."""
        return np.full(size, self.value_s)


@dataclass(frozen=True)
class Exponential:
    """Exponential with mean ``mean_s`` seconds."""

    mean_s: float

    def __call__(self, rng: np.random.Generator, size: int) -> np.ndarray:
        """``size`` draws in seconds."""
        return rng.exponential(self.mean_s, size)


@dataclass(frozen=True)
class LogNormal:
    """Log-normal with mean ``mean_s`` seconds and shape ``sigma`` (the std of the underlying normal)."""

    mean_s: float
    sigma: float

    def __call__(self, rng: np.random.Generator, size: int) -> np.ndarray:
        """``size`` draws in seconds."""
        mu = math.log(self.mean_s) - self.sigma**2 / 2 if self.mean_s > 0 else -math.inf
        return rng.lognormal(mu, self.sigma, size) if self.mean_s > 0 else np.zeros(size)


@dataclass(frozen=True)
class Uniform:
    """Uniform on [``low_s``, ``high_s``] seconds."""

    low_s: float
    high_s: float

    @property
    def mean_s(self) -> float:
        """Mean in seconds."""
        return (self.low_s + self.high_s) / 2

    def __call__(self, rng: np.random.Generator, size: int) -> np.ndarray:
        """``size`` draws in seconds."""
        return rng.uniform(self.low_s, self.high_s, size)


@dataclass(frozen=True)
class Gamma:
    """Gamma with mean ``mean_s`` seconds and shape ``shape`` (squared coefficient of variation 1/shape)."""

    mean_s: float
    shape: float

    def __call__(self, rng: np.random.Generator, size: int) -> np.ndarray:
        """``size`` draws in seconds."""
        return rng.gamma(self.shape, self.mean_s / self.shape, size)


@dataclass(frozen=True)
class Empirical:
    """Resampling of measured durations ``samples_s`` (seconds), each equally likely."""

    samples_s: tuple[float, ...]

    @property
    def mean_s(self) -> float:
        """Mean in seconds."""
        return sum(self.samples_s) / len(self.samples_s)

    def __call__(self, rng: np.random.Generator, size: int) -> np.ndarray:
        """``size`` draws with replacement, in seconds."""
        return rng.choice(np.asarray(self.samples_s), size)


@dataclass(frozen=True)
class Sum:
    """The sum of independent draws from each part: a network path's delay is the sum of its hops."""

    parts: tuple[Dist, ...]

    @property
    def mean_s(self) -> float:
        """Mean in seconds."""
        return sum(p.mean_s for p in self.parts)

    def __call__(self, rng: np.random.Generator, size: int) -> np.ndarray:
        """``size`` draws in seconds, each the sum of one draw per part."""
        total = np.zeros(size)
        for part in self.parts:
            total += part(rng, size)
        return total


Dist = Constant | Exponential | LogNormal | Uniform | Gamma | Empirical | Sum
"""A duration distribution in seconds: ``dist(rng, size) -> ndarray`` and ``dist.mean_s``."""

ZERO = Constant(0.0)


def fixed_value(dist: Dist) -> float | None:
    """The value (s) of a distribution that draws no randomness (a Constant, or a Sum of them), else None."""
    if isinstance(dist, Constant):
        return dist.value_s
    if isinstance(dist, Sum):
        total = 0.0
        for part in dist.parts:
            value = fixed_value(part)
            if value is None:
                return None
            total += value
        return total
    return None
