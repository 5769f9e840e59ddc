"""Scenario files: a topology file's name, pods, Services, external clients, client streams, the dataplane, the
timeline and the run's horizon. Every time is in seconds; Kubernetes fields are spelled as the API spells them."""

from __future__ import annotations

import copy
import dataclasses
import functools
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sim.callgraph import CallGraph, ServiceCalls
from sim.cluster import (
    MAX_PORT,
    Discipline,
    Endpoint,
    Pod,
    Service,
    ServicePort,
)
from sim.distributions import Exponential
from sim.errors import SpecError
from sim.io.calls import retries as _retries
from sim.io.calls import service_calls
from sim.io.cluster import builders
from sim.io.cluster.builders import Addresses, Defaults
from sim.io.cluster.cluster_state import ClusterParts, cluster_parts
from sim.io.cluster.kubernetes import read_objects, source_files
from sim.io.cluster.network import generated_topology, network
from sim.io.cluster.objects import KNode, KPod, Objects
from sim.io.cluster.placement import kind_node_capacity, place
from sim.io.cluster.schema import ENDPOINT_FIELDS, SELECTOR, SERVICE_FIELDS, from_table
from sim.io.durations import duration
from sim.io.timeline import event, sync
from sim.io.topology import load_topology
from sim.io.typed import MISSING, Table, load_toml
from sim.io.workloads import workload
from sim.routing import DataplaneConfig, generate_hints
from sim.rpc import LINUX_SYN_TIMEOUT_S
from sim.scenario import Connections, ExternalClient, Scenario, Stream, Target
from sim.topology import Topology

_DISCIPLINES = [d.value for d in Discipline]
_TARGETS = [t.value for t in Target]


def load_scenario(
    path: str | Path,
    overrides: Mapping[str, Any] | None = None,
    *,
    need_streams: bool = True,
    notes: list[str] | None = None,
) -> tuple[Scenario, int]:
    """Read a scenario TOML file into a validated Scenario and its seed.

    ``overrides`` may set ``seed`` and ``requests`` (requests per stream), as the CLI flags do.
    """
    path = Path(path)
    return parse_scenario(load_toml(path), path, overrides, need_streams=need_streams, notes=notes)


def parse_scenario(
    raw: Mapping[str, Any],
    path: str | Path,
    overrides: Mapping[str, Any] | None = None,
    *,
    need_streams: bool = True,
    notes: list[str] | None = None,
) -> tuple[Scenario, int]:
    """Build a validated Scenario and its seed from a parsed scenario table; ``path`` names it in errors and
    anchors relative file names (topology, traces, cluster state). ``need_streams=False`` accepts a cluster with
    no client streams (``sim routes``); what reading cluster state notes (bare nodes, Pending pods, skipped
    kinds) is appended to ``notes``."""
    path = Path(path)
    overrides = dict(overrides or {})
    top = Table(path, "", dict(raw))
    name = top.take("name", str, path.stem)
    seed = top.integer("seed", 0, minimum=0)
    if "seed" in overrides:
        seed = overrides.pop("seed")
    cluster = _cluster(top, seed)
    if cluster is not None and "topology" not in top.data:
        topology, topo_file = (
            generated_topology(name, cluster[1], cluster[0].kind_cluster, network(top, cluster[0].kind_cluster)),
            "",
        )
    else:
        topology, topo_file = _topology(top)
        if cluster is not None:
            topology = _with_nodes(top, topology, cluster[1])
    dataplane = _dataplane(top)
    duration_s = top.number("duration_s", None, minimum=0, strict=True)
    defaults = _defaults(top)
    addresses = Addresses(topology.nodes)
    parts = ClusterParts()
    if cluster is not None:
        objects, nodes, placed, placing = cluster
        parts = cluster_parts(objects, nodes, placed, addresses, defaults)
        if notes is not None:
            notes.extend(filter(None, [*objects.notes, *placing, *parts.notes, objects.skipped_line()]))
    pods, absent = _pods(top, topology, topo_file, defaults, addresses, parts.pods)
    services, calls = _services(top, parts.services, defaults)
    given = {**parts.given, **_endpoint_slices(top)}
    external = _external_clients(top)
    requests = overrides.pop("requests", None)
    streams = [_stream(t, defaults, requests) for t in top.tables("streams")]
    node_sync = sync(top, topology)
    timeline = tuple(event(t) for t in top.tables("timeline"))
    warmup_s = top.number("warmup_s", 0.0, minimum=0)
    top.done()
    if overrides:
        raise SpecError(str(path), sorted(overrides)[0], "unknown override")
    if need_streams and not streams:
        raise SpecError(str(path), "streams", "no client streams: add at least one [[streams]] table")
    fields: dict[str, Any] = {
        "name": name,
        "topology": topology,
        "pods": tuple(pods),
        "services": tuple(services),
        "streams": tuple(streams),
        "dataplane": dataplane,
        "external_clients": tuple(external),
        "duration_s": duration_s,
        "warmup_s": warmup_s,
        "timeline": timeline,
        "absent": frozenset(absent),
        "sync": node_sync,
        "call_graph": CallGraph(calls),
    }
    if given:
        fields["given_endpoints"] = given
    scenario = builders.scenario(path, **fields)
    rehinted = _rehinted(scenario, parts.services)
    if rehinted != given:
        scenario = builders.scenario(path, **{**fields, "given_endpoints": rehinted})
    return scenario, seed


