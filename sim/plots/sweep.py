"""The figures of a sweep (``sim plot RESULTS_DIR``): latency and locality against one factor, a line per level of
another, a panel per combination of the rest; and at one design point, the endpoint shares, the node heatmap and
the latency ECDFs, a panel or line per level of the line factor."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from sim.experiment.metrics import record_services
from sim.experiment.results import summary_frame
from sim.experiment.tables import design_point_summary
from sim.plots.axes import (
    MS_PER_S,
    add_note,
    axes_or_new,
    dodge,
    error_bars,
    legend_if_labelled,
    log_axis,
    same_log_limits,
    series_color,
    wrap,
    wrapped_suptitle,
    x_positions,
)
from sim.plots.panels import (
    Records,
    by_client_node,
    endpoint_bars_of,
    endpoints_of,
    latency_ecdf,
    node_heatmap_of,
    page_latency_ecdf,
)

if TYPE_CHECKING:
    import pandas as pd


def _spread(table: pd.DataFrame, x: str) -> float:
    """How far apart the outermost lines are dodged: a fifth of the smallest step between x values."""
    xs = x_positions(list(dict.fromkeys(table[x])))[0]
    steps = np.diff(np.unique(xs))
    return float(steps.min()) / 5 if steps.size else 0.0


def _lines(table: pd.DataFrame, line: str | None) -> list[tuple[Any, pd.DataFrame]]:
    if line is None:
        return [(None, table)]
    return [(level, group) for level, group in table.groupby(line, sort=False)]


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
    xs, ticks = x_positions(list(levels))
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
    if x_positions(levels)[1] is None:
        levels = sorted(levels)
    notes: list[str] = []
    values: list[np.ndarray] = []
    for i, (level, g) in enumerate(lines):
        g = g.set_index(x).reindex(levels).reset_index() if len(levels) else g
        xs = dodge(x_positions(levels)[0], i, len(lines), spread)
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
                yerr=error_bars(mean, low, high),
                color=series_color(i),
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
    ax = axes_or_new(ax)
    notes, values = _tradeoff(table, x, line, ax, LATENCY_STYLES, MS_PER_S, x_label)
    ax.set_yscale("log")
    log_axis(ax.yaxis, values)
    ax.set_ylabel("latency (ms, log scale)")
    ax.set_title("Latency: mean (solid) and p99 (dashed), 95% CI")
    ax.grid(True, which="major", alpha=0.3)
    add_note(ax, notes)
    legend_if_labelled(ax, fontsize="small", ncols=2, loc="lower right")
    return ax


def tradeoff_locality(
    table: pd.DataFrame, x: str, line: str | None = None, ax: Axes | None = None, *, x_label: str | None = None
) -> Axes:
    """Fraction of requests served on another node (dash-dot) and in another zone (dotted) against factor ``x``,
    one colour per level of ``line``, with t intervals over replications. ``table`` as for ``tradeoff_latency``;
    what cannot be drawn is named in a note on the axes."""
    ax = axes_or_new(ax)
    notes, _ = _tradeoff(table, x, line, ax, LOCALITY_STYLES, 1.0, x_label)
    ax.set_ylim(-0.05, 1.05)
    ax.set_ylabel("fraction of completed requests")
    ax.set_title("Locality: served on another node (dash-dot) / zone (dotted)")
    ax.grid(True, alpha=0.3)
    add_note(ax, notes)
    legend_if_labelled(ax, fontsize="small", ncols=2, loc="center right")
    return ax


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
    default each other factor's last level) ``endpoints``, ``heatmap`` (one panel per line level),
    ``latency_ecdf`` and, with a call graph, ``page_latency_ecdf`` (one line per line level)."""
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
        table = design_point_summary(summary_frame(ok, names), names)  # once for both figures
        for what in ("latency", "locality"):
            figures[f"tradeoff_{what}"] = _tradeoff_figure(table, names, x, line, service, labels, title, what)

    experiment = str(info.get("name", "experiment"))
    figures.update(_point_figures(ok, names, levels, line, service, labels, title, at, experiment))
    return figures


