"""kube-proxy's own expected-output tests, replayed: the Services and EndpointSlices of upstream's
``TestOverallNFTablesRules`` (``pkg/proxy/nftables/proxier_test.go``) and ``TestOverallIPTablesRules``
(``pkg/proxy/iptables/proxier_test.go``) built as a Scenario, their rules written by the functions
``sim emulate --show-rules`` prints (``sim.emulate.layout.service_rules`` per node, ``sim.emulate.rules.node_rules``),
and compared with upstream's expected text (``tests/data/kube_proxy``, source and license in ``SOURCE.txt``).

The comparison is what upstream's own assertions compare: each chain's rules in order, and the set of chains,
sets, maps and elements; kube-proxy's transaction steps that a dump does not show (``flush``, ``delete``, the
add+delete of base chains) are left out. Two differences of the fixture, not of kube-proxy, are normalised: the
fake proxier's masquerade mark ``0x4000`` (the real one formats ``%#08x``: ``0x004000``) and, in iptables, the fake
iptables' lack of ``--random-fully``.
"""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import pytest

from sim.cluster import Endpoint, Pod, Service, ServiceType, SessionAffinity, TrafficPolicy
from sim.emulate.layout import service_rules
from sim.emulate.rules import Proxy, detector, node_rules
from sim.routing import DataplaneConfig
from sim.scenario import Scenario, route_for
from tests.conftest import star
from tests.test_emulate import MODES

DATA = Path(__file__).parent / "data" / "kube_proxy"
NODE = "test-node"
CLUSTER_IPS = {f"ns{i}/svc{i}": f"172.30.0.4{i}" for i in range(1, 7)}
PROXY = Proxy(detector("ClusterCIDR", "10.0.0.0/8"), "192.168.0.2", "172.30.0.0/16")


def upstream_scenario(mode: str, affinity: bool) -> Scenario:
    """The six Services of upstream's overall test (ns1/svc1 ... ns6/svc6, port ``p80``) with their endpoints:
    none has a node but 10.180.0.5 (on ``test-node``), so the eTP=Local svc2 has no local endpoint."""
    lb, local = ServiceType.LOAD_BALANCER, TrafficPolicy.LOCAL
    services = (
        Service("ns1/svc1", port_name="p80"),
        Service(
            "ns2/svc2",
            port_name="p80",
            type=lb,
            external_traffic_policy=local,
            node_port=3001,
            load_balancer_ips=("1.2.3.4",),
            external_ips=("192.168.99.22",),
            health_check_node_port=30000,
        ),
        Service("ns3/svc3", port_name="p80", type=ServiceType.NODE_PORT, node_port=3003),
        Service("ns4/svc4", port_name="p80", type=ServiceType.NODE_PORT, external_ips=("192.168.99.33",)),
        Service(
            "ns5/svc5",
            port_name="p80",
            type=lb,
            node_port=3002,
            load_balancer_ips=("5.6.7.8",),
            health_check_node_port=30000,  # eTP=Cluster: NeedsHealthCheck is false, no rule
            load_balancer_source_ranges=("203.0.113.0/25",),
            session_affinity=SessionAffinity.CLIENT_IP if affinity else SessionAffinity.NONE,
        ),
        Service("ns6/svc6", port_name="p80"),
    )
    slices = {
        "ns1/svc1": [("10.180.0.1", None)],
        "ns2/svc2": [("10.180.0.2", None)],
        "ns3/svc3": [("10.180.0.3", None)],
        "ns4/svc4": [("10.180.0.4", None), ("10.180.0.5", NODE)],
        "ns5/svc5": [("10.180.0.3", None)],
    }
    pods = [Pod(f"{svc.split('/')[0]}/ep-{ip}", "node2", ip) for svc, eps in slices.items() for ip, _ in eps]
    given = {
        svc: tuple(Endpoint(f"{ip}:80", node_name=node, pod=f"{svc.split('/')[0]}/ep-{ip}") for ip, node in eps)
        for svc, eps in slices.items()
    }
    return Scenario(
        name="upstream",
        topology=star([NODE, "node2"]),
        pods=tuple(pods),
        services=services,
        streams=(),
        dataplane=DataplaneConfig(mode, cluster_cidr="10.0.0.0/8"),
        given_endpoints=given,
    )


def ours(mode: str, affinity: bool) -> str:
    """The rules for ``test-node``, as ``show_rules`` writes them, with the fixture's mark."""
    sc = upstream_scenario(mode, affinity)
    text = "".join(node_rules(service_rules(sc, NODE, CLUSTER_IPS), mode, PROXY).values())
    return text.replace("0x004000", "0x4000").replace(" --random-fully", "")


