"""Every matplotlib figure. Functions draw on an Axes and return it: ``fn(data, ax=None) -> Axes``.

No pyplot: figures are plain ``matplotlib.figure.Figure`` objects, so nothing here touches global state (no
``plt.show()``, no rcParams, no current figure); files are rendered with the Agg canvas. In a notebook, pass an
``ax`` from your own ``plt.subplots()``, or display the returned ``ax.figure``.

``data`` is what a sweep leaves behind: run records (``sim.experiment.results``) for the per-run figures, and the
per-design-point table of ``sim.experiment.analysis.design_point_summary`` for the trade-off.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter

from sim.experiment.analysis import design_point_summary, histogram_ecdf, mean_ci
from sim.experiment.results import summary_frame

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


def _service_metrics(records: Records, service: str) -> list[Mapping[str, Any]]:
    """The per-Service metrics of every finished record that has ``service``."""
    return [
        r["metrics"]["services"][service]
        for r in records
        if r.get("status") == "ok" and service in r["metrics"]["services"]
    ]


def _spread(table: pd.DataFrame, x: str) -> float:
    """How far apart the outermost lines are dodged: a fifth of the smallest step between x values."""
    xs = _positions(list(dict.fromkeys(table[x])))[0]
    steps = np.diff(np.unique(xs))
    return float(steps.min()) / 5 if steps.size else 0.0


def _lines(table: pd.DataFrame, line: str | None) -> list[tuple[Any, pd.DataFrame]]:
    if line is None:
        return [(None, table)]
    return [(level, group) for level, group in table.groupby(line, sort=False)]


def _endpoints(runs: Sequence[Mapping[str, Any]]) -> list[str]:
    """Every endpoint some run expected or routed to, sorted."""
    return sorted({p for m in runs for p in (*m["routed_by_endpoint"], *m["expected_share"])})


def tradeoff_latency(
    table: pd.DataFrame, x: str, line: str | None = None, ax: Axes | None = None, *, x_label: str | None = None
) -> Axes:
    """Mean (solid) and p99 (dashed) latency in ms against factor ``x``, one colour per level of ``line``, with the
    t intervals over replications as error bars. ``table``: one Service's rows of ``design_point_summary``."""
    ax = _axes(ax)
    ticks: list[str] | None = None
    lines = _lines(table, line)
    spread = _spread(table, x)
    for i, (level, g) in enumerate(lines):
        g = g.sort_values(x) if _positions(list(g[x]))[1] is None else g
        xs, ticks = _positions(list(g[x]))
        xs = _dodge(xs, i, len(lines), spread)
        name = "" if level is None else f"{level} "
        for stat, style, marker in (("latency_mean_s", "-", "o"), ("latency_p99_s", "--", "s")):
            mean, low, high = (g[c].to_numpy(dtype=float) * _MS for c in (stat, f"{stat}_low", f"{stat}_high"))
            label = f"{name}{'mean' if stat == 'latency_mean_s' else 'p99'}"
            ax.errorbar(
                xs, mean, yerr=_yerr(mean, low, high), color=_color(i), ls=style, marker=marker, capsize=3, label=label
            )
    if ticks is not None:
        ax.set_xticks(range(len(ticks)), ticks)
    ax.set_yscale("log")
    _plain_log(ax.yaxis)
    ax.set_xlabel(x_label or x)
    ax.set_ylabel("latency (ms, log scale)")
    ax.set_title("Latency: mean (solid) and p99 (dashed), 95% CI")
    ax.grid(True, which="both", alpha=0.3)
    _legend(ax, fontsize="small", ncols=2)
    return ax


