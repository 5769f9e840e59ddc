"""kube-proxy's CategorizeEndpoints and Cilium's backend selection, case by case (docs/semantics.md 3, 5.3)."""

from __future__ import annotations

import pytest

from sim.cluster import Endpoint, Node, Service, TrafficPolicy
from sim.routing import TopologyMode, categorize_endpoints, cilium_select_backends
from sim.routing.policy import topology_mode

CLUSTER, LOCAL = TrafficPolicy.CLUSTER, TrafficPolicy.LOCAL
ME = Node("node-a", {"topology.kubernetes.io/zone": "zone-a"})


def ep(
    addr: str,
    node: str | None = "node-b",
    *,
    ready: bool = True,
    serving: bool | None = None,
    terminating: bool = False,
    zones: set[str] | None = None,
    nodes: set[str] | None = None,
) -> Endpoint:
    return Endpoint(
        address=addr,
        ready=ready,
        serving=ready if serving is None else serving,
        terminating=terminating,
        node_name=node,
        zone_hints=frozenset(zones) if zones is not None else None,
        node_hints=frozenset(nodes) if nodes is not None else None,
    )


def svc(itp=CLUSTER, etp=CLUSTER, node_port=0) -> Service:
    return Service("s", {"app": "s"}, internal_traffic_policy=itp, external_traffic_policy=etp, node_port=node_port)


def addrs(eps):
    return None if eps is None else {e.address for e in eps}


def test_empty_endpoint_list_is_all_nil():
    c = categorize_endpoints(svc(), [], ME)
    assert (c.cluster, c.local, c.all_reachable, c.has_any) == (None, None, None, False)


def test_cluster_policy_uses_every_ready_endpoint():
    eps = [ep("10.0.0.1:80", "node-a"), ep("10.0.0.2:80"), ep("10.0.0.3:80", ready=False)]
    c = categorize_endpoints(svc(), eps, ME)
    assert addrs(c.cluster) == {"10.0.0.1:80", "10.0.0.2:80"}
    assert c.local is None
    assert c.all_reachable == c.cluster
    assert c.has_any


def test_itp_local_uses_local_ready_endpoints_only():
    eps = [ep("10.0.0.1:80", "node-a"), ep("10.0.0.2:80")]
    c = categorize_endpoints(svc(LOCAL), eps, ME)
    assert c.cluster is None  # ClusterIP-only iTP=Local never builds the cluster set
    assert addrs(c.local) == {"10.0.0.1:80"}
    assert c.all_reachable == c.local
    assert c.has_any


def test_itp_local_all_remote_has_endpoints_but_none_reachable():
    c = categorize_endpoints(svc(LOCAL), [ep("10.0.0.2:80"), ep("10.0.0.3:80")], ME)
    assert c.cluster is None
    assert not c.local  # nil: upstream accepts nil for "used but none"
    assert not c.all_reachable
    assert c.has_any  # so the proxier DROPs instead of REJECTing


def test_endpoint_without_node_name_is_never_local_for_kube_proxy():
    c = categorize_endpoints(svc(LOCAL), [ep("10.0.0.1:80", None)], ME)
    assert not c.local


def test_etp_local_on_cluster_ip_only_service_has_no_effect():
    c = categorize_endpoints(svc(etp=LOCAL), [ep("10.0.0.1:80", "node-a"), ep("10.0.0.2:80")], ME)
    assert c.local is None
    assert len(c.cluster) == 2


def test_etp_local_with_node_port_builds_both_sets():
    eps = [ep("10.0.0.1:80", "node-a"), ep("10.0.0.2:80")]
    c = categorize_endpoints(svc(etp=LOCAL, node_port=30080), eps, ME)
    assert addrs(c.cluster) == {"10.0.0.1:80", "10.0.0.2:80"}
    assert addrs(c.local) == {"10.0.0.1:80"}
    assert c.all_reachable == c.cluster  # no topology, local only ready: cluster is a superset


def test_etp_local_all_remote():
    c = categorize_endpoints(svc(etp=LOCAL, node_port=30080), [ep("10.0.0.2:80")], ME)
    assert addrs(c.cluster) == {"10.0.0.2:80"}
    assert not c.local
    assert c.all_reachable == c.cluster
    assert c.has_any


# --- (e) terminating fallbacks -------------------------------------------------------------------------------


