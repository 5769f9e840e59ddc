"""Every matplotlib figure. Functions draw on an Axes and return it: ``fn(data, ax=None) -> Axes``.

No pyplot: figures are plain ``matplotlib.figure.Figure`` objects, so nothing here touches global state (no
``plt.show()``, no rcParams but the SVG's id salt for the length of one save, no current figure); files are
rendered with the Agg canvas. In a notebook, pass an
``ax`` from your own ``plt.subplots()``, or display the returned ``ax.figure``.

``data`` is what a sweep leaves behind: run records (``sim.experiment.results``) for the per-run figures, and the
per-design-point table of ``sim.experiment.tables.design_point_summary`` for the trade-off.
"""

from __future__ import annotations

import contextlib
import io
import math
import warnings
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from matplotlib import colormaps, rc_context
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.text import Text
from matplotlib.ticker import FuncFormatter, NullFormatter

from sim.experiment.analysis import histogram_ecdf
from sim.experiment.metrics import LatencyHistogram, ServiceSummary, ServiceWindows, record_services, services_from_json
from sim.experiment.results import summary_frame
from sim.experiment.rundoc import share_interval
from sim.experiment.tables import design_point_summary
from sim.stats import mean_ci

if TYPE_CHECKING:
    import pandas as pd

Records = Sequence[Mapping[str, Any]]
_MS = 1e3


def _axes(ax: Axes | None, size: tuple[float, float] = (6.4, 4.2)) -> Axes:
    """``ax``, or the only Axes of a new Figure (no pyplot)."""
    return ax if ax is not None else Figure(figsize=size, layout="constrained").add_subplot()


def _color(i: int) -> Any:
    return colormaps["tab10"](i % 10)


def _positions(values: Sequence[Any]) -> tuple[np.ndarray, list[str] | None]:
    """Numeric x values as they are; anything else at 0, 1, 2... with the values as tick labels."""
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        return np.asarray(values, dtype=float), None
    return np.arange(len(values), dtype=float), [str(v) for v in values]


def _dodge(xs: np.ndarray, i: int, n: int, spread: float) -> np.ndarray:
    """Shift line ``i`` of ``n`` sideways by a little, so identical lines and their error bars stay visible."""
    return xs + (i - (n - 1) / 2) * spread / max(n, 1)


_STYLES = ("-", "--", "-.", ":")


def _plain_log(axis: Any, *, minor: bool = True) -> None:
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


def _legend(ax: Axes, **kwargs: Any) -> None:
    """A legend, if anything on ``ax`` has a label (an empty one would only warn)."""
    if ax.get_legend_handles_labels()[0]:
        ax.legend(**kwargs)


