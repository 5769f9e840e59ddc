"""Where the simulator and a real dataplane could part ways (issue 12): one scenario-level test per rule, each run
through ``run()``, each stating the upstream behaviour as its expectation and naming the upstream file/function."""

from __future__ import annotations

import base64
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from sim import run, summarize_service
from sim.io import parse_scenario
from sim.outcomes import DropReason
from sim.records import PICK_AFFINITY
from sim.routing import DataplaneConfig, maglev
from sim.scenario import entry_nodes, stream_route
from tests.conftest import ROOT

KIND = "../topologies/kind.toml"
KIND_EXTERNAL = "../topologies/kind-external.toml"
MULTIZONE = "../topologies/multizone.toml"
HERE = ROOT / "experiments" / "fidelity.toml"  # anchors the relative topology paths; never written


def scenario(dataplane: Any, pods: list[dict], services: list[dict], streams: list[dict], **top: Any):
    """A scenario table through the same parser as a file; defaults: kind, fast exponential service, 5 s connect."""
    path = top.pop("path", HERE)
    raw = {
        "name": "fidelity",
        "topology": top.pop("topology", KIND),
        "seed": top.pop("seed", 1),
        "dataplane": dataplane,
        "defaults": {
            "service_time": {"dist": "exponential", "mean_s": 0.0002},
            "concurrency": 8,
            "connect_timeout_s": 5,
        },
        "pods": pods,
        "services": services,
        "streams": streams,
        **top,
    }
    return parse_scenario(raw, path)[0]


def pod(name: str, node: str, app: str, **extra: Any) -> dict:
    return {"name": name, "node": node, "labels": {"app": app}, **extra}


def stream(client: str, service: str, requests: int = 200, **extra: Any) -> dict:
    return {"client": client, "service": service, "requests": requests, "workload": {"kind": "closed_loop"}, **extra}


def node_of(result, names) -> set[str]:
    return {result.node_names[i] for i in np.unique(names).tolist()}


# --- 1 ---------------------------------------------------------------------------------------------------------


def test_ipvs_virtual_server_without_real_servers_refuses_at_once():
    """linux ``net/netfilter/ipvs/ip_vs_core.c`` ``ip_vs_leave``: no destination for a new connection -> ICMP port
    unreachable, so connect() fails at once ("connection refused"); kubernetes ``pkg/proxy/ipvs/proxier.go``
    ``syncEndpoint`` leaves the virtual server without real servers for a Service with no endpoints, and for iTP=Local
    with no local endpoint when the Service has no NodePort/LB (clusterEndpoints nil)."""
    pods = [
        pod("client", "kind-worker", "client"),
        pod("echo", "kind-worker2", "echo"),
        pod("gone", "kind-worker2", "empty", ready=False),
    ]
    services = [
        {"name": "local-only", "selector": {"app": "echo"}, "internalTrafficPolicy": "Local"},
        {"name": "empty", "selector": {"app": "empty"}},
    ]
    streams = [stream("client", "local-only", 50), stream("client", "empty", 50)]
    r = run(scenario("ipvs", pods, services, streams), 1)
    for name in ("local-only", "empty"):
        s = summarize_service(r, name)
        assert s.drops == {DropReason.NO_REAL_SERVERS.label: 50}
        assert s.failed_after_s < 0.001  # at once, not the 5 s connect timeout
    iptables = run(scenario("iptables", pods, services, streams), 1)
    assert summarize_service(iptables, "local-only").failed_after_s == 5.0  # DROP: the iptables contrast


# --- 2 ---------------------------------------------------------------------------------------------------------


def _daemonset(topology_nodes: list[str]) -> list[dict]:
    return [pod(f"api-{n}", n, "api") for n in topology_nodes]


MZ_NODES = [f"zone-{z}-node-{i}" for z in "abc" for i in (1, 2, 3)]


