"""The EndpointSlice controller's hints: trafficDistribution and the Auto heuristic (docs/semantics.md section 4)."""

from __future__ import annotations

import pytest

from sim.cluster import Endpoint, Node, Service, TrafficDistribution
from sim.routing.hints import TOPOLOGY_MODE, allocations, auto_hints, cpu_ratios_by_zone, generate_hints

ZONE = "topology.kubernetes.io/zone"


def nodes(spec: dict[str, tuple[str, float]], **extra: dict[str, str]) -> dict[str, Node]:
    return {n: Node(n, {ZONE: z, **extra.get(n, {})}, cpu) for n, (z, cpu) in spec.items()}


def ep(i: int, node: str, zone: str | None, ready: bool = True) -> Endpoint:
    return Endpoint(f"10.0.0.{i}:80", ready=ready, serving=ready, node_name=node, zone=zone, pod=f"p{i}")


THREE = nodes({"a1": ("a", 4), "b1": ("b", 4), "c1": ("c", 4)})


def test_prefer_same_zone_hints_ready_endpoints_with_a_zone():
    svc = Service("s", {"x": "y"}, traffic_distribution=TrafficDistribution.PREFER_SAME_ZONE)
    out = generate_hints(svc, [ep(1, "a1", "a"), ep(2, "b1", "b", ready=False), ep(3, "x", None)], THREE).endpoints
    assert out[0].zone_hints == frozenset({"a"}) and out[0].node_hints is None
    assert out[1].zone_hints is None  # unready
    assert out[2].zone_hints is None  # no zone


def test_prefer_close_is_the_same_zone_alias():
    close = Service("s", {"x": "y"}, traffic_distribution=TrafficDistribution.PREFER_CLOSE)
    assert generate_hints(close, [ep(1, "a1", "a")], THREE).endpoints[0].zone_hints == frozenset({"a"})


def test_prefer_same_node_adds_node_and_zone_hints():
    svc = Service("s", {"x": "y"}, traffic_distribution=TrafficDistribution.PREFER_SAME_NODE)
    out = generate_hints(svc, [ep(1, "a1", "a")], THREE).endpoints[0]
    assert out.node_hints == frozenset({"a1"}) and out.zone_hints == frozenset({"a"})


def test_no_distribution_no_hints():
    out = generate_hints(Service("s", {"x": "y"}), [ep(1, "a1", "a")], THREE)
    assert out.endpoints[0].zone_hints is None and out.withheld


def test_cpu_ratios_ignore_control_plane_and_unready_nodes():
    ns = nodes(
        {"cp": ("a", 8), "a1": ("a", 2), "b1": ("b", 6)},
        cp={"node-role.kubernetes.io/control-plane": ""},
    )
    ns["down"] = Node("down", {ZONE: "c"}, 100, ready=False)
    assert cpu_ratios_by_zone(ns) == {"a": 0.25, "b": 0.75}


def test_cpu_ratios_need_zone_and_cpu_everywhere():
    assert "no zone label" in cpu_ratios_by_zone({"a1": Node("a1", {}, 4), "b1": Node("b1", {ZONE: "b"}, 4)})
    assert "no allocatable CPU" in cpu_ratios_by_zone(nodes({"a1": ("a", 0), "b1": ("b", 4)}))
    assert "fewer than two zones" in cpu_ratios_by_zone(nodes({"a1": ("a", 4), "a2": ("a", 4)}))


def test_allocations_by_hand():
    # 3 equal zones, 6 endpoints: desired 2, minimum ceil(2/1.2) = 2, maximum 2 + 6 - 6 = 2
    a = allocations({"a": 1 / 3, "b": 1 / 3, "c": 1 / 3}, 6)
    assert {z: (x.minimum, x.maximum) for z, x in a.items()} == {"a": (2, 2), "b": (2, 2), "c": (2, 2)}


@pytest.mark.parametrize(("n", "problem"), [(2, "insufficient number of endpoints"), (4, "overload threshold")])
def test_auto_withholds_hints(n, problem):
    # 4 endpoints over 3 equal zones: each needs ceil(1.33/1.2) = 2, 6 > 4: no allocation keeps overload < 20%
    eps = [ep(i, "a1", "a") for i in range(n)]
    out = auto_hints(eps, THREE)
    assert problem in out.withheld
    assert all(e.zone_hints is None for e in out.endpoints)


def test_auto_balanced_zones_hint_each_endpoint_for_its_own_zone():
    eps = [ep(1, "a1", "a"), ep(2, "b1", "b"), ep(3, "c1", "c")]
    out = auto_hints(eps, THREE)
    assert not out.withheld
    assert [e.zone_hints for e in out.endpoints] == [frozenset({z}) for z in "abc"]


def test_auto_moves_an_endpoint_to_a_zone_with_more_cpu():
    # two zones of equal CPU; zone a has one endpoint of four, zone b three: desired 2 each, minimum
    # ceil(2/1.2) = 2 each, so b gives its first endpoint to a
    ns = nodes({"a1": ("a", 4), "b1": ("b", 4)})
    eps = [ep(1, "a1", "a"), ep(2, "b1", "b"), ep(3, "b1", "b"), ep(4, "b1", "b")]
    out = auto_hints(eps, ns)
    assert not out.withheld
    hints = [next(iter(e.zone_hints)) for e in out.endpoints]
    assert hints.count("a") == 2 and hints.count("b") == 2
    assert hints == ["a", "a", "b", "b"]  # the zone-a endpoint keeps its zone; b's first endpoint moves


def test_auto_annotation_takes_precedence_over_traffic_distribution():
    svc = Service(
        "s",
        {"x": "y"},
        traffic_distribution=TrafficDistribution.PREFER_SAME_NODE,
        annotations={TOPOLOGY_MODE: "Auto"},
    )
    out = generate_hints(svc, [ep(1, "a1", "a")], THREE)
    assert "insufficient" in out.withheld  # Auto ran (and withheld), not PreferSameNode
    assert out.endpoints[0].node_hints is None
