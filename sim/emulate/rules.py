"""The rules kube-proxy writes for one node, as text: pure functions, no I/O.

iptables mode follows ``pkg/proxy/iptables/proxier.go`` (kubernetes/kubernetes): ``syncProxyRules`` writes one
``iptables-restore --noflush`` payload (``*filter`` then ``*nat``), after ``EnsureChain``/``EnsureRule`` have
prepended the jumps of ``iptablesJumpChains`` and ``iptablesKubeletJumpChains`` into the built-in chains;
``writeServiceToEndpointRules`` writes each ``KUBE-SVC-*``/``KUBE-SVL-*`` chain (affinity ``recent --rcheck``
rules first, then ``statistic --mode random --probability 1/(n-i)`` for all but the last endpoint, formatted by
``computeProbability`` as ``%0.10f``). Chain names are ``portProtoHash`` / ``servicePortEndpointChainName``: the
first 16 characters of base32(sha256(name + protocol [+ endpoint])).

nftables mode follows ``pkg/proxy/nftables/proxier.go``: ``setupNFTables`` then ``syncProxyRules`` build one
knftables transaction (written as ``nft -f`` input the way knftables' ``writeOperation`` does), with the
``service-ips`` / ``no-endpoint-services`` verdict maps, per-service chains named by ``servicePortChainNameBase``
(``hashAndTruncate``: 8 characters of the same hash, then the readable name) and ``numgen random mod N vmap``.

The proxy's configuration modelled is kube-proxy's default but for what kind gives it: masquerade bit 14
(``--masquerade-all`` off), ``localhostNodePorts`` on, no ``--nodeport-addresses``, the scenario's local-traffic
detector (``[dataplane] local_traffic_detector``; kind's is ClusterCIDR on its pod subnet, which kubeadm passes as
``--cluster-cidr``: the "masquerade off-cluster traffic" rule and the short-circuit of pod traffic to external
destinations), the service CIDR the emulation takes ClusterIPs from (the nftables drop of unallocated ClusterIPs),
and ``nf_conntrack_tcp_be_liberal`` unset. kube-proxy walks its Service map in Go's random map order; here Services
come in the scenario's order, each port in turn. Rendered: ClusterIPs, NodePorts, external IPs and LoadBalancer
IPs, ``loadBalancerSourceRanges`` (``KUBE-FW-*`` / ``firewall-*`` chains) and the health check node port (iptables
only: nftables writes no rule for it). Every port is TCP; names are kube-proxy's ``ServicePortName``
(``namespace/name:port``).
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass

from sim.cluster import Endpoint, Service, ServiceType, SessionAffinity, TrafficPolicy, namespace_of
from sim.emulate.plan import SERVICE_NET, NodePlan, ServiceRules
from sim.emulate.quoting import checked, iptables_comment, iptables_word, nft_comment, nft_identifier

PROTOCOL = "tcp"
MASQUERADE_MARK = format(1 << 14, "#08x")
"""``fmt.Sprintf("%#08x", 1 << masqueradeBit)`` with the default bit 14: ``0x004000``."""


# --- names --------------------------------------------------------------------------------------------------------


def service_port_name(svc: Service) -> str:
    """``ServicePortName.String()``: ``namespace/name``, then ``:port`` for a named port (``ns1/svc1:p80``)."""
    return qualified(svc.name) + (f":{svc.port_name}" if svc.port_name else "")


def qualified(name: str) -> str:
    """``namespace/name`` for a Service name, bare or qualified (``echo-1`` is ``default/echo-1``)."""
    return name if "/" in name else f"{namespace_of(name)}/{name}"


def _b32_sha256(text: str) -> str:
    return base64.b32encode(hashlib.sha256(checked(text).encode()).digest()).decode()


def port_proto_hash(service_port_name: str, protocol: str = PROTOCOL) -> str:
    """iptables ``portProtoHash``: base32(sha256(name + protocol)), first 16 characters.

    >>> port_proto_hash("ns1/svc1:p80", "tcp")  # upstream's proxier_test: KUBE-SVC-XPGD46QRK7WJZT7O
    'XPGD46QRK7WJZT7O'
    """
    return _b32_sha256(service_port_name + protocol)[:16]


def svc_chain(svc: Service) -> str:
    """``servicePortPolicyClusterChain``: the ``KUBE-SVC-*`` chain (endpoints for Cluster policy)."""
    return "KUBE-SVC-" + port_proto_hash(service_port_name(svc))


def svl_chain(svc: Service) -> str:
    """``servicePortPolicyLocalChainName``: the ``KUBE-SVL-*`` chain (endpoints for Local policy)."""
    return "KUBE-SVL-" + port_proto_hash(service_port_name(svc))


def endpoint_hash(service_port_name: str, endpoint: str, protocol: str = PROTOCOL) -> str:
    """The hash of ``servicePortEndpointChainName``: base32(sha256(name + protocol + "IP:port")), 16 characters.

    >>> endpoint_hash("ns1/svc1:p80", "10.180.0.1:80")  # upstream's proxier_test: KUBE-SEP-SXIVWICOYRO3J4NJ
    'SXIVWICOYRO3J4NJ'
    """
    return _b32_sha256(service_port_name + protocol + endpoint)[:16]


def sep_chain(svc: Service, endpoint: str) -> str:
    """``servicePortEndpointChainName``: the ``KUBE-SEP-*`` chain of one endpoint ("IP:port") of ``svc``."""
    return "KUBE-SEP-" + endpoint_hash(service_port_name(svc), endpoint)


def probability(n: int) -> str:
    """``computeProbability``: ``fmt.Sprintf("%0.10f", 1.0/float64(n))``.

    >>> probability(3), probability(2)
    ('0.3333333333', '0.5000000000')
    """
    return f"{1.0 / n:.10f}"


def hash_and_truncate(name: str) -> str:
    """nftables ``hashAndTruncate``: 8 characters of base32(sha256(name)), a dash, the name (cut at 240).

    >>> hash_and_truncate("ns1/svc1/tcp/p80")  # upstream's comment: "ULMVA6XW-ns1/svc1/tcp/p80"
    'ULMVA6XW-ns1/svc1/tcp/p80'
    """
    out = nft_identifier(_b32_sha256(name), name)  # the hash alone where the name is not an nft identifier
    limit = 256 - 16  # knftables.NameLengthMax - chainNamePrefixLengthMax
    return out[: limit - 3] + "..." if len(out) > limit else out


def _nft_port_base(svc: Service) -> str:
    """``namespace/name/protocol/portname``: what nftables' chain names are built on."""
    return f"{qualified(svc.name)}/{PROTOCOL}/{svc.port_name}"