@pytest.mark.parametrize("dp", ["iptables", "nftables", "ipvs"])
def test_pod_calling_another_nodes_node_port_is_decided_by_that_node(dp):
    """kubernetes ``pkg/proxy/iptables/proxier.go`` ``syncProxyRules`` (and ``pkg/proxy/nftables/proxier.go``):
    KUBE-SERVICES jumps to KUBE-NODEPORTS only with ``-m addrtype --dst-type LOCAL``, so a pod's packet to another
    node's NodePort is routed there and that node's EXT chain decides, with that node's hints (CategorizeEndpoints
    on that node), masquerading for eTP=Cluster. IPVS binds NodePorts to local addresses: the same."""
    pods = [pod("client", "zone-a-node-1", "client"), *_daemonset(MZ_NODES)]
    services = [{"name": "api", "selector": {"app": "api"}, "nodePort": 30080, "trafficDistribution": "PreferSameZone"}]
    streams = [stream("client", "api", 300, target="NodePort", node="zone-b-node-2")]
    r = run(scenario(dp, pods, services, streams, topology=MULTIZONE), 2)
    c = r.columns
    assert node_of(r, c["entry_node"]) == {"zone-b-node-2"}
    assert {n[:6] for n in node_of(r, c["endpoint_node"])} == {"zone-b"}  # zone-b-node-2's zone hints
    assert summarize_service(r, "api").source_preserved_fraction == 0.0


def test_cilium_socket_lb_translates_another_nodes_node_port_at_the_client():
    """cilium ``bpf/bpf_sock.c`` ``__sock4_xlate_fwd`` / ``sock4_wildcard_lookup_full`` (remote hosts included):
    the client's own socket picks the backend, its address kept; Cilium ignores PreferSameZone hints
    (``pkg/loadbalancer/reflectors/conversions.go`` ``isTopologyAware``), so all nine backends serve."""
    pods = [pod("client", "zone-a-node-1", "client"), *_daemonset(MZ_NODES)]
    services = [{"name": "api", "selector": {"app": "api"}, "nodePort": 30080, "trafficDistribution": "PreferSameZone"}]
    streams = [stream("client", "api", 900, target="NodePort", node="zone-b-node-2")]
    r = run(scenario("cilium", pods, services, streams, topology=MULTIZONE), 2)
    assert node_of(r, r.columns["entry_node"]) == {"zone-a-node-1"}
    assert len(node_of(r, r.columns["endpoint_node"])) == 9
    assert summarize_service(r, "api").source_preserved_fraction == 1.0


# --- 3 ---------------------------------------------------------------------------------------------------------


LB_PODS = [
    pod("client", "kind-worker", "client"),
    pod("web-1", "kind-worker", "web"),
    pod("web-2", "kind-worker2", "web"),
]


def test_ipvs_pod_to_lb_ip_with_etp_local_uses_the_local_real_servers():
    """kubernetes ``pkg/proxy/ipvs/proxier.go`` ``syncProxyRules`` / ``syncEndpoint(svcPortName,
    svcInfo.ExternalPolicyLocal(), serv)`` for the LB virtual server: its real servers are the local endpoints
    (the cluster ones only when none is local); no iptables-style pod short-circuit to the cluster chain."""
    services = [
        {
            "name": "web",
            "selector": {"app": "web"},
            "externalTrafficPolicy": "Local",
            "loadBalancerIPs": ["198.51.100.7"],
        }
    ]
    streams = [stream("client", "web", 200, target="LoadBalancer")]
    ipvs = summarize_service(run(scenario("ipvs", LB_PODS, services, streams), 3), "web")
    assert ipvs.by_node == {"kind-worker": 200} and ipvs.source_preserved_fraction == 1.0
    iptables = summarize_service(run(scenario("iptables", LB_PODS, services, streams), 3), "web")
    assert set(iptables.by_node) == {"kind-worker", "kind-worker2"}  # "pod traffic for ... external destinations"


