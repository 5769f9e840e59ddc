import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import sim.topology as topology_module
from sim.distributions import Constant, Exponential, Sum
from sim.io import load_topology
from sim.topology import ElementKind, Link, Topology, _multisets
from tests.conftest import ROOT


def ring() -> Topology:
    # a - s1 - b costs 1 + 2 = 3 ms; a - s2 - b costs 0.5 + 0.5 + 0.5 via r = 1.5 ms: the lower path wins.
    return Topology(
        name="ring",
        nodes={"a": {}, "b": {}, "c": {}},
        elements={"s1": ElementKind.SWITCH, "s2": ElementKind.SWITCH, "r": ElementKind.ROUTER},
        links=[
            Link("a", "s1", Constant(0.001)),
            Link("s1", "b", Constant(0.002)),
            Link("a", "s2", Constant(0.0005)),
            Link("s2", "r", Constant(0.0005)),
            Link("r", "b", Exponential(0.0005)),
        ],
        same_node=Constant(0.00002),
    )


def test_lowest_latency_path_by_hand():
    path = ring().path("a", "b")
    assert path.vertices == ("a", "s2", "r", "b")
    assert path.hops == 3
    assert path.mean_s == pytest.approx(0.0015)


def test_path_back_is_symmetric_and_cached():
    topo = ring()
    assert topo.path("b", "a").vertices == ("b", "r", "s2", "a")
    assert topo.path("a", "b") is topo.path("a", "b")


def test_same_node_path_uses_its_own_latency():
    path = ring().path("a", "a")
    assert path.hops == 0
    assert path.mean_s == pytest.approx(0.00002)


def test_connectivity():
    topo = ring()
    assert topo.connected("a", "b")
    assert not topo.connected("a", "c")


def test_hop_counts_and_delay_classes_agree_with_the_paths():
    topo = ring()
    for a in ("a", "b", "s1", "s2", "r"):
        for b in ("a", "b", "s1", "s2", "r"):
            path = topo.path(a, b)
            assert topo.hops(a, b) == path.hops
            assert topo.class_delay(topo.delay_class(a, b)).mean_s == pytest.approx(path.mean_s)


def test_paths_over_the_same_links_kinds_share_a_delay_class():
    # two racks of two nodes under leaves joined by a spine: same-rack pairs are one class, cross-rack another
    fast, slow = Exponential(0.00002), Constant(0.0001)
    topo = Topology(
        name="racks",
        nodes={n: {} for n in ("n1", "n2", "n3", "n4")},
        elements={"l1": ElementKind.SWITCH, "l2": ElementKind.SWITCH, "sp": ElementKind.ROUTER},
        links=[
            *(Link(n, "l1", fast) for n in ("n1", "n2")),
            *(Link(n, "l2", fast) for n in ("n3", "n4")),
            Link("l1", "sp", slow),
            Link("l2", "sp", slow),
        ],
        same_node=Constant(0.00001),
    )
    assert topo.delay_class("n1", "n2") == topo.delay_class("n4", "n3") == topo.delay_class("n2", "n1")
    assert topo.delay_class("n1", "n3") == topo.delay_class("n4", "n2")
    assert len({topo.delay_class("n1", "n2"), topo.delay_class("n1", "n3"), topo.delay_class("n1", "n1")}) == 3
    cross = topo.class_delay(topo.delay_class("n1", "n3"))
    assert sorted(map(repr, cross.parts)) == sorted(map(repr, (fast, slow, slow, fast)))
    assert topo.class_delay(topo.delay_class("n2", "n2")) == Constant(0.00001)
    assert topo.delay_classes_between("n1", ["n2", "n3"]) == [
        (topo.delay_class("n1", "n2"), topo.delay_class("n2", "n1")),
        (topo.delay_class("n1", "n3"), topo.delay_class("n3", "n1")),
    ]


def test_multisets_group_rows_alike_with_integer_codes_or_row_sorting():
    rng = np.random.default_rng(5)
    counts = rng.integers(0, 3, size=(500, 4)).astype(np.int16)
    fast_keys, fast_inverse = _multisets(counts, 10)  # 10**4 fits: one integer per row
    slow_keys, slow_inverse = _multisets(counts, 2**40)  # does not: rows sorted as rows
    assert np.array_equal(fast_keys[fast_inverse.reshape(-1)], counts)
    assert np.array_equal(slow_keys[slow_inverse.reshape(-1)], counts)
    assert len(fast_keys) == len(slow_keys)


# --- routes from the structure, against a reference computed pair by pair -----------------------------------------