def _cluster(top: Table, seed: int) -> tuple[Objects, list[KNode], list[KPod], list[str]] | None:
    """``cluster = ["cluster.yaml", "manifests/"]``: Kubernetes objects (files or directories, relative to the
    scenario), read and placed (ties among the best nodes drawn from the run's ``seed``); None without the key."""
    if "cluster" not in top.data:
        return None
    names = top.take("cluster", (list, str))
    names = [names] if isinstance(names, str) else names
    if not names or not all(isinstance(n, str) for n in names):
        raise top.error("cluster", "must be a file or directory name, or an array of them")
    objects = read_cluster(tuple(n if n == "-" else str(top.path.parent / n) for n in names))
    nodes, placed, placing = place(objects, seed, kind_node_capacity(top))
    if not nodes:
        raise SpecError(
            ", ".join(objects.files),
            "",
            "the cluster state names no node: give Nodes (kubectl get nodes -o yaml), a kind Cluster config, "
            "or pods with spec.nodeName",
        )
    return objects, nodes, placed, placing


@functools.lru_cache(maxsize=32)
def _read_cached(files: tuple[str, ...], stamps: tuple[tuple[int, int], ...]) -> Objects:
    return read_objects(files)


def objects_table(sources: list[str], dataplane: str = DataplaneConfig.name) -> dict[str, Any]:
    """A scenario table naming Kubernetes objects (``sim run|routes|import FILE...``): the cluster, a generated
    network, the dataplane; streams are the caller's."""
    first = Path(sources[0]) if sources and sources[0] != "-" else Path("stdin")
    return {
        "name": first.stem or "cluster",
        "cluster": list(sources),
        "dataplane": dataplane,
    }


def with_cluster_names(table: Mapping[str, Any], anchor: Path) -> dict[str, Any]:
    """``table`` with a ``{name = ...}`` entry in ``pods`` and ``services`` for every pod and Service its cluster
    state holds, so that a dotted path (``services."default/echo-2".internalTrafficPolicy``) reaches objects read
    from cluster files; such an entry changes only what it sets. Unchanged without ``cluster``, or if the table
    does not parse (its own reading reports why)."""
    out = dict(table)
    if "cluster" not in table:
        return out
    try:
        scenario, _ = parse_scenario(table, anchor, need_streams=False)
    except SpecError:
        return out
    for key, objects in (("pods", scenario.pods), ("services", scenario.services)):
        entries = list(out.get(key, []))
        named = {e.get("name") for e in entries if isinstance(e, dict)}
        out[key] = entries + [{"name": o.name} for o in objects if o.name not in named]
    return out


def read_cluster(sources: tuple[str, ...]) -> Objects:
    """Kubernetes objects of ``sources``, read once per content (a sweep builds many design points from them)."""
    files = [str(f) for f in source_files(sources)]
    if "-" in files:
        return read_objects(files)  # stdin: read once, never cached
    stamps = []
    for f in files:
        st = os.stat(f)
        stamps.append((st.st_mtime_ns, st.st_size))
    return copy.deepcopy(_read_cached(tuple(files), tuple(stamps)))