def nft_dump(text: str) -> tuple[set[str], dict[str, list[str]]]:
    """What ``knftables.Fake.Dump`` compares: the objects added (not flushed or deleted, base chains once with
    their properties), and each chain's rules in order."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]
    deleted = {ln.removeprefix("delete ") for ln in lines if ln.startswith("delete ")}
    added = [ln for ln in lines if ln.startswith("add ") and ln.removeprefix("add ") not in deleted]
    rules: dict[str, list[str]] = {}
    for ln in added:
        if ln.startswith("add rule ip kube-proxy "):
            chain = ln.split()[4]
            rules.setdefault(chain, []).append(ln)
    return {ln for ln in added if not ln.startswith("add rule ")}, rules


def iptables_dump(text: str) -> dict[str, tuple[set[str], dict[str, list[str]]]]:
    """Per table: its chains, and each chain's rules in order (what ``assertIPTablesRulesEqual`` compares)."""
    out: dict[str, tuple[set[str], dict[str, list[str]]]] = {}
    table = ""
    for ln in text.splitlines():
        if ln.startswith("*"):
            table = ln[1:]
            out.setdefault(table, (set(), {}))
        elif ln.startswith(":"):
            out[table][0].add(ln.split()[0])
        elif ln.startswith("-A "):
            out[table][1].setdefault(ln.split()[1], []).append(ln)
    return out


def test_overall_nftables_rules_match_upstream():
    """kubernetes ``pkg/proxy/nftables/proxier_test.go`` ``TestOverallNFTablesRules``: every object and every
    chain's rules, with the base chains of kubernetes#132456, the unallocated-ClusterIP drop, the detector's
    rules, the firewall chain of loadBalancerSourceRanges and NodePorts on the node's IP (``primary``)."""
    expected = nft_dump((DATA / "overall_nftables.expected").read_text())
    got = nft_dump(ours("nftables", affinity=True))
    assert got[0] == expected[0]
    assert got[1] == expected[1]


def test_overall_iptables_rules_match_upstream():
    """kubernetes ``pkg/proxy/iptables/proxier_test.go`` ``TestOverallIPTablesRules``: both tables' chains and
    every chain's rules in order, with the health check node port, ``KUBE-FW-*`` and ``KUBE-PROXY-FIREWALL`` for
    loadBalancerSourceRanges, and the ClusterCIDR detector's masquerade and short-circuit rules."""
    restore = ours("iptables", affinity=False).split("COMMIT\n", 2)[-1]  # after the jumps' two tables
    expected = iptables_dump((DATA / "overall_iptables.expected").read_text())
    got = iptables_dump(restore)
    assert set(got) == set(expected) == {"filter", "nat"}
    for table in expected:
        assert got[table][0] == expected[table][0], table
        assert got[table][1] == expected[table][1], table


def test_a_wrong_model_fails_the_replay():
    """The replay can fail: without the local-traffic detector (the rules the emulation wrote before), or with the
    nftables base chains of before kubernetes#132456, the dumps differ from upstream's."""
    sc = upstream_scenario("nftables", affinity=True)
    no_detector = "".join(node_rules(service_rules(sc, NODE, CLUSTER_IPS), "nftables", Proxy()).values())
    expected = nft_dump((DATA / "overall_nftables.expected").read_text())
    assert nft_dump(no_detector.replace("0x004000", "0x4000"))[1] != expected[1]
    old_layout = ours("nftables", affinity=True).replace("filter-output-pre-dnat", "filter-output-post-dnat")
    assert nft_dump(old_layout)[0] != expected[0]


# --- TestInternalExternalMasquerade (pkg/proxy/nftables/proxier_test.go, the same flows in iptables) -----------

