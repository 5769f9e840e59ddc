"""kube-proxy's interface local-traffic detectors in ``sim emulate``: BridgeInterface and InterfaceNamePrefix.

kubernetes ``pkg/proxy/util/localdetector.go``: ``NewDetectLocalByBridgeInterface`` matches ``-i <bridge>``
(iptables) / ``iifname <bridge>`` (nftables), ``NewDetectLocalByInterfaceNamePrefix`` ``-i <prefix>+`` /
``iifname <prefix>*`` (``iifname`` since kubernetes#134024). ``pkg/proxy/iptables/proxier.go`` ``syncProxyRules``
writes ``IfLocal()`` into the eTP=Local ``KUBE-EXT-*`` chain ("pod traffic for ... external destinations", on to
``KUBE-SVC-*``) and ``IfNotLocal()`` into the ClusterIP's masquerade rule; ``pkg/proxy/nftables/proxier.go`` the
same into ``external-*`` ("short-circuit pod traffic", ``goto service-*``) and ``service-*``. So a pod calling an
eTP=Local LoadBalancer IP, or its own node's NodePort, comes in on the bridge (or a veth with the prefix) and is
sent to any endpoint, as the routing layer's ``pod_is_local`` says (``sim routes``' ``pod_external_from_nodes``,
``sim run``); a pod calling another node's NodePort arrives there on the uplink, is not local, and gets that
node's endpoints only (where ClusterCIDR would have short-circuited it too).

The emulation makes the interfaces exist: under BridgeInterface each node's pod veths are attached to a bridge of
that name holding the pods' gateway; under InterfaceNamePrefix the node's end of each pod's veth is named
``<prefix><index>``. The kernel tests need root, Linux, ``ip`` and the mode's tool (they skip elsewhere); their
statistics are ``tests/test_emulate.py``'s (fail below ``P_FAIL``).
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from sim.emulate import make_layout, show_rules
from sim.emulate.compare import compare, sim_counts
from sim.emulate.netns import emulated
from sim.emulate.rules import detector
from sim.errors import SpecError
from sim.io import load_scenario
from sim.scenario import Scenario
from tests.test_emulate import CONNECT_TIMEOUT_S, KIND, MODES, P_FAIL, assert_agree

DETECTORS = {
    "BridgeInterface": 'local_traffic_detector = "BridgeInterface", bridge_interface = "cbr0"',
    "InterfaceNamePrefix": 'local_traffic_detector = "InterfaceNamePrefix", interface_name_prefix = "veth"',
}
REQUESTS = 200
"""Requests of each stream whose split is tested."""

POD_TO_ETP_LOCAL = """
[[pods]]
name = "client"
node = "kind-worker"
labels = {{ app = "client" }}
[[pods]]
name = "web-1"
node = "kind-worker"
labels = {{ app = "web" }}
[[pods]]
name = "web-2"
node = "kind-worker2"
labels = {{ app = "web" }}
[[services]]
name = "lb"
selector = {{ app = "web" }}
externalTrafficPolicy = "Local"
loadBalancerIPs = ["198.51.100.7"]
[[services]]
name = "np"
selector = {{ app = "web" }}
externalTrafficPolicy = "Local"
nodePort = 30080
[[services]]
name = "np-far"
selector = {{ app = "web" }}
externalTrafficPolicy = "Local"
nodePort = 30081
[[streams]]
client = "client"
service = "lb"
target = "LoadBalancer"
requests = {n}
workload = {{ kind = "closed_loop" }}
[[streams]]
client = "client"
service = "np"
target = "NodePort"
node = "kind-worker"
requests = {n}
workload = {{ kind = "closed_loop" }}
[[streams]]
client = "client"
service = "np-far"
target = "NodePort"
node = "kind-worker2"
requests = 20
workload = {{ kind = "closed_loop" }}
"""


def write(tmp_path: Path, dataplane: str, requests: int = REQUESTS) -> Path:
    """A pod on kind-worker calling eTP=Local Services (web-1 beside it, web-2 on kind-worker2) under ``dataplane``."""
    path = tmp_path / "detector.toml"
    head = f'name = "detector"\ntopology = "{KIND}"\nseed = 5\ndataplane = {{ name = "iptables", {dataplane} }}\n'
    path.write_text(head + POD_TO_ETP_LOCAL.format(n=requests))
    return path


def without_detector(scenario: Scenario) -> Scenario:
    """The wrong model: the same scenario with no local-traffic detector (pods' packets not recognised)."""
    return replace(scenario, dataplane=replace(scenario.dataplane, local_traffic_detector="none"))


@pytest.mark.parametrize(
    ("mode", "match", "expected"),
    [
        ("BridgeInterface", "eth0", ("-i eth0", "! -i eth0", "iifname eth0", "iifname != eth0")),
        ("InterfaceNamePrefix", "eth0", ("-i eth0+", "! -i eth0+", "iifname eth0*", "iifname != eth0*")),
        ("InterfaceNamePrefix", "eth", ("-i eth+", "! -i eth+", "iifname eth*", "iifname != eth*")),
        (
            "ClusterCIDR",
            "10.0.0.0/14",
            ("-s 10.0.0.0/14", "! -s 10.0.0.0/14", "ip saddr 10.0.0.0/14", "ip saddr != 10.0.0.0/14"),
        ),
        ("none", "", ("", "", "", "")),
    ],
)
def test_upstreams_detector_cases(mode, match, expected):
    """kubernetes ``pkg/proxy/util/localdetector_test.go``: ``TestDetectLocalByBridgeInterface``,
    ``TestDetectLocalNFTByBridgeInterface`` (``eth0``), ``TestDetectLocalByInterfaceNamePrefix`` (``eth0``),
    ``TestDetectLocalNFTByInterfaceNamePrefix`` (``eth``), ``TestDetectLocalByCIDR`` and ``TestNoOpLocalDetector``:
    ``IfLocal``, ``IfNotLocal``, ``IfLocalNFT``, ``IfNotLocalNFT`` joined as the rules write them."""
    found = detector(mode, match)
    assert (found.if_local, found.if_not_local, found.if_local_nft, found.if_not_local_nft) == expected
    assert found.implemented == (mode != "none")


@pytest.mark.parametrize(
    ("detector", "iptables", "nftables"),
    [
        ("BridgeInterface", "-i cbr0 -j KUBE-SVC-", "iifname cbr0 goto service-"),
        ("InterfaceNamePrefix", "-i veth+ -j KUBE-SVC-", "iifname veth* goto service-"),
    ],
)
def test_the_rules_match_the_interfaces_the_plan_builds(detector, iptables, nftables, tmp_path):
    """``IfLocal()`` in the eTP=Local external chain of both modes; the layout names each node's pod links (or
    their bridge) so that it matches them."""
    scenario, _ = load_scenario(write(tmp_path, DETECTORS[detector]))
    assert iptables in show_rules(make_layout(scenario, "iptables", "t.toml"))
    assert nftables in show_rules(make_layout(scenario, "nftables", "t.toml"))
    node = next(n for n in make_layout(scenario, "iptables", "t.toml").nodes if n.name == "kind-worker")
    if detector == "BridgeInterface":
        assert (node.pod_links, node.pod_bridge) == (("v0", "v1"), "cbr0")
    else:
        assert (node.pod_links, node.pod_bridge) == (("veth0", "veth1"), "")


def test_other_detectors_keep_their_veths(tmp_path):
    """ClusterCIDR (kind's) keeps the pods on plain veths ``v<j>``, no bridge: the layout before."""
    scenario, _ = load_scenario(write(tmp_path, 'local_traffic_detector = "ClusterCIDR"'))
    node = next(n for n in make_layout(scenario, "nftables", "t.toml").nodes if n.name == "kind-worker")
    assert (node.pod_links, node.pod_bridge) == (("v0", "v1"), "")


@pytest.mark.parametrize(
    ("setting", "problem"),
    [
        ('local_traffic_detector = "BridgeInterface", bridge_interface = "eth0"', "would match a node's own link"),
        ('local_traffic_detector = "BridgeInterface", bridge_interface = "v1"', "would match a node's own link"),
        ('local_traffic_detector = "BridgeInterface", bridge_interface = "br 0"', "letters, digits"),
        ('local_traffic_detector = "BridgeInterface", bridge_interface = "0br"', "letters, digits"),
        ('local_traffic_detector = "BridgeInterface", bridge_interface = "a-sixteen-chars!"', "letters, digits"),
        ('local_traffic_detector = "BridgeInterface", bridge_interface = "sixteen-chars-br"', "longer than Linux's"),
        ('local_traffic_detector = "InterfaceNamePrefix", interface_name_prefix = "et"', "would match a node's"),
        ('local_traffic_detector = "InterfaceNamePrefix", interface_name_prefix = "ca;li"', "letters, digits"),
        ('local_traffic_detector = "InterfaceNamePrefix", interface_name_prefix = "fifteen-chars-x"', "longer than"),
    ],
)
def test_interface_names_the_kernel_would_not_take_are_refused(setting, problem, tmp_path):
    """A bridge or veth name must be a Linux interface name (15 bytes at most, ``dev_valid_name``), a plain word
    to both rule languages, and not match the node's own ``lo``/``eth0`` or a veth: one SpecError naming it."""
    scenario, _ = load_scenario(write(tmp_path, setting))
    field = "bridge_interface" if "Bridge" in setting else "interface_name_prefix"
    with pytest.raises(SpecError, match=rf"dataplane\.{field}: .*{problem}"):
        make_layout(scenario, "iptables", "t.toml")


@pytest.mark.parametrize("detector", DETECTORS)
def test_sim_routes_treats_the_pod_as_local(detector, tmp_path):
    """The routing layer's verdict for the same detector (``pod_is_local``): from a pod on kind-worker, the
    eTP=Local Service's external addresses reach both endpoints, half each; with no detector, only web-1."""

    def shares(dataplane: str) -> list[tuple[str, float]]:
        argv = [sys.executable, "-m", "sim", "routes", str(write(tmp_path, dataplane)), "--json"]
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
        assert done.returncode == 0, done.stderr
        route = json.loads(done.stdout)["services"]["lb"]["pod_external_from_nodes"]["kind-worker"]
        return [(e["pod"], e["share"]) for e in route["endpoints"]]

    assert shares(DETECTORS[detector]) == [("web-1", 0.5), ("web-2", 0.5)]
    assert shares('local_traffic_detector = "none"') == [("web-1", 1.0)]


def node_links(em, node: str) -> list[str]:
    """The links of ``node``'s namespace with what they are attached to (``name@master`` or ``name``)."""
    argv = ["ip", "-n", em.names.node_ns(node), "-o", "link", "show"]
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    links = []
    for line in out.splitlines():
        name = line.split(":")[1].strip().split("@")[0]
        words = line.split()
        links.append(f"{name}@{words[words.index('master') + 1]}" if "master" in words else name)
    return sorted(links)


@pytest.mark.parametrize("detector", DETECTORS)
@pytest.mark.parametrize("mode", MODES)
def test_a_pod_calling_etp_local_is_local_traffic_on_the_kernel(mode, detector, tmp_path):
    """On the kernel, with the node's pods on the detector's interfaces: the pod's connections to the eTP=Local
    LoadBalancer IP and to its own node's NodePort reach both endpoints, as ``sim run`` predicts (homogeneity
    p > P_FAIL, no failures); to kind-worker2's NodePort they arrive on that node's uplink and reach web-2 only.
    Against the wrong model (no detector: the local endpoint only) the same kernel counts give p < 1e-10."""
    path = write(tmp_path, DETECTORS[detector])
    scenario, seed = load_scenario(path)
    layout = make_layout(scenario, mode, str(path))
    with emulated(layout, connect_timeout_s=CONNECT_TIMEOUT_S) as em:
        links = node_links(em, "kind-worker")
        kernel = em.run_clients()
    report = compare(scenario, kernel, sim_counts(scenario, seed))["services"]
    for name in ("lb", "np"):
        assert set(report[name]["kernel"]["by_endpoint"]) == {"web-1", "web-2"}, report[name]
        assert report[name]["kernel"]["failures"] == {}
        assert_agree(report[name])
    assert report["np-far"]["kernel"]["by_endpoint"] == {"web-2": 20}
    assert_agree(report["np-far"])
    wrong = compare(scenario, kernel, sim_counts(without_detector(scenario), seed))["services"]["lb"]
    assert wrong["homogeneity_p"] < 1e-10
    assert report["lb"]["homogeneity_p"] > P_FAIL
    if detector == "BridgeInterface":
        assert links == ["cbr0", "eth0", "lo", "v0@cbr0", "v1@cbr0"]
    else:
        assert links == ["eth0", "lo", "veth0", "veth1"]
