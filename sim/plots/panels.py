"""The Axes that a sweep's and a run's figures both draw: requests per endpoint against the expected share, client
node x serving node, latency ECDFs. Each takes the per-Service metrics of one or more runs (``ServiceSummary``);
the ``records`` forms read them from a sweep's run records."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.axes import Axes

from sim.experiment import presentation as show
from sim.experiment.analysis import histogram_ecdf
from sim.experiment.metrics import LatencyHistogram, ServiceSummary, record_services
from sim.experiment.rundoc import share_interval
from sim.plots.axes import (
    LINE_STYLES,
    MS_PER_S,
    add_note,
    axes_or_new,
    error_bars,
    legend_if_labelled,
    plain_log_labels,
    series_color,
)
from sim.stats import mean_ci

Records = Sequence[Mapping[str, Any]]


def service_metrics(records: Records, service: str) -> list[ServiceSummary]:
    """The per-Service metrics of every finished record that has ``service``."""
    return [services[service] for services in map(record_services, records) if service in services]


def by_client_node(m: ServiceSummary) -> dict[str, dict[str, int]]:
    """A sweep record's or run document's completed requests per client node and serving node."""
    if m.by_client_node is None:
        raise ValueError(f"Service {m.name}: no by_client_node (not a sweep record's or `sim run --out` metrics)")
    return m.by_client_node


def histogram_of(m: ServiceSummary) -> LatencyHistogram:
    """A sweep record's or run document's latency histogram."""
    if m.latency_histogram is None:
        raise ValueError(f"Service {m.name}: no latency_histogram (not a sweep record's or `sim run --out` metrics)")
    return m.latency_histogram


def endpoints_of(runs: Sequence[ServiceSummary]) -> list[str]:
    """Every endpoint some run expected or routed to, sorted."""
    return sorted({p for m in runs for p in (*m.routed_by_endpoint, *m.expected_share)})


ANNOTATED_CELLS = 400
"""A heatmap writes its share in each cell up to this many cells (20 x 20)."""


LABELLED_TICKS = 60
"""A heatmap labels an axis's ticks up to this many nodes, the endpoint bars theirs up to this many pods."""


def endpoint_bars(
    records: Records,
    service: str,
    ax: Axes | None = None,
    *,
    title: str | None = None,
    endpoints: Sequence[str] | None = None,
) -> Axes:
    """``endpoint_bars_of`` the records' (replications') metrics of ``service``."""
    return endpoint_bars_of(service_metrics(records, service), service, ax, title=title, endpoints=endpoints)


def endpoint_bars_of(
    runs: Sequence[ServiceSummary],
    service: str,
    ax: Axes | None = None,
    *,
    title: str | None = None,
    endpoints: Sequence[str] | None = None,
) -> Axes:
    """Share of routed requests per endpoint (%), mean over the runs' metrics of ``service`` (replications) with
    t intervals, and the routing layer's expected share marked on each bar. ``endpoints``: the bars to draw
    (default: every endpoint that was expected or got a request), e.g. the same set for panels side by side."""
    ax = axes_or_new(ax)
    pods = list(endpoints) if endpoints is not None else endpoints_of(runs)
    picked = [sum(m.routed_by_endpoint.values()) for m in runs]  # once a run, not once a bar
    shares = np.array(
        [[m.routed_by_endpoint.get(p, 0) / max(n, 1) for p in pods] for m, n in zip(runs, picked, strict=True)]
    )
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
        yerr=None if one else error_bars(mean, low, high),
        capsize=3,
        color=series_color(0),
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
        n = picked[0]
        band = np.array([share_interval(n, p / 100) for p in expected_mean]).reshape(len(pods), 2) * 100
        ax.errorbar(
            xs + 0.3,
            expected_mean,
            yerr=error_bars(expected_mean, band[:, 0], band[:, 1]),
            fmt="none",
            ecolor="crimson",
            capsize=4,
            zorder=3,
            label=f"95% range of the share in {n} picks at the expected share",
        )
    tops = np.concatenate([mean, high, expected_mean, band[:, 1] if one else []])
    _endpoint_axes(ax, pods, float(np.nanmax(tops, initial=0.0)))
    ax.set_title(title or f"Requests per endpoint: {service} ({len(runs)} {'run' if len(runs) == 1 else 'runs'})")
    ax.grid(True, axis="y", alpha=0.3)
    legend_if_labelled(ax, fontsize="small", loc="upper center", ncols=1 if one else 2, markerscale=0.4)
    return ax


def _endpoint_axes(ax: Axes, pods: Sequence[str], top: float) -> None:
    """The endpoint bars' axes: a pod's name under its bar and shares from 0 to 100%, up to ``LABELLED_TICKS``
    pods; beyond, no names (one could not read them; the report's table has each) and the share axis up to
    the highest bar or mark ``top`` (%), since a hundred pods have a few % each."""
    if len(pods) <= LABELLED_TICKS:
        ax.set_xticks(range(len(pods)), pods, rotation=45, ha="right", fontsize="small")
        ax.set_xlabel("endpoint (pod)")
        ax.set_ylim(0, max(100.0, top) * 1.3)  # room for the legend above the bars
        ax.set_yticks(range(0, 101, 20))
    else:
        ax.set_xticks([])
        ax.set_xlabel(f"{len(pods)} endpoints (pods), by name; too many to label")
        ax.set_ylim(0, (top or 1.0) * 1.8)  # room for the legend above the bars
    ax.set_ylabel("share of routed requests (%)")


