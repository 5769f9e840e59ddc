"""Every file format: topologies/*.toml, experiment scenario TOML, trace files, and atomic result writes.

Files are parsed once into typed objects; unknown keys, wrong types and bad values raise SpecError naming the
file, the field and the problem.
"""

from __future__ import annotations

import itertools
import json
import os
import tempfile
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from sim.cluster import (
    DEFAULT_AFFINITY_TIMEOUT_S,
    MAX_AFFINITY_TIMEOUT_S,
    Pod,
    Service,
    SessionAffinity,
    TrafficDistribution,
    TrafficPolicy,
)
from sim.distributions import Constant, Dist, Exponential, Gamma, LogNormal, Uniform
from sim.errors import SpecError
from sim.routing import DataplaneConfig
from sim.scenario import LINUX_SYN_TIMEOUT_S, SCENARIO, Connections, ExternalClient, Scenario, Stream, Target
from sim.topology import ElementKind, Link, Topology
from sim.workload import ClosedLoop, ConstantRate, Poisson, Trace, Workload

T = TypeVar("T")
_MISSING: Any = object()


class _Table:
    """One TOML table being read: takes typed fields and rejects whatever is left over."""

    def __init__(self, path: Path, where: str, data: object) -> None:
        self.path = path
        self.where = where
        if not isinstance(data, dict):
            raise SpecError(str(path), where or "(top level)", f"must be a table, got {_type_name(data)}")
        self.data = dict(data)

    def field(self, key: str) -> str:
        return f"{self.where}.{key}" if self.where else key

    def error(self, key: str, problem: str) -> SpecError:
        return SpecError(str(self.path), self.field(key), problem)

    def take(self, key: str, kinds: type | tuple[type, ...], default: Any = _MISSING) -> Any:
        if key not in self.data:
            if default is _MISSING:
                raise self.error(key, "is required")
            return default
        value = self.data.pop(key)
        kinds_t = kinds if isinstance(kinds, tuple) else (kinds,)
        if (isinstance(value, bool) and bool not in kinds_t) or not isinstance(value, kinds_t):
            wanted = " or ".join(_type_name(k) for k in kinds_t)
            raise self.error(key, f"must be {wanted}, got {_type_name(value)} {value!r}")
        return value

    def number(self, key: str, default: Any = _MISSING, *, minimum: float | None = None, strict: bool = False) -> Any:
        if key not in self.data and default is not _MISSING:
            return default
        value = self.take(key, (int, float))
        if minimum is not None and (value < minimum or (strict and value == minimum)):
            raise self.error(key, f"must be {'>' if strict else '>='} {minimum:g}, got {value!r}")
        return float(value)

    def integer(self, key: str, default: Any = _MISSING, *, minimum: int | None = None) -> Any:
        if key not in self.data and default is not _MISSING:
            return default
        value = self.take(key, int)
        if minimum is not None and value < minimum:
            raise self.error(key, f"must be >= {minimum}, got {value!r}")
        return value

    def choice(self, key: str, parse: Callable[[str], T], allowed: list[str], default: Any = _MISSING) -> Any:
        if key not in self.data and default is not _MISSING:
            return default
        value = self.take(key, str)
        try:
            return parse(value)
        except ValueError:
            raise self.error(key, f"unknown value {value!r}; expected one of {allowed}") from None

    def strings(self, key: str) -> dict[str, str]:
        table = self.take(key, dict, {})
        for k, v in table.items():
            if not isinstance(v, str):
                raise self.error(f"{key}.{k}", f"must be a string, got {_type_name(v)} {v!r}")
        return dict(table)

    def tables(self, key: str) -> list[_Table]:
        items = self.take(key, list, [])
        return [_Table(self.path, f"{self.field(key)}[{i}]", item) for i, item in enumerate(items)]

    def done(self) -> None:
        if self.data:
            key = sorted(self.data)[0]
            raise self.error(key, "unknown key")


def _type_name(value: object) -> str:
    t = value if isinstance(value, type) else type(value)
    return {
        dict: "a table",
        list: "an array",
        str: "a string",
        int: "an integer",
        float: "a number",
        bool: "a boolean",
    }.get(t, t.__name__)


