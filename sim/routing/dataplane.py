"""What each dataplane does with a connection to a ClusterIP: which endpoint set it uses and how it fails.

The differences between kube-proxy's modes and Cilium live here as data (``DATAPLANES``), not as branches in
the engine.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sim.cluster import Endpoint, Node, Service, TrafficPolicy
from sim.outcomes import DropReason
from sim.routing.policy import Endpoints, categorize_endpoints, cilium_select_backends


@dataclass(frozen=True)
class Route:
    """The endpoints a connection from one node may reach, or why it cannot reach any."""

    endpoints: Endpoints
    drop: DropReason = DropReason.NONE


def kube_proxy_cluster_ip(service: Service, endpoints: Sequence[Endpoint], node: Node) -> Route:
    """iptables/nftables for pod -> ClusterIP: iTP picks the set; none anywhere REJECTs, none local DROPs."""
    cat = categorize_endpoints(service, endpoints, node)
    chosen = cat.local if service.internal_traffic_policy == TrafficPolicy.LOCAL else cat.cluster
    if not cat.has_any:
        return Route((), DropReason.NO_ENDPOINTS)
    if not chosen:
        return Route((), DropReason.NO_LOCAL_ENDPOINTS)
    return Route(chosen)


def cilium_cluster_ip(service: Service, endpoints: Sequence[Endpoint], node: Node) -> Route:
    """Cilium socket-LB for pod -> ClusterIP: an empty backend map fails ``connect()`` with EHOSTUNREACH."""
    backends = cilium_select_backends(service, endpoints, node)
    return Route(backends) if backends else Route((), DropReason.NO_BACKENDS)


@dataclass(frozen=True)
class Dataplane:
    """A Service proxy implementation: how it selects endpoints and which pickers it offers."""

    name: str
    route: Callable[[Service, Sequence[Endpoint], Node], Route]
    pickers: tuple[str, ...]
    default_picker: str


DATAPLANES: dict[str, Dataplane] = {
    "iptables": Dataplane("iptables", kube_proxy_cluster_ip, ("random",), "random"),
    "nftables": Dataplane("nftables", kube_proxy_cluster_ip, ("random",), "random"),
    "cilium": Dataplane("cilium", cilium_cluster_ip, ("random",), "random"),
}
"""Every dataplane by the name used in scenario files. ``iptables`` is the default: kube-proxy's default mode."""

DEFAULT_DATAPLANE = "iptables"
