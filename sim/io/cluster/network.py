"""The network Kubernetes objects do not describe: a topology generated from the nodes' zones, with the
latencies of a scenario's ``[network]`` table.

Generated: a switch per zone (``switch-<zone>``; nodes without a zone share ``switch-none``) and, with more than
one zone, a ``spine`` joining the switches; a kind cluster is its node containers on one Docker bridge
(``kind-bridge``), whatever the zones. Each key is one hop's one-way latency, a number of seconds or a duration
table: ``same_node_s`` pod to pod on one node; ``same_zone_s`` a node to its zone's switch (or the kind bridge), so
two nodes of a zone are two such hops apart; ``cross_zone_s`` a zone switch to the spine, so crossing zones costs
two of each. The defaults are those of ``topologies/kind.toml`` and ``topologies/multizone.toml``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sim.cluster import ZONE_LABEL
from sim.distributions import Dist, Exponential, LogNormal
from sim.io.cluster.objects import KNode
from sim.io.durations import duration
from sim.io.typed import Table
from sim.topology import ElementKind, Link, Topology

KIND_BRIDGE = "kind-bridge"
SPINE = "spine"


@dataclass(frozen=True)
class Network:
    """One-way latency of each kind of hop (s)."""

    same_node: Dist
    same_zone: Dist
    cross_zone: Dist


KIND_NETWORK = Network(Exponential(0.00002), Exponential(0.00005), Exponential(0.00005))
"""``topologies/kind.toml``: veth and bridge on a node ~20 us, a node container to the Docker bridge ~50 us."""
ZONED_NETWORK = Network(Exponential(0.00002), LogNormal(0.00005, 0.5), LogNormal(0.0005, 0.5))
"""``topologies/multizone.toml``: a node to its top-of-rack switch ~50 us, a switch to the spine ~500 us."""


def network(top: Table, kind: bool) -> Network:
    """``[network] same_node_s, same_zone_s, cross_zone_s`` (each a number or a duration table), else the
    defaults for a kind cluster or a zoned one."""
    base = KIND_NETWORK if kind else ZONED_NETWORK
    if "network" not in top.data:
        return base
    t = Table(top.path, "network", top.take("network", dict))
    out = Network(
        duration(t, "same_node_s", base.same_node),
        duration(t, "same_zone_s", base.same_zone),
        duration(t, "cross_zone_s", base.cross_zone),
    )
    t.done()
    return out


def switch(zone: str) -> str:
    """The generated switch of a zone (``""``: nodes without one)."""
    return f"switch-{zone or 'none'}"


def generated_topology(name: str, nodes: Sequence[KNode], kind: bool, net: Network) -> Topology:
    """A Topology of ``nodes`` (in order): one kind bridge, or a switch per zone and a spine between them."""
    labels = {n.name: dict(n.labels) for n in nodes}
    cpu = {n.name: n.cpu for n in nodes if n.cpu}
    unready = frozenset(n.name for n in nodes if not n.ready)
    elements: dict[str, ElementKind] = {}
    links: list[Link] = []
    if kind:
        elements[KIND_BRIDGE] = ElementKind.BRIDGE
        links = [Link(n.name, KIND_BRIDGE, net.same_zone) for n in nodes]
    else:
        zones = list(dict.fromkeys(n.labels.get(ZONE_LABEL, "") for n in nodes))
        for zone in zones:
            elements[switch(zone)] = ElementKind.SWITCH
        links = [Link(n.name, switch(n.labels.get(ZONE_LABEL, "")), net.same_zone) for n in nodes]
        if len(zones) > 1:
            elements[SPINE] = ElementKind.ROUTER
            links.extend(Link(switch(z), SPINE, net.cross_zone) for z in zones)
    return Topology(name, labels, elements, links, net.same_node, cpu, unready)
