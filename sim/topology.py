"""The cluster network: Kubernetes nodes and network elements in a NetworkX graph with per-hop latency (s).

Routes are computed once for every pair of vertices, in C (``scipy.sparse.csgraph.dijkstra`` over the graph's
adjacency matrix), into three tables: the predecessor on the lowest-mean-latency path, its number of links, and its
*delay class*. Two paths are of one class when they cross the same multiset of link latency distributions, so they
have one delay distribution: a 1,000-node leaf-spine cluster has a million node pairs but a handful of classes
(same node, same rack, same zone, across zones), and the engine draws one random stream per class, not per pair.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cached_property

import networkx as nx
import numpy as np
import scipy.sparse
from scipy.sparse import csgraph

from sim.distributions import Dist, Sum

_TIE_BREAK_S = 1e-15
"""Added to each link's weight: csgraph ignores zero-weight links, and among equal-latency paths the fewest hops win."""


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


@dataclass(frozen=True)
class _Routes:
    """All-pairs route tables over the graph's vertices (row and column order: ``index``)."""

    names: list[str]  # vertex by row
    index: dict[str, int]
    components: list[int]  # connected-component label per vertex
    predecessor: np.ndarray  # [src, dst] -> the vertex before dst on the path from src (-9999: none)
    hops: np.ndarray  # [src, dst] -> links crossed (int16)
    delay_class: np.ndarray  # [src, dst] -> index into class_delay (int32)
    class_delay: tuple[Dist, ...]


_CHUNK_PAIRS = 1 << 18
"""Source rows are routed in chunks of about this many (source, destination) pairs, to bound the temporaries."""