# --- 4 ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("dp", "kept"), [("iptables", 0.0), ("nftables", 0.0), ("ipvs", 0.0), ("cilium", 1.0)])
@pytest.mark.parametrize("target", ["LoadBalancer", "NodePort"])
def test_pods_calling_node_port_or_lb_with_etp_cluster_are_masqueraded(dp, kept, target):
    """kubernetes ``pkg/proxy/iptables/proxier.go`` ``syncProxyRules``: for eTP=Cluster the EXT chain's first rule
    is "masquerade traffic for ... external destinations" -> KUBE-MARK-MASQ, for every source (nftables the same;
    IPVS: KUBE-LOAD-BALANCER / KUBE-NODE-PORT end in KUBE-MARK-MASQ). Cilium's socket-LB rewrites the destination
    only (``bpf/bpf_sock.c`` ``__sock4_xlate_fwd``), so the pod's address is kept. The ClusterIP keeps it everywhere."""
    services = [
        {"name": "web", "selector": {"app": "web"}, "nodePort": 30080, "loadBalancerIPs": ["198.51.100.7"]},
        {"name": "web-cip", "selector": {"app": "web"}},
    ]
    streams = [stream("client", "web", 100, target=target, node="kind-worker"), stream("client", "web-cip", 100)]
    r = run(scenario(dp, LB_PODS, services, streams), 4)
    assert summarize_service(r, "web").source_preserved_fraction == kept
    assert summarize_service(r, "web-cip").source_preserved_fraction == 1.0


# --- 5 ---------------------------------------------------------------------------------------------------------


def test_cilium_socket_lb_picks_at_random_whatever_the_algorithm():
    """cilium ``bpf/bpf_sock.c`` ``__sock4_xlate_fwd``: ``key.backend_slot = (sock_select_slot(ctx_full) %
    svc->count) + 1`` (a random slot per TCP connection), never the Maglev table; the tc path
    (``nodeport_lb4``, external clients) uses ``--bpf-lb-algorithm=maglev``."""
    pods = [*LB_PODS, pod("other", "kind-worker2", "web")]
    services = [{"name": "web", "selector": {"app": "web"}, "nodePort": 30080, "loadBalancerIPs": ["198.51.100.7"]}]
    streams = [
        stream("client", "web", 100, target="LoadBalancer"),
        stream("client", "web", 100, target="NodePort", node="kind-worker2"),
        stream("client", "web", 100),
        {
            "client": "users",
            "service": "web",
            "requests": 100,
            "target": "NodePort",
            "node": "kind-worker",
            "workload": {"kind": "poisson", "rate_rps": 100},
        },
    ]
    dp = {"name": "cilium", "picker": "maglev", "external_clusterip": True}
    users = [{"name": "users", "attach": "internet", "ip": "203.0.113.9"}]
    sc = scenario(dp, pods, services, streams, topology=KIND_EXTERNAL, external_clients=users)
    assert [stream_route(sc, s, entry_nodes(sc, s)[0]).picker.name for s in sc.streams] == [
        "random",
        "random",
        "random",
        "maglev",
    ]
    r = run(sc, 5)
    external = r.columns["client"] == r.client_names.index("users")
    assert summarize_service(r, "web").pickers == ["maglev", "random"]
    assert external.sum() == 100


# --- 6 ---------------------------------------------------------------------------------------------------------

_M64 = (1 << 64) - 1


def _rotl(x: int, r: int) -> int:
    return ((x << r) | (x >> (64 - r))) & _M64


def _fmix(k: int) -> int:
    k ^= k >> 33
    k = (k * 0xFF51AFD7ED558CCD) & _M64
    k ^= k >> 33
    k = (k * 0xC4CEB9FE1A85EC53) & _M64
    return k ^ (k >> 33)


def murmur3_128(data: bytes, seed: int) -> tuple[int, int]:
    """MurmurHash3_x64_128, as cilium ``pkg/murmur3`` (tested there against the reference): (h1, h2)."""
    c1, c2 = 0x87C37B91114253D5, 0x4CF5AD432745937F
    h1 = h2 = seed
    n = len(data) // 16
    for i in range(n):
        k1 = int.from_bytes(data[16 * i : 16 * i + 8], "little")
        k2 = int.from_bytes(data[16 * i + 8 : 16 * i + 16], "little")
        h1 ^= (_rotl((k1 * c1) & _M64, 31) * c2) & _M64
        h1 = ((_rotl(h1, 27) + h2) * 5 + 0x52DCE729) & _M64
        h2 ^= (_rotl((k2 * c2) & _M64, 33) * c1) & _M64
        h2 = ((_rotl(h2, 31) + h1) * 5 + 0x38495AB5) & _M64
    tail = data[16 * n :]
    k1 = int.from_bytes(tail[:8], "little")
    k2 = int.from_bytes(tail[8:], "little")
    if len(tail) > 8:
        h2 ^= (_rotl((k2 * c2) & _M64, 33) * c1) & _M64
    if tail:
        h1 ^= (_rotl((k1 * c1) & _M64, 31) * c2) & _M64
    h1 ^= len(data)
    h2 ^= len(data)
    h1 = (h1 + h2) & _M64
    h2 = (h2 + h1) & _M64
    h1, h2 = _fmix(h1), _fmix(h2)
    h1 = (h1 + h2) & _M64
    h2 = (h2 + h1) & _M64
    return h1, h2