def nft_chain_base(svc: Service) -> str:
    """nftables ``servicePortChainNameBase``: ``HASH-namespace/name/protocol/portname``.

    >>> nft_chain_base(Service("ns1/svc1", port_name="p80"))  # upstream's TestOverallNFTablesRules
    'ULMVA6XW-ns1/svc1/tcp/p80'
    """
    return hash_and_truncate(_nft_port_base(svc))


def nft_endpoint_base(svc: Service, endpoint: str) -> str:
    """nftables ``servicePortEndpointChainNameBase``: ``HASH-namespace/name/protocol/portname__IP/port``."""
    ip, port = endpoint.rsplit(":", 1)
    return hash_and_truncate(f"{_nft_port_base(svc)}__{ip}/{port}")


def fw_chain(svc: Service) -> str:
    """iptables ``serviceFirewallChainName``: the ``KUBE-FW-*`` chain of loadBalancerSourceRanges."""
    return "KUBE-FW-" + port_proto_hash(service_port_name(svc))


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
    """The detector ``--detect-local-mode`` makes: ``NewDetectLocalByCIDR`` on ``match`` (the cluster's or the
    node's pod CIDR), ``NewDetectLocalByBridgeInterface``, ``NewDetectLocalByInterfaceNamePrefix``; ``none``: the
    no-op detector."""
    if mode in ("ClusterCIDR", "NodeCIDR"):
        return Detector(f"-s {match}", f"! -s {match}", f"ip saddr {match}", f"ip saddr != {match}")
    if mode == "BridgeInterface":
        return Detector(f"-i {match}", f"! -i {match}", f"iif {match}", f"iif != {match}")
    if mode == "InterfaceNamePrefix":
        return Detector(f"-i {match}+", f"! -i {match}+", f"iif {match}*", f"iif != {match}*")
    return Detector()


@dataclass(frozen=True)
class Proxy:
    """What one node's kube-proxy is configured with beyond the Services: its local-traffic detector, its node IP
    (loadBalancerSourceRanges containing it also admit the LB IPs) and the service CIDR (``--service-cluster-ip-
    range``, for the nftables drop of unallocated ClusterIPs; empty: no such rule)."""

    detector: Detector = Detector()
    node_ip: str = ""
    service_cidr: str = ""


def node_proxy(node: NodePlan) -> Proxy:
    """The proxy configuration of one emulated node: its detector, its address, the emulation's service CIDR."""
    return Proxy(detector(*node.detector), node.ip, str(SERVICE_NET))


def _ip(ep: Endpoint) -> str:
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


def _external_local(svc: Service) -> bool:
    """``ExternalPolicyLocal``: eTP=Local on an externally accessible Service."""
    return svc.external_traffic_policy == TrafficPolicy.LOCAL and svc.externally_accessible


def has_external_endpoints(s: ServiceRules) -> bool:
    """``hasExternalEndpoints``: the Service has endpoints, and for eTP=Local this node has local ones."""
    if _external_local(s.service) and not s.local:
        return False
    return s.has_endpoints


def uses_external_chain(s: ServiceRules) -> bool:
    """``usesExternalTrafficChain``: based on ``hasEndpoints``, for the local short-circuit rules."""
    return s.has_endpoints and s.service.externally_accessible


def ext_chain(svc: Service) -> str:
    """``serviceExternalChainName``: the ``KUBE-EXT-*`` chain every external destination jumps to."""
    return "KUBE-EXT-" + port_proto_hash(service_port_name(svc))


def external_policy_chain(s: ServiceRules) -> str:
    """``externalPolicyChain``: KUBE-SVL for eTP=Local, else KUBE-SVC."""
    return svl_chain(s.service) if _external_local(s.service) else svc_chain(s.service)


