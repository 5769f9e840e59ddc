"""The backend queues against queueing theory, over independent replications at fixed seeds.

Each check takes R replications, compares the grand mean of a replication-level statistic with the formula, and
accepts within 3 standard errors of the replication means; the same data must reject a model whose service rate
is 10% off (so the test can fail). Requests in each replication's first quarter are the warm-up and are dropped.

The monitors (utilisation, mean queue, mean number in the pod) are time averages over a window; their checks
take MR replications of a fixed window after a warm-up many relaxation times long, and accept within the
Student-t bound at level 0.001 over the replication means (the replications are independent, so this is the
estimator's own sampling error, not a tuned margin); for M/M/1 the replications' spread is also checked against
the time average's known asymptotic variance.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from sim.cluster import Discipline, Pod, Service
from sim.distributions import Constant, Dist, Exponential
from sim.engine import run
from sim.outcomes import DropReason, Outcome
from sim.queueing import fifo_serve
from sim.scenario import Scenario, Stream
from sim.solver import events_needed
from sim.workload import Poisson
from tests.conftest import check_theory, solve_fast, star

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
    check_theory(grand, se, theory, {"wrong": wrong})


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


# --- the monitors: time averages against M/M/1, M/M/c (Erlang C), M/M/c-PS and M/G/1-PS ------------------------

MR = 8
"""Replications per monitor check."""
WINDOW_S = 8000.0
"""Averaging window (in mean service times) after the warm-up."""
WARMUP_S = 500.0
"""Longer than 10 relaxation times 1 / (mu (1 - sqrt(rho))^2) of every queue below (at most 38 s at rho 0.8,
c = 1; less for c > 1)."""


def monitored(lam: float, service: Dist, workers: int, discipline: Discipline) -> dict[str, np.ndarray]:
    """Per monitor, its value in each of MR replications: a Poisson client for ``WINDOW_S`` after ``WARMUP_S``."""
    sc = dataclasses.replace(
        queue(lam, service, workers=workers, discipline=discipline, warmup_s=WARMUP_S),
        streams=(Stream("client", "s", Poisson(lam), None),),
        duration_s=WARMUP_S + WINDOW_S,
    )
    engine = solve_fast if events_needed(sc) is None else run
    runs = [engine(sc, 3000 + rep).monitors for rep in range(MR)]
    return {name: np.array([m[name][1] for m in runs]) for name in ("utilization", "queue_mean", "in_system_mean")}


def mm_c(lam: float, mu: float, c: int) -> dict[str, float]:
    """M/M/c time averages: utilisation rho = lam / (c mu), mean queue Erlang C x rho / (1 - rho), in system
    that plus the busy workers lam / mu."""
    a, rho = lam / mu, lam / (c * mu)
    queue_mean = erlang_c(c, a) * rho / (1 - rho)
    return {"utilization": rho, "queue_mean": queue_mean, "in_system_mean": queue_mean + a}


def check_monitors(values: dict[str, np.ndarray], theory: dict[str, float], wrong: dict[str, float]) -> None:
    """Every monitor within the t bound (level 0.001, MR - 1 dof) of theory, and outside it for the wrong model."""
    from scipy import stats as st

    bound = float(st.t.ppf(1 - 0.0005, MR - 1))
    for name, v in values.items():
        grand, se = float(v.mean()), float(v.std(ddof=1) / math.sqrt(MR))
        assert abs(grand - theory[name]) < bound * se, f"{name}: {grand:.4f} vs theory {theory[name]:.4f} (SE {se:.4f})"
        assert abs(grand - wrong[name]) > bound * se, f"{name}: cannot tell {theory[name]:.4f} from {wrong[name]:.4f}"


@pytest.mark.parametrize("discipline", [Discipline.FIFO, Discipline.PS])
def test_monitors_of_mm1_fifo_and_ps(discipline):
    """M/M/1 and M/M/1-PS have one number-in-system process: utilisation rho (the busy fraction, not the mean
    number in the pod), queue rho^2 / (1 - rho), in system rho / (1 - rho)."""
    lam, mu = 0.7, 1.0
    values = monitored(lam, Exponential(1 / mu), 1, discipline)
    check_monitors(values, mm_c(lam, mu, 1), mm_c(lam, 1.1 * mu, 1))
    # The replications' spread is the time average's: asymptotic variance 2 rho (1 + rho) / (mu (1 - rho)^4) of
    # the number in system (Whitt 1989, "Planning queueing simulations"), and 2 rho / mu of the busy indicator
    # (regenerative cycles: idle Exp(lam) + busy period). (MR - 1) s^2 / sigma^2 is chi-square with MR - 1 dof.
    from scipy import stats as st

    rho = lam / mu
    asymptotic = {"in_system_mean": 2 * rho * (1 + rho) / (mu * (1 - rho) ** 4), "utilization": 2 * rho / mu}
    for name, var in asymptotic.items():
        ratio = (MR - 1) * values[name].var(ddof=1) / (var / WINDOW_S)
        assert st.chi2.ppf(0.0005, MR - 1) < ratio < st.chi2.ppf(0.9995, MR - 1), f"{name}: spread ratio {ratio:.2f}"


@pytest.mark.parametrize("discipline", [Discipline.FIFO, Discipline.PS])
def test_monitors_of_mmc_fifo_and_ps(discipline):
    """M/M/3 (Erlang C) and M/M/3-PS (the same count process): utilisation lam / (3 mu), not the mean number
    in the pod over 3."""
    lam, mu, c = 2.4, 1.0, 3
    check_monitors(monitored(lam, Exponential(1 / mu), c, discipline), mm_c(lam, mu, c), mm_c(lam, 1.1 * mu, c))


def test_monitors_of_mg1_ps_are_insensitive():
    """M/D/1-PS: the number in system is geometric whatever the service distribution, so M/M/1's averages."""
    lam, d = 0.5, 1.0
    check_monitors(monitored(lam, Constant(d), 1, Discipline.PS), mm_c(lam, 1 / d, 1), mm_c(lam, 1.1 / d, 1))


# --- sim.queueing.fifo_serve against a worker-by-worker simulation with an explicit waiting line ---------------


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
