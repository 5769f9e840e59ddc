"""The network an emulation builds: the segments' bridges, the nodes and their pods, the routers, the external
clients; each a namespace, linked by veths, with its addresses and routes (what to build is the layout's).

Links are created inside the emulation's namespaces, never in the host's, and no namespace gets a default route,
so no packet can reach the host's network.
"""

from __future__ import annotations

from collections.abc import Mapping

from sim.cluster import Pod
from sim.emulate.kernel import Namespaces
from sim.emulate.layout import NODE_NET, POD_GATEWAY, SERVICE_NET, Layout, NodeLayout
from sim.emulate.names import Names
from sim.scenario import ExternalClient

LB_TABLE_BASE = 100
"""An external client's routing table (and fwmark) for "the load balancer sent it via node i": 100 + i."""
_FORWARDING = ("net.ipv4.ip_forward=1", "net.ipv4.conf.all.rp_filter=0", "net.ipv4.conf.default.rp_filter=0")
"""The sysctls of a namespace that forwards (a node, a router): forwarding on, reverse-path filtering off."""


def build_network(spaces: Namespaces, names: Names) -> None:
    """Make every namespace, link, address and route of the layout: the segments' bridges, then each node with its
    pods, each router, each external client."""
    layout = names.layout
    spaces.add(names.fabric_ns)
    segments = range(len(layout.fabric.segments))
    spaces.batch(names.fabric_ns, [c for k in segments for c in (f"link add br{k} type bridge", f"link set br{k} up")])
    for i, node in enumerate(layout.nodes):
        _build_node(spaces, names, i, node)
    for r, (router, addresses) in enumerate(layout.fabric.routers.items()):
        _build_router(spaces, names, r, router, addresses)
    for x, ext in enumerate(layout.scenario.external_clients):
        _build_client(spaces, names, x, ext)


def external_vips(layout: Layout) -> list[str]:
    """Every LoadBalancer IP and external IP of the scenario's Services."""
    return [ip for svc in layout.scenario.services for ip in (*svc.load_balancer_ips, *svc.external_ips)]


def route(layout: Layout, frm: str, to: str, dest: str, dev: str = "eth0") -> str:
    """The ``ip route`` command sending ``dest`` from ``frm`` towards ``to`` (a node or a segment)."""
    _, gateway = layout.fabric.next_hop(frm, to)
    return f"route add {dest} via {gateway} dev {dev} onlink" if gateway else f"route add {dest} dev {dev}"


def _uplink(spaces: Namespaces, names: Names, ns: str, port: str, hub: str, peer: str = "eth0") -> None:
    """A veth from the fabric's bridge of segment ``hub`` (its end named ``port``) to ``peer`` in ``ns``."""
    k = names.layout.fabric.segments.index(hub)
    spaces.batch(
        names.fabric_ns,
        [
            f"link add {port} type veth peer name {peer} netns {ns}",
            f"link set {port} master br{k}",
            f"link set {port} up",
        ],
    )


def _build_node(spaces: Namespaces, names: Names, i: int, node: NodeLayout) -> None:
    """Node ``i``: its namespace, its uplink on its segment's bridge (``n<i>``), its pods and their routes."""
    ns = names.node_ns(node.name)
    spaces.add(ns)
    spaces.sysctl(
        ns,
        *_FORWARDING,
        # every REJECT answers: Linux rate-limits ICMP errors per destination (a burst of 6, then one a
        # second), so a loop of connects to a Service without endpoints would see some SYNs unanswered
        # until their retransmission, 1 s later; the simulator's REJECT refuses every one at once
        "net.ipv4.icmp_ratemask=0",
    )
    _uplink(spaces, names, ns, f"n{i}", names.layout.fabric.hub_of[node.name])
    for pod in node.pods:
        spaces.add(names.pod_ns(pod.name))
    spaces.batch(ns, node_commands(names, node))
    for pod in node.pods:
        spaces.batch(names.pod_ns(pod.name), pod_commands(names.layout, pod))


def _build_router(spaces: Namespaces, names: Names, r: int, router: str, addresses: Mapping[str, str]) -> None:
    """A router between segments: an address on each (``r<r>s<k>`` on bridge k), routes to every node, pod and
    external client."""
    layout, fab = names.layout, names.layout.fabric
    rns = names.router_ns(r)
    spaces.add(rns)
    spaces.sysctl(rns, *_FORWARDING)
    cmds = []
    for hub, address in addresses.items():
        k = fab.segments.index(hub)
        _uplink(spaces, names, rns, f"r{r}s{k}", hub, peer=f"s{k}")
        cmds += [f"addr add {address}/24 dev s{k}", f"link set s{k} up"]
    for node in layout.nodes:
        out, gateway = fab.next_hop(router, node.name)
        dev = f"s{fab.segments.index(out)}"
        if gateway:
            cmds.append(f"route add {node.ip}/32 via {gateway} dev {dev} onlink")
        cmds += [f"route add {p.ip}/32 via {gateway or node.ip} dev {dev} onlink" for p in node.pods]
    for ext in layout.scenario.external_clients:
        out, gateway = fab.next_hop(router, fab.hub_of[ext.name])
        dev = f"s{fab.segments.index(out)}"
        via = f" via {gateway} dev {dev} onlink" if gateway else f" dev {dev}"
        cmds.append(f"route add {ext.ip}/32{via}")
    spaces.batch(rns, cmds)


