"""Topology files (``topologies/*.toml``): nodes with labels and CPU, network elements, links with latency (s)."""

from __future__ import annotations

from pathlib import Path

from sim import guards
from sim.distributions import Constant
from sim.io.durations import duration
from sim.io.typed import Table, load_toml
from sim.topology import ElementKind, Link, Topology

_ELEMENTS = [k.value for k in ElementKind if k != ElementKind.NODE]


def load_topology(path: str | Path) -> Topology:
    """Read a topology TOML file: nodes with labels, network elements, links with latency (s)."""
    path = Path(path)
    return parse_topology(load_toml(path), path)


def parse_topology(raw: object, path: Path) -> Topology:
    """Build a Topology from a parsed topology table; ``path`` names it in errors."""
    top = Table(path, "", raw)
    name = top.take("name", str, path.stem)
    same_node = duration(top, "same_node_latency", Constant(0.0))
    nodes: dict[str, dict[str, str]] = {}
    cpu: dict[str, float] = {}
    unready: set[str] = set()
    for t in top.tables("nodes"):
        node = t.take("name", str)
        if node in nodes:
            raise t.error("name", f"duplicate node {node!r}")
        nodes[node] = t.strings("labels")
        cpu[node] = t.number("cpu", 0.0, minimum=0)
        if not t.take("ready", bool, True):
            unready.add(node)
        t.done()
    if not nodes:
        raise top.error("nodes", "a topology needs at least one [[nodes]] entry")
    elements: dict[str, ElementKind] = {}
    for t in top.tables("elements"):
        element = t.take("name", str)
        if element in nodes or element in elements:
            raise t.error("name", f"duplicate name {element!r}")
        elements[element] = t.choice("kind", ElementKind, _ELEMENTS)
        if elements[element] == ElementKind.NODE:
            raise t.error("kind", f"unknown value 'node'; expected one of {_ELEMENTS} (nodes go in [[nodes]])")
        t.done()
    too_big = guards.check_topology(len(nodes) + len(elements))
    if too_big:
        raise top.error("nodes", too_big)
    links = []
    for t in top.tables("links"):
        between = t.take("between", list)
        if len(between) != 2 or not all(isinstance(v, str) for v in between):
            raise t.error("between", f"must be two names, got {between!r}")
        for end in between:
            if end not in nodes and end not in elements:
                raise t.error("between", f"{end!r} is neither a node nor a network element")
        if between[0] == between[1]:
            raise t.error("between", f"a link cannot join {between[0]!r} to itself")
        links.append(Link(between[0], between[1], duration(t, "latency")))
        t.done()
    top.done()
    return Topology(
        name=name,
        nodes=nodes,
        elements=elements,
        links=links,
        same_node=same_node,
        allocatable_cpu=cpu,
        unready=frozenset(unready),
    )