def _filter_verdict(s: ServiceRules) -> tuple[str, str]:
    """The filter target and comment for traffic with no endpoint to go to: REJECT if none anywhere, else DROP."""
    if not s.has_endpoints:
        return "REJECT", "has no endpoints"
    return "DROP", "has no local endpoints"


def internal_chain(s: ServiceRules) -> str:
    """``internalTrafficChain``: KUBE-SVL for iTP=Local, else KUBE-SVC."""
    local = s.service.internal_traffic_policy == TrafficPolicy.LOCAL
    return svl_chain(s.service) if local else svc_chain(s.service)


def _affinity(svc: Service) -> bool:
    return svc.session_affinity == SessionAffinity.CLIENT_IP


def _sticky_seconds(svc: Service) -> int:
    return int(svc.session_affinity_timeout_s)


# --- iptables ---------------------------------------------------------------------------------------------------

_JUMPS = (  # iptablesJumpChains, then iptablesKubeletJumpChains: (table, dst, src, comment, extra args)
    ("filter", "KUBE-EXTERNAL-SERVICES", "INPUT", "kubernetes externally-visible service portals", "NEW"),
    ("filter", "KUBE-EXTERNAL-SERVICES", "FORWARD", "kubernetes externally-visible service portals", "NEW"),
    ("filter", "KUBE-NODEPORTS", "INPUT", "kubernetes health check service ports", ""),
    ("filter", "KUBE-SERVICES", "FORWARD", "kubernetes service portals", "NEW"),
    ("filter", "KUBE-SERVICES", "OUTPUT", "kubernetes service portals", "NEW"),
    ("filter", "KUBE-FORWARD", "FORWARD", "kubernetes forwarding rules", ""),
    ("filter", "KUBE-PROXY-FIREWALL", "INPUT", "kubernetes load balancer firewall", "NEW"),
    ("filter", "KUBE-PROXY-FIREWALL", "OUTPUT", "kubernetes load balancer firewall", "NEW"),
    ("filter", "KUBE-PROXY-FIREWALL", "FORWARD", "kubernetes load balancer firewall", "NEW"),
    ("nat", "KUBE-SERVICES", "OUTPUT", "kubernetes service portals", ""),
    ("nat", "KUBE-SERVICES", "PREROUTING", "kubernetes service portals", ""),
    ("nat", "KUBE-POSTROUTING", "POSTROUTING", "kubernetes postrouting rules", ""),
    ("filter", "KUBE-FIREWALL", "INPUT", "", ""),
    ("filter", "KUBE-FIREWALL", "OUTPUT", "", ""),
)


def iptables_jumps() -> str:
    """``EnsureChain`` + ``EnsureRule(Prepend, ...)`` of syncProxyRules' full sync, as ``iptables-restore
    --noflush`` input: each jump is inserted at the top of its built-in chain, in upstream's order."""
    out = []
    for table in ("filter", "nat"):
        out.append(f"*{table}")
        chains = dict.fromkeys(dst for t, dst, *_ in _JUMPS if t == table)
        out.extend(f":{c} - [0:0]" for c in chains)
        for t, dst, src, comment, new in _JUMPS:
            if t != table:
                continue
            args = ["-I", src]
            if new:
                args += ["-m", "conntrack", "--ctstate", "NEW"]
            if comment:
                args += ["-m", "comment", "--comment", f'"{comment}"']
            out.append(" ".join([*args, "-j", dst]))
        out.append("COMMIT")
    return "\n".join(out) + "\n"


def _comment(text: str) -> str:
    """The comment match of a rule, its text quoted for iptables-restore (``sim.emulate.quoting``)."""
    return f"-m comment --comment {iptables_comment(text)}"


def _svc_to_endpoint_rules(s: ServiceRules, chain: str, endpoints: Sequence[Endpoint]) -> list[str]:
    """``writeServiceToEndpointRules``: affinity checks first, then the probability cascade."""
    svc, name = s.service, service_port_name(s.service)
    rules = []
    if _affinity(svc):
        for ep in endpoints:
            sep = sep_chain(svc, ep.address)
            rules.append(
                f"-A {chain} {_comment(f'{name} -> {ep.address}')} -m recent --name {sep} --rcheck "
                f"--seconds {_sticky_seconds(svc)} --reap -j {sep}"
            )
    n = len(endpoints)
    for i, ep in enumerate(endpoints):
        args = f"-A {chain} {_comment(f'{name} -> {ep.address}')}"
        if i < n - 1:
            args += f" -m statistic --mode random --probability {probability(n - i)}"
        rules.append(f"{args} -j {sep_chain(svc, ep.address)}")
    return rules


@dataclass
class _Restore:
    """An ``iptables-restore`` payload being written: the chains and rules of its ``*filter`` and ``*nat``
    tables, in order."""

    filter_chains: list[str]
    filter_rules: list[str]
    nat_chains: list[str]
    nat_rules: list[str]

    def text(self) -> str:
        """The payload: ``*filter`` then ``*nat``, each its chains then its rules."""
        lines = ["*filter", *self.filter_chains, *self.filter_rules, "COMMIT"]
        return "\n".join([*lines, "*nat", *self.nat_chains, *self.nat_rules, "COMMIT"]) + "\n"


