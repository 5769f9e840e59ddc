"""File formats: what parses into what, and the one-line error for each kind of bad input."""

from __future__ import annotations

from pathlib import Path

import pytest

from sim.cluster import TrafficPolicy
from sim.distributions import Constant, Exponential, Gamma, LogNormal
from sim.errors import SpecError
from sim.io import dumps_json, load_scenario, load_topology, write_file
from sim.workload import ClosedLoop, ConstantRate, Poisson, Trace
from tests.conftest import ROOT

TOPO = """
name = "t"
[[nodes]]
name = "a"
labels = { "topology.kubernetes.io/zone" = "z1" }
[[nodes]]
name = "b"
[[elements]]
name = "sw"
kind = "switch"
[[links]]
between = ["a", "sw"]
latency = 0.001
[[links]]
between = ["sw", "b"]
latency = { dist = "uniform", low_s = 0.001, high_s = 0.003 }
"""

SCENARIO = """
name = "s"
topology = "topo.toml"
seed = 9
[defaults]
service_time = { dist = "gamma", mean_s = 0.002, shape = 2 }
[[pods]]
name = "client"
node = "a"
[[pods]]
name = "web-a"
node = "a"
labels = { app = "web" }
concurrency = 3
[[pods]]
name = "web-b"
node = "b"
labels = { app = "web" }
ready = false
service_time = { dist = "lognormal", mean_s = 0.01, sigma = 1.0 }
[[services]]
name = "web"
selector = { app = "web" }
internalTrafficPolicy = "Local"
[[streams]]
client = "client"
service = "web"
requests = 10
workload = { kind = "poisson", rate_rps = 5 }
[[streams]]
client = "client"
service = "web"
requests = 10
workload = { kind = "closed_loop", think_s = { dist = "exponential", mean_s = 1.0 } }
[[streams]]
client = "client"
service = "web"
workload = { kind = "trace", times_s = [0.0, 1.5] }
[[streams]]
client = "client"
service = "web"
requests = 1
workload = { kind = "constant", rate_rps = 2 }
"""


@pytest.fixture
def files(tmp_path: Path) -> Path:
    (tmp_path / "topo.toml").write_text(TOPO)
    (tmp_path / "s.toml").write_text(SCENARIO)
    return tmp_path


def test_topology_parses(files):
    t = load_topology(files / "topo.toml")
    assert list(t.nodes) == ["a", "b"]
    assert t.nodes["a"] == {"topology.kubernetes.io/zone": "z1"}
    assert t.path("a", "b").mean_s == pytest.approx(0.003)
    assert t.same_node == Constant(0.0)


def test_scenario_parses(files):
    sc, seed = load_scenario(files / "s.toml")
    assert seed == 9
    assert sc.service("web").internal_traffic_policy == TrafficPolicy.LOCAL
    assert sc.pod("web-a").service_time == Gamma(0.002, 2.0)
    assert sc.pod("web-a").concurrency == 3
    assert sc.pod("web-b").service_time == LogNormal(0.01, 1.0)
    assert not sc.pod("web-b").ready
    assert [type(s.workload) for s in sc.streams] == [Poisson, ClosedLoop, Trace, ConstantRate]
    assert sc.streams[1].workload == ClosedLoop(Exponential(1.0))
    assert sc.streams[2].requests is None
    assert sc.dataplane.name == "iptables" and sc.dataplane.picker == ""
    # pod IPs follow the node's pod CIDR, in file order per node
    assert sc.pod("client").ip == "10.244.0.2" and sc.pod("web-a").ip == "10.244.0.3"
    assert sc.pod("web-b").ip == "10.244.1.2"


def test_overrides(files):
    sc, seed = load_scenario(files / "s.toml", {"seed": 4, "requests": 7})
    assert seed == 4
    assert all(s.requests == 7 for s in sc.streams)


def test_shipped_topologies_parse():
    for path in sorted((ROOT / "topologies").glob("*.toml")):
        assert load_topology(path).nodes
    mz = load_topology(ROOT / "topologies" / "multizone.toml")
    same_zone = mz.path("zone-a-node-1", "zone-a-node-2").mean_s
    cross_zone = mz.path("zone-a-node-1", "zone-b-node-1").mean_s
    assert cross_zone > 10 * same_zone