def cilium_lookup_table(addresses: list[str], m: int, seed_b64: str) -> list[str]:
    """Cilium ``pkg/maglev/maglev.go``, written out here from the source: ``ToConfig`` (seed bytes 0-3 big-endian),
    ``setHashString``, ``GetLookupTable`` (sort by hash string), ``getPermutation`` and ``computeLookupTable``
    (equal weights). Returns the owner address of each slot."""
    d = base64.b64decode(seed_b64)
    seed = d[0] << 24 | d[1] << 16 | d[2] << 8 | d[3]
    backends = sorted((f"[{a}/TCP,State:active]", a) for a in addresses)
    perm = []
    for name, _ in backends:
        h1, h2 = murmur3_128(name.encode(), seed)
        offset, skip = h1 % m, (h2 % (m - 1)) + 1
        row = [offset]
        for _ in range(1, m):
            row.append((row[-1] + skip) % m)
        perm.append(row)
    nxt = [0] * len(backends)
    entry = [-1] * m
    for n in range(m):
        i = n % len(backends)
        c = perm[i][nxt[i]]
        while entry[c] >= 0:
            nxt[i] += 1
            c = perm[i][nxt[i]]
        entry[c] = i
        nxt[i] += 1
    return [backends[i][1] for i in entry]


def test_murmur3_reference_matches_known_vectors():
    """The test's own murmur3 agrees with the library the simulator uses (independent implementations)."""
    import mmh3

    for data, seed in ((b"", 0), (b"hello", 1), (b"[10.0.0.1:80/TCP,State:active]", 0x24B7EF82), (bytes(range(40)), 7)):
        h = mmh3.hash128(data, seed, signed=False)
        assert murmur3_128(data, seed) == (h & _M64, h >> 64)


@pytest.mark.parametrize("m", [251, 1021])
@pytest.mark.parametrize("seed", [maglev.DEFAULT_SEED, base64.b64encode(bytes(range(12))).decode()])
def test_maglev_slot_tables_match_cilium(m, seed):
    """cilium ``pkg/maglev/maglev.go`` ``GetLookupTable``: every slot owned by the same backend as Cilium's own
    algorithm, computed independently above, for the default and another ``--bpf-lb-maglev-hash-seed``."""
    addresses = [f"10.244.{i % 3}.{i + 2}:8080" for i in range(7)]
    ours = maglev.table(addresses, m, seed)
    assert [addresses[i] for i in ours] == cilium_lookup_table(addresses, m, seed)


def test_maglev_picks_through_a_run_follow_cilium_slot_tables():
    """Scenario level: every connection ``run()`` routes with Maglev lands on the backend that owns its flow's slot
    in Cilium's own table (``pkg/maglev/maglev.go``), computed independently above. (The flow-to-slot hash is the
    simulator's own uniform hash, not Cilium's jhash of the tuple; the flows are the engine's, via the fast path's
    ``_flows``, which the fast-path tests hold identical to the DES.)"""
    from sim.plan import compile_plan
    from sim.rng import Streams
    from sim.routing.maglev import mix64_array
    from sim.solver import _flows

    pods = [pod(f"web-{i}", ("kind-worker", "kind-worker2")[i % 2], "web") for i in range(6)]
    services = [{"name": "web", "selector": {"app": "web"}, "nodePort": 30080}]
    streams = [
        {
            "client": "users",
            "service": "web",
            "requests": 400,
            "target": "NodePort",
            "node": "kind-worker",
            "workload": {"kind": "poisson", "rate_rps": 400},
        }
    ]
    dp = {"name": "cilium", "picker": "maglev", "maglev_table_size": 1021}
    users = [{"name": "users", "attach": "internet", "ip": "203.0.113.9"}]
    sc = scenario(dp, pods, services, streams, topology=KIND_EXTERNAL, external_clients=users)
    r = run(sc, 6)
    c = r.columns
    owners = cilium_lookup_table([ep.address for ep in sc.control_plane.endpoints("web")], 1021, maglev.DEFAULT_SEED)
    pod_of = {ep.address: r.pod_names.index(ep.pod) for ep in sc.control_plane.endpoints("web")}
    flows = _flows(compile_plan(sc), Streams(6), c["stream"], c["endpoint"] >= 0)
    slots = (mix64_array(flows) % np.uint64(1021)).astype(np.int64)
    assert c["endpoint"].tolist() == [pod_of[owners[k]] for k in slots.tolist()]
    assert len(set(c["endpoint"].tolist())) == 6


