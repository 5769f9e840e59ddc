"""The cluster as a graph: Kubernetes nodes with their pods, network elements, links labelled with their latency
(``sim.experiment.rundoc.describe_cluster``'s table)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.collections import LineCollection
from matplotlib.lines import Line2D

from sim.experiment.presentation import latency_words
from sim.plots.axes import axes_or_new

LABELLED_VERTICES = 150
"""Above this many vertices the cluster figure has no text per vertex or link (one would hide the next) and a
layout linear in the vertices."""


_KIND_COLORS = {"node": "tab:blue", "bridge": "tab:orange", "switch": "tab:green", "router": "tab:red"}


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

    ax = axes_or_new(ax, (8.0, 6.0))
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
            latency_words(data["mean_s"]),
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
        title=f"edge labels: mean one-way link latency; same-node pod to pod {latency_words(cluster['same_node_s'])}",
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