def _yerr(mean: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """Asymmetric error bars from an interval; none where the interval is unknown (one replication)."""
    return np.nan_to_num(np.vstack([mean - low, high - mean]), nan=0.0)


def _service_metrics(records: Records, service: str) -> list[ServiceSummary]:
    """The per-Service metrics of every finished record that has ``service``."""
    return [services[service] for services in map(record_services, records) if service in services]


def _by_client_node(m: ServiceSummary) -> dict[str, dict[str, int]]:
    """A sweep record's or run document's completed requests per client node and serving node."""
    if m.by_client_node is None:
        raise ValueError(f"Service {m.name}: no by_client_node (not a sweep record's or `sim run --out` metrics)")
    return m.by_client_node


def _histogram(m: ServiceSummary) -> LatencyHistogram:
    """A sweep record's or run document's latency histogram."""
    if m.latency_histogram is None:
        raise ValueError(f"Service {m.name}: no latency_histogram (not a sweep record's or `sim run --out` metrics)")
    return m.latency_histogram


def _spread(table: pd.DataFrame, x: str) -> float:
    """How far apart the outermost lines are dodged: a fifth of the smallest step between x values."""
    xs = _positions(list(dict.fromkeys(table[x])))[0]
    steps = np.diff(np.unique(xs))
    return float(steps.min()) / 5 if steps.size else 0.0


def _lines(table: pd.DataFrame, line: str | None) -> list[tuple[Any, pd.DataFrame]]:
    if line is None:
        return [(None, table)]
    return [(level, group) for level, group in table.groupby(line, sort=False)]


def _endpoints(runs: Sequence[ServiceSummary]) -> list[str]:
    """Every endpoint some run expected or routed to, sorted."""
    return sorted({p for m in runs for p in (*m.routed_by_endpoint, *m.expected_share)})


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


def _log_axis(axis: Any, values: np.ndarray) -> None:
    """Limit a log axis to labelled ticks just outside the finite positive ``values`` (its data, error bars
    included), so the lowest label is never above the data; no minor labels."""
    values = values[np.isfinite(values) & (values > 0)]
    if not values.size:
        return
    ticks = log_ticks(float(values.min()), float(values.max()))
    (axis.axes.set_ylim if axis is axis.axes.yaxis else axis.axes.set_xlim)(ticks[0], ticks[-1])
    axis.set_ticks(ticks, [f"{t:g}" for t in ticks])
    axis.set_minor_formatter(NullFormatter())


def _same_log_limits(axes: Sequence[Axes]) -> None:
    """One y range (and its labelled ticks) for log-scale panels side by side, so they compare at a glance."""
    lows, highs = zip(*(ax.get_ylim() for ax in axes), strict=True)
    ticks = log_ticks(min(lows), max(highs))
    for ax in axes:
        ax.set_ylim(ticks[0], ticks[-1])
        ax.set_yticks(ticks, [f"{t:g}" for t in ticks])
        ax.yaxis.set_minor_formatter(NullFormatter())


def _note(ax: Axes, lines: Sequence[str], *, inside: bool = False) -> None:
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


def _missing(name: str, xs_text: Sequence[str], mean: np.ndarray, what: str) -> str | None:
    """A note for a series with NaN means: all of it, or the x levels where it has none."""
    gone = np.isnan(mean)
    if not gone.any():
        return None
    if gone.all():
        return f"not drawn: {name}: {what}"
    return f"{name}: {what} at {', '.join(t for t, g in zip(xs_text, gone, strict=True) if g)}"


def _x_axis(ax: Axes, levels: Sequence[Any], label: str, dodged: bool) -> None:
    """Ticks exactly at the factor's levels (numeric) or at 0, 1, 2... (other); say so when lines are dodged."""
    xs, ticks = _positions(list(levels))
    ax.set_xticks(xs, ticks if ticks is not None else [f"{v:g}" for v in xs])
    ax.set_xlabel(f"{label}\n(lines offset sideways around each level to keep their bars apart)" if dodged else label)


LATENCY_STYLES = {"latency_mean_s": ("-", "o", "mean"), "latency_p99_s": ("--", "s", "p99")}
LOCALITY_STYLES = {
    "cross_node_fraction": ("-.", "o", "another node"),
    "cross_zone_fraction": (":", "^", "another zone"),
}
"""Line style, marker and words per statistic: no style means two things in one figure."""


def _tradeoff(
    table: pd.DataFrame,
    x: str,
    line: str | None,
    ax: Axes,
    styles: Mapping[str, tuple[str, str, str]],
    scale: float,
    label: str | None,
) -> tuple[list[str], np.ndarray]:
    """Draw each (line level, statistic) against ``x``; return the notes on what is missing and every value."""
    lines = _lines(table, line)
    spread = _spread(table, x)
    levels = list(dict.fromkeys(table[x]))
    if _positions(levels)[1] is None:
        levels = sorted(levels)
    notes: list[str] = []
    values: list[np.ndarray] = []
    for i, (level, g) in enumerate(lines):
        g = g.set_index(x).reindex(levels).reset_index() if len(levels) else g
        xs = _dodge(_positions(levels)[0], i, len(lines), spread)
        name = "" if level is None else f"{level} "
        for stat, (style, marker, what) in styles.items():
            mean, low, high = (g[c].to_numpy(dtype=float) * scale for c in (stat, f"{stat}_low", f"{stat}_high"))
            note = _missing(
                f"{name}{what}",
                [f"{v:g}" if isinstance(v, float) else str(v) for v in levels],
                mean,
                "no completed requests"
                if stat.startswith("latency") or what == "another node"
                else "no completed requests or no zone labels",
            )
            if note:
                notes.append(note)
            if np.all(np.isnan(mean)):
                continue
            values += [mean, low, high]
            ax.errorbar(
                xs,
                mean,
                yerr=_yerr(mean, low, high),
                color=_color(i),
                ls=style,
                marker=marker,
                capsize=3,
                label=f"{name}{what}",
            )
    _x_axis(ax, levels, x if label is None else label, dodged=len(lines) > 1 and spread > 0 and label != "")
    return notes, np.concatenate(values) if values else np.zeros(0)


def tradeoff_latency(
    table: pd.DataFrame, x: str, line: str | None = None, ax: Axes | None = None, *, x_label: str | None = None
) -> Axes:
    """Mean (solid) and p99 (dashed) latency in ms against factor ``x``, one colour per level of ``line``, with the
    t intervals over replications as error bars. ``table``: one Service's rows of ``design_point_summary``.
    A line with no completed requests (every request failed) is named in a note on the axes."""
    ax = _axes(ax)
    notes, values = _tradeoff(table, x, line, ax, LATENCY_STYLES, _MS, x_label)
    ax.set_yscale("log")
    _log_axis(ax.yaxis, values)
    ax.set_ylabel("latency (ms, log scale)")
    ax.set_title("Latency: mean (solid) and p99 (dashed), 95% CI")
    ax.grid(True, which="major", alpha=0.3)
    _note(ax, notes)
    _legend(ax, fontsize="small", ncols=2, loc="lower right")
    return ax


def tradeoff_locality(
    table: pd.DataFrame, x: str, line: str | None = None, ax: Axes | None = None, *, x_label: str | None = None
) -> Axes:
    """Fraction of requests served on another node (dash-dot) and in another zone (dotted) against factor ``x``,
    one colour per level of ``line``, with t intervals over replications. ``table`` as for ``tradeoff_latency``;
    what cannot be drawn is named in a note on the axes."""
    ax = _axes(ax)
    notes, _ = _tradeoff(table, x, line, ax, LOCALITY_STYLES, 1.0, x_label)
    ax.set_ylim(-0.05, 1.05)
    ax.set_ylabel("fraction of completed requests")
    ax.set_title("Locality: served on another node (dash-dot) / zone (dotted)")
    ax.grid(True, alpha=0.3)
    _note(ax, notes)
    _legend(ax, fontsize="small", ncols=2, loc="center right")
    return ax


def endpoint_bars(
    records: Records,
    service: str,
    ax: Axes | None = None,
    *,
    title: str | None = None,
    endpoints: Sequence[str] | None = None,
) -> Axes:
    """Share of routed requests per endpoint (%), mean over the records (replications) with t intervals, and
    the routing layer's expected share marked on each bar. ``endpoints``: the bars to draw (default: every
    endpoint that was expected or got a request), e.g. the same set for panels side by side."""
    ax = _axes(ax)
    runs = _service_metrics(records, service)
    pods = list(endpoints) if endpoints is not None else _endpoints(runs)
    routed = [m.routed_by_endpoint for m in runs]
    shares = np.array([[r.get(p, 0) / max(sum(r.values()), 1) for p in pods] for r in routed])
    shares = shares.reshape(len(runs), len(pods))
    expected = np.array([[m.expected_share.get(p, 0.0) for p in pods] for m in runs]).reshape(len(runs), len(pods))
    cis = [mean_ci(shares[:, j]) for j in range(len(pods))]
    mean = np.array([c.mean for c in cis]) * 100
    low = np.array([c.low for c in cis]) * 100
    high = np.array([c.high for c in cis]) * 100
    xs = np.arange(len(pods))
    one = len(runs) == 1  # one run has a share, not a mean with an interval
    ax.bar(
        xs,
        mean,
        yerr=None if one else _yerr(mean, low, high),
        capsize=3,
        color=_color(0),
        alpha=0.8,
        ecolor="dimgray",
        label="observed share (this run)" if one else "observed (mean of runs, 95% CI)",
    )
    expected_mean = expected.mean(axis=0) * 100 if len(runs) else np.zeros(len(pods))
    ax.scatter(
        xs,
        expected_mean,
        marker="_",
        s=min(900.0, 5000.0 / max(len(pods), 1)),
        linewidths=2.5,
        color="crimson",
        zorder=3,
        label="expected share",
    )
    if one:  # where its share should fall if the picker draws the expected shares
        n = sum(runs[0].routed_by_endpoint.values())
        band = np.array([share_interval(n, p / 100) for p in expected_mean]).reshape(len(pods), 2) * 100
        ax.errorbar(
            xs + 0.3,
            expected_mean,
            yerr=_yerr(expected_mean, band[:, 0], band[:, 1]),
            fmt="none",
            ecolor="crimson",
            capsize=4,
            zorder=3,
            label=f"95% range of the share in {n} picks at the expected share",
        )
    ax.set_xticks(xs, pods, rotation=45, ha="right", fontsize="small")
    ax.set_xlabel("endpoint (pod)")
    ax.set_ylabel("share of routed requests (%)")
    ax.set_ylim(0, max(100.0, float(np.nanmax(high, initial=0.0))) * 1.3)  # room for the legend above the bars
    ax.set_yticks(range(0, 101, 20))
    ax.set_title(title or f"Requests per endpoint: {service} ({len(runs)} {'run' if len(runs) == 1 else 'runs'})")
    ax.grid(True, axis="y", alpha=0.3)
    _legend(ax, fontsize="small", loc="upper center", ncols=1 if one else 2, markerscale=0.4)
    return ax


def node_heatmap(
    records: Records,
    service: str,
    ax: Axes | None = None,
    *,
    title: str | None = None,
    clients: Sequence[str] | None = None,
    servers: Sequence[str] | None = None,
) -> Axes:
    """Completed requests by client node (rows) and serving node (columns), as a share (%) of all of them, summed
    over the records (replications). ``clients``, ``servers``: the rows and columns to draw (default: the nodes
    that appear), e.g. the same ones for panels side by side."""
    ax = _axes(ax)
    runs = _service_metrics(records, service)
    counts: dict[tuple[str, str], int] = {}
    for m in runs:
        for client, row in _by_client_node(m).items():
            for served, n in row.items():
                counts[client, served] = counts.get((client, served), 0) + n
    clients = list(clients) if clients is not None else sorted({c for c, _ in counts})
    served_nodes = list(servers) if servers is not None else sorted({s for _, s in counts})
    grid = np.array([[counts.get((c, s), 0) for s in served_nodes] for c in clients], dtype=float)
    grid = grid.reshape(len(clients), len(served_nodes))
    total = grid.sum()
    share = grid / total * 100 if total else grid
    image = ax.imshow(share, cmap="viridis", vmin=0, vmax=100, aspect="auto")  # one scale for every panel
    if share.size <= ANNOTATED_CELLS:  # a number per cell where one can read it; beyond, the colour says it
        for (i, j), value in np.ndenumerate(share):
            if value > 0:
                color = "white" if value < 60 else "black"
                ax.text(j, i, f"{value:.1f}", ha="center", va="center", fontsize="small", color=color)
    if len(served_nodes) <= LABELLED_TICKS:
        ax.set_xticks(range(len(served_nodes)), served_nodes, rotation=45, ha="right", fontsize="small")
    if len(clients) <= LABELLED_TICKS:
        ax.set_yticks(range(len(clients)), clients, fontsize="small")
    ax.set_xlabel("serving node")
    ax.set_ylabel("client node")
    ax.set_title(title or f"Client node x serving node: {service}")
    ax.figure.colorbar(image, ax=ax, label="% of completed requests")
    return ax


def latency_ecdf(
    groups: Mapping[str, Records], service: str, ax: Axes | None = None, *, title: str | None = None
) -> Axes:
    """One latency ECDF per group (e.g. per policy), pooling the records' latency histograms; ms, log scale.
    A group with no completed request is named in a note on the axes."""
    ax = _axes(ax)
    series = {}
    for label, records in groups.items():
        hists = [_histogram(m) for m in _service_metrics(records, service)]
        series[f"{label} ({len(hists)} {'run' if len(hists) == 1 else 'runs'})"] = hists
    _ecdf(ax, series)
    ax.set_title(title or f"Latency ECDF: {service}")
    return ax


def _ecdf(ax: Axes, series: Mapping[str, Sequence[LatencyHistogram]]) -> None:
    """Draw one ECDF per label from its latency histograms (ms, log x), with a p99 line and notes."""
    notes = []
    for i, (label, hists) in enumerate(series.items()):
        upper, cdf = histogram_ecdf(hists)
        if not upper.size:
            notes.append(f"not drawn: {label.split(' (')[0]}: no completed requests")
            continue
        lower = upper[0] / 10 ** (1 / hists[0].bins_per_decade)
        style = _STYLES[i % len(_STYLES)]
        ax.plot(np.r_[lower, upper] * _MS, np.r_[0.0, cdf], color=_color(i), ls=style, lw=1.8, label=label)
    ax.axhline(0.99, color="grey", ls=":", lw=1)
    ax.text(0.01, 0.985, "p99", transform=ax.get_yaxis_transform(), va="top", fontsize="small", color="grey")
    ax.set_xscale("log")
    _plain_log(ax.xaxis, minor=False)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("latency (ms, log scale)")
    ax.set_ylabel("fraction of requests at or below")
    ax.grid(True, which="both", alpha=0.3)
    _note(ax, notes)
    _legend(ax, fontsize="small", loc="lower right")


# --- the figures of `sim plot RESULTS_DIR` -------------------------------------------------------------------------


def _guess_roles(factors: Sequence[Mapping[str, Any]]) -> tuple[str | None, str | None]:
    """A policy-like factor for the lines, and the first other numeric factor for the x axis."""
    names = [f["name"] for f in factors]
    words = ("policy", "trafficdistribution")
    line = next(
        (f["name"] for f in factors if any(w in " ".join([f["name"], *f["paths"]]).lower() for w in words)),
        names[0] if names else None,
    )
    numeric = [
        f["name"]
        for f in factors
        if f["name"] != line and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in f["levels"])
    ]
    others = [n for n in names if n != line]
    return (numeric or others or [None])[0], line


