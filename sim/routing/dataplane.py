"""What each dataplane does with a new connection: which endpoint set it uses, which picker, and how it fails.

The differences between kube-proxy's iptables, nftables and IPVS modes and Cilium live here, as data and small
pure functions (semantics doc (b), (c), (f) and the Cilium section), not as branches in the engine.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from sim.cluster import Endpoint, Node, Service, TrafficPolicy
from sim.outcomes import DropReason
from sim.routing.policy import Endpoints, categorize_endpoints, cilium_select_backends


class Source(StrEnum):
    """Where a connection comes from and what address it targets."""

    POD = "pod"
    """A pod calling the ClusterIP: internalTrafficPolicy applies."""
    POD_EXTERNAL = "pod-external"
    """A pod calling the Service's NodePort / LoadBalancer IP / externalIP: short-circuited to the cluster set."""
    EXTERNAL = "external"
    """A client outside the cluster arriving at a node through the NodePort or a load balancer: eTP applies."""


@dataclass(frozen=True)
class DataplaneConfig:
    """A scenario's proxy settings. ``picker`` empty means the dataplane's default.

    ``enable_service_topology`` and ``external_clusterip`` are Cilium's ``--enable-service-topology`` and
    ``--bpf-lb-external-clusterip``; ``prefer_same_node_gate`` is kube-proxy's ``PreferSameTrafficDistribution``.
    """

    name: str = "iptables"
    picker: str = ""
    maglev_table_size: int = 16381
    enable_service_topology: bool = False
    external_clusterip: bool = False
    prefer_same_node_gate: bool = True


@dataclass(frozen=True)
class Route:
    """The endpoints a new connection may reach from one node, the picker that chooses among them, whether the
    backend sees the client's own address, or why the connection cannot be made."""

    endpoints: Endpoints
    picker: str = ""
    source_preserved: bool = True
    drop: DropReason = DropReason.NONE


RouteFn = Callable[[Service, Sequence[Endpoint], Node, Source, DataplaneConfig], Route]


def _picker(cfg: DataplaneConfig, default: str) -> str:
    return cfg.picker or default


def kube_proxy_route(
    service: Service, endpoints: Sequence[Endpoint], node: Node, source: Source, cfg: DataplaneConfig
) -> Route:
    """iptables / nftables: iTP or eTP picks the set; none anywhere REJECTs, none local DROPs."""
    cat = categorize_endpoints(service, endpoints, node, prefer_same_node_gate=cfg.prefer_same_node_gate)
    if source == Source.EXTERNAL:
        local = service.external_traffic_policy == TrafficPolicy.LOCAL
        chosen = cat.local if local else cat.cluster
        preserved = local  # eTP=Cluster masquerades in KUBE-EXT-*; eTP=Local keeps the client address
    else:
        local = source == Source.POD and service.internal_traffic_policy == TrafficPolicy.LOCAL
        chosen = cat.local if local else cat.cluster
        preserved = True
    picker = _picker(cfg, "random")
    if not cat.has_any:
        return Route((), picker, preserved, DropReason.NO_ENDPOINTS)
    if not chosen:
        return Route((), picker, preserved, DropReason.NO_LOCAL_ENDPOINTS)
    return Route(chosen, picker, preserved)


def ipvs_route(
    service: Service, endpoints: Sequence[Endpoint], node: Node, source: Source, cfg: DataplaneConfig
) -> Route:
    """IPVS: like iptables for eTP, but a ClusterIP with iTP=Local and no local endpoint falls back to the cluster
    set when the Service is externally reachable (kubernetes#97081), and a virtual server with no real servers
    delivers nothing."""
    cat = categorize_endpoints(service, endpoints, node, prefer_same_node_gate=cfg.prefer_same_node_gate)
    picker = _picker(cfg, "round-robin")
    if source == Source.EXTERNAL:
        local = service.external_traffic_policy == TrafficPolicy.LOCAL
        chosen = cat.local if local else cat.cluster
        preserved = local
        if not cat.has_any:
            return Route((), picker, preserved, DropReason.NO_REAL_SERVERS)
        if not chosen:
            return Route((), picker, preserved, DropReason.NO_LOCAL_ENDPOINTS)
        return Route(chosen, picker, preserved)
    if source == Source.POD and service.internal_traffic_policy == TrafficPolicy.LOCAL:
        chosen = cat.local or cat.cluster  # "Allow access from local PODs even if no local endpoints exist"
    else:
        chosen = cat.cluster
    if not chosen:
        return Route((), picker, True, DropReason.NO_REAL_SERVERS)
    return Route(chosen, picker, True)


def cilium_route(
    service: Service, endpoints: Sequence[Endpoint], node: Node, source: Source, cfg: DataplaneConfig
) -> Route:
    """Cilium: socket-LB for pods (EHOSTUNREACH at once when empty; random unless ``external_clusterip``), the tc
    path for external traffic (DROP_NO_SERVICE when empty; ``random`` or ``maglev``)."""
    if source == Source.EXTERNAL:
        local = service.external_traffic_policy == TrafficPolicy.LOCAL
        backends = cilium_select_backends(
            service, endpoints, node, only_local=local, service_topology=cfg.enable_service_topology
        )
        picker = _picker(cfg, "random")
        if not backends:
            return Route((), picker, local, DropReason.NO_SERVICE_BACKEND)
        return Route(backends, picker, local)
    # Pods: socket-LB at connect(). A ClusterIP frontend gets a Maglev table only with --bpf-lb-external-clusterip.
    local = service.internal_traffic_policy == TrafficPolicy.LOCAL
    backends = cilium_select_backends(
        service, endpoints, node, only_local=local, service_topology=cfg.enable_service_topology
    )
    configured = _picker(cfg, "random")
    picker = configured if (source == Source.POD_EXTERNAL or cfg.external_clusterip) else "random"
    if not backends:
        return Route((), picker, True, DropReason.NO_BACKENDS)
    return Route(backends, picker, True)


@dataclass(frozen=True)
class Dataplane:
    """A Service proxy implementation: how it routes and which pickers it offers natively (first: default)."""

    name: str
    route: RouteFn
    pickers: tuple[str, ...]


DATAPLANES: dict[str, Dataplane] = {
    "iptables": Dataplane("iptables", kube_proxy_route, ("random",)),
    "nftables": Dataplane("nftables", kube_proxy_route, ("random",)),
    "ipvs": Dataplane("ipvs", ipvs_route, ("round-robin", "least-connections", "source-hash", "maglev")),
    "cilium": Dataplane("cilium", cilium_route, ("random", "maglev")),
}
"""Every dataplane by the name used in scenario files. ``iptables`` is the default: kube-proxy's default mode."""

DEFAULT_DATAPLANE = "iptables"