def tradeoff_locality(
    table: pd.DataFrame, x: str, line: str | None = None, ax: Axes | None = None, *, x_label: str | None = None
) -> Axes:
    """Fraction of requests served on another node (solid) and in another zone (dotted) against factor ``x``, one
    colour per level of ``line``, with t intervals over replications. ``table`` as for ``tradeoff_latency``."""
    ax = _axes(ax)
    ticks: list[str] | None = None
    lines = _lines(table, line)
    spread = _spread(table, x)
    for i, (level, g) in enumerate(lines):
        g = g.sort_values(x) if _positions(list(g[x]))[1] is None else g
        xs, ticks = _positions(list(g[x]))
        xs = _dodge(xs, i, len(lines), spread)
        name = "" if level is None else f"{level} "
        for stat, style, marker, what in (
            ("cross_node_fraction", "-", "o", "cross-node"),
            ("cross_zone_fraction", ":", "^", "cross-zone"),
        ):
            mean, low, high = (g[c].to_numpy(dtype=float) for c in (stat, f"{stat}_low", f"{stat}_high"))
            if np.all(np.isnan(mean)):
                continue
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
    if ticks is not None:
        ax.set_xticks(range(len(ticks)), ticks)
    ax.set_ylim(-0.05, 1.05)
    ax.set_xlabel(x_label or x)
    ax.set_ylabel("fraction of completed requests")
    ax.set_title("Locality: served on another node (solid) / zone (dotted)")
    ax.grid(True, alpha=0.3)
    _legend(ax, fontsize="small", ncols=2)
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
    routed = [m["routed_by_endpoint"] for m in runs]
    shares = np.array([[r.get(p, 0) / max(sum(r.values()), 1) for p in pods] for r in routed])
    shares = shares.reshape(len(runs), len(pods))
    expected = np.array([[m["expected_share"].get(p, 0.0) for p in pods] for m in runs]).reshape(len(runs), len(pods))
    cis = [mean_ci(shares[:, j]) for j in range(len(pods))]
    mean = np.array([c.mean for c in cis]) * 100
    low = np.array([c.low for c in cis]) * 100
    high = np.array([c.high for c in cis]) * 100
    xs = np.arange(len(pods))
    ax.bar(
        xs,
        mean,
        yerr=_yerr(mean, low, high),
        capsize=3,
        color=_color(0),
        alpha=0.8,
        ecolor="dimgray",
        label="observed (mean of runs, 95% CI)",
    )
    ax.scatter(
        xs,
        expected.mean(axis=0) * 100 if len(runs) else np.zeros(len(pods)),
        marker="_",
        s=min(900.0, 5000.0 / max(len(pods), 1)),
        linewidths=2.5,
        color="crimson",
        zorder=3,
        label="expected share",
    )
    ax.set_xticks(xs, pods, rotation=45, ha="right", fontsize="small")
    ax.set_xlabel("endpoint (pod)")
    ax.set_ylabel("share of routed requests (%)")
    ax.set_ylim(0, max(100.0, float(np.nanmax(high, initial=0.0))) * 1.05)
    ax.set_title(title or f"Requests per endpoint: {service} ({len(runs)} runs)")
    ax.grid(True, axis="y", alpha=0.3)
    _legend(ax, fontsize="small")
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
        for client, row in m["by_client_node"].items():
            for served, n in row.items():
                counts[client, served] = counts.get((client, served), 0) + n
    clients = list(clients) if clients is not None else sorted({c for c, _ in counts})
    served_nodes = list(servers) if servers is not None else sorted({s for _, s in counts})
    grid = np.array([[counts.get((c, s), 0) for s in served_nodes] for c in clients], dtype=float)
    grid = grid.reshape(len(clients), len(served_nodes))
    total = grid.sum()
    share = grid / total * 100 if total else grid
    image = ax.imshow(share, cmap="viridis", vmin=0, vmax=100, aspect="auto")  # one scale for every panel
    for (i, j), value in np.ndenumerate(share):
        if value > 0:
            color = "white" if value < 60 else "black"
            ax.text(j, i, f"{value:.1f}", ha="center", va="center", fontsize="small", color=color)
    ax.set_xticks(range(len(served_nodes)), served_nodes, rotation=45, ha="right", fontsize="small")
    ax.set_yticks(range(len(clients)), clients, fontsize="small")
    ax.set_xlabel("serving node")
    ax.set_ylabel("client node")
    ax.set_title(title or f"Client node x serving node: {service}")
    ax.figure.colorbar(image, ax=ax, label="% of completed requests")
    return ax


def latency_ecdf(
    groups: Mapping[str, Records], service: str, ax: Axes | None = None, *, title: str | None = None
) -> Axes:
    """One latency ECDF per group (e.g. per policy), pooling the records' latency histograms; ms, log scale."""
    ax = _axes(ax)
    for i, (label, records) in enumerate(groups.items()):
        hists = [m["latency_histogram"] for m in _service_metrics(records, service)]
        upper, cdf = histogram_ecdf(hists)
        if not upper.size:
            continue
        lower = upper[0] / 10 ** (1 / hists[0]["bins_per_decade"])
        style = _STYLES[i % len(_STYLES)]
        label = f"{label} ({len(hists)} runs)"
        ax.plot(np.r_[lower, upper] * _MS, np.r_[0.0, cdf], color=_color(i), ls=style, lw=1.8, label=label)
    ax.axhline(0.99, color="grey", ls=":", lw=1)
    ax.text(0.01, 0.985, "p99", transform=ax.get_yaxis_transform(), va="top", fontsize="small", color="grey")
    ax.set_xscale("log")
    _plain_log(ax.xaxis, minor=False)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("latency (ms, log scale)")
    ax.set_ylabel("fraction of requests at or below")
    ax.set_title(title or f"Latency ECDF: {service}")
    ax.grid(True, which="both", alpha=0.3)
    _legend(ax, fontsize="small", loc="lower right")
    return ax


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


def _describe(values: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in values.items())