def test_bad_maglev_seed_is_one_line(tmp_path):
    """cilium ``pkg/maglev/maglev.go`` ``ToConfig``: a seed that is not base64 of 12 bytes is refused."""
    bad = (
        (ROOT / "experiments" / "maglev_remap.toml")
        .read_text()
        .replace('picker = "maglev"', 'picker = "maglev"\nmaglev_hash_seed = "c2hvcnQ="')
        .replace("../topologies", str(ROOT / "topologies"))
    )
    path = tmp_path / "bad.toml"
    path.write_text(bad)
    cmd = [sys.executable, "-m", "sim", "validate", str(path)]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 2 and done.stderr.count("\n") == 1
    assert "dataplane.maglev_hash_seed" in done.stderr and "not 12 bytes" in done.stderr


# --- 7 ---------------------------------------------------------------------------------------------------------


ZONED_PODS = [
    pod("client-a", "zone-a-node-1", "client"),
    pod("client-b", "zone-b-node-1", "client"),
    *(pod(f"api-{n}", n, "api") for n in MZ_NODES if not n.startswith("zone-a")),
]


def _zones(result, service: str, client: str) -> set[str]:
    c = result.columns
    mine = (c["service"] == result.service_names.index(service)) & (c["client"] == result.client_names.index(client))
    mine &= c["endpoint_node"] >= 0
    return {result.node_names[i][:6] for i in np.unique(c["endpoint_node"][mine]).tolist()}


@pytest.mark.parametrize("safeguards", [True, False])
@pytest.mark.parametrize("release", ["1.20", "1.18"])
def test_cilium_topology_follows_is_topology_aware_and_the_writer(safeguards, release):
    """cilium ``pkg/loadbalancer/reflectors/conversions.go`` ``isTopologyAware``: the topology annotation or
    ``trafficDistribution: PreferClose`` count, and since Cilium 1.20 PreferSameZone as its alias (cilium/cilium
    #44771; ``cilium_prefer_same = false`` is 1.18-1.19, where it does not). ``pkg/loadbalancer/writer/writer.go``
    ``DefaultSelectBackends`` (current): zone hints filter only when every backend is hinted and one is hinted for
    this node's zone, else all backends ("fall back to default behaviour"); the older writer skipped every backend
    hinted for other zones, so a zone without a backend got none."""
    services = [
        {"name": "close", "selector": {"app": "api"}, "trafficDistribution": "PreferClose"},
        {"name": "same-zone", "selector": {"app": "api"}, "trafficDistribution": "PreferSameZone"},
    ]
    streams = [stream(c, s, 60) for c in ("client-a", "client-b") for s in ("close", "same-zone")]
    dp = {
        "name": "cilium",
        "enable_service_topology": True,
        "cilium_topology_safeguards": safeguards,
        "cilium_prefer_same": release == "1.20",
    }
    r = run(scenario(dp, ZONED_PODS, services, streams, topology=MULTIZONE), 7)
    assert _zones(r, "close", "client-b") == {"zone-b"}
    honoured = ["close", "same-zone"] if release == "1.20" else ["close"]
    if release == "1.18":
        assert _zones(r, "same-zone", "client-b") == {"zone-b", "zone-c"}  # not honoured before 1.20
    for name in honoured:
        assert _zones(r, name, "client-b") == {"zone-b"}
        if safeguards:
            assert _zones(r, name, "client-a") == {"zone-b", "zone-c"}
        else:
            s = r.columns
            mine = (s["service"] == r.service_names.index(name)) & (s["client"] == r.client_names.index("client-a"))
            assert set(s["reason"][mine].tolist()) == {int(DropReason.NO_BACKENDS)}


