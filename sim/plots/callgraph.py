"""A run's call graph: its Services with each edge's rate, latency and locality; one sampled page's spans as a
waterfall; the end-to-end latency of its pages."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from sim.experiment.metrics import ServiceSummary
from sim.plots.axes import MS_PER_S, axes_or_new, latency_words
from sim.plots.panels import draw_ecdf, histogram_of


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
    ax = axes_or_new(ax, (12.0, 7.0))
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
            f"{e['calls_per_s']:.3g}/s, {latency_words(e['latency_mean_s'])}, off node "
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
        (a * MS_PER_S, b * MS_PER_S, color, label)
        for a, b, color, label in legs
        if a is not None and b is not None and b > a
    ]


def waterfall(doc: Mapping[str, Any], ax: Axes | None = None) -> Axes:
    """One sampled page's spans (``call_graph.sample``), like a tracing UI: a row per span in trace order,
    indented by depth, its legs from send to return (ms from the page's send)."""
    sample = doc["call_graph"]["sample"]
    spans = sample["spans"]
    ax = axes_or_new(ax, (11.0, max(3.0, 0.28 * len(spans) + 1.4)))
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


def call_graph_figures(doc: Mapping[str, Any], head: str, summaries: Mapping[str, ServiceSummary]) -> dict[str, Figure]:
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
    entries = {n: [histogram_of(s)] for n, s in summaries.items() if s.call_path is not None}
    if entries:
        fig = Figure(figsize=(7.2, 4.6), layout="constrained")
        ax = fig.add_subplot()
        draw_ecdf(ax, entries)
        ax.set_title(f"{head}\nend-to-end latency ECDF of completed pages, per entry Service")
        figures["page_latency_ecdf"] = fig
    return figures