MASQ_FLOWS = [  # upstream's 27 flowTests, in its order: (flow name, service, source, expected endpoints, masq)
    ("pod to ClusterIP", "ns1/svc1", "pod", "10.180.0.1:80, 10.180.1.1:80", False),
    ("pod to NodePort", "ns1/svc1", "pod-external", "10.180.0.1:80, 10.180.1.1:80", True),
    ("pod to LB", "ns1/svc1", "pod-external", "10.180.0.1:80, 10.180.1.1:80", True),
    ("node to ClusterIP", "ns1/svc1", "node", "10.180.0.1:80, 10.180.1.1:80", True),
    ("node to NodePort", "ns1/svc1", "node-external", "10.180.0.1:80, 10.180.1.1:80", True),
    ("node to LB", "ns1/svc1", "node-external", "10.180.0.1:80, 10.180.1.1:80", True),
    ("external to ClusterIP", "ns1/svc1", "external-cluster-ip", "10.180.0.1:80, 10.180.1.1:80", True),
    ("external to NodePort", "ns1/svc1", "external", "10.180.0.1:80, 10.180.1.1:80", True),
    ("external to LB", "ns1/svc1", "external", "10.180.0.1:80, 10.180.1.1:80", True),
    ("pod to ClusterIP with eTP:Local", "ns2/svc2", "pod", "10.180.0.2:80, 10.180.1.2:80", False),
    ("pod to NodePort with eTP:Local", "ns2/svc2", "pod-external", "10.180.0.2:80, 10.180.1.2:80", False),
    ("pod to LB with eTP:Local", "ns2/svc2", "pod-external", "10.180.0.2:80, 10.180.1.2:80", False),
    ("node to ClusterIP with eTP:Local", "ns2/svc2", "node", "10.180.0.2:80, 10.180.1.2:80", True),
    # upstream's flow calls port 3001, svc1's NodePort (not svc2's 3002), and expects svc1's endpoints
    ("node to NodePort with eTP:Local", "ns1/svc1", "node-external", "10.180.0.1:80, 10.180.1.1:80", True),
    ("node to LB with eTP:Local", "ns2/svc2", "node-external", "10.180.0.2:80, 10.180.1.2:80", True),
    ("external to ClusterIP with eTP:Local", "ns2/svc2", "external-cluster-ip", "10.180.0.2:80, 10.180.1.2:80", True),
    ("external to NodePort with eTP:Local", "ns2/svc2", "external", "10.180.0.2:80", False),
    ("external to LB with eTP:Local", "ns2/svc2", "external", "10.180.0.2:80", False),
    ("pod to ClusterIP with iTP:Local", "ns3/svc3", "pod", "10.180.0.3:80", False),
    ("pod to NodePort with iTP:Local", "ns3/svc3", "pod-external", "10.180.0.3:80, 10.180.1.3:80", True),
    ("pod to LB with iTP:Local", "ns3/svc3", "pod-external", "10.180.0.3:80, 10.180.1.3:80", True),
    ("node to ClusterIP with iTP:Local", "ns3/svc3", "node", "10.180.0.3:80", True),
    ("node to NodePort with iTP:Local", "ns3/svc3", "node-external", "10.180.0.3:80, 10.180.1.3:80", True),
    ("node to LB with iTP:Local", "ns3/svc3", "node-external", "10.180.0.3:80, 10.180.1.3:80", True),
    ("external to ClusterIP with iTP:Local", "ns3/svc3", "external-cluster-ip", "10.180.0.3:80", True),
    ("external to NodePort with iTP:Local", "ns3/svc3", "external", "10.180.0.3:80, 10.180.1.3:80", True),
    ("external to LB with iTP:Local", "ns3/svc3", "external", "10.180.0.3:80, 10.180.1.3:80", True),
]
NO_DETECTOR = {  # "no LocalTrafficDetector": ClusterIP traffic assumed a pod's; no eTP=Local pod short-circuit
    "node to ClusterIP": (None, False),
    "node to ClusterIP with eTP:Local": (None, False),
    "node to ClusterIP with iTP:Local": (None, False),
    "external to ClusterIP": (None, False),
    "external to ClusterIP with eTP:Local": (None, False),
    "external to ClusterIP with iTP:Local": (None, False),
    "pod to NodePort with eTP:Local": ("10.180.0.2:80", None),
    "pod to LB with eTP:Local": ("10.180.0.2:80", None),
}
MASQUERADE_ALL = {  # "masqueradeAll": every connection to a ClusterIP masqueraded
    "pod to ClusterIP": (None, True),
    "pod to ClusterIP with eTP:Local": (None, True),
    "pod to ClusterIP with iTP:Local": (None, True),
}
MASQ_CASES = {  # upstream's testCases: (masqueradeAll, detector, overrides (output, masq); None: the base value)
    "base": (False, "ClusterCIDR", {}),
    "no LocalTrafficDetector": (False, "none", NO_DETECTOR),
    "masqueradeAll": (True, "ClusterCIDR", MASQUERADE_ALL),
    "masqueradeAll, no LocalTrafficDetector": (
        True,
        "none",
        {**MASQUERADE_ALL, **{k: v for k, v in NO_DETECTOR.items() if "ClusterIP" not in k}},
    ),
}


def masquerade_scenario(mode: str, detector_mode: str, masquerade_all: bool = False) -> Scenario:
    """``TestInternalExternalMasquerade``'s ``setupTest``: three LoadBalancers (plain, eTP=Local, iTP=Local), each
    with an endpoint on ``test-node`` and one on ``remote``."""
    lb = ServiceType.LOAD_BALANCER
    services = (
        Service("ns1/svc1", port_name="p80", type=lb, node_port=3001, load_balancer_ips=("1.2.3.4",)),
        Service(
            "ns2/svc2",
            port_name="p80",
            type=lb,
            node_port=3002,
            load_balancer_ips=("5.6.7.8",),
            external_traffic_policy=TrafficPolicy.LOCAL,
        ),
        Service(
            "ns3/svc3",
            port_name="p80",
            type=lb,
            node_port=3003,
            load_balancer_ips=("9.10.11.12",),
            internal_traffic_policy=TrafficPolicy.LOCAL,
        ),
    )
    given = {
        f"ns{i}/svc{i}": (
            Endpoint(f"10.180.0.{i}:80", node_name=NODE, pod=f"ns{i}/local"),
            Endpoint(f"10.180.1.{i}:80", node_name="remote", pod=f"ns{i}/remote"),
        )
        for i in (1, 2, 3)
    }
    pods = tuple(
        Pod(f"ns{i}/{w}", n, f"10.180.{k}.{i}")
        for i in (1, 2, 3)
        for k, (w, n) in enumerate([("local", NODE), ("remote", "remote")])
    )
    return Scenario(
        name="masquerade",
        topology=star([NODE, "remote"]),
        pods=pods,
        services=services,
        streams=(),
        dataplane=DataplaneConfig(
            mode, local_traffic_detector=detector_mode, cluster_cidr="10.0.0.0/8", masquerade_all=masquerade_all
        ),
        given_endpoints=given,
    )


