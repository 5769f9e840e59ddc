"""``sim import``: what it reads (``read_sources``: Kubernetes objects and trace exports), and cluster state
written as an editable scenario file and its topology file, which read back into the same cluster (same nodes,
pods and addresses, Services and endpoints, so the same routes).

Endpoints are written (``[[endpoint_slices]]``) only for Services whose given EndpointSlices say something the
pods do not imply (other conditions, other hints, endpoints without a pod); elsewhere the scenario derives them,
so editing a pod or a Service's trafficDistribution changes them as it would in the cluster.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from sim.callgraph import CallGraph, Parallel, ServiceCalls, members
from sim.cluster import Endpoint, Pod, Service
from sim.distributions import Dist, Empirical
from sim.errors import one_line
from sim.io.calls import calls_entry
from sim.io.cluster import builders
from sim.io.cluster.network import ZONED_NETWORK, generated_topology
from sim.io.cluster.objects import KNode
from sim.io.cluster.schema import ENDPOINT_FIELDS, SELECTOR, SERVICE_FIELDS, to_toml
from sim.io.durations import duration_value
from sim.scenario import Scenario
from sim.topology import Topology
from sim.traces import Traced


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


def _table(header: str, entries: Mapping[str, Any]) -> list[str]:
    """A ``[[header]]`` table; an array of inline tables (``calls``) one entry a line."""
    lines = [f"[[{header}]]"]
    for k, v in entries.items():
        if isinstance(v, list) and v and all(isinstance(x, Mapping) for x in v):
            lines += [f"{key(k)} = [", *(f"  {value(x)}," for x in v), "]"]
        else:
            lines.append(f"{key(k)} = {value(v)}")
    return [*lines, ""]


def _pod(p: Pod, default: Pod) -> dict[str, Any]:
    out: dict[str, Any] = {"name": p.name, "node": p.node, "ip": p.ip}
    if p.labels:
        out["labels"] = dict(p.labels)
    for attr in ("ready", "terminating", "host_network", "concurrency", "queue_limit"):
        if getattr(p, attr) != getattr(default, attr) and getattr(p, attr) is not None:
            out[attr] = getattr(p, attr)
    if p.service_time != default.service_time:
        out["service_time"] = duration_value(p.service_time)
    if p.discipline != default.discipline:
        out["discipline"] = p.discipline.value
    return out


def _ports(s: Service) -> dict[str, Any]:
    """``port`` / ``targetPort`` / ``nodePort`` for one unnamed port, else ``ports = [...]``."""
    entries = []
    for p in s.ports:
        entry: dict[str, Any] = {"name": p.name, "port": p.port}
        entry.update({api: v for api, v in (("targetPort", p.target_port), ("nodePort", p.node_port)) if v})
        entries.append(entry)
    if not s.port_name and not s.other_ports:
        del entries[0]["name"]
        return entries[0]
    return {"ports": entries}


def _service(s: Service) -> dict[str, Any]:
    """A ``[[services]]`` entry: name, selector, ports, then what differs from a Service's defaults
    (``schema.SERVICE_FIELDS``)."""
    default = Service(name="")
    return {
        "name": s.name,
        **to_toml((SELECTOR,), s, default),
        **_ports(s),
        **to_toml(SERVICE_FIELDS, s, default),
    }


def _implied(scenario: Scenario) -> dict[str, tuple[Endpoint, ...]]:
    """The given endpoints of Services whose pods would not imply them."""
    derived = replace(scenario, given_endpoints={})
    return {
        name: eps
        for name, eps in scenario.given_endpoints.items()
        if derived.control_plane.endpoints(name) != scenario.control_plane.endpoints(name)
    }


def scenario_text(
    scenario: Scenario,
    topology_file: str,
    sources: Sequence[str],
    streams: Sequence[Mapping[str, Any]],
    extra: Mapping[str, Mapping[str, Any]] | None = None,
) -> str:
    """The scenario file for ``scenario``: pods, Services (with ``extra`` keys by Service name: the call graph),
    endpoints where needed, and ``streams``."""
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
        f"service_time = {value(duration_value(default.service_time))}",
        f"concurrency = {default.concurrency}",
        "",
    ]
    for p in scenario.pods:
        lines += _table("pods", _pod(p, default))
    for s in scenario.services:
        lines += _table("services", {**_service(s), **(extra or {}).get(s.name, {})})
    for name, eps in _implied(scenario).items():
        lines += ["[[endpoint_slices]]", f"service = {value(name)}", ""]
        for ep in eps:
            lines += _table("endpoint_slices.endpoints", to_toml(ENDPOINT_FIELDS, ep, Endpoint("")))
    for st in streams:
        lines += _table("streams", st)
    return "\n".join(lines).rstrip() + "\n"


def topology_text(topology: Topology) -> str:
    """The topology file of a (generated) Topology."""
    lines = [
        "# Generated by `sim import`: the nodes as the cluster gives them, and a network the objects do not describe",
        "# (one bridge for kind; else a switch per zone and a spine). Edit the latencies to match yours (s, one way).",
        f"name = {value(topology.name)}",
        f"same_node_latency = {value(duration_value(topology.same_node))}",
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
        lines += _table("links", {"between": [link.a, link.b], "latency": duration_value(link.latency)})
    return "\n".join(lines).rstrip() + "\n"


def default_streams(
    scenario: Scenario, requests: int = 1000, skip: Sequence[str] = (), client: str | None = None
) -> list[dict[str, Any]]:
    """One closed-loop stream per Service with endpoints, except those in ``skip`` (called by other Services), from
    ``client``, else the first pod it does not select (else the first)."""
    out: list[dict[str, Any]] = []
    if not scenario.pods:
        return out
    for svc in scenario.services:
        if not scenario.control_plane.endpoints(svc.name) or svc.name in skip:
            continue
        sender = client or next((p for p in scenario.pods if not svc.selects(p)), scenario.pods[0]).name
        out.append({"client": sender, "service": svc.name, "requests": requests, "workload": {"kind": "closed_loop"}})
    return out


# --- traces: the call graph onto the cluster -------------------------------------------------------------------

TRACED_NODE = "node-1"
"""The node of the cluster made for traces given alone."""
TRACED_LABEL = "app"
"""The label that ties a traced service's pod to its Service in that cluster."""


