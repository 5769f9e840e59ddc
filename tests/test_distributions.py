import math

import numpy as np
import pytest

from sim.distributions import Constant, Exponential, Gamma, LogNormal, Sum, Uniform
from sim.rng import Streams

N = 200_000


@pytest.mark.parametrize(
    ("dist", "variance"),
    [
        (Exponential(0.002), 0.002**2),
        (LogNormal(0.003, 0.5), (math.exp(0.25) - 1) * 0.003**2),
        (Uniform(0.001, 0.004), 0.003**2 / 12),
        (Gamma(0.002, 4.0), 0.002**2 / 4),
    ],
)
def test_sample_mean_within_4_standard_errors_of_theory(dist, variance):
    draws = dist(Streams(1).generator("d"), N)
    assert np.all(draws >= 0)
    assert abs(draws.mean() - dist.mean_s) < 4 * math.sqrt(variance / N)


def test_constant_and_sum():
    rng = Streams(1).generator("d")
    assert np.all(Constant(0.5)(rng, 3) == 0.5)
    path = Sum((Constant(0.1), Constant(0.25)))
    assert path.mean_s == pytest.approx(0.35)
    assert np.allclose(path(rng, 4), 0.35)


def test_zero_mean_lognormal_is_zero():
    assert np.all(LogNormal(0.0, 1.0)(Streams(1).generator("d"), 3) == 0)
