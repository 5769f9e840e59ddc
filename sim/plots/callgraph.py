"""A run's call graph: its Services with each edge's rate, latency and locality; one sampled page's spans as a
waterfall; the end-to-end latency of its pages."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.transforms import Bbox

from sim.experiment import presentation as show
from sim.experiment.callpaths import CLIENTS
from sim.experiment.metrics import ServiceSummary
from sim.plots.axes import MS_PER_S, axes_or_new
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
    each edge numbered (its row in ``edge_table``) where the number overlaps no other number and no Service.
    (Labels written along the edges overlapped each other in a graph as dense as Online Boutique's.)"""
    edges = doc["call_graph"]["edges"]
    ax = axes_or_new(ax, (12.0, 7.0))
    pos = _columns(edges)
    high = max(abs(y) for _, y in pos.values()) + 0.6
    ax.set_xlim(-0.5, max(x for x, _ in pos.values()) + 0.5)
    ax.set_ylim(-high, high)
    for e in edges:
        ax.annotate(
            "",
            pos[e["callee"]],
            pos[e["caller"]],
            arrowprops={"arrowstyle": "-|>", "color": "grey", "shrinkA": 30, "shrinkB": 30},
        )
    namespace, short = _namespace(pos)
    boxes = [
        ax.text(
            x,
            y,
            short(name),
            ha="center",
            va="center",
            fontsize=9.5,
            zorder=3,
            bbox={"facecolor": "lavender", "edgecolor": "slateblue", "boxstyle": "round", "pad": 0.4},
        )
        for name, (x, y) in pos.items()
    ]
    where = f" (namespace {namespace})" if namespace else ""
    ax.set_title(f"Service graph{where}; each edge numbered as in the table")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.spines[:].set_visible(False)
    _number_edges(ax, edges, pos, boxes)
    return ax


def _namespace(pos: Mapping[str, Any]) -> tuple[str | None, Callable[[str], str]]:
    """The namespace every Service of the graph is in (``ns/name``), and names without it; else None, and
    names as they are."""
    spaces = {name.split("/", 1)[0] if "/" in name else None for name in pos if name != CLIENTS}
    if len(spaces) != 1 or None in spaces:
        return None, lambda name: name
    (namespace,) = spaces
    return namespace, lambda name: name.removeprefix(f"{namespace}/")


def edge_table(doc: Mapping[str, Any], ax: Axes | None = None) -> Axes:
    """The call graph's edges as a table, numbered as ``service_graph`` numbers them: caller and callee, calls/s,
    the completed calls' mean latency, and the share answered on another node and zone than the caller's."""
    edges = doc["call_graph"]["edges"]
    ax = axes_or_new(ax, (6.0, 7.0))
    namespace, short = _namespace({n: None for e in edges for n in (e["caller"], e["callee"])})
    rows = [
        [
            str(k),
            f"{short(e['caller'])} -> {short(e['callee'])}",
            show.significant(e["calls_per_s"], 3),
            show.latency_words(e["latency_mean_s"]),
            show.percent(e["cross_node_fraction"], 0),
            show.percent(e["cross_zone_fraction"], 0),
        ]
        for k, e in enumerate(edges, start=1)
    ]
    inches = ax.get_position().height * cast(Figure, ax.figure.figure).get_figheight()  # before the layout: near enough
    height = min(1.0, ROW_INCHES * (len(rows) + 1) / inches)
    table = ax.table(
        cellText=rows,
        colLabels=EDGE_COLUMNS,
        colWidths=[0.05, 0.56, 0.08, 0.11, 0.1, 0.1],
        cellLoc="left",
        bbox=Bbox.from_bounds(0.0, 1.0 - height, 1.0, height),
    )
    table.auto_set_font_size(False)
    table.set_fontsize(8)
    for (row, _), cell in table.get_celld().items():
        cell.set_edgecolor("lightgray")
        if row == 0:
            cell.set_text_props(fontweight="bold")
    ax.set_axis_off()
    where = f" (namespace {namespace})" if namespace else ""
    ax.set_title(
        f"Edges{where}:\ncalls/s, mean latency of completed calls,\nshare answered off the caller's node / zone"
    )
    return ax


ROW_INCHES = 0.3
"""The height of a row of the edge table (8-point text with room above and below)."""
EDGE_COLUMNS = ("#", "caller -> callee", "calls/s", "latency", "off node", "off zone")
"""The service graph's table: one row per numbered edge."""


EDGE_NUMBER_AT = (0.5, 0.4, 0.6, 0.3, 0.7, 0.25, 0.75, 0.2, 0.8, 0.15, 0.85)
"""Where along an edge (from caller to callee) its number may go, in the order tried."""


def _number_edges(
    ax: Axes, edges: Sequence[Mapping[str, Any]], pos: Mapping[str, tuple[float, float]], boxes: Sequence[Any]
) -> None:
    """Put each edge's number (its table row) at the first place along it (``EDGE_NUMBER_AT``) whose circle
    overlaps no number placed before and no Service's box; where every place overlaps, the middle. The places
    are tried in display units, on the figure as it is laid out."""
    figure = cast(Figure, ax.figure.figure)  # the root figure, also of an Axes on a subfigure
    figure.draw_without_rendering()
    taken = [text.get_bbox_patch().get_window_extent().padded(4) for text in boxes]  # sized by the draw
    radius = 9.0 * figure.dpi / 72  # a number's circle, in pixels
    placed: list[tuple[float, float]] = []
    for k, e in enumerate(edges, start=1):
        a, b = ax.transData.transform([pos[e["caller"]], pos[e["callee"]]])
        spots = [(a[0] + t * (b[0] - a[0]), a[1] + t * (b[1] - a[1])) for t in EDGE_NUMBER_AT]
        free = (
            (px, py)
            for px, py in spots
            if all(math.hypot(px - qx, py - qy) > 2 * radius for qx, qy in placed)
            and not any(
                box.x0 - radius < px < box.x1 + radius and box.y0 - radius < py < box.y1 + radius for box in taken
            )
        )
        px, py = next(free, spots[0])
        placed.append((px, py))
        x, y = ax.transData.inverted().transform((px, py))
        ax.text(
            x,
            y,
            str(k),
            ha="center",
            va="center",
            fontsize=7.5,
            zorder=4,
            bbox={"boxstyle": "circle", "facecolor": "white", "edgecolor": "grey", "pad": 0.2},
        )


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
    """``service_graph`` (where calls were measured), ``waterfall`` (where a page completed) and
    ``page_latency_ecdf`` (per entry Service)."""
    figures: dict[str, Figure] = {}
    if doc["call_graph"]["edges"]:  # calls measured (after the warm-up)
        rows = 2 * max(abs(y) for _, y in _columns(doc["call_graph"]["edges"]).values()) + 1  # the fullest column
        height = max(rows * 0.75 + 1.6, ROW_INCHES * (len(doc["call_graph"]["edges"]) + 1) + 2.0)
        fig = Figure(figsize=(15.0, min(9.0, max(3.6, height))), layout="constrained")
        graph, table = fig.subplots(1, 2, width_ratios=(1.7, 1.0))
        service_graph(doc, graph)
        edge_table(doc, table)
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