def traced_cluster(traced: Traced, name: str) -> Scenario:
    """Traces given alone: one node, per traced service a pod ``<service>-0`` labelled ``app: <service>`` and a
    Service ``<service>`` selecting it, and a pod ``client`` (no labels) to send from."""
    topology = generated_topology(name, [KNode(TRACED_NODE)], False, ZONED_NETWORK)
    addresses = builders.Addresses(topology.nodes)
    defaults = builders.Defaults()
    pods = [
        builders.pod(f"{s}-0", TRACED_NODE, addresses.take(TRACED_NODE), defaults, {TRACED_LABEL: s})
        for s in traced.services
    ]
    taken = {p.name for p in pods}
    client = next(c for c in ("client", "client-0", "traces-client") if c not in taken)
    pods.append(builders.pod(client, TRACED_NODE, addresses.take(TRACED_NODE), defaults))
    services = [Service(name=s, selector={TRACED_LABEL: s}) for s in traced.services]
    return Scenario(name=name, topology=topology, pods=tuple(pods), services=tuple(services), streams=())


def service_for(traced: str, services: Sequence[str]) -> str | None:
    """The Service a traced service name maps to: the one of that name (``ns/name`` or bare), else the only one
    named so in some namespace; None if none or several.

    >>> service_for("cart", ["shop/cart", "shop/frontend"])
    'shop/cart'
    >>> service_for("cart", ["a/cart", "b/cart"]) is None
    True
    """
    if traced in services:
        return traced
    found = [s for s in services if s.rsplit("/", 1)[-1] == traced]
    return found[0] if len(found) == 1 else None