def edit(files: Path, old: str, new: str, name: str = "s.toml") -> Path:
    path = files / name
    text = path.read_text()
    assert old in text, old
    path.write_text(text.replace(old, new, 1))
    return path


@pytest.mark.parametrize(
    ("old", "new", "field", "problem"),
    [
        ("seed = 9", "sede = 9", "sede", "unknown key"),
        (
            'internalTrafficPolicy = "Local"',
            'internalTrafficPolicy = "Nearby"',
            "services[0].internalTrafficPolicy",
            "unknown value 'Nearby'",
        ),
        ('node = "b"', 'node = "c"', "pods[2].node", "node 'c' is not in topology"),
        ("requests = 10", 'requests = "ten"', "streams[0].requests", "must be an integer"),
        ("rate_rps = 5", "rate_rps = 0", "streams[0].workload.rate_rps", "must be > 0"),
        ('kind = "poisson"', 'kind = "bursty"', "streams[0].workload.kind", "unknown workload"),
        ("concurrency = 3", "concurrency = 0", "pods[1].concurrency", "must be >= 1"),
        ('service = "web"', 'service = "api"', "streams[0].service", "no service named 'api'"),
        ('client = "client"', 'client = "ghost"', "streams[0].client", "no pod or external client named 'ghost'"),
        ('name = "web-b"', 'name = "web-a"', "pods[2].name", "duplicate pod name"),
        ("shape = 2", "shape = 0", "defaults.service_time.shape", "must be > 0"),
        ("mean_s = 0.01, sigma = 1.0", "mean_s = 0.01", "pods[2].service_time.sigma", "is required"),
        ("times_s = [0.0, 1.5]", "times_s = [1.5, 0.0]", "streams[2].workload.times_s", "sorted"),
        ('topology = "topo.toml"', 'topology = "nope.toml"', "topology", "no such file"),
    ],
)
def test_bad_scenario_names_file_field_and_problem(files, old, new, field, problem):
    path = edit(files, old, new)
    with pytest.raises(SpecError) as err:
        load_scenario(path)
    assert err.value.path == str(path)
    assert err.value.field == field
    assert problem in err.value.problem
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(
    ("old", "new", "field", "problem"),
    [
        ("latency = 0.001", "latency = -0.001", "links[0].latency", "must be >= 0"),
        ("low_s = 0.001, high_s = 0.003", "low_s = 0.003, high_s = 0.001", "links[1].latency.high_s", "must be >="),
        ('between = ["a", "sw"]', 'between = ["a", "x"]', "links[0].between", "'x' is neither"),
        ('between = ["a", "sw"]', 'between = ["a", "a"]', "links[0].between", "itself"),
        ('kind = "switch"', 'kind = "hub"', "elements[0].kind", "unknown value 'hub'"),
        ('dist = "uniform"', 'dist = "pareto"', "links[1].latency.dist", "unknown distribution"),
    ],
)
def test_bad_topology(files, old, new, field, problem):
    path = edit(files, old, new, "topo.toml")
    with pytest.raises(SpecError) as err:
        load_scenario(files / "s.toml")
    assert (err.value.path, err.value.field) == (str(path), field)
    assert problem in err.value.problem


def test_disconnected_client_and_backend(files):
    edit(
        files,
        '[[links]]\nbetween = ["sw", "b"]\nlatency = { dist = "uniform", low_s = 0.001, high_s = 0.003 }\n',
        "",
        "topo.toml",
    )
    with pytest.raises(SpecError) as err:
        load_scenario(files / "s.toml")
    assert err.value.field == "streams[0]"
    assert "no network path" in err.value.problem


def test_malformed_toml(files):
    (files / "s.toml").write_text("name = [\n")
    with pytest.raises(SpecError, match="malformed TOML"):
        load_scenario(files / "s.toml")


def test_trace_file(files):
    (files / "trace.csv").write_text("time_s\n0.0\n0.25 # a comment\n\n1.0\n")
    edit(files, "times_s = [0.0, 1.5]", 'file = "trace.csv"')
    sc, _ = load_scenario(files / "s.toml")
    assert sc.streams[2].workload == Trace((0.0, 0.25, 1.0))
    (files / "trace.csv").write_text("0.0\nsoon\n")
    with pytest.raises(SpecError) as err:
        load_scenario(files / "s.toml")
    assert err.value.path.endswith("trace.csv") and err.value.field == "line 2"