def masq_flows(case: str) -> list[tuple[str, str, str, str, bool]]:
    """Upstream's flows with the case's overrides merged in, as its test loop merges them."""
    overrides = MASQ_CASES[case][2]
    out = []
    for name, service, source, output, masq in MASQ_FLOWS:
        new_output, new_masq = overrides.get(name, (None, None))
        out.append(
            (
                name,
                service,
                source,
                output if new_output is None else new_output,
                masq if new_masq is None else new_masq,
            )
        )
    return out


@pytest.mark.parametrize("mode", ["iptables", "nftables"])
@pytest.mark.parametrize("case", list(MASQ_CASES))
def test_internal_external_masquerade_flows_match_upstream(mode, case):
    """kubernetes ``pkg/proxy/nftables/proxier_test.go`` (and ``pkg/proxy/iptables/proxier_test.go``)
    ``TestInternalExternalMasquerade``, all four cases ("base", "no LocalTrafficDetector", "masqueradeAll",
    "masqueradeAll, no LocalTrafficDetector"): each of the 27 flows from a pod, from the node itself and from
    outside, through ``sim.scenario.route_for`` (what ``sim run`` and ``sim routes`` use): the endpoints reached and
    whether the source is masqueraded."""
    from sim.routing import Source

    masquerade_all, detector_mode, _ = MASQ_CASES[case]
    sc = masquerade_scenario(mode, detector_mode, masquerade_all)
    flows = masq_flows(case)
    assert len(flows) == 27
    for name, service, source, expected, masq in flows:
        route = route_for(sc, service, NODE, Source(source))
        assert ", ".join(e.address for e in route.endpoints) == expected, name
        assert (not route.source_preserved) == masq, name


@pytest.mark.parametrize(
    ("case", "detector_mode", "masquerade_all"),
    [("base", "none", False), ("masqueradeAll", "ClusterCIDR", False), ("no LocalTrafficDetector", "none", True)],
)
def test_internal_external_masquerade_replay_can_fail(case, detector_mode, masquerade_all):
    """The replay tells models apart: a case run with another case's configuration (no detector where upstream has
    one, ``--masquerade-all`` off where it is on, and on where it is off) disagrees on some flow."""
    from sim.routing import Source

    sc = masquerade_scenario("nftables", detector_mode, masquerade_all)
    got = []
    for _, service, source, _, _ in MASQ_FLOWS:
        route = route_for(sc, service, NODE, Source(source))
        got.append((", ".join(e.address for e in route.endpoints), not route.source_preserved))
    assert got != [(output, masq) for _, _, _, output, masq in masq_flows(case)]


@pytest.mark.parametrize("mode", ["iptables", "nftables"])
def test_no_endpoints_reject_flows_match_upstream(mode):
    """kubernetes ``pkg/proxy/nftables/proxier_test.go`` / ``pkg/proxy/iptables/proxier_test.go``
    ``TestNoEndpointsReject``: a LoadBalancer with an externalIP and no endpoints REJECTs all six flows (a pod or
    an outside client to its ClusterIP, externalIP, NodePort, LB IP; pod to ClusterIP and externalIP share
    ``pod``/``pod-external``): ``no_endpoints``, refused at once, from every source; and the rules write the REJECT
    for each address."""
    from sim.outcomes import DropReason
    from sim.routing import Source

    svc = Service(
        "ns1/svc1",
        port_name="p80",
        type=ServiceType.LOAD_BALANCER,
        node_port=3001,
        load_balancer_ips=("1.2.3.4",),
        external_ips=("192.168.99.11",),
    )
    sc = Scenario(
        name="no-endpoints",
        topology=star([NODE]),
        pods=(),
        services=(svc,),
        streams=(),
        dataplane=DataplaneConfig(mode, cluster_cidr="10.0.0.0/8"),
    )
    for source in (Source.POD, Source.POD_EXTERNAL, Source.EXTERNAL):
        route = route_for(sc, "ns1/svc1", NODE, source)
        assert route.drop == DropReason.NO_ENDPOINTS and not route.drop.client_waits, source
    text = "".join(node_rules(service_rules(sc, NODE, {"ns1/svc1": "172.30.0.41"}), mode, PROXY).values())
    if mode == "iptables":
        assert text.count('"ns1/svc1:p80 has no endpoints"') == 4 and text.count("-j REJECT") == 4
    else:
        assert text.count('comment "ns1/svc1:p80" : goto reject-chain') == 4


# --- traffic policy flow tests (pkg/proxy/nftables/proxier_test.go; iptables has the same) -----------------------

