"""What each dataplane does at the edges: which set it routes over, which picker, how it fails (docs/semantics.md
sections 2, 4, 5 and 9)."""

from dataclasses import replace

import numpy as np
import pytest

from sim.cluster import Endpoint, Node, Service, TrafficDistribution, TrafficPolicy
from sim.outcomes import DropReason
from sim.routing import DATAPLANES, PICKERS, DataplaneConfig, Source, flow_key
from sim.routing.dataplane import picker_for

CLUSTER, LOCAL = TrafficPolicy.CLUSTER, TrafficPolicy.LOCAL
ME = Node("node-a", {"topology.kubernetes.io/zone": "zone-a"})
LOCAL_EP = Endpoint("10.0.0.1:80", node_name="node-a", pod="p1")
REMOTE_EP = Endpoint("10.0.0.2:80", node_name="node-b", pod="p2")
DEAD_EP = Endpoint("10.0.0.9:80", ready=False, serving=False, node_name="node-b", pod="p9")
KUBE_PROXY = ["iptables", "nftables"]
ALL = sorted(DATAPLANES)


def svc(itp=CLUSTER, etp=CLUSTER, node_port=0, **fields) -> Service:
    return Service(
        "s", {"a": "b"}, internal_traffic_policy=itp, external_traffic_policy=etp, node_port=node_port, **fields
    )


def route(dp, service, endpoints, source=Source.POD, **options):
    return DATAPLANES[dp].route(service, endpoints, ME, source, DataplaneConfig(name=dp, **options))


@pytest.mark.parametrize("dp", ALL)
def test_cluster_routes_over_every_ready_endpoint(dp):
    r = route(dp, svc(), [LOCAL_EP, REMOTE_EP, DEAD_EP])
    assert r.endpoints == (LOCAL_EP, REMOTE_EP)
    assert r.drop == DropReason.NONE
    assert r.source_preserved


@pytest.mark.parametrize("dp", ALL)
def test_local_routes_only_to_this_node(dp):
    assert route(dp, svc(LOCAL), [LOCAL_EP, REMOTE_EP]).endpoints == (LOCAL_EP,)


@pytest.mark.parametrize("dp", KUBE_PROXY)
def test_kube_proxy_drops_when_no_local_endpoint(dp):
    r = route(dp, svc(LOCAL), [REMOTE_EP])
    assert (r.endpoints, r.drop) == ((), DropReason.NO_LOCAL_ENDPOINTS)
    assert r.drop.client_waits


@pytest.mark.parametrize("dp", KUBE_PROXY)
@pytest.mark.parametrize("itp", list(TrafficPolicy))
def test_kube_proxy_rejects_when_no_endpoint_anywhere(dp, itp):
    r = route(dp, svc(itp), [DEAD_EP])
    assert r.drop == DropReason.NO_ENDPOINTS
    assert not r.drop.client_waits


@pytest.mark.parametrize("endpoints", [[REMOTE_EP], [DEAD_EP], []])
def test_ipvs_virtual_server_without_real_servers_refuses_at_once(endpoints):
    r = route("ipvs", svc(LOCAL), endpoints)  # ip_vs_leave: ICMP port unreachable
    assert r.drop == DropReason.NO_REAL_SERVERS and not r.drop.client_waits


def test_ipvs_local_falls_back_to_remote_when_externally_reachable():
    r = route("ipvs", svc(LOCAL, node_port=30080), [REMOTE_EP])
    assert r.endpoints == (REMOTE_EP,)  # kubernetes#97081: silently cross-node
    assert route("iptables", svc(LOCAL, node_port=30080), [REMOTE_EP]).drop == DropReason.NO_LOCAL_ENDPOINTS


def test_ipvs_default_scheduler_is_round_robin():
    assert route("ipvs", svc(), [LOCAL_EP]).picker.name == "round-robin"
    assert route("ipvs", svc(), [LOCAL_EP], picker="least-connections").picker.name == "least-connections"


@pytest.mark.parametrize("endpoints", [[REMOTE_EP], []])
def test_cilium_socket_lb_fails_at_once_with_no_backend(endpoints):
    r = route("cilium", svc(LOCAL), endpoints)
    assert r.drop == DropReason.NO_BACKENDS
    assert not r.drop.client_waits


def test_cilium_counts_a_backend_without_node_name_as_local():
    nameless = Endpoint("10.0.0.5:80", node_name=None, pod="p5")
    assert route("cilium", svc(LOCAL), [nameless, REMOTE_EP]).endpoints == (nameless,)
    assert route("iptables", svc(LOCAL), [nameless, REMOTE_EP]).drop == DropReason.NO_LOCAL_ENDPOINTS