def _tradeoff_figure(
    table: pd.DataFrame,
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
    below: a colour per level of ``line`` and a line style per statistic. ``table``: the sweep's
    ``design_point_summary``."""
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
        ax.set_title(wrap(_describe(facet, labels), 48) if facet else "", fontsize="medium")
    for ax in axes[len(combos) :]:
        ax.set_axis_off()
    for ax in axes[1:]:
        ax.set_ylabel("")
    if what == "latency":
        same_log_limits(axes[: len(combos)])
    handles = [
        Line2D([], [], color=series_color(i), marker="o", lw=2, label=str(level))
        for i, (level, _) in enumerate(_lines(table, line))
        if level is not None
    ]
    handles += [
        Line2D([], [], color="grey", ls=style, marker=marker, label=words) for style, marker, words in styles.values()
    ]
    fig.legend(handles=handles, loc="outside right center", title=wrap(str(labels.get(line, line)), 24))
    dodged = (
        "\n(lines offset sideways around each level to keep their bars apart)" if len(handles) > len(styles) + 1 else ""
    )
    fig.supxlabel(f"{labels.get(x, x)}{dodged}", fontsize="medium")
    heading = "latency: mean and p99" if what == "latency" else "served on another node or zone"
    wrapped_suptitle(fig, f"{title}: {heading}\nagainst {labels.get(x, x)}; means over replications, 95% CI bars")
    return fig


def _point_figures(
    ok: Records,
    names: list[str],
    levels: Mapping[str, list[Any]],
    line: str | None,
    service: str,
    labels: Mapping[Any, Any],
    title: str,
    at: Mapping[str, Any] | None,
    experiment: str,
) -> dict[str, Figure]:
    """``sweep_figures``' figures at one design point (``at``; by default each other factor's last level), one
    panel or line per level of ``line``: ``endpoints``, ``heatmap`` and ``latency_ecdf``; with a call graph,
    ``page_latency_ecdf`` (its entry Services' end-to-end latency, whichever Service is plotted)."""
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
    by_group = {label: [record_services(r) for r in recs] for label, recs in groups.items()}  # each record read once
    metrics = {label: [run[service] for run in group if service in run] for label, group in by_group.items()}
    runs = [m for group in metrics.values() for m in group]
    ncols = 2 if len(groups) > 2 else max(len(groups), 1)
    nrows = -(-len(groups) // ncols)

    def panels(width: float, height: float) -> tuple[Figure, list[Axes]]:
        fig = Figure(figsize=(max(width * ncols, 8.0), height * nrows + 0.6), layout="constrained")
        axes = list(fig.subplots(nrows, ncols, squeeze=False).ravel())
        for extra in axes[len(groups) :]:
            extra.set_axis_off()
        return fig, axes

    fig, grid = panels(6.0, 4.2)
    pods = endpoints_of(runs)
    for ax, (label, group) in zip(grid, metrics.items(), strict=False):
        endpoint_bars_of(group, service, ax, title=_describe({line: label}, labels) if line else label, endpoints=pods)
    wrapped_suptitle(fig, f"{title}: requests per endpoint\n{where}")
    figures["endpoints"] = fig

    fig, grid = panels(6.4, 3.4)
    pairs = [(c, s) for m in runs for c, row in by_client_node(m).items() for s in row]
    clients, servers = sorted({c for c, _ in pairs}), sorted({s for _, s in pairs})
    for ax, (label, group) in zip(grid, metrics.items(), strict=False):
        title_here = _describe({line: label}, labels) if line else label
        node_heatmap_of(group, service, ax, title=title_here, clients=clients, servers=servers)
    wrapped_suptitle(fig, f"{title}: client node x serving node\n{where}")
    figures["heatmap"] = fig

    fig = Figure(figsize=(8.0, 5.2), layout="constrained")
    latency_ecdf(groups, service, fig.add_subplot(), title=wrap(where, 72))
    per = labels.get(line, line) if line else "run"
    wrapped_suptitle(fig, f"{title}: latency ECDF per {per}")
    figures["latency_ecdf"] = fig
    if any(s.call_path for group in by_group.values() for run in group for s in run.values()):
        fig = Figure(figsize=(8.0, 5.2), layout="constrained")
        page_latency_ecdf(by_group, fig.add_subplot(), title=wrap(where, 72))
        wrapped_suptitle(fig, f"{experiment}: end-to-end latency of completed pages, ECDF per {per}")
        figures["page_latency_ecdf"] = fig
    return figures
