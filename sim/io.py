"""Every file format: ``topologies/*.toml``, experiment scenario TOML, trace files, and atomic result writes.

Files are parsed once into typed objects; unknown keys, wrong types and bad values raise SpecError naming the
file, the field and the problem.
"""

from __future__ import annotations

import hashlib
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
    Discipline,
    Pod,
    Service,
    SessionAffinity,
    TrafficDistribution,
    TrafficPolicy,
)
from sim.distributions import Constant, Dist, Empirical, Exponential, Gamma, LogNormal, Uniform
from sim.errors import SpecError
from sim.experiment.results import RESERVED_COLUMNS
from sim.experiment.spec import (
    DesignPoint,
    Experiment,
    Factor,
    PathError,
    level_choices,
    overlapping,
    parse_path,
    resolve,
)
from sim.routing import DataplaneConfig
from sim.scenario import (
    LINUX_SYN_TIMEOUT_S,
    SCENARIO,
    Connections,
    ExternalClient,
    Retries,
    Scenario,
    Stream,
    Sync,
    Target,
)
from sim.timeline import NODE_MONITOR_GRACE_PERIOD_S, Action, Event
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

_DISTS = ["constant", "exponential", "lognormal", "uniform", "gamma", "empirical"]


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
    elif kind == "empirical":
        key, samples = _numbers(t, "samples_s")
        if not samples or min(samples) < 0:
            raise t.error(key, "needs at least one sample, every one >= 0 seconds")
        dist = Empirical(samples)
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
_DISCIPLINES = [d.value for d in Discipline]
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


def _numbers(t: _Table, inline_key: str) -> tuple[str, tuple[float, ...]]:
    """Numbers of seconds: inline ``<inline_key> = [...]`` or ``file = "x.csv"`` (first column, one a line, an
    optional header line, # comments). Returns the key that gave them, for error messages."""
    if "file" in t.data:
        file = t.path.parent / t.take("file", str)
        try:
            lines = file.read_text().splitlines()
        except OSError as e:
            raise t.error("file", f"cannot read {file}: {e.strerror}") from None
        values = []
        for n, line in enumerate(lines, 1):
            text = line.split("#", 1)[0].strip().split(",")[0].strip()
            if not text or (n == 1 and not text[0].isdigit() and text[0] not in "+-."):
                continue  # blank, comment or a header line
            try:
                values.append(float(text))
            except ValueError:
                raise SpecError(str(file), f"line {n}", f"not a number of seconds: {text!r}") from None
        return "file", tuple(values)
    raw = t.take(inline_key, list)
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in raw):
        raise t.error(inline_key, "must be an array of numbers of seconds")
    return inline_key, tuple(float(v) for v in raw)


def _trace(t: _Table) -> tuple[float, ...]:
    """Send times in seconds from the stream's start, sorted and >= 0."""
    key, times = _numbers(t, "times_s")
    if any(v < 0 for v in times) or any(b < a for a, b in itertools.pairwise(times)):
        raise t.error(key, "send times must be >= 0 and sorted")
    return times


def _retries(stream: _Table) -> Retries:
    """``retries = { attempts = 2, base_s = 0.025, max_s = 0.25 }``."""
    if "retries" not in stream.data:
        return Retries()
    t = _Table(stream.path, stream.field("retries"), stream.take("retries", dict))
    out = Retries(
        t.integer("attempts", 0, minimum=0), t.number("base_s", 0.025, minimum=0), t.number("max_s", 0.25, minimum=0)
    )
    t.done()
    return out


def _sync(top: _Table, topology: Topology) -> Sync:
    """``[sync] lag_s = 1.0, per_node = { "kind-worker2" = 3.0 }``: EndpointSlice-to-proxy delay per node (s)."""
    if "sync" not in top.data:
        return Sync()
    t = _Table(top.path, "sync", top.take("sync", dict))
    lag = t.number("lag_s", 1.0, minimum=0)
    per_node_table = _Table(top.path, "sync.per_node", t.take("per_node", dict, {}))
    per_node = {}
    for node in list(per_node_table.data):
        if node not in topology.nodes:
            raise per_node_table.error(node, f"node {node!r} is not in topology {topology.name!r}")
        per_node[node] = per_node_table.number(node, minimum=0)
    t.done()
    return Sync(lag, per_node)


