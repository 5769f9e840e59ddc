"""The cluster network: Kubernetes nodes and network elements, links with per-hop latency (s), and routes.

Every route is the lowest-mean-latency path. Two paths are of one *delay class* when they cross the same multiset
of link latency distributions, so they have one delay distribution: a 5,000-node leaf-spine cluster has 25
million node pairs but a handful of classes (same node, same rack, same zone, across zones), and the engine draws
one random stream per class, not per pair.

Routes come from the network's structure, not from an all-pairs table. A vertex with a single neighbour (a
Kubernetes node on its top-of-rack switch, a kind node on the Docker bridge) is a *pendant*: every path to or from
it crosses its one link, so its routes are that link plus the routes of the vertex it hangs from. Only the *core*
(the vertices left: switches, spines, routers) is routed pair by pair, into three tables (the predecessor on the
path, its links, its link-kind counts): in C (``scipy.sparse.csgraph.dijkstra``) where the core has cycles, by a
walk of the tree where it has none (one path per pair, and no scipy import). A 5,000-node leaf-spine cluster has
a core of 264 vertices: 70,000 pairs instead of 28 million. Delay classes are numbered in the order the pairs of
all vertices first show them (row by row), as the all-pairs tables numbered them, so a run's random streams (keyed
by class) are unchanged.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np

from sim.distributions import Dist, Sum

if TYPE_CHECKING:
    import networkx as nx

_TIE_BREAK_S = 1e-15
"""Added to each link's weight: csgraph ignores zero-weight links, and among equal-latency paths the fewest hops win."""

_WALK_CORE = 512
"""A core of at most this many vertices without cycles is routed by walking the tree in Python (no scipy import);
larger ones, and any with a cycle, by csgraph's Dijkstra."""


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


def _adjacency(nodes: Sequence[str], elements: Sequence[str], links: Sequence[Link]) -> dict[str, dict[str, Dist]]:
    """Vertex -> neighbour -> the link's latency, in the order (and with the last-link-wins merging) of a NetworkX
    graph built by adding the nodes, the elements and then the links."""
    adj: dict[str, dict[str, Dist]] = {}
    for name in itertools.chain(nodes, elements):
        adj.setdefault(name, {})
    for link in links:
        adj.setdefault(link.a, {})
        adj.setdefault(link.b, {})
        adj[link.a][link.b] = link.latency
        adj[link.b][link.a] = link.latency
    return adj


def _edges(adj: Mapping[str, Mapping[str, Dist]]) -> list[tuple[str, str, Dist]]:
    """Each link once, in NetworkX's ``Graph.edges`` order (a vertex's links to vertices not yet passed)."""
    seen: set[str] = set()
    out: list[tuple[str, str, Dist]] = []
    for a, neighbours in adj.items():
        out.extend((a, b, d) for b, d in neighbours.items() if b not in seen)
        seen.add(a)
    return out


