"""File formats: what parses into what, and the one-line error for each kind of bad input."""

from __future__ import annotations

from pathlib import Path

import pytest

from sim.cluster import TrafficPolicy
from sim.distributions import Constant, Exponential, Gamma, LogNormal
from sim.errors import SpecError
from sim.io import dumps_json, load_scenario, load_topology, write_atomic
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


def test_write_atomic_leaves_no_temp_files(tmp_path):
    target = tmp_path / "out" / "r.json"
    write_atomic(target, dumps_json({"b": float("nan"), "a": 1}))
    assert target.read_text() == '{\n  "a": 1,\n  "b": null\n}\n'
    assert [p.name for p in target.parent.iterdir()] == ["r.json"]
