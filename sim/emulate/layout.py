"""What an emulation builds, decided from a Scenario without touching the system: pure.

One Kubernetes node is one network namespace, one pod is one namespace behind a veth pair into its node (its
node's end on a bridge or named with a prefix where the local-traffic detector looks for one), and the
nodes meet as the topology links them: one Linux bridge per ``bridge``/``switch`` element (all in a namespace of
their own), one namespace per router between them, forwarding along the topology's paths. Every address is
private to these namespaces: nodes on ``172.18.k.0/24`` for the k-th bridge or switch (as kind's Docker network
for the first), routers at ``.250`` down, ClusterIPs from ``10.96.0.10`` up, each pod its scenario address
(``10.244.N.k`` by default) behind the gateway ``169.254.1.1`` of its veth (as Calico does), and no default
route anywhere.

Which endpoints each node's proxy programs for each Service comes from the routing layer
(``sim.routing.categorize_endpoints``: kube-proxy's ``CategorizeEndpoints``), never from here.

External clients are namespaces on the same bridge (the topology's router in front of it is not a hop: latency
is not emulated); a LoadBalancer is the client's own uniform choice of a node per connection (over the nodes
that pass the health check, when the stream has them, as ``sim.scenario.lb_nodes`` says), its packets sent to that
node unchanged, destination the LoadBalancer IP.

What the kernel cannot reproduce is refused with the one bad-input error (``SpecError``): latency is not
emulated (the kernel gives its own), nor anything that changes routing over time or depends on it.
"""

from __future__ import annotations

import ipaddress
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace

from sim.cluster import Pod, Service
from sim.errors import SpecError
from sim.routing import categorize_endpoints
from sim.routing.policy import Endpoints
from sim.scenario import Scenario, Target, lb_nodes
from sim.topology import ElementKind

MODES = ("iptables", "nftables")
"""The kube-proxy modes an emulation can write."""
NODE_NET = ipaddress.ip_network("172.18.0.0/16")
"""The nodes' network on the emulated bridge (kind's Docker network)."""
SERVICE_NET = ipaddress.ip_network("10.96.0.0/16")
"""Where ClusterIPs are taken from (kubeadm's default service CIDR); the first is ``10.96.0.10``."""
POD_GATEWAY = "169.254.1.1"
"""Every pod's next hop: the node's end of its veth (link-local, as Calico does)."""
IFNAMSIZ = 16
"""Linux's ``IFNAMSIZ``: an interface name is at most 15 bytes and its NUL."""
_INTERFACE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_.-]*")
_NODE_LINKS = ("lo", "eth0")
"""A node namespace's own links besides its pods' veths: loopback and the uplink."""
MAX_NODES = 32
MAX_PODS = 128
MAX_REQUESTS = 100_000
"""Bounds on one emulation: namespaces made, and requests per stream."""


@dataclass(frozen=True)
class ServiceRules:
    """One Service as one node's proxy sees it: its ClusterIP and ``CategorizeEndpoints``' four results."""

    service: Service
    cluster_ip: str
    cluster: Endpoints | None
    local: Endpoints | None
    reachable: Endpoints
    has_endpoints: bool


@dataclass(frozen=True)
class NodeLayout:
    """One node: its address on the bridge, its pods, every Service port as its proxy programs it, its proxy's
    local-traffic detector (mode and the match it uses: a CIDR, a bridge or an interface prefix), the node's end
    of each pod's veth (by index, as ``pods``), the bridge they are attached to ("": none) and whether its proxy
    runs with ``--masquerade-all``."""

    name: str
    ip: str
    pods: tuple[Pod, ...]
    services: tuple[ServiceRules, ...]
    detector: tuple[str, str] = ("none", "")
    pod_links: tuple[str, ...] = ()
    pod_bridge: str = ""
    masquerade_all: bool = False


@dataclass(frozen=True)
class Layout:
    """Everything one emulation builds, and the scenario (dataplane set to ``mode``) the simulator runs."""

    scenario: Scenario
    mode: str
    nodes: tuple[NodeLayout, ...]
    cluster_ips: dict[str, str]
    servers: dict[str, tuple[int, ...]]
    """Backend pod -> the ports its HTTP server listens on (every port its endpoints have, in any Service port)."""
    clients: tuple[str, ...]
    """Clients (pods, then external clients), one client process each."""
    fabric: Fabric


