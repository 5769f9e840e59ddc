"""Statistics of load balancing on scipy: chi-square goodness of fit, effect size, power; and statistics over
replications (t intervals, paired differences, false-discovery control, sample sizes)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

# scipy is imported inside the functions: scipy.stats costs about 0.6 s, which every CLI call would pay; the
# chi-square tail a run's verdict needs comes from scipy.special (about 0.2 s, ``_chi2_sf``).


MONTE_CARLO_DRAWS = 10_000
"""Null draws behind a Monte Carlo p-value (its resolution is 1 / 10,001; its standard error at p = 0.01 is 0.001)."""


@dataclass(frozen=True)
class ChiSquare:
    """A chi-square goodness-of-fit result over the cells with positive expected share.

    ``cohens_w`` is the effect size sqrt(statistic / n): 0.1 small, 0.3 medium, 0.5 large (Cohen 1988).
    ``min_expected`` is the smallest expected count; below 5 the chi-square approximation is doubtful.
    """

    statistic: float
    pvalue: float
    dof: int
    n: int
    cohens_w: float
    min_expected: float
    method: str = "chi-square"
    """How ``pvalue`` was computed: ``chi-square``; ``exact binomial`` for two cells with an expected count under
    5, where the chi-square approximation is poor (a 4-0 split of 4 fair coin flips would get p = 0.046);
    ``Monte Carlo`` (the statistic's own null distribution, ``MONTE_CARLO_DRAWS`` multinomial draws) for more
    cells, or several groups, with an expected count under 5."""
    groups: tuple[GroupTest, ...] = ()
    """The groups tested (``grouped_gof``): the statistic and dof are their sums."""


@dataclass(frozen=True)
class GroupTest:
    """One group of a ``grouped_gof``: which input groups it merges, its cells (indices with positive expected
    share), their observed counts and expected shares, and its own test."""

    members: tuple[int, ...]
    cells: tuple[int, ...]
    observed: tuple[float, ...]
    shares: tuple[float, ...]
    test: ChiSquare


def chi_square_gof(observed: ArrayLike, expected_shares: ArrayLike) -> ChiSquare:
    """Test observed counts against expected shares (normalised to sum 1); zero-share cells must be empty.

    Cells whose expected share is 0 are left out: a count there is a policy violation, which the caller reports
    on its own rather than letting it inflate the statistic. With one cell left there is nothing to test: the
    statistic is 0, the p-value 1 and dof 0. With an expected count under 5 the p-value is exact (two cells) or
    Monte Carlo (see ``ChiSquare.method``).

    >>> r = chi_square_gof([60, 40], [0.5, 0.5])
    >>> round(r.statistic, 6), r.dof, round(r.pvalue, 4), round(r.cohens_w, 3)
    (4.0, 1, 0.0455, 0.2)
    """
    obs, shares = _cells(observed, expected_shares)
    return _one_group(obs, shares)


def grouped_gof(groups: Sequence[tuple[ArrayLike, ArrayLike]]) -> ChiSquare:
    """Test several independent groups of counts, each against its own expected shares (cells: the same index
    space in every group; a zero-share cell is left out of its group, as in ``chi_square_gof``).

    Groups with the same expected shares are one multinomial (a sum of independent multinomials with one share
    vector is multinomial), so they are merged first: this keeps the power of the pooled test where pooling is
    sound. The combined statistic is the sum of the merged groups' Pearson statistics, with the sum of their
    degrees of freedom (k - 1 for a group of k cells; 0 for a group with one cell, or no draws): for independent
    groups the sum of independent chi-square variables is chi-square with the summed dof. With every expected
    count at least 5 the p-value is that chi-square's; otherwise a group alone keeps its own exact or Monte Carlo
    p-value, and several groups take the Monte Carlo null distribution of the summed statistic (each group drawn
    from its own multinomial), never the chi-square law that small counts do not follow.

    >>> r = grouped_gof([([10, 0, 0], [1, 0, 0]), ([0, 60, 40], [0, 1, 1])])  # one group cannot vary
    >>> round(r.statistic, 6), r.dof, len(r.groups)
    (4.0, 1, 2)
    """
    merged: dict[bytes, tuple[list[int], np.ndarray, np.ndarray]] = {}
    for i, (observed, shares) in enumerate(groups):
        obs = np.asarray(observed, dtype=float)
        p = np.asarray(shares, dtype=float)
        if obs.shape != p.shape:
            raise ValueError(f"group {i}: observed has {obs.size} cells but expected_shares has {p.size}")
        if np.any(p < 0) or p.sum() <= 0:
            raise ValueError(f"group {i}: expected_shares must be >= 0 with a positive sum")
        p = p / p.sum()
        key = p.tobytes()
        if key in merged:
            merged[key][0].append(i)
            merged[key][1][...] += obs
        else:
            merged[key] = ([i], obs.copy(), p)
    parts = []
    for members, obs, p in merged.values():
        cells = np.flatnonzero(p > 0)
        test = _one_group(obs[cells], p[cells])
        parts.append(GroupTest(tuple(members), tuple(cells.tolist()), tuple(obs[cells].tolist()),
                               tuple(p[cells].tolist()), test))  # fmt: skip
    n = sum(g.test.n for g in parts)
    live = [g for g in parts if g.test.dof > 0]
    min_expected = min(
        (g.test.min_expected for g in live), default=min((g.test.min_expected for g in parts), default=0)
    )
    if not live:
        return ChiSquare(0.0, 1.0, 0, n, 0.0, float(min_expected), groups=tuple(parts))
    statistic = float(sum(g.test.statistic for g in live))
    dof = sum(g.test.dof for g in live)
    w = math.sqrt(statistic / n)
    if len(live) == 1:
        t = live[0].test
        return ChiSquare(statistic, t.pvalue, dof, n, w, t.min_expected, t.method, tuple(parts))
    pieces = [(np.asarray(g.observed), np.asarray(g.shares)) for g in live]
    if min_expected >= 5 or not all(_integral(o) for o, _ in pieces):
        pvalue = _chi2_sf(statistic, dof)
        return ChiSquare(statistic, pvalue, dof, n, w, float(min_expected), "chi-square", tuple(parts))
    pvalue = _monte_carlo(pieces, statistic)
    return ChiSquare(statistic, pvalue, dof, n, w, float(min_expected), "Monte Carlo", tuple(parts))


def _cells(observed: ArrayLike, expected_shares: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """The observed counts and normalised shares of the cells with positive expected share."""
    obs = np.asarray(observed, dtype=float)
    shares = np.asarray(expected_shares, dtype=float)
    if obs.shape != shares.shape:
        raise ValueError(f"observed has {obs.size} cells but expected_shares has {shares.size}")
    if np.any(shares < 0) or shares.sum() <= 0:
        raise ValueError("expected_shares must be >= 0 with a positive sum")
    keep = shares > 0
    return obs[keep], shares[keep] / shares[keep].sum()


def _integral(obs: np.ndarray) -> bool:
    return bool(np.allclose(obs, np.round(obs)))


def _one_group(obs: np.ndarray, shares: np.ndarray) -> ChiSquare:
    """The test of one group's counts ``obs`` against its shares (positive, summing to 1)."""
    n = round(obs.sum())
    expected = shares * obs.sum()
    if obs.size < 2 or n == 0:
        return ChiSquare(0.0, 1.0, 0, n, 0.0, float(expected.min()) if expected.size else 0.0)
    statistic = float(((obs - expected) ** 2 / expected).sum())  # Pearson's, as scipy.stats.chisquare sums it
    pvalue = _chi2_sf(statistic, obs.size - 1)
    w = math.sqrt(statistic / n)
    small = expected.min() < 5 and _integral(obs)
    if small and obs.size == 2:
        from scipy import stats as st  # lazily: see the note at the imports

        exact = st.binomtest(round(obs[0]), n, float(shares[0])).pvalue
        return ChiSquare(float(statistic), float(exact), 1, n, w, float(expected.min()), "exact binomial")
    if small:
        mc = _monte_carlo([(obs, shares)], float(statistic))
        return ChiSquare(float(statistic), mc, obs.size - 1, n, w, float(expected.min()), "Monte Carlo")
    return ChiSquare(float(statistic), float(pvalue), obs.size - 1, n, w, float(expected.min()))


def _chi2_sf(statistic: float, dof: int) -> float:
    """P(X >= ``statistic``) for X chi-square with ``dof`` degrees of freedom: ``scipy.special.chdtrc``, what
    ``scipy.stats.chisquare`` and ``chi2.sf`` compute, without importing scipy.stats (about 0.4 s of a run's
    start; scipy.special alone is about 0.2 s)."""
    from scipy import special

    return float(special.chdtrc(dof, statistic))


def _monte_carlo(pieces: Sequence[tuple[np.ndarray, np.ndarray]], statistic: float) -> float:
    """P(summed Pearson statistic >= ``statistic``) under the null, from ``MONTE_CARLO_DRAWS`` draws of every
    group's multinomial (its n, its shares): (1 + hits) / (1 + draws), a p-value whose size never exceeds alpha.

    The draws are keyed by the observed counts (a SeedSequence of them), so a p-value is a function of the data
    alone: the same counts always give the same p-value."""
    key = [len(pieces)] + [round(x) for obs, _ in pieces for x in obs.tolist()]
    rng = np.random.default_rng(np.random.SeedSequence(key))
    total = np.zeros(MONTE_CARLO_DRAWS)
    for obs, shares in pieces:
        n = round(obs.sum())
        expected = shares * n
        draws = rng.multinomial(n, shares, size=MONTE_CARLO_DRAWS)
        total += ((draws - expected) ** 2 / expected).sum(axis=1)
    hits = np.count_nonzero(total >= statistic - 1e-9 * max(1.0, statistic))  # ties count: the null is discrete
    return float((1 + hits) / (1 + MONTE_CARLO_DRAWS))


def chi_square_power(w: float, n: int, dof: int, alpha: float = 0.05) -> float:
    """Probability that a chi-square test with ``dof`` at level ``alpha`` detects effect size ``w`` with n samples.

    Under the alternative the statistic is non-central chi-square with non-centrality n * w**2.

    >>> round(chi_square_power(0.1, 785, 1), 2)  # Cohen's table: w=0.1, dof=1, n=785 gives power 0.80
    0.8
    """
    from scipy import stats as st  # lazily: see the note at the imports

    critical = st.chi2.ppf(1 - alpha, dof)
    return float(st.ncx2.sf(critical, dof, n * w**2))


def cohens_w(shares: Sequence[float], expected_shares: Sequence[float]) -> float:
    """Cohen's w between two share vectors: sqrt(sum((p1 - p0)^2 / p0)).

    >>> round(cohens_w([0.55, 0.45], [0.5, 0.5]), 3)
    0.1
    """
    p1 = np.asarray(shares, dtype=float)
    p0 = np.asarray(expected_shares, dtype=float)
    return float(np.sqrt(np.sum((p1 - p0) ** 2 / p0)))


# --- statistics over replications (one value per replication: independent, unlike requests within a run) ---------


def _scipy_stats():  # type: ignore[no-untyped-def]
    """scipy.stats, imported on first use (see the note at the imports)."""
    from scipy import stats

    return stats


@dataclass(frozen=True)
class MeanCI:
    """A mean over replications with its Student-t confidence interval, in the units of the values."""

    mean: float
    low: float
    high: float
    n: int
    sd: float
    confidence: float


def mean_ci(values: ArrayLike, confidence: float = 0.95) -> MeanCI:
    """Mean of replication-level statistics (one value per replication, any unit) and its t interval.

    Replications are independent, so their statistics are too; raw requests within a run are not (they share
    queues), which is why intervals are never taken over requests. NaN values are left out; with fewer than two
    values the interval is NaN.

    >>> r = mean_ci([1.0, 2.0, 3.0, 4.0, 5.0])
    >>> round(r.mean, 4), round(r.low, 4), round(r.high, 4)
    (3.0, 1.0368, 4.9632)
    """
    x = np.asarray(values, dtype=float)
    x = x[~np.isnan(x)]
    n = int(x.size)
    if n == 0:
        return MeanCI(math.nan, math.nan, math.nan, 0, math.nan, confidence)
    mean = float(x.mean())
    if n < 2:
        return MeanCI(mean, math.nan, math.nan, n, math.nan, confidence)
    sd = float(x.std(ddof=1))
    half = float(_scipy_stats().t.ppf(0.5 + confidence / 2, n - 1)) * sd / math.sqrt(n)
    return MeanCI(mean, mean - half, mean + half, n, sd, confidence)


@dataclass(frozen=True)
class PairedDifference:
    """Mean of per-replication differences a - b (units of a and b), t interval, paired t-test and Cohen's d_z."""

    mean: float
    low: float
    high: float
    n: int
    statistic: float
    pvalue: float
    cohens_dz: float


def paired_difference(a: ArrayLike, b: ArrayLike, confidence: float = 0.95) -> PairedDifference:
    """Compare two policies replication by replication: under common random numbers replication r of each saw
    the same arrivals, so the differences a[r] - b[r] have far less variance than two independent samples.

    Pairs with a NaN on either side are left out.

    >>> d = paired_difference([2.0, 4.0, 6.0], [1.0, 2.0, 3.0])
    >>> d.mean, round(d.low, 4), round(d.high, 4), d.cohens_dz
    (2.0, -0.4841, 4.4841, 2.0)
    """
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if x.shape != y.shape:
        raise ValueError(f"paired samples differ in length: {x.size} and {y.size}")
    d = (x - y)[~(np.isnan(x) | np.isnan(y))]
    ci = mean_ci(d, confidence)
    if ci.n < 2:
        return PairedDifference(ci.mean, math.nan, math.nan, ci.n, math.nan, math.nan, math.nan)
    if ci.sd == 0:
        same = ci.mean == 0
        return PairedDifference(ci.mean, ci.mean, ci.mean, ci.n, 0.0 if same else math.inf, 1.0 if same else 0.0, 0.0)
    statistic = ci.mean / (ci.sd / math.sqrt(ci.n))
    pvalue = float(2 * _scipy_stats().t.sf(abs(statistic), ci.n - 1))
    return PairedDifference(ci.mean, ci.low, ci.high, ci.n, float(statistic), pvalue, ci.mean / ci.sd)


def false_discovery(pvalues: ArrayLike, method: str = "bh") -> np.ndarray:
    """Benjamini-Hochberg ("bh") or -Yekutieli ("by") adjusted p-values (q-values); NaN stays NaN.

    >>> false_discovery([0.01, 0.04, 0.03, 0.5]).round(4).tolist()
    [0.04, 0.0533, 0.0533, 0.5]
    """
    p = np.asarray(pvalues, dtype=float)
    q = np.full(p.shape, math.nan)
    finite = ~np.isnan(p)
    if finite.any():
        q[finite] = _scipy_stats().false_discovery_control(p[finite], method=method)
    return q


def sample_size(w: float, dof: int, *, alpha: float = 0.05, power: float = 0.8) -> int:
    """Fewest requests for a chi-square test with ``dof`` at level ``alpha`` to detect Cohen's w with ``power``.

    >>> sample_size(0.1, 1)  # Cohen's table: w=0.1, dof=1, alpha=0.05, power 0.8 -> 785
    785
    """
    if not w > 0 or dof < 1 or not 0 < power < 1:
        raise ValueError(f"need w > 0, dof >= 1 and 0 < power < 1; got w={w}, dof={dof}, power={power}")
    hi = 2
    while chi_square_power(w, hi, dof, alpha) < power:
        hi *= 2
    lo = hi // 2
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if chi_square_power(w, mid, dof, alpha) >= power else (mid, hi)
    return hi


def skew_power(shares: ArrayLike, expected_shares: ArrayLike, n: int, *, alpha: float = 0.05) -> float:
    """Probability that n requests reveal a picker whose true shares are ``shares`` instead of the expected ones."""
    p1, p0 = np.asarray(shares, dtype=float), np.asarray(expected_shares, dtype=float)
    keep = p0 > 0  # as in the test: cells with no expected share are violations, not chi-square cells
    return chi_square_power(cohens_w(p1[keep].tolist(), p0[keep].tolist()), n, int(keep.sum()) - 1, alpha)


def skew_sample_size(shares: ArrayLike, expected_shares: ArrayLike, *, alpha: float = 0.05, power: float = 0.8) -> int:
    """Fewest requests for the chi-square test to reveal true ``shares`` against ``expected_shares``.

    >>> skew_sample_size([0.55, 0.45], [0.5, 0.5])  # w = 0.1
    785
    """
    p1, p0 = np.asarray(shares, dtype=float), np.asarray(expected_shares, dtype=float)
    keep = p0 > 0
    return sample_size(cohens_w(p1[keep].tolist(), p0[keep].tolist()), int(keep.sum()) - 1, alpha=alpha, power=power)
