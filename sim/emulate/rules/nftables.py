"""The rules kube-proxy's nftables mode writes for one node, as ``nft -f`` text: pure, no I/O.

It follows ``pkg/proxy/nftables/proxier.go`` (kubernetes/kubernetes): ``setupNFTables`` then ``syncProxyRules``
build one knftables transaction (written as ``nft -f`` input the way knftables' ``writeOperation`` does), with the
``service-ips`` / ``no-endpoint-services`` verdict maps, per-service chains named by ``servicePortChainNameBase``
(``hashAndTruncate``: 8 characters of the same hash as iptables', then the readable name) and ``numgen random mod
N vmap``. Services come in the scenario's order, each port in turn. Rendered: ClusterIPs, NodePorts, external IPs
and LoadBalancer IPs and ``loadBalancerSourceRanges`` (``firewall-*`` chains); nftables writes no rule for the
health check node port.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sim.cluster import Endpoint, Service, TrafficPolicy
from sim.emulate.layout import ServiceRules
from sim.emulate.quoting import nft_comment, nft_identifier
from sim.emulate.rules.common import (
    MASQUERADE_MARK,
    PROTOCOL,
    Proxy,
    b32_sha256,
    client_ip_affinity,
    endpoint_ip,
    external_policy_local,
    firewall_sources,
    has_external_endpoints,
    has_internal_endpoints,
    qualified,
    service_port_name,
    sticky_seconds,
    uses_cluster_chain,
    uses_external_chain,
    uses_local_chain,
)


def hash_and_truncate(name: str) -> str:
    """nftables ``hashAndTruncate``: 8 characters of base32(sha256(name)), a dash, the name (cut at 240).

    >>> hash_and_truncate("ns1/svc1/tcp/p80")  # upstream's comment: "ULMVA6XW-ns1/svc1/tcp/p80"
    'ULMVA6XW-ns1/svc1/tcp/p80'
    """
    out = nft_identifier(b32_sha256(name), name)  # the hash alone where the name is not an nft identifier
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
        no_endpoint_check = nodeports = "ip daddr @nodeport-ips"
    else:  # nodePortAddresses.MatchAll()
        tx.add(f"delete set {TABLE} nodeport-ips")
        no_endpoint_check = "ip daddr != 127.0.0.0/8"
        nodeports = f"fib daddr type local {no_endpoint_check}"
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
    if client_ip_affinity(svc):
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
    """A Service port's nftables chain names (``service-``, ``local-``, ``external-``, ``firewall-`` + base), and
    ``internal``: its ``internalTrafficChain`` (``local-`` for iTP=Local, else ``service-``)."""

    cluster: str
    local: str
    external: str
    firewall: str
    internal: str

    @staticmethod
    def of(svc: Service) -> _NftNames:
        base = nft_chain_base(svc)
        local = svc.internal_traffic_policy == TrafficPolicy.LOCAL
        internal = f"local-{base}" if local else f"service-{base}"
        return _NftNames(f"service-{base}", f"local-{base}", f"external-{base}", f"firewall-{base}", internal)


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
    verdict = "goto reject-chain" if not s.has_endpoints else "drop"
    external = has_external_endpoints(s)

    def key(ip: str) -> str:
        return f"{ip} . {PROTOCOL} . {svc.port}"

    tx.add(f"add element {TABLE} cluster-ips {{ {s.cluster_ip} }}")
    if has_internal_endpoints(s):
        tx.add(f"add element {TABLE} service-ips {{ {key(s.cluster_ip)} : goto {names.internal} }}")
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
    if has_internal_endpoints(s) and proxy.masquerade_all:  # every connection to the ClusterIP
        tx.rule(names.internal, f"ip daddr {s.cluster_ip} jump mark-for-masquerade")
    elif has_internal_endpoints(s) and found.implemented:  # "masquerades off-cluster traffic to a service VIP"
        tx.rule(names.internal, f"ip daddr {s.cluster_ip} {found.if_not_local_nft} jump mark-for-masquerade")
    if uses_external_chain(s):
        if not external_policy_local(svc):
            tx.rule(names.external, "jump mark-for-masquerade")
        else:
            if found.implemented:
                tx.rule(names.external, f"{found.if_local_nft} goto {names.cluster}", "short-circuit pod traffic")
            tx.rule(names.external, "fib saddr type local jump mark-for-masquerade", "masquerade local traffic")
            tx.rule(names.external, f"fib saddr type local goto {names.cluster}", "short-circuit local traffic")
        if has_external_endpoints(s):
            tx.rule(names.external, f"goto {names.local if external_policy_local(svc) else names.cluster}")
    if nft_uses_fw_chain(s):
        tx.rule(names.firewall, f"ip saddr != {{ {' , '.join(firewall_sources(s, proxy))} }} drop")
    if client_ip_affinity(svc):
        for ep in s.reachable:
            tx.add(
                f"add set {TABLE} affinity-{nft_endpoint_base(svc, ep.address)} {{ type ipv4_addr ; "
                f"flags dynamic,timeout ; timeout {sticky_seconds(svc)}s ; }}"
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
        tx.rule(chain, f"ip saddr {endpoint_ip(ep)} jump mark-for-masquerade")
        if client_ip_affinity(svc):
            tx.rule(chain, f"update @affinity-{nft_endpoint_base(svc, ep.address)} {{ ip saddr }}")
        tx.rule(chain, f"meta l4proto {PROTOCOL} dnat to {ep.address}")
