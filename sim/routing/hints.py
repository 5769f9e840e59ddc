"""The EndpointSlice controller's topology hints: trafficDistribution and the ``topology-mode: Auto`` heuristic.

kube-proxy never reads ``trafficDistribution`` or the annotation, only the hints written here (``docs/semantics.md``
section 4).
The Auto heuristic follows ``k8s.io/endpointslice/topologycache`` (``getAllocations``,
``getGivingAndReceivingZones``, ``redistributeHints``), with Go's random map order replaced by sorted order.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from sim.cluster import Endpoint, Node, Service, TrafficDistribution

TOPOLOGY_MODE = "service.kubernetes.io/topology-mode"
TOPOLOGY_AWARE_HINTS = "service.kubernetes.io/topology-aware-hints"  # the deprecated spelling
CONTROL_PLANE_LABELS = ("node-role.kubernetes.io/control-plane", "node-role.kubernetes.io/master")
OVERLOAD_THRESHOLD = 0.2


@dataclass(frozen=True)
class Hints:
    """The endpoints with the hints the controller wrote, and why it wrote none (``""`` when it wrote some)."""

    endpoints: tuple[Endpoint, ...]
    withheld: str = ""

    def describe(self) -> str:
        """``written``, or ``none: <why>`` (as ``sim run`` and ``sim routes`` report them).

        >>> Hints(()).describe(), Hints((), "no trafficDistribution").describe()
        ('none: the Service has no endpoints', 'none: no trafficDistribution')
        """
        if self.withheld:
            return f"none: {self.withheld}"
        return "written" if self.endpoints else "none: the Service has no endpoints"


def auto_mode(service: Service) -> bool:
    """Whether the Auto annotation (new or deprecated key) is set to ``Auto``/``auto``."""
    value = service.annotations.get(TOPOLOGY_MODE, service.annotations.get(TOPOLOGY_AWARE_HINTS))
    return value in ("Auto", "auto")


def generate_hints(service: Service, endpoints: Sequence[Endpoint], nodes: Mapping[str, Node]) -> Hints:
    """Hints for a Service's endpoints: Auto annotation first, then trafficDistribution, else none."""
    bare = tuple(
        ep if ep.zone_hints is None and ep.node_hints is None else replace(ep, zone_hints=None, node_hints=None)
        for ep in endpoints
    )  # a copy only where there are hints to clear: 150,000 endpoints at Kubernetes' limit
    if auto_mode(service):
        return auto_hints(bare, nodes)
    td = service.traffic_distribution
    if td is None:
        return Hints(bare, "no trafficDistribution and no topology-mode annotation")
    same_node = td == TrafficDistribution.PREFER_SAME_NODE
    hinted = tuple(
        replace(
            ep,
            zone_hints=frozenset({ep.zone}) if ep.zone else None,
            node_hints=frozenset({ep.node_name}) if same_node and ep.node_name else None,
        )
        if ep.ready
        else ep
        for ep in bare
    )
    return Hints(hinted)


def cpu_ratios_by_zone(nodes: Mapping[str, Node]) -> dict[str, float] | str:
    """Each zone's share of allocatable CPU over ready, non-control-plane nodes, or why there is none (SetNodes)."""
    cpu: dict[str, float] = {}
    for node in nodes.values():
        if any(label in node.labels for label in CONTROL_PLANE_LABELS) or not node.ready:
            continue
        if not node.zone or node.allocatable_cpu <= 0:
            return f"node {node.name!r} has no zone label or no allocatable CPU"
        cpu[node.zone] = cpu.get(node.zone, 0.0) + node.allocatable_cpu
    if len(cpu) < 2:
        return "ready nodes are in fewer than two zones"
    total = sum(cpu.values())
    return {zone: cpu[zone] / total for zone in sorted(cpu)}


@dataclass(frozen=True)
class _Allocation:
    minimum: int
    maximum: int
    desired: float