def iptables_restore(services: Sequence[ServiceRules], proxy: Proxy = Proxy()) -> str:
    """``syncProxyRules``' ``iptables-restore --noflush`` payload for one node: ``*filter`` then ``*nat``."""
    out = _iptables_base()
    for s in services:
        _iptables_entries(s, out, proxy)
        _iptables_external_chain(s, out, proxy)
        _iptables_firewall_chain(s, out, proxy)
        _iptables_endpoint_chains(s, out)
    out.nat_rules.append(
        '-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in '
        'this chain" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS'
    )
    mark = f"{MASQUERADE_MARK}/{MASQUERADE_MARK}"
    out.filter_rules += [
        "-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP",
        f'-A KUBE-FORWARD -m comment --comment "kubernetes forwarding rules" -m mark --mark {mark} -j ACCEPT',
        '-A KUBE-FORWARD -m comment --comment "kubernetes forwarding conntrack rule" -m conntrack --ctstate '
        "RELATED,ESTABLISHED -j ACCEPT",
    ]
    return out.text()


def _iptables_base() -> _Restore:
    """The chains every node has and the rules before the Services': masquerading and the anti-martian rule."""
    mark = f"{MASQUERADE_MARK}/{MASQUERADE_MARK}"
    filter_chains = [
        f":{c} - [0:0]"
        for c in ("KUBE-SERVICES", "KUBE-EXTERNAL-SERVICES", "KUBE-FORWARD", "KUBE-NODEPORTS", "KUBE-PROXY-FIREWALL")
    ]
    nat_chains = [f":{c} - [0:0]" for c in ("KUBE-SERVICES", "KUBE-NODEPORTS", "KUBE-POSTROUTING", "KUBE-MARK-MASQ")]
    nat_rules = [
        f"-A KUBE-POSTROUTING -m mark ! --mark {mark} -j RETURN",
        f"-A KUBE-POSTROUTING -j MARK --xor-mark {MASQUERADE_MARK}",
        '-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE '
        "--random-fully",
        f"-A KUBE-MARK-MASQ -j MARK --or-mark {MASQUERADE_MARK}",
    ]
    # localhostNodePorts (the default): kube-proxy also writes kubelet's anti-martian rule
    filter_chains.append(":KUBE-FIREWALL - [0:0]")
    filter_rules = [
        '-A KUBE-FIREWALL -m comment --comment "block incoming localnet connections" -d 127.0.0.0/8 '
        "! -s 127.0.0.0/8 -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP"
    ]
    return _Restore(filter_chains, filter_rules, nat_chains, nat_rules)


def health_check_node_port(svc: Service) -> int:
    """``HealthCheckNodePort``: kept only where ``NeedsHealthCheck`` (a LoadBalancer with eTP=Local); 0: none."""
    return svc.health_check_node_port if _external_local(svc) and svc.kind == ServiceType.LOAD_BALANCER else 0


def uses_fw_chain(s: ServiceRules) -> bool:
    """``usesFWChain`` (iptables): endpoints, LoadBalancer IPs and loadBalancerSourceRanges."""
    return s.has_endpoints and bool(s.service.load_balancer_ips) and bool(s.service.load_balancer_source_ranges)


def _iptables_entries(s: ServiceRules, out: _Restore, proxy: Proxy) -> None:
    """One Service port's ways in: its cluster IP, external IPs, load-balancer IPs and node port, each jumping to
    its chain where it has endpoints, and rejected or dropped in ``*filter`` where it has none for that traffic;
    its health check node port accepted."""
    svc, name = s.service, service_port_name(s.service)
    dest = f"-m {PROTOCOL} -p {PROTOCOL} -d {s.cluster_ip} --dport {svc.port}"
    target, why = _filter_verdict(s)
    if has_internal_endpoints(s):
        if proxy.detector.implemented:  # "masquerades off-cluster traffic to a service VIP"
            out.nat_rules.append(
                f"-A {internal_chain(s)} {_comment(f'{name} cluster IP')} {dest} "
                f"{proxy.detector.if_not_local} -j KUBE-MARK-MASQ"
            )
        out.nat_rules.append(f"-A KUBE-SERVICES {_comment(f'{name} cluster IP')} {dest} -j {internal_chain(s)}")
    else:
        out.filter_rules.append(f"-A KUBE-SERVICES {_comment(f'{name} {why}')} {dest} -j {target}")
    external = has_external_endpoints(s)
    for ip in svc.external_ips:
        ext_dest = f"-m {PROTOCOL} -p {PROTOCOL} -d {ip} --dport {svc.port}"
        if s.has_endpoints:
            out.nat_rules.append(f"-A KUBE-SERVICES {_comment(f'{name} external IP')} {ext_dest} -j {ext_chain(svc)}")
        if not external:
            out.filter_rules.append(f"-A KUBE-EXTERNAL-SERVICES {_comment(f'{name} {why}')} {ext_dest} -j {target}")
    lb_target = fw_chain(svc) if uses_fw_chain(s) else ext_chain(svc)
    for ip in svc.load_balancer_ips:
        lb_dest = f"-m {PROTOCOL} -p {PROTOCOL} -d {ip} --dport {svc.port}"
        if s.has_endpoints:
            out.nat_rules.append(f"-A KUBE-SERVICES {_comment(f'{name} loadbalancer IP')} {lb_dest} -j {lb_target}")
        if uses_fw_chain(s):
            out.filter_rules.append(
                f"-A KUBE-PROXY-FIREWALL {_comment(f'{name} traffic not accepted by {fw_chain(svc)}')} "
                f"{lb_dest} -j DROP"
            )
    if not external:
        for ip in svc.load_balancer_ips:
            lb_dest = f"-m {PROTOCOL} -p {PROTOCOL} -d {ip} --dport {svc.port}"
            out.filter_rules.append(f"-A KUBE-EXTERNAL-SERVICES {_comment(f'{name} {why}')} {lb_dest} -j {target}")
    if svc.node_port:
        np_dest = f"-m {PROTOCOL} -p {PROTOCOL} --dport {svc.node_port}"
        if s.has_endpoints:
            out.nat_rules.append(
                f"-A KUBE-NODEPORTS -m comment --comment {iptables_word(name)} {np_dest} -j {ext_chain(svc)}"
            )
        if not external:
            out.filter_rules.append(
                f"-A KUBE-EXTERNAL-SERVICES {_comment(f'{name} {why}')} -m addrtype --dst-type LOCAL "
                f"{np_dest} -j {target}"
            )
    if health_check_node_port(svc):  # "no matter if node has local endpoints", the health check is let in
        out.filter_rules.append(
            f"-A KUBE-NODEPORTS {_comment(f'{name} health check node port')} -m tcp -p tcp "
            f"--dport {svc.health_check_node_port} -j ACCEPT"
        )


