"""The backend queues against queueing theory, over independent replications at fixed seeds.

Each check takes R replications, compares the grand mean of a replication-level statistic with the formula, and
accepts within 3 standard errors of the replication means; the same data must reject a model whose service rate
is 10% off (so the test can fail). Requests in each replication's first quarter are the warm-up and are dropped.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from sim.cluster import Discipline, Pod, Service
from sim.distributions import Constant, Dist, Exponential
from sim.engine import run
from sim.outcomes import DropReason, Outcome
from sim.scenario import Scenario, Stream
from sim.workload import Poisson
from tests.conftest import star

pytestmark = pytest.mark.statistical

R = 6
N = 12_000


def queue(
    lam: float,
    service: Dist,
    *,
    workers: int = 1,
    queue_limit: int | None = None,
    warmup_s: float = 0.0,
    discipline: Discipline = Discipline.FIFO,
):
    """One Poisson client (rate lam/s) and one pod: an M/G/c(/K) queue behind a constant 0.1 ms hop."""
    return Scenario(
        name="queue",
        topology=star(["n"]),
        pods=(
            Pod("client", "n", "10.0.0.2", {"app": "c"}),
            Pod(
                "server",
                "n",
                "10.0.0.3",
                {"app": "s"},
                service_time=service,
                concurrency=workers,
                queue_limit=queue_limit,
                discipline=discipline,
            ),
        ),
        services=(Service("s", {"app": "s"}),),
        streams=(Stream("client", "s", Poisson(lam), N),),
        warmup_s=warmup_s,
    )


def replicate(scenario: Scenario, stat) -> tuple[float, float]:
    """Grand mean and standard error of ``stat(columns after warm-up)`` over R seeds."""
    values = []
    for rep in range(R):
        c = run(scenario, seed=1000 + rep).columns
        keep = slice(N // 4, None)
        values.append(stat({k: v[keep] for k, v in c.items()}))
    return float(np.mean(values)), float(np.std(values, ddof=1) / math.sqrt(R))


def check(grand: float, se: float, theory: float, wrong: float) -> None:
    assert abs(grand - theory) < 3 * se, f"{grand:.4f} vs theory {theory:.4f} (SE {se:.4f})"
    assert abs(grand - wrong) > 3 * se, f"{grand:.4f} cannot tell theory {theory:.4f} from wrong {wrong:.4f}"


def sojourn(c) -> float:
    return float(np.mean(c["t_finished"] - c["t_arrived"]))


def waited(c) -> float:
    return float(np.mean(c["t_started"] > c["t_arrived"]))


def erlang_c(c: int, a: float) -> float:
    """Probability that an arrival waits in M/M/c with offered load a = lambda/mu (Erlang C)."""
    top = a**c / math.factorial(c) * c / (c - a)
    return top / (sum(a**k / math.factorial(k) for k in range(c)) + top)


def test_mm1_mean_sojourn_and_probability_of_waiting():
    lam, mu = 0.5, 1.0
    sc = queue(lam, Exponential(1 / mu))
    check(*replicate(sc, sojourn), 1 / (mu - lam), 1 / (1.1 * mu - lam))
    check(*replicate(sc, waited), lam / mu, lam / (1.1 * mu))


def test_mmc_erlang_c():
    lam, mu, c = 2.4, 1.0, 3
    sc = queue(lam, Exponential(1 / mu), workers=c)
    theory = erlang_c(c, lam / mu) / (c * mu - lam) + 1 / mu
    wrong = erlang_c(c, lam / (1.1 * mu)) / (c * 1.1 * mu - lam) + 1 / (1.1 * mu)
    check(*replicate(sc, sojourn), theory, wrong)
    check(*replicate(sc, waited), erlang_c(c, lam / mu), erlang_c(c, lam / (1.1 * mu)))


def test_md1_pollaczek_khinchine_mean_wait():
    lam, d = 0.5, 1.0
    sc = queue(lam, Constant(d))

    def wait(c) -> float:
        return float(np.mean(c["t_started"] - c["t_arrived"]))

    rho, rho_wrong = lam * d, lam * d / 1.1
    check(*replicate(sc, wait), rho * d / (2 * (1 - rho)), rho_wrong * (d / 1.1) / (2 * (1 - rho_wrong)))


def test_mm1k_blocking_probability():
    lam, mu, k = 0.9, 1.0, 5  # K = one in service + 4 waiting
    sc = queue(lam, Exponential(1 / mu), queue_limit=k - 1)

    def blocked(c) -> float:
        return float(np.mean(c["reason"] == DropReason.QUEUE_FULL))

    def p_block(rho: float) -> float:
        return (1 - rho) * rho**k / (1 - rho ** (k + 1))

    check(*replicate(sc, blocked), p_block(lam / mu), p_block(lam / (1.1 * mu)))
    c = run(sc, 1).columns
    full = c["reason"] == DropReason.QUEUE_FULL
    assert np.all(c["outcome"][full] == Outcome.DROPPED) and np.all(np.isnan(c["t_started"][full]))


def test_littles_law_on_the_monitors():
    """The monitor's time-averaged number in the pod equals arrival rate x mean time in the pod (Little's law).

    First, exactly: the monitor's area is the sum over requests of their time inside the window (an identity
    that checks the accounting). Then Little's law, per replication, within 3 SE: boundary terms (requests
    straddling the window's edges) shrink as the window grows.
    """
    lam, mu = 0.7, 1.0
    warm = 2000.0
    sc = queue(lam, Exponential(1 / mu), workers=1, warmup_s=warm)
    diffs, utilization = [], []
    for rep in range(R):
        r = run(sc, seed=2000 + rep)
        utilization.append(r.monitors["utilization"][1])
        c = r.columns
        window = r.monitors["window_s"][1]
        end = warm + window
        served = ~np.isnan(c["t_arrived"])
        left = np.where(np.isnan(c["t_finished"]), end, c["t_finished"])
        overlap = np.clip(np.minimum(left, end) - np.maximum(c["t_arrived"], warm), 0, None)[served]
        assert r.monitors["in_system_mean"][1] == pytest.approx(overlap.sum() / window, rel=1e-9)
        inside = c["t_arrived"] >= warm
        lam_hat = np.count_nonzero(inside) / window
        w_hat = np.mean(np.minimum(left[inside], end) - c["t_arrived"][inside])
        diffs.append(r.monitors["in_system_mean"][1] - lam_hat * w_hat)
    grand, se = float(np.mean(diffs)), float(np.std(diffs, ddof=1) / math.sqrt(R))
    assert abs(grand) < 3 * se
    # utilisation = rho for a single-worker queue
    check(float(np.mean(utilization)), float(np.std(utilization, ddof=1) / math.sqrt(R)), lam / mu, lam / (1.1 * mu))


def test_processor_sharing_is_insensitive_to_the_service_distribution():
    """M/G/1-PS: mean sojourn E[S]/(1 - rho) whatever the distribution; with constant service FIFO gives less."""
    lam, d = 0.5, 1.0
    sc = queue(lam, Constant(d), discipline=Discipline.PS)
    rho = lam * d
    check(
        *replicate(sc, sojourn), d / (1 - rho), d + rho * d / (2 * (1 - rho))
    )  # PS, and M/D/1 FIFO as the wrong model


def test_processor_sharing_on_two_cores_matches_mm2():
    """M/M/c-PS with exponential service has the M/M/c-FIFO mean sojourn (the count process is the same)."""
    lam, mu, c = 1.5, 1.0, 2
    sc = queue(lam, Exponential(1 / mu), workers=c, discipline=Discipline.PS)
    theory = erlang_c(c, lam / mu) / (c * mu - lam) + 1 / mu
    wrong = erlang_c(c, lam / (1.1 * mu)) / (c * 1.1 * mu - lam) + 1 / (1.1 * mu)
    check(*replicate(sc, sojourn), theory, wrong)