@dataclass(frozen=True, eq=False)
class _Routes:
    """Route tables: per vertex its core root and pendant link, per core pair its path; classes per pair kind."""

    names: list[str]  # vertex by index
    index: dict[str, int]
    components: list[int]  # connected-component label per vertex (numbered in order of each part's first vertex)
    root: np.ndarray  # vertex -> the core vertex it is (or hangs from), as a core index (int64)
    pendant: np.ndarray  # vertex -> its pendant code: 0 in the core, else 1 + the code of its link's latency (int64)
    core: np.ndarray  # core index -> vertex index
    predecessor: np.ndarray  # [core src, core dst] -> core index of the vertex before dst (-9999: none)
    hops: np.ndarray  # [core src, core dst] -> links crossed (int16), 0 where not connected
    linked: np.ndarray  # [core src, core dst] -> whether connected
    table: np.ndarray  # [core src, core dst, pendant code of src, of dst] -> delay class (int32)
    same: int  # the delay class of a vertex to itself (no links: the same-node delay)
    class_delay: tuple[Dist, ...]

    @cached_property
    def _scalar(self) -> tuple[list[int], list[int]]:
        """Root and pendant code per vertex as Python lists: one pair's lookups without numpy's per-call cost."""
        return self.root.tolist(), self.pendant.tolist()

    def hops_between(self, src: str, dst: str) -> int:
        """Links crossed from vertex ``src`` to ``dst`` (0 on the same vertex, or where no route joins them)."""
        if src == dst:
            return 0
        root, pendant = self._scalar
        i, j = self.index[src], self.index[dst]
        ri, rj = root[i], root[j]
        if not self.linked.item(ri, rj):
            return 0
        return int(self.hops.item(ri, rj)) + (pendant[i] > 0) + (pendant[j] > 0)

    def class_between(self, src: str, dst: str) -> int:
        """The delay class from vertex ``src`` to ``dst``."""
        if src == dst:
            return self.same
        root, pendant = self._scalar
        i, j = self.index[src], self.index[dst]
        return int(self.table.item(root[i], root[j], pendant[i], pendant[j]))

    def rows(self, vertices: Sequence[str]) -> np.ndarray:
        """The vertex indices of ``vertices`` (int64)."""
        index = self.index
        return np.fromiter((index[v] for v in vertices), dtype=np.int64, count=len(vertices))

    def hop_matrix(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Links crossed from each vertex index of ``a`` (rows) to each of ``b`` (columns), int16."""
        ra, rb = self.root[a], self.root[b]
        pa, pb = (self.pendant[a] > 0).astype(np.int16), (self.pendant[b] > 0).astype(np.int16)
        grid = np.ix_(ra, rb)
        out = self.hops[grid] + pa[:, None] + pb[None, :]
        out[~self.linked[grid] | (a[:, None] == b[None, :])] = 0
        return out.astype(np.int16, copy=False)

    def classes(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """The delay class from each vertex index of ``a`` to the one of ``b`` at the same position (int32)."""
        out = self.table[self.root[a], self.root[b], self.pendant[a], self.pendant[b]]
        return np.where(a == b, self.same, out).astype(np.int32, copy=False)


def _routes(adj: Mapping[str, Mapping[str, Dist]], same_node: Dist) -> _Routes:
    """Split off the pendant vertices, route the core, and number the delay classes of every vertex pair."""
    names = list(adj)
    index = {name: i for i, name in enumerate(names)}
    edges = _edges(adj)
    kinds: dict[Dist, int] = {}  # each distinct link latency distribution, in first-seen order
    for _, _, d in edges:
        kinds.setdefault(d, len(kinds))
    nk = max(len(kinds), 1)
    split = _split_pendants(adj, names, index, kinds, nk)
    in_core, core_of = split.in_core, split.core_of
    core_edges = [
        (core_of[index[a]], core_of[index[b]], d) for a, b, d in edges if in_core[index[a]] and in_core[index[b]]
    ]
    c = len(split.core)
    predecessor, core_component = _core_paths(c, core_edges)
    hops, core_key, keys = _core_link_counts(c, core_edges, predecessor, kinds, nk)
    linked = core_component[:, None] == core_component[None, :]
    table, number, local, zero = _class_table(keys, split.unit, core_key, linked, split.root, split.pendant, nk)
    labels = core_component[split.root].tolist() if names else []
    relabel: dict[int, int] = {}
    components = [relabel.setdefault(x, len(relabel)) for x in labels]
    return _Routes(
        names, index, components, split.root, split.pendant, split.core, predecessor, hops, linked, table,
        int(number[zero]), _class_delays(local, number, list(kinds), same_node),
    )  # fmt: skip


@dataclass(frozen=True, eq=False)
class _Split:
    """The core of a graph and the pendant vertices hanging from it (see ``_Routes``)."""

    in_core: np.ndarray  # vertex -> whether it is in the core
    core: np.ndarray  # core index -> vertex index
    core_of: np.ndarray  # vertex -> its core index (-1: a pendant)
    root: np.ndarray
    pendant: np.ndarray
    unit: np.ndarray  # pendant code -> its link's kind count (int16, one row per code, row 0: none)


def _split_pendants(
    adj: Mapping[str, Mapping[str, Dist]], names: list[str], index: dict[str, int], kinds: dict[Dist, int], nk: int
) -> _Split:
    """Pendants: one neighbour (self-links never lie on a shortest path). Of two vertices that only have each
    other, the first stays in the core. Each pendant's link latency gets a code 1, 2, ... (0: in the core)."""
    v = len(names)
    only = [[b for b in adj[a] if b != a] for a in names]
    parent = np.full(v, -1, dtype=np.int64)
    pendant_kind = np.full(v, -1, dtype=np.int64)
    for i, nbrs in enumerate(only):
        if len(nbrs) == 1:
            j = index[nbrs[0]]
            if len(only[j]) == 1 and j > i:
                continue
            parent[i], pendant_kind[i] = j, kinds[adj[names[i]][nbrs[0]]]
    in_core = parent < 0
    core = np.flatnonzero(in_core)
    core_of = np.full(v, -1, dtype=np.int64)
    core_of[core] = np.arange(len(core))
    root = np.where(in_core, core_of, core_of[np.where(in_core, 0, parent)] if v else core_of)
    used = sorted(set(pendant_kind[~in_core].tolist()))  # the latencies of pendant links: codes 1, 2, ...
    code_of = {k: q + 1 for q, k in enumerate(used)}
    pendant = np.array([code_of.get(k, 0) for k in pendant_kind.tolist()], dtype=np.int64)
    unit = np.zeros((len(used) + 1, nk), dtype=np.int16)
    for k, q in code_of.items():
        unit[q, k] = 1
    return _Split(in_core, core, core_of, root, pendant, unit)


def _core_link_counts(
    c: int, core_edges: Sequence[tuple[int, int, Dist]], predecessor: np.ndarray, kinds: dict[Dist, int], nk: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per core pair: links crossed (int16), and the index of its path's link-kind counts into the distinct
    counts found (rows of the third array), sources in chunks of ``_CHUNK_PAIRS`` pairs."""
    link_kind = np.zeros((c, c), dtype=np.int16)
    for i, j, d in core_edges:
        link_kind[i, j] = link_kind[j, i] = kinds[d]
    hops = np.zeros((c, c), dtype=np.int16)
    core_key = np.zeros((c, c), dtype=np.int64)  # [src, dst] -> index into key_of: its path's link-kind counts
    key_of: dict[tuple[int, ...], int] = {}
    step = max(1, _CHUNK_PAIRS // max(c, 1))
    for lo in range(0, c, step):
        sources = np.arange(lo, min(c, lo + step))
        counts = _link_counts(predecessor[sources], sources, link_kind, nk)
        hops[sources] = counts.sum(axis=2, dtype=np.int16)
        found, inverse = _multisets(counts.reshape(-1, nk), c + 3)
        ids = np.array([key_of.setdefault(tuple(key), len(key_of)) for key in found.tolist()], dtype=np.int64)
        core_key[sources] = ids[inverse.reshape(-1)].reshape(len(sources), c)
    return hops, core_key, np.array(list(key_of), dtype=np.int16).reshape(-1, nk)


def _class_table(
    keys: np.ndarray,
    unit: np.ndarray,
    core_key: np.ndarray,
    linked: np.ndarray,
    root: np.ndarray,
    pendant: np.ndarray,
    nk: int,
) -> tuple[np.ndarray, np.ndarray, dict[tuple[int, ...], int], int]:
    """The multiset of every (core pair, pendant code at each end), numbered locally; then renumbered in the order
    in which the rows of all vertex pairs first show each one. Returns the renumbered table, the renumbering, the
    local ids by multiset and the local id of no links at all."""
    p = len(unit)
    local: dict[tuple[int, ...], int] = {}
    combo = np.empty((len(keys), p, p), dtype=np.int32)
    for kid, key in enumerate(keys):
        for a, b in itertools.product(range(p), repeat=2):
            combo[kid, a, b] = local.setdefault(tuple((key + unit[a] + unit[b]).tolist()), len(local))
    zero = local.setdefault((0,) * nk, len(local))
    table = combo[core_key]
    table[~linked] = zero
    number = _first_seen(table, root, pendant, list(local))
    return number[table].astype(np.int32), number, local, zero


def _class_delays(
    local: Mapping[tuple[int, ...], int], number: np.ndarray, dists: list[Dist], same_node: Dist
) -> tuple[Dist, ...]:
    """Each delay class's distribution in class order: the sum of its links' latencies (none: ``same_node``)."""
    by_number = sorted((int(number[i]), counts) for counts, i in local.items() if number[i] >= 0)
    class_delay = []
    for _, multiset in by_number:
        parts = tuple(d for k, n in enumerate(multiset) for d in [dists[k]] * n) if dists else ()
        class_delay.append(Sum(parts) if parts else same_node)
    return tuple(class_delay)


def _first_seen(table: np.ndarray, root: np.ndarray, pendant: np.ndarray, keys: list[tuple[int, ...]]) -> np.ndarray:
    """Local class id (``keys[id]``: its link-kind counts) -> its class number, as all-pairs route tables number
    them (-1: no vertex pair has it).

    Those tables went over the source vertices in chunks of ``_CHUNK_PAIRS // vertices`` rows, numbering the
    classes new in a chunk in the order of their counts (as integers in base ``vertices``, most significant kind
    last; as rows, first kind first, where those would not fit in 62 bits). A source's row of classes depends
    only on its (root, pendant code) *group* (a vertex to itself is the no-link class), so the classes of a
    chunk are the union of its groups' rows: groups x groups of work, not vertices x vertices."""
    v = len(root)
    number = np.full(len(keys), -1, dtype=np.int64)
    if v == 0:
        return number
    nk = len(keys[0])
    zero = keys.index((0,) * nk)
    by_code = v**nk < 2**62
    rank = sorted(range(len(keys)), key=lambda i: keys[i][::-1] if by_code else keys[i])
    order = np.empty(len(keys), dtype=np.int64)
    order[rank] = np.arange(len(keys))  # local id -> its place in the tables' sort
    span = int(pendant.max()) + 1
    groups, gid, size = np.unique(root * span + pendant, return_inverse=True, return_counts=True)
    g_root, g_pend = groups // span, groups % span
    shows = np.zeros((len(groups), len(keys)), dtype=bool)  # [group, local id]: a row of the group shows it
    shows[:, zero] = True
    step = max(1, (1 << 22) // len(groups))
    for lo in range(0, len(groups), step):
        g = np.arange(lo, min(len(groups), lo + step))
        block = table[g_root[g][:, None], g_root[None, :], g_pend[g][:, None], g_pend[None, :]]
        alone = size[g] == 1  # a group of one vertex: its own column is the vertex itself
        block[np.flatnonzero(alone), g[alone]] = zero
        shows[np.repeat(g - lo, len(groups)) + lo, block.ravel()] = True
    seen = 0
    chunk = max(1, _CHUNK_PAIRS // v)
    for lo in range(0, v, chunk):
        present = shows[np.unique(gid[lo : lo + chunk])].any(axis=0) & (number < 0)
        fresh = np.flatnonzero(present)
        fresh = fresh[np.argsort(order[fresh])]
        number[fresh] = np.arange(seen, seen + len(fresh))
        seen += len(fresh)
    return number


def _core_paths(c: int, edges: Sequence[tuple[int, int, Dist]]) -> tuple[np.ndarray, np.ndarray]:
    """Predecessor table ([src, dst] -> the core vertex before dst, -9999: none) and component labels of the core.

    A small core without cycles has one path per pair: a walk of the tree from every vertex finds it. Otherwise
    ``scipy.sparse.csgraph.dijkstra`` from every vertex, in chunks of sources."""
    neighbours: list[list[int]] = [[] for _ in range(c)]
    for i, j, _ in edges:
        if i != j:
            neighbours[i].append(j)
            neighbours[j].append(i)
    component = np.full(c, -1, dtype=np.int64)
    label = 0
    for s in range(c):
        if component[s] < 0:
            component[s], todo = label, [s]
            while todo:
                at = todo.pop()
                for nb in neighbours[at]:
                    if component[nb] < 0:
                        component[nb] = label
                        todo.append(nb)
            label += 1
    distinct = {(min(i, j), max(i, j)) for i, j, _ in edges if i != j}
    predecessor = np.full((c, c), -9999, dtype=np.int32)
    if c <= _WALK_CORE and len(distinct) == c - label:  # a forest: every pair has one path
        for s in range(c):
            row, todo = predecessor[s], [s]
            done = {s}
            while todo:
                at = todo.pop()
                for nb in neighbours[at]:
                    if nb not in done:
                        done.add(nb)
                        row[nb] = at
                        todo.append(nb)
        return predecessor, component
    import scipy.sparse  # here: only a core with cycles needs it, and it costs ~0.3 s to import
    from scipy.sparse import csgraph

    rows = [i for i, _, _ in edges]
    cols = [j for _, j, _ in edges]
    weights = [d.mean_s + _TIE_BREAK_S for _, _, d in edges]
    r, k = np.array(rows + cols, dtype=np.int64), np.array(cols + rows, dtype=np.int64)
    adjacency = scipy.sparse.csr_matrix((np.array(weights + weights), (r, k)), shape=(c, c))
    step = max(1, _CHUNK_PAIRS // max(c, 1))
    for lo in range(0, c, step):
        sources = np.arange(lo, min(c, lo + step))
        _, pred = csgraph.dijkstra(adjacency, directed=False, indices=sources, return_predecessors=True)
        predecessor[sources] = pred
    return predecessor, component


_CHUNK_PAIRS = 1 << 18
"""Core source rows are routed in chunks of about this many (source, destination) pairs, to bound the temporaries."""


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
    """Kubernetes nodes (with labels), network elements and links; routes computed once, on first use.

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
    _adj: dict[str, dict[str, Dist]] = field(init=False, repr=False)
    _paths: dict[tuple[str, str], Path] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_adj", _adjacency(list(self.nodes), list(self.elements), self.links))
        object.__setattr__(self, "_paths", {})

    @cached_property
    def graph(self) -> nx.Graph:
        """The network as a NetworkX graph (vertex attributes ``kind``, ``labels``; edge ``latency``, ``mean_s``),
        built on first use: routing does not need it."""
        import networkx as nx  # here: it costs ~0.1 s to import, and runs never need it

        graph = nx.Graph()
        for name, labels in self.nodes.items():
            graph.add_node(name, kind=ElementKind.NODE, labels=dict(labels))
        for name, kind in self.elements.items():
            graph.add_node(name, kind=kind)
        for link in self.links:
            graph.add_edge(link.a, link.b, latency=link.latency, mean_s=link.latency.mean_s)
        return graph

    @property
    def vertices(self) -> tuple[str, ...]:
        """Every vertex: the nodes, then the network elements (and any vertex only a link names)."""
        return tuple(self._adj)

    def __contains__(self, vertex: object) -> bool:
        """Whether ``vertex`` is a vertex of the network (a node or an element)."""
        return vertex in self._adj

    @cached_property
    def _routes(self) -> _Routes:
        return _routes(self._adj, self.same_node)

    def connected(self, a: str, b: str) -> bool:
        """Whether any route joins vertices ``a`` and ``b``."""
        return self.component(a) == self.component(b)

    def component(self, vertex: str) -> int:
        """The label of the connected part of the network ``vertex`` is in."""
        return self._routes.components[self._routes.index[vertex]]

    def hops(self, src: str, dst: str) -> int:
        """Links crossed on the lowest-mean-latency path (0 on the same vertex)."""
        return self._routes.hops_between(src, dst)

    def hop_matrix(self, srcs: Sequence[str], dsts: Sequence[str]) -> np.ndarray:
        """Links crossed from each of ``srcs`` (rows) to each of ``dsts`` (columns), as an int16 matrix."""
        routes = self._routes
        return routes.hop_matrix(routes.rows(srcs), routes.rows(dsts))

    def delay_class(self, src: str, dst: str) -> int:
        """The delay class of the path from ``src`` to ``dst``: paths of one class have one delay distribution."""
        return self._routes.class_between(src, dst)

    def delay_classes_between(self, vertex: str, others: Sequence[str]) -> list[tuple[int, int]]:
        """Per vertex of ``others``: the delay classes of the paths from ``vertex`` to it and back."""
        routes = self._routes
        cols = routes.rows(others)
        row = np.full(len(cols), routes.index[vertex], dtype=np.int64)
        return list(zip(routes.classes(row, cols).tolist(), routes.classes(cols, row).tolist(), strict=True))

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
                import networkx as nx  # the exception NetworkX's path functions raise, as before

                raise nx.NetworkXNoPath(f"no path between {src!r} and {dst!r}")
            s, d = routes.index[src], routes.index[dst]
            rs, rd = int(routes.root[s]), int(routes.root[d])
            row, at = routes.predecessor[rs], rd
            backwards = [at]
            while at != rs:
                at = int(row[at])
                backwards.append(at)
            core = [int(routes.core[i]) for i in reversed(backwards)]
            ends = [s] if routes.pendant[s] else []
            ends += core
            ends += [d] if routes.pendant[d] else []
            vertices = tuple(routes.names[i] for i in ends)
            path = Path(vertices, Sum(tuple(self._adj[a][b] for a, b in itertools.pairwise(vertices))))
        self._paths[key] = path
        return path
