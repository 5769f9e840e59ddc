"""The figures of one run (``sim plot RUN.json``, ``sim run --plot DIR``; a ``sim.experiment.rundoc`` document):
its Services' endpoint shares, node heatmaps and latency ECDFs, and per Service over time where requests landed,
their latency and their failures, with the timeline marked."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from sim.experiment.metrics import ServiceWindows, services_from_json
from sim.plots.axes import (
    LINE_STYLES,
    MS_PER_S,
    add_note,
    axes_or_new,
    legend_if_labelled,
    log_axis,
    series_color,
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


def landed_over_time(doc: Mapping[str, Any], service: str, ax: Axes | None = None) -> Axes:
    """Requests sent per window, stacked by the endpoint pod they were routed to, and those never routed."""
    ax = axes_or_new(ax)
    w, width = _windows(doc, service), float(doc["window_s"])
    left = _window_edges(w, width)
    bottom = _stacked_windows(ax, left, width, w.landed, first_color=0)
    unrouted = np.asarray(w.sent, dtype=float) - bottom
    _rest_of_windows(ax, left, width, unrouted, bottom, "lightgray", "//", "not routed (no endpoint)")
    _events(ax, doc, numbers=True)
    ax.set_ylabel(f"requests per {width:g} s")
    ax.set_title(f"{service}: where requests landed", fontsize="medium", pad=12)
    ax.grid(True, axis="y", alpha=0.3)
    legend_if_labelled(ax, fontsize="x-small", loc="lower left")
    return ax


def latency_over_time(doc: Mapping[str, Any], service: str, ax: Axes | None = None) -> Axes:
    """Latency percentiles (p50, p90, p99; ms, log scale) of the completed requests sent in each window."""
    ax = axes_or_new(ax)
    w = _windows(doc, service)
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


def failures_over_time(doc: Mapping[str, Any], service: str, ax: Axes | None = None) -> Axes:
    """Failed requests per window by reason (stacked; ``timeout``: the client's request timeout)."""
    ax = axes_or_new(ax)
    w, width = _windows(doc, service), float(doc["window_s"])
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


def run_figures(doc: Mapping[str, Any]) -> dict[str, Figure]:
    """The figures of one run: ``endpoints`` (shares per endpoint with the expected share and its 95% range),
    ``heatmap`` (client node x serving node), ``latency_ecdf`` (one line per Service) and ``over_time``
    (per Service: where requests landed, latency percentiles, failures by reason; the timeline marked); with a
    call graph, ``service_graph``, ``waterfall`` and ``page_latency_ecdf`` too."""
    summaries = services_from_json(doc)
    services = list(summaries)
    if not services:
        raise ValueError("the run has no Services with requests to plot")
    n = len(services)
    head = f"{doc['scenario']} (seed {doc['seed']}, dataplane {doc['dataplane']})"
    figures: dict[str, Figure] = {}

    fig = Figure(figsize=(max(5.2 * n, 6.4), 4.8), layout="constrained")
    for ax, name in zip(fig.subplots(1, n, squeeze=False)[0], services, strict=True):
        endpoint_bars_of([summaries[name]], name, ax, title=f"Service {name}")
    fig.suptitle(f"{head}: requests per endpoint (fresh picks)")
    figures["endpoints"] = fig

    fig = Figure(figsize=(max(5.4 * n, 6.4), 3.8), layout="constrained")
    for ax, name in zip(fig.subplots(1, n, squeeze=False)[0], services, strict=True):
        node_heatmap_of([summaries[name]], name, ax, title=f"Service {name}")
    fig.suptitle(f"{head}: client node x serving node (completed requests)")
    figures["heatmap"] = fig

    fig = Figure(figsize=(7.2, 4.6), layout="constrained")
    ax = fig.add_subplot()
    draw_ecdf(ax, {name: [histogram_of(summaries[name])] for name in services})
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
        figures.update(call_graph_figures(doc, head, summaries))
    return figures
