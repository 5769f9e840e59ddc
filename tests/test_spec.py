"""Experiment specs: paths into the scenario table, factors, overrides, and the one-line error for bad specs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from sim.cluster import TrafficDistribution, TrafficPolicy
from sim.errors import SpecError
from sim.experiment.spec import PathError, format_path, parse_path, resolve, set_path
from sim.io import load_experiment, parse_set
from tests.conftest import ROOT

TOPOLOGY = """
name = "two-zones"
same_node_latency = 0.00001
[[nodes]]
name = "a"
labels = { "topology.kubernetes.io/zone" = "z1" }
[[nodes]]
name = "b"
labels = { "topology.kubernetes.io/zone" = "z2" }
[[elements]]
name = "br"
kind = "bridge"
[[links]]
between = ["a", "br"]
latency = { dist = "exponential", mean_s = 0.0002 }
[[links]]
between = ["b", "br"]
latency = { dist = "exponential", mean_s = 0.0002 }
"""

SCENARIO = """
name = "pair"
topology = "topo.toml"
seed = 99
[defaults]
service_time = { dist = "exponential", mean_s = 0.0005 }
[[pods]]
name = "client"
node = "a"
[[pods]]
name = "svc-a"
node = "a"
labels = { app = "svc" }
[[pods]]
name = "svc-b"
node = "b"
labels = { app = "svc" }
[[services]]
name = "svc"
selector = { app = "svc" }
[[streams]]
client = "client"
service = "svc"
requests = 400
workload = { kind = "poisson", rate_rps = 200 }
"""

SPEC = """
[experiment]
name = "small"
scenario = "pair.toml"
replications = 3
root_seed = 11

[factors]
"services.svc.internalTrafficPolicy" = ["Cluster", "Local"]
"streams.0.workload.rate_rps" = [100, 400]
"""


def write_spec(directory: Path, spec: str = SPEC, scenario: str = SCENARIO) -> Path:
    """A spec, its scenario and topology in ``directory``; returns the spec's path."""
    (directory / "topo.toml").write_text(TOPOLOGY)
    (directory / "pair.toml").write_text(scenario)
    path = directory / "spec.toml"
    path.write_text(spec)
    return path