@pytest.mark.parametrize("source", [Source.POD, Source.POD_EXTERNAL])
def test_cilium_socket_lb_is_random_whatever_the_algorithm(source):
    for options in ({}, {"external_clusterip": True}):
        assert (
            route("cilium", svc(node_port=30080), [LOCAL_EP], source, picker="maglev", **options).picker.name
            == "random"
        )
    assert route("cilium", svc(node_port=30080), [LOCAL_EP], Source.EXTERNAL, picker="maglev").picker.name == "maglev"


def test_cilium_tc_path_for_pods_uses_the_lut_where_the_frontend_has_one():
    tc = {"picker": "maglev", "socket_lb_host_namespace_only": True}
    assert route("cilium", svc(), [LOCAL_EP], **tc).picker.name == "random"
    assert route("cilium", svc(), [LOCAL_EP], external_clusterip=True, **tc).picker.name == "maglev"
    assert route("cilium", svc(node_port=30080), [LOCAL_EP], Source.POD_EXTERNAL, **tc).picker.name == "maglev"


@pytest.mark.parametrize(
    ("response", "reason"), [("reject", DropReason.NO_BACKEND_REJECTED), ("drop", DropReason.NO_SERVICE_BACKEND)]
)
def test_cilium_tc_path_without_backends_follows_service_no_backend_response(response, reason):
    r = route(
        "cilium", svc(LOCAL), [REMOTE_EP], socket_lb_host_namespace_only=True, service_no_backend_response=response
    )
    assert r.drop == reason and r.drop.client_waits == (response == "drop")


HINTED = [
    Endpoint("10.0.0.1:80", node_name="node-b", zone="zone-b", zone_hints=frozenset({"zone-b"}), pod="p1"),
    Endpoint("10.0.0.2:80", node_name="node-c", zone="zone-c", zone_hints=frozenset({"zone-a"}), pod="p2"),
]


def test_cilium_ignores_hints_unless_service_topology_is_enabled():
    close = svc(traffic_distribution=TrafficDistribution.PREFER_CLOSE)
    assert len(route("cilium", close, HINTED).endpoints) == 2
    assert [e.pod for e in route("cilium", close, HINTED, enable_service_topology=True).endpoints] == ["p2"]


@pytest.mark.parametrize("td", [TrafficDistribution.PREFER_SAME_ZONE, TrafficDistribution.PREFER_SAME_NODE, None])
def test_cilium_1_18_honours_only_prefer_close_and_the_annotation(td):
    old = {"enable_service_topology": True, "cilium_prefer_same": False}
    assert len(route("cilium", svc(traffic_distribution=td), HINTED, **old).endpoints) == 2
    auto = svc(annotations={"service.kubernetes.io/topology-mode": "Auto"})
    assert len(route("cilium", auto, HINTED, **old).endpoints) == 1


def test_cilium_1_20_takes_prefer_same_zone_as_prefer_close():
    """cilium/cilium#44771: PreferSameZone is PreferClose's alias (PreferSameNode goes by node name instead)."""
    same_zone = svc(traffic_distribution=TrafficDistribution.PREFER_SAME_ZONE)
    assert [e.pod for e in route("cilium", same_zone, HINTED, enable_service_topology=True).endpoints] == ["p2"]
    no_td = svc(traffic_distribution=None)
    assert len(route("cilium", no_td, HINTED, enable_service_topology=True).endpoints) == 2


def test_cilium_zone_without_hinted_backend_falls_back_to_all_unless_legacy():
    elsewhere = [replace(ep, zone_hints=frozenset({"zone-b"})) for ep in HINTED]
    close = svc(traffic_distribution=TrafficDistribution.PREFER_CLOSE)
    assert len(route("cilium", close, elsewhere, enable_service_topology=True).endpoints) == 2
    legacy = route("cilium", close, elsewhere, enable_service_topology=True, cilium_topology_safeguards=False)
    assert legacy.drop == DropReason.NO_BACKENDS


# --- (c) external traffic --------------------------------------------------------------------------------------


@pytest.mark.parametrize("dp", ALL)
def test_etp_cluster_external_may_leave_the_node_and_loses_the_source(dp):
    r = route(dp, svc(node_port=30080), [LOCAL_EP, REMOTE_EP], Source.EXTERNAL)
    assert r.endpoints == (LOCAL_EP, REMOTE_EP)
    assert not r.source_preserved


@pytest.mark.parametrize("dp", ALL)
def test_etp_local_external_stays_and_keeps_the_source(dp):
    r = route(dp, svc(etp=LOCAL, node_port=30080), [LOCAL_EP, REMOTE_EP], Source.EXTERNAL)
    assert r.endpoints == (LOCAL_EP,)
    assert r.source_preserved


@pytest.mark.parametrize("dp", ["iptables", "nftables", "ipvs"])
def test_etp_local_external_with_no_local_endpoint_drops(dp):
    r = route(dp, svc(etp=LOCAL, node_port=30080), [REMOTE_EP], Source.EXTERNAL)
    assert r.drop == DropReason.NO_LOCAL_ENDPOINTS and r.drop.client_waits