def with_traces(scenario: Scenario, traced: Traced) -> tuple[Scenario, dict[str, dict[str, Any]], list[str]]:
    """``scenario`` with each traced service's self times as the service time of the pods its Service selects;
    the contract's ``call_mode`` and ``calls`` for each such Service; and a note for each traced name with no
    Service (its calls and self times are left out, not guessed)."""
    names = [s.name for s in scenario.services]
    mapped = {t: found for t in traced.services if (found := service_for(t, names)) is not None}
    notes = [_unmapped(t, traced.graph, names) for t in traced.services if t not in mapped]
    extra: dict[str, dict[str, Any]] = {}
    times: dict[str, Dist] = {}
    for t, name in mapped.items():
        svc = next(s for s in scenario.services if s.name == name)
        extra[svc.name] = calls_entry(_onto_services(traced.graph.of(t), mapped), builders.Defaults())
        selected = [p.name for p in scenario.pods if svc.selects(p)]
        if not selected:
            notes.append(f"Service {svc.name!r} selects no pod: the self times traced for {t!r} are not written")
        times.update(dict.fromkeys(selected, Empirical(traced.service(t).self_times_s)))
    pods = tuple(replace(p, service_time=times[p.name]) if p.name in times else p for p in scenario.pods)
    return replace(scenario, pods=pods), extra, notes


def _unmapped(name: str, graph: CallGraph, services: Sequence[str]) -> str:
    """The note for a traced service with no Service: why, and what is left out."""
    several = " (several namespaces have one)" if any(s.rsplit("/", 1)[-1] == name for s in services) else ""
    callers = [caller for caller, callee in graph.edges() if callee == name]
    left = f"calls to it (from {', '.join(callers)}) and its self times" if callers else "its calls and self times"
    return f"traced service {name!r} has no Service of that name{several}: {left} are not written"


def _onto_services(calls: ServiceCalls, services: Mapping[str, str]) -> ServiceCalls:
    """A traced service's calls with each callee named by its Service (``services``: traced name -> Service), those
    with none left out: a stage left with no call is dropped, a fan-out left with one single call is that call."""
    stages = []
    for stage in calls.stages:
        kept = tuple(replace(c, service=services[c.service]) for c in members(stage) if c.service in services)
        if not kept:
            continue
        single = len(kept) == 1 and kept[0].count == 1
        stages.append(kept[0] if single or not isinstance(stage, Parallel) else Parallel(kept))
    return ServiceCalls(calls.mode, tuple(stages))


def read_sources(
    files: Sequence[str], name: str, notes: list[str], capacity: str | None = None
) -> tuple[Scenario, dict[str, Any], Traced | None, str | None]:
    """What ``sim import`` reads: the cluster (Kubernetes objects, or one made for traces given alone, with the
    pod to send from), and the call graph the traces show mapped onto its Services (their keys by Service);
    ``capacity``: ``--kind-node-capacity``."""
    from sim.io.inputs import load_objects
    from sim.io.tracefiles import read_spans, split_traces
    from sim.traces import derive

    traces, objects = split_traces(files)
    traced = derive(read_spans(traces)) if traces else None
    client = None
    if objects or traced is None:
        scenario = load_objects(objects, [], notes, need_streams=False, capacity=capacity)[0]
    else:
        scenario = traced_cluster(traced, name)
        notes.append(
            f"no Kubernetes objects: a cluster of one node {scenario.pods[0].node!r} with one pod per traced service "
            f"({', '.join(p.name for p in scenario.pods[:-1])}) and a client pod {scenario.pods[-1].name!r}"
        )
        client = scenario.pods[-1].name
    if traced is None:
        return scenario, {}, None, client
    notes.extend(traced.notes)
    scenario, extra, more = with_traces(scenario, traced)
    notes.extend(more)
    return scenario, extra, traced, client


def callees(extra: dict[str, Any]) -> set[str]:
    """The Services some ``calls`` entry names (directly or in a ``parallel`` stage)."""
    out: set[str] = set()
    for entries in extra.values():
        for call in entries.get("calls", []):
            out.update(c["service"] for c in call.get("parallel", [call]))
    return out