def sim(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sim", *args], capture_output=True, text=True, cwd=cwd, check=False)


# --- paths -------------------------------------------------------------------------------------------------------


def test_paths_split_on_dots_outside_quotes_and_round_trip():
    assert parse_path("streams.0.workload.rate_rps") == ("streams", "0", "workload", "rate_rps")
    quoted = 'pods.c.labels."topology.kubernetes.io/zone"'
    assert parse_path(quoted)[-1] == "topology.kubernetes.io/zone"
    assert format_path(parse_path(quoted)) == quoted
    for bad in ("", "a..b", "a.", '"x"y', 'a.""'):
        with pytest.raises(PathError):
            parse_path(bad)


def test_set_path_addresses_entries_by_name_then_index_and_creates_tables():
    table = {"services": [{"name": "api"}, {"name": "web"}], "streams": [{"workload": {"rate_rps": 1}}]}
    assert set_path(table, ("services", "web", "internalTrafficPolicy"), "Local") == "services[1].internalTrafficPolicy"
    assert set_path(table, ("streams", "0", "workload", "rate_rps"), 5) == "streams[0].workload.rate_rps"
    assert set_path(table, ("defaults", "concurrency"), 2) == "defaults.concurrency"
    assert table["services"][1]["internalTrafficPolicy"] == "Local"
    assert table["streams"][0]["workload"]["rate_rps"] == 5
    assert table["defaults"] == {"concurrency": 2}
    with pytest.raises(PathError, match="no entry 'db'"):
        set_path(table, ("services", "db", "port"), 80)
    with pytest.raises(PathError, match="not a table"):
        set_path(table, ("streams", "0", "workload", "rate_rps", "x"), 1)


def test_resolve_copies_the_base_and_unset_removes_a_field():
    base = {"services": [{"name": "api", "trafficDistribution": "PreferSameZone"}]}
    table, fields = resolve(base, [("services.api.trafficDistribution", {"unset": True})])
    assert table == {"services": [{"name": "api"}]}
    assert base["services"][0]["trafficDistribution"] == "PreferSameZone"
    assert fields == {"services.api.trafficDistribution": "services[0].trafficDistribution"}


def test_parse_set_reads_toml_values_and_bare_words():
    assert parse_set("streams.0.requests=500") == ("streams.0.requests", 500)
    assert parse_set("defaults.service_time={ dist = 'exponential', mean_s = 0.002 }")[1] == {
        "dist": "exponential",
        "mean_s": 0.002,
    }
    assert parse_set('name="x y"') == ("name", "x y")
    assert parse_set("services.svc.internalTrafficPolicy=Local")[1] == "Local"
    with pytest.raises(SpecError):
        parse_set("no-equals-sign")


# --- specs -------------------------------------------------------------------------------------------------------


def test_spec_expands_to_a_full_factorial_of_parsed_scenarios(tmp_path):
    exp = load_experiment(write_spec(tmp_path))
    assert exp.name == "small" and exp.replications == 3 and exp.root_seed == 11
    assert exp.factor_names == ["services.svc.internalTrafficPolicy", "streams.0.workload.rate_rps"]
    assert [dict(p.factors) for p in exp.design_points] == [
        {"services.svc.internalTrafficPolicy": "Cluster", "streams.0.workload.rate_rps": 100},
        {"services.svc.internalTrafficPolicy": "Cluster", "streams.0.workload.rate_rps": 400},
        {"services.svc.internalTrafficPolicy": "Local", "streams.0.workload.rate_rps": 100},
        {"services.svc.internalTrafficPolicy": "Local", "streams.0.workload.rate_rps": 400},
    ]
    local = exp.design_points[3].scenario
    assert local.service("svc").internal_traffic_policy == TrafficPolicy.LOCAL
    assert local.streams[0].workload.rate_rps == 400
    assert "seed" not in exp.design_points[0].table  # seeds come from root_seed
    assert exp.design_points[0].anchor == str(tmp_path / "pair.toml")
    assert set(exp.design_points[0].files) == {"topo.toml"}


def test_inline_scenario_linked_factors_unset_and_sets(tmp_path):
    inline = "\n".join(
        line.replace("[[", "[[scenario.").replace("[defaults]", "[scenario.defaults]") for line in SCENARIO.splitlines()
    ).replace('name = "pair"', '[scenario]\nname = "pair"')
    spec = f"""
[experiment]
replications = 2

[factors.policy]
levels = ["Cluster", "PreferSameZone", "Local"]
"services.svc.internalTrafficPolicy" = ["Cluster", "Cluster", "Local"]
"services.svc.trafficDistribution" = [{{ unset = true }}, "PreferSameZone", {{ unset = true }}]

[factors]
defaults.concurrency = [1, 2]

[plot]
x = "defaults.concurrency"
line = "policy"
labels = {{ "defaults.concurrency" = "workers per pod" }}
{inline}
"""
    path = tmp_path / "inline.toml"
    (tmp_path / "topo.toml").write_text(TOPOLOGY)
    path.write_text(spec)
    exp = load_experiment(path, {"streams.0.requests": 50, "pods.svc-b.node": "a"})
    assert exp.name == "inline" and exp.root_seed == 0
    assert exp.factor_names == ["policy", "defaults.concurrency"]
    assert exp.plot == {
        "x": "defaults.concurrency",
        "line": "policy",
        "labels": {"defaults.concurrency": "workers per pod"},
    }
    zone = exp.design_points[2].scenario
    assert exp.design_points[2].factors == {"policy": "PreferSameZone", "defaults.concurrency": 1}
    assert zone.service("svc").traffic_distribution == TrafficDistribution.PREFER_SAME_ZONE
    assert exp.design_points[0].scenario.service("svc").traffic_distribution is None
    assert exp.design_points[1].scenario.pod("svc-a").concurrency == 2
    assert all(p.scenario.streams[0].requests == 50 and p.scenario.pod("svc-b").node == "a" for p in exp.design_points)
    assert exp.sets == {"streams.0.requests": 50, "pods.svc-b.node": "a"}


def test_no_factors_is_one_design_point(tmp_path):
    exp = load_experiment(write_spec(tmp_path, SPEC.split("[factors]")[0]))
    assert len(exp.design_points) == 1 and exp.design_points[0].factors == {}


@pytest.mark.parametrize(
    ("factors", "field", "problem"),
    [
        (
            '"services.nope.internalTrafficPolicy" = ["Local"]',
            'factors."services.nope.internalTrafficPolicy"',
            "no entry 'nope'",
        ),
        ('"defaults.concurency" = [1, 2]', 'factors."defaults.concurency"', "unknown path 'defaults.concurency'"),
        ('"streams.0.workload.rate" = [1]', 'factors."streams.0.workload.rate"', "no field 'streams[0].workload.rate'"),
        ('"streams.3.requests" = [1]', 'factors."streams.3.requests"', "no entry '3'"),
        ('"name.first" = ["x"]', 'factors."name.first"', "not a table"),
        (
            '"services.svc.internalTrafficPolicy" = ["Nearby"]',
            'factors."services.svc.internalTrafficPolicy"',
            "unknown value 'Nearby'",
        ),
        ('"streams.0.requests" = [10, -1]', 'factors."streams.0.requests"', "must be >= 0"),
        ('"streams.0.requests" = []', 'factors."streams.0.requests"', "at least one level"),
        ('"streams.0.requests" = [5, 5]', 'factors."streams.0.requests"', "repeats a level"),
        ('"streams.0.requests" = 5', 'factors."streams.0.requests"', "must be an array"),
        ("seed = [1, 2]", "factors.seed", "column of the results table"),
        ('"defaults" = [{}]\n"defaults.concurrency" = [2]', "factors", "two factors set the same field"),
        ('[factors.x]\nlevels = [1, 2]\n"streams.0.requests" = [1]', 'factors.x."streams.0.requests"', "one per level"),
    ],
)
def test_bad_factor_names_the_spec_file_and_factor_key(tmp_path, factors, field, problem):
    path = write_spec(tmp_path, SPEC.split("[factors]")[0] + "[factors]\n" + factors + "\n")
    with pytest.raises(SpecError) as err:
        load_experiment(path)
    assert err.value.path == str(path)
    assert err.value.field == field
    assert problem in err.value.problem
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(
    ("spec", "field", "problem"),
    [
        ("[experiment]\nscenario = 'pair.toml'\n", "experiment.replications", "is required"),
        ("[experiment]\nscenario = 'pair.toml'\nreplications = 0\n", "experiment.replications", "must be >= 1"),
        ("[experiment]\nreplications = 2\n", "experiment.scenario", "is required"),
        ("[experiment]\nscenario = 'nope.toml'\nreplications = 2\n", "experiment.scenario", "no such file"),
        (
            "[experiment]\nscenario = 'pair.toml'\nreplications = 2\nrepetitions = 3\n",
            "experiment.repetitions",
            "unknown key",
        ),
        ("[experiment]\nscenario = 'pair.toml'\nreplications = 2\n[plot]\nx = 'load'\n", "plot.x", "names no factor"),
        ("[experiment]\nscenario = 'pair.toml'\nreplications = 2\n[extra]\n", "extra", "unknown key"),
    ],
)
def test_bad_spec_tables(tmp_path, spec, field, problem):
    path = write_spec(tmp_path, spec)
    with pytest.raises(SpecError) as err:
        load_experiment(path)
    assert (err.value.path, err.value.field) == (str(path), field)
    assert problem in err.value.problem


def test_bad_set_names_the_override(tmp_path):
    path = write_spec(tmp_path)
    with pytest.raises(SpecError) as err:
        load_experiment(path, {"defaults.concurency": 2})
    assert (err.value.path, err.value.field) == (str(path), "--set defaults.concurency")
    assert "unknown path" in err.value.problem
    with pytest.raises(SpecError) as err:
        load_experiment(path, {"streams.0.requests": "many"})
    assert err.value.field == "--set streams.0.requests" and "must be an integer" in err.value.problem
    with pytest.raises(SpecError) as err:
        load_experiment(path, {"streams..requests": 1})
    assert err.value.field == "--set streams..requests" and "malformed path" in err.value.problem
    with pytest.raises(SpecError, match="root_seed"):
        load_experiment(path, {"seed": 3})


def test_problem_in_the_base_scenario_names_its_file(tmp_path):
    path = write_spec(tmp_path, scenario=SCENARIO.replace('node = "b"', 'node = "c"'))
    with pytest.raises(SpecError) as err:
        load_experiment(path)
    assert (err.value.path, err.value.field) == (str(tmp_path / "pair.toml"), "pods[2].node")


def test_cli_bad_spec_exits_2_with_one_line(tmp_path):
    path = write_spec(tmp_path, SPEC.replace("services.svc.", "services.svx."))
    for args in (("sweep", str(path), "--serial"), ("validate", str(path))):
        done = sim(*args, cwd=tmp_path)
        assert done.returncode == 2, done.stderr
        assert done.stdout == "" and done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
        assert str(path) in done.stderr and 'factors."services.svx.internalTrafficPolicy"' in done.stderr
    done = sim("sweep", str(write_spec(tmp_path)), "--set", "defaults.concurency=2", "--serial", cwd=tmp_path)
    assert done.returncode == 2 and "--set defaults.concurency" in done.stderr and done.stderr.count("\n") == 1
    assert not (tmp_path / "results").exists()


def test_cli_validate_and_run_accept_a_spec(tmp_path):
    path = write_spec(tmp_path)
    done = sim("validate", str(path))
    assert done.returncode == 0 and "4 design points x 3 replications = 12 runs" in done.stdout
    done = sim("run", str(path), "--requests", "50", "--json")
    assert done.returncode == 0, done.stderr
    assert '"sent": 50' in done.stdout
