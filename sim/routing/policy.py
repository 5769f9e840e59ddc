"""Which endpoints a connection may use: kube-proxy's CategorizeEndpoints and Cilium's backend selection, pure.

kube-proxy: ``pkg/proxy/topology.go`` (``CategorizeEndpoints``, ``topologyModeFromHints``, ``availableForTopology``);
Cilium: ``pkg/loadbalancer/writer/writer.go`` (``DefaultSelectBackends``) and ``pkg/loadbalancer/reflectors/
conversions.go`` (``isTopologyAware``). ``docs/semantics.md`` sections 1, 3 and 9 state the rules.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from sim.cluster import Endpoint, Node, Service, TrafficDistribution, TrafficPolicy

Endpoints = tuple[Endpoint, ...]


class TopologyMode(StrEnum):
    """How kube-proxy filters the cluster set by hints on one node."""

    NONE = ""
    PREFER_SAME_ZONE = "PreferSameZone"
    PREFER_SAME_NODE = "PreferSameNode"


@dataclass(frozen=True)
class Categorized:
    """kube-proxy's four results; ``None`` means the Service never uses that set, ``()`` used but empty."""

    cluster: Endpoints | None
    local: Endpoints | None
    all_reachable: Endpoints | None
    has_any: bool


def topology_mode(endpoints: Sequence[Endpoint], node: Node, *, prefer_same_node_gate: bool = True) -> TopologyMode:
    """``topologyModeFromHints``: node hints, then zone hints, each only if every ready endpoint is hinted."""
    ready = [ep for ep in endpoints if ep.ready]
    if not ready:
        return TopologyMode.NONE
    node_hinted = prefer_same_node_gate and all(ep.node_hints for ep in ready)
    if node_hinted and any(node.name in ep.node_hints for ep in ready if ep.node_hints):
        return TopologyMode.PREFER_SAME_NODE
    if all(ep.zone_hints for ep in ready) and any(node.zone in ep.zone_hints for ep in ready if ep.zone_hints):
        return TopologyMode.PREFER_SAME_ZONE
    return TopologyMode.NONE


def available_for_topology(ep: Endpoint, mode: TopologyMode, node: Node) -> bool:
    """``availableForTopology``: whether ``ep`` passes the hint filter of ``mode`` on ``node``."""
    if mode == TopologyMode.PREFER_SAME_NODE:
        return bool(ep.node_hints) and node.name in ep.node_hints  # type: ignore[operator]
    if mode == TopologyMode.PREFER_SAME_ZONE:
        return bool(ep.zone_hints) and node.zone in ep.zone_hints  # type: ignore[operator]
    return True


def kube_proxy_endpoints(endpoints: Sequence[Endpoint]) -> Sequence[Endpoint]:
    """The endpoints kube-proxy reads: not those only Cilium makes backends of (``Endpoint.cilium_only``)."""
    if not any(ep.cilium_only for ep in endpoints):
        return endpoints
    return tuple(ep for ep in endpoints if not ep.cilium_only)


def _is_local(ep: Endpoint, node: Node) -> bool:
    """kube-proxy: local iff the endpoint names this node; an endpoint with no nodeName is never local."""
    return ep.node_name is not None and ep.node_name == node.name


def categorize_endpoints(
    service: Service, endpoints: Sequence[Endpoint], node: Node, *, prefer_same_node_gate: bool = True
) -> Categorized:
    """kube-proxy's ``CategorizeEndpoints`` (``pkg/proxy/topology.go``) for one Service on one node, over the
    endpoints kube-proxy reads (``kube_proxy_endpoints``)."""
    endpoints = kube_proxy_endpoints(endpoints)
    if not endpoints:
        return Categorized(None, None, None, False)
    has_any = False
    cluster: Endpoints | None = None
    topology_filtered = False
    if service.uses_cluster_endpoints:
        mode = topology_mode(endpoints, node, prefer_same_node_gate=prefer_same_node_gate)
        topology_filtered = mode != TopologyMode.NONE
        cluster = tuple(ep for ep in endpoints if ep.ready and available_for_topology(ep, mode, node))
        if not cluster:
            cluster = tuple(ep for ep in endpoints if ep.serving and ep.terminating)
        has_any = bool(cluster)
    if not service.uses_local_endpoints:
        return Categorized(cluster, None, cluster, has_any)

    local: Endpoints | None = None
    has_local_ready = has_local_serving_terminating = False
    for ep in endpoints:
        if ep.ready or (ep.serving and ep.terminating):
            has_any = True
        if _is_local(ep, node):
            has_local_ready |= ep.ready
            has_local_serving_terminating |= ep.serving and ep.terminating
    if has_local_ready:
        local = tuple(ep for ep in endpoints if _is_local(ep, node) and ep.ready)
    elif has_local_serving_terminating:
        local = tuple(ep for ep in endpoints if _is_local(ep, node) and ep.serving and ep.terminating)

    if not service.uses_cluster_endpoints:
        return Categorized(None, local, local, has_any)
    assert cluster is not None
    local_uses_terminating = not has_local_ready and has_local_serving_terminating
    if not topology_filtered and not local_uses_terminating:
        return Categorized(cluster, local, cluster, has_any)
    seen = {ep.address for ep in cluster}
    union = cluster + tuple(ep for ep in (local or ()) if ep.address not in seen)
    return Categorized(cluster, local, union, has_any)


