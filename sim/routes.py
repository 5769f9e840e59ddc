"""What a proxy programs for each Service on each node: the endpoints a new connection may reach, with each one's
expected share, or what the client sees when there is none (``sim routes``).

Nothing here decides a route: every route is ``sim.scenario.route_for``, the dataplane's own ``route()`` that the
engine uses, and every share is the chosen picker's ``shares()``.
"""

from __future__ import annotations

from typing import Any

from sim.outcomes import DropReason
from sim.routing import Source
from sim.scenario import Scenario, route_for


def route_json(scenario: Scenario, service: str, node: str, source: Source, port: str = "") -> dict[str, Any]:
    """One ROUTE of the Service's port ``port`` (``""``: the first): outcome (``routed`` or the drop reason's
    name), endpoints with shares, hints, picker."""
    route = route_for(scenario, service, node, source, port=port)
    shares = route.picker.shares(route.endpoints).tolist() if route.endpoints else []
    endpoints = [
        {
            "address": ep.address.rpartition(":")[0].strip("[]"),
            "port": int(ep.address.rpartition(":")[2]),
            "pod": ep.pod,
            "node": ep.node_name,
            "zone": ep.zone,
            "share": share,
        }
        for ep, share in zip(route.endpoints, shares, strict=True)
    ]
    out: dict[str, Any] = {
        "outcome": "routed" if route.drop == DropReason.NONE else route.drop.label,
        "endpoints": endpoints,
        "hints": scenario.control_plane.hints(service).describe(),
        "picker": route.picker.name,
        "source_preserved": route.source_preserved,
    }
    if route.drop != DropReason.NONE:
        out["client_sees"] = route.drop.description
    return out


def routes(scenario: Scenario, service: str | None = None, node: str | None = None) -> dict[str, Any]:
    """``{"services": {NAME: {"from_nodes": {NODE: ROUTE}, "external_at_nodes": {NODE: ROUTE},
    "pod_external_from_nodes": {NODE: ROUTE}}}}``: routes from a pod on each node (the ClusterIP), and for
    externally reachable Services from outside arriving at each node and from a pod on each node calling the
    Service's external address (LoadBalancer IP, externalIP, its own node's NodePort: where kube-proxy's
    local-traffic detector decides); limited to one Service or node when given. A Service with several ports has
    the same for each further port under ``"ports": {PORT: {...}}``."""
    nodes = [n for n in scenario.topology.nodes if node is None or n == node]
    services: dict[str, Any] = {}
    for svc in scenario.services:
        if service is not None and svc.name != service:
            continue
        services[svc.name] = _port_routes(scenario, svc.name, nodes, "")
        if svc.other_ports:
            services[svc.name]["ports"] = {
                p.name: _port_routes(scenario, svc.name, nodes, p.name) for p in svc.other_ports
            }
    return {"dataplane": scenario.dataplane.name, "services": services}


def _port_routes(scenario: Scenario, name: str, nodes: list[str], port: str) -> dict[str, Any]:
    """One Service port's routes from pods, from outside and from pods calling its external address."""
    external = scenario.service(name).externally_accessible
    return {
        "from_nodes": {n: route_json(scenario, name, n, Source.POD, port) for n in nodes},
        "external_at_nodes": {n: route_json(scenario, name, n, Source.EXTERNAL, port) for n in nodes}
        if external
        else {},
        "pod_external_from_nodes": {n: route_json(scenario, name, n, Source.POD_EXTERNAL, port) for n in nodes}
        if external
        else {},
    }


def format_routes(scenario: Scenario, table: dict[str, Any]) -> str:
    """The human form of ``routes``: per Service, one line per node."""
    lines = [f"dataplane {table['dataplane']}"]
    for name, entry in table["services"].items():
        svc = scenario.service(name)
        lines.append("")
        hints = scenario.control_plane.hints(name).describe()
        lines.append(
            f"Service {name}  {svc.kind}  internalTrafficPolicy={svc.internal_traffic_policy}  "
            f"externalTrafficPolicy={svc.external_traffic_policy}  hints: {hints}"
        )
        parts = [("", entry), *((f"port {p}: ", e) for p, e in entry.get("ports", {}).items())]
        for prefix, part in parts:
            lines.extend(_route_lines(prefix, part))
    return "\n".join(lines) + "\n"


def _route_lines(prefix: str, entry: dict[str, Any]) -> list[str]:
    """One Service port's lines: per node, where a connection goes (or what the client sees)."""
    lines = []
    for title, routes_at in (
        ("from a pod on", entry["from_nodes"]),
        ("from outside at", entry["external_at_nodes"]),
        ("from a pod to its external address on", entry["pod_external_from_nodes"]),
    ):
        for n, route in routes_at.items():
            head = f"  {prefix}{title} {n}:"
            if route["outcome"] != "routed":
                lines.append(f"{head} {route['outcome']}: {route['client_sees']}")
                continue
            picks = ", ".join(
                f"{ep['pod'] or ep['address']} ({ep['node'] or 'no node'}) {ep['share']:.1%}"
                for ep in route["endpoints"]
            )
            lines.append(f"{head} {picks}  [{route['picker']}]")
    return lines