def plot_roles(info: Mapping[str, Any], x: str | None = None, line: str | None = None) -> tuple[str | None, str | None]:
    """A sweep's x and line factors: ``x`` and ``line`` as given, else its spec's ``[plot] x`` and ``line``, else
    guessed (``_guess_roles``); the line never the x factor (a one-factor spec with ``[plot] x`` has no line)."""
    factors = list(info["factors"])
    guess_x, guess_line = _guess_roles(factors)
    plot = info.get("plot", {})
    x = x or plot.get("x") or guess_x
    names = [f["name"] for f in factors]
    line = line or plot.get("line") or next((n for n in (guess_line, *names) if n is not None and n != x), None)
    return x, line


def _describe(values: Mapping[str, Any], labels: Mapping[str, str] | None = None) -> str:
    """``factor=level, ...``, with the spec's ``[plot] labels`` for the factors that have one (``label: level``).

    >>> _describe({"load_rps": 360, "skew": 0.5}, {"load_rps": "offered load (requests/s)"})
    'offered load (requests/s): 360, skew=0.5'
    """
    labels = labels or {}

    def level(v: Any) -> str:
        return f"{v:g}" if isinstance(v, float) else str(v)

    return ", ".join(f"{labels[k]}: {level(v)}" if k in labels else f"{k}={level(v)}" for k, v in values.items())