def _load_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise SpecError(str(path), "", "no such file") from None
    except IsADirectoryError:
        raise SpecError(str(path), "", "is a directory, not a TOML file") from None
    except tomllib.TOMLDecodeError as e:
        raise SpecError(str(path), "", f"malformed TOML: {e}") from None
    except UnicodeDecodeError as e:
        raise SpecError(str(path), "", f"not UTF-8 text: {e.reason}") from None


# --- distributions ---------------------------------------------------------------------------------------------

_DISTS = ["constant", "exponential", "lognormal", "uniform", "gamma"]


def _dist(parent: _Table, key: str, default: Any = _MISSING) -> Any:
    """A duration in seconds: a number (constant) or a table ``{dist = "...", ...}``."""
    if key not in parent.data:
        if default is _MISSING:
            raise parent.error(key, "is required")
        return default
    raw = parent.data[key]
    if isinstance(raw, (int, float)) and not isinstance(raw, bool):
        value = parent.number(key, minimum=0)
        return Constant(value)
    parent.take(key, (dict, int, float))
    t = _Table(parent.path, parent.field(key), raw)
    kind = t.take("dist", str)
    dist: Dist
    if kind == "constant":
        dist = Constant(t.number("value_s", minimum=0))
    elif kind == "exponential":
        dist = Exponential(t.number("mean_s", minimum=0))
    elif kind == "lognormal":
        dist = LogNormal(t.number("mean_s", minimum=0), t.number("sigma", minimum=0))
    elif kind == "uniform":
        low = t.number("low_s", minimum=0)
        high = t.number("high_s", minimum=0)
        if high < low:
            raise t.error("high_s", f"must be >= low_s ({low:g}), got {high:g}")
        dist = Uniform(low, high)
    elif kind == "gamma":
        dist = Gamma(t.number("mean_s", minimum=0), t.number("shape", minimum=0, strict=True))
    else:
        raise t.error("dist", f"unknown distribution {kind!r}; expected one of {_DISTS}")
    t.done()
    return dist


# --- topology --------------------------------------------------------------------------------------------------

_ELEMENTS = [k.value for k in ElementKind if k != ElementKind.NODE]


def load_topology(path: str | Path) -> Topology:
    """Read a topology TOML file: nodes with labels, network elements, links with latency (s)."""
    path = Path(path)
    top = _Table(path, "", _load_toml(path))
    name = top.take("name", str, path.stem)
    same_node = _dist(top, "same_node_latency", Constant(0.0))
    top.data.pop("same_node_latency", None)
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
        latency = _dist(t, "latency")
        t.data.pop("latency", None)
        links.append(Link(between[0], between[1], latency))
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


# --- scenario --------------------------------------------------------------------------------------------------

_WORKLOADS = ["poisson", "constant", "closed_loop", "trace"]
_POLICIES = [p.value for p in TrafficPolicy]
_DISTRIBUTIONS = [d.value for d in TrafficDistribution]
_AFFINITIES = [a.value for a in SessionAffinity]
_TARGETS = [t.value for t in Target]


def _workload(t: _Table) -> Workload:
    kind = t.take("kind", str)
    workload: Workload
    if kind == "poisson":
        workload = Poisson(t.number("rate_rps", minimum=0, strict=True))
    elif kind == "constant":
        workload = ConstantRate(t.number("rate_rps", minimum=0, strict=True))
    elif kind == "closed_loop":
        workload = ClosedLoop(_dist(t, "think_s", Constant(0.0)))
        t.data.pop("think_s", None)
    elif kind == "trace":
        workload = Trace(_trace(t))
    else:
        raise t.error("kind", f"unknown workload {kind!r}; expected one of {_WORKLOADS}")
    t.done()
    return workload


def _trace(t: _Table) -> tuple[float, ...]:
    """Send times in seconds: inline ``times_s = [...]`` or ``file = "x.csv"`` (one time per line, # comments)."""
    key = "file" if "file" in t.data else "times_s"
    if key == "file":
        file = t.path.parent / t.take("file", str)
        try:
            lines = file.read_text().splitlines()
        except OSError as e:
            raise t.error("file", f"cannot read {file}: {e.strerror}") from None
        times = []
        for n, line in enumerate(lines, 1):
            text = line.split("#", 1)[0].strip().split(",")[0].strip()
            if not text or (n == 1 and not text[0].isdigit() and text[0] not in "+-."):
                continue  # blank, comment or a header line
            try:
                times.append(float(text))
            except ValueError:
                raise SpecError(str(file), f"line {n}", f"not a number of seconds: {text!r}") from None
    else:
        raw = t.take("times_s", list)
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in raw):
            raise t.error("times_s", "must be an array of numbers of seconds")
        times = [float(v) for v in raw]
    if any(v < 0 for v in times) or any(b < a for a, b in itertools.pairwise(times)):
        raise t.error(key, "send times must be >= 0 and sorted")
    return tuple(times)


