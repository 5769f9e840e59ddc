"""What a proxy programs for each Service on each node: the endpoints a new connection may reach, with each one's
expected share, or what the client sees when there is none (``sim routes``).

Nothing here decides a route: every route is ``Scenario.route_for``, the dataplane's own ``route()`` that the
engine uses, and every share is the chosen picker's ``shares()``.
"""

from __future__ import annotations

from typing import Any

from sim.outcomes import DropReason
from sim.routing import Source
from sim.scenario import Scenario


def route_json(scenario: Scenario, service: str, node: str, source: Source) -> dict[str, Any]:
    """One ROUTE: outcome (``routed`` or the drop reason's name), endpoints with shares, hints, picker."""
    route = scenario.route_for(service, node, source)
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
        "hints": scenario.hints(service).describe(),
        "picker": route.picker.name,
        "source_preserved": route.source_preserved,
    }
    if route.drop != DropReason.NONE:
        out["client_sees"] = route.drop.description
    return out


def routes(scenario: Scenario, service: str | None = None, node: str | None = None) -> dict[str, Any]:
    """``{"services": {NAME: {"from_nodes": {NODE: ROUTE}, "external_at_nodes": {NODE: ROUTE}}}}``: routes from
    a pod on each node (the ClusterIP), and for externally reachable Services from outside arriving at each node;
    limited to one Service or node when given."""
    nodes = [n for n in scenario.topology.nodes if node is None or n == node]
    services: dict[str, Any] = {}
    for svc in scenario.services:
        if service is not None and svc.name != service:
            continue
        services[svc.name] = {
            "from_nodes": {n: route_json(scenario, svc.name, n, Source.POD) for n in nodes},
            "external_at_nodes": {n: route_json(scenario, svc.name, n, Source.EXTERNAL) for n in nodes}
            if svc.externally_accessible
            else {},
        }
    return {"dataplane": scenario.dataplane.name, "services": services}


def format_routes(scenario: Scenario, table: dict[str, Any]) -> str:
    """The human form of ``routes``: per Service, one line per node."""
    lines = [f"dataplane {table['dataplane']}"]
    for name, entry in table["services"].items():
        svc = scenario.service(name)
        kind = "LoadBalancer" if svc.load_balancer_ips else "NodePort" if svc.node_port else "ClusterIP"
        lines.append("")
        lines.append(
            f"Service {name}  {kind}  internalTrafficPolicy={svc.internal_traffic_policy}  "
            f"externalTrafficPolicy={svc.external_traffic_policy}  hints: {scenario.hints(name).describe()}"
        )
        for title, routes_at in (
            ("from a pod on", entry["from_nodes"]),
            ("from outside at", entry["external_at_nodes"]),
        ):
            for n, route in routes_at.items():
                head = f"  {title} {n}:"
                if route["outcome"] != "routed":
                    lines.append(f"{head} {route['outcome']}: {route['client_sees']}")
                    continue
                picks = ", ".join(
                    f"{ep['pod'] or ep['address']} ({ep['node'] or 'no node'}) {ep['share']:.1%}"
                    for ep in route["endpoints"]
                )
                lines.append(f"{head} {picks}  [{route['picker']}]")
    return "\n".join(lines)