def sweep_figures(
    info: Mapping[str, Any],
    records: Records,
    *,
    x: str | None = None,
    line: str | None = None,
    service: str | None = None,
    at: Mapping[str, Any] | None = None,
) -> dict[str, Figure]:
    """The figures of a sweep: ``tradeoff_latency`` and ``tradeoff_locality`` (each against ``x``, one line per
    level of ``line``, one panel per combination of the other factors), and at one design point (``at``; by
    default each other factor's last level) ``endpoints``, ``heatmap`` (one panel per line level) and
    ``latency_ecdf``."""
    factors = list(info["factors"])
    names = [f["name"] for f in factors]
    levels = {f["name"]: list(f["levels"]) for f in factors}
    x, line = plot_roles(info, x, line)
    labels = dict(info.get("plot", {}).get("labels", {}))
    for role, name in (("x", x), ("line", line), *(("at", k) for k in at or {})):
        if name is not None and name not in names:
            raise ValueError(f"{role} {name!r} names no factor; the factors are {names}")
    if x is not None and x == line:
        raise ValueError(f"x and line are the same factor {x!r}")
    ok = [r for r in records if r.get("status") == "ok"]
    if not ok:
        raise ValueError("no finished runs to plot")
    services = list(dict.fromkeys(s for r in ok for s in record_services(r)))
    service = service or services[0]
    if service not in services:
        raise ValueError(f"no Service {service!r} in the results; they have {services}")
    title = f"{info.get('name', 'experiment')}: Service {service}"
    figures: dict[str, Figure] = {}

    if x is not None:
        for what in ("latency", "locality"):
            figures[f"tradeoff_{what}"] = _tradeoff_figure(ok, names, x, line, service, labels, title, what)

    figures.update(_point_figures(ok, names, levels, line, service, labels, title, at))
    return figures