def _string_list(t: _Table, key: str) -> tuple[str, ...]:
    values = t.take(key, list, [])
    if not all(isinstance(v, str) for v in values):
        raise t.error(key, "must be an array of strings")
    return tuple(values)


def _dataplane(top: _Table) -> DataplaneConfig:
    """``dataplane = "cilium"``, or a table ``[dataplane]`` with name and options."""
    raw = top.data.get("dataplane", "iptables")
    if isinstance(raw, str):
        return DataplaneConfig(name=top.take("dataplane", str, "iptables"))
    t = _Table(top.path, "dataplane", top.take("dataplane", (dict, str)))
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


def _connections(stream: _Table) -> Connections:
    """``connections = { max_requests = 100, max_age_s = 30 }``: keep-alive; absent: a new connection a request."""
    if "connections" not in stream.data:
        return Connections()
    t = _Table(stream.path, stream.field("connections"), stream.take("connections", dict))
    conn = Connections(
        t.integer("max_requests", 1, minimum=1), t.number("max_age_s", float("inf"), minimum=0, strict=True)
    )
    t.done()
    return conn


def load_scenario(path: str | Path, overrides: Mapping[str, Any] | None = None) -> tuple[Scenario, int]:
    """Read a scenario TOML file into a validated Scenario and its seed.

    ``overrides`` may set ``seed`` and ``requests`` (requests per stream), as the CLI flags do.
    """
    path = Path(path)
    return parse_scenario(_load_toml(path), path, overrides)