def with_mode(scenario: Scenario, mode: str | None, path: str) -> Scenario:
    """The scenario with its dataplane replaced by kube-proxy ``mode`` (None: keep it, if it is one of ours).

    Cilium-only and IPVS-only settings are refused: under kube-proxy they would mean nothing.
    """
    dp = scenario.dataplane
    if mode is None:
        if dp.name not in MODES:
            raise SpecError(
                path,
                "dataplane",
                f"{dp.name} cannot be emulated (only kube-proxy's iptables and nftables modes can); pass "
                "--mode iptables or --mode nftables to run the Services under kube-proxy",
            )
        mode = dp.name
    if mode not in MODES:
        raise SpecError(path, "--mode", f"unknown mode {mode!r}; expected one of {list(MODES)}")
    if dp.picker and dp.picker != "random":
        raise SpecError(path, "dataplane.picker", f"{dp.picker} is not what kube-proxy {mode} does (random only)")
    if dp.external_clusterip or dp.enable_service_topology:
        field = "external_clusterip" if dp.external_clusterip else "enable_service_topology"
        raise SpecError(path, f"dataplane.{field}", f"a Cilium option; kube-proxy {mode} has no such setting")
    if dp.name == mode:
        return scenario
    return replace(scenario, dataplane=replace(dp, name=mode, picker=""))


def _check_address(path: str, field: str, text: str, taken: dict[str, str]) -> None:
    """Refuse an address the emulation cannot give: not IPv4, public, or in the nodes' or ClusterIPs' ranges, or
    already used by something else (``taken``: address -> what uses it)."""
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        raise SpecError(path, field, f"{text!r} is not an IPv4 address") from None
    if ip.version != 4 or ip in NODE_NET or ip in SERVICE_NET or not ip.is_private or ip.is_link_local:
        raise SpecError(
            path,
            field,
            f"{text} cannot be emulated: addresses must be private IPv4 (or documentation ranges such as "
            f"203.0.113.0/24), outside {NODE_NET} (nodes) and {SERVICE_NET} (ClusterIPs)",
        )
    if text in taken:
        raise SpecError(path, field, f"{text} is already the address of {taken[text]}")
    taken[text] = field


def _refuse_unsupported(sc: Scenario, path: str) -> None:
    """Raise SpecError for the first thing of ``sc`` the kernel emulation cannot reproduce."""
    if sc.timeline:
        raise SpecError(path, "timeline", "a changing cluster cannot be emulated (static clusters only)")
    if sc.duration_s is not None:
        raise SpecError(path, "duration_s", "not emulated: give each stream a request count (or --requests)")
    taken: dict[str, str] = {}
    for i, pod in enumerate(sc.pods):
        if pod.queue_limit is not None:
            raise SpecError(path, f"pods[{i}].queue_limit", "not emulated: the emulated pods never refuse work")
        _check_address(path, f"pods[{i}].ip", pod.ip, taken)
    for i, ext in enumerate(sc.external_clients):
        _check_address(path, f"external_clients[{i}].ip", ext.ip, taken)
    _check_pod_interfaces(sc, path)
    for i, svc in enumerate(sc.services):
        for k, ip in enumerate(svc.external_ips):
            _check_address(path, f"services[{i}].externalIPs[{k}]", ip, taken)
        for k, ip in enumerate(svc.load_balancer_ips):
            _check_address(path, f"services[{i}].loadBalancerIPs[{k}]", ip, taken)
    for i, st in enumerate(sc.streams):
        where = f"streams[{i}]"
        if sc.is_external(st.client) and st.target == Target.EXTERNAL_IP:
            raise SpecError(
                path, f"{where}.target", "an external client calling an externalIP is not emulated (pods are)"
            )
        if sc.is_external(st.client) and st.target == Target.LOAD_BALANCER and len(lb_nodes(sc, st)) > 250:
            raise SpecError(path, f"{where}.target", "too many load-balancer nodes")
        if st.requests is None:
            raise SpecError(path, f"{where}.requests", "give a request count (or --requests)")
        if st.requests > MAX_REQUESTS:
            raise SpecError(path, f"{where}.requests", f"at most {MAX_REQUESTS} requests per stream are emulated")
        if st.timeout_s is not None:
            raise SpecError(path, f"{where}.timeout_s", "request timeouts are not emulated (latency is not)")
        if st.retries.attempts:
            raise SpecError(path, f"{where}.retries", "retries are not emulated")
        if st.connections.max_age_s != float("inf"):
            raise SpecError(path, f"{where}.connections.max_age_s", "not emulated (simulated time is not wall time)")