def _with_nodes(top: Table, topology: Topology, nodes: list[KNode]) -> Topology:
    """An explicit topology with the cluster's Node objects' labels, CPU and readiness on its nodes."""
    labels = {n: dict(v) for n, v in topology.nodes.items()}
    cpu = dict(topology.allocatable_cpu)
    unready = set(topology.unready)
    for node in nodes:
        if node.name not in labels:
            raise top.error("cluster", f"node {node.name!r} is not in topology {topology.name!r}")
        if node.bare:
            continue
        labels[node.name] = dict(node.labels)
        cpu[node.name] = node.cpu
        if not node.ready:
            unready.add(node.name)
    return Topology(
        topology.name, labels, topology.elements, topology.links, topology.same_node, cpu, frozenset(unready)
    )


def _rehinted(scenario: Scenario, base: list[Service]) -> dict[str, tuple[Endpoint, ...]]:
    """Given EndpointSlices, with hints written anew (``generate_hints``) for a Service whose trafficDistribution
    or annotations the scenario file changed: the EndpointSlice controller would rewrite them."""
    before = {s.name: s for s in base}
    out = dict(scenario.given_endpoints)
    for svc in scenario.services:
        old = before.get(svc.name)
        if (
            svc.name in out
            and old is not None
            and (old.traffic_distribution != svc.traffic_distribution or dict(old.annotations) != dict(svc.annotations))
        ):
            out[svc.name] = generate_hints(svc, out[svc.name], scenario.nodes).endpoints
    return out


def _topology(top: Table) -> tuple[Topology, str]:
    """``topology = "../topologies/kind.toml"``, relative to the scenario file; with the name as written."""
    topo_file = top.take("topology", str)
    topology_path = top.path.parent / topo_file
    try:
        return load_topology(topology_path), topo_file
    except SpecError as e:
        if e.path == str(topology_path) and e.problem == "no such file":
            raise top.error("topology", f"no such file {str(topology_path)!r}") from None
        raise


_DATAPLANE_MINIMUM = {"maglev_table_size": 1, "recent_list_size": 0}
"""The integer proxy options and their least values; every other option is read as its default's type."""


def _dataplane(top: Table) -> DataplaneConfig:
    """``dataplane = "cilium"``, or a table ``[dataplane]`` with name and options: each a field of
    ``DataplaneConfig``, read in its order with its default."""
    raw = top.data.get("dataplane", DataplaneConfig.name)
    if isinstance(raw, str):
        return DataplaneConfig(name=top.take("dataplane", str, DataplaneConfig.name))
    t = Table(top.path, "dataplane", top.take("dataplane", (dict, str)))
    values: dict[str, Any] = {}
    for option in dataclasses.fields(DataplaneConfig):
        default = option.default
        if option.name in _DATAPLANE_MINIMUM:
            values[option.name] = t.integer(option.name, default, minimum=_DATAPLANE_MINIMUM[option.name])
        else:
            values[option.name] = t.take(option.name, type(default), default)
    t.done()
    return DataplaneConfig(**values)


def _defaults(top: Table) -> Defaults:
    """``[defaults]``: what every pod and stream takes unless it says otherwise."""
    t = Table(top.path, "defaults", top.take("defaults", dict, {}))
    defaults = Defaults(
        service_time=duration(t, "service_time", Exponential(0.001)),
        concurrency=t.integer("concurrency", 1, minimum=1),
        connect_timeout_s=t.number("connect_timeout_s", LINUX_SYN_TIMEOUT_S, minimum=0),
        queue_limit=t.integer("queue_limit", None, minimum=0),
        discipline=t.choice("discipline", Discipline, _DISCIPLINES, Discipline.FIFO),
        timeout_s=t.number("timeout_s", None, minimum=0, strict=True),
    )
    t.done()
    return defaults


