"""What each dataplane does at the edges: which set it routes over, which picker, how it fails (doc (b), (c))."""

import pytest

from sim.cluster import Endpoint, Node, Service, TrafficPolicy
from sim.outcomes import DropReason
from sim.routing import DATAPLANES, DataplaneConfig, Source

CLUSTER, LOCAL = TrafficPolicy.CLUSTER, TrafficPolicy.LOCAL
ME = Node("node-a", {"topology.kubernetes.io/zone": "zone-a"})
LOCAL_EP = Endpoint("10.0.0.1:80", node_name="node-a", pod="p1")
REMOTE_EP = Endpoint("10.0.0.2:80", node_name="node-b", pod="p2")
DEAD_EP = Endpoint("10.0.0.9:80", ready=False, serving=False, node_name="node-b", pod="p9")
KUBE_PROXY = ["iptables", "nftables"]
ALL = sorted(DATAPLANES)


def svc(itp=CLUSTER, etp=CLUSTER, node_port=0) -> Service:
    return Service("s", {"a": "b"}, internal_traffic_policy=itp, external_traffic_policy=etp, node_port=node_port)


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


def test_ipvs_local_cluster_ip_only_has_no_real_servers():
    r = route("ipvs", svc(LOCAL), [REMOTE_EP])
    assert r.drop == DropReason.NO_REAL_SERVERS and r.drop.client_waits


def test_ipvs_local_falls_back_to_remote_when_externally_reachable():
    r = route("ipvs", svc(LOCAL, node_port=30080), [REMOTE_EP])
    assert r.endpoints == (REMOTE_EP,)  # kubernetes#97081: silently cross-node
    assert route("iptables", svc(LOCAL, node_port=30080), [REMOTE_EP]).drop == DropReason.NO_LOCAL_ENDPOINTS


def test_ipvs_default_scheduler_is_round_robin():
    assert route("ipvs", svc(), [LOCAL_EP]).picker == "round-robin"
    assert route("ipvs", svc(), [LOCAL_EP], picker="least-connections").picker == "least-connections"


@pytest.mark.parametrize("endpoints", [[REMOTE_EP], []])
def test_cilium_socket_lb_fails_at_once_with_no_backend(endpoints):
    r = route("cilium", svc(LOCAL), endpoints)
    assert r.drop == DropReason.NO_BACKENDS
    assert not r.drop.client_waits


def test_cilium_counts_a_backend_without_node_name_as_local():
    nameless = Endpoint("10.0.0.5:80", node_name=None, pod="p5")
    assert route("cilium", svc(LOCAL), [nameless, REMOTE_EP]).endpoints == (nameless,)
    assert route("iptables", svc(LOCAL), [nameless, REMOTE_EP]).drop == DropReason.NO_LOCAL_ENDPOINTS


def test_cilium_cluster_ip_is_random_even_in_maglev_mode():
    assert route("cilium", svc(), [LOCAL_EP], picker="maglev").picker == "random"
    assert route("cilium", svc(), [LOCAL_EP], picker="maglev", external_clusterip=True).picker == "maglev"
    assert route("cilium", svc(node_port=30080), [LOCAL_EP], Source.EXTERNAL, picker="maglev").picker == "maglev"


def test_cilium_ignores_hints_unless_service_topology_is_enabled():
    hinted = [
        Endpoint("10.0.0.1:80", node_name="node-b", zone_hints=frozenset({"zone-b"}), pod="p1"),
        Endpoint("10.0.0.2:80", node_name="node-c", zone_hints=frozenset({"zone-a"}), pod="p2"),
    ]
    assert len(route("cilium", svc(), hinted).endpoints) == 2
    assert [e.pod for e in route("cilium", svc(), hinted, enable_service_topology=True).endpoints] == ["p2"]


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


@pytest.mark.parametrize(
    ("dp", "reason"),
    [
        ("iptables", DropReason.NO_LOCAL_ENDPOINTS),
        ("nftables", DropReason.NO_LOCAL_ENDPOINTS),
        ("ipvs", DropReason.NO_LOCAL_ENDPOINTS),
        ("cilium", DropReason.NO_SERVICE_BACKEND),
    ],
)
def test_etp_local_external_with_no_local_endpoint_drops(dp, reason):
    r = route(dp, svc(etp=LOCAL, node_port=30080), [REMOTE_EP], Source.EXTERNAL)
    assert r.drop == reason and r.drop.client_waits


@pytest.mark.parametrize("dp", ALL)
def test_pod_traffic_to_the_external_address_is_short_circuited_to_cluster(dp):
    r = route(dp, svc(etp=LOCAL, node_port=30080), [REMOTE_EP], Source.POD_EXTERNAL)
    assert r.endpoints == (REMOTE_EP,)