def _tradeoff_figure(
    ok: Records,
    names: list[str],
    x: str,
    line: str | None,
    service: str,
    labels: Mapping[Any, Any],
    title: str,
    what: str,
) -> Figure:
    """``sweep_figures``' ``tradeoff_latency`` or ``tradeoff_locality`` (``what``): that statistic against ``x``,
    one panel per combination of the other factors (at most 3 a row, so that it reads on a slide), one legend
    below: a colour per level of ``line`` and a line style per statistic."""
    table = design_point_summary(summary_frame(ok, names), names)
    table = table[table["service"] == service]
    facets = [n for n in names if n not in (x, line)]
    combos = [(None, table)] if not facets else list(table.groupby(facets, sort=False))
    ncols = min(len(combos), 3)
    nrows = -(-len(combos) // ncols)
    fig = Figure(figsize=(max(4.6 * ncols, 8.0), 4.0 * nrows + 1.6), layout="constrained")
    axes = list(fig.subplots(nrows, ncols, squeeze=False, sharey=True).ravel())
    draw, styles = (tradeoff_latency, LATENCY_STYLES) if what == "latency" else (tradeoff_locality, LOCALITY_STYLES)
    for ax, (values, sub) in zip(axes, combos, strict=False):
        draw(sub, x, line, ax, x_label="")  # the panels share one x label, below them
        legend = ax.get_legend()
        if legend is not None:
            legend.remove()  # one legend for the figure instead
        facet = dict(zip(facets, values if isinstance(values, tuple) else (values,), strict=True)) if facets else {}
        ax.set_title(_wrap(_describe(facet, labels), 48) if facet else "", fontsize="medium")
    for ax in axes[len(combos) :]:
        ax.set_axis_off()
    for ax in axes[1:]:
        ax.set_ylabel("")
    if what == "latency":
        _same_log_limits(axes[: len(combos)])
    handles = [
        Line2D([], [], color=_color(i), marker="o", lw=2, label=str(level))
        for i, (level, _) in enumerate(_lines(table, line))
        if level is not None
    ]
    handles += [
        Line2D([], [], color="grey", ls=style, marker=marker, label=words) for style, marker, words in styles.values()
    ]
    fig.legend(handles=handles, loc="outside right center", title=_wrap(str(labels.get(line, line)), 24))
    dodged = (
        "\n(lines offset sideways around each level to keep their bars apart)" if len(handles) > len(styles) + 1 else ""
    )
    fig.supxlabel(f"{labels.get(x, x)}{dodged}", fontsize="medium")
    heading = "latency: mean and p99" if what == "latency" else "served on another node or zone"
    _suptitle(fig, f"{title}: {heading}\nagainst {labels.get(x, x)}; means over replications, 95% CI bars")
    return fig


def _suptitle(fig: Figure, text: str) -> None:
    """The figure's title, each line wrapped to the figure's width (about 11 characters an inch at 12 points)."""
    width = max(int(fig.get_figwidth() * 11), 40)
    fig.suptitle("\n".join(_wrap(line, width) for line in text.split("\n")))


def _wrap(text: str, width: int = 90) -> str:
    """``text`` broken into lines of at most ``width`` characters, at spaces (a title that fits its figure)."""
    import textwrap

    return "\n".join(textwrap.wrap(text, width, break_long_words=False, break_on_hyphens=False)) or text


def _point_figures(
    ok: Records,
    names: list[str],
    levels: Mapping[str, list[Any]],
    line: str | None,
    service: str,
    labels: Mapping[Any, Any],
    title: str,
    at: Mapping[str, Any] | None,
) -> dict[str, Figure]:
    """``sweep_figures``' figures at one design point (``at``; by default each other factor's last level), one
    panel per level of ``line``: ``endpoints``, ``heatmap`` and ``latency_ecdf``."""
    figures: dict[str, Figure] = {}
    chosen = {n: (at or {}).get(n, levels[n][-1]) for n in names if n != line}
    for n, v in chosen.items():
        if v not in levels[n]:
            raise ValueError(f"{n} has no level {v!r}; its levels are {levels[n]}")
    here = [r for r in ok if all(r["factors"].get(n) == v for n, v in chosen.items())]
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for level in levels[line] if line else [None]:
        picked = [r for r in here if line is None or r["factors"].get(line) == level]
        if picked:
            groups[str(level) if line else "all runs"] = picked
    where = f"at {_describe(chosen, labels)}" if chosen else "(every run)"
    runs = [m for recs in groups.values() for m in _service_metrics(recs, service)]
    ncols = 2 if len(groups) > 2 else max(len(groups), 1)
    nrows = -(-len(groups) // ncols)

    def panels(width: float, height: float) -> tuple[Figure, list[Axes]]:
        fig = Figure(figsize=(max(width * ncols, 8.0), height * nrows + 0.6), layout="constrained")
        axes = list(fig.subplots(nrows, ncols, squeeze=False).ravel())
        for extra in axes[len(groups) :]:
            extra.set_axis_off()
        return fig, axes

    fig, grid = panels(6.0, 4.2)
    pods = _endpoints(runs)
    for ax, (label, recs) in zip(grid, groups.items(), strict=False):
        endpoint_bars(recs, service, ax, title=_describe({line: label}, labels) if line else label, endpoints=pods)
    _suptitle(fig, f"{title}: requests per endpoint\n{where}")
    figures["endpoints"] = fig

    fig, grid = panels(6.4, 3.4)
    pairs = [(c, s) for m in runs for c, row in _by_client_node(m).items() for s in row]
    clients, servers = sorted({c for c, _ in pairs}), sorted({s for _, s in pairs})
    for ax, (label, recs) in zip(grid, groups.items(), strict=False):
        title_here = _describe({line: label}, labels) if line else label
        node_heatmap(recs, service, ax, title=title_here, clients=clients, servers=servers)
    _suptitle(fig, f"{title}: client node x serving node\n{where}")
    figures["heatmap"] = fig

    fig = Figure(figsize=(8.0, 5.2), layout="constrained")
    latency_ecdf(groups, service, fig.add_subplot(), title=_wrap(where, 72))
    _suptitle(fig, f"{title}: latency ECDF per {labels.get(line, line) if line else 'run'}")
    figures["latency_ecdf"] = fig
    return figures


# --- the figures of one run: `sim plot RUN.json`, `sim run --plot DIR` (a `sim.experiment.rundoc` document) -----


def _events(ax: Axes, doc: Mapping[str, Any], *, numbers: bool) -> None:
    """Mark the timeline on a time axis: a dashed line per event (numbered), a dotted one where a terminated
    pod is gone, and the warm-up shaded."""
    at: dict[float, list[str]] = {}
    for k, event in enumerate(doc["timeline"], start=1):
        at.setdefault(event["at_s"], []).append(str(k))
        ax.axvline(event["at_s"], color="black", ls="--", lw=1, alpha=0.7, zorder=4)
        if "gone_s" in event:
            ax.axvline(event["gone_s"], color="black", ls=":", lw=1.2, alpha=0.7, zorder=4)
    for t, ks in at.items():
        if numbers:
            ax.text(
                t,
                1.0,
                ",".join(ks),
                transform=ax.get_xaxis_transform(),
                ha="center",
                va="bottom",
                fontsize="x-small",
                fontweight="bold",
            )
    warmup = doc["cluster"].get("warmup_s") or 0.0
    if warmup > 0:
        ax.axvspan(0, warmup, color="grey", alpha=0.12, lw=0)


def _windows(doc: Mapping[str, Any], service: str) -> ServiceWindows:
    """The windows of ``service`` in a run document (``sim run --out``)."""
    windows = services_from_json(doc)[service].windows
    if windows is None:
        raise ValueError(f"Service {service}: no windows (not a `sim run --out` document)")
    return windows


def _window_edges(w: ServiceWindows, width_s: float) -> np.ndarray:
    """Left edges (s) of windows ``width_s`` wide."""
    return np.arange(len(w.sent)) * width_s


def _stacked_windows(
    ax: Axes, left: np.ndarray, width: float, series: Mapping[str, Any], *, first_color: int
) -> np.ndarray:
    """Per-window counts of each series (sorted by name) as stacked bars; returns the stack's height."""
    bottom = np.zeros(left.size)
    edges = _edges(left, width)
    for i, (name, counts) in enumerate(sorted(series.items())):
        top = bottom + np.asarray(counts, dtype=float)
        # one step patch per series, not a bar per window: linear in windows x series with a small constant
        ax.stairs(top, edges, baseline=bottom, fill=True, color=_color(i + first_color), label=name, lw=0)
        bottom = top
    return bottom


def _edges(left: np.ndarray, width: float) -> np.ndarray:
    """The windows' edges (s): each left edge, then the last right edge."""
    return np.append(left, left[-1] + width) if left.size else np.zeros(1)


def _rest_of_windows(
    ax: Axes, left: np.ndarray, width: float, rest: np.ndarray, bottom: np.ndarray, color: str, hatch: str, label: str
) -> None:
    """The requests of each window that no series counts (unrouted, in flight), hatched on top of the stack."""
    if rest.any():
        ax.stairs(
            bottom + rest,
            _edges(left, width),
            baseline=bottom,
            fill=True,
            facecolor=color,
            hatch=hatch,
            edgecolor="gray",
            lw=0,
            label=label,
        )


def landed_over_time(doc: Mapping[str, Any], service: str, ax: Axes | None = None) -> Axes:
    """Requests sent per window, stacked by the endpoint pod they were routed to, and those never routed."""
    ax = _axes(ax)
    w, width = _windows(doc, service), float(doc["window_s"])
    left = _window_edges(w, width)
    bottom = _stacked_windows(ax, left, width, w.landed, first_color=0)
    unrouted = np.asarray(w.sent, dtype=float) - bottom
    _rest_of_windows(ax, left, width, unrouted, bottom, "lightgray", "//", "not routed (no endpoint)")
    _events(ax, doc, numbers=True)
    ax.set_ylabel(f"requests per {width:g} s")
    ax.set_title(f"{service}: where requests landed", fontsize="medium", pad=12)
    ax.grid(True, axis="y", alpha=0.3)
    _legend(ax, fontsize="x-small", loc="lower left")
    return ax


def latency_over_time(doc: Mapping[str, Any], service: str, ax: Axes | None = None) -> Axes:
    """Latency percentiles (p50, p90, p99; ms, log scale) of the completed requests sent in each window."""
    ax = _axes(ax)
    w = _windows(doc, service)
    centres = _window_edges(w, float(doc["window_s"])) + float(doc["window_s"]) / 2
    values = []
    for i, (name, series) in enumerate(sorted(w.latency_s.items(), key=lambda kv: int(kv[0][1:]))):
        ys = np.array([np.nan if v is None else v * _MS for v in series], dtype=float)
        values.append(ys)
        ax.plot(centres, ys, color=_color(i), ls=_STYLES[i % len(_STYLES)], marker=".", lw=1.3, label=name)
    ax.set_yscale("log")
    _log_axis(ax.yaxis, np.concatenate(values) if values else np.zeros(0))
    gaps = [c for c, n in zip(centres, w.completed, strict=True) if n == 0]
    if len(gaps) == len(centres):
        _note(ax, ["not drawn: no completed requests"])
    elif gaps:
        _note(ax, [f"gaps: no completed requests sent in {len(gaps)} of {len(centres)} windows"])
    _events(ax, doc, numbers=False)
    ax.set_ylabel("latency (ms, log scale)")
    ax.set_title(f"{service}: latency percentiles of completed requests", fontsize="medium")
    ax.grid(True, alpha=0.3)
    _legend(ax, fontsize="x-small", loc="upper right", ncols=3)
    return ax


def failures_over_time(doc: Mapping[str, Any], service: str, ax: Axes | None = None) -> Axes:
    """Failed requests per window by reason (stacked; ``timeout``: the client's request timeout)."""
    ax = _axes(ax)
    w, width = _windows(doc, service), float(doc["window_s"])
    left = _window_edges(w, width)
    bottom = _stacked_windows(ax, left, width, w.failed, first_color=3)
    flight = np.asarray(w.sent, dtype=float) - np.asarray(w.completed, dtype=float) - bottom
    _rest_of_windows(ax, left, width, flight, bottom, "white", "..", "still in flight when the run ended")
    if not w.failed:
        _note(ax, ["no failed requests"], inside=True)
        if not flight.any():
            ax.set_ylim(0, 1)
    _events(ax, doc, numbers=False)
    ax.set_ylabel(f"requests per {width:g} s")
    ax.set_xlabel("simulated time (s), requests by send time")
    ax.set_title(f"{service}: failures by reason", fontsize="medium")
    ax.grid(True, axis="y", alpha=0.3)
    _legend(ax, fontsize="x-small", loc="upper left")
    return ax


def _events_caption(doc: Mapping[str, Any]) -> str:
    """The numbered timeline under an over-time figure."""
    parts = [f"{k}: {e['at_s']:g} s {e['text']}" for k, e in enumerate(doc["timeline"], start=1)]
    words = "timeline (dashed): " + "; ".join(parts) if parts else "no timeline events"
    if any("gone_s" in e for e in doc["timeline"]):
        words += "; dotted: the grace period ends, the pod is gone"
    lag = doc["cluster"].get("sync_lag_s")
    if parts and lag is not None:
        words += f"; each node's proxy applies a change {lag:g} s later"
    if doc["cluster"].get("warmup_s"):
        words += "; shaded: warm-up (not in the statistics)"
    return words


def run_figures(doc: Mapping[str, Any]) -> dict[str, Figure]:
    """The figures of one run: ``endpoints`` (shares per endpoint with the expected share and its 95% range),
    ``heatmap`` (client node x serving node), ``latency_ecdf`` (one line per Service) and ``over_time``
    (per Service: where requests landed, latency percentiles, failures by reason; the timeline marked); with a
    call graph, ``service_graph``, ``waterfall`` and ``page_latency_ecdf`` too."""
    summaries = services_from_json(doc)
    services = list(summaries)
    if not services:
        raise ValueError("the run has no Services with requests to plot")
    records = [{"status": "ok", "metrics": doc}]
    n = len(services)
    head = f"{doc['scenario']} (seed {doc['seed']}, dataplane {doc['dataplane']})"
    figures: dict[str, Figure] = {}

    fig = Figure(figsize=(max(5.2 * n, 6.4), 4.8), layout="constrained")
    for ax, name in zip(fig.subplots(1, n, squeeze=False)[0], services, strict=True):
        endpoint_bars(records, name, ax, title=f"Service {name}")
    fig.suptitle(f"{head}: requests per endpoint (fresh picks)")
    figures["endpoints"] = fig

    fig = Figure(figsize=(max(5.4 * n, 6.4), 3.8), layout="constrained")
    for ax, name in zip(fig.subplots(1, n, squeeze=False)[0], services, strict=True):
        node_heatmap(records, name, ax, title=f"Service {name}")
    fig.suptitle(f"{head}: client node x serving node (completed requests)")
    figures["heatmap"] = fig

    fig = Figure(figsize=(7.2, 4.6), layout="constrained")
    ax = fig.add_subplot()
    _ecdf(ax, {name: [_histogram(summaries[name])] for name in services})
    ax.set_title(f"{head}\nlatency ECDF of completed requests, per Service")
    figures["latency_ecdf"] = fig

    fig = Figure(figsize=(max(5.6 * n, 7.0), 8.4), layout="constrained")
    grid = fig.subplots(3, n, squeeze=False, sharex=True)
    for j, name in enumerate(services):
        landed_over_time(doc, name, grid[0][j])
        latency_over_time(doc, name, grid[1][j])
        failures_over_time(doc, name, grid[2][j])
    fig.suptitle(f"{head}: over time, in {doc['window_s']:g} s windows")
    fig.supxlabel(_events_caption(doc), fontsize="small", wrap=True)
    figures["over_time"] = fig
    if doc.get("call_graph"):
        figures.update(_call_graph_figures(doc, head, summaries))
    return figures


# --- a call graph: its Services, one page's spans, its pages' latency -------------------------------------------


def _depths(edges: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    """Each vertex's column in the service graph: its longest path from the clients (the graph has no cycle)."""
    depth = {e["caller"]: 0 for e in edges if e["caller"] not in {x["callee"] for x in edges}}
    for _ in edges:  # relax: at most one pass per edge settles a DAG
        for e in edges:
            if e["caller"] in depth:
                depth[e["callee"]] = max(depth.get(e["callee"], 0), depth[e["caller"]] + 1)
    return depth


def _columns(edges: Sequence[Mapping[str, Any]]) -> dict[str, tuple[float, float]]:
    """Where each vertex of the service graph goes: columns by depth, each column ordered by the mean row of its
    callers (fewer crossings), centred on 0."""
    depth = _depths(edges)
    pos: dict[str, tuple[float, float]] = {}
    for d in range(max(depth.values(), default=0) + 1):
        names = [n for n in sorted(depth) if depth[n] == d]
        callers = {n: [pos[e["caller"]][1] for e in edges if e["callee"] == n and e["caller"] in pos] for n in names}
        names.sort(key=lambda n: -float(np.mean(callers[n])) if callers[n] else 0.0)
        pos.update({n: (float(d), (len(names) - 1) / 2 - i) for i, n in enumerate(names)})
    return pos


def service_graph(doc: Mapping[str, Any], ax: Axes | None = None) -> Axes:
    """A run's call graph (``sim run --out``'s ``call_graph``): Services in columns by depth from the clients,
    each edge labelled along it (a caller's edges at staggered distances) with its calls/s, the completed calls'
    mean latency and the share answered on another node and zone than the caller's."""
    edges = doc["call_graph"]["edges"]
    ax = _axes(ax, (12.0, 7.0))
    pos = _columns(edges)
    high = max(abs(y) for _, y in pos.values()) + 0.6
    ax.set_xlim(-0.5, max(x for x, _ in pos.values()) + 0.5)
    ax.set_ylim(-high, high)
    out: dict[str, list[str]] = {}
    for e in edges:
        out.setdefault(e["caller"], []).append(e["callee"])
    for e in edges:
        (xa, ya), (xb, yb) = pos[e["caller"]], pos[e["callee"]]
        siblings = sorted(out[e["caller"]], key=lambda n: pos[n][1])
        at = 0.5 if len(siblings) < 2 else 0.4 + 0.2 * siblings.index(e["callee"]) / (len(siblings) - 1)
        ax.annotate(
            "", (xb, yb), (xa, ya), arrowprops={"arrowstyle": "-|>", "color": "grey", "shrinkA": 30, "shrinkB": 30}
        )
        (pa, qa), (pb, qb) = ax.transData.transform([(xa, ya), (xb, yb)])
        label = (
            f"{e['calls_per_s']:.3g}/s, {_latency_words(e['latency_mean_s'])}, off node "
            f"{_share(e['cross_node_fraction'])}, zone {_share(e['cross_zone_fraction'])}"
        )
        ax.text(
            xa + at * (xb - xa),
            ya + at * (yb - ya),
            label,
            fontsize=7.5,
            ha="center",
            va="center",
            rotation=math.degrees(math.atan2(qb - qa, pb - pa)),
            rotation_mode="anchor",
            color="dimgray",
            bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.75, "pad": 0.3},
        )
    for name, (x, y) in pos.items():
        ax.text(
            x,
            y,
            name,
            ha="center",
            va="center",
            fontsize=9.5,
            zorder=3,
            bbox={"facecolor": "lavender", "edgecolor": "slateblue", "boxstyle": "round", "pad": 0.4},
        )
    ax.set_title(
        "Service graph; edges: calls/s, mean latency of completed calls, share answered off the caller's node / zone"
    )
    ax.set_xticks([])
    ax.set_yticks([])
    ax.spines[:].set_visible(False)
    return ax


def _share(x: float | None) -> str:
    return "-" if x is None or x != x else f"{x:.0%}"


def _legs(span: Mapping[str, Any], calls: Sequence[Mapping[str, Any]]) -> list[tuple[float, float, str, str]]:
    """A span's legs (ms from the page's send): out, queue, own work, the wait on its calls, back; the ones that
    happened."""
    t = {k: span[k] for k in ("t_sent", "t_arrived", "t_started", "t_finished", "t_returned")}
    first = min((c["t_sent"] for c in calls), default=None)
    last = max((c["t_returned"] for c in calls if c["t_returned"] is not None), default=None)
    own_end = t["t_finished"] if first is None or t["t_finished"] is None else min(t["t_finished"], first)
    end = t["t_finished"] if last is None or t["t_finished"] is None else max(t["t_finished"], last)
    legs = [
        (t["t_sent"], t["t_arrived"], "darkgrey", "network"),
        (t["t_arrived"], t["t_started"], "tab:orange", "queue"),
        (t["t_started"], own_end, "tab:blue", "own work"),
        (first, last, "lightsteelblue", "waiting on its calls"),
        (end, t["t_returned"], "darkgrey", "network"),
    ]
    return [
        (a * _MS, b * _MS, color, label) for a, b, color, label in legs if a is not None and b is not None and b > a
    ]


def waterfall(doc: Mapping[str, Any], ax: Axes | None = None) -> Axes:
    """One sampled page's spans (``call_graph.sample``), like a tracing UI: a row per span in trace order,
    indented by depth, its legs from send to return (ms from the page's send)."""
    sample = doc["call_graph"]["sample"]
    spans = sample["spans"]
    ax = _axes(ax, (11.0, max(3.0, 0.28 * len(spans) + 1.4)))
    seen: set[str] = set()
    for i, sp in enumerate(spans):
        calls = [c for c in spans if c["parent"] == sp["row"]]
        for a, b, color, label in _legs(sp, calls):
            ax.barh(i, b - a, left=a, color=color, height=0.6, label=None if label in seen else label)
            seen.add(label)
    labels = [f"{'  ' * sp['depth']}{sp['service']} ({sp['node'] or 'no node'})" for sp in spans]
    ax.set_yticks(range(len(spans)))
    ax.set_yticklabels(labels, fontsize=7, fontfamily="monospace", ha="left")
    ax.tick_params(axis="y", pad=max(map(len, labels)) * 0.62 * 7 + 8)
    ax.invert_yaxis()
    ax.set_xlabel("ms from the page's send")
    cut = f"; {sample['cut']} more spans not shown" if sample["cut"] else ""
    ax.set_title(f"One page of {sample['service']} (the median latency): {len(spans)} spans{cut}")
    ax.grid(True, axis="x", alpha=0.3)
    ax.legend(fontsize="small", loc="upper center", bbox_to_anchor=(0.5, -0.12), ncols=4)
    return ax


def _call_graph_figures(
    doc: Mapping[str, Any], head: str, summaries: Mapping[str, ServiceSummary]
) -> dict[str, Figure]:
    """``service_graph``, ``waterfall`` (where a page completed) and ``page_latency_ecdf`` (per entry Service)."""
    figures: dict[str, Figure] = {}
    fig = Figure(figsize=(14.0, 9.0), layout="constrained")
    service_graph(doc, fig.add_subplot())
    fig.suptitle(head)
    figures["service_graph"] = fig
    if doc["call_graph"]["sample"] is not None:
        fig = Figure(
            figsize=(11.0, max(3.2, 0.28 * len(doc["call_graph"]["sample"]["spans"]) + 1.6)), layout="constrained"
        )
        waterfall(doc, fig.add_subplot())
        fig.suptitle(head)
        figures["waterfall"] = fig
    entries = {n: [_histogram(s)] for n, s in summaries.items() if s.call_path is not None}
    if entries:
        fig = Figure(figsize=(7.2, 4.6), layout="constrained")
        ax = fig.add_subplot()
        _ecdf(ax, entries)
        ax.set_title(f"{head}\nend-to-end latency ECDF of completed pages, per entry Service")
        figures["page_latency_ecdf"] = fig
    return figures


# --- the cluster as a graph ---------------------------------------------------------------------------------


LABELLED_VERTICES = 150
"""Above this many vertices the cluster figure has no text per vertex or link (one would hide the next) and a
layout linear in the vertices."""
ANNOTATED_CELLS = 400
"""A heatmap writes its share in each cell up to this many cells (20 x 20)."""
LABELLED_TICKS = 60
"""A heatmap labels an axis's ticks up to this many nodes."""
_KIND_COLORS = {"node": "tab:blue", "bridge": "tab:orange", "switch": "tab:green", "router": "tab:red"}


def _latency_words(seconds: float) -> str:
    return f"{seconds * 1e6:.0f} us" if seconds < 1e-3 else f"{seconds * 1e3:.2g} ms"


def _cluster_layout(graph: Any, kinds: Mapping[str, str]) -> dict[str, Any]:
    """Where each vertex goes: Kamada-Kawai up to LABELLED_VERTICES (quadratic in memory and worse in time), else
    the network elements on an inner circle and the nodes on an outer one (linear)."""
    import networkx as nx

    if graph.number_of_nodes() > LABELLED_VERTICES:
        inner, outer = [n for n, k in kinds.items() if k != "node"], [n for n, k in kinds.items() if k == "node"]
        return dict(nx.shell_layout(graph, nlist=[s for s in (inner, outer) if s]))
    if graph.number_of_nodes() > 2:
        return dict(nx.kamada_kawai_layout(graph))
    return dict(nx.spring_layout(graph, seed=3))


def cluster_graph(cluster: Mapping[str, Any], ax: Axes | None = None, *, max_pods: int = 4) -> Axes:
    """The cluster of a ``describe_cluster`` table: Kubernetes nodes (with their pods listed under them) and
    network elements as vertices, links as edges labelled with their mean one-way latency."""
    import networkx as nx  # the layout only; the drawing is plain matplotlib

    ax = _axes(ax, (8.0, 6.0))
    graph = nx.Graph()
    kinds = {n["name"]: "node" for n in cluster["nodes"]}
    kinds.update({e["name"]: e["kind"] for e in cluster["elements"]})
    graph.add_nodes_from(kinds)
    graph.add_edges_from((link["a"], link["b"], {"mean_s": link["mean_s"]}) for link in cluster["links"])
    big = graph.number_of_nodes() > LABELLED_VERTICES
    pos = _cluster_layout(graph, kinds)
    ax.add_collection(
        LineCollection([(pos[a], pos[b]) for a, b in graph.edges()], colors="grey", linewidths=1.6, zorder=1)
    )
    for a, b, data in graph.edges(data=True) if not big else ():
        (xa, ya), (xb, yb) = pos[a], pos[b]
        ax.text(
            (xa + xb) / 2,
            (ya + yb) / 2,
            _latency_words(data["mean_s"]),
            fontsize=7,
            ha="center",
            va="center",
            color="dimgray",
            bbox={"facecolor": "white", "edgecolor": "none", "pad": 0.5},
        )
    pods_on: dict[str, list[str]] = {}
    for pod in cluster["pods"]:
        if pod["present"]:
            pods_on.setdefault(pod["node"], []).append(pod["name"])
    zones = {n["name"]: n["zone"] for n in cluster["nodes"]}
    for kind in sorted(set(kinds.values())):
        xy = np.array([pos[n] for n, k in kinds.items() if k == kind]).reshape(-1, 2)
        size = (420 if kind == "node" else 240) * (0.1 if big else 1.0)
        ax.scatter(xy[:, 0], xy[:, 1], s=size, color=_KIND_COLORS.get(kind, "tab:gray"), zorder=2, edgecolors="white")
    for name, (x, y) in pos.items() if not big else ():
        pods = pods_on.get(name, [])
        listed = [*pods[:max_pods], *([f"+{len(pods) - max_pods} more"] if len(pods) > max_pods else [])]
        zone = f" [{zones[name]}]" if zones.get(name) else ""
        dx, dy, ha, va = _away(pos, graph, name)
        ax.text(
            x + 0.07 * dx,
            y + 0.07 * dy,
            "\n".join([f"{name}{zone}", *listed]),
            ha=ha,
            va=va,
            fontsize=7,
            zorder=3,
            bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.85, "pad": 1.0},
        )
    ax.legend(
        handles=[
            Line2D(
                [],
                [],
                marker="o",
                ls="",
                markersize=9,
                color=_KIND_COLORS.get(k, "tab:gray"),
                label="node (its pods listed with it)" if k == "node" else f"network element: {k}",
            )
            for k in sorted(set(kinds.values()))
        ],
        loc="upper center",
        bbox_to_anchor=(0.5, 0.0),  # below the drawing, where it covers no label
        ncols=3,
        fontsize="small",
        title=f"edge labels: mean one-way link latency; same-node pod to pod {_latency_words(cluster['same_node_s'])}",
        title_fontsize="small",
    )
    ax.set_title(f"Cluster {cluster['topology']}: {len(cluster['nodes'])} nodes, {cluster['pods_present']} pods")
    if big:
        ax.set_xlabel(f"no labels above {LABELLED_VERTICES} vertices")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.margins(x=0.35, y=0.3)  # room for the labels beside the outer vertices
    ax.spines[:].set_visible(False)  # a drawing, not a chart: no frame for a label to run into
    return ax


def _away(pos: Mapping[Any, Any], graph: Any, name: str) -> tuple[float, float, str, str]:
    """The unit direction from the mean of a vertex's neighbours to the vertex (down where it has none, or they
    surround it), and the text alignment that puts its label on that side: off the edges that meet there."""
    x, y = pos[name]
    around = [pos[n] for n in graph.neighbors(name)]
    dx, dy = (
        (x - float(np.mean([p[0] for p in around])), y - float(np.mean([p[1] for p in around]))) if around else (0, 0)
    )
    norm = math.hypot(dx, dy)
    dx, dy = (dx / norm, dy / norm) if norm > 1e-9 else (0.0, -1.0)
    ha = "left" if dx > 0.4 else "right" if dx < -0.4 else "center"
    va = "bottom" if dy > 0.4 else "top" if dy < -0.4 else "center"
    return dx, dy, ha, va


SVG_HASH_SALT = "k8s-service-sim"
"""The salt of the ids matplotlib gives an SVG's clip paths and glyphs (``svg.hashsalt``; unset, each file draws
random ones), so that the same figure always gives the same bytes."""


@contextlib.contextmanager
def plain_text(fig: Figure) -> Iterator[None]:
    """Draw ``fig`` with every text as plain text: names from input files (a Service called ``$\\undefined{x}$``)
    never reach matplotlib's mathtext parser, neither in the texts made already nor in the tick labels made while
    drawing; a glyph the font lacks is drawn as a box without a warning."""
    for text in fig.findobj(Text):
        text.set_parse_math(False)
    with rc_context({"text.parse_math": False}), warnings.catch_warnings():
        # a name in a script the font lacks (CJK, emoji) draws as boxes; not a warning per glyph on stderr
        warnings.filterwarnings("ignore", message=r"Glyph \d+ .* missing from font")
        yield


def save_svg(fig: Figure, target: Any) -> None:
    """Write ``fig`` as SVG to a path or a text stream, without a date and with ids from a fixed salt: equal
    figures give equal files. (The salt is set for this one call, in matplotlib's rc_context.)"""
    from matplotlib import rc_context

    FigureCanvasAgg(fig)
    with rc_context({"svg.hashsalt": SVG_HASH_SALT}), plain_text(fig):
        fig.savefig(target, format="svg", metadata={"Date": None})


def figure_files(fig: Figure) -> dict[str, bytes]:
    """``fig`` as the bytes of its files, by suffix: ``.png`` (150 dpi, Agg) and ``.svg`` (the command writes them
    through ``sim.io.output``)."""
    FigureCanvasAgg(fig)
    png, svg = io.BytesIO(), io.StringIO()
    with plain_text(fig):
        fig.savefig(png, format="png", dpi=150)
    engine = fig.get_layout_engine()
    fig.set_layout_engine("none")  # keep the layout the PNG computed: laying out text again costs as much
    try:
        save_svg(fig, svg)
    finally:
        fig.set_layout_engine(engine)
    return {".png": png.getvalue(), ".svg": svg.getvalue().encode()}