def test_cluster_falls_back_to_serving_terminating_when_nothing_is_ready():
    eps = [
        ep("10.0.0.1:80", ready=False, serving=True, terminating=True),
        ep("10.0.0.2:80", ready=False, serving=False, terminating=True),
        ep("10.0.0.3:80", ready=False),
    ]
    c = categorize_endpoints(svc(), eps, ME)
    assert addrs(c.cluster) == {"10.0.0.1:80"}
    assert c.has_any


def test_cluster_ignores_terminating_while_any_endpoint_is_ready():
    eps = [ep("10.0.0.1:80", ready=False, serving=True, terminating=True), ep("10.0.0.2:80")]
    assert addrs(categorize_endpoints(svc(), eps, ME).cluster) == {"10.0.0.2:80"}


def test_nothing_usable_anywhere():
    c = categorize_endpoints(svc(), [ep("10.0.0.1:80", ready=False), ep("10.0.0.2:80", ready=False)], ME)
    assert c.cluster == ()
    assert not c.has_any


def test_local_falls_back_to_local_terminating_even_with_remote_ready():
    # upstream "iTP: Cluster, eTP: Local, with terminating endpoints"
    eps = [
        ep("10.0.0.1:80", "node-a", ready=False, serving=True, terminating=True),
        ep("10.0.0.2:80", "node-b"),
    ]
    c = categorize_endpoints(svc(etp=LOCAL, node_port=30080), eps, ME)
    assert addrs(c.cluster) == {"10.0.0.2:80"}
    assert addrs(c.local) == {"10.0.0.1:80"}
    assert addrs(c.all_reachable) == {"10.0.0.1:80", "10.0.0.2:80"}  # the union, since local is terminating


def test_itp_local_with_only_terminating_local():
    eps = [ep("10.0.0.1:80", "node-a", ready=False, serving=True, terminating=True), ep("10.0.0.2:80")]
    c = categorize_endpoints(svc(LOCAL), eps, ME)
    assert addrs(c.local) == {"10.0.0.1:80"}
    assert c.all_reachable == c.local


def test_itp_local_only_remote_terminating_still_counts_as_any():
    c = categorize_endpoints(svc(LOCAL), [ep("10.0.0.2:80", ready=False, serving=True, terminating=True)], ME)
    assert not c.local
    assert c.has_any


# --- (d) topology hints --------------------------------------------------------------------------------------


def test_zone_hints_filter_the_cluster_set():
    eps = [
        ep("10.0.0.1:80", zones={"zone-a"}),
        ep("10.0.0.2:80", zones={"zone-b"}),
        ep("10.0.0.3:80", zones={"zone-a"}),
    ]
    c = categorize_endpoints(svc(), eps, ME)
    assert topology_mode(eps, ME) == TopologyMode.PREFER_SAME_ZONE
    assert addrs(c.cluster) == {"10.0.0.1:80", "10.0.0.3:80"}


def test_one_unhinted_ready_endpoint_turns_filtering_off():
    eps = [ep("10.0.0.1:80", zones={"zone-a"}), ep("10.0.0.2:80")]
    assert topology_mode(eps, ME) == TopologyMode.NONE
    assert len(categorize_endpoints(svc(), eps, ME).cluster) == 2


def test_unready_endpoints_hints_do_not_matter():
    eps = [ep("10.0.0.1:80", zones={"zone-a"}), ep("10.0.0.2:80", zones={"zone-b"}), ep("10.0.0.3:80", ready=False)]
    assert addrs(categorize_endpoints(svc(), eps, ME).cluster) == {"10.0.0.1:80"}


def test_no_endpoint_hinted_for_my_zone_means_no_filtering():
    eps = [ep("10.0.0.1:80", zones={"zone-b"}), ep("10.0.0.2:80", zones={"zone-c"})]
    assert len(categorize_endpoints(svc(), eps, ME).cluster) == 2


def test_node_without_zone_label_matches_no_zone_hint():
    eps = [ep("10.0.0.1:80", zones={"zone-a"}), ep("10.0.0.2:80", zones={""})]
    assert topology_mode(eps, Node("bare")) == TopologyMode.PREFER_SAME_ZONE  # "" hint matches zone ""
    eps = [ep("10.0.0.1:80", zones={"zone-a"}), ep("10.0.0.2:80", zones={"zone-b"})]
    assert topology_mode(eps, Node("bare")) == TopologyMode.NONE


