"""What every figure shares: a new Axes, the series colours and line styles, log axes labelled in plain numbers,
notes on what is not drawn, titles that fit their figure (latency in words:
``sim.experiment.presentation.latency_words``)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, NullFormatter

from sim.experiment.presentation import latency_words as latency_words  # worded there; importable here too

MS_PER_S = 1e3


def axes_or_new(ax: Axes | None, size: tuple[float, float] = (6.4, 4.2)) -> Axes:
    """``ax``, or the only Axes of a new Figure (no pyplot)."""
    return ax if ax is not None else Figure(figsize=size, layout="constrained").add_subplot()


def series_color(i: int) -> Any:
    return colormaps["tab10"](i % 10)


def x_positions(values: Sequence[Any]) -> tuple[np.ndarray, list[str] | None]:
    """Numeric x values as they are; anything else at 0, 1, 2... with the values as tick labels."""
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        return np.asarray(values, dtype=float), None
    return np.arange(len(values), dtype=float), [str(v) for v in values]


def dodge(xs: np.ndarray, i: int, n: int, spread: float) -> np.ndarray:
    """Shift line ``i`` of ``n`` sideways by a little, so identical lines and their error bars stay visible."""
    return xs + (i - (n - 1) / 2) * spread / max(n, 1)


LINE_STYLES = ("-", "--", "-.", ":")


def plain_log_labels(axis: Any, *, minor: bool = True) -> None:
    """Label a log axis 0.1, 2, 10 rather than 10^-1, 2x10^0, 10^1 (1, 2, 3 and 5 times a power of ten, where
    matplotlib would put a label); ``minor=False`` labels powers of ten only, for axes that span decades."""
    if not minor:
        axis.set_minor_formatter(FuncFormatter(lambda v, pos: ""))
    for get, put in (
        (axis.get_major_formatter, axis.set_major_formatter),
        (axis.get_minor_formatter, axis.set_minor_formatter),
    ):
        default = get()
        put(FuncFormatter(lambda v, pos, d=default: f"{v:g}" if d(v, pos) and f"{v:e}"[0] in "1235" else ""))


def legend_if_labelled(ax: Axes, **kwargs: Any) -> None:
    """A legend, if anything on ``ax`` has a label (an empty one would only warn)."""
    if ax.get_legend_handles_labels()[0]:
        ax.legend(**kwargs)


def error_bars(mean: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """Asymmetric error bars from an interval; none where the interval is unknown (one replication)."""
    return np.nan_to_num(np.vstack([mean - low, high - mean]), nan=0.0)


_NICE = (1, 2, 3, 5)
"""Mantissas of the labelled ticks on a log axis: 1, 2, 3 and 5 times a power of ten."""


def _nice_below(v: float) -> float:
    """The largest 1, 2, 3 or 5 x 10^k at or below ``v`` (> 0)."""
    k = math.floor(math.log10(v))
    return max(m * 10.0**k for m in _NICE if m * 10.0**k <= v * (1 + 1e-9))


def _nice_above(v: float) -> float:
    """The smallest 1, 2, 3 or 5 x 10^k at or above ``v`` (> 0)."""
    k = math.floor(math.log10(v))
    return min(c for c in (*(m * 10.0**k for m in _NICE), 10.0 ** (k + 1)) if c >= v * (1 - 1e-9))


def log_ticks(low: float, high: float, most: int = 9) -> list[float]:
    """Labelled ticks for a log axis from ``low`` to ``high`` (> 0): 1, 2, 3, 5 x 10^k within them, ends included
    (so the lowest label is at or below every value); thinned to 1, 2, 5 and then powers of ten when too many.

    >>> log_ticks(1.3, 48)
    [1.0, 2.0, 3.0, 5.0, 10.0, 20.0, 30.0, 50.0]
    """
    lo, hi = _nice_below(low), _nice_above(high)
    if hi <= lo:
        hi = _nice_above(lo * 1.01)
    k0, k1 = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
    for mantissas in (_NICE, (1, 2, 5), (1,)):
        ticks = [float(f"{m}e{k}") for k in range(k0, k1 + 1) for m in mantissas]
        ticks = [t for t in ticks if lo * (1 - 1e-9) <= t <= hi * (1 + 1e-9)]
        if len(ticks) <= most:
            break
    return sorted({lo, *ticks, hi})


def log_axis(axis: Any, values: np.ndarray) -> None:
    """Limit a log axis to labelled ticks just outside the finite positive ``values`` (its data, error bars
    included), so the lowest label is never above the data; no minor labels."""
    values = values[np.isfinite(values) & (values > 0)]
    if not values.size:
        return
    ticks = log_ticks(float(values.min()), float(values.max()))
    (axis.axes.set_ylim if axis is axis.axes.yaxis else axis.axes.set_xlim)(ticks[0], ticks[-1])
    axis.set_ticks(ticks, [f"{t:g}" for t in ticks])
    axis.set_minor_formatter(NullFormatter())


def same_log_limits(axes: Sequence[Axes]) -> None:
    """One y range (and its labelled ticks) for log-scale panels side by side, so they compare at a glance."""
    lows, highs = zip(*(ax.get_ylim() for ax in axes), strict=True)
    ticks = log_ticks(min(lows), max(highs))
    for ax in axes:
        ax.set_ylim(ticks[0], ticks[-1])
        ax.set_yticks(ticks, [f"{t:g}" for t in ticks])
        ax.yaxis.set_minor_formatter(NullFormatter())


def add_note(ax: Axes, lines: Sequence[str], *, inside: bool = False) -> None:
    """Say what is not drawn, and why (a figure never hides a series silently): under the x axis label, where it
    covers no data (call it after the label is set), or ``inside`` the axes for a panel left empty."""
    if not lines:
        return
    if inside:
        ax.text(
            0.01,
            0.97,
            "\n".join(lines),
            transform=ax.transAxes,
            va="top",
            ha="left",
            fontsize="x-small",
            color="dimgray",
            bbox={"facecolor": "white", "edgecolor": "lightgray", "alpha": 0.85},
            zorder=5,
        )
        return
    ax.set_xlabel("\n".join(filter(None, [ax.get_xlabel(), *(f"[{line}]" for line in lines)])))


def wrapped_suptitle(fig: Figure, text: str) -> None:
    """The figure's title, each line wrapped to the figure's width (about 11 characters an inch at 12 points)."""
    width = max(int(fig.get_figwidth() * 11), 40)
    fig.suptitle("\n".join(wrap(line, width) for line in text.split("\n")))


def wrap(text: str, width: int = 90) -> str:
    """``text`` broken into lines of at most ``width`` characters, at spaces (a title that fits its figure)."""
    import textwrap

    return "\n".join(textwrap.wrap(text, width, break_long_words=False, break_on_hyphens=False)) or text