def _build_client(spaces: Namespaces, names: Names, x: int, ext: ExternalClient) -> None:
    """External client ``x``: on its segment's bridge (``x<x>``), with a routing table per node for the load
    balancer."""
    layout = names.layout
    xns = names.client_ns(ext.name)
    hub = layout.fabric.hub_of[ext.name]
    spaces.add(xns)
    _uplink(spaces, names, xns, f"x{x}", hub)
    cmds = [f"addr add {ext.ip}/32 dev eth0", "link set eth0 up"]
    cmds += [route(layout, hub, node.name, f"{node.ip}/32") for node in layout.nodes]
    for i, node in enumerate(layout.nodes):
        if layout.fabric.hub_of[node.name] != hub:
            continue  # the load balancer's nodes are on the client's segment (the layout checks)
        table = LB_TABLE_BASE + i
        cmds += [f"route add {ip}/32 via {node.ip} dev eth0 onlink table {table}" for ip in external_vips(layout)]
        cmds.append(f"rule add fwmark {table} table {table}")
    spaces.batch(xns, cmds)


def node_commands(names: Names, node: NodeLayout) -> list[str]:
    """A node's address and routes: ClusterIPs and external IPs out of its uplink, other segments' nodes and
    external clients through the routers on the topology's path, its pods on their veths, other nodes' pods via
    the next hop."""
    layout, fab = names.layout, names.layout.fabric
    cmds = [f"addr add {node.ip}/24 dev eth0", "link set eth0 up"]
    # ClusterIPs route towards the uplink, as a node's default route would take them (nothing answers
    # there: packets the rules neither DNAT nor drop go nowhere)
    cmds.append(f"route add {SERVICE_NET} dev eth0")
    cmds += [f"route add {ip}/32 dev eth0" for ip in external_vips(layout)]  # LB and external IPs: likewise
    for other in layout.nodes:  # nodes on other segments, through the routers the topology's path crosses
        if other.name != node.name and fab.hub_of[other.name] != fab.hub_of[node.name]:
            cmds.append(route(layout, node.name, other.name, f"{other.ip}/32"))
    for ext in layout.scenario.external_clients:
        cmds.append(route(layout, node.name, fab.hub_of[ext.name], f"{ext.ip}/32"))
    cmds += pod_link_commands(names, node)
    for there in layout.nodes:
        if there.name != node.name:
            _, gateway = fab.next_hop(node.name, there.name)
            cmds += [f"route add {peer.ip}/32 via {gateway or there.ip} dev eth0 onlink" for peer in there.pods]
    return cmds


def pod_link_commands(names: Names, node: NodeLayout) -> list[str]:
    """The node's end of each pod's veth (named as the layout says) holding the pods' gateway address and the
    pod's route; or, with a pod bridge, the veths attached to that bridge, which holds the gateway address and
    the pods' routes (so that a pod's packets come in on the bridge, as on kubenet's ``cbr0``)."""
    bridge, cmds = node.pod_bridge, []
    if bridge:
        cmds += [f"link add {bridge} type bridge", f"addr add {POD_GATEWAY}/32 dev {bridge}", f"link set {bridge} up"]
    for link, pod in zip(node.pod_links, node.pods, strict=True):
        cmds.append(f"link add {link} type veth peer name eth0 netns {names.pod_ns(pod.name)}")
        if bridge:
            cmds += [f"link set {link} master {bridge}", f"link set {link} up", f"route add {pod.ip}/32 dev {bridge}"]
        else:
            cmds += [f"addr add {POD_GATEWAY}/32 dev {link}", f"link set {link} up"]
            cmds.append(f"route add {pod.ip}/32 dev {link}")
    return cmds


def pod_commands(layout: Layout, pod: Pod) -> list[str]:
    """A pod's address and routes: everything through its node's gateway address."""
    cmds = [
        f"addr add {pod.ip}/32 dev eth0",
        "link set eth0 up",
        f"route add {POD_GATEWAY} dev eth0 scope link",
        f"route add {SERVICE_NET} via {POD_GATEWAY} dev eth0",
    ]
    cmds += [
        f"route add {o.ip}/32 via {POD_GATEWAY} dev eth0" for n in layout.nodes for o in n.pods if o.name != pod.name
    ]
    # replies to external clients, and to nodes (masqueraded external traffic comes from a node's IP)
    cmds += [f"route add {ext.ip}/32 via {POD_GATEWAY} dev eth0" for ext in layout.scenario.external_clients]
    cmds.append(f"route add {NODE_NET} via {POD_GATEWAY} dev eth0")
    # pods calling a LoadBalancer IP or an external IP: out through their node, whose proxy captures it
    cmds += [f"route add {ip}/32 via {POD_GATEWAY} dev eth0" for ip in external_vips(layout)]
    return cmds