TOPOLOGY_MODE_ANNOTATIONS = ("service.kubernetes.io/topology-aware-hints", "service.kubernetes.io/topology-mode")
"""The deprecated key first: it takes precedence (Cilium ``getAnnotationTopologyAwareHints``)."""


def cilium_topology_aware(service: Service, *, prefer_same: bool = True) -> bool:
    """Whether Cilium's ``convertService`` marks the Service ``TrafficDistributionPreferClose``
    (``pkg/loadbalancer/reflectors/conversions.go``): iTP is not Local and ``isTopologyAware``, i.e. a topology
    annotation whose value is not ``""``/``disabled``/``Disabled``, or ``trafficDistribution: PreferClose``, or
    (Cilium 1.20, ``prefer_same``: cilium/cilium#44771, "implement PreferSameZone alias") ``PreferSameZone``.
    Cilium 1.18-1.19 ignore PreferSameZone's hints."""
    if service.internal_traffic_policy == TrafficPolicy.LOCAL:
        return False
    value = next((service.annotations[k] for k in TOPOLOGY_MODE_ANNOTATIONS if k in service.annotations), "")
    zone_modes = {TrafficDistribution.PREFER_CLOSE}
    if prefer_same:
        zone_modes.add(TrafficDistribution.PREFER_SAME_ZONE)
    return value not in ("", "disabled", "Disabled") or service.traffic_distribution in zone_modes


def cilium_port_matches(frontend_port: str, backend_port: str) -> bool:
    """Cilium's ``matchesFrontend`` (``pkg/loadbalancer/writer/writer.go``) on port names: a backend port serves a
    frontend unless both are named and the names differ (``convertEndpoints`` drops the unnamed name, and a backend
    without port names matches every frontend; a frontend without a name takes every backend)."""
    return not frontend_port or not backend_port or frontend_port == backend_port


def _cilium_zone_hints(ep: Endpoint) -> frozenset[str] | None:
    """The hints Cilium keeps: ``convertEndpoints`` (``reflectors/conversions.go``) sets ``BackendParams.Zone``, and
    with it ``ForZones``, only when the endpoint names a zone; an endpoint without one has no hints."""
    return ep.zone_hints if ep.zone else None


def cilium_select_backends(
    service: Service,
    endpoints: Sequence[Endpoint],
    node: Node,
    *,
    only_local: bool | None = None,
    service_topology: bool = False,
    safeguards: bool = True,
    prefer_same: bool = True,
) -> Endpoints:
    """Cilium's ``Writer.DefaultSelectBackends`` (``pkg/loadbalancer/writer/writer.go``): the backends written to
    this node's BPF map for one frontend.

    ``only_local`` defaults to iTP=Local (a ClusterIP frontend); an External scope passes eTP=Local. A backend
    with no node name counts as local, unlike kube-proxy. With ``service_topology`` (``--enable-service-topology``,
    off by default), on top of ``only_local``:

    - ``trafficDistribution: PreferSameNode`` (Cilium 1.20, ``prefer_same``: cilium/cilium#44771, checked first):
      the active backends whose node name is this node's, if there is one; else all (cilium/cilium#45215: "fall
      back to all available backends"). A terminating or starting local backend is no candidate
      (``topologyPreferenceCandidate``, #45947, #46339, #47054; ``topology-aware-starting.txtar``). Node hints are
      not read: the backend's node name decides.
    - a topology-aware Service (``cilium_topology_aware``) on a node with a zone label: current Cilium
      (``safeguards``) filters by zone hints only when every active candidate (the local ones for a Local policy)
      is hinted and one is hinted for this zone, else keeps them all, as kube-proxy does; terminating backends,
      which the EndpointSlice controller never hints, are not looked at (#45947,
      ``topology-aware-terminating.txtar``), and hints of an endpoint without a zone are dropped
      (``_cilium_zone_hints``). The older writer skipped every backend whose hints miss this zone, no fallback.

    Active (ready) backends are used; only when none is active, terminating ones that still serve.
    """
    if only_local is None:
        only_local = service.internal_traffic_policy == TrafficPolicy.LOCAL
    usable = [ep for ep in endpoints if ep.ready or (ep.serving and ep.terminating)]
    candidates = [ep for ep in usable if not (only_local and ep.node_name and ep.node_name != node.name)]
    same_node = prefer_same and service.traffic_distribution == TrafficDistribution.PREFER_SAME_NODE
    if service_topology and same_node:
        here = tuple(ep for ep in candidates if ep.node_name == node.name and ep.ready)
        if here:
            return here
    elif service_topology and node.zone and cilium_topology_aware(service, prefer_same=prefer_same):
        zone = node.zone
        if safeguards:
            active = [_cilium_zone_hints(ep) for ep in candidates if ep.ready]
            if any(h and zone in h for h in active) and all(active):
                candidates = [ep for ep in candidates if zone in (_cilium_zone_hints(ep) or ())]
        else:
            candidates = [ep for ep in candidates if not (h := _cilium_zone_hints(ep)) or zone in h]
    active_backends = tuple(ep for ep in candidates if ep.ready)
    if active_backends:
        return active_backends
    return tuple(ep for ep in candidates if ep.serving and ep.terminating)


def local_ready_endpoints(endpoints: Sequence[Endpoint], node: Node) -> int:
    """What kube-proxy's health server reports for eTP=Local on ``node``: its local ready endpoints."""
    return sum(1 for ep in kube_proxy_endpoints(endpoints) if ep.ready and _is_local(ep, node))