def parse_scenario(
    raw: Mapping[str, Any], path: str | Path, overrides: Mapping[str, Any] | None = None
) -> tuple[Scenario, int]:
    """Build a validated Scenario and its seed from a parsed scenario table; ``path`` names it in errors and
    anchors relative file names (topology, traces)."""
    path = Path(path)
    overrides = dict(overrides or {})
    raw = dict(raw)
    top = _Table(path, "", raw)
    name = top.take("name", str, path.stem)
    seed = top.integer("seed", 0, minimum=0)
    topo_file = top.take("topology", str)
    topology_path = path.parent / topo_file
    try:
        topology = load_topology(topology_path)
    except SpecError as e:
        if e.path == str(topology_path) and e.problem == "no such file":
            raise top.error("topology", f"no such file {str(topology_path)!r}") from None
        raise
    dataplane = _dataplane(top)
    duration_s = top.number("duration_s", None, minimum=0, strict=True)

    defaults = _Table(path, "defaults", top.take("defaults", dict, {}))
    default_service = _dist(defaults, "service_time", Exponential(0.001))
    defaults.data.pop("service_time", None)
    default_concurrency = defaults.integer("concurrency", 1, minimum=1)
    default_connect_timeout = defaults.number("connect_timeout_s", LINUX_SYN_TIMEOUT_S, minimum=0)
    defaults.done()

    node_order = list(topology.nodes)
    per_node: dict[str, int] = {}
    pods = []
    for t in top.tables("pods"):
        pod_name = t.take("name", str)
        node = t.take("node", str)
        if node not in topology.nodes:
            raise t.error("node", f"node {node!r} is not in topology {topology.name!r} ({topo_file})")
        k = per_node.get(node, 0)
        per_node[node] = k + 1
        default_ip = f"10.244.{node_order.index(node)}.{k + 2}"
        service_time = _dist(t, "service_time", default_service)
        t.data.pop("service_time", None)
        pods.append(
            Pod(
                name=pod_name,
                node=node,
                ip=t.take("ip", str, default_ip),
                labels=t.strings("labels"),
                ready=t.take("ready", bool, True),
                terminating=t.take("terminating", bool, False),
                service_time=service_time,
                concurrency=t.integer("concurrency", default_concurrency, minimum=1),
            )
        )
        t.done()

    services = []
    for t in top.tables("services"):
        affinity_timeout = DEFAULT_AFFINITY_TIMEOUT_S
        if "sessionAffinityConfig" in t.data:
            config = _Table(path, t.field("sessionAffinityConfig"), t.take("sessionAffinityConfig", dict))
            client_ip = _Table(path, config.field("clientIP"), config.take("clientIP", dict))
            affinity_timeout = client_ip.number("timeoutSeconds", DEFAULT_AFFINITY_TIMEOUT_S, minimum=1)
            if affinity_timeout > MAX_AFFINITY_TIMEOUT_S:
                raise client_ip.error(
                    "timeoutSeconds", f"must be <= {MAX_AFFINITY_TIMEOUT_S:g}, got {affinity_timeout:g}"
                )
            client_ip.done()
            config.done()
        services.append(
            Service(
                name=t.take("name", str),
                selector=t.strings("selector"),
                port=t.integer("port", 80, minimum=1),
                internal_traffic_policy=t.choice(
                    "internalTrafficPolicy", TrafficPolicy, _POLICIES, TrafficPolicy.CLUSTER
                ),
                external_traffic_policy=t.choice(
                    "externalTrafficPolicy", TrafficPolicy, _POLICIES, TrafficPolicy.CLUSTER
                ),
                node_port=t.integer("nodePort", 0, minimum=0),
                load_balancer_ips=_string_list(t, "loadBalancerIPs"),
                external_ips=_string_list(t, "externalIPs"),
                traffic_distribution=t.choice("trafficDistribution", TrafficDistribution, _DISTRIBUTIONS, None),
                session_affinity=t.choice("sessionAffinity", SessionAffinity, _AFFINITIES, SessionAffinity.NONE),
                session_affinity_timeout_s=affinity_timeout,
                annotations=t.strings("annotations"),
            )
        )
        t.done()

    external: list[ExternalClient] = []
    for t in top.tables("external_clients"):
        external.append(
            ExternalClient(
                name=t.take("name", str),
                attach=t.take("attach", str),
                ip=t.take("ip", str, f"203.0.113.{len(external) + 1}"),
            )
        )
        t.done()

    streams = []
    requests_override = overrides.pop("requests", None)
    for t in top.tables("streams"):
        client = t.take("client", str)
        service = t.take("service", str)
        requests = t.integer("requests", None, minimum=0)
        if requests_override is not None:
            requests = requests_override
        workload = _workload(_Table(path, t.field("workload"), t.take("workload", dict)))
        streams.append(
            Stream(
                client=client,
                service=service,
                workload=workload,
                requests=requests,
                start_s=t.number("start_s", 0.0, minimum=0),
                connect_timeout_s=t.number("connect_timeout_s", default_connect_timeout, minimum=0),
                target=t.choice("target", Target, _TARGETS, Target.CLUSTER_IP),
                node=t.take("node", str, None),
                health_checks=t.take("health_checks", bool, False),
                connections=_connections(t),
            )
        )
        t.done()
    top.done()
    if "seed" in overrides:
        seed = overrides.pop("seed")
    if overrides:
        raise SpecError(str(path), sorted(overrides)[0], "unknown override")
    try:
        scenario = Scenario(
            name=name,
            topology=topology,
            pods=tuple(pods),
            services=tuple(services),
            streams=tuple(streams),
            dataplane=dataplane,
            external_clients=tuple(external),
            duration_s=duration_s,
            spec=raw,
        )
    except SpecError as e:
        if e.path == SCENARIO:
            raise SpecError(str(path), e.field, e.problem) from None
        raise
    return scenario, seed


# --- results ---------------------------------------------------------------------------------------------------


def write_atomic(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` so that readers see the old file or the whole new one, never a part."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def dumps_json(obj: object) -> str:
    """Canonical JSON text (sorted keys, NaN as null) so that equal results give byte-identical files."""
    return json.dumps(_nan_to_none(obj), sort_keys=True, indent=2) + "\n"


def _nan_to_none(obj: object) -> object:
    if isinstance(obj, float) and obj != obj:
        return None
    if isinstance(obj, dict):
        return {k: _nan_to_none(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_nan_to_none(v) for v in obj]
    return obj