def sweep_figures(
    info: Mapping[str, Any],
    records: Records,
    *,
    x: str | None = None,
    line: str | None = None,
    service: str | None = None,
    at: Mapping[str, Any] | None = None,
) -> dict[str, Figure]:
    """The figures of a sweep: ``tradeoff`` (latency and locality against ``x``, one line per level of ``line``,
    one column per combination of the other factors), and at one design point (``at``; by default each other
    factor's last level) ``endpoints``, ``heatmap`` (one panel per line level) and ``latency_ecdf``."""
    factors = list(info["factors"])
    names = [f["name"] for f in factors]
    levels = {f["name"]: list(f["levels"]) for f in factors}
    guess_x, guess_line = _guess_roles(factors)
    line = line or info.get("plot", {}).get("line") or guess_line
    x = x or info.get("plot", {}).get("x") or guess_x
    labels = dict(info.get("plot", {}).get("labels", {}))
    for role, name in (("x", x), ("line", line), *(("at", k) for k in at or {})):
        if name is not None and name not in names:
            raise ValueError(f"{role} {name!r} names no factor; the factors are {names}")
    if x is not None and x == line:
        raise ValueError(f"x and line are the same factor {x!r}")
    ok = [r for r in records if r.get("status") == "ok"]
    if not ok:
        raise ValueError("no finished runs to plot")
    services = list(dict.fromkeys(s for r in ok for s in r["metrics"]["services"]))
    service = service or services[0]
    if service not in services:
        raise ValueError(f"no Service {service!r} in the results; they have {services}")
    title = f"{info.get('name', 'experiment')}: Service {service}"
    figures: dict[str, Figure] = {}

    if x is not None:
        table = design_point_summary(summary_frame(ok, names), names)
        table = table[table["service"] == service]
        facets = [n for n in names if n not in (x, line)]
        combos = [(None, table)] if not facets else list(table.groupby(facets, sort=False))
        fig = Figure(figsize=(max(4.8 * len(combos) + 2.4, 8.0), 8.0), layout="constrained")
        axes = fig.subplots(2, len(combos), squeeze=False, sharex="col")
        for j, (values, sub) in enumerate(combos):
            top, bottom = axes[0][j], axes[1][j]
            tradeoff_latency(sub, x, line, top, x_label=labels.get(x))
            tradeoff_locality(sub, x, line, bottom, x_label=labels.get(x))
            for ax in (top, bottom):
                legend = ax.get_legend()
                if legend is not None:
                    legend.remove()  # one legend for the figure instead
            at_facet = ""
            if values is not None:
                at_facet = " at " + _describe(
                    dict(zip(facets, values if isinstance(values, tuple) else (values,), strict=True))
                )
            top.set_title(f"Latency{at_facet}")
            bottom.set_title(f"Locality{at_facet}")
        handles = [
            Line2D([], [], color=_color(i), marker="o", label=str(level))
            for i, (level, _) in enumerate(_lines(table, line))
            if level is not None
        ]
        handles += [
            Line2D([], [], color="grey", ls="-", label="mean latency /\nanother node"),
            Line2D([], [], color="grey", ls="--", label="p99 latency"),
            Line2D([], [], color="grey", ls=":", label="another zone"),
        ]
        fig.legend(handles=handles, loc="outside right upper", title=line, fontsize="small")
        fig.suptitle(f"{title}: latency and locality against {labels.get(x, x)}\nmeans over replications, 95% CI bars")
        figures["tradeoff"] = fig

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
    where = f"at {_describe(chosen)}" if chosen else "(every run)"
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
        endpoint_bars(recs, service, ax, title=f"{line}={label}" if line else label, endpoints=pods)
    fig.suptitle(f"{title}: requests per endpoint\n{where}")
    figures["endpoints"] = fig

    fig, grid = panels(6.4, 3.4)
    pairs = [(c, s) for m in runs for c, row in m["by_client_node"].items() for s in row]
    clients, servers = sorted({c for c, _ in pairs}), sorted({s for _, s in pairs})
    for ax, (label, recs) in zip(grid, groups.items(), strict=False):
        title_here = f"{line}={label}" if line else label
        node_heatmap(recs, service, ax, title=title_here, clients=clients, servers=servers)
    fig.suptitle(f"{title}: client node x serving node\n{where}")
    figures["heatmap"] = fig

    fig = Figure(figsize=(8.0, 5.2), layout="constrained")
    latency_ecdf(groups, service, fig.add_subplot(), title=f"Latency ECDF per {line or 'run'}\n{where}")
    fig.suptitle(title)
    figures["latency_ecdf"] = fig
    return figures


def save_figure(fig: Figure, stem: str | Path) -> list[Path]:
    """Write ``stem.png`` (150 dpi, Agg) and ``stem.svg``; return their paths."""
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(fig)
    png, svg = stem.with_suffix(".png"), stem.with_suffix(".svg")
    fig.savefig(png, dpi=150)
    engine = fig.get_layout_engine()
    fig.set_layout_engine("none")  # keep the layout the PNG computed: laying out text again costs as much
    try:
        fig.savefig(svg, metadata={"Date": None})
    finally:
        fig.set_layout_engine(engine)
    return [png, svg]