_ACTIONS = [a.value for a in Action]
_UPDATABLE = {
    "internalTrafficPolicy": ("internal_traffic_policy", TrafficPolicy),
    "externalTrafficPolicy": ("external_traffic_policy", TrafficPolicy),
    "trafficDistribution": ("traffic_distribution", TrafficDistribution),
}


def _event(t: _Table) -> Event:
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
        changes = _Table(t.path, t.field("set"), t.take("set", dict))
        fields: dict[str, object] = {}
        for key in list(changes.data):
            if key not in _UPDATABLE:
                raise changes.error(key, f"cannot be changed by the timeline; expected one of {sorted(_UPDATABLE)}")
            name, kind = _UPDATABLE[key]
            fields[name] = changes.choice(key, kind, [v.value for v in kind])
        kwargs["changes"] = fields
    t.done()
    return Event(at_s, action, **kwargs)


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
    default_queue_limit = defaults.integer("queue_limit", None, minimum=0)
    default_discipline = defaults.choice("discipline", Discipline, _DISCIPLINES, Discipline.FIFO)
    default_timeout = defaults.number("timeout_s", None, minimum=0, strict=True)
    defaults.done()

    node_order = list(topology.nodes)
    absent: set[str] = set()
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
                queue_limit=t.integer("queue_limit", default_queue_limit, minimum=0),
                discipline=t.choice("discipline", Discipline, _DISCIPLINES, default_discipline),
            )
        )
        if not t.take("present", bool, True):
            absent.add(pod_name)
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
                timeout_s=t.number("timeout_s", default_timeout, minimum=0, strict=True),
                retries=_retries(t),
            )
        )
        t.done()
    sync = _sync(top, topology)
    timeline = tuple(_event(t) for t in top.tables("timeline"))
    warmup_s = top.number("warmup_s", 0.0, minimum=0)
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
            warmup_s=warmup_s,
            timeline=timeline,
            absent=frozenset(absent),
            sync=sync,
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


# --- experiments: spec files and result directories ----------------------------------------------------------
#
# An experiment spec (a TOML file with an [experiment] table) names a base scenario, as a file or an inline
# [scenario] table, factors over its fields by dotted path (sim.experiment.spec), replications and a root seed.
# Each design point's table goes through parse_scenario, so every scenario field is sweepable, and a problem is
# reported against the factor or --set that caused it. A result directory holds runs/<key>.json (one file per
# run), experiment.json and summary.csv, each written atomically.


def is_experiment(path: str | Path) -> bool:
    """Whether a TOML file is an experiment spec (it has an ``[experiment]`` table) rather than a scenario."""
    return isinstance(_load_toml(Path(path)).get("experiment"), dict)


