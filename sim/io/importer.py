"""``sim import``: cluster state written as an editable scenario file and its topology file, which read back into
the same cluster (same nodes, pods and addresses, Services and endpoints, so the same routes).

Endpoints are written (``[[endpoint_slices]]``) only for Services whose given EndpointSlices say something the
pods do not imply (other conditions, other hints, endpoints without a pod); elsewhere the scenario derives them,
so editing a pod or a Service's trafficDistribution changes them as it would in the cluster.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from sim.cluster import Endpoint, Pod, Service
from sim.distributions import Constant, Dist, Empirical, Exponential, Gamma, LogNormal, Uniform
from sim.errors import one_line
from sim.scenario import Scenario
from sim.topology import Topology

_DIST_KEYS: dict[type, tuple[str, tuple[str, ...]]] = {
    Constant: ("constant", ("value_s",)),
    Exponential: ("exponential", ("mean_s",)),
    LogNormal: ("lognormal", ("mean_s", "sigma")),
    Uniform: ("uniform", ("low_s", "high_s")),
    Gamma: ("gamma", ("mean_s", "shape")),
    Empirical: ("empirical", ("samples_s",)),
}


def value(v: Any) -> str:
    """A TOML value: strings, numbers, booleans, arrays and inline tables.

    >>> value({"app": "echo", "kubernetes.io/hostname": "kind-worker", "n": [1, 2.5, True]})
    '{ app = "echo", "kubernetes.io/hostname" = "kind-worker", n = [1, 2.5, true] }'
    """
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)  # a JSON string is a TOML basic string
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(value(x) for x in v) + "]"
    if isinstance(v, Mapping):
        if not v:
            return "{}"
        return "{ " + ", ".join(f"{key(k)} = {value(x)}" for k, x in v.items()) + " }"
    raise TypeError(f"no TOML form for {type(v).__name__}")


def key(k: str) -> str:
    """A TOML key, quoted unless it is bare-safe."""
    return k if k and all(c.isalnum() or c in "_-" for c in k) else json.dumps(k)


def dist(d: Dist) -> Any:
    """A duration as a scenario file gives it: a number for a constant, else a ``{dist = ...}`` table."""
    if isinstance(d, Constant):
        return d.value_s
    name, keys = _DIST_KEYS[type(d)]
    return {"dist": name, **{k: getattr(d, k) for k in keys}}


def _table(header: str, entries: Mapping[str, Any]) -> list[str]:
    return [f"[[{header}]]", *(f"{key(k)} = {value(v)}" for k, v in entries.items()), ""]


def _pod(p: Pod, default: Pod) -> dict[str, Any]:
    out: dict[str, Any] = {"name": p.name, "node": p.node, "ip": p.ip}
    if p.labels:
        out["labels"] = dict(p.labels)
    for attr in ("ready", "terminating", "concurrency", "queue_limit"):
        if getattr(p, attr) != getattr(default, attr) and getattr(p, attr) is not None:
            out[attr] = getattr(p, attr)
    if p.service_time != default.service_time:
        out["service_time"] = dist(p.service_time)
    if p.discipline != default.discipline:
        out["discipline"] = p.discipline.value
    return out


def _service(s: Service) -> dict[str, Any]:
    d = Service(name="")
    out: dict[str, Any] = {"name": s.name, "selector": dict(s.selector), "port": s.port}
    names = {
        "target_port": "targetPort",
        "internal_traffic_policy": "internalTrafficPolicy",
        "external_traffic_policy": "externalTrafficPolicy",
        "node_port": "nodePort",
        "load_balancer_ips": "loadBalancerIPs",
        "external_ips": "externalIPs",
        "traffic_distribution": "trafficDistribution",
        "session_affinity": "sessionAffinity",
    }
    for attr, api in names.items():
        v = getattr(s, attr)
        if v != getattr(d, attr):
            out[api] = v.value if hasattr(v, "value") else list(v) if isinstance(v, tuple) else v
    if s.session_affinity_timeout_s != d.session_affinity_timeout_s:
        out["sessionAffinityConfig"] = {"clientIP": {"timeoutSeconds": s.session_affinity_timeout_s}}
    if s.annotations:
        out["annotations"] = dict(s.annotations)
    return out


def _endpoint(ep: Endpoint) -> dict[str, Any]:
    out: dict[str, Any] = {
        "address": ep.address,
        "ready": ep.ready,
        "serving": ep.serving,
        "terminating": ep.terminating,
    }
    if ep.pod is not None:
        out["pod"] = ep.pod
    if ep.node_name is not None:
        out["node"] = ep.node_name
    if ep.zone is not None:
        out["zone"] = ep.zone
    if ep.zone_hints:
        out["forZones"] = sorted(ep.zone_hints)
    if ep.node_hints:
        out["forNodes"] = sorted(ep.node_hints)
    return out


def _implied(scenario: Scenario) -> dict[str, tuple[Endpoint, ...]]:
    """The given endpoints of Services whose pods would not imply them."""
    derived = replace(scenario, given_endpoints={})
    return {
        name: eps
        for name, eps in scenario.given_endpoints.items()
        if derived.endpoints(name) != scenario.endpoints(name)
    }


def scenario_text(
    scenario: Scenario, topology_file: str, sources: Sequence[str], streams: Sequence[Mapping[str, Any]]
) -> str:
    """The scenario file for ``scenario``: pods, Services, endpoints where needed, and ``streams``."""
    default = Pod("", "", "")
    lines = [
        f"# Imported by `sim import` from {', '.join(one_line(str(source)) for source in sources)}.",
        "# The cluster's pods and Services as a scenario. Edit",
        "# freely; the client streams at the end are a start (one curl loop per Service), and every pod takes the",
        "# [defaults] (service time, workers) unless it says otherwise.",
        f"name = {value(scenario.name)}",
        f"topology = {value(topology_file)}",
        f"dataplane = {value(scenario.dataplane.name)}",
        "",
        "[defaults]",
        f"service_time = {value(dist(default.service_time))}",
        f"concurrency = {default.concurrency}",
        "",
    ]
    for p in scenario.pods:
        lines += _table("pods", _pod(p, default))
    for s in scenario.services:
        lines += _table("services", _service(s))
    for name, eps in _implied(scenario).items():
        lines += ["[[endpoint_slices]]", f"service = {value(name)}", ""]
        for ep in eps:
            lines += _table("endpoint_slices.endpoints", _endpoint(ep))
    for st in streams:
        lines += _table("streams", st)
    return "\n".join(lines).rstrip() + "\n"


def topology_text(topology: Topology) -> str:
    """The topology file of a (generated) Topology."""
    lines = [
        "# Generated by `sim import`: the nodes as the cluster gives them, and a network the objects do not describe",
        "# (one bridge for kind; else a switch per zone and a spine). Edit the latencies to match yours (s, one way).",
        f"name = {value(topology.name)}",
        f"same_node_latency = {value(dist(topology.same_node))}",
        "",
    ]
    for name, labels in topology.nodes.items():
        node: dict[str, Any] = {"name": name, "labels": dict(labels)}
        if topology.allocatable_cpu.get(name):
            node["cpu"] = topology.allocatable_cpu[name]
        if name in topology.unready:
            node["ready"] = False
        lines += _table("nodes", node)
    for name, kind in topology.elements.items():
        lines += _table("elements", {"name": name, "kind": kind.value})
    for link in topology.links:
        lines += _table("links", {"between": [link.a, link.b], "latency": dist(link.latency)})
    return "\n".join(lines).rstrip() + "\n"


def default_streams(scenario: Scenario, requests: int = 1000) -> list[dict[str, Any]]:
    """One closed-loop stream per Service with endpoints, from the first pod it does not select (else the first)."""
    out: list[dict[str, Any]] = []
    if not scenario.pods:
        return out
    for svc in scenario.services:
        if not scenario.endpoints(svc.name):
            continue
        client = next((p for p in scenario.pods if not svc.selects(p)), scenario.pods[0])
        out.append(
            {"client": client.name, "service": svc.name, "requests": requests, "workload": {"kind": "closed_loop"}}
        )
    return out
