"""The pure rule renderer and planner of ``sim emulate``: no root, no kernel.

Expected texts are derived by hand from kubernetes ``pkg/proxy/iptables/proxier.go`` (``syncProxyRules``,
``writeServiceToEndpointRules``, ``computeProbability``, ``portProtoHash``, ``servicePortEndpointChainName``) and
``pkg/proxy/nftables/proxier.go`` (``setupNFTables``, ``syncProxyRules``, ``writeServiceToEndpointRules``,
``hashAndTruncate``); the hashes are checked against values printed in upstream's own tests and comments.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sim.cluster import Pod, Service, SessionAffinity, TrafficPolicy
from sim.distributions import Constant
from sim.emulate import make_layout, show_rules
from sim.emulate.layout import ServiceRules, with_mode
from sim.emulate.rules.iptables import (
    endpoint_hash,
    ext_chain,
    iptables_restore,
    port_proto_hash,
    probability,
    sep_chain,
    svc_chain,
    svl_chain,
)
from sim.emulate.rules.nftables import hash_and_truncate, nft_chain_base, nft_endpoint_base, nft_transaction
from sim.errors import SpecError
from sim.routing import DataplaneConfig
from sim.scenario import Scenario, Stream, Target
from sim.timeline import Action, Event
from sim.topology import Link
from sim.workload import ClosedLoop
from tests.conftest import DEMO, ROOT, star


def scenario(pods: list[Pod], services: list[Service], dataplane: str = "iptables", **kw) -> Scenario:
    """Nodes a and b on one bridge; a client on a calling the first Service."""
    client = Pod("client", "a", "10.244.0.2", {"app": "client"})
    return Scenario(
        name="t",
        topology=star(["a", "b"]),
        pods=(client, *pods),
        services=tuple(services),
        streams=(Stream("client", services[0].name, ClosedLoop(), 10),),
        dataplane=DataplaneConfig(dataplane),
        **kw,
    )


def rules_on(sc: Scenario, node: str = "a") -> tuple[ServiceRules, ...]:
    layout = make_layout(sc, None, "t.toml")
    return next(n for n in layout.nodes if n.name == node).services


def pod(name: str, node: str, ip: str, app: str = "svc", **kw) -> Pod:
    return Pod(name, node, ip, {"app": app}, **kw)


SVC = Service("svc", {"app": "svc"})


# --- names and probabilities, against upstream's printed values -------------------------------------------------


def test_chain_hashes_match_upstream():
    assert port_proto_hash("ns1/svc1:p80", "tcp") == "XPGD46QRK7WJZT7O"  # proxier_test.go's KUBE-SVC-XPGD46QRK7WJZT7O
    assert endpoint_hash("ns1/svc1:p80", "10.180.0.1:80") == "SXIVWICOYRO3J4NJ"  # ... KUBE-SEP-SXIVWICOYRO3J4NJ
    assert hash_and_truncate("ns1/svc1/tcp/p80") == "ULMVA6XW-ns1/svc1/tcp/p80"  # servicePortChainNameBase comment
    assert hash_and_truncate("ns1/svc1/tcp/p80__10.180.0.1/80") == "5OJB2KTY-ns1/svc1/tcp/p80__10.180.0.1/80"


def test_chain_names_of_a_service():
    h = port_proto_hash("default/svc", "tcp")
    assert svc_chain(SVC) == f"KUBE-SVC-{h}" and svl_chain(SVC) == f"KUBE-SVL-{h}"
    assert sep_chain(SVC, "10.244.1.2:80") == "KUBE-SEP-" + endpoint_hash("default/svc", "10.244.1.2:80")
    assert nft_chain_base(SVC) == hash_and_truncate("default/svc/tcp/")
    assert nft_endpoint_base(SVC, "10.244.1.2:80") == hash_and_truncate("default/svc/tcp/__10.244.1.2/80")
    assert len(svc_chain(SVC)) <= 28  # iptables chain names are at most 28 characters


def test_probability_is_formatted_as_kube_proxy_does():
    assert [probability(n) for n in (2, 3, 4, 7)] == ["0.5000000000", "0.3333333333", "0.2500000000", "0.1428571429"]


@given(st.integers(min_value=1, max_value=60))
def test_the_probability_cascade_is_uniform(n):
    """Rule i matches with 1/(n-i) of what reaches it: each endpoint gets 1/n (to the rounding of %0.10f)."""
    eps = tuple(pod(f"p{i}", "b", f"10.244.1.{i + 2}") for i in range(n))
    text = iptables_restore(rules_on(scenario(list(eps), [SVC])))
    probs = [
        float(line.split("--probability ")[1].split()[0]) if "--probability" in line else 1.0
        for line in text.splitlines()
        if line.startswith(f"-A {svc_chain(SVC)} ")
    ]
    assert len(probs) == n and probs[-1] == 1.0
    reach = 1.0
    for p in probs:
        assert abs(reach * p - 1 / n) < 1e-8
        reach *= 1 - p


# --- iptables: whole texts for small cases ----------------------------------------------------------------------


def test_two_endpoints_cluster_policy_nat_rules():
    sc = scenario([pod("s1", "a", "10.244.0.3"), pod("s2", "b", "10.244.1.2")], [SVC])
    text = iptables_restore(rules_on(sc))
    svc, sep1, sep2 = svc_chain(SVC), sep_chain(SVC, "10.244.0.3:80"), sep_chain(SVC, "10.244.1.2:80")
    nat = text.split("*nat\n")[1]
    assert nat.splitlines()[:7] == [
        ":KUBE-SERVICES - [0:0]",
        ":KUBE-NODEPORTS - [0:0]",
        ":KUBE-POSTROUTING - [0:0]",
        ":KUBE-MARK-MASQ - [0:0]",
        f":{svc} - [0:0]",
        f":{sep1} - [0:0]",
        f":{sep2} - [0:0]",
    ]
    expected = [
        "-A KUBE-POSTROUTING -m mark ! --mark 0x004000/0x004000 -j RETURN",
        "-A KUBE-POSTROUTING -j MARK --xor-mark 0x004000",
        '-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE '
        "--random-fully",
        "-A KUBE-MARK-MASQ -j MARK --or-mark 0x004000",
        f'-A KUBE-SERVICES -m comment --comment "default/svc cluster IP" -m tcp -p tcp -d 10.96.0.10 --dport 80 '
        f"-j {svc}",
        f'-A {svc} -m comment --comment "default/svc -> 10.244.0.3:80" -m statistic --mode random --probability '
        f"0.5000000000 -j {sep1}",
        f'-A {svc} -m comment --comment "default/svc -> 10.244.1.2:80" -j {sep2}',
        f"-A {sep1} -m comment --comment default/svc -s 10.244.0.3 -j KUBE-MARK-MASQ",
        f"-A {sep1} -m comment --comment default/svc -m tcp -p tcp -j DNAT --to-destination 10.244.0.3:80",
        f"-A {sep2} -m comment --comment default/svc -s 10.244.1.2 -j KUBE-MARK-MASQ",
        f"-A {sep2} -m comment --comment default/svc -m tcp -p tcp -j DNAT --to-destination 10.244.1.2:80",
        '-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in '
        'this chain" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS',
        "COMMIT",
    ]
    assert nat.splitlines()[7:] == expected
    assert "-j DROP" not in text.split("*nat")[0].replace("-m conntrack --ctstate INVALID -j DROP", "").replace(
        "RELATED,ESTABLISHED,DNAT -j DROP", ""
    )


def test_local_policy_without_a_local_endpoint_drops_in_filter():
    local = Service("svc", {"app": "svc"}, internal_traffic_policy=TrafficPolicy.LOCAL)
    sc = scenario([pod("s2", "b", "10.244.1.2")], [local])
    text = iptables_restore(rules_on(sc, "a"))
    filt, nat = text.split("*nat\n")
    assert (
        '-A KUBE-SERVICES -m comment --comment "default/svc has no local endpoints" -m tcp -p tcp -d 10.96.0.10 '
        "--dport 80 -j DROP"
    ) in filt.splitlines()
    assert "10.96.0.10" not in nat and "KUBE-SVL" not in nat and "KUBE-SEP" not in nat
    # on node b the same Service has its local endpoint: a KUBE-SVL chain and no DROP
    text_b = iptables_restore(rules_on(sc, "b"))
    assert f"-j {svl_chain(local)}" in text_b and "has no local endpoints" not in text_b
    assert f'-A {svl_chain(local)} -m comment --comment "default/svc -> 10.244.1.2:80" -j ' in text_b


def test_no_endpoints_rejects_in_filter_and_writes_no_nat_chain():
    sc = scenario([], [SVC])
    text = iptables_restore(rules_on(sc))
    assert (
        '-A KUBE-SERVICES -m comment --comment "default/svc has no endpoints" -m tcp -p tcp -d 10.96.0.10 '
        "--dport 80 -j REJECT"
    ) in text.splitlines()
    assert "KUBE-SVC-" not in text and "KUBE-SEP-" not in text


def test_terminating_endpoints_only_when_no_ready_one():
    """Three backends, one terminating but serving: kube-proxy uses only the two ready ones (CategorizeEndpoints);
    with every backend terminating it falls back to the serving-terminating ones."""
    pods = [
        pod("s1", "a", "10.244.0.3"),
        pod("s2", "b", "10.244.1.2"),
        pod("s3", "b", "10.244.1.3", terminating=True),
    ]
    text = iptables_restore(rules_on(scenario(pods, [SVC])))
    chain = [line for line in text.splitlines() if line.startswith(f"-A {svc_chain(SVC)} ")]
    assert [line.split('"')[1] for line in chain] == ["default/svc -> 10.244.0.3:80", "default/svc -> 10.244.1.2:80"]
    assert "--probability 0.5000000000" in chain[0] and "--probability" not in chain[1]
    assert sep_chain(SVC, "10.244.1.3:80") not in text
    every = [pod("s1", "a", "10.244.0.3", terminating=True), pod("s2", "b", "10.244.1.2", terminating=True)]
    text = iptables_restore(rules_on(scenario(every, [SVC])))
    assert "--probability 0.5000000000" in text and "has no endpoints" not in text
    not_serving = [pod("s1", "a", "10.244.0.3", terminating=True, ready=False)]
    assert "-j REJECT" in iptables_restore(rules_on(scenario(not_serving, [SVC])))


def test_session_affinity_recent_rules_come_first_and_endpoints_set_them():
    sticky = Service("svc", {"app": "svc"}, session_affinity=SessionAffinity.CLIENT_IP, session_affinity_timeout_s=600)
    sc = scenario([pod("s1", "a", "10.244.0.3"), pod("s2", "b", "10.244.1.2")], [sticky])
    lines = iptables_restore(rules_on(sc)).splitlines()
    chain = [line for line in lines if line.startswith(f"-A {svc_chain(sticky)} ")]
    sep1, sep2 = sep_chain(sticky, "10.244.0.3:80"), sep_chain(sticky, "10.244.1.2:80")
    assert chain[0].endswith(f"-m recent --name {sep1} --rcheck --seconds 600 --reap -j {sep1}")
    assert chain[1].endswith(f"-m recent --name {sep2} --rcheck --seconds 600 --reap -j {sep2}")
    assert "--probability" in chain[2] and len(chain) == 4
    assert f"-A {sep1} -m comment --comment default/svc -m recent --name {sep1} --set -m tcp -p tcp -j DNAT " in (
        "\n".join(lines)
    )


# --- nftables ---------------------------------------------------------------------------------------------------


def test_nft_three_endpoints_numgen_vmap():
    pods = [pod(f"s{i}", "b", f"10.244.1.{i + 2}") for i in range(3)]
    text = nft_transaction(rules_on(scenario(pods, [SVC])))
    base = nft_chain_base(SVC)
    eps = [f"endpoint-{nft_endpoint_base(SVC, f'10.244.1.{i + 2}:80')}" for i in range(3)]
    assert (
        f"add rule ip kube-proxy service-{base} numgen random mod 3 vmap "
        f"{{ 0 : goto {eps[0]} , 1 : goto {eps[1]} , 2 : goto {eps[2]} }}"
    ) in text.splitlines()
    assert f"add element ip kube-proxy service-ips {{ 10.96.0.10 . tcp . 80 : goto service-{base} }}" in text
    assert f"add rule ip kube-proxy {eps[0]} meta l4proto tcp dnat to 10.244.1.2:80" in text
    assert f"add rule ip kube-proxy {eps[0]} ip saddr 10.244.1.2 jump mark-for-masquerade" in text
    assert text.splitlines()[0] == 'add table ip kube-proxy { comment "rules for kube-proxy" ; }'
    assert "add chain ip kube-proxy nat-prerouting { type nat hook prerouting priority -100 ; }" in text


def test_nft_no_endpoint_services_map_drop_and_reject():
    local = Service("loc", {"app": "svc"}, internal_traffic_policy=TrafficPolicy.LOCAL)
    empty = Service("empty", {"app": "nothing"})
    sc = scenario([pod("s2", "b", "10.244.1.2")], [local, empty])
    text = nft_transaction(rules_on(sc, "a"))
    assert 'add element ip kube-proxy no-endpoint-services { 10.96.0.10 . tcp . 80 comment "default/loc" : drop }' in (
        text
    )
    assert (
        'add element ip kube-proxy no-endpoint-services { 10.96.0.11 . tcp . 80 comment "default/empty" : goto '
        "reject-chain }"
    ) in text
    assert "add rule ip kube-proxy reject-chain reject" in text


def test_nft_affinity_sets():
    sticky = Service("svc", {"app": "svc"}, session_affinity=SessionAffinity.CLIENT_IP, session_affinity_timeout_s=60)
    text = nft_transaction(rules_on(scenario([pod("s1", "a", "10.244.0.3")], [sticky])))
    base = nft_endpoint_base(sticky, "10.244.0.3:80")
    assert f"add set ip kube-proxy affinity-{base} {{ type ipv4_addr ; flags dynamic,timeout ; timeout 60s ; }}" in text
    assert f"ip saddr @affinity-{base} goto endpoint-{base}" in text
    assert f"add rule ip kube-proxy endpoint-{base} update @affinity-{base} {{ ip saddr }}" in text


# --- external destinations: NodePort, LoadBalancer IP, external IP ----------------------------------------------


def test_etp_local_load_balancer_drops_in_kube_external_services_where_no_pod_runs():
    web = Service(
        "web",
        {"app": "svc"},
        external_traffic_policy=TrafficPolicy.LOCAL,
        load_balancer_ips=("198.51.100.10",),
        node_port=30080,
    )
    sc = scenario([pod("s1", "a", "10.244.0.3")], [web])
    ext, svl, svc = ext_chain(web), svl_chain(web), svc_chain(web)
    on_b = iptables_restore(rules_on(sc, "b")).splitlines()
    lb = "-m tcp -p tcp -d 198.51.100.10 --dport 80"
    assert f'-A KUBE-EXTERNAL-SERVICES -m comment --comment "default/web has no local endpoints" {lb} -j DROP' in on_b
    assert (
        '-A KUBE-EXTERNAL-SERVICES -m comment --comment "default/web has no local endpoints" -m addrtype --dst-type '
        "LOCAL -m tcp -p tcp --dport 30080 -j DROP"
    ) in on_b
    assert f'-A KUBE-SERVICES -m comment --comment "default/web loadbalancer IP" {lb} -j {ext}' in on_b
    assert f"-A KUBE-NODEPORTS -m comment --comment default/web -m tcp -p tcp --dport 30080 -j {ext}" in on_b
    assert [line for line in on_b if line.startswith(f"-A {ext} ")] == [
        f'-A {ext} -m comment --comment "masquerade LOCAL traffic for default/web external destinations" '
        "-m addrtype --src-type LOCAL -j KUBE-MARK-MASQ",
        f'-A {ext} -m comment --comment "route LOCAL traffic for default/web external destinations" '
        f"-m addrtype --src-type LOCAL -j {svc}",
    ]  # no "-j KUBE-SVL": this node has no local endpoint
    on_a = iptables_restore(rules_on(sc, "a")).splitlines()
    assert f"-A {ext} -j {svl}" in on_a and not any("KUBE-EXTERNAL-SERVICES -m" in line for line in on_a)
    nft_b = nft_transaction(rules_on(sc, "b"))
    assert 'add element ip kube-proxy no-endpoint-nodeports { tcp . 30080 comment "default/web" : drop }' in nft_b
    assert (
        'add element ip kube-proxy no-endpoint-services { 198.51.100.10 . tcp . 80 comment "default/web" : drop }'
    ) in nft_b
    base = nft_chain_base(web)
    assert f"add element ip kube-proxy service-nodeports {{ tcp . 30080 : goto external-{base} }}" in nft_b
    assert f"goto local-{base}" not in nft_b
    assert f"add rule ip kube-proxy external-{base} goto local-{base}" in nft_transaction(rules_on(sc, "a"))


def test_etp_cluster_external_traffic_is_masqueraded():
    web = Service("web", {"app": "svc"}, external_ips=("192.0.2.10",))
    sc = scenario([pod("s1", "a", "10.244.0.3")], [web])
    lines = iptables_restore(rules_on(sc, "b")).splitlines()
    ext = ext_chain(web)
    assert [line for line in lines if line.startswith(f"-A {ext} ")] == [
        f'-A {ext} -m comment --comment "masquerade traffic for default/web external destinations" -j KUBE-MARK-MASQ',
        f"-A {ext} -j {svc_chain(web)}",
    ]
    assert (
        f'-A KUBE-SERVICES -m comment --comment "default/web external IP" -m tcp -p tcp -d 192.0.2.10 --dport 80 '
        f"-j {ext}"
    ) in lines
    text = nft_transaction(rules_on(sc, "b"))
    base = nft_chain_base(web)
    assert f"add rule ip kube-proxy external-{base} jump mark-for-masquerade" in text
    assert f"add element ip kube-proxy service-ips {{ 192.0.2.10 . tcp . 80 : goto external-{base} }}" in text


# --- what is refused --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kw", "field"),
    [
        ({"dataplane": "cilium"}, "dataplane"),
        ({"dataplane": "ipvs"}, "dataplane"),
        ({"timeline": (Event(1.0, Action.TERMINATE, pod="s1"),)}, "timeline"),
    ],
)
def test_refused_with_one_spec_error(kw, field):
    with pytest.raises(SpecError) as e:
        make_layout(scenario([pod("s1", "a", "10.244.0.3")], [SVC], **kw), None, "x.toml")
    assert e.value.path == "x.toml" and e.value.field == field


def test_pods_calling_external_addresses_are_planned_and_cilium_options_refused():
    """A pod calling a NodePort (or a LoadBalancer IP) is emulated: the rules carry the local-traffic detector
    that decides it (kubernetes ``pkg/proxy/iptables/proxier.go`` ``syncProxyRules``, "pod traffic for ...
    external destinations"); a Cilium-only picker is refused under kube-proxy."""
    nodeport = Service("svc", {"app": "svc"}, node_port=30080)
    make_layout(scenario([pod("s1", "a", "10.244.0.3")], [nodeport]), None, "x.toml")
    sc = scenario([pod("s1", "a", "10.244.0.3")], [nodeport])
    pod_to_node_port = Scenario(
        name="t",
        topology=sc.topology,
        pods=sc.pods,
        services=sc.services,
        streams=(Stream("client", "svc", ClosedLoop(), 10, target=Target.NODE_PORT, node="a"),),
    )
    assert make_layout(pod_to_node_port, None, "x.toml").nodes[0].detector == ("ClusterCIDR", "10.244.0.0/16")
    cil = Scenario(
        name="t",
        topology=sc.topology,
        pods=sc.pods,
        services=(SVC,),
        streams=sc.streams,
        dataplane=DataplaneConfig("cilium", picker="maglev"),
    )
    with pytest.raises(SpecError, match="picker"):
        with_mode(cil, "iptables", "x.toml")


def test_the_fabric_routes_as_the_topology_draws_it():
    """Multizone: one segment per top-of-rack switch, the spine router between them; kind: one segment."""
    from sim.io import load_scenario

    multizone, _ = load_scenario(ROOT / "experiments" / "topology_aware.toml")
    fab = make_layout(multizone, None, "topology_aware.toml").fabric
    assert fab.segments == ("tor-a", "tor-b", "tor-c")
    assert fab.routers == {"spine": {"tor-a": "172.18.0.250", "tor-b": "172.18.1.250", "tor-c": "172.18.2.250"}}
    assert fab.ips["zone-b-node-1"] == "172.18.1.2"
    assert fab.next_hop("zone-a-node-1", "zone-a-node-3") == ("tor-a", None)  # same switch: on-link
    assert fab.next_hop("zone-a-node-1", "zone-c-node-3") == ("tor-a", "172.18.0.250")  # through the spine
    assert fab.next_hop("spine", "zone-c-node-3") == ("tor-c", None)
    kind = make_layout(load_scenario(DEMO)[0], "iptables", "demo").fabric
    assert kind.segments == ("kind-bridge",) and kind.routers == {}
    assert kind.next_hop("kind-worker", "kind-worker2") == ("kind-bridge", None)


def test_refused_addresses_topologies_and_experiment_specs():
    with pytest.raises(SpecError, match="private IPv4"):
        make_layout(scenario([pod("s1", "a", "8.8.8.8")], [SVC]), None, "x.toml")
    with pytest.raises(SpecError, match="private IPv4"):
        make_layout(scenario([pod("s1", "a", "10.96.0.10")], [SVC]), None, "x.toml")  # a ClusterIP
    sc = scenario([pod("s1", "b", "10.244.1.2")], [SVC])
    direct = replace(sc.topology, links=(*sc.topology.links, Link("a", "b", Constant(0.0001))))
    with pytest.raises(SpecError, match="link a - b: only nodes each linked to one bridge or switch"):
        make_layout(replace(sc, topology=direct), None, "x.toml")
    spec = ROOT / "experiments" / "latency_locality_tradeoff.toml"
    done = subprocess.run(
        [sys.executable, "-m", "sim", "emulate", str(spec), "--show-rules"], capture_output=True, text=True, check=False
    )
    assert (
        done.returncode == 2
        and done.stderr == f"sim: error: {spec}: experiment: an experiment spec: sim emulate takes a scenario file\n"
    )


def test_mode_replaces_the_dataplane_for_both_kernel_and_simulator():
    sc = scenario([pod("s1", "a", "10.244.0.3")], [SVC], dataplane="cilium")
    layout = make_layout(sc, "nftables", "x.toml")
    assert layout.mode == "nftables" and layout.scenario.dataplane.name == "nftables"


def test_show_rules_without_root_from_the_command_line():
    done = subprocess.run(
        [sys.executable, "-m", "sim", "emulate", str(DEMO), "--mode", "iptables", "--show-rules"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "# ===== node kind-worker (172.18.0.3): kube-proxy --proxy-mode=iptables =====" in done.stdout
    assert "has no local endpoints" in done.stdout  # echo-2 is Local: kind-control-plane has no local pod
    bad = subprocess.run(
        [sys.executable, "-m", "sim", "emulate", str(DEMO), "--show-rules"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    assert bad.returncode == 2 and bad.stdout == ""
    assert bad.stderr.count("\n") == 1 and bad.stderr.startswith(f"sim: error: {DEMO}: dataplane: cilium cannot")


def test_show_rules_covers_every_node():
    from sim.io import load_scenario

    sc, _ = load_scenario(DEMO)
    text = show_rules(make_layout(sc, "nftables", str(DEMO)))
    assert text.count("# ===== node ") == 3 and text.count("add table ip kube-proxy") == 3