def parse_set(text: str) -> tuple[str, Any]:
    """A ``PATH=VALUE`` override: the value is read as a TOML value, or taken as a string if it is not one.

    >>> parse_set("defaults.concurrency=4")
    ('defaults.concurrency', 4)
    >>> parse_set("services.api.internalTrafficPolicy=Local")
    ('services.api.internalTrafficPolicy', 'Local')
    """
    path, sep, value = text.partition("=")
    if not sep or not path.strip():
        raise SpecError("--set", text, "expected PATH=VALUE, e.g. defaults.concurrency=2")
    try:
        parsed = tomllib.loads(f"v = {value.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        parsed = value.strip()
    return path.strip(), parsed


def load_experiment(path: str | Path, sets: Mapping[str, Any] | None = None) -> Experiment:
    """Read an experiment spec; ``sets`` overrides base-scenario fields by dotted path (``--set``)."""
    path = Path(path)
    return parse_experiment(_load_toml(path), path, sets)


def _quoted(name: str) -> str:
    return f'"{name}"' if "." in name else name


def _linked_factor(path: Path, name: str, where: str, raw: dict[str, Any]) -> Factor:
    """``[factors.NAME]``: ``levels`` (the values recorded) and paths, each with one value per level."""
    t = _Table(path, where, raw)
    levels = t.take("levels", list)
    flat: dict[str, Any] = {}

    def flatten(prefix: str, table: Mapping[str, Any]) -> None:
        for key, value in table.items():
            full = f"{prefix}.{key}" if prefix else key
            if isinstance(value, dict):
                flatten(full, value)  # an unquoted dotted key: TOML made nested tables of it
            else:
                flat[full] = value

    flatten("", t.data)
    t.data.clear()
    if not flat:
        raise t.error("levels", "a linked factor also needs the paths it sets, each with one value per level")
    settings = []
    for p, values in flat.items():
        if not isinstance(values, list) or len(values) != len(levels):
            got = f"{len(values)} values" if isinstance(values, list) else f"{_type_name(values)} {values!r}"
            raise t.error(_quoted(p), f"must be an array of {len(levels)} values, one per level; got {got}")
        settings.append((p, tuple(values)))
    return Factor(name, tuple(levels), tuple(settings))


def _factors(path: Path, raw: Mapping[str, Any]) -> list[Factor]:
    """[factors]: ``"dotted.path" = [levels]``, or a linked factor ``[factors.NAME]`` with ``levels`` and paths."""
    factors: list[Factor] = []

    def walk(prefix: str, table: Mapping[str, Any]) -> None:
        for key, value in table.items():
            name = f"{prefix}.{key}" if prefix else key
            where = f"factors.{_quoted(name)}"
            if isinstance(value, list):
                factors.append(Factor(name, tuple(value), ((name, tuple(value)),)))
            elif isinstance(value, dict) and "levels" in value:
                factors.append(_linked_factor(path, name, where, value))
            elif isinstance(value, dict):
                walk(name, value)  # an unquoted dotted key: TOML made nested tables of it
            else:
                raise SpecError(str(path), where, f"must be an array of levels (or a table with levels); got {value!r}")

    walk("", raw)
    for f in factors:
        where = f"factors.{_quoted(f.name)}"
        if not f.levels:
            raise SpecError(str(path), where, "needs at least one level")
        texts = [json.dumps(v, sort_keys=True, default=str) for v in f.levels]
        if len(set(texts)) < len(texts):
            raise SpecError(str(path), where, f"repeats a level: {list(f.levels)}")
        if f.name in RESERVED_COLUMNS:
            raise SpecError(str(path), where, f"{f.name!r} is a column of the results table; name the factor otherwise")
        for p, _ in f.settings:
            try:
                segments = parse_path(p)
            except PathError as e:
                raise SpecError(str(path), where, str(e)) from None
            if segments == ("seed",):
                raise SpecError(str(path), where, "seeds come from [experiment] root_seed and the replication number")
    try:
        clash = overlapping(p for f in factors for p, _ in f.settings)
    except PathError as e:
        raise SpecError(str(path), "factors", str(e)) from None
    if clash:
        raise SpecError(str(path), "factors", f"two factors set the same field: {clash[0]!r} and {clash[1]!r}")
    return factors


def _file_digests(table: Mapping[str, Any], anchor: Path, cache: dict[Path, str]) -> dict[str, str]:
    """sha256 of every file a scenario table names (``topology``, trace ``file``), by the name used in the table."""
    found: dict[str, str] = {}

    def walk(obj: object) -> None:
        if isinstance(obj, dict):
            for key, value in obj.items():
                if key in ("topology", "file") and isinstance(value, str):
                    file = anchor.parent / value
                    if file.is_file():
                        if file not in cache:
                            cache[file] = hashlib.sha256(file.read_bytes()).hexdigest()
                        found[value] = cache[file]
                else:
                    walk(value)
        elif isinstance(obj, list):
            for value in obj:
                walk(value)

    walk(table)
    return found


def parse_experiment(raw: Mapping[str, Any], path: str | Path, sets: Mapping[str, Any] | None = None) -> Experiment:
    """Build an Experiment from a parsed spec table, checking the base scenario, every override, every factor
    level and every design point; ``path`` names the spec in errors and anchors relative file names."""
    path = Path(path)
    spec = str(path)
    top = _Table(path, "", raw)
    head = _Table(path, "experiment", top.take("experiment", dict))
    name = head.take("name", str, path.stem)
    scenario_file = head.take("scenario", str, None)
    replications = head.integer("replications", minimum=1)
    root_seed = head.integer("root_seed", 0, minimum=0)
    head.done()
    inline = top.take("scenario", dict, None)
    factors_raw = top.take("factors", dict, {})
    plot = _Table(path, "plot", top.take("plot", dict, {}))
    top.done()
    if scenario_file is not None and inline is not None:
        raise head.error("scenario", "give a scenario file here or an inline [scenario] table, not both")
    if scenario_file is None:
        if inline is None:
            raise head.error("scenario", "is required: a scenario file, or an inline [scenario] table")
        anchor, base, prefix = path, dict(inline), "scenario."
    else:
        anchor, prefix = path.parent / scenario_file, ""
        if not anchor.is_file():
            raise head.error("scenario", f"no such file {str(anchor)!r}")
        base = _load_toml(anchor)
    base.pop("seed", None)  # a sweep's seeds come from root_seed and the replication

    def build(table: dict[str, Any], blame: str = "", fields: Mapping[str, str] | None = None) -> Scenario:
        """parse_scenario on a resolved table; a problem in it is put on the factor or --set that set it."""
        try:
            return parse_scenario(table, anchor)[0]
        except SpecError as e:
            if e.path != str(anchor):
                raise
            if not blame:
                raise SpecError(spec if prefix else e.path, prefix + e.field, e.problem) from None
            for p, fld in (fields or {}).items():
                inside = fld == e.field or fld.startswith((e.field + ".", e.field + "["))
                if inside and e.problem.startswith("unknown key"):
                    raise SpecError(spec, blame, f"unknown path {p!r}: the scenario has no field {e.field!r}") from None
            own = e.field in (fields or {}).values()
            raise SpecError(spec, blame, e.problem if own else f"{prefix}{e.field}: {e.problem}") from None

    def resolved(table: Mapping[str, Any], blame: str, assignments: list[tuple[str, Any]]) -> tuple[dict, dict]:
        try:
            return resolve(table, assignments)
        except PathError as e:
            words = str(e) if str(e).startswith("malformed") else f"unknown path: {e}"
            raise SpecError(spec, blame, words) from None

    build(base)
    for key, value in (sets or {}).items():
        blame = f"--set {key}"
        table, fields = resolved(base, blame, [(key, value)])
        if parse_path(key) == ("seed",):
            raise SpecError(spec, blame, "seeds come from [experiment] root_seed and the replication number")
        build(table, blame, fields)
    base, _ = resolve(base, list((sets or {}).items()))

    factors = _factors(path, factors_raw)
    for f in factors:
        for level in range(len(f.levels)):
            blame = f"factors.{_quoted(f.name)}"
            table, fields = resolved(base, blame, f.assignments(level))
            build(table, blame, fields)

    names = [f.name for f in factors]
    roles: dict[str, Any] = {}
    for role in ("x", "line"):
        chosen = plot.take(role, str, None)
        if chosen is not None and chosen not in names:
            raise plot.error(role, f"names no factor; the factors are {names}")
        if chosen is not None:
            roles[role] = chosen
    labels = plot.strings("labels")
    for factor in labels:
        if factor not in names:
            raise plot.error(f"labels.{_quoted(factor)}", f"names no factor; the factors are {names}")
    if labels:
        roles["labels"] = labels
    plot.done()

    digests: dict[Path, str] = {}
    points: list[DesignPoint] = []
    seen: dict[str, int] = {}
    for index, choice in enumerate(level_choices(factors)):
        values = {f.name: f.levels[level] for f, level in zip(factors, choice, strict=True)}
        assignments = [a for f, level in zip(factors, choice, strict=True) for a in f.assignments(level)]
        at = ", ".join(f"{k}={v!r}" for k, v in values.items())
        table, fields = resolve(base, assignments)
        scenario = build(table, f"factors (design point {at})", fields)
        text = json.dumps(table, sort_keys=True, default=str)
        if text in seen:
            raise SpecError(spec, "factors", f"design points {seen[text]} and {index} ({at}) give the same scenario")
        seen[text] = index
        points.append(DesignPoint(index, values, table, scenario, str(anchor), _file_digests(table, anchor, digests)))
    return Experiment(
        name=name,
        path=spec,
        factors=tuple(factors),
        replications=replications,
        root_seed=root_seed,
        design_points=tuple(points),
        plot=roles,
        sets=dict(sets or {}),
    )


class ResultDir:
    """A sweep's results on disk: ``runs/<key>.json`` per run, ``experiment.json`` and ``summary.csv``."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def run_file(self, key: str) -> Path:
        """Where the record of run ``key`` lives."""
        return self.path / "runs" / f"{key}.json"

    def load(self, key: str) -> dict[str, Any] | None:
        """The record of run ``key``, or None if there is none (or it cannot be read)."""
        try:
            record = json.loads(self.run_file(key).read_text())
        except (OSError, ValueError):
            return None
        return record if isinstance(record, dict) and record.get("key") == key else None

    def save(self, record: Mapping[str, Any]) -> None:
        """Write one run's record atomically."""
        write_atomic(self.run_file(record["key"]), dumps_json(record))

    def save_experiment(self, info: Mapping[str, Any]) -> None:
        """Write ``experiment.json`` atomically."""
        write_atomic(self.path / "experiment.json", dumps_json(info))

    def save_summary(self, csv_text: str) -> None:
        """Write ``summary.csv`` atomically."""
        write_atomic(self.path / "summary.csv", csv_text)


def load_results(path: str | Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A result directory's experiment description and the records of its runs found there, in run order."""
    path = Path(path)
    if not path.is_dir():
        raise SpecError(str(path), "", "no such results directory")
    info_file = path / "experiment.json"
    try:
        info = json.loads(info_file.read_text())
    except FileNotFoundError:
        raise SpecError(str(path), "", "not a results directory: no experiment.json (run `sim sweep` first)") from None
    except (OSError, ValueError) as e:
        raise SpecError(str(info_file), "", f"cannot be read: {e}") from None
    store = ResultDir(path)
    records = [rec for run in info.get("runs", []) if (rec := store.load(run["key"])) is not None]
    return info, records


# --- one run's JSON (`sim run --out`) ------------------------------------------------------------------------


def load_run(path: str | Path) -> dict[str, Any]:
    """A ``sim run --out`` file (``sim.experiment.rundoc.run_document``), checked enough to draw and report:
    every table and list the figures and the report read is there, with the right type and length."""
    path = Path(path)
    try:
        doc = json.loads(path.read_bytes())
    except FileNotFoundError:
        raise SpecError(str(path), "", "no such file") from None
    except (OSError, ValueError) as e:
        raise SpecError(str(path), "", f"not a JSON file: {e}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("services"), dict) or "seed" not in doc:
        raise SpecError(str(path), "", "not a `sim run --out` file: expected an object with seed and services")
    for key in ("window_s", "cluster", "timeline"):
        if key not in doc:
            raise SpecError(str(path), key, "missing: written by an older `sim run`; run it again with --out")

    def need(obj: Any, where: str, kind: type | tuple[type, ...]) -> Any:
        if not isinstance(obj, kind) or isinstance(obj, bool):
            raise SpecError(
                str(path), where, f"expected {getattr(kind, '__name__', 'a number')}, got {_type_name(obj)}"
            )
        return obj

    number = (int, float)
    if not need(doc["window_s"], "window_s", number) > 0:
        raise SpecError(str(path), "window_s", "must be > 0")
    for key in ("scenario", "dataplane"):
        need(doc.get(key), key, str)
    need(doc.get("end_s"), "end_s", number)
    cluster = need(doc["cluster"], "cluster", dict)
    for key in ("nodes", "elements", "links", "pods", "services", "streams"):
        for i, item in enumerate(need(cluster.get(key), f"cluster.{key}", list)):
            need(item, f"cluster.{key}[{i}]", dict)
    for i, event in enumerate(need(doc["timeline"], "timeline", list)):
        need(need(event, f"timeline[{i}]", dict).get("at_s"), f"timeline[{i}].at_s", number)
    for name, svc in doc["services"].items():
        where = f"services.{name}"
        need(svc, where, dict)
        for key in ("routed_by_endpoint", "expected_share", "by_endpoint", "by_client_node", "latency_histogram"):
            need(svc.get(key), f"{where}.{key}", dict)
        w = need(svc.get("windows"), f"{where}.windows", dict)
        n = len(need(w.get("sent"), f"{where}.windows.sent", list))
        series = {"completed": w.get("completed")}
        for group in ("landed", "failed", "latency_s"):
            series.update({f"{group}.{k}": v for k, v in need(w.get(group), f"{where}.windows.{group}", dict).items()})
        for key, values in series.items():
            if not isinstance(values, list) or len(values) != n:
                raise SpecError(str(path), f"{where}.windows.{key}", f"expected a list of {n} values, one per window")
            for v in values:
                if v is not None and (not isinstance(v, number) or isinstance(v, bool)):
                    raise SpecError(str(path), f"{where}.windows.{key}", f"expected numbers, got {_type_name(v)}")
    return doc