def _iptables_external_chain(s: ServiceRules, out: _Restore, proxy: Proxy) -> None:
    """A Service's KUBE-EXT chain where it has one: masquerade, short-circuit pod and local traffic, then its
    policy."""
    if not uses_external_chain(s):
        return
    svc, name = s.service, service_port_name(s.service)
    ext = ext_chain(svc)
    out.nat_chains.append(f":{ext} - [0:0]")
    if not _external_local(svc):
        out.nat_rules.append(
            f"-A {ext} {_comment(f'masquerade traffic for {name} external destinations')} -j KUBE-MARK-MASQ"
        )
    else:
        if proxy.detector.implemented:
            out.nat_rules.append(
                f"-A {ext} {_comment(f'pod traffic for {name} external destinations')} "
                f"{proxy.detector.if_local} -j {svc_chain(svc)}"
            )
        out.nat_rules += [
            f"-A {ext} {_comment(f'masquerade LOCAL traffic for {name} external destinations')} "
            "-m addrtype --src-type LOCAL -j KUBE-MARK-MASQ",
            f"-A {ext} {_comment(f'route LOCAL traffic for {name} external destinations')} "
            f"-m addrtype --src-type LOCAL -j {svc_chain(svc)}",
        ]
    if has_external_endpoints(s):
        out.nat_rules.append(f"-A {ext} -j {external_policy_chain(s)}")


def firewall_sources(s: ServiceRules, proxy: Proxy) -> list[str]:
    """The sources a loadBalancerSourceRanges firewall admits: the ranges, and the LoadBalancer IPs themselves
    when a range holds the node's own IP (``allowFromNode``: a node reaching a VIP-like LB loops back from it)."""
    ranges = list(s.service.load_balancer_source_ranges)
    node = ipaddress.ip_address(proxy.node_ip) if proxy.node_ip else None
    if node is not None and any(node in ipaddress.ip_network(c) for c in ranges):
        ranges += list(s.service.load_balancer_ips)
    return ranges


def _iptables_firewall_chain(s: ServiceRules, out: _Restore, proxy: Proxy) -> None:
    """A Service's KUBE-FW chain (loadBalancerSourceRanges): admitted sources go on to KUBE-EXT; the rest fall
    through undone, and KUBE-PROXY-FIREWALL drops them."""
    if not uses_fw_chain(s):
        return
    svc, name = s.service, service_port_name(s.service)
    fw = fw_chain(svc)
    out.nat_chains.append(f":{fw} - [0:0]")
    for source in firewall_sources(s, proxy):
        out.nat_rules.append(f"-A {fw} {_comment(f'{name} loadbalancer IP')} -s {source} -j {ext_chain(svc)}")
    out.nat_rules.append(f"-A {fw} {_comment(f'other traffic to {name} will be dropped by KUBE-PROXY-FIREWALL')}")


def _iptables_endpoint_chains(s: ServiceRules, out: _Restore) -> None:
    """A Service's KUBE-SVC and KUBE-SVL chains (the pick among endpoints) and a KUBE-SEP chain per endpoint."""
    svc, name = s.service, service_port_name(s.service)
    if uses_cluster_chain(s):
        out.nat_chains.append(f":{svc_chain(svc)} - [0:0]")
        out.nat_rules += _svc_to_endpoint_rules(s, svc_chain(svc), s.cluster or ())
    if uses_local_chain(s):
        out.nat_chains.append(f":{svl_chain(svc)} - [0:0]")
        out.nat_rules += _svc_to_endpoint_rules(s, svl_chain(svc), s.local or ())
    for ep in s.reachable:
        sep = sep_chain(svc, ep.address)
        out.nat_chains.append(f":{sep} - [0:0]")
        head = f"-A {sep} -m comment --comment {iptables_word(name)}"
        out.nat_rules.append(f"{head} -s {_ip(ep)} -j KUBE-MARK-MASQ")
        recent = f" -m recent --name {sep} --set" if _affinity(svc) else ""
        out.nat_rules.append(f"{head}{recent} -m {PROTOCOL} -p {PROTOCOL} -j DNAT --to-destination {ep.address}")


