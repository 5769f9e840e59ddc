import pytest

from sim.distributions import Constant, Exponential
from sim.topology import ElementKind, Link, Topology


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