def _routes(graph: nx.Graph, same_node: Dist) -> _Routes:
    """Dijkstra from every vertex (in chunks of sources), then the hop count and delay class of every pair."""
    names = list(graph.nodes)
    index = {name: i for i, name in enumerate(names)}
    v = len(names)
    kinds: dict[Dist, int] = {}  # each distinct link latency distribution, in first-seen order
    rows, cols, weights, kind_of = [], [], [], []
    for a, b, data in graph.edges(data=True):
        rows.append(index[a])
        cols.append(index[b])
        weights.append(data["mean_s"] + _TIE_BREAK_S)
        kind_of.append(kinds.setdefault(data["latency"], len(kinds)))
    r, c = np.array(rows + cols, dtype=np.int64), np.array(cols + rows, dtype=np.int64)
    adjacency = scipy.sparse.csr_matrix((np.array(weights + weights), (r, c)), shape=(v, v))
    link_kind = np.zeros((v, v), dtype=np.int16)
    link_kind[r, c] = np.array(kind_of + kind_of, dtype=np.int16)
    component = csgraph.connected_components(adjacency, directed=False)[1]

    nk = max(len(kinds), 1)
    predecessor = np.empty((v, v), dtype=np.int32)
    hops = np.empty((v, v), dtype=np.int16)
    delay_class = np.empty((v, v), dtype=np.int32)
    class_of: dict[tuple[int, ...], int] = {}  # link-kind counts -> class id, in order of first appearance
    step = max(1, _CHUNK_PAIRS // max(v, 1))
    for lo in range(0, v, step):
        sources = np.arange(lo, min(v, lo + step))
        _, pred = csgraph.dijkstra(adjacency, directed=False, indices=sources, return_predecessors=True)
        predecessor[sources] = pred
        counts = _link_counts(pred, sources, link_kind, nk)
        hops[sources] = counts.sum(axis=2, dtype=np.int16)
        keys, inverse = _multisets(counts.reshape(-1, nk), v)
        ids = np.array([class_of.setdefault(tuple(key), len(class_of)) for key in keys.tolist()], dtype=np.int32)
        delay_class[sources] = ids[inverse.reshape(-1)].reshape(len(sources), v)
    dists = list(kinds)
    class_delay = []
    for key in class_of:
        parts = tuple(d for k, n in enumerate(key) for d in [dists[k]] * n) if dists else ()
        class_delay.append(Sum(parts) if parts else same_node)
    return _Routes(names, index, component.tolist(), predecessor, hops, delay_class, tuple(class_delay))


def _link_counts(pred: np.ndarray, sources: np.ndarray, link_kind: np.ndarray, nk: int) -> np.ndarray:
    """Per (source, destination): how many links of each kind its path crosses, walking all paths back at once."""
    s, v = pred.shape
    counts = np.zeros(s * v * nk, dtype=np.int16)  # [pair * nk + kind], pair = row * v + destination
    pred_flat, kind_flat = pred.ravel(), link_kind.ravel()
    pair = np.arange(s * v)
    row, cur = pair - pair % v, pair % v  # row * v, and the vertex reached so far walking back
    while len(pair):
        before = pred_flat[row + cur]
        moving = before >= 0
        pair, row, cur, before = pair[moving], row[moving], cur[moving], before[moving]
        counts[pair * nk + kind_flat[before * v + cur]] += 1
        cur = before
    return counts.reshape(s, v, nk)


def _multisets(counts: np.ndarray, v: int) -> tuple[np.ndarray, np.ndarray]:
    """The distinct rows of ``counts`` (link-kind counts) and each row's index among them."""
    nk = counts.shape[1]
    if v**nk < 2**62:  # each row as one integer in base v (a path has fewer than v links): a 1-D unique, fast
        code = counts.astype(np.int64) @ (v ** np.arange(nk, dtype=np.int64))
        _, first, inverse = np.unique(code, return_index=True, return_inverse=True)
        return counts[first], inverse
    keys, inverse = np.unique(counts, axis=0, return_inverse=True)
    return keys, inverse


@dataclass(frozen=True, eq=False)
class Topology:
    """Kubernetes nodes (with labels), network elements and links; routes between all vertices computed once.

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

    @cached_property
    def _routes(self) -> _Routes:
        return _routes(self.graph, self.same_node)

    def connected(self, a: str, b: str) -> bool:
        """Whether any route joins vertices ``a`` and ``b``."""
        return self.component(a) == self.component(b)

    def component(self, vertex: str) -> int:
        """The label of the connected part of the network ``vertex`` is in."""
        return self._routes.components[self._routes.index[vertex]]

    def hops(self, src: str, dst: str) -> int:
        """Links crossed on the lowest-mean-latency path (0 on the same vertex)."""
        routes = self._routes
        return int(routes.hops[routes.index[src], routes.index[dst]])

    def hop_matrix(self, srcs: Sequence[str], dsts: Sequence[str]) -> np.ndarray:
        """Links crossed from each of ``srcs`` (rows) to each of ``dsts`` (columns), as an int16 matrix."""
        routes = self._routes
        rows = np.array([routes.index[a] for a in srcs], dtype=np.int64)
        cols = np.array([routes.index[b] for b in dsts], dtype=np.int64)
        return routes.hops[np.ix_(rows, cols)]

    def delay_class(self, src: str, dst: str) -> int:
        """The delay class of the path from ``src`` to ``dst``: paths of one class have one delay distribution."""
        routes = self._routes
        return int(routes.delay_class[routes.index[src], routes.index[dst]])

    def delay_classes_between(self, vertex: str, others: Sequence[str]) -> list[tuple[int, int]]:
        """Per vertex of ``others``: the delay classes of the paths from ``vertex`` to it and back."""
        routes = self._routes
        index = routes.index
        v, cols = index[vertex], [index[b] for b in others]
        return list(zip(routes.delay_class[v, cols].tolist(), routes.delay_class[cols, v].tolist(), strict=True))

    def class_delay(self, delay_class: int) -> Dist:
        """One one-way trip's delay (s) along any path of ``delay_class``."""
        return self._routes.class_delay[delay_class]

    def path(self, src: str, dst: str) -> Path:
        """The lowest-mean-latency path between two vertices, with its links' delays in order."""
        key = (src, dst)
        cached = self._paths.get(key)
        if cached is not None:
            return cached
        if src == dst:
            path = Path((src,), self.same_node)
        else:
            routes = self._routes
            if not self.connected(src, dst):
                raise nx.NetworkXNoPath(f"no path between {src!r} and {dst!r}")
            names = routes.names
            row, at = routes.predecessor[routes.index[src]], routes.index[dst]
            backwards = [at]
            while at != routes.index[src]:
                at = int(row[at])
                backwards.append(at)
            vertices = tuple(names[i] for i in reversed(backwards))
            edges = self.graph.edges
            path = Path(vertices, Sum(tuple(edges[a, b]["latency"] for a, b in itertools.pairwise(vertices))))
        self._paths[key] = path
        return path
