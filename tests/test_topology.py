import numpy as np
import pytest

from sim.distributions import Constant, Exponential
from sim.topology import ElementKind, Link, Topology, _multisets


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