def test_write_file_leaves_no_temp_files(tmp_path):
    target = tmp_path / "out" / "r.json"
    write_file(target, dumps_json({"b": float("nan"), "a": 1}))
    assert target.read_text() == '{\n  "a": 1,\n  "b": null\n}\n'
    assert [p.name for p in target.parent.iterdir()] == ["r.json"]


# --- hostile input: every path ends in the one error ------------------------------------------------------------

FULL_SCENARIO = {
    "name": "full",
    "topology": "topo.toml",
    "duration_s": 10.0,
    "warmup_s": 1.0,
    "defaults": {
        "connect_timeout_s": 2.0,
        "timeout_s": 1.0,
        "service_time": {"dist": "gamma", "mean_s": 0.002, "shape": 2.0},
    },
    "pods": [
        {"name": "client", "node": "a"},
        {
            "name": "web-a",
            "node": "a",
            "labels": {"app": "web"},
            "service_time": {"dist": "lognormal", "mean_s": 0.01, "sigma": 1.0},
        },
        {
            "name": "web-b",
            "node": "b",
            "labels": {"app": "web"},
            "service_time": {"dist": "uniform", "low_s": 0.001, "high_s": 0.002},
        },
        {
            "name": "web-c",
            "node": "b",
            "labels": {"app": "web"},
            "service_time": {"dist": "empirical", "samples_s": [0.001, 0.002]},
        },
        {
            "name": "web-d",
            "node": "b",
            "labels": {"app": "web"},
            "service_time": {"dist": "constant", "value_s": 0.001},
        },
        {
            "name": "web-e",
            "node": "b",
            "labels": {"app": "web"},
            "service_time": {"dist": "exponential", "mean_s": 0.001},
        },
    ],
    "services": [
        {
            "name": "web",
            "selector": {"app": "web"},
            "sessionAffinity": "ClientIP",
            "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 60}},
        }
    ],
    "streams": [
        {
            "client": "client",
            "service": "web",
            "requests": 10,
            "start_s": 0.5,
            "connect_timeout_s": 1.0,
            "timeout_s": 1.0,
            "workload": {"kind": "poisson", "rate_rps": 5.0},
            "connections": {"max_requests": 3, "max_age_s": 30.0},
            "retries": {"attempts": 1, "base_s": 0.01, "max_s": 0.1},
        },
        {"client": "client", "service": "web", "requests": 5, "workload": {"kind": "constant", "rate_rps": 5.0}},
        {"client": "client", "service": "web", "requests": 5, "workload": {"kind": "closed_loop", "think_s": 0.1}},
        {"client": "client", "service": "web", "workload": {"kind": "trace", "times_s": [0.0, 1.5]}},
    ],
    "sync": {"lag_s": 1.0, "per_node": {"b": 2.0}},
    "timeline": [
        {"at_s": 2.0, "action": "terminate", "pod": "web-a", "grace_s": 5.0},
        {"at_s": 3.0, "action": "fail", "node": "b", "detect_s": 4.0},
    ],
}
FULL_TOPOLOGY = {
    "same_node_latency": 0.00001,
    "nodes": [{"name": "a", "cpu": 4.0, "labels": {"topology.kubernetes.io/zone": "z1"}}, {"name": "b", "cpu": 4.0}],
    "elements": [{"name": "sw", "kind": "switch"}],
    "links": [
        {"between": ["a", "sw"], "latency": 0.001},
        {"between": ["sw", "b"], "latency": {"dist": "exponential", "mean_s": 0.001}},
    ],
}


