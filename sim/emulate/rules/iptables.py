"""The rules kube-proxy's iptables mode writes for one node, as ``iptables-restore`` text: pure, no I/O.

It follows ``pkg/proxy/iptables/proxier.go`` (kubernetes/kubernetes): ``syncProxyRules`` writes one
``iptables-restore --noflush`` payload (``*filter`` then ``*nat``), after ``EnsureChain``/``EnsureRule`` have
prepended the jumps of ``iptablesJumpChains`` and ``iptablesKubeletJumpChains`` into the built-in chains;
``writeServiceToEndpointRules`` writes each ``KUBE-SVC-*``/``KUBE-SVL-*`` chain (affinity ``recent --rcheck``
rules first, then ``statistic --mode random --probability 1/(n-i)`` for all but the last endpoint, formatted by
``computeProbability`` as ``%0.10f``). Chain names are ``portProtoHash`` / ``servicePortEndpointChainName``: the
first 16 characters of base32(sha256(name + protocol [+ endpoint])). kube-proxy walks its Service map in Go's
random map order; here Services come in the scenario's order, each port in turn. Rendered: ClusterIPs, NodePorts,
external IPs and LoadBalancer IPs, ``loadBalancerSourceRanges`` (``KUBE-FW-*`` chains) and the health check node
port.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sim.cluster import Endpoint, Service, ServiceType, TrafficPolicy
from sim.emulate.layout import ServiceRules
from sim.emulate.quoting import iptables_comment, iptables_word
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
    service_port_name,
    sticky_seconds,
    uses_cluster_chain,
    uses_external_chain,
    uses_local_chain,
)


def port_proto_hash(service_port_name: str, protocol: str = PROTOCOL) -> str:
    """iptables ``portProtoHash``: base32(sha256(name + protocol)), first 16 characters.

    >>> port_proto_hash("ns1/svc1:p80", "tcp")  # upstream's proxier_test: KUBE-SVC-XPGD46QRK7WJZT7O
    'XPGD46QRK7WJZT7O'
    """
    return b32_sha256(service_port_name + protocol)[:16]


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
    return b32_sha256(service_port_name + protocol + endpoint)[:16]


def sep_chain(svc: Service, endpoint: str) -> str:
    """``servicePortEndpointChainName``: the ``KUBE-SEP-*`` chain of one endpoint ("IP:port") of ``svc``."""
    return "KUBE-SEP-" + endpoint_hash(service_port_name(svc), endpoint)


def probability(n: int) -> str:
    """``computeProbability``: ``fmt.Sprintf("%0.10f", 1.0/float64(n))``.

    >>> probability(3), probability(2)
    ('0.3333333333', '0.5000000000')
    """
    return f"{1.0 / n:.10f}"


def fw_chain(svc: Service) -> str:
    """iptables ``serviceFirewallChainName``: the ``KUBE-FW-*`` chain of loadBalancerSourceRanges."""
    return "KUBE-FW-" + port_proto_hash(service_port_name(svc))


def ext_chain(svc: Service) -> str:
    """``serviceExternalChainName``: the ``KUBE-EXT-*`` chain every external destination jumps to."""
    return "KUBE-EXT-" + port_proto_hash(service_port_name(svc))


def external_policy_chain(s: ServiceRules) -> str:
    """``externalPolicyChain``: KUBE-SVL for eTP=Local, else KUBE-SVC."""
    return svl_chain(s.service) if external_policy_local(s.service) else svc_chain(s.service)


def _filter_verdict(s: ServiceRules) -> tuple[str, str]:
    """The filter target and comment for traffic with no endpoint to go to: REJECT if none anywhere, else DROP."""
    if not s.has_endpoints:
        return "REJECT", "has no endpoints"
    return "DROP", "has no local endpoints"


def internal_chain(s: ServiceRules) -> str:
    """``internalTrafficChain``: KUBE-SVL for iTP=Local, else KUBE-SVC."""
    local = s.service.internal_traffic_policy == TrafficPolicy.LOCAL
    return svl_chain(s.service) if local else svc_chain(s.service)


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
    if client_ip_affinity(svc):
        for ep in endpoints:
            sep = sep_chain(svc, ep.address)
            rules.append(
                f"-A {chain} {_comment(f'{name} -> {ep.address}')} -m recent --name {sep} --rcheck "
                f"--seconds {sticky_seconds(svc)} --reap -j {sep}"
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
    return svc.health_check_node_port if external_policy_local(svc) and svc.kind == ServiceType.LOAD_BALANCER else 0


def uses_fw_chain(s: ServiceRules) -> bool:
    """``usesFWChain`` (iptables): endpoints, LoadBalancer IPs and loadBalancerSourceRanges."""
    return s.has_endpoints and bool(s.service.load_balancer_ips) and bool(s.service.load_balancer_source_ranges)


def _iptables_entries(s: ServiceRules, out: _Restore, proxy: Proxy) -> None:
    """One Service port's ways in: its cluster IP, external IPs, load-balancer IPs and node port, each jumping to
    its chain where it has endpoints, and rejected or dropped in ``*filter`` where it has none for that traffic;
    its health check node port accepted."""
    svc, name = s.service, service_port_name(s.service)
    target, why = _filter_verdict(s)

    def to(ip: str) -> str:
        return f"-m {PROTOCOL} -p {PROTOCOL} -d {ip} --dport {svc.port}"

    dest = to(s.cluster_ip)
    if has_internal_endpoints(s):
        if proxy.masquerade_all:  # "SNAT all traffic sent via Service cluster IPs"
            out.nat_rules.append(f"-A {internal_chain(s)} {_comment(f'{name} cluster IP')} {dest} -j KUBE-MARK-MASQ")
        elif proxy.detector.implemented:  # "masquerades off-cluster traffic to a service VIP"
            out.nat_rules.append(
                f"-A {internal_chain(s)} {_comment(f'{name} cluster IP')} {dest} "
                f"{proxy.detector.if_not_local} -j KUBE-MARK-MASQ"
            )
        out.nat_rules.append(f"-A KUBE-SERVICES {_comment(f'{name} cluster IP')} {dest} -j {internal_chain(s)}")
    else:
        out.filter_rules.append(f"-A KUBE-SERVICES {_comment(f'{name} {why}')} {dest} -j {target}")
    external = has_external_endpoints(s)
    for ip in svc.external_ips:
        ext_dest = to(ip)
        if s.has_endpoints:
            out.nat_rules.append(f"-A KUBE-SERVICES {_comment(f'{name} external IP')} {ext_dest} -j {ext_chain(svc)}")
        if not external:
            out.filter_rules.append(f"-A KUBE-EXTERNAL-SERVICES {_comment(f'{name} {why}')} {ext_dest} -j {target}")
    lb_target = fw_chain(svc) if uses_fw_chain(s) else ext_chain(svc)
    for ip in svc.load_balancer_ips:
        lb_dest = to(ip)
        if s.has_endpoints:
            out.nat_rules.append(f"-A KUBE-SERVICES {_comment(f'{name} loadbalancer IP')} {lb_dest} -j {lb_target}")
        if uses_fw_chain(s):
            out.filter_rules.append(
                f"-A KUBE-PROXY-FIREWALL {_comment(f'{name} traffic not accepted by {fw_chain(svc)}')} "
                f"{lb_dest} -j DROP"
            )
    if not external:
        for ip in svc.load_balancer_ips:
            out.filter_rules.append(f"-A KUBE-EXTERNAL-SERVICES {_comment(f'{name} {why}')} {to(ip)} -j {target}")
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
    if not external_policy_local(svc):
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
        out.nat_rules.append(f"{head} -s {endpoint_ip(ep)} -j KUBE-MARK-MASQ")
        recent = f" -m recent --name {sep} --set" if client_ip_affinity(svc) else ""
        out.nat_rules.append(f"{head}{recent} -m {PROTOCOL} -p {PROTOCOL} -j DNAT --to-destination {ep.address}")
