"""What each dataplane does at the edges: which set it routes over and how it fails."""

import pytest

from sim.cluster import Endpoint, Node, Service, TrafficPolicy
from sim.outcomes import DropReason
from sim.routing import DATAPLANES

ME = Node("node-a")
LOCAL_EP = Endpoint("10.0.0.1:80", node_name="node-a", pod="p1")
REMOTE_EP = Endpoint("10.0.0.2:80", node_name="node-b", pod="p2")
KUBE_PROXY = ["iptables", "nftables"]


def route(dataplane, policy, endpoints):
    return DATAPLANES[dataplane].route(Service("s", {"a": "b"}, internal_traffic_policy=policy), endpoints, ME)


@pytest.mark.parametrize("dp", [*KUBE_PROXY, "cilium"])
def test_cluster_routes_over_every_ready_endpoint(dp):
    r = route(dp, TrafficPolicy.CLUSTER, [LOCAL_EP, REMOTE_EP])
    assert r.endpoints == (LOCAL_EP, REMOTE_EP)
    assert r.drop == DropReason.NONE


@pytest.mark.parametrize("dp", [*KUBE_PROXY, "cilium"])
def test_local_routes_only_to_this_node(dp):
    assert route(dp, TrafficPolicy.LOCAL, [LOCAL_EP, REMOTE_EP]).endpoints == (LOCAL_EP,)


@pytest.mark.parametrize("dp", KUBE_PROXY)
def test_kube_proxy_drops_when_no_local_endpoint(dp):
    r = route(dp, TrafficPolicy.LOCAL, [REMOTE_EP])
    assert r.endpoints == ()
    assert r.drop == DropReason.NO_LOCAL_ENDPOINTS
    assert r.drop.client_waits


@pytest.mark.parametrize("dp", KUBE_PROXY)
@pytest.mark.parametrize("policy", list(TrafficPolicy))
def test_kube_proxy_rejects_when_no_endpoint_anywhere(dp, policy):
    r = route(dp, policy, [Endpoint("10.0.0.9:80", ready=False, serving=False, node_name="node-b")])
    assert r.drop == DropReason.NO_ENDPOINTS
    assert not r.drop.client_waits


@pytest.mark.parametrize("endpoints", [[REMOTE_EP], []])
def test_cilium_fails_at_once_with_no_backend(endpoints):
    r = route("cilium", TrafficPolicy.LOCAL, endpoints)
    assert r.drop == DropReason.NO_BACKENDS
    assert not r.drop.client_waits