def test_cilium_etp_local_external_with_no_local_backend_is_rejected_by_default():
    r = route("cilium", svc(etp=LOCAL, node_port=30080), [REMOTE_EP], Source.EXTERNAL)
    assert r.drop == DropReason.NO_BACKEND_REJECTED and not r.drop.client_waits


@pytest.mark.parametrize("dp", ["iptables", "nftables", "cilium"])
def test_pod_traffic_to_the_external_address_is_short_circuited_to_cluster(dp):
    r = route(dp, svc(etp=LOCAL, node_port=30080), [REMOTE_EP], Source.POD_EXTERNAL)
    assert r.endpoints == (REMOTE_EP,) and r.source_preserved


@pytest.mark.parametrize("dp", ["iptables", "nftables"])
def test_without_a_local_detector_pods_get_the_local_chain(dp):
    r = route(dp, svc(etp=LOCAL, node_port=30080), [REMOTE_EP], Source.POD_EXTERNAL, local_traffic_detector="none")
    assert r.drop == DropReason.NO_LOCAL_ENDPOINTS
    both = route(
        dp, svc(etp=LOCAL, node_port=30080), [LOCAL_EP, REMOTE_EP], Source.POD_EXTERNAL, local_traffic_detector="none"
    )
    assert both.endpoints == (LOCAL_EP,)


@pytest.mark.parametrize(("mode", "local"), [("ClusterCIDR", True), ("NodeCIDR", False), ("none", False)])
def test_detector_decides_whether_a_pod_from_another_node_is_local(mode, local):
    r = route(
        "iptables",
        svc(etp=LOCAL, node_port=30080),
        [LOCAL_EP, REMOTE_EP],
        Source.POD_NODE_PORT,
        local_traffic_detector=mode,
    )
    assert r.endpoints == ((LOCAL_EP, REMOTE_EP) if local else (LOCAL_EP,))


def test_ipvs_pod_to_lb_with_etp_local_gets_the_local_real_servers():
    r = route("ipvs", svc(etp=LOCAL, node_port=30080), [LOCAL_EP, REMOTE_EP], Source.POD_EXTERNAL)
    assert r.endpoints == (LOCAL_EP,) and r.source_preserved
    fallback = route("ipvs", svc(etp=LOCAL, node_port=30080), [REMOTE_EP], Source.POD_EXTERNAL)
    assert fallback.endpoints == (REMOTE_EP,)  # syncEndpoint: no local endpoint, the cluster ones


@pytest.mark.parametrize("dp", ["iptables", "nftables", "ipvs"])
@pytest.mark.parametrize("source", [Source.POD_EXTERNAL, Source.POD_NODE_PORT])
def test_pods_calling_external_addresses_with_etp_cluster_are_masqueraded(dp, source):
    r = route(dp, svc(node_port=30080), [LOCAL_EP, REMOTE_EP], source)
    assert r.endpoints == (LOCAL_EP, REMOTE_EP) and not r.source_preserved


def test_only_iptables_limits_the_affinity_lists():
    assert route("iptables", svc(), [LOCAL_EP]).affinity_limit == 100
    assert route("iptables", svc(), [LOCAL_EP], recent_list_size=0).affinity_limit == 0
    assert route("nftables", svc(), [LOCAL_EP]).affinity_limit == 0


def test_ipvs_expires_connections_to_removed_real_servers_only_without_graceful_termination():
    assert not route("ipvs", svc(), [LOCAL_EP]).expire_removed
    assert route("ipvs", svc(), [LOCAL_EP], ipvs_graceful_termination=False).expire_removed


# --- a picker's vector form (the fast path's) against its chooser (the DES's) ------------------------------------


def _endpoints(n: int) -> list[Endpoint]:
    return [Endpoint(f"10.244.{i % 3}.{i + 2}:8080", node_name="kind-worker", pod=f"web-{i}") for i in range(n)]


@pytest.mark.parametrize("name", sorted(PICKERS))
def test_a_pickers_vector_form_picks_what_its_chooser_picks(name):
    """Where no draw decides (rotation, hashes of the flow) ``picks`` is the chooser's very sequence; uniform
    random picks stay in range; pickers that read live load have no vector form (None)."""
    picker = picker_for(name, DataplaneConfig(maglev_table_size=1021))
    eps = _endpoints(5)
    flows = np.array([flow_key(f"10.0.{i % 7}.9", 1024 + 3 * i) for i in range(400)], dtype=np.uint64)
    picked = picker.picks(eps, len(flows), lambda: np.random.default_rng(1), lambda: flows)
    if picker.needs_load:
        assert picked is None
        return
    assert picked is not None and len(picked) == len(flows)
    assert picked.min() >= 0 and picked.max() < len(eps)
    if name != "random":
        choose = picker.chooser(eps, np.random.default_rng(1), [])
        assert picked.tolist() == [choose(f) for f in flows.tolist()]
    else:
        assert len(set(picked.tolist())) == len(eps)
