"""What both of kube-proxy's modes share when writing one node's rules: pure, no I/O.

The Service port's name (``ServicePortName``) and the hash every chain name is built on; the proxy's configuration
modelled, which is kube-proxy's default but for what kind gives it: masquerade bit 14, ``--masquerade-all`` as the
scenario says (``[dataplane] masquerade_all``, off by default),
``localhostNodePorts`` on, ``--nodeport-addresses`` unset (each mode's default: iptables every local address,
nftables the node's primary IP), the scenario's local-traffic detector (``[dataplane]
local_traffic_detector``; kind's is ClusterCIDR on its pod subnet, which kubeadm passes as ``--cluster-cidr``: the
"masquerade off-cluster traffic" rule and the short-circuit of pod traffic to external destinations), the service
CIDR the emulation takes ClusterIPs from (the nftables drop of unallocated ClusterIPs), and
``nf_conntrack_tcp_be_liberal`` unset; and the policy decisions of ``syncProxyRules`` (which chains a Service port
uses, whether it has endpoints for internal and external traffic), the same in ``pkg/proxy/iptables/proxier.go``
and ``pkg/proxy/nftables/proxier.go``. Every port is TCP.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
from dataclasses import dataclass

from sim.cluster import Endpoint, Service, SessionAffinity, TrafficPolicy, namespace_of
from sim.emulate.layout import SERVICE_NET, NodeLayout, ServiceRules
from sim.emulate.quoting import checked

PROTOCOL = "tcp"
MASQUERADE_MARK = format(1 << 14, "#08x")
"""``fmt.Sprintf("%#08x", 1 << masqueradeBit)`` with the default bit 14: ``0x004000``."""


def service_port_name(svc: Service) -> str:
    """``ServicePortName.String()``: ``namespace/name``, then ``:port`` for a named port (``ns1/svc1:p80``)."""
    return qualified(svc.name) + (f":{svc.port_name}" if svc.port_name else "")


def qualified(name: str) -> str:
    """``namespace/name`` for a Service name, bare or qualified (``echo-1`` is ``default/echo-1``)."""
    return name if "/" in name else f"{namespace_of(name)}/{name}"


def b32_sha256(text: str) -> str:
    return base64.b32encode(hashlib.sha256(checked(text).encode()).digest()).decode()


@dataclass(frozen=True)
class Detector:
    """kube-proxy's ``LocalTrafficDetector`` (``pkg/proxy/util/localdetector.go``): the match arguments for
    traffic from a local pod, and for traffic not from one, in iptables and nftables syntax; none: no detector."""

    if_local: str = ""
    if_not_local: str = ""
    if_local_nft: str = ""
    if_not_local_nft: str = ""

    @property
    def implemented(self) -> bool:
        """``IsImplemented``."""
        return bool(self.if_local)


def detector(mode: str, match: str) -> Detector:
    """The detector ``--detect-local-mode`` makes (``pkg/proxy/util/localdetector.go``): ``NewDetectLocalByCIDR``
    on ``match`` (the cluster's or the node's pod CIDR), ``NewDetectLocalByBridgeInterface`` (``-i bridge``;
    ``iifname bridge``), ``NewDetectLocalByInterfaceNamePrefix`` (``-i prefix+``; ``iifname prefix*``); ``none``:
    the no-op detector. nftables matches the interface by name, ``iifname``, as since kubernetes#134024 (before
    it, ``iif`` looked the name up when the rules were loaded and failed: "Interface does not exist")."""
    if mode in ("ClusterCIDR", "NodeCIDR"):
        return Detector(f"-s {match}", f"! -s {match}", f"ip saddr {match}", f"ip saddr != {match}")
    if mode == "BridgeInterface":
        return Detector(f"-i {match}", f"! -i {match}", f"iifname {match}", f"iifname != {match}")
    if mode == "InterfaceNamePrefix":
        return Detector(f"-i {match}+", f"! -i {match}+", f"iifname {match}*", f"iifname != {match}*")
    return Detector()


@dataclass(frozen=True)
class Proxy:
    """What one node's kube-proxy is configured with beyond the Services: its local-traffic detector, its node IP
    (loadBalancerSourceRanges containing it also admit the LB IPs) and the service CIDR (``--service-cluster-ip-
    range``, for the nftables drop of unallocated ClusterIPs; empty: no such rule) and ``--masquerade-all`` (every
    connection to a ClusterIP marked for masquerade, in place of the detector's ``IfNotLocal`` rule)."""

    detector: Detector = Detector()
    node_ip: str = ""
    service_cidr: str = ""
    masquerade_all: bool = False


def node_proxy(node: NodeLayout) -> Proxy:
    """The proxy configuration of one emulated node: its detector, its address, the emulation's service CIDR and
    ``--masquerade-all``."""
    return Proxy(detector(*node.detector), node.ip, str(SERVICE_NET), node.masquerade_all)


def endpoint_ip(ep: Endpoint) -> str:
    return ep.address.rsplit(":", 1)[0]


# --- the policy decisions of syncProxyRules (shared by both modes) --------------------------------------------------


def has_internal_endpoints(s: ServiceRules) -> bool:
    """``hasInternalEndpoints``: the Service has endpoints, and for iTP=Local this node has local ones."""
    if s.service.internal_traffic_policy == TrafficPolicy.LOCAL and not s.local:
        return False
    return s.has_endpoints


def uses_cluster_chain(s: ServiceRules) -> bool:
    """``usesClusterPolicyChain``."""
    return bool(s.cluster) and s.service.uses_cluster_endpoints


def uses_local_chain(s: ServiceRules) -> bool:
    """``usesLocalPolicyChain``."""
    return bool(s.local) and s.service.uses_local_endpoints


def external_policy_local(svc: Service) -> bool:
    """``ExternalPolicyLocal``: eTP=Local on an externally accessible Service."""
    return svc.external_traffic_policy == TrafficPolicy.LOCAL and svc.externally_accessible


def has_external_endpoints(s: ServiceRules) -> bool:
    """``hasExternalEndpoints``: the Service has endpoints, and for eTP=Local this node has local ones."""
    if external_policy_local(s.service) and not s.local:
        return False
    return s.has_endpoints


def uses_external_chain(s: ServiceRules) -> bool:
    """``usesExternalTrafficChain``: based on ``hasEndpoints``, for the local short-circuit rules."""
    return s.has_endpoints and s.service.externally_accessible


def client_ip_affinity(svc: Service) -> bool:
    return svc.session_affinity == SessionAffinity.CLIENT_IP


def sticky_seconds(svc: Service) -> int:
    return int(svc.session_affinity_timeout_s)


def firewall_sources(s: ServiceRules, proxy: Proxy) -> list[str]:
    """The sources a loadBalancerSourceRanges firewall admits: the ranges, and the LoadBalancer IPs themselves
    when a range holds the node's own IP (``allowFromNode``: a node reaching a VIP-like LB loops back from it)."""
    ranges = list(s.service.load_balancer_source_ranges)
    node = ipaddress.ip_address(proxy.node_ip) if proxy.node_ip else None
    if node is not None and any(node in ipaddress.ip_network(c) for c in ranges):
        ranges += list(s.service.load_balancer_ips)
    return ranges
