"""A scenario's changes over time: ``[[timeline]]`` events and the ``[sync]`` lag of each node's proxy."""

from __future__ import annotations

from typing import Any

from sim.cluster import TrafficDistribution, TrafficPolicy
from sim.io.typed import Table
from sim.scenario import Sync
from sim.timeline import NODE_MONITOR_GRACE_PERIOD_S, Action, Event
from sim.topology import Topology

_ACTIONS = [a.value for a in Action]
UPDATABLE = {
    "internalTrafficPolicy": ("internal_traffic_policy", TrafficPolicy),
    "externalTrafficPolicy": ("external_traffic_policy", TrafficPolicy),
    "trafficDistribution": ("traffic_distribution", TrafficDistribution),
}
"""Service fields a ``service_update`` event may set: API name -> (Service attribute, enum)."""


def sync(top: Table, topology: Topology) -> Sync:
    """``[sync] lag_s = 1.0, per_node = { "kind-worker2" = 3.0 }``: EndpointSlice-to-proxy delay per node (s)."""
    if "sync" not in top.data:
        return Sync()
    t = Table(top.path, "sync", top.take("sync", dict))
    lag = t.number("lag_s", 1.0, minimum=0)
    per_node_table = Table(top.path, "sync.per_node", t.take("per_node", dict, {}))
    per_node = {}
    for node in list(per_node_table.data):
        if node not in topology.nodes:
            raise per_node_table.error(node, f"node {node!r} is not in topology {topology.name!r}")
        per_node[node] = per_node_table.number(node, minimum=0)
    t.done()
    return Sync(lag, per_node)


def event(t: Table) -> Event:
    """One ``[[timeline]]`` entry: ``at_s``, ``action`` and what it acts on."""
    at_s = t.number("at_s", minimum=0)
    action = t.choice("action", Action, _ACTIONS)
    kwargs: dict[str, Any] = {}
    if action in (Action.TERMINATE, Action.READY, Action.UNREADY, Action.ADD):
        kwargs["pod"] = t.take("pod", str)
        if action == Action.TERMINATE:
            kwargs["grace_s"] = t.number("grace_s", 30.0, minimum=0)
    elif action in (Action.FAIL, Action.RECOVER):
        kwargs["node"] = t.take("node", str)
        if action == Action.FAIL:
            kwargs["detect_s"] = t.number("detect_s", NODE_MONITOR_GRACE_PERIOD_S, minimum=0)
    else:
        kwargs["service"] = t.take("service", str)
        changes = Table(t.path, t.field("set"), t.take("set", dict))
        fields: dict[str, object] = {}
        for key in list(changes.data):
            if key not in UPDATABLE:
                raise changes.error(key, f"cannot be changed by the timeline; expected one of {sorted(UPDATABLE)}")
            name, kind = UPDATABLE[key]
            fields[name] = changes.choice(key, kind, [v.value for v in kind])
        kwargs["changes"] = fields
    t.done()
    return Event(at_s, action, **kwargs)
