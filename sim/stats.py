"""Statistics of load balancing, pure scipy.stats: chi-square goodness of fit, effect size, power."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

# scipy.stats is imported inside the functions: it costs about a second, which every CLI call would pay.


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
    """How ``pvalue`` was computed: ``chi-square``, or ``exact binomial`` for two cells with an expected count under
    5, where the chi-square approximation is poor (a 4-0 split of 4 fair coin flips would get p = 0.046)."""


def chi_square_gof(observed: ArrayLike, expected_shares: ArrayLike) -> ChiSquare:
    """Test observed counts against expected shares (normalised to sum 1); zero-share cells must be empty.

    Cells whose expected share is 0 are left out: a count there is a policy violation, which the caller reports
    on its own rather than letting it inflate the statistic. With one cell left there is nothing to test: the
    statistic is 0, the p-value 1 and dof 0.

    >>> r = chi_square_gof([60, 40], [0.5, 0.5])
    >>> round(r.statistic, 6), r.dof, round(r.pvalue, 4), round(r.cohens_w, 3)
    (4.0, 1, 0.0455, 0.2)
    """
    obs = np.asarray(observed, dtype=float)
    shares = np.asarray(expected_shares, dtype=float)
    if obs.shape != shares.shape:
        raise ValueError(f"observed has {obs.size} cells but expected_shares has {shares.size}")
    if np.any(shares < 0) or shares.sum() <= 0:
        raise ValueError("expected_shares must be >= 0 with a positive sum")
    keep = shares > 0
    obs, shares = obs[keep], shares[keep] / shares[keep].sum()
    n = round(obs.sum())
    expected = shares * obs.sum()
    if obs.size < 2 or n == 0:
        return ChiSquare(0.0, 1.0, 0, n, 0.0, float(expected.min()) if expected.size else 0.0)
    from scipy import stats as st  # lazily: see the note at the imports

    statistic, pvalue = st.chisquare(obs, expected)
    w = math.sqrt(statistic / n)
    if obs.size == 2 and expected.min() < 5 and np.allclose(obs, np.round(obs)):
        exact = st.binomtest(round(obs[0]), n, float(shares[0])).pvalue
        return ChiSquare(float(statistic), float(exact), 1, n, w, float(expected.min()), "exact binomial")
    return ChiSquare(float(statistic), float(pvalue), obs.size - 1, n, w, float(expected.min()))


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


def verdict(result: ChiSquare, alpha: float = 0.01) -> str:
    """The plain-words reading of a goodness-of-fit test at level ``alpha``."""
    if result.dof == 0:
        return "one eligible endpoint: every routed request must land there; nothing to test"
    if result.method != "chi-square":
        caution = f" ({result.method} test: too few for chi-square)"
    elif result.min_expected < 5:
        caution = f" (caution: smallest expected count {result.min_expected:.1f} < 5)"
    else:
        caution = ""
    if result.pvalue < alpha:
        return f"REJECT the expected split at alpha={alpha} (p={result.pvalue:.3g}, w={result.cohens_w:.3f})" + caution
    return f"consistent with the expected split at alpha={alpha} (p={result.pvalue:.3g})" + caution