def _pods(
    top: Table, topology: Topology, topo_file: str, defaults: Defaults, addresses: Addresses, base: list[Pod]
) -> tuple[list[Pod], set[str]]:
    """``[[pods]]`` after the cluster's pods (``base``): an entry naming a cluster pod changes the fields it gives;
    the others add pods. Also the names of those not yet present (``present = false``: added by the timeline)."""
    pods: list[Pod] = list(base)
    index = {p.name: i for i, p in enumerate(pods)}
    absent: set[str] = set()
    for t in top.tables("pods"):
        pod_name = t.take("name", str)
        old = pods[index[pod_name]] if pod_name in index and index[pod_name] < len(base) else None
        node = t.take("node", str, old.node if old else MISSING)
        where = f"topology {topology.name!r} ({topo_file})" if topo_file else f"the cluster {topology.name!r}"
        if node not in topology.nodes:
            raise t.error("node", f"node {node!r} is not in {where}")
        ip = addresses.take(node, t.take("ip", str, None)) if old is None else t.take("ip", str, old.ip)
        d = old or builders.pod(pod_name, node, ip, defaults)
        pod = Pod(
            name=pod_name,
            node=node,
            ip=ip,
            labels=t.strings("labels") if "labels" in t.data else dict(d.labels),
            ready=t.take("ready", bool, d.ready),
            terminating=t.take("terminating", bool, d.terminating),
            service_time=duration(t, "service_time", d.service_time),
            concurrency=t.integer("concurrency", d.concurrency, minimum=1),
            queue_limit=t.integer("queue_limit", d.queue_limit, minimum=0),
            discipline=t.choice("discipline", Discipline, _DISCIPLINES, d.discipline),
            host_network=t.take("host_network", bool, d.host_network),
        )
        if old is None:
            pods.append(pod)
        else:
            pods[index[pod_name]] = pod
        if not t.take("present", bool, True):
            absent.add(pod_name)
        t.done()
    return pods, absent


def _services(top: Table, base: list[Service], defaults: Defaults) -> tuple[list[Service], dict[str, ServiceCalls]]:
    """``[[services]]`` after the cluster's Services: an entry naming one changes the fields it gives. Also each
    entry's calls (``sim.io.calls``), by Service name."""
    services = list(base)
    calls: dict[str, ServiceCalls] = {}
    index = {s.name: i for i, s in enumerate(services)}
    for t in top.tables("services"):
        name = t.data.get("name")
        own = service_calls(t, defaults, calls.get(name) if isinstance(name, str) else None)
        if isinstance(name, str) and name in index and index[name] < len(base):
            services[index[name]] = _service(t, services[index[name]])
        else:
            services.append(_service(t))
        if own is not None:
            calls[str(name)] = own
    return services, calls


def _endpoint_slices(top: Table) -> dict[str, tuple[Endpoint, ...]]:
    """``[[endpoint_slices]]``: a Service's endpoints as its EndpointSlices give them (``sim import`` writes them
    where they differ from what the pods imply): ``service`` and ``endpoints = [{address = "IP:port", ready, ...}]``,
    each endpoint's fields those of ``schema.ENDPOINT_FIELDS``; unset conditions take the API's defaults."""
    out: dict[str, tuple[Endpoint, ...]] = {}
    for t in top.tables("endpoint_slices"):
        service = t.take("service", str)
        endpoints = []
        for e in t.tables("endpoints"):
            endpoints.append(builders.endpoint(**from_table(e, ENDPOINT_FIELDS)))
            e.done()
        t.done()
        out[service] = (*out.get(service, ()), *sorted(endpoints, key=lambda ep: ep.address))
    return out


def _service(t: Table, base: Service | None = None) -> Service:
    """One ``[[services]]`` entry, its fields named as the Service API names them (``schema.SERVICE_FIELDS``);
    with ``base`` (a Service read from cluster state) the fields it leaves out keep base's values."""
    b = base or Service(name="")
    name = t.take("name", str)
    selector = from_table(t, (SELECTOR,), b)
    ports = _ports(t, b)
    return _done(t, Service(name=name, **selector, **ports, **from_table(t, SERVICE_FIELDS, b)))