# --- nftables ---------------------------------------------------------------------------------------------------

TABLE = "ip kube-proxy"
_BASE_CHAINS = (  # nftablesBaseChains (since kubernetes#132456): name, type, hook, priority
    ("filter-prerouting-pre-dnat", "filter", "prerouting", -110),
    ("filter-output-pre-dnat", "filter", "output", -110),
    ("filter-input", "filter", "input", 0),
    ("filter-forward", "filter", "forward", 0),
    ("filter-output", "filter", "output", 0),
    ("nat-prerouting", "nat", "prerouting", -100),
    ("nat-output", "nat", "output", -100),
    ("nat-postrouting", "nat", "postrouting", 100),
)
_NFT_JUMPS = (  # nftablesJumpChains (since kubernetes#132456): destination, source, extra match
    ("nodeport-endpoints-check", "filter-input", "ct state new"),
    ("service-endpoints-check", "filter-input", "ct state new"),
    ("service-endpoints-check", "filter-forward", "ct state new"),
    ("service-endpoints-check", "filter-output", "ct state new"),
    ("firewall-check", "filter-prerouting-pre-dnat", "ct state new"),
    ("firewall-check", "filter-output-pre-dnat", "ct state new"),
    ("services", "nat-output", ""),
    ("services", "nat-prerouting", ""),
    ("masquerading", "nat-postrouting", ""),
    ("cluster-ips-check", "filter-forward", "ct state new"),
    ("cluster-ips-check", "filter-output", "ct state new"),
)
_ADDR_MAP = "ipv4_addr . inet_proto . inet_service : verdict"
_PORT_MAP = "inet_proto . inet_service : verdict"


class _Tx:
    """A knftables Transaction written as ``nft -f`` input (knftables' ``writeOperation`` formats)."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.created: set[str] = set()

    def add(self, line: str) -> None:
        self.lines.append(line)

    def ensure_chain(self, chain: str) -> None:
        """``ensureChain``: add and flush a chain once per transaction."""
        if chain not in self.created:
            self.created.add(chain)
            self.add(f"add chain {TABLE} {chain}")
            self.add(f"flush chain {TABLE} {chain}")

    def rule(self, chain: str, rule: str, comment: str | None = None) -> None:
        self.add(f"add rule {TABLE} {chain} {rule}" + (f" comment {nft_comment(comment)}" if comment else ""))


def _setup_nftables(tx: _Tx, proxy: Proxy) -> None:
    """``setupNFTables`` on the first (full) sync of a fresh kube-proxy: the base chains and jumps of
    kubernetes#132456, the unallocated-ClusterIP drop, and NodePorts on the node's IP (``--nodeport-addresses
    primary``, nftables' default: ``cmd/kube-proxy/app/server_linux.go`` ``platformApplyDefaults``)."""
    mark = MASQUERADE_MARK
    tx.add(f'add table {TABLE} {{ comment "rules for kube-proxy" ; }}')
    for name, *_ in _BASE_CHAINS:  # add+delete once, so base chains are recreated with their properties
        tx.add(f"add chain {TABLE} {name}")
        tx.add(f"delete chain {TABLE} {name}")
    for name, kind, hook, prio in _BASE_CHAINS:
        tx.add(f"add chain {TABLE} {name} {{ type {kind} hook {hook} priority {prio} ; }}")
        tx.add(f"flush chain {TABLE} {name}")
    for dst, src, extra in _NFT_JUMPS:
        tx.ensure_chain(dst)
        tx.rule(src, " ".join(filter(None, [extra, "jump", dst])))
    for chain in ("services", "cluster-ips-check", "masquerading", "mark-for-masquerade"):
        tx.ensure_chain(chain)
    tx.rule("mark-for-masquerade", f"mark set mark or {mark}")
    tx.rule("masquerading", f"mark and {mark} == 0 return")
    tx.rule("masquerading", f"mark set mark xor {mark}")
    tx.rule("masquerading", "masquerade fully-random")
    tx.add(f'add set {TABLE} cluster-ips {{ type ipv4_addr ; comment "Active ClusterIPs" ; }}')
    tx.rule("cluster-ips-check", "ip daddr @cluster-ips reject", "Reject traffic to invalid ports of ClusterIPs")
    if proxy.service_cidr:
        tx.rule(
            "cluster-ips-check", f"ip daddr {{ {proxy.service_cidr} }} drop", "Drop traffic to unallocated ClusterIPs"
        )
    tx.add(f'add set {TABLE} nodeport-ips {{ type ipv4_addr ; comment "IPs that accept NodePort traffic" ; }}')
    if proxy.node_ip:  # nftables' default --nodeport-addresses primary: the node's own IP
        tx.add(f"flush set {TABLE} nodeport-ips")
        tx.add(f"add element {TABLE} nodeport-ips {{ {proxy.node_ip} }}")
        nodeports = "ip daddr @nodeport-ips"
    else:  # nodePortAddresses.MatchAll()
        tx.add(f"delete set {TABLE} nodeport-ips")
        nodeports = "fib daddr type local ip daddr != 127.0.0.0/8"
    tx.add(
        f"add map {TABLE} no-endpoint-services {{ type {_ADDR_MAP} ; "
        'comment "vmap to drop or reject packets to services with no endpoints" ; }'
    )
    tx.add(
        f"add map {TABLE} no-endpoint-nodeports {{ type {_PORT_MAP} ; "
        'comment "vmap to drop or reject packets to service nodeports with no endpoints" ; }'
    )
    tx.add(
        f'add chain {TABLE} reject-chain {{ comment "helper for @no-endpoint-services / @no-endpoint-nodeports" ; }}'
    )
    tx.add(f"flush chain {TABLE} reject-chain")
    tx.rule("reject-chain", "reject")
    tx.rule("service-endpoints-check", "ip daddr . meta l4proto . th dport vmap @no-endpoint-services")
    no_endpoint_check = nodeports.removeprefix("fib daddr type local ")
    tx.rule("nodeport-endpoints-check", f"{no_endpoint_check} meta l4proto . th dport vmap @no-endpoint-nodeports")
    tx.add(
        f"add map {TABLE} firewall-ips {{ type {_ADDR_MAP} ; "
        'comment "destinations that are subject to LoadBalancerSourceRanges" ; }'
    )
    tx.ensure_chain("firewall-check")
    tx.rule("firewall-check", "ip daddr . meta l4proto . th dport vmap @firewall-ips")
    tx.add(
        f"add map {TABLE} service-ips {{ type {_ADDR_MAP} ; "
        'comment "ClusterIP, ExternalIP and LoadBalancer IP traffic" ; }'
    )
    tx.add(f'add map {TABLE} service-nodeports {{ type {_PORT_MAP} ; comment "NodePort traffic" ; }}')
    tx.rule("services", "ip daddr . meta l4proto . th dport vmap @service-ips")
    tx.rule("services", f"{nodeports} meta l4proto . th dport vmap @service-nodeports")
    tx.add(f"flush set {TABLE} cluster-ips")
    for m in ("service-ips", "firewall-ips", "no-endpoint-services", "no-endpoint-nodeports", "service-nodeports"):
        tx.add(f"flush map {TABLE} {m}")