@pytest.mark.parametrize("release", ["1.20", "1.18"])
def test_cilium_prefer_same_node_by_the_backends_node_name(release):
    """Cilium 1.20 (cilium/cilium#44771, ``writer.go`` ``DefaultSelectBackends``, checked before zones): with
    ``--enable-service-topology``, ``trafficDistribution: PreferSameNode`` keeps the backends whose node is the
    client's, and falls back to all where the node has none (cilium/cilium#45215). Cilium 1.18-1.19 ignore it."""
    services = [{"name": "near", "selector": {"app": "api"}, "trafficDistribution": "PreferSameNode"}]
    pods = [
        pod("client-b", "zone-b-node-1", "client"),
        pod("client-a", "zone-a-node-1", "client"),
        *(pod(f"api-{n}", n, "api") for n in MZ_NODES if not n.startswith("zone-a")),
    ]
    streams = [stream(c, "near", 120) for c in ("client-a", "client-b")]
    dp = {"name": "cilium", "enable_service_topology": True, "cilium_prefer_same": release == "1.20"}
    r = run(scenario(dp, pods, services, streams, topology=MULTIZONE), 3)
    c = r.columns
    for client, local in (("client-b", True), ("client-a", False)):
        mine = (c["client"] == r.client_names.index(client)) & (c["endpoint_node"] >= 0)
        served = {r.node_names[i] for i in np.unique(c["endpoint_node"][mine]).tolist()}
        if release == "1.20" and local:
            assert served == {"zone-b-node-1"}
        else:  # no backend on zone-a-node-1 (or 1.18): every backend, zone-b and zone-c
            assert len(served) > 2 and {n[:6] for n in served} == {"zone-b", "zone-c"}


def test_cilium_node_without_zone_label_gets_all_backends(tmp_path):
    """cilium ``pkg/loadbalancer/writer/writer.go`` ``DefaultSelectBackends``: ``thisZone`` is nil when the node has
    no ``topology.kubernetes.io/zone`` label, and then no hint is consulted."""
    text = (ROOT / "topologies" / "multizone.toml").read_text()
    text = text.replace(
        'labels = { "topology.kubernetes.io/zone" = "zone-a", "topology.kubernetes.io/region" = "region-1" }',
        'labels = { "topology.kubernetes.io/region" = "region-1" }',
        1,
    )
    (tmp_path / "topo.toml").write_text(text)
    services = [{"name": "close", "selector": {"app": "api"}, "trafficDistribution": "PreferClose"}]
    dp = {"name": "cilium", "enable_service_topology": True}
    sc = scenario(
        dp, ZONED_PODS, services, [stream("client-a", "close", 60)], topology="topo.toml", path=tmp_path / "s.toml"
    )
    assert sc.nodes["zone-a-node-1"].zone == ""
    assert _zones(run(sc, 7), "close", "client-a") == {"zone-b", "zone-c"}


# --- 8 ---------------------------------------------------------------------------------------------------------


def _sticky(dataplane: Any) -> np.ndarray:
    """400 pods on one node, each connecting twice (0.001 s apart per pod, 5 s between rounds) to a ClientIP
    Service with two endpoints; returns whether each second-round connection was pinned by affinity."""
    n = 400
    pods = [pod(f"c{i}", "kind-worker", "client", ip=f"10.244.{20 + i // 200}.{i % 200 + 2}") for i in range(n)]
    pods += [pod("s1", "kind-worker", "svc"), pod("s2", "kind-worker2", "svc")]
    services = [{"name": "svc", "selector": {"app": "svc"}, "sessionAffinity": "ClientIP"}]
    streams = [
        {"client": f"c{i}", "service": "svc", "workload": {"kind": "trace", "times_s": [i * 0.001, 5 + i * 0.001]}}
        for i in range(n)
    ]
    r = run(scenario(dataplane, pods, services, streams), 8)
    c = r.columns
    second = c["t_sent"] >= 5
    assert second.sum() == n
    return c["pick"][second] == PICK_AFFINITY