R, S, T = "ready", "serving", "terminating"
TERMINATING_CASES = [  # (case, endpoints (ip, node, conditions), pod -> ClusterIP, external -> LB)
    (
        "ready endpoints exist",
        [
            ("10.0.1.1", NODE, {R, S}),
            ("10.0.1.2", NODE, {R, S}),
            ("10.0.1.3", NODE, {S, T}),
            ("10.0.1.4", NODE, {T}),
            ("10.0.1.5", "node-1", {R, S}),
        ],
        "10.0.1.1:80, 10.0.1.2:80, 10.0.1.5:80",
        "10.0.1.1:80, 10.0.1.2:80",
    ),
    (
        "only terminating endpoints exist",
        [
            ("10.0.1.2", NODE, {S, T}),
            ("10.0.1.3", NODE, {S, T}),
            ("10.0.1.4", NODE, {T}),
            ("10.0.1.5", "node-1", {R, S}),
        ],
        "10.0.1.5:80",
        "10.0.1.2:80, 10.0.1.3:80",
    ),
    ("terminating endpoints on remote node", [("10.0.1.5", "node-1", {S, T})], "10.0.1.5:80", "DROP"),
    (
        "no usable endpoints on any node",
        [("10.0.1.5", NODE, {T}), ("10.0.1.5", "node-1", {T})],
        "REJECT",
        "REJECT",
    ),
    ("after endpoints deleted", [], "REJECT", "REJECT"),
]
CLUSTER_CASES = [  # TestTerminatingEndpointsTrafficPolicyCluster: (case, endpoints, pod->ClusterIP = external->LB)
    (
        "ready endpoints exist",
        [
            ("10.0.1.1", NODE, {R, S}),
            ("10.0.1.2", NODE, {R, S}),
            ("10.0.1.3", "another-node", {S, T}),
            ("10.0.1.4", "another-node", {T}),
            ("10.0.1.5", "another-node", {R, S}),
        ],
        "10.0.1.1:80, 10.0.1.2:80, 10.0.1.5:80",
    ),
    (
        "only terminating endpoints exist",
        [
            ("10.0.1.2", NODE, {S, T}),
            ("10.0.1.3", NODE, {S, T}),
            ("10.0.1.4", "another-node", {T}),
            ("10.0.1.5", "another-node", {S, T}),
        ],
        "10.0.1.2:80, 10.0.1.3:80, 10.0.1.5:80",
    ),
    ("terminating endpoints on remote node", [("10.0.1.5", "node-1", {S, T})], "10.0.1.5:80"),
    ("no usable endpoints on any node", [("10.0.1.5", NODE, {T}), ("10.0.1.5", "node-1", {T})], "REJECT"),
    ("after endpoints deleted", [], "REJECT"),
]
ITP_CASES = [  # TestInternalTrafficPolicy: (case, iTP, endpoints (ip, node), pod->ClusterIP)
    (
        "internalTrafficPolicy is cluster",
        TrafficPolicy.CLUSTER,
        [("10.0.1.1", NODE), ("10.0.1.2", "node1"), ("10.0.1.3", "node2")],
        "10.0.1.1:80, 10.0.1.2:80, 10.0.1.3:80",
    ),
    (
        "internalTrafficPolicy is local and there is one local endpoint",
        TrafficPolicy.LOCAL,
        [("10.0.1.1", NODE), ("10.0.1.2", "node1"), ("10.0.1.3", "node2")],
        "10.0.1.1:80",
    ),
    (
        "internalTrafficPolicy is local and there are multiple local endpoints",
        TrafficPolicy.LOCAL,
        [("10.0.1.1", NODE), ("10.0.1.2", NODE), ("10.0.1.3", "node2")],
        "10.0.1.1:80, 10.0.1.2:80",
    ),
    (
        "internalTrafficPolicy is local and there are no local endpoints",
        TrafficPolicy.LOCAL,
        [("10.0.1.1", "node0"), ("10.0.1.2", "node1"), ("10.0.1.3", "node2")],
        "DROP",
    ),
    ("endpoints deleted", TrafficPolicy.LOCAL, [], "REJECT"),
]


def one_service(mode: str, svc: Service, endpoints: list[tuple[str, str, set[str]]]) -> Scenario:
    """``ns1/svc1`` with the given endpoints (each its own pod), as the flow tests' fake proxier holds it."""
    from sim.io.cluster.builders import endpoint

    eps = tuple(
        endpoint(f"{ip}:80", ready=R in c, serving=S in c, terminating=T in c, node_name=node, pod=f"ns1/p{i}")
        for i, (ip, node, c) in enumerate(endpoints)
    )
    nodes = sorted({NODE, *(n for _, n, _ in endpoints)})
    return Scenario(
        name="flows",
        topology=star(nodes),
        pods=tuple(Pod(f"ns1/p{i}", node, ip) for i, (ip, node, _) in enumerate(endpoints)),
        services=(svc,),
        streams=(),
        dataplane=DataplaneConfig(mode, cluster_cidr="10.0.0.0/8"),
        given_endpoints={svc.name: eps} if eps else {},
    )


def outcome(sc: Scenario, source_name: str) -> tuple[str, bool]:
    """A flow's output as upstream's packet-flow tests print it ("REJECT", "DROP" or the endpoints), and masq."""
    from sim.outcomes import DropReason
    from sim.routing import Source

    route = route_for(sc, "ns1/svc1", NODE, Source(source_name))
    verdict = {DropReason.NO_ENDPOINTS: "REJECT", DropReason.NO_LOCAL_ENDPOINTS: "DROP"}.get(route.drop)
    return verdict or ", ".join(sorted(e.address for e in route.endpoints)), not route.source_preserved


