"""How a run's results are worded and their numbers written, once for every reader: the CLI's tables
(``sim.cli.text``), the report's template (``sim.report``) and the verdict a summary carries
(``sim.experiment.analysis``, hence the JSON).

Here: the number formats (counts, shares, latencies, statistics, p-values, differences; ``-`` where there is no
value), the name of the test that decided the p-value, the verdict's words and the words for how endpoints were
picked. Each reader keeps its own layout (the CLI's columns, the report's HTML); what a number looks like and
what a test is called are read from here, so the CLI and the report cannot drift apart.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the types only: the CLI reads this module before numpy is needed (tests/test_cold_start.py)
    from sim.experiment.metrics import Balance, CriticalPath, Picks
    from sim.stats import ChiSquare

MISSING = "-"
"""What a number without a value (None, NaN) is written as."""
CHI_SQUARE = "chi-square"
"""``ChiSquare.method`` where the chi-square law gave the p-value."""


def is_missing(value: Any) -> bool:
    """True for a value not there: None or NaN."""
    return value is None or (isinstance(value, float) and math.isnan(value))


def count(value: Any) -> str:
    """An integer count, or ``-``."""
    return MISSING if value is None else str(int(value))


def percent(fraction: Any, decimals: int = 1) -> str:
    """A fraction (0..1) as a percentage, or ``-``.

    >>> percent(0.4963), percent(0.4963, 0), percent(None), percent(math.nan)
    ('49.6%', '50%', '-', '-')
    """
    return MISSING if is_missing(fraction) else f"{fraction * 100:.{decimals}f}%"


def milliseconds(seconds: Any) -> str:
    """A duration in seconds as milliseconds with three decimals, or ``-``.

    >>> milliseconds(0.000319), milliseconds(None)
    ('0.319 ms', '-')
    """
    return MISSING if is_missing(seconds) else f"{seconds * 1e3:.3f} ms"


def decimals(value: Any, places: int) -> str:
    """A number with ``places`` decimals (a statistic, an effect size, seconds), or ``-``.

    >>> decimals(3.14159, 3), decimals(math.nan, 4)
    ('3.142', '-')
    """
    return MISSING if is_missing(value) else f"{value:.{places}f}"


def significant(value: Any, digits: int = 4) -> str:
    """A statistic with ``digits`` significant digits (a rate: 3), or ``-``.

    >>> significant(0.000123456), significant(12345.6), significant(12345.6, 3)
    ('0.0001235', '1.235e+04', '1.23e+04')
    """
    return MISSING if is_missing(value) else f"{value:.{digits}g}"


def latency_words(seconds: float) -> str:
    """A latency in a figure's few characters: whole microseconds below a millisecond, else two significant
    digits of milliseconds; ``-`` for none (an edge whose calls all failed).

    >>> latency_words(0.000125), latency_words(0.0123), latency_words(float("nan"))
    ('125 us', '12 ms', '-')
    """
    if is_missing(seconds):
        return MISSING
    return f"{seconds * 1e6:.0f} us" if seconds < 1e-3 else f"{seconds * 1e3:.2g} ms"


def pvalue(p: float) -> str:
    """A p-value with four decimals, or ``-`` where no p-value applies (NaN: an adaptive picker).

    >>> pvalue(0.04567), pvalue(math.nan)
    ('0.0457', '-')
    """
    return decimals(p, 4)


def difference(value: Any, unit: str, bare: bool = False) -> str:
    """A signed difference: seconds as ms, a fraction as percentage points (the unit left out if ``bare``), or
    ``-``.

    >>> difference(0.00125, "ms"), difference(-0.125, "pp"), difference(0.00125, "ms", True), difference(None, "ms")
    ('+1.250 ms', '-12.5 pp', '+1.250', '-')
    """
    if is_missing(value):
        return MISSING
    text = f"{value * 1e3:+.3f}" if unit == "ms" else f"{value * 100:+.1f}"
    return text if bare else f"{text} {unit}"


def statistic_label(test: ChiSquare) -> str:
    """What the statistic is shown as: ``chi-square``, or the test that decided the p-value where another did
    (exact binomial, Monte Carlo; the statistic is Pearson's X^2 either way).

    >>> from sim.stats import ChiSquare
    >>> statistic_label(ChiSquare(1, 0.3, 1, 10, 0.3, 5)), statistic_label(ChiSquare(1, 0, 1, 10, 0, 5, "Monte Carlo"))
    ('chi-square', 'Monte Carlo test: statistic')
    """
    return CHI_SQUARE if test.method == CHI_SQUARE else f"{test.method} test: statistic"


def fit_numbers(test: ChiSquare) -> tuple[str, str, str, str]:
    """The test's label, statistic, p-value and Cohen's w as every reader writes them (the layouts differ).

    >>> from sim.stats import ChiSquare
    >>> fit_numbers(ChiSquare(0.5, 0.4795, 1, 10, 0.2236, 5))
    ('chi-square', '0.500', '0.4795', '0.2236')
    """
    return statistic_label(test), decimals(test.statistic, 3), pvalue(test.pvalue), decimals(test.cohens_w, 4)


def fit_verdict(test: ChiSquare, alpha: float = 0.01) -> str:
    """The plain-words reading of a goodness-of-fit test at level ``alpha``."""
    if test.dof == 0:
        return "one eligible endpoint: every routed request must land there; nothing to test"
    if test.method != CHI_SQUARE:
        caution = f" ({test.method} test: too few for chi-square)"
    elif test.min_expected < 5:
        caution = f" (caution: smallest expected count {test.min_expected:.1f} < 5)"
    else:
        caution = ""
    if test.pvalue < alpha:
        return f"REJECT the expected split at alpha={alpha} (p={test.pvalue:.3g}, w={test.cohens_w:.3f})" + caution
    return f"consistent with the expected split at alpha={alpha} (p={test.pvalue:.3g})" + caution


def adaptive_verdict(pickers: str, balance: Balance) -> str:
    """The verdict for pickers that choose by live load (``pickers``: their names): no p-value, the balance."""
    return (
        f"adaptive picker ({pickers}): it picks by live load, so its picks are not draws with fixed shares and "
        f"no p-value applies; balance achieved: picked/expected {balance.min_ratio:.3f} to "
        f"{balance.max_ratio:.3f} (CV {balance.cv:.3f}); this says how even the split was, not whether "
        "the picker is fair"
    )


def deterministic_verdict(pickers: str, max_deviation: float) -> str:
    """The verdict for deterministic pickers (``pickers``: their names): exact balance, the largest deviation."""
    return f"deterministic picker ({pickers}): exact balance expected, max deviation {max_deviation:g}"


def nothing_to_test(sent: bool, routed: bool) -> str:
    """The verdict where no fresh pick had an endpoint to choose among."""
    if not sent:
        return "nothing sent: nothing to test"
    if not routed:
        return "no eligible endpoint: no request could be routed; nothing to test"
    return "no fresh picks (every request rode an open connection or affinity): nothing to test"


def picks_text(picks: Picks) -> str:
    """How routed requests' endpoints were chosen, in words.

    >>> from sim.experiment.metrics import Picks
    >>> picks_text(Picks(fresh=90, affinity=0, reused_connection=10))
    '90 fresh, 0 by affinity, 10 on open connections'
    """
    return f"{picks.fresh} fresh, {picks.affinity} by affinity, {picks.reused_connection} on open connections"


CRITICAL_PATH_PARTS = {
    "own_work": "own work",
    "network": "network",
    "queueing": "queueing",
    "failed_calls": "failed calls",
}
"""A page's critical-path parts (``CriticalPath``'s fields, in order) and what they are called."""


def critical_path_parts(path: CriticalPath) -> list[tuple[str, str, float]]:
    """Each part of a critical path: its field, its words and its mean seconds, in order."""
    return [(name, words, getattr(path, name)) for name, words in CRITICAL_PATH_PARTS.items()]