@dataclass(frozen=True)
class Fabric:
    """The network between nodes, as the topology draws it: one L2 segment per bridge or switch (segment k is
    ``172.18.k.0/24``), and the routers joining segments (a router next to one segment only, such as the
    "internet" in front of a kind cluster, is where external clients attach, and is not a hop here)."""

    segments: tuple[str, ...]
    hub_of: dict[str, str]
    """Node or external client -> the bridge or switch it sits on."""
    routers: dict[str, dict[str, str]]
    """Router joining segments -> {segment: its address there}."""
    ips: dict[str, str]
    """Node -> its address."""
    paths: dict[tuple[str, str], tuple[str, ...]]
    """(from, to) -> the topology's lowest-latency path, for every pair a route is needed for."""

    def next_hop(self, frm: str, to: str) -> tuple[str, str | None]:
        """Leaving ``frm`` (a node, a router, or a segment for the external clients on it) towards ``to`` (a node
        or a segment): the segment the packet goes out on, and the router address it goes to (None: on-link)."""
        path = self.paths[(frm, to)]
        if frm in self.segments:
            out, rest = frm, path[1:]
        else:
            out, rest = path[1], path[2:]
        if not rest or rest[0] == to or rest[0] not in self.routers:
            return out, None
        return out, self.routers[rest[0]][out]


def _fabric(sc: Scenario, path: str) -> Fabric:
    """The fabric of ``sc``'s topology: nodes each linked to one bridge or switch, routers linking those; refuse
    anything else (node-to-node or node-to-router links, switches linked to switches, routers to routers)."""
    topo = sc.topology
    nodes = list(topo.nodes)
    if len(nodes) > MAX_NODES:
        raise SpecError(path, "topology", f"{len(nodes)} nodes; at most {MAX_NODES} are emulated")
    hubs = {name for name, kind in topo.elements.items() if kind in (ElementKind.BRIDGE, ElementKind.SWITCH)}
    routers = {name for name, kind in topo.elements.items() if kind == ElementKind.ROUTER}
    shape = "nodes each linked to one bridge or switch, and routers between switches, are emulated"
    hub_of: dict[str, str] = {}
    router_hubs: dict[str, list[str]] = {r: [] for r in sorted(routers)}
    for link in topo.links:
        ends = {link.a, link.b}
        hub = ends & hubs
        other = (ends - hub) or hub
        if len(hub) != 1 or not other <= set(nodes) | routers:
            raise SpecError(path, "topology", f"link {link.a} - {link.b}: only {shape}")
        (h,), (o,) = hub, other
        if o in routers:
            router_hubs[o].append(h)
        elif o in hub_of:
            raise SpecError(path, "topology", f"node {o} is linked to two switches; only {shape}")
        else:
            hub_of[o] = h
    for n in nodes:
        if n not in hub_of:
            if len(nodes) > 1:
                raise SpecError(path, "topology", f"node {n} is linked to no bridge or switch; only {shape}")
            hub_of[n] = f"{n}-bridge"  # a single node on its own: a bridge of its own
    segments = tuple(dict.fromkeys(hub_of[n] for n in nodes)) + tuple(
        sorted({h for hs in router_hubs.values() for h in hs} - set(hub_of.values()))
    )
    if len(segments) > 200:
        raise SpecError(path, "topology", f"{len(segments)} bridges and switches; at most 200 are emulated")
    transit = {r: hs for r, hs in router_hubs.items() if len(hs) > 1}
    if len(transit) > 40:
        raise SpecError(path, "topology", f"{len(transit)} routers; at most 40 are emulated")
    edge = {r: hs[0] for r, hs in router_hubs.items() if len(hs) == 1}
    ips: dict[str, str] = {}
    count: dict[str, int] = {}
    for n in nodes:
        k, j = segments.index(hub_of[n]), count.get(hub_of[n], 0)
        count[hub_of[n]] = j + 1
        ips[n] = str(NODE_NET.network_address + 256 * k + 2 + j)
    router_ips = {
        r: {h: str(NODE_NET.network_address + 256 * segments.index(h) + 250 - i) for h in hs}
        for i, (r, hs) in enumerate(sorted(transit.items()))
    }
    for i, ext in enumerate(sc.external_clients):
        if ext.attach in hubs:
            hub_of[ext.name] = ext.attach
        elif ext.attach in edge:
            hub_of[ext.name] = edge[ext.attach]
        else:
            raise SpecError(path, f"external_clients[{i}].attach", f"{ext.attach} is not next to one bridge or switch")
    for i, st in enumerate(sc.streams):
        if sc.is_external(st.client) and st.target == Target.LOAD_BALANCER:
            far = [n for n in lb_nodes(sc, st) if hub_of[n] != hub_of[st.client]]
            if far:
                raise SpecError(
                    path,
                    f"streams[{i}].target",
                    f"the load balancer's node {far[0]} is not on the client's bridge {hub_of[st.client]}",
                )
    pairs = {(a, b) for a in [*nodes, *transit] for b in nodes if a != b}
    pairs |= {(r, h) for r in transit for h in segments}
    pairs |= {(h, n) for h in segments for n in nodes} | {(n, h) for h in segments for n in nodes}
    paths = {
        (a, b): topo.path(a, b).vertices for a, b in sorted(pairs) if a in topo and b in topo and topo.connected(a, b)
    }
    return Fabric(segments, hub_of, router_ips, ips, paths)