def _nft_svc_to_endpoint_rules(tx: _Tx, s: ServiceRules, chain: str, endpoints: Sequence[Endpoint]) -> None:
    """nftables ``writeServiceToEndpointRules``: affinity gotos first, then one ``numgen random`` vmap."""
    svc = s.service
    if _affinity(svc):
        for ep in endpoints:
            base = nft_endpoint_base(svc, ep.address)
            tx.rule(chain, f"ip saddr @affinity-{base} goto endpoint-{base}")
    elements = " , ".join(f"{i} : goto endpoint-{nft_endpoint_base(svc, ep.address)}" for i, ep in enumerate(endpoints))
    tx.rule(chain, f"numgen random mod {len(endpoints)} vmap {{ {elements} }}")


def nft_transaction(services: Sequence[ServiceRules], proxy: Proxy = Proxy()) -> str:
    """``syncProxyRules``' first full transaction for one node, as ``nft -f`` input."""
    tx = _Tx()
    _setup_nftables(tx, proxy)
    for s in services:
        _nft_chains(tx, s)
        _nft_elements(tx, s)
        _nft_service_rules(tx, s, proxy)
        _nft_endpoint_chains(tx, s)
    return "\n".join(tx.lines) + "\n"


@dataclass(frozen=True)
class _NftNames:
    """A Service port's nftables chain names (``service-``, ``local-``, ``external-``, ``firewall-`` + base)."""

    cluster: str
    local: str
    external: str
    firewall: str

    @staticmethod
    def of(svc: Service) -> _NftNames:
        base = nft_chain_base(svc)
        return _NftNames(f"service-{base}", f"local-{base}", f"external-{base}", f"firewall-{base}")


def nft_uses_fw_chain(s: ServiceRules) -> bool:
    """nftables ``usesFWChain``: LoadBalancer IPs and loadBalancerSourceRanges (endpoints or not)."""
    return bool(s.service.load_balancer_ips) and bool(s.service.load_balancer_source_ranges)


def _nft_chains(tx: _Tx, s: ServiceRules) -> None:
    """The chains a Service port uses, each created and flushed once."""
    svc, names = s.service, _NftNames.of(s.service)
    for ep in s.reachable:
        tx.ensure_chain(f"endpoint-{nft_endpoint_base(svc, ep.address)}")
    if uses_cluster_chain(s):
        tx.ensure_chain(names.cluster)
    if uses_local_chain(s):
        tx.ensure_chain(names.local)
    if uses_external_chain(s):
        tx.ensure_chain(names.external)
    if nft_uses_fw_chain(s):
        tx.ensure_chain(names.firewall)