@pytest.mark.parametrize("mode", ["iptables", "nftables"])
def test_traffic_policy_flow_tests_match_upstream(mode):
    """kubernetes ``pkg/proxy/nftables/proxier_test.go`` (the iptables file has the same tables)
    ``TestTerminatingEndpointsTrafficPolicyLocal`` (5 cases incl. after deletion, 2 flows each),
    ``TestTerminatingEndpointsTrafficPolicyCluster`` (5 x 2) and ``TestInternalTrafficPolicy`` (5 x 1): every flow
    through ``sim.scenario.route_for``, output and masquerade as upstream expects."""
    lb = dict(type=ServiceType.LOAD_BALANCER, load_balancer_ips=("1.2.3.4",))
    local = Service("ns1/svc1", external_traffic_policy=TrafficPolicy.LOCAL, health_check_node_port=30000, **lb)
    for case, eps, to_cluster_ip, to_lb in TERMINATING_CASES:
        sc = one_service(mode, local, eps)
        assert outcome(sc, "pod") == (to_cluster_ip, False), case
        assert outcome(sc, "external")[0] == to_lb, case
        if to_lb not in ("REJECT", "DROP"):
            assert outcome(sc, "external")[1] is False, case
    cluster = Service("ns1/svc1", **lb)
    for case, eps, expected in CLUSTER_CASES:
        sc = one_service(mode, cluster, eps)
        assert outcome(sc, "pod")[0] == expected, case
        assert outcome(sc, "external")[0] == expected, case
        if expected != "REJECT":
            assert outcome(sc, "pod")[1] is False and outcome(sc, "external")[1] is True, case
    for case, itp, eps2, expected in ITP_CASES:
        sc = one_service(mode, Service("ns1/svc1", internal_traffic_policy=itp), [(ip, n, {R, S}) for ip, n in eps2])
        assert outcome(sc, "pod")[0] == expected, case


ETP_FLOWS = [  # TestExternalTrafficPolicyLocal / ...Cluster: (flow, source, Local: output, masq; Cluster: output, masq)
    ("pod to cluster IP", "pod", "both", False, "both", False),
    ("pod to external IP", "pod-external", "both", False, "both", True),
    ("external to external IP", "external", "local", False, "both", True),
    ("pod to LB IP", "pod-external", "both", False, "both", True),
    ("external to LB IP", "external", "local", False, "both", True),
    ("pod to NodePort", "pod-external", "both", False, "both", True),
    ("external to NodePort", "external", "local", False, "both", True),
]


@pytest.mark.parametrize("mode", ["iptables", "nftables"])
@pytest.mark.parametrize("policy", [TrafficPolicy.LOCAL, TrafficPolicy.CLUSTER])
def test_external_traffic_policy_flows_match_upstream(mode, policy):
    """kubernetes ``pkg/proxy/nftables/proxier_test.go`` (and iptables) ``TestExternalTrafficPolicyLocal`` and
    ``TestExternalTrafficPolicyCluster``: a LoadBalancer with an externalIP, one endpoint without a node and one on
    this node; its 7 flows each (pods short-circuited to both endpoints by the ClusterCIDR detector; from outside
    eTP=Local reaches only the local one, unmasqueraded; eTP=Cluster masquerades every external destination)."""
    svc = Service(
        "ns1/svc1",
        port_name="p80",
        type=ServiceType.LOAD_BALANCER,
        external_traffic_policy=policy,
        node_port=3001,
        load_balancer_ips=("1.2.3.4",),
        external_ips=("192.168.99.11",),
        health_check_node_port=30000 if policy == TrafficPolicy.LOCAL else 0,
    )
    sc = one_service(mode, svc, [("10.180.0.1", "elsewhere", {R, S}), ("10.180.2.1", NODE, {R, S})])
    no_node = {**sc.given_endpoints}
    no_node["ns1/svc1"] = (replace(no_node["ns1/svc1"][0], node_name=None), no_node["ns1/svc1"][1])
    sc = replace(sc, given_endpoints=no_node)
    named = {"both": "10.180.0.1:80, 10.180.2.1:80", "local": "10.180.2.1:80"}
    for flow, source, local_out, local_masq, cluster_out, cluster_masq in ETP_FLOWS:
        expected = (local_out, local_masq) if policy == TrafficPolicy.LOCAL else (cluster_out, cluster_masq)
        assert outcome(sc, source) == (named[expected[0]], expected[1]), flow


# --- --masquerade-all in the written rules (pkg/proxy/{iptables,nftables}/proxier.go syncProxyRules) -------------

MASQUERADE_ALL_RULES = {  # ns1/svc1's ClusterIP masquerade rule, as each mode writes it (chain names upstream's)
    "iptables": (
        '-A KUBE-SVC-XPGD46QRK7WJZT7O -m comment --comment "ns1/svc1:p80 cluster IP" -m tcp -p tcp -d 172.30.0.41'
        " --dport 80 {match}-j KUBE-MARK-MASQ"
    ),
    "nftables": "add rule ip kube-proxy service-ULMVA6XW-ns1/svc1/tcp/p80 ip daddr 172.30.0.41 {match}jump "
    "mark-for-masquerade",
}
IF_NOT_LOCAL = {"iptables": "! -s 10.0.0.0/8 ", "nftables": "ip saddr != 10.0.0.0/8 "}


