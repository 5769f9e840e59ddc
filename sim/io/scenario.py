"""Scenario files: a topology file's name, pods, Services, external clients, client streams, the dataplane, the
timeline and the run's horizon. Every time is in seconds; Kubernetes fields are spelled as the API spells them."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sim.cluster import (
    DEFAULT_AFFINITY_TIMEOUT_S,
    Discipline,
    Pod,
    Service,
    SessionAffinity,
    TrafficDistribution,
    TrafficPolicy,
)
from sim.distributions import Exponential
from sim.errors import SpecError
from sim.io import builders
from sim.io.builders import Defaults
from sim.io.durations import duration
from sim.io.tables import Table, load_toml
from sim.io.timeline import event, sync
from sim.io.topology import load_topology
from sim.io.workloads import workload
from sim.routing import DataplaneConfig
from sim.scenario import LINUX_SYN_TIMEOUT_S, Connections, ExternalClient, Retries, Scenario, Stream, Target
from sim.topology import Topology

_POLICIES = [p.value for p in TrafficPolicy]
_DISTRIBUTIONS = [d.value for d in TrafficDistribution]
_AFFINITIES = [a.value for a in SessionAffinity]
_DISCIPLINES = [d.value for d in Discipline]
_TARGETS = [t.value for t in Target]


def load_scenario(path: str | Path, overrides: Mapping[str, Any] | None = None) -> tuple[Scenario, int]:
    """Read a scenario TOML file into a validated Scenario and its seed.

    ``overrides`` may set ``seed`` and ``requests`` (requests per stream), as the CLI flags do.
    """
    path = Path(path)
    return parse_scenario(load_toml(path), path, overrides)


def parse_scenario(
    raw: Mapping[str, Any], path: str | Path, overrides: Mapping[str, Any] | None = None
) -> tuple[Scenario, int]:
    """Build a validated Scenario and its seed from a parsed scenario table; ``path`` names it in errors and
    anchors relative file names (topology, traces)."""
    path = Path(path)
    overrides = dict(overrides or {})
    top = Table(path, "", dict(raw))
    name = top.take("name", str, path.stem)
    seed = top.integer("seed", 0, minimum=0)
    topology, topo_file = _topology(top)
    dataplane = _dataplane(top)
    duration_s = top.number("duration_s", None, minimum=0, strict=True)
    defaults = _defaults(top)
    pods, absent = _pods(top, topology, topo_file, defaults)
    services = [_service(t) for t in top.tables("services")]
    external = _external_clients(top)
    requests = overrides.pop("requests", None)
    streams = [_stream(t, defaults, requests) for t in top.tables("streams")]
    node_sync = sync(top, topology)
    timeline = tuple(event(t) for t in top.tables("timeline"))
    warmup_s = top.number("warmup_s", 0.0, minimum=0)
    top.done()
    if "seed" in overrides:
        seed = overrides.pop("seed")
    if overrides:
        raise SpecError(str(path), sorted(overrides)[0], "unknown override")
    scenario = builders.scenario(
        path,
        name=name,
        topology=topology,
        pods=tuple(pods),
        services=tuple(services),
        streams=tuple(streams),
        dataplane=dataplane,
        external_clients=tuple(external),
        duration_s=duration_s,
        warmup_s=warmup_s,
        timeline=timeline,
        absent=frozenset(absent),
        sync=node_sync,
    )
    return scenario, seed


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


def _dataplane(top: Table) -> DataplaneConfig:
    """``dataplane = "cilium"``, or a table ``[dataplane]`` with name and options."""
    raw = top.data.get("dataplane", "iptables")
    if isinstance(raw, str):
        return DataplaneConfig(name=top.take("dataplane", str, "iptables"))
    t = Table(top.path, "dataplane", top.take("dataplane", (dict, str)))
    config = DataplaneConfig(
        name=t.take("name", str, "iptables"),
        picker=t.take("picker", str, ""),
        maglev_table_size=t.integer("maglev_table_size", 16381, minimum=1),
        enable_service_topology=t.take("enable_service_topology", bool, False),
        external_clusterip=t.take("external_clusterip", bool, False),
        prefer_same_node_gate=t.take("prefer_same_node_gate", bool, True),
    )
    t.done()
    return config


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


def _pods(top: Table, topology: Topology, topo_file: str, defaults: Defaults) -> tuple[list[Pod], set[str]]:
    """``[[pods]]``, and the names of those not yet present (``present = false``: added by the timeline)."""
    node_index = {node: i for i, node in enumerate(topology.nodes)}
    per_node: dict[str, int] = {}
    pods: list[Pod] = []
    absent: set[str] = set()
    for t in top.tables("pods"):
        pod_name = t.take("name", str)
        node = t.take("node", str)
        if node not in topology.nodes:
            raise t.error("node", f"node {node!r} is not in topology {topology.name!r} ({topo_file})")
        k = per_node.get(node, 0)
        per_node[node] = k + 1
        service_time = duration(t, "service_time", defaults.service_time)
        pods.append(
            Pod(
                name=pod_name,
                node=node,
                ip=t.take("ip", str, builders.pod_ip(node_index[node], k)),
                labels=t.strings("labels"),
                ready=t.take("ready", bool, True),
                terminating=t.take("terminating", bool, False),
                service_time=service_time,
                concurrency=t.integer("concurrency", defaults.concurrency, minimum=1),
                queue_limit=t.integer("queue_limit", defaults.queue_limit, minimum=0),
                discipline=t.choice("discipline", Discipline, _DISCIPLINES, defaults.discipline),
            )
        )
        if not t.take("present", bool, True):
            absent.add(pod_name)
        t.done()
    return pods, absent


def _string_list(t: Table, key: str) -> tuple[str, ...]:
    values = t.take(key, list, [])
    if not all(isinstance(v, str) for v in values):
        raise t.error(key, "must be an array of strings")
    return tuple(values)


def _service(t: Table) -> Service:
    """One ``[[services]]`` entry, its fields named as the Service API names them."""
    affinity_timeout = DEFAULT_AFFINITY_TIMEOUT_S
    if "sessionAffinityConfig" in t.data:
        config = Table(t.path, t.field("sessionAffinityConfig"), t.take("sessionAffinityConfig", dict))
        client_ip = Table(t.path, config.field("clientIP"), config.take("clientIP", dict))
        timeout = client_ip.number("timeoutSeconds", None, minimum=1)
        affinity_timeout = builders.affinity_timeout(timeout, lambda why: client_ip.error("timeoutSeconds", why))
        client_ip.done()
        config.done()
    return _done(
        t,
        Service(
            name=t.take("name", str),
            selector=t.strings("selector"),
            port=t.integer("port", 80, minimum=1),
            internal_traffic_policy=t.choice("internalTrafficPolicy", TrafficPolicy, _POLICIES, TrafficPolicy.CLUSTER),
            external_traffic_policy=t.choice("externalTrafficPolicy", TrafficPolicy, _POLICIES, TrafficPolicy.CLUSTER),
            node_port=t.integer("nodePort", 0, minimum=0),
            load_balancer_ips=_string_list(t, "loadBalancerIPs"),
            external_ips=_string_list(t, "externalIPs"),
            traffic_distribution=t.choice("trafficDistribution", TrafficDistribution, _DISTRIBUTIONS, None),
            session_affinity=t.choice("sessionAffinity", SessionAffinity, _AFFINITIES, SessionAffinity.NONE),
            session_affinity_timeout_s=affinity_timeout,
            annotations=t.strings("annotations"),
        ),
    )


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


def _retries(stream: Table) -> Retries:
    """``retries = { attempts = 2, base_s = 0.025, max_s = 0.25 }``."""
    if "retries" not in stream.data:
        return Retries()
    t = Table(stream.path, stream.field("retries"), stream.take("retries", dict))
    out = Retries(
        t.integer("attempts", 0, minimum=0), t.number("base_s", 0.025, minimum=0), t.number("max_s", 0.25, minimum=0)
    )
    t.done()
    return out