def test_iptables_affinity_forgets_past_ip_list_tot_clients_per_endpoint():
    """linux ``net/netfilter/xt_recent.c``: ``ip_list_tot = 100`` addresses per list, ``recent_entry_init`` evicting
    the least recently seen when full; kube-proxy ``pkg/proxy/iptables/proxier.go``
    ``writeServiceToEndpointRules`` keeps one ``-m recent`` list per endpoint chain. With ~200 other clients recorded
    on an endpoint between a client's two connections (Binomial(399, 1/2): below 100 is ten standard deviations
    away) every client is forgotten; without the limit, or with nftables' timed sets, every one sticks."""
    assert not _sticky("iptables").any()
    assert _sticky({"name": "iptables", "recent_list_size": 0}).all()
    assert _sticky({"name": "iptables", "recent_list_size": 1000}).all()
    assert _sticky("nftables").all()


# --- 9 ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("mode", "served"), [("ClusterCIDR", True), ("NodeCIDR", True), ("none", False)])
def test_local_traffic_detector_decides_the_pod_short_circuit_for_lb_ips(mode, served):
    """kubernetes ``pkg/proxy/iptables/proxier.go`` ``syncProxyRules``: the eTP=Local EXT chain's "pod traffic for
    ... external destinations" rule exists only if ``proxier.localDetector.IsImplemented()``
    (``cmd/kube-proxy/app/server_linux.go`` ``getLocalDetectors``: no cluster CIDR -> ``NewNoOpLocalDetector``);
    without it a pod calling the LB IP takes the local chain, and with no local endpoint the filter DROP."""
    pods = [pod("client", "kind-worker", "client"), pod("web", "kind-worker2", "web")]
    services = [
        {
            "name": "web",
            "selector": {"app": "web"},
            "externalTrafficPolicy": "Local",
            "loadBalancerIPs": ["198.51.100.7"],
        }
    ]
    dp = {"name": "iptables", "local_traffic_detector": mode}
    s = summarize_service(
        run(scenario(dp, pods, services, [stream("client", "web", 40, target="LoadBalancer")]), 9), "web"
    )
    if served:
        assert s.by_node == {"kind-worker2": 40} and s.source_preserved_fraction == 1.0
    else:
        assert s.drops == {DropReason.NO_LOCAL_ENDPOINTS.label: 40} and s.failed_after_s == 5.0


@pytest.mark.parametrize(
    ("options", "reason", "after_s"),
    [
        ({}, DropReason.NO_BACKENDS, 0.0),
        ({"socket_lb_host_namespace_only": True}, DropReason.NO_BACKEND_REJECTED, 0.0),
        (
            {"socket_lb_host_namespace_only": True, "service_no_backend_response": "drop"},
            DropReason.NO_SERVICE_BACKEND,
            5.0,
        ),
    ],
)
def test_cilium_host_namespace_only_sends_pods_through_the_tc_path(options, reason, after_s):
    """cilium ``bpf/bpf_sock.c`` ``__sock4_xlate_fwd``: ``svc->count == 0`` -> -EHOSTUNREACH at connect(); with
    ``socketLB.hostNamespaceOnly`` a pod's socket is not translated (``hostns_only && !in_hostns`` -> -ENXIO) and
    the tc path's ``lb4_local`` finds no backend: ``DROP_NO_SERVICE``, answered with ICMP port unreachable by
    ``tail_no_service_ipv4`` under ``--service-no-backend-response=reject`` (``pkg/defaults``: the default)."""
    pods = [pod("client", "kind-worker", "client"), pod("echo", "kind-worker2", "echo")]
    services = [{"name": "echo", "selector": {"app": "echo"}, "internalTrafficPolicy": "Local"}]
    s = summarize_service(
        run(scenario({"name": "cilium", **options}, pods, services, [stream("client", "echo", 20)]), 9), "echo"
    )
    assert s.drops == {reason.label: 20} and s.failed_after_s == after_s