def node_heatmap(
    records: Records,
    service: str,
    ax: Axes | None = None,
    *,
    title: str | None = None,
    clients: Sequence[str] | None = None,
    servers: Sequence[str] | None = None,
) -> Axes:
    """``node_heatmap_of`` the records' (replications') metrics of ``service``."""
    runs = service_metrics(records, service)
    return node_heatmap_of(runs, service, ax, title=title, clients=clients, servers=servers)


def node_heatmap_of(
    runs: Sequence[ServiceSummary],
    service: str,
    ax: Axes | None = None,
    *,
    title: str | None = None,
    clients: Sequence[str] | None = None,
    servers: Sequence[str] | None = None,
) -> Axes:
    """Completed requests by client node (rows) and serving node (columns), as a share (%) of all of them, summed
    over the runs' metrics of ``service`` (replications). ``clients``, ``servers``: the rows and columns to draw
    (default: the nodes that appear), e.g. the same ones for panels side by side."""
    ax = axes_or_new(ax)
    counts: dict[tuple[str, str], int] = {}
    for m in runs:
        for client, row in by_client_node(m).items():
            for served, n in row.items():
                counts[client, served] = counts.get((client, served), 0) + n
    clients = list(clients) if clients is not None else sorted({c for c, _ in counts})
    served_nodes = list(servers) if servers is not None else sorted({s for _, s in counts})
    grid = np.array([[counts.get((c, s), 0) for s in served_nodes] for c in clients], dtype=float)
    grid = grid.reshape(len(clients), len(served_nodes))
    total = grid.sum()
    share = grid / total * 100 if total else grid
    ax.set_title(title or f"Client node x serving node: {service}")
    if not share.size:  # no completed request: nothing to draw, and an empty image warns
        ax.text(0.5, 0.5, "no completed requests", ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
        return ax
    image = ax.imshow(share, cmap="viridis", vmin=0, vmax=100, aspect="auto")  # one scale for every panel
    if share.size <= ANNOTATED_CELLS:  # a number per cell where one can read it; beyond, the colour says it
        for (i, j), value in np.ndenumerate(share):
            if value > 0:
                color = "white" if value < 60 else "black"
                ax.text(j, i, show.decimals(value, 1), ha="center", va="center", fontsize="small", color=color)
    if len(served_nodes) <= LABELLED_TICKS:
        ax.set_xticks(range(len(served_nodes)), served_nodes, rotation=45, ha="right", fontsize="small")
    if len(clients) <= LABELLED_TICKS:
        ax.set_yticks(range(len(clients)), clients, fontsize="small")
    ax.set_xlabel("serving node")
    ax.set_ylabel("client node")
    ax.figure.colorbar(image, ax=ax, label="% of completed requests")
    return ax


def latency_ecdf(
    groups: Mapping[str, Records], service: str, ax: Axes | None = None, *, title: str | None = None
) -> Axes:
    """One latency ECDF per group (e.g. per policy), pooling the records' latency histograms; ms, log scale.
    A group with no completed request is named in a note on the axes."""
    ax = axes_or_new(ax)
    series = {}
    for label, records in groups.items():
        hists = [histogram_of(m) for m in service_metrics(records, service)]
        series[f"{label} ({len(hists)} {'run' if len(hists) == 1 else 'runs'})"] = hists
    draw_ecdf(ax, series)
    ax.set_title(title or f"Latency ECDF: {service}")
    return ax


def page_latency_ecdf(
    groups: Mapping[str, Sequence[Mapping[str, ServiceSummary]]], ax: Axes | None = None, *, title: str | None = None
) -> Axes:
    """End-to-end latency of completed pages (a call graph's entry Services), one ECDF per group (e.g. per policy
    of a callee) and entry Service, pooling the group's runs; ms, log scale. ``groups``: label -> runs, each its
    per-Service summaries (``services_from_json`` of a run document or ``summarize``'s JSON,
    ``record_services`` of a sweep record)."""
    ax = axes_or_new(ax)
    entries = list(
        dict.fromkeys(name for runs in groups.values() for run in runs for name, s in run.items() if s.call_path)
    )
    series = {}
    for label, runs in groups.items():
        for entry in entries:
            hists = [histogram_of(run[entry]) for run in runs if entry in run]
            name = label if len(entries) == 1 else f"{label}: {entry}"
            series[f"{name} ({len(hists)} {'run' if len(hists) == 1 else 'runs'})"] = hists
    draw_ecdf(ax, series)
    ax.set_ylabel("fraction of pages at or below")
    ax.set_title(title or f"End-to-end latency ECDF of completed pages: {', '.join(entries)}")
    return ax


def draw_ecdf(ax: Axes, series: Mapping[str, Sequence[LatencyHistogram]]) -> None:
    """Draw one ECDF per label from its latency histograms (ms, log x), with a p99 line and notes."""
    notes = []
    for i, (label, hists) in enumerate(series.items()):
        upper, cdf = histogram_ecdf(hists)
        if not upper.size:
            notes.append(f"not drawn: {label.split(' (')[0]}: no completed requests")
            continue
        lower = upper[0] / 10 ** (1 / hists[0].bins_per_decade)
        style = LINE_STYLES[i % len(LINE_STYLES)]
        ax.plot(np.r_[lower, upper] * MS_PER_S, np.r_[0.0, cdf], color=series_color(i), ls=style, lw=1.8, label=label)
    ax.axhline(0.99, color="grey", ls=":", lw=1)
    ax.text(0.01, 0.985, "p99", transform=ax.get_yaxis_transform(), va="top", fontsize="small", color="grey")
    ax.set_xscale("log")
    plain_log_labels(ax.xaxis, minor=False)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("latency (ms, log scale)")
    ax.set_ylabel("fraction of requests at or below")
    ax.grid(True, which="both", alpha=0.3)
    add_note(ax, notes)
    legend_if_labelled(ax, fontsize="small", loc="lower right")