def cluster_ips(services: Sequence[Service]) -> dict[str, str]:
    """A ClusterIP per Service, in file order from ``10.96.0.10``."""
    base = SERVICE_NET.network_address + 10
    return {svc.name: str(base + i) for i, svc in enumerate(services)}


def service_rules(sc: Scenario, node: str, ips: dict[str, str]) -> tuple[ServiceRules, ...]:
    """Every port of every Service as ``node``'s proxy programs it (kube-proxy's ``ServicePort``: one per
    ``ServicePortName``): ``CategorizeEndpoints`` from the routing layer over that port's endpoints."""
    out = []
    for whole in sc.services:
        for port in whole.ports:
            svc = whole.at_port(port.name)
            cat = categorize_endpoints(
                svc,
                sc.control_plane.endpoints(whole.name, port=port.name),
                sc.nodes[node],
                prefer_same_node_gate=sc.dataplane.prefer_same_node_gate,
            )
            rules = ServiceRules(svc, ips[whole.name], cat.cluster, cat.local, cat.all_reachable or (), cat.has_any)
            out.append(rules)
    return tuple(out)


def node_detector(sc: Scenario, index: int) -> tuple[str, str]:
    """The local-traffic detector of the ``index``-th node's proxy: its mode and what it matches (the cluster
    CIDR; the node's pod CIDR, ``10.244.<index>.0/24`` as the emulated pods are addressed and kind's nodes get
    theirs; the bridge; the interface prefix; nothing)."""
    dp = sc.dataplane
    match = {
        "ClusterCIDR": dp.cluster_cidr,
        "NodeCIDR": f"10.244.{index}.0/24",
        "BridgeInterface": dp.bridge_interface,
        "InterfaceNamePrefix": dp.interface_name_prefix,
    }.get(dp.local_traffic_detector, "")
    return dp.local_traffic_detector, match