def cluster_ip_masquerade_rules(mode: str, masquerade_all: bool, detector_mode: str = "ClusterCIDR") -> list[str]:
    """The lines of ``test-node``'s rules for ``TestInternalExternalMasquerade``'s Services that mark connections
    to a ClusterIP for masquerade."""
    sc = masquerade_scenario(mode, detector_mode, masquerade_all)
    found = detector(detector_mode, "10.0.0.0/8")
    proxy = Proxy(found, "192.168.0.2", "172.30.0.0/16", masquerade_all)
    ips = {f"ns{i}/svc{i}": f"172.30.0.4{i}" for i in (1, 2, 3)}
    text = "".join(node_rules(service_rules(sc, NODE, ips), mode, proxy).values())
    return [ln for ln in text.splitlines() if " 172.30.0.4" in ln and ("KUBE-MARK-MASQ" in ln or "mark-for-masq" in ln)]


@pytest.mark.parametrize("mode", ["iptables", "nftables"])
def test_masquerade_all_rules_as_kube_proxy_writes_them(mode):
    """kubernetes ``pkg/proxy/iptables/proxier.go`` and ``pkg/proxy/nftables/proxier.go`` ``syncProxyRules``: with
    ``proxier.masqueradeAll`` each Service port with internal endpoints gets one unconditional ClusterIP masquerade
    rule in its internal chain (iptables: the ``"<name> cluster IP"`` arguments then ``-j KUBE-MARK-MASQ``; nftables:
    ``ip daddr <ClusterIP> jump mark-for-masquerade``, addresses only as since kubernetes#131492) *in place of* the
    detector's ``IfNotLocal`` rule, with or without a detector. Off, the detector's rule is back (the wrong model)."""
    rules = cluster_ip_masquerade_rules(mode, masquerade_all=True)
    assert len(rules) == 3, rules  # svc1, svc2, svc3 (iTP=Local, with its local endpoint)
    assert rules[0] == MASQUERADE_ALL_RULES[mode].format(match="")
    assert all("10.0.0.0/8" not in ln for ln in rules)
    assert cluster_ip_masquerade_rules(mode, masquerade_all=True, detector_mode="none") == rules
    off = cluster_ip_masquerade_rules(mode, masquerade_all=False)
    assert off[0] == MASQUERADE_ALL_RULES[mode].format(match=IF_NOT_LOCAL[mode])
    assert len(off) == 3 and all("10.0.0.0/8" in ln for ln in off)
    assert cluster_ip_masquerade_rules(mode, masquerade_all=False, detector_mode="none") == []


UNCONDITIONAL = {  # a ClusterIP masquerade rule with no source match
    "iptables": r'cluster IP" -m tcp -p tcp -d \S+ --dport 80 -j KUBE-MARK-MASQ',
    "nftables": r"ip daddr \S+ jump mark-for-masquerade",
}
MASQUERADE_ALL_SCENARIO = """name = "masquerade-all"
topology = "{topology}"
dataplane = {{ name = "{mode}", masquerade_all = {on} }}
[[pods]]
name = "client"
node = "kind-worker"
[[pods]]
name = "web-1"
node = "kind-worker"
labels = {{ app = "web" }}
[[services]]
name = "web"
selector = {{ app = "web" }}
[[streams]]
client = "client"
service = "web"
requests = 1
workload = {{ kind = "closed_loop" }}
"""