def allocations(ratios: Mapping[str, float], n_endpoints: int) -> dict[str, _Allocation] | str:
    """``getAllocations``: per zone, the min/max/desired endpoints that keep overload under 20%, or why not."""
    if len(ratios) > n_endpoints:
        return f"insufficient number of endpoints ({n_endpoints} endpoints, {len(ratios)} zones)"
    remaining = n_endpoints
    minima: dict[str, tuple[int, float]] = {}
    for zone, ratio in ratios.items():
        desired = ratio * n_endpoints
        minimum = math.ceil(desired * (1 / (1 + OVERLOAD_THRESHOLD)))
        minima[zone] = (minimum, max(desired, float(minimum)))
        remaining -= minimum
        if remaining < 0:
            return (
                "minimum allocation of endpoints per zone exceeds the overload threshold "
                f"({n_endpoints} endpoints, {len(ratios)} zones)"
            )
    min_total = sum(m for m, _ in minima.values())
    return {z: _Allocation(m, m + n_endpoints - min_total, d) for z, (m, d) in minima.items()}


def _most(values: Mapping[str, float]) -> tuple[str, float]:
    zone, most = "", 0.0
    for z in sorted(values):
        if values[z] > most:
            zone, most = z, values[z]
    return zone, most


def giving_and_receiving(allocs: Mapping[str, _Allocation], hinted: Mapping[str, int]) -> tuple[dict, dict]:
    """``getGivingAndReceivingZones``: whole endpoints each zone gives away or receives."""
    giving_want: dict[str, float] = {}
    receiving_want: dict[str, float] = {}
    for zone, alloc in allocs.items():
        have = hinted.get(zone, 0)
        if have > alloc.desired:
            giving_want[zone] = have - alloc.desired
        elif have < alloc.desired:
            receiving_want[zone] = alloc.desired - have
    giving: dict[str, int] = {}
    receiving: dict[str, int] = {}
    while True:
        g, n_give = _most(giving_want)
        r, n_receive = _most(receiving_want)
        if not g or not r or (n_give < 1 and n_receive < 1) or n_give < 0.5 or n_receive < 0.5:
            return giving, receiving
        giving[g] = giving.get(g, 0) + 1
        giving_want[g] -= 1
        receiving[r] = receiving.get(r, 0) + 1
        receiving_want[r] -= 1


def auto_hints(endpoints: Sequence[Endpoint], nodes: Mapping[str, Node]) -> Hints:
    """The ``topology-mode: Auto`` heuristic: zone hints in proportion to allocatable CPU, or none with a reason."""
    bare = tuple(endpoints)
    ratios = cpu_ratios_by_zone(nodes)
    if isinstance(ratios, str):
        return Hints(bare, ratios)
    ready = [ep for ep in bare if ep.ready]
    allocs = allocations(ratios, len(ready))
    if isinstance(allocs, str):
        return Hints(bare, allocs)
    if any(not ep.zone for ep in ready):
        return Hints(bare, "an endpoint has no zone")
    hints: list[str | None] = []
    hinted: dict[str, int] = {}
    for ep in bare:  # step 1: every ready endpoint is hinted for its own zone
        hints.append(ep.zone if ep.ready else None)
        if ep.ready and ep.zone:
            hinted[ep.zone] = hinted.get(ep.zone, 0) + 1
    giving, receiving = giving_and_receiving(allocs, hinted)  # step 2
    for i, ep in enumerate(bare):  # step 3: redistribute from giving zones to receiving zones
        if not ep.ready:
            continue
        if not giving or not receiving:
            break
        zone = ep.zone or ""
        if giving.get(zone, 0) > 0:
            to = next(z for z in sorted(receiving) if receiving[z] > 0)
            hints[i] = to
            giving[zone] -= 1
            receiving[to] -= 1
            giving = {z: n for z, n in giving.items() if n > 0}
            receiving = {z: n for z, n in receiving.items() if n > 0}
    out = tuple(
        replace(ep, zone_hints=frozenset({h})) if h is not None else ep for ep, h in zip(bare, hints, strict=True)
    )
    return Hints(out)