def pod_links(sc: Scenario, count: int) -> tuple[str, ...]:
    """The node's end of each of its ``count`` pods' veths, by index: ``<prefix><j>`` under the
    InterfaceNamePrefix detector (so that kube-proxy's ``--pod-interface-name-prefix`` matches them, as a CNI
    naming its veths ``cali...`` or ``veth...`` makes it), else ``v<j>``."""
    dp = sc.dataplane
    prefix = dp.interface_name_prefix if dp.local_traffic_detector == "InterfaceNamePrefix" else "v"
    return tuple(f"{prefix}{j}" for j in range(count))


def pod_bridge(sc: Scenario) -> str:
    """The bridge a node's pod veths are attached to: under the BridgeInterface detector the one kube-proxy's
    ``--pod-bridge-interface`` names (as kubenet's ``cbr0``), else none ("")."""
    dp = sc.dataplane
    return dp.bridge_interface if dp.local_traffic_detector == "BridgeInterface" else ""


def _check_pod_interfaces(sc: Scenario, path: str) -> None:
    """Refuse a pod bridge or veth name the kernel would not take or that would match a node's other links: a
    Linux interface name (``dev_valid_name``: at most 15 bytes) of letters, digits, ``_``, ``.`` and ``-`` starting
    with a letter (a word to iptables-restore and nft alike), not the node's ``lo`` or ``eth0`` (nor, for a
    prefix, a prefix of them: the uplink would count as a pod's), nor a veth's ``v<j>``."""
    dp = sc.dataplane
    if dp.local_traffic_detector == "BridgeInterface":
        field, name, longest = "dataplane.bridge_interface", dp.bridge_interface, dp.bridge_interface
        clash = name in _NODE_LINKS or re.fullmatch(r"v\d+", name) is not None
    elif dp.local_traffic_detector == "InterfaceNamePrefix":
        field, name = "dataplane.interface_name_prefix", dp.interface_name_prefix
        most = max(Counter(p.node for p in sc.pods if p.name not in sc.absent).values(), default=1)
        longest = pod_links(sc, most)[-1]
        clash = any(link.startswith(name) for link in _NODE_LINKS)
    else:
        return
    if not _INTERFACE_NAME.fullmatch(name):
        raise SpecError(
            path, field, f"{name!r} cannot be emulated: letters, digits, '_', '.' and '-', starting with a letter"
        )
    if len(longest.encode()) > IFNAMSIZ - 1:
        raise SpecError(
            path, field, f"{name!r} makes interface {longest!r}, longer than Linux's {IFNAMSIZ - 1} characters"
        )
    if clash:
        raise SpecError(path, field, f"{name!r} would match a node's own link ({', '.join(_NODE_LINKS)}, v<N>)")


def make_layout(scenario: Scenario, mode: str | None, path: str) -> Layout:
    """What to build for ``scenario`` under kube-proxy ``mode``; SpecError naming ``path`` for what cannot be."""
    sc = with_mode(scenario, mode, path)
    _refuse_unsupported(sc, path)
    fabric = _fabric(sc, path)
    present = [p for p in sc.pods if p.name not in sc.absent]
    if len(present) > MAX_PODS:
        raise SpecError(path, "pods", f"{len(present)} pods; at most {MAX_PODS} are emulated")
    ips = cluster_ips(sc.services)
    nodes = tuple(
        NodeLayout(
            name,
            fabric.ips[name],
            tuple(p for p in present if p.node == name),
            service_rules(sc, name, ips),
            node_detector(sc, i),
            pod_links(sc, sum(p.node == name for p in present)),
            pod_bridge(sc),
            sc.dataplane.masquerade_all,
        )
        for i, name in enumerate(sc.topology.nodes)
    )
    listening: dict[str, set[int]] = {}
    for svc in sc.services:  # every port an endpoint of any Service port names: where its DNAT sends packets
        for port in svc.ports:
            for ep in sc.control_plane.endpoints(svc.name, port=port.name):
                listening.setdefault(ep.pod or "", set()).add(int(ep.address.rsplit(":", 1)[1]))
    servers = {pod.name: tuple(sorted(listening[pod.name])) for pod in present if pod.name in listening}
    clients = tuple(dict.fromkeys(st.client for st in sc.streams))
    return Layout(sc, sc.dataplane.name, nodes, ips, servers, clients, fabric)