@pytest.mark.parametrize("mode", ["iptables", "nftables"])
def test_masquerade_all_from_the_scenario_file(mode, tmp_path, capsys):
    """kubernetes ``pkg/proxy/nftables/proxier_test.go`` ``TestInternalExternalMasquerade``, case "masqueradeAll",
    through the CLI: ``[dataplane] masquerade_all = true`` makes ``sim routes`` report a pod's ClusterIP connection
    masqueraded (``source_preserved`` false; "pod to ClusterIP" is masq true) and ``sim emulate --show-rules`` write
    the unconditional ClusterIP masquerade rule; off (kube-proxy's default), the source is kept. IPVS and Cilium
    refuse the option: one line, exit 2."""
    import json

    from sim.cli import main

    kind = Path(__file__).parent.parent / "topologies" / "kind.toml"
    path = tmp_path / "masq.toml"
    preserved = {}
    for on in ("true", "false"):
        path.write_text(MASQUERADE_ALL_SCENARIO.format(topology=kind, mode=mode, on=on))
        assert main(["routes", str(path), "--json"]) == 0
        routes = json.loads(capsys.readouterr().out)["services"]["web"]
        preserved[on] = routes["from_nodes"]["kind-worker"]["source_preserved"]
        assert main(["emulate", str(path), "--show-rules"]) == 0
        rules = capsys.readouterr().out
        unconditional = re.search(UNCONDITIONAL[mode], rules) is not None
        assert unconditional == (on == "true"), on
    assert preserved == {"true": False, "false": True}
    path.write_text(MASQUERADE_ALL_SCENARIO.format(topology=kind, mode="ipvs", on="true"))
    assert main(["routes", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "dataplane.masquerade_all" in err[0] and "ipvs" in err[0], err


HOST_NETWORK_SCENARIO = """name = "host-network"
topology = "{topology}"
dataplane = "{mode}"
[[pods]]
name = "agent"
node = "kind-worker"
host_network = {host}
[[pods]]
name = "web-1"
node = "kind-worker"
labels = {{ app = "web" }}
[[pods]]
name = "web-2"
node = "kind-worker2"
labels = {{ app = "web" }}
[[services]]
name = "web"
selector = {{ app = "web" }}
[[services]]
name = "lb"
selector = {{ app = "web" }}
externalTrafficPolicy = "Local"
loadBalancerIPs = ["198.51.100.7"]
nodePort = 30080
[[streams]]
client = "agent"
service = "web"
requests = 1
workload = {{ kind = "closed_loop" }}
[[streams]]
client = "agent"
service = "lb"
target = "LoadBalancer"
requests = 1
workload = {{ kind = "closed_loop" }}
[[streams]]
client = "agent"
service = "lb"
target = "NodePort"
node = "kind-worker2"
requests = 1
workload = {{ kind = "closed_loop" }}
"""


@pytest.mark.parametrize("mode", ["iptables", "nftables"])
def test_a_host_network_client_is_the_nodes_own_traffic(mode, tmp_path, capsys):
    """kubernetes ``pkg/proxy/nftables/proxier_test.go`` (and ``pkg/proxy/iptables/proxier_test.go``)
    ``TestInternalExternalMasquerade``, the "node to ..." flows, from a scenario file: a pod with
    ``host_network = true`` on kind-worker calls (1) a ClusterIP: both endpoints, masqueraded ("node to ClusterIP");
    (2) an eTP=Local LoadBalancer IP: both endpoints, masqueraded ("node to LB with eTP:Local": the ``--src-type
    LOCAL`` short-circuit), where a pod there would get both with its address kept; (3) kind-worker2's NodePort
    of that Service: there it is not local traffic, so eTP=Local keeps it on kind-worker2's endpoint, address kept."""
    from sim.io import load_scenario
    from sim.scenario import entry_nodes, stream_route

    kind = Path(__file__).parent.parent / "topologies" / "kind.toml"
    path = tmp_path / "host.toml"

    def routes(host: str) -> list[tuple[str, str, bool]]:
        path.write_text(HOST_NETWORK_SCENARIO.format(topology=kind, mode=mode, host=host))
        sc, _ = load_scenario(path)
        out = []
        for stream in sc.streams:
            (node,) = entry_nodes(sc, stream)
            route = stream_route(sc, stream, node)
            out.append((node, ", ".join(sorted(e.pod or "" for e in route.endpoints)), route.source_preserved))
        return out

    assert routes("true") == [
        ("kind-worker", "web-1, web-2", False),
        ("kind-worker", "web-1, web-2", False),
        ("kind-worker2", "web-2", True),
    ]
    assert routes("false") == [  # the pod's own traffic, for contrast (ClusterCIDR detector: kind's)
        ("kind-worker", "web-1, web-2", True),
        ("kind-worker", "web-1, web-2", True),
        ("kind-worker2", "web-1, web-2", True),
    ]


@pytest.mark.parametrize("mode", MODES)
def test_a_host_network_client_on_the_kernel(mode, tmp_path):
    """The same scenario on the kernel (``sim emulate``: the hostNetwork client's process runs in its node's
    namespace, so its packets leave from the node's address through the OUTPUT hooks): both Services' splits agree
    with ``sim run`` (homogeneity p > P_FAIL, no failures), kind-worker2's NodePort reaching web-2 only. Against the
    wrong model (the client taken as a pod: the ClusterCIDR short-circuit sends kind-worker2's NodePort to both
    endpoints) the same kernel counts give p < 1e-6."""
    from dataclasses import replace as changed

    from sim.emulate import make_layout
    from sim.emulate.compare import compare, sim_counts
    from sim.emulate.netns import emulated
    from sim.io import load_scenario
    from tests.test_emulate import CONNECT_TIMEOUT_S, assert_agree

    kind = Path(__file__).parent.parent / "topologies" / "kind.toml"
    path = tmp_path / "host.toml"
    path.write_text(HOST_NETWORK_SCENARIO.format(topology=kind, mode=mode, host="true").replace("= 1\n", "= 200\n"))
    scenario, seed = load_scenario(path)
    with emulated(make_layout(scenario, mode, str(path)), connect_timeout_s=CONNECT_TIMEOUT_S) as em:
        kernel = em.run_clients()
    report = compare(scenario, kernel, sim_counts(scenario, seed))["services"]
    for name in ("web", "lb"):
        assert report[name]["kernel"]["failures"] == {}, report[name]
        assert_agree(report[name])
    pods = tuple(changed(p, host_network=False) for p in scenario.pods)
    wrong = compare(scenario, kernel, sim_counts(changed(scenario, pods=pods), seed))["services"]["lb"]
    assert wrong["homogeneity_p"] < 1e-6