def _nft_elements(tx: _Tx, s: ServiceRules) -> None:
    """A Service port's map elements: where its ClusterIP, external IPs, LoadBalancer IPs and node port go, the
    no-endpoint verdicts, and the firewall map for loadBalancerSourceRanges."""
    svc, name, names = s.service, service_port_name(s.service), _NftNames.of(s.service)
    internal = names.local if svc.internal_traffic_policy == TrafficPolicy.LOCAL else names.cluster
    verdict = "goto reject-chain" if not s.has_endpoints else "drop"
    external = has_external_endpoints(s)

    def key(ip: str) -> str:
        return f"{ip} . {PROTOCOL} . {svc.port}"

    tx.add(f"add element {TABLE} cluster-ips {{ {s.cluster_ip} }}")
    if has_internal_endpoints(s):
        tx.add(f"add element {TABLE} service-ips {{ {key(s.cluster_ip)} : goto {internal} }}")
    else:
        comment = nft_comment(name)
        tx.add(f"add element {TABLE} no-endpoint-services {{ {key(s.cluster_ip)} comment {comment} : {verdict} }}")
    for ip in svc.external_ips:
        if s.has_endpoints:
            tx.add(f"add element {TABLE} service-ips {{ {key(ip)} : goto {names.external} }}")
        if not external:
            tx.add(f"add element {TABLE} no-endpoint-services {{ {key(ip)} comment {nft_comment(name)} : {verdict} }}")
    for ip in svc.load_balancer_ips:
        if s.has_endpoints:
            tx.add(f"add element {TABLE} service-ips {{ {key(ip)} : goto {names.external} }}")
        if nft_uses_fw_chain(s):
            tx.add(f"add element {TABLE} firewall-ips {{ {key(ip)} : goto {names.firewall} }}")
    if not external:
        for ip in svc.load_balancer_ips:
            tx.add(f"add element {TABLE} no-endpoint-services {{ {key(ip)} comment {nft_comment(name)} : {verdict} }}")
    if svc.node_port:
        port = f"{PROTOCOL} . {svc.node_port}"
        if s.has_endpoints:
            tx.add(f"add element {TABLE} service-nodeports {{ {port} : goto {names.external} }}")
        if not external:
            tx.add(f"add element {TABLE} no-endpoint-nodeports {{ {port} comment {nft_comment(name)} : {verdict} }}")


def _nft_service_rules(tx: _Tx, s: ServiceRules, proxy: Proxy) -> None:
    """A Service port's own rules: off-cluster masquerade to its ClusterIP, its external chain, its firewall
    chain, its affinity sets, and the pick among endpoints in its cluster and local chains."""
    svc, names, found = s.service, _NftNames.of(s.service), proxy.detector
    if has_internal_endpoints(s) and found.implemented:  # "masquerades off-cluster traffic to a service VIP"
        chain = names.local if svc.internal_traffic_policy == TrafficPolicy.LOCAL else names.cluster
        tx.rule(chain, f"ip daddr {s.cluster_ip} {found.if_not_local_nft} jump mark-for-masquerade")
    if uses_external_chain(s):
        if not _external_local(svc):
            tx.rule(names.external, "jump mark-for-masquerade")
        else:
            if found.implemented:
                tx.rule(names.external, f"{found.if_local_nft} goto {names.cluster}", "short-circuit pod traffic")
            tx.rule(names.external, "fib saddr type local jump mark-for-masquerade", "masquerade local traffic")
            tx.rule(names.external, f"fib saddr type local goto {names.cluster}", "short-circuit local traffic")
        if has_external_endpoints(s):
            tx.rule(names.external, f"goto {names.local if _external_local(svc) else names.cluster}")
    if nft_uses_fw_chain(s):
        tx.rule(names.firewall, f"ip saddr != {{ {' , '.join(firewall_sources(s, proxy))} }} drop")
    if _affinity(svc):
        for ep in s.reachable:
            tx.add(
                f"add set {TABLE} affinity-{nft_endpoint_base(svc, ep.address)} {{ type ipv4_addr ; "
                f"flags dynamic,timeout ; timeout {_sticky_seconds(svc)}s ; }}"
            )
    if uses_cluster_chain(s):
        _nft_svc_to_endpoint_rules(tx, s, names.cluster, s.cluster or ())
    if uses_local_chain(s):
        _nft_svc_to_endpoint_rules(tx, s, names.local, s.local or ())


def _nft_endpoint_chains(tx: _Tx, s: ServiceRules) -> None:
    """Each endpoint's chain: hairpin masquerade, affinity update, DNAT."""
    svc = s.service
    for ep in s.reachable:
        chain = f"endpoint-{nft_endpoint_base(svc, ep.address)}"
        tx.rule(chain, f"ip saddr {_ip(ep)} jump mark-for-masquerade")
        if _affinity(svc):
            tx.rule(chain, f"update @affinity-{nft_endpoint_base(svc, ep.address)} {{ ip saddr }}")
        tx.rule(chain, f"meta l4proto {PROTOCOL} dnat to {ep.address}")


def node_rules(services: Sequence[ServiceRules], mode: str, proxy: Proxy = Proxy()) -> dict[str, str]:
    """What kube-proxy ``mode`` writes on one node, by step: iptables ``jumps`` then ``restore``; nftables
    ``transaction``."""
    if mode == "iptables":
        return {"jumps": iptables_jumps(), "restore": iptables_restore(services, proxy)}
    return {"transaction": nft_transaction(services, proxy)}
