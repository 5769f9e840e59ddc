"""The cluster network: Kubernetes nodes and network elements in a NetworkX graph with per-hop latency (s)."""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

import networkx as nx

from sim.distributions import Dist, Sum


class ElementKind(StrEnum):
    """What a graph vertex is: a Kubernetes node, or a network element between nodes."""

    NODE = "node"
    BRIDGE = "bridge"
    SWITCH = "switch"
    ROUTER = "router"


@dataclass(frozen=True)
class Link:
    """An undirected link between two graph vertices whose one-way delay is drawn from ``latency``."""

    a: str
    b: str
    latency: Dist


@dataclass(frozen=True)
class Path:
    """The lowest-mean-latency route between two Kubernetes nodes; ``delay`` draws one one-way trip (s)."""

    vertices: tuple[str, ...]
    delay: Dist

    @property
    def hops(self) -> int:
        """Number of links crossed (0 on the same node)."""
        return len(self.vertices) - 1

    @property
    def mean_s(self) -> float:
        """Mean one-way delay in seconds."""
        return self.delay.mean_s


@dataclass(frozen=True, eq=False)
class Topology:
    """Kubernetes nodes (with labels), network elements and links; path lookups are computed once and cached.

    ``same_node`` is the pod-to-pod delay on one node (veth and bridge on the host), used when client and backend
    share a node. ``allocatable_cpu`` (cores) and ``unready`` describe nodes for the topology-aware hints heuristic.
    """

    name: str
    nodes: Mapping[str, Mapping[str, str]]
    elements: Mapping[str, ElementKind]
    links: Sequence[Link]
    same_node: Dist
    allocatable_cpu: Mapping[str, float] = field(default_factory=dict)
    unready: frozenset[str] = frozenset()
    graph: nx.Graph = field(init=False, repr=False)
    _paths: dict[tuple[str, str], Path] = field(init=False, repr=False)
    _trees: dict[str, dict[str, list[str]]] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        graph = nx.Graph()
        for name, labels in self.nodes.items():
            graph.add_node(name, kind=ElementKind.NODE, labels=dict(labels))
        for name, kind in self.elements.items():
            graph.add_node(name, kind=kind)
        for link in self.links:
            graph.add_edge(link.a, link.b, latency=link.latency, mean_s=link.latency.mean_s)
        object.__setattr__(self, "graph", graph)
        object.__setattr__(self, "_paths", {})
        object.__setattr__(self, "_trees", {})

    def connected(self, a: str, b: str) -> bool:
        """Whether any route joins vertices ``a`` and ``b``."""
        return nx.has_path(self.graph, a, b)

    def path(self, src: str, dst: str) -> Path:
        """The lowest-mean-latency path between two vertices (networkx Dijkstra from ``src``, once per source)."""
        key = (src, dst)
        cached = self._paths.get(key)
        if cached is not None:
            return cached
        if src == dst:
            path = Path((src,), self.same_node)
        else:
            tree = self._trees.get(src)
            if tree is None:
                tree = self._trees[src] = nx.single_source_dijkstra_path(self.graph, src, weight="mean_s")
            vertices = tree[dst]
            hops = tuple(self.graph.edges[u, v]["latency"] for u, v in itertools.pairwise(vertices))
            path = Path(tuple(vertices), Sum(hops))
        self._paths[key] = path
        return path