def _ports(t: Table, b: Service) -> dict[str, Any]:
    """A Service's ports: ``port`` / ``targetPort`` / ``nodePort`` for one, or ``ports = [{name, port, targetPort,
    nodePort}, ...]`` for several (each named, as the API requires of a Service with more than one)."""
    if "ports" not in t.data:
        return {
            "port": t.integer("port", b.port, minimum=1, maximum=MAX_PORT),
            "target_port": t.integer("targetPort", b.target_port, minimum=1, maximum=MAX_PORT),
            "node_port": t.integer("nodePort", b.node_port, minimum=0, maximum=MAX_PORT),
            "port_name": b.port_name,
            "other_ports": b.other_ports,
        }
    for key in ("port", "targetPort", "nodePort"):
        if key in t.data:
            raise t.error(key, "give the port inside ports = [...] when ports is given")
    raw = t.take("ports", list)
    if not raw:
        raise t.error("ports", "must list at least one port")
    ports: list[ServicePort] = []
    for i, entry in enumerate(raw):
        if not isinstance(entry, dict):
            raise t.error(f"ports[{i}]", "must be a table {name, port, targetPort, nodePort}")
        p = Table(t.path, t.field(f"ports[{i}]"), entry)
        name = p.take("name", str, "")
        if len(raw) > 1 and not name:
            raise p.error("name", "is required when a Service has more than one port")
        if name in [q.name for q in ports]:
            raise p.error("name", f"duplicate port name {name!r}")
        port = p.integer("port", None, minimum=1, maximum=MAX_PORT)
        if port is None:
            raise p.error("port", "is required")
        ports.append(
            _done(
                p,
                ServicePort(
                    name,
                    port,
                    p.integer("targetPort", 0, minimum=1, maximum=MAX_PORT),
                    p.integer("nodePort", 0, minimum=0, maximum=MAX_PORT),
                ),
            )
        )
    first = ports[0]
    return {
        "port": first.port,
        "target_port": first.target_port,
        "node_port": first.node_port,
        "port_name": first.name,
        "other_ports": tuple(ports[1:]),
    }


def _done(t: Table, value: Any) -> Any:
    """``value``, once ``t`` has no key left over."""
    t.done()
    return value


def _external_clients(top: Table) -> list[ExternalClient]:
    """``[[external_clients]]``: clients outside the cluster, attached to a topology vertex."""
    external: list[ExternalClient] = []
    for t in top.tables("external_clients"):
        external.append(
            _done(
                t,
                ExternalClient(
                    name=t.take("name", str),
                    attach=t.take("attach", str),
                    ip=t.take("ip", str, f"203.0.113.{len(external) + 1}"),
                ),
            )
        )
    return external


def _stream(t: Table, defaults: Defaults, requests_override: int | None) -> Stream:
    """One ``[[streams]]`` entry: a client calling a Service with a workload; ``requests_override`` (--requests)
    replaces its request count."""
    client = t.take("client", str)
    service = t.take("service", str)
    requests = t.integer("requests", None, minimum=0)
    if requests_override is not None:
        requests = requests_override
    load = workload(Table(t.path, t.field("workload"), t.take("workload", dict)))
    return _done(
        t,
        Stream(
            client=client,
            service=service,
            workload=load,
            requests=requests,
            start_s=t.number("start_s", 0.0, minimum=0),
            connect_timeout_s=t.number("connect_timeout_s", defaults.connect_timeout_s, minimum=0),
            target=t.choice("target", Target, _TARGETS, Target.CLUSTER_IP),
            node=t.take("node", str, None),
            health_checks=t.take("health_checks", bool, False),
            connections=_connections(t),
            timeout_s=t.number("timeout_s", defaults.timeout_s, minimum=0, strict=True),
            retries=_retries(t),
            port=str(t.take("port", (str, int), "")),
        ),
    )


def _connections(stream: Table) -> Connections:
    """``connections = { max_requests = 100, max_age_s = 30 }``: keep-alive; absent: a new connection a request."""
    if "connections" not in stream.data:
        return Connections()
    t = Table(stream.path, stream.field("connections"), stream.take("connections", dict))
    conn = Connections(
        t.integer("max_requests", 1, minimum=1),
        t.number("max_age_s", float("inf"), minimum=0, strict=True, allow_inf=True),  # inf: for ever
    )
    t.done()
    return conn
