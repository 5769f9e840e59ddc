"""What each dataplane does with a new connection: where it is decided, which endpoint set it uses, which picker,
whether the backend sees the client's address, and how it fails.

The differences between kube-proxy's iptables, nftables and IPVS modes and Cilium live here, as data and small
pure functions, not as branches in the engine. Every rule names its upstream source; ``docs/semantics.md`` has
them all in one page.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from sim.cluster import Endpoint, Node, Service, TrafficPolicy
from sim.outcomes import DropReason
from sim.routing.pickers import PICKERS, Maglev, Picker, Random
from sim.routing.policy import Endpoints, categorize_endpoints, cilium_select_backends


class Source(StrEnum):
    """Where a connection comes from and what address it targets."""

    POD = "pod"
    """A pod calling the ClusterIP: internalTrafficPolicy applies."""
    POD_EXTERNAL = "pod-external"
    """A pod calling the LoadBalancer IP (or an externalIP, or its own node's NodePort): captured by its own node's
    proxy (kube-proxy's KUBE-SERVICES ``-d <LB IP>`` rule; Cilium's socket-LB)."""
    POD_NODE_PORT = "pod-node-port"
    """A pod calling the NodePort of another node: kube-proxy jumps to KUBE-NODEPORTS only for ``--dst-type LOCAL``,
    so the packet reaches that node and *its* proxy decides, as for a client outside the cluster."""
    EXTERNAL = "external"
    """A client outside the cluster arriving at a node through the NodePort or a load balancer: eTP applies."""
    NODE = "node"
    """The node itself (a hostNetwork process, source the node's IP) calling the ClusterIP: iTP applies, and the
    local-traffic detector does not count it as a pod's. Routed by kube-proxy's iptables and nftables modes; IPVS
    and Cilium route it as a pod's (not modelled separately)."""
    NODE_EXTERNAL = "node-external"
    """The node itself calling its NodePort, a LoadBalancer IP or an externalIP: kube-proxy's ``--src-type LOCAL``
    (``fib saddr type local``) rules send it to the cluster-wide endpoints, masqueraded, whatever eTP says. IPVS and
    Cilium route it as ``pod-external``."""
    EXTERNAL_CLUSTER_IP = "external-cluster-ip"
    """A client outside the cluster reaching the ClusterIP through a route to this node ("establish a static route
    for your Service range, routing to any node"): iTP applies. IPVS and Cilium route it as a pod's."""


CLUSTER_IP_SOURCES = frozenset({Source.POD, Source.NODE, Source.EXTERNAL_CLUSTER_IP})
"""The sources calling the ClusterIP, where internalTrafficPolicy applies."""
POD_COUNTERPART = {
    Source.NODE: Source.POD,
    Source.EXTERNAL_CLUSTER_IP: Source.POD,
    Source.NODE_EXTERNAL: Source.POD_EXTERNAL,
}
"""The pod source IPVS and Cilium route the node's own traffic and an outside client's ClusterIP connection as
(not modelled separately for them)."""


LOCAL_TRAFFIC_DETECTORS = ("ClusterCIDR", "NodeCIDR", "BridgeInterface", "InterfaceNamePrefix", "none")
"""kube-proxy's ``--detect-local-mode`` values, plus ``none``: no detector (ClusterCIDR without ``--cluster-cidr``
gives ``NewNoOpLocalDetector``, ``cmd/kube-proxy/app/server_linux.go`` ``getLocalDetectors``)."""
KIND_POD_SUBNET = "10.244.0.0/16"
"""kind's default ``networking.podSubnet`` (``pkg/apis/config/v1alpha4/default.go``), which kubeadm gives kube-proxy
as its ``clusterCIDR`` (``cmd/kubeadm/app/componentconfigs/kubeproxy.go`` ``Default``): so kind's kube-proxy runs
the ClusterCIDR detector on ``10.244.0.0/16``."""
NO_BACKEND_RESPONSES = ("reject", "drop")
"""Cilium's ``--service-no-backend-response``; ``reject`` is ``defaults.ServiceNoBackendResponse``."""
XT_RECENT_IP_LIST_TOT = 100
"""Linux ``net/netfilter/xt_recent.c``: ``static unsigned int ip_list_tot = 100`` addresses per ``-m recent`` list."""


@dataclass(frozen=True)
class DataplaneConfig:
    """A scenario's proxy settings, each with its upstream default. ``picker`` empty means the dataplane's default.

    Cilium: ``enable_service_topology`` (``--enable-service-topology``, off), ``external_clusterip``
    (``--bpf-lb-external-clusterip``), ``maglev_table_size`` / ``maglev_hash_seed`` (``--bpf-lb-maglev-*``),
    ``socket_lb_host_namespace_only`` (``socketLB.hostNamespaceOnly`` / ``--bpf-lb-sock-hostns-only``, off),
    ``service_no_backend_response`` (``--service-no-backend-response``, reject) and
    ``cilium_topology_safeguards`` (the writer's all-hinted / one-for-my-zone guard of current Cilium; off: the older
    per-backend filter), ``cilium_prefer_same`` (Cilium 1.20's PreferSameZone as PreferClose and PreferSameNode by
    node name; off: Cilium 1.18-1.19, PreferClose only). kube-proxy: ``prefer_same_node_gate``
    (``PreferSameTrafficDistribution``), ``local_traffic_detector`` (``--detect-local-mode``; ``none``: no
    detector) with ``cluster_cidr`` (``--cluster-cidr``), ``bridge_interface`` (``--pod-bridge-interface``) and
    ``interface_name_prefix`` (``--pod-interface-name-prefix``), defaulted as kind configures kube-proxy,
    ``recent_list_size`` (xt_recent's ``ip_list_tot``, iptables only; 0: unlimited) and
    ``ipvs_graceful_termination`` (removed real servers kept at weight 0; off: deleted at once, as before
    kube-proxy 1.13), ``masquerade_all`` (``--masquerade-all``, off; iptables and nftables: every connection to a
    ClusterIP masqueraded).
    """

    name: str = "iptables"
    picker: str = ""
    maglev_table_size: int = 16381
    maglev_hash_seed: str = "JLfvgnHc2kaSUFaI"
    enable_service_topology: bool = False
    external_clusterip: bool = False
    prefer_same_node_gate: bool = True
    local_traffic_detector: str = "ClusterCIDR"
    cluster_cidr: str = KIND_POD_SUBNET
    bridge_interface: str = ""
    interface_name_prefix: str = ""
    recent_list_size: int = XT_RECENT_IP_LIST_TOT
    socket_lb_host_namespace_only: bool = False
    service_no_backend_response: str = "reject"
    cilium_topology_safeguards: bool = True
    cilium_prefer_same: bool = True
    ipvs_graceful_termination: bool = True
    masquerade_all: bool = False


@dataclass(frozen=True)
class Route:
    """The endpoints a new connection may reach from one node, the picker that chooses among them, whether the
    backend sees the client's own address, or why the connection cannot be made.

    ``affinity_limit``: most client addresses a ClientIP affinity list remembers per endpoint (0: no limit).
    ``expire_removed``: connections already open to an endpoint that has left this route fail at their next request
    (IPVS without graceful termination); otherwise they carry on until the pod itself is gone (conntrack, or IPVS
    real servers kept at weight 0).
    """

    endpoints: Endpoints
    picker: Picker = Random()
    source_preserved: bool = True
    drop: DropReason = DropReason.NONE
    affinity_limit: int = 0
    expire_removed: bool = False


RouteFn = Callable[[Service, Sequence[Endpoint], Node, Source, DataplaneConfig], Route]


def picker_for(name: str, cfg: DataplaneConfig) -> Picker:
    """The picker object called ``name`` with the config's options (Maglev's table size and hash seed)."""
    if name == Maglev.name:
        return Maglev(cfg.maglev_table_size, cfg.maglev_hash_seed)
    return PICKERS[name]()


def _picker(cfg: DataplaneConfig, default: str) -> Picker:
    return picker_for(cfg.picker or default, cfg)


def pod_is_local(source: Source, cfg: DataplaneConfig) -> bool:
    """Whether kube-proxy's local-traffic detector (``proxier.localDetector.IfLocal()``) matches a pod's packet on
    the node deciding it: ClusterCIDR matches every pod of the cluster, NodeCIDR and the interface modes only pods
    of that node (a pod calling another node's NodePort is not one of them), no detector matches nothing."""
    mode = cfg.local_traffic_detector
    if mode == "none" or source not in (Source.POD_EXTERNAL, Source.POD_NODE_PORT):
        return False
    return mode == "ClusterCIDR" or source == Source.POD_EXTERNAL


def cluster_ip_masqueraded(source: Source, cfg: DataplaneConfig) -> bool:
    """Whether kube-proxy marks a connection to the ClusterIP for masquerade (``syncProxyRules``' internal chain):
    all of them with ``--masquerade-all``, else those the local-traffic detector does not match (``IfNotLocal()``:
    the node itself and clients outside the cluster; a pod's packet is decided on its own node, where every detector
    matches it); with no detector, none."""
    if cfg.masquerade_all:
        return True
    return cfg.local_traffic_detector != "none" and source != Source.POD


def kube_proxy_route(
    service: Service, endpoints: Sequence[Endpoint], node: Node, source: Source, cfg: DataplaneConfig
) -> Route:
    """iptables / nftables ``syncProxyRules``: iTP picks the ClusterIP set, the ``KUBE-EXT-*`` chain the external
    one; none anywhere REJECTs, none for the policy DROPs.

    External destinations (NodePort, LB IP) go through the EXT chain: eTP=Cluster masquerades everything ("masquerade
    traffic for ... external destinations") and uses the cluster set; eTP=Local sends pod traffic that the
    local-traffic detector matches to the cluster chain ("pod traffic for ... external destinations", source
    kept), traffic from the node itself (``--src-type LOCAL``) to the cluster chain, masqueraded, and the rest to
    the local chain (source kept), or to the filter DROP when there is no local endpoint. The ClusterIP masquerades
    per ``cluster_ip_masqueraded``.
    """
    cat = categorize_endpoints(service, endpoints, node, prefer_same_node_gate=cfg.prefer_same_node_gate)
    if source in CLUSTER_IP_SOURCES:
        local = service.internal_traffic_policy == TrafficPolicy.LOCAL
        chosen = cat.local if local else cat.cluster
        preserved = not cluster_ip_masqueraded(source, cfg)
    elif source == Source.NODE_EXTERNAL or service.external_traffic_policy != TrafficPolicy.LOCAL:
        chosen, preserved = cat.cluster, False
    else:
        chosen = cat.cluster if pod_is_local(source, cfg) else cat.local
        preserved = True
    picker = _picker(cfg, "random")
    limit = cfg.recent_list_size if cfg.name == "iptables" else 0  # nftables: a timed set without a size
    if not cat.has_any:
        return Route((), picker, preserved, DropReason.NO_ENDPOINTS, limit)
    if not chosen:
        return Route((), picker, preserved, DropReason.NO_LOCAL_ENDPOINTS, limit)
    return Route(chosen, picker, preserved, affinity_limit=limit)


def ipvs_route(
    service: Service, endpoints: Sequence[Endpoint], node: Node, source: Source, cfg: DataplaneConfig
) -> Route:
    """IPVS ``syncEndpoint``: each virtual server's real servers are the local endpoints when its policy is Local
    (iTP for the ClusterIP, eTP for NodePort / LB IP), else, and also when none is local, the cluster endpoints
    ("Allow access from local PODs even if no local endpoints exist", kubernetes#97081). There is no pod
    short-circuit: a pod calling the LB IP gets the LB virtual server's real servers. A virtual server without
    real servers refuses at once (``ip_vs_leave``: ICMP port unreachable).

    eTP=Local's fallback to remote endpoints answers with the pod's address where the reply does not pass back
    through the deciding node (a client outside the cluster, a pod on another node): the client discards it and
    waits, which is modelled as the iptables DROP. KUBE-NODE-PORT / KUBE-LOAD-BALANCER masquerade eTP=Cluster.
    """
    source = POD_COUNTERPART.get(source, source)
    cat = categorize_endpoints(service, endpoints, node, prefer_same_node_gate=cfg.prefer_same_node_gate)
    picker = _picker(cfg, "round-robin")
    expire = not cfg.ipvs_graceful_termination
    if source == Source.POD:
        local = service.internal_traffic_policy == TrafficPolicy.LOCAL
        preserved = True
    else:
        local = service.external_traffic_policy == TrafficPolicy.LOCAL
        preserved = local
    chosen = (cat.local or cat.cluster) if local else cat.cluster
    if not chosen:
        return Route((), picker, preserved, DropReason.NO_REAL_SERVERS, expire_removed=expire)
    if local and not cat.local and source in (Source.EXTERNAL, Source.POD_NODE_PORT):
        return Route((), picker, preserved, DropReason.NO_LOCAL_ENDPOINTS, expire_removed=expire)
    return Route(chosen, picker, preserved, expire_removed=expire)


def cilium_route(
    service: Service, endpoints: Sequence[Endpoint], node: Node, source: Source, cfg: DataplaneConfig
) -> Route:
    """Cilium. Pods: socket-LB at ``connect()`` (``bpf_sock.c`` ``__sock4_xlate_fwd``): a random slot per TCP
    connection (``sock_select_slot``) whatever ``--bpf-lb-algorithm`` says, EHOSTUNREACH at once when the frontend
    has no backend, the client's address kept; two-scope frontends (LB IP, NodePort) use the internal scope, so iTP.
    With ``socket_lb_host_namespace_only`` pod traffic takes the tc path instead, as external traffic does: the
    configured algorithm where the frontend has a Maglev table (NodePort / LB, ClusterIP only with
    ``external_clusterip``), and a frontend without backends rejected or dropped per
    ``--service-no-backend-response``. External traffic (``nodeport_lb4``): eTP, SNAT for eTP=Cluster."""
    source = POD_COUNTERPART.get(source, source)
    tc_path = source in (Source.EXTERNAL, Source.POD_NODE_PORT) or cfg.socket_lb_host_namespace_only
    if source in (Source.EXTERNAL, Source.POD_NODE_PORT):
        only_local = service.external_traffic_policy == TrafficPolicy.LOCAL
        preserved = only_local
    else:
        only_local = service.internal_traffic_policy == TrafficPolicy.LOCAL
        preserved = True
    backends = cilium_select_backends(
        service,
        endpoints,
        node,
        only_local=only_local,
        service_topology=cfg.enable_service_topology,
        safeguards=cfg.cilium_topology_safeguards,
        prefer_same=cfg.cilium_prefer_same,
    )
    if not tc_path:
        if not backends:
            return Route((), Random(), preserved, DropReason.NO_BACKENDS)
        return Route(backends, Random(), preserved)
    has_lut = source != Source.POD or cfg.external_clusterip  # bpf_reconciler useMaglev: external frontends
    picker = _picker(cfg, "random") if has_lut else Random()
    if not backends:
        reject = cfg.service_no_backend_response == "reject"
        reason = DropReason.NO_BACKEND_REJECTED if reject else DropReason.NO_SERVICE_BACKEND
        return Route((), picker, preserved, reason)
    return Route(backends, picker, preserved)


def source_range_denied(service: Service, client_ip: str, cfg: DataplaneConfig) -> bool:
    """Whether kube-proxy's loadBalancerSourceRanges firewall drops a connection from ``client_ip`` to the
    Service's LoadBalancer IP: the ranges are set and none holds the address (iptables ``KUBE-FW-*`` then
    ``KUBE-PROXY-FIREWALL``, nftables ``firewall-*``: ``syncProxyRules``' ``usesFWChain``; the NodePort is not
    subject to them). Cilium's own check (``--enable-svc-source-range-check``) is not modelled."""
    if cfg.name not in ("iptables", "nftables") or not service.load_balancer_source_ranges:
        return False
    address = ipaddress.ip_address(client_ip)
    return not any(address in ipaddress.ip_network(cidr) for cidr in service.load_balancer_source_ranges)


def kube_proxy_remote_node_port(cfg: DataplaneConfig) -> bool:
    """kube-proxy (every mode): a pod's packet to another node's NodePort is not ``--dst-type LOCAL`` here, so the
    named node decides (``syncProxyRules``: the KUBE-NODEPORTS jump; IPVS binds NodePorts to local addresses)."""
    return True


def cilium_remote_node_port(cfg: DataplaneConfig) -> bool:
    """Cilium: socket-LB translates another node's NodePort at the client's socket (``sock4_wildcard_lookup_full``
    with remote hosts); with ``socket_lb_host_namespace_only`` the packet travels to that node's tc program."""
    return cfg.socket_lb_host_namespace_only


@dataclass(frozen=True)
class Dataplane:
    """A Service proxy implementation: how it routes, which pickers it offers natively (first: default), and
    whether a pod's connection to another node's NodePort is decided by that node."""

    name: str
    route: RouteFn
    pickers: tuple[str, ...]
    remote_node_port_decided_there: Callable[[DataplaneConfig], bool] = kube_proxy_remote_node_port

    def offers(self, picker: str) -> bool:
        """Whether a scenario may ask this dataplane for ``picker`` (a registry name): one of its modes, or a
        what-if picker no dataplane has (``Picker.what_if``)."""
        return picker in self.pickers or (picker in PICKERS and PICKERS[picker].what_if)


DATAPLANES: dict[str, Dataplane] = {
    "iptables": Dataplane("iptables", kube_proxy_route, ("random",)),
    "nftables": Dataplane("nftables", kube_proxy_route, ("random",)),
    "ipvs": Dataplane("ipvs", ipvs_route, ("round-robin", "least-connections", "source-hash", "maglev")),
    "cilium": Dataplane("cilium", cilium_route, ("random", "maglev"), cilium_remote_node_port),
}
"""Every dataplane by the name used in scenario files. ``iptables`` is the default: kube-proxy's default mode."""

DEFAULT_DATAPLANE = "iptables"