def test_multiple_zone_hints_per_endpoint():
    eps = [ep("10.0.0.1:80", zones={"zone-b", "zone-a"}), ep("10.0.0.2:80", zones={"zone-b"})]
    assert addrs(categorize_endpoints(svc(), eps, ME).cluster) == {"10.0.0.1:80"}


def test_node_hints_then_zone_hints_then_all():
    eps = [
        ep("10.0.0.1:80", "node-a", zones={"zone-a"}, nodes={"node-a"}),
        ep("10.0.0.2:80", "node-c", zones={"zone-a"}, nodes={"node-c"}),
        ep("10.0.0.3:80", "node-b", zones={"zone-b"}, nodes={"node-b"}),
    ]
    assert addrs(categorize_endpoints(svc(), eps, ME).cluster) == {"10.0.0.1:80"}
    # with the gate off, node hints are not read: same zone
    c = categorize_endpoints(svc(), eps, ME, prefer_same_node_gate=False)
    assert addrs(c.cluster) == {"10.0.0.1:80", "10.0.0.2:80"}
    # a node with no endpoint hinted for it degrades to its zone
    other = Node("node-x", {"topology.kubernetes.io/zone": "zone-b"})
    assert addrs(categorize_endpoints(svc(), eps, other).cluster) == {"10.0.0.3:80"}


def test_topology_never_applies_to_the_local_set_and_forces_the_union():
    # conflicting topology and localness: the local endpoint is hinted away from this zone
    eps = [ep("10.0.0.1:80", "node-a", zones={"zone-b"}), ep("10.0.0.2:80", "node-b", zones={"zone-a"})]
    c = categorize_endpoints(svc(etp=LOCAL, node_port=30080), eps, ME)
    assert addrs(c.cluster) == {"10.0.0.2:80"}
    assert addrs(c.local) == {"10.0.0.1:80"}
    assert addrs(c.all_reachable) == {"10.0.0.1:80", "10.0.0.2:80"}


def test_itp_local_ignores_hints():
    eps = [ep("10.0.0.1:80", "node-a", zones={"zone-b"}), ep("10.0.0.2:80", "node-b", zones={"zone-a"})]
    c = categorize_endpoints(svc(LOCAL), eps, ME)
    assert addrs(c.local) == {"10.0.0.1:80"}


def test_union_is_deduplicated_by_address():
    eps = [
        ep("10.0.0.1:80", "node-a", zones={"zone-a"}),
        ep("10.0.0.2:80", "node-b", zones={"zone-a"}),
        ep("10.0.0.3:80", "node-b", zones={"zone-b"}),
    ]
    c = categorize_endpoints(svc(etp=LOCAL, node_port=30080), eps, ME)
    assert [e.address for e in c.all_reachable] == ["10.0.0.1:80", "10.0.0.2:80"]


# --- Cilium --------------------------------------------------------------------------------------------------


def test_cilium_local_keeps_backends_with_no_node_name():
    eps = [ep("10.0.0.1:80", None), ep("10.0.0.2:80", "node-b"), ep("10.0.0.3:80", "node-a")]
    assert addrs(cilium_select_backends(svc(LOCAL), eps, ME)) == {"10.0.0.1:80", "10.0.0.3:80"}


def test_cilium_cluster_uses_active_then_terminating():
    eps = [ep("10.0.0.1:80", ready=False, serving=True, terminating=True), ep("10.0.0.2:80")]
    assert addrs(cilium_select_backends(svc(), eps, ME)) == {"10.0.0.2:80"}
    eps = [ep("10.0.0.1:80", ready=False, serving=True, terminating=True), ep("10.0.0.2:80", ready=False)]
    assert addrs(cilium_select_backends(svc(), eps, ME)) == {"10.0.0.1:80"}


def test_cilium_ignores_hints():
    eps = [ep("10.0.0.1:80", zones={"zone-b"}), ep("10.0.0.2:80", zones={"zone-b"})]
    assert len(cilium_select_backends(svc(), eps, ME)) == 2


@pytest.mark.parametrize("itp", [CLUSTER, LOCAL])
def test_cilium_empty(itp):
    assert cilium_select_backends(svc(itp), [], ME) == ()