@pytest.mark.parametrize("graceful", [True, False])
def test_ipvs_graceful_termination_keeps_open_connections_to_terminating_pods(graceful):
    """kubernetes ``pkg/proxy/ipvs/graceful_termination.go`` ``GracefulDeleteRS``: a real server leaving the
    endpoints is set to weight 0 and deleted only when it has no connections, so an open connection keeps being
    served while new ones avoid it. Without it (before kube-proxy 1.13) the real server is deleted at once and
    ``expire_nodest_conn=1`` expires its connections at their next packet."""
    pods = [
        pod("client", "kind-worker", "client"),
        pod("web-a", "kind-worker", "web"),
        pod("web-b", "kind-worker2", "web"),
    ]
    services = [{"name": "web", "selector": {"app": "web"}}]
    streams = [
        {
            "client": "client",
            "service": "web",
            "workload": {"kind": "closed_loop", "think_s": 0.05},
            "connections": {"max_requests": 100000},
        }
    ]
    dp = {"name": "ipvs", "ipvs_graceful_termination": graceful}
    timeline = [{"at_s": 2.0, "action": "terminate", "pod": "web-a", "grace_s": 5.0}]
    r = run(scenario(dp, pods, services, streams, duration_s=6.5, timeline=timeline), 10)
    c = r.columns
    a, b = r.pod_names.index("web-a"), r.pod_names.index("web-b")
    assert c["endpoint"][c["t_sent"] < 2.0].tolist() == [a] * int((c["t_sent"] < 2.0).sum())  # rr: web-a first
    later = c["t_sent"] > 3.5  # the proxy synced at 3 s (1 s lag); web-a is gone only at 7 s
    failed = c["outcome"] == 2
    if graceful:
        assert not failed.any()
        assert set(c["endpoint"][later].tolist()) == {a}
    else:
        assert c["reason"][failed].tolist() == [int(DropReason.REAL_SERVER_DELETED)]
        assert 3.0 <= c["t_sent"][failed][0] < 3.1
        assert set(c["endpoint"][later].tolist()) == {b}


# --- 10 --------------------------------------------------------------------------------------------------------

SEMANTICS = ROOT / "docs" / "semantics.md"
UPSTREAM = [
    "pkg/proxy/topology.go",
    "CategorizeEndpoints",
    "topologyModeFromHints",
    "availableForTopology",
    "topologycache",
    "getAllocations",
    "trafficdist",
    "pkg/proxy/iptables/proxier.go",
    "writeServiceToEndpointRules",
    "pkg/proxy/nftables/proxier.go",
    "pkg/proxy/ipvs/proxier.go",
    "syncEndpoint",
    "graceful_termination.go",
    "ip_vs_leave",
    "xt_recent.c",
    "getLocalDetectors",
    "bpf/bpf_sock.c",
    "__sock4_xlate_fwd",
    "pkg/maglev/maglev.go",
    "conversions.go",
    "isTopologyAware",
    "DefaultSelectBackends",
    "tail_no_service_ipv4",
    "pkg/proxy/serviceport.go",
]


def test_semantics_page_covers_every_rule_and_nothing_points_outside_the_repository():
    """docs/semantics.md is the project's own statement of the rules: it names each upstream file/function the
    routing layer follows, every dataplane option and drop reason; the README links it; no tracked file points to
    a ``shared/`` directory or ``k8s-semantics.md``, which a fresh clone does not have."""
    text = SEMANTICS.read_text()
    missing = [u for u in UPSTREAM if u not in text]
    assert not missing, f"docs/semantics.md does not cite {missing}"
    for option in DataplaneConfig.__dataclass_fields__:
        assert f"`{option}`" in text, f"dataplane option {option} is not documented"
    for reason in DropReason:
        assert reason is DropReason.NONE or f"`{reason.label}`" in text, f"drop reason {reason.label} undocumented"
    assert "(docs/semantics.md)" in (ROOT / "README.md").read_text()
    tracked = subprocess.run(["git", "ls-files", "*.py", "*.md", "*.toml"], capture_output=True, text=True, cwd=ROOT)
    pattern = re.compile(r"shared/|k8s-semantics")
    offenders = [
        f
        for f in tracked.stdout.split()
        if f != "tests/test_fidelity.py" and pattern.search(Path(ROOT, f).read_text(errors="replace"))
    ]
    assert not offenders, f"references outside the repository in {offenders}"
