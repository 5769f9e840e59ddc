"""The figures of one run (``sim plot RUN.json``, ``sim run --plot DIR``; a ``sim.experiment.rundoc`` document):
its Services' endpoint shares, node heatmaps and latency ECDFs, and per Service over time where requests landed,
their latency and their failures, with the timeline marked."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from sim.experiment.metrics import ServiceSummary, ServiceWindows, services_from_json
from sim.plots.axes import (
    LINE_STYLES,
    MS_PER_S,
    add_note,
    axes_or_new,
    legend_if_labelled,
    log_axis,
    series_color,
    wrap,
)
from sim.plots.callgraph import call_graph_figures
from sim.plots.panels import draw_ecdf, endpoint_bars_of, histogram_of, node_heatmap_of


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


def _windows(doc: Mapping[str, Any], service: str, known: ServiceWindows | None = None) -> ServiceWindows:
    """The windows of ``service`` in a run document (``sim run --out``): ``known`` if the caller read them
    already (reading the document's every Service again per panel costs seconds at thousands of endpoints)."""
    windows = known if known is not None else services_from_json(doc)[service].windows
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
        ax.stairs(top, edges, baseline=bottom, fill=True, color=series_color(i + first_color), label=name, lw=0)
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


MAX_STACKED = 10
"""Where requests landed stacks at most this many series: above, the busiest pods and one series for the rest
(a legend of a hundred pods is read by no one, and costs seconds to draw)."""


def _busiest(series: Mapping[str, Any], most: int) -> Mapping[str, Any]:
    """``series`` (name -> per-window counts) as it is up to ``most``; else its ``most - 1`` largest totals and
    the sum of the others as ``N other pods``."""
    if len(series) <= most:
        return series
    ranked = sorted(series, key=lambda name: (-sum(series[name]), name))
    rest = ranked[most - 1 :]
    other = np.sum([np.asarray(series[name], dtype=float) for name in rest], axis=0)
    return {**{name: series[name] for name in ranked[: most - 1]}, f"~ {len(rest)} other pods": other}


def landed_over_time(
    doc: Mapping[str, Any], service: str, ax: Axes | None = None, *, windows: ServiceWindows | None = None
) -> Axes:
    """Requests sent per window, stacked by the endpoint pod they were routed to, and those never routed."""
    ax = axes_or_new(ax)
    w, width = _windows(doc, service, windows), float(doc["window_s"])
    left = _window_edges(w, width)
    bottom = _stacked_windows(ax, left, width, _busiest(w.landed, MAX_STACKED), first_color=0)
    unrouted = np.asarray(w.sent, dtype=float) - bottom
    _rest_of_windows(ax, left, width, unrouted, bottom, "lightgray", "//", "not routed (no endpoint)")
    _events(ax, doc, numbers=True)
    ax.set_ylabel(f"requests per {width:g} s")
    ax.set_title(f"{service}: where requests landed", fontsize="medium", pad=12)
    ax.grid(True, axis="y", alpha=0.3)
    legend_if_labelled(ax, fontsize="x-small", loc="lower left")
    return ax


def latency_over_time(
    doc: Mapping[str, Any], service: str, ax: Axes | None = None, *, windows: ServiceWindows | None = None
) -> Axes:
    """Latency percentiles (p50, p90, p99; ms, log scale) of the completed requests sent in each window."""
    ax = axes_or_new(ax)
    w = _windows(doc, service, windows)
    centres = _window_edges(w, float(doc["window_s"])) + float(doc["window_s"]) / 2
    values = []
    for i, (name, series) in enumerate(sorted(w.latency_s.items(), key=lambda kv: int(kv[0][1:]))):
        ys = np.array([np.nan if v is None else v * MS_PER_S for v in series], dtype=float)
        values.append(ys)
        ax.plot(
            centres, ys, color=series_color(i), ls=LINE_STYLES[i % len(LINE_STYLES)], marker=".", lw=1.3, label=name
        )
    ax.set_yscale("log")
    log_axis(ax.yaxis, np.concatenate(values) if values else np.zeros(0))
    gaps = [c for c, n in zip(centres, w.completed, strict=True) if n == 0]
    if len(gaps) == len(centres):
        add_note(ax, ["not drawn: no completed requests"])
    elif gaps:
        add_note(ax, [f"gaps: no completed requests sent in {len(gaps)} of {len(centres)} windows"])
    _events(ax, doc, numbers=False)
    ax.set_ylabel("latency (ms, log scale)")
    ax.set_title(f"{service}: latency percentiles of completed requests", fontsize="medium")
    ax.grid(True, alpha=0.3)
    legend_if_labelled(ax, fontsize="x-small", loc="upper right", ncols=3)
    return ax


def failures_over_time(
    doc: Mapping[str, Any], service: str, ax: Axes | None = None, *, windows: ServiceWindows | None = None
) -> Axes:
    """Failed requests per window by reason (stacked; ``timeout``: the client's request timeout)."""
    ax = axes_or_new(ax)
    w, width = _windows(doc, service, windows), float(doc["window_s"])
    left = _window_edges(w, width)
    bottom = _stacked_windows(ax, left, width, w.failed, first_color=3)
    flight = np.asarray(w.sent, dtype=float) - np.asarray(w.completed, dtype=float) - bottom
    _rest_of_windows(ax, left, width, flight, bottom, "white", "..", "still in flight when the run ended")
    if not w.failed:
        add_note(ax, ["no failed requests"], inside=True)
        if not flight.any():
            ax.set_ylim(0, 1)
    _events(ax, doc, numbers=False)
    ax.set_ylabel(f"requests per {width:g} s")
    ax.set_xlabel("simulated time (s), requests by send time")
    ax.set_title(f"{service}: failures by reason", fontsize="medium")
    ax.grid(True, axis="y", alpha=0.3)
    legend_if_labelled(ax, fontsize="x-small", loc="upper left")
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


MAX_SERVICE_PANELS = 6
"""A run's per-Service figures draw at most this many Services, those that were sent the most requests (a
Service's panels cost a second each at thousands of nodes, and past this many no one reads them); the figure
names the ones left out."""
PANELS_PER_ROW = 3
"""Per-Service panels side by side; more wrap to the next row."""


def drawn_services(summaries: Mapping[str, ServiceSummary]) -> tuple[list[str], list[str]]:
    """The Services a run's figures draw (at most ``MAX_SERVICE_PANELS``: a call graph's entry Services first,
    then those sent the most requests) and those they leave out, each in the document's order."""
    # stable: ties in the document's order
    ranked = sorted(summaries, key=lambda name: (summaries[name].call_path is None, -summaries[name].sent))
    drawn = set(ranked[:MAX_SERVICE_PANELS])
    return [n for n in summaries if n in drawn], [n for n in summaries if n not in drawn]


def _left_out(names: Sequence[str]) -> str:
    """The words naming the Services not drawn; empty if none."""
    if not names:
        return ""
    listed = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
    return f"not drawn: {len(names)} Services with fewer requests ({listed}); the tables of `sim report` have each"


def _suptitle(fig: Figure, title: str, words: str) -> None:
    """``title`` as it is, and under it ``words`` wrapped to the figure's width (about 10 characters an inch)."""
    fig.suptitle(f"{title}\n{wrap(words, int(fig.get_figwidth() * 10))}" if words else title)


def _panels(
    n: int, width: float, height: float, *, least_width: float = 6.4, rows_per_service: int = 1
) -> tuple[Figure, list[list[Axes]]]:
    """A figure of ``n`` Services' panels (inches each; the figure at least ``least_width`` wide),
    ``PANELS_PER_ROW`` a row, each Service ``rows_per_service`` Axes high; its Axes as a list per Service
    (unused places switched off)."""
    ncols = min(n, PANELS_PER_ROW)
    nrows = -(-n // ncols)
    fig = Figure(figsize=(max(width * ncols, least_width), height * nrows), layout="constrained")
    grid = fig.subplots(rows_per_service * nrows, ncols, squeeze=False, sharex=rows_per_service > 1)
    cells = [
        [grid[(k // ncols) * rows_per_service + r][k % ncols] for r in range(rows_per_service)]
        for k in range(nrows * ncols)
    ]
    for unused in cells[n:]:
        for ax in unused:
            ax.set_axis_off()
    return fig, cells[:n]


def run_figures(doc: Mapping[str, Any]) -> dict[str, Figure]:
    """The figures of one run: ``endpoints`` (shares per endpoint with the expected share and its 95% range),
    ``heatmap`` (client node x serving node), ``latency_ecdf`` (one line per Service) and ``over_time``
    (per Service: where requests landed, latency percentiles, failures by reason; the timeline marked), each for
    at most ``MAX_SERVICE_PANELS`` Services; with a call graph, ``service_graph``, ``waterfall`` and
    ``page_latency_ecdf`` too."""
    summaries = services_from_json(doc)
    if not summaries:
        raise ValueError("the run has no Services with requests to plot")
    services, left_out = drawn_services(summaries)
    head = f"{doc['scenario']} (seed {doc['seed']}, dataplane {doc['dataplane']})"
    words = _left_out(left_out)
    figures: dict[str, Figure] = {}

    fig, cells = _panels(len(services), 5.2, 4.8)
    for (ax,), name in zip(cells, services, strict=True):
        endpoint_bars_of([summaries[name]], name, ax, title=f"Service {name}")
    _suptitle(fig, f"{head}: requests per endpoint (fresh picks)", words)
    figures["endpoints"] = fig

    fig, cells = _panels(len(services), 5.4, 3.8)
    for (ax,), name in zip(cells, services, strict=True):
        node_heatmap_of([summaries[name]], name, ax, title=f"Service {name}")
    _suptitle(fig, f"{head}: client node x serving node (completed requests)", words)
    figures["heatmap"] = fig

    fig = Figure(figsize=(7.2, 4.6 + 0.4 * bool(words)), layout="constrained")
    ax = fig.add_subplot()
    draw_ecdf(ax, {name: [histogram_of(summaries[name])] for name in services})
    ecdf_note = f"\n{wrap(words, 66)}" if words else ""
    ax.set_title(f"{head}\nlatency ECDF of completed requests, per Service{ecdf_note}")
    figures["latency_ecdf"] = fig

    fig, cells = _panels(len(services), 5.6, 8.4, least_width=7.0, rows_per_service=3)
    for (landed, latency, failures), name in zip(cells, services, strict=True):
        windows = summaries[name].windows
        landed_over_time(doc, name, landed, windows=windows)
        latency_over_time(doc, name, latency, windows=windows)
        failures_over_time(doc, name, failures, windows=windows)
    _suptitle(fig, f"{head}: over time, in {doc['window_s']:g} s windows", words)
    fig.supxlabel(_events_caption(doc), fontsize="small", wrap=True)
    figures["over_time"] = fig
    if doc.get("call_graph"):
        figures.update(call_graph_figures(doc, head, summaries))
    return figures