def reference(topo: Topology, chunk_pairs: int) -> dict:
    """What all-pairs route tables give, computed pair by pair with NetworkX's Dijkstra: per ordered vertex pair its
    hops, the multiset of its links' latencies, and its delay class numbered as those tables numbered them (rows in
    chunks of ``chunk_pairs // vertices``; the classes new in a chunk in the order of their link-kind counts, as an
    integer in base ``vertices`` with the last kind most significant)."""
    import networkx as nx

    graph = topo.graph
    names = list(graph.nodes)
    kinds: dict = {}
    for _, _, d in graph.edges(data="latency"):
        kinds.setdefault(d, len(kinds))
    nk, v = max(len(kinds), 1), len(names)
    weight = {frozenset((a, b)): d["mean_s"] + 1e-15 for a, b, d in graph.edges(data=True)}
    counts, hops = {}, {}
    for a in names:
        paths = nx.single_source_dijkstra_path(graph, a, weight=lambda x, y, _: weight[frozenset((x, y))])
        for b in names:
            key = [0] * nk
            path = paths.get(b, [b]) if a != b else [a]
            for x, y in itertools.pairwise(path):
                key[kinds[graph.edges[x, y]["latency"]]] += 1
            counts[a, b], hops[a, b] = tuple(key), len(path) - 1
    number: dict = {}
    step = max(1, chunk_pairs // v)
    for lo in range(0, v, step):
        new = {counts[a, b] for a in names[lo : lo + step] for b in names} - number.keys()
        for key in sorted(new, key=lambda k: k[::-1] if v**nk < 2**62 else k):
            number[key] = len(number)
    dists = list(kinds)
    delays = {
        n: Sum(tuple(d for k, c in enumerate(key) for d in [dists[k]] * c)) if any(key) else topo.same_node
        for key, n in number.items()
    }
    return {"names": names, "counts": counts, "hops": hops, "class": {p: number[c] for p, c in counts.items()},
            "delays": delays}  # fmt: skip


def assert_matches_reference(topo: Topology, chunk_pairs: int = 1 << 18) -> None:
    ref = reference(topo, chunk_pairs)
    names = ref["names"]
    assert list(topo.vertices) == names
    assert np.array_equal(topo.hop_matrix(names, names), [[ref["hops"][a, b] for b in names] for a in names])
    for a in names:
        assert [c for c, _ in topo.delay_classes_between(a, names)] == [ref["class"][a, b] for b in names]
        for b in names:
            assert topo.delay_class(a, b) == ref["class"][a, b] and topo.hops(a, b) == ref["hops"][a, b]
            if topo.connected(a, b) and a != b:
                assert sorted(map(repr, topo.path(a, b).delay.parts)) == sorted(
                    map(repr, ref["delays"][ref["class"][a, b]].parts)
                )
    for number, delay in ref["delays"].items():
        assert topo.class_delay(number) == delay
    groups = {}
    for a in names:
        groups.setdefault(topo.component(a), set()).add(a)
    import networkx as nx

    assert sorted(map(sorted, groups.values())) == sorted(map(sorted, nx.connected_components(topo.graph)))


@st.composite
def networks(draw) -> Topology:
    """Small networks of nodes (mostly on one link: pendants) and elements, with duplicate and self links, parts
    that are not connected, and latencies drawn from a few distributions of random means (no exact ties)."""
    n_nodes, n_elements = draw(st.integers(1, 8)), draw(st.integers(0, 5))
    nodes = [f"n{i}" for i in range(n_nodes)]
    elements = [f"e{i}" for i in range(n_elements)]
    vertices = nodes + elements
    means = draw(st.lists(st.floats(1e-5, 1e-3), min_size=1, max_size=4, unique=True))
    pool = [Constant(m) if i % 2 else Exponential(m) for i, m in enumerate(means)]
    pick = st.sampled_from(vertices)
    links = draw(st.lists(st.tuples(pick, pick, st.sampled_from(pool)), max_size=16))
    return Topology(
        "random",
        {n: {} for n in nodes},
        {e: ElementKind.SWITCH for e in elements},
        [Link(a, b, d) for a, b, d in links],
        Constant(1e-6),
    )


@given(networks(), st.sampled_from([1 << 18, 7]))
@settings(max_examples=120, deadline=None)
def test_routes_by_structure_match_pair_by_pair_routes(topo, chunk_pairs):
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(topology_module, "_CHUNK_PAIRS", chunk_pairs)
        assert_matches_reference(topo, chunk_pairs)


def test_shipped_topologies_and_a_tree_core_through_dijkstra_match_the_reference(monkeypatch):
    for name in ("kind", "multizone", "kind-external"):
        assert_matches_reference(load_topology(ROOT / "topologies" / f"{name}.toml"))
    assert_matches_reference(ring())
    monkeypatch.setattr(topology_module, "_WALK_CORE", 0)  # the tree cores through csgraph: the same tables
    for name in ("kind", "multizone"):
        assert_matches_reference(load_topology(ROOT / "topologies" / f"{name}.toml"))


def test_nodes_on_their_switches_leave_a_small_core_to_route():
    # 3 zones x 10 racks x 40 nodes: 1,200 nodes hang off 30 leaves; the core is the leaves, 3 spines and a router
    fast, mid, slow = Exponential(2e-5), Constant(5e-5), Constant(2.5e-4)
    links, nodes = [], {}
    for z in range(3):
        links.append(Link(f"spine-{z}", "core", slow))
        for r in range(10):
            links.append(Link(f"leaf-{z}-{r}", f"spine-{z}", mid))
            for k in range(40):
                nodes[f"node-{z}-{r}-{k}"] = {}
                links.append(Link(f"node-{z}-{r}-{k}", f"leaf-{z}-{r}", fast))
    elements = {e: ElementKind.SWITCH for link in links for e in (link.a, link.b) if e not in nodes}
    topo = Topology("racks", nodes, elements, links, Constant(1e-5))
    names = list(nodes)
    assert topo.delay_class(names[0], names[0]) == 0
    assert len({c for c, _ in topo.delay_classes_between(names[0], names)}) == 4  # node, rack, zone, across
    assert len(topo._routes.core) == 34 and topo._routes.predecessor.shape == (34, 34)
    assert topo.hops(names[0], names[-1]) == 6 and topo.hop_matrix(names[:2], names[:2]).tolist() == [[0, 2], [2, 0]]
    assert topo.path(names[0], names[-1]).vertices == (
        names[0],
        "leaf-0-0",
        "spine-0",
        "core",
        "spine-2",
        "leaf-2-9",
        names[-1],
    )