def _numbers(obj, where=""):
    """Every (field as errors name it, path) of a number in a table (array entries as [i])."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _numbers(v, f"{where}.{k}" if where else k)
    elif isinstance(obj, list):
        if obj and all(isinstance(v, float) for v in obj):
            yield where, where
        else:
            for i, v in enumerate(obj):
                yield from _numbers(v, f"{where}[{i}]")
    elif isinstance(obj, (int, float)) and not isinstance(obj, bool) and not where.endswith(("requests", "attempts")):
        yield where, where


def _set_field(table, field, value):
    import re

    parts = [p for p in re.split(r"\.|\[(\d+)\]", field) if p]
    node = table
    for p in parts[:-1]:
        node = node[int(p)] if isinstance(node, list) else node[p]
    last = parts[-1]
    if isinstance(node[last], list):
        node[last] = [node[last][0], value]
    else:
        node[last] = value


def _write_full(tmp_path, scenario, topology):
    from tests.test_fuzz import toml_text

    (tmp_path / "topo.toml").write_text(toml_text(topology))
    (tmp_path / "s.toml").write_text(toml_text(scenario))
    return tmp_path / "s.toml"


def test_the_full_scenario_parses(tmp_path):
    sc, _ = load_scenario(_write_full(tmp_path, FULL_SCENARIO, FULL_TOPOLOGY))
    assert len(sc.streams) == 4 and len(sc.timeline) == 2


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")], ids=["nan", "inf", "-inf"])
@pytest.mark.parametrize("in_topology", [False, True], ids=["scenario", "topology"])
def test_every_number_must_be_finite(tmp_path, bad, in_topology):
    import copy

    source = FULL_TOPOLOGY if in_topology else FULL_SCENARIO
    fields = [f for f, _ in _numbers(source)]
    assert len(fields) >= (5 if in_topology else 30)
    for field in fields:
        if field.endswith("max_age_s") and bad == float("inf"):
            continue  # a connection kept for ever: the one field where inf means something
        table = copy.deepcopy(source)
        _set_field(table, field, bad)
        path = _write_full(tmp_path, FULL_SCENARIO if in_topology else table, table if in_topology else FULL_TOPOLOGY)
        with pytest.raises(SpecError) as err:
            load_scenario(path)
        expected = str(tmp_path / ("topo.toml" if in_topology else "s.toml"))
        assert (err.value.path, err.value.field) == (expected, field), (field, str(err.value))
        words = "must be > 0" if field.endswith("max_age_s") and bad < 0 else "finite"  # -inf: below the minimum
        assert words in err.value.problem, (field, str(err.value))


def test_max_age_inf_means_for_ever(tmp_path):
    import copy

    table = copy.deepcopy(FULL_SCENARIO)
    table["streams"][0]["connections"]["max_age_s"] = float("inf")
    sc, _ = load_scenario(_write_full(tmp_path, table, FULL_TOPOLOGY))
    assert sc.streams[0].connections.max_age_s == float("inf")


def _one_line_error(call):
    with pytest.raises(SpecError) as err:
        call()
    assert "\n" not in str(err.value) and "\x00" not in str(err.value)
    return err.value


def test_files_that_are_not_regular_files_are_refused_at_once(files):
    import os

    os.mkfifo(files / "fifo.toml")
    for path in ("/dev/zero", "/dev/urandom", str(files / "fifo.toml")):
        edit(files, 'topology = "topo.toml"', f'topology = "{path}"')
        e = _one_line_error(lambda: load_scenario(files / "s.toml"))
        assert "not a regular file" in e.problem and e.path == path
        edit(files, f'topology = "{path}"', 'topology = "topo.toml"')


def test_run_files_and_kubernetes_objects_that_are_not_regular_files_are_refused_at_once(tmp_path):
    """``sim plot``/``sim report`` and ``sim routes``/``sim run`` from objects read through the same bounded
    reader: a FIFO is refused before a byte is read (reading it would wait for a writer for ever)."""
    import os

    from sim.io import load_run
    from sim.io.cluster.kubernetes import read_objects

    for name, read in (("run.json", load_run), ("cluster.yaml", lambda p: read_objects([p]))):
        os.mkfifo(tmp_path / name)
        for path in (str(tmp_path / name), "/dev/zero"):
            e = _one_line_error(lambda path=path, read=read: read(path))
            assert "not a regular file" in e.problem and e.path == path


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("loop.toml", "Too many levels of symbolic links"),
        ("x" * 300 + ".toml", "File name too long"),
        ("nul\x00.toml", "embedded null byte"),
        (".", "is a directory"),
    ],
)
def test_names_that_cannot_be_opened(files, name, problem):
    import os

    os.symlink("loop.toml", files / "loop.toml")
    e = _one_line_error(lambda: load_scenario(files / name))
    assert problem in e.problem


def test_a_file_over_the_size_cap(files, monkeypatch):
    from sim.io import typed

    monkeypatch.setattr(typed, "MAX_TOML_BYTES", 100)
    e = _one_line_error(lambda: load_scenario(files / "s.toml"))
    assert "may have at most 100" in e.problem


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("seed = " + "1" * 5000, "an integer of more than 4,300 digits"),
        ("seed = 99999999999999999999", "must be <= 9223372036854775807"),
        ("name = " + "[" * 1000 + "]" * 1000, "more than 32 deep"),
        ("name = " + "[" * 40 + "]" * 40, "more than 32 deep"),
        ('"a\\nb" = 1', "a\\nb: unknown key"),
        (b"name = '\xff'".decode("latin-1"), "not UTF-8"),
    ],
)
def test_hostile_toml(files, text, problem):
    data = text.encode("latin-1") if "\xff" in text else text.encode()
    rest = "" if text.startswith(("name", "seed")) else "\n"
    scenario = SCENARIO.replace("seed = 9\n", "") if text.startswith("seed") else SCENARIO.replace('name = "s"\n', "")
    (files / "s.toml").write_bytes(data + b"\n" + rest.encode() + scenario.encode())
    e = _one_line_error(lambda: load_scenario(files / "s.toml"))
    assert problem in str(e)


@pytest.mark.parametrize(
    ("trace", "problem"),
    [
        (b"0.0\nnan\n1.0\n", "must be a finite number"),
        (b"0.0\ninf\n", "must be a finite number"),
        (b"0.0\n\xff\xfe\n", "not UTF-8"),
    ],
)
def test_hostile_trace_files(files, trace, problem):
    (files / "trace.csv").write_bytes(trace)
    edit(files, "times_s = [0.0, 1.5]", 'file = "trace.csv"')
    e = _one_line_error(lambda: load_scenario(files / "s.toml"))
    assert problem in e.problem


@pytest.mark.parametrize(
    ("old", "new", "field"),
    [
        ("rate_rps = 5", "rate_rps = 1e-320", "streams[0].workload.rate_rps"),  # its gap would be inf
        ("rate_rps = 5", "rate_rps = 1e300", "streams[0].workload.rate_rps"),
        ("mean_s = 0.002, shape", "mean_s = 1e300, shape", "defaults.service_time.mean_s"),
        ("times_s = [0.0, 1.5]", "times_s = [0.0, 1e300]", "streams[2].workload.times_s"),
    ],
)
def test_numbers_beyond_float_range_for_sums_and_gaps(files, old, new, field):
    path = edit(files, old, new)
    e = _one_line_error(lambda: load_scenario(path))
    assert e.field == field


@pytest.mark.parametrize(
    ("field", "value", "words"),
    [
        ("defaults", {"service_time": {"dist": "exponentail", "mean_s": 0.001}}, "unknown distribution 'exponentail'"),
        ("streams", None, "unknown workload 'poison'"),
    ],
)
def test_an_unknown_registry_name_lists_the_known_ones_and_the_closest(field, value, words):
    """Table.kind: distributions and workloads are read by name from a registry; a misspelt name says which."""
    from sim.io import parse_scenario

    raw = {
        "topology": str(ROOT / "topologies" / "kind.toml"),
        "pods": [{"name": "c", "node": "kind-worker"}, {"name": "b", "node": "kind-worker", "labels": {"a": "b"}}],
        "services": [{"name": "s", "selector": {"a": "b"}}],
        "streams": [{"client": "c", "service": "s", "requests": 1, "workload": {"kind": "poison", "rate_rps": 1}}],
    }
    if field == "defaults":
        raw["defaults"] = value
        raw["streams"][0]["workload"] = {"kind": "poisson", "rate_rps": 1}
    with pytest.raises(SpecError) as e:
        parse_scenario(raw, ROOT / "x.toml")
    assert words in e.value.problem and "did you mean" in e.value.problem
