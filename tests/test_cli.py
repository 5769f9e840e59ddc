"""The command line a user expects: --version, flags checked with one-line errors, --set, -q/-v, warnings, output
paths checked before a run, resource guards, closed pipes and Ctrl-C, and the texts of the run summary."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest

import sim
from sim import guards
from sim.cli import main
from sim.engine import run
from sim.experiment import sweep as sweep_module
from sim.experiment.sweep import expand
from sim.io import dumps_json, load_experiment, load_scenario, write_file
from sim.rng import seed_from_record
from tests.conftest import DEMO, ROOT
from tests.test_spec import SPEC, write_spec


def sim_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """``sim ARGS`` in this process: exit code, stdout, stderr."""
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def one_error(code: int, out: str, err: str) -> str:
    """Assert the one error (exit 2, one line on stderr, nothing on stdout) and return its line."""
    assert code == 2, err
    assert out == ""
    assert err.startswith("sim: error: ") and err.count("\n") == 1, err
    return err


def demo_copy(tmp_path: Path, old: str = "", new: str = "", name: str = "demo.toml") -> Path:
    """The demo scenario in ``tmp_path`` (its topology next to it), with ``old`` replaced by ``new``."""
    (tmp_path / "kind.toml").write_text((ROOT / "topologies" / "kind.toml").read_text())
    text = DEMO.read_text().replace('"../topologies/kind.toml"', '"kind.toml"')
    if old:
        assert old in text, old
        text = text.replace(old, new)
    path = tmp_path / name
    path.write_text(text)
    return path


# --- version ---------------------------------------------------------------------------------------------------


def test_version_is_the_package_metadata_and_in_every_json(capsys, tmp_path):
    assert sim.__version__ == metadata.version("k8s-service-sim")
    code, out, _ = sim_cli(capsys, "--version")
    assert code == 0 and out.strip().endswith(sim.__version__)
    code, out, _ = sim_cli(capsys, "run", str(DEMO), "--requests", "20", "--json")
    assert code == 0 and json.loads(out)["version"] == sim.__version__
    spec = write_spec(tmp_path)
    code, _, err = sim_cli(capsys, "sweep", str(spec), "--serial", "--out", str(tmp_path / "r"), "-q")
    assert code == 0, err
    info = json.loads((tmp_path / "r" / "experiment.json").read_text())
    assert info["version"] == sim.__version__
    records = [json.loads(p.read_text()) for p in (tmp_path / "r" / "runs").glob("*.json")]
    assert records and all(r["version"] == sim.__version__ for r in records)


def test_a_new_version_is_a_new_run_key(tmp_path, monkeypatch):
    exp = load_experiment(write_spec(tmp_path))
    before = {r.key for r in expand(exp)}
    monkeypatch.setattr(sweep_module, "__version__", "99.0")
    after = {r.key for r in expand(exp)}
    assert not before & after  # after an upgrade a sweep into the same directory recomputes
    monkeypatch.undo()
    assert {r.key for r in expand(exp)} == before
    monkeypatch.setattr(sweep_module, "model_digest", lambda: "0123456789ab")
    assert not before & {r.key for r in expand(exp)}  # and after an engine change with the same version


def test_the_model_digest_follows_the_source_but_not_the_presentation(tmp_path, monkeypatch):
    import shutil

    from sim import version

    copy = tmp_path / "sim"
    shutil.copytree(ROOT / "sim", copy, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(version, "__file__", str(copy / "version.py"))

    def digest() -> str:
        version.model_digest.cache_clear()
        return version.model_digest()

    original = digest()
    (copy / "cli" / "text.py").write_text("# presentation only\n")
    (copy / "cli" / "more.py").write_text("# a new presentation module\n")
    assert digest() == original
    (copy / "engine" / "run.py").write_text((copy / "engine" / "run.py").read_text() + "\n# a change\n")
    assert digest() != original
    version.model_digest.cache_clear()


def test_python_dash_m_sim():
    done = subprocess.run([sys.executable, "-m", "sim", "--version"], capture_output=True, text=True, check=False)
    assert done.returncode == 0 and sim.__version__ in done.stdout


# --- flags -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("--seed", "abc"), "argument --seed: expected a whole number"),
        (("--seed", "-3"), "argument --seed: expected a whole number"),
        (("--requests", "many"), "argument --requests: expected a whole number >= 0"),
        (("--alpha", "2"), "argument --alpha: expected a significance level in (0, 1)"),
        (("--alpha", "nan"), "argument --alpha: expected a significance level"),
        (("--alpha", "-1"), "argument --alpha: expected a significance level"),
        (("--max-memory", "lots"), "argument --max-memory: expected a size"),
        (("--engine", "warp"), "argument --engine: invalid choice"),
    ],
)
def test_bad_flags_are_one_line_naming_the_flag(capsys, args, words):
    err = one_error(*sim_cli(capsys, "run", str(DEMO), *args))
    assert words in err and "--help" in err


def test_unknown_command_is_one_line(capsys):
    one_error(*sim_cli(capsys, "fly"))


@pytest.mark.parametrize("where", ["dir", "under_file", "proc"])
def test_out_is_checked_before_the_run(capsys, tmp_path, where):
    target = {"dir": tmp_path, "under_file": tmp_path / "f" / "x.json", "proc": Path("/proc/sim-out.json")}[where]
    (tmp_path / "f").write_text("a file")
    started = time.perf_counter()
    err = one_error(*sim_cli(capsys, "run", str(DEMO), "--out", str(target)))
    assert "--out" in err
    assert time.perf_counter() - started < 30  # refused up front (the demo's run would print first)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f"]  # nothing written


def test_out_is_not_the_input(capsys, tmp_path):
    demo = demo_copy(tmp_path)
    before = demo.read_text()
    assert "a file this command reads" in one_error(*sim_cli(capsys, "run", str(demo), "--out", str(demo)))
    assert demo.read_text() == before


def test_sweep_out_under_a_file_and_a_dotted_name(capsys, tmp_path, monkeypatch):
    spec = write_spec(tmp_path)
    (tmp_path / "f").write_text("a file")
    one_error(*sim_cli(capsys, "sweep", str(spec), "--serial", "--out", str(tmp_path / "f" / "r")))
    dots = write_spec(tmp_path, SPEC.replace('name = "small"', 'name = ".."'))
    monkeypatch.chdir(tmp_path)
    code, out, err = sim_cli(capsys, "sweep", str(dots), "--serial", "-q")
    assert code == 0, err
    assert "-> results/experiment" in out  # an experiment named ".." does not write into the working directory
    assert (tmp_path / "results" / "experiment" / "experiment.json").is_file()
    assert not (tmp_path / "experiment.json").exists()


def test_plot_out_is_checked_and_a_damaged_results_directory_is_one_line(capsys, tmp_path):
    one_error(*sim_cli(capsys, "plot", str(tmp_path / "nothing")))
    spec = write_spec(tmp_path)
    results = tmp_path / "r"
    assert sim_cli(capsys, "sweep", str(spec), "--serial", "--out", str(results), "-q")[0] == 0
    (tmp_path / "f").write_text("a file")
    one_error(*sim_cli(capsys, "plot", str(results), "--out", str(tmp_path / "f")))
    run_file = next((results / "runs").glob("*.json"))
    record = json.loads(run_file.read_text())
    record["metrics"]["services"]["svc"]["latency_s"] = "fast"
    run_file.write_text(json.dumps(record))
    err = one_error(*sim_cli(capsys, "plot", str(results)))
    assert run_file.name in err and "latency_s" in err
    del record["metrics"]["services"]["svc"]["hints"]  # a metric the figures do not draw, but the typed form has
    record["metrics"]["services"]["svc"]["latency_s"] = {"mean": 0.1, "p50": 0.1, "p99": 0.1}
    run_file.write_text(json.dumps(record))
    err = one_error(*sim_cli(capsys, "plot", str(results)))
    assert run_file.name in err and "services.svc.hints" in err
    run_file.write_text("{" * 100_000)
    assert run_file.name in one_error(*sim_cli(capsys, "plot", str(results)))
    (results / "experiment.json").write_text('{"factors": 3, "runs": []}')
    assert "factors" in one_error(*sim_cli(capsys, "plot", str(results)))


# --- --set -----------------------------------------------------------------------------------------------------


def test_run_set_overrides_a_scenario_field(capsys):
    code, out, err = sim_cli(
        capsys, "run", str(DEMO), "--requests", "30", "--json", "--set", "services.echo-2.internalTrafficPolicy=Cluster"
    )
    assert code == 0, err
    echo2 = json.loads(out)["services"]["echo-2"]
    assert set(echo2["by_node"]) == {"kind-worker", "kind-worker2"}  # Cluster now: both nodes answer


def test_all_sets_are_applied_together_before_validation(capsys, tmp_path):
    demo = demo_copy(tmp_path)
    args = ("--set", "warmup_s=0.2", "--set", "duration_s=1")
    code, _, err = sim_cli(capsys, "validate", str(demo), *args)
    assert code == 0, err  # warmup_s alone would be past the (absent) horizon; together they are fine
    spec = write_spec(tmp_path)
    code, _out, err = sim_cli(capsys, "validate", str(spec), "--set", "warmup_s=0.2", "--set", "duration_s=1")
    assert code == 0, err
    err = one_error(*sim_cli(capsys, "validate", str(spec), "--set", "warmup_s=2", "--set", "duration_s=1"))
    assert "--set warmup_s" in err and "below duration_s" in err


def test_set_replications_and_root_seed_of_a_spec(capsys, tmp_path):
    spec = write_spec(tmp_path)
    code, out, _ = sim_cli(capsys, "validate", str(spec), "--set", "replications=5", "--set", "root_seed=2")
    assert code == 0 and "4 design points x 5 replications = 20 runs" in out
    assert load_experiment(spec, {"replications": 5}).replications == 5
    assert load_experiment(spec, {"experiment.root_seed": 8}).root_seed == 8
    err = one_error(*sim_cli(capsys, "validate", str(spec), "--set", "replications=0"))
    assert "--set replications: must be >= 1" in err


def test_did_you_mean_for_unknown_keys_and_values(capsys, tmp_path):
    demo = demo_copy(tmp_path, 'internalTrafficPolicy = "Local"', 'internalTraficPolicy = "Local"')
    err = one_error(*sim_cli(capsys, "validate", str(demo)))
    assert "services[1].internalTraficPolicy: unknown key; did you mean 'internalTrafficPolicy'?" in err
    demo = demo_copy(tmp_path, 'internalTrafficPolicy = "Local"', 'internalTrafficPolicy = "local"')
    err = one_error(*sim_cli(capsys, "validate", str(demo)))
    assert "unknown value 'local'; expected one of ['Cluster', 'Local']; did you mean 'Local'?" in err
    err = one_error(*sim_cli(capsys, "validate", str(DEMO), "--set", "defaults.concurency=2"))
    assert "did you mean 'concurrency'?" in err


# --- notes, warnings, -q and -v --------------------------------------------------------------------------------


def test_warnings_for_a_selector_matching_nothing_and_a_local_service_without_a_local_endpoint(capsys, tmp_path):
    demo = demo_copy(tmp_path, 'selector = { app = "echo-1" }', 'selector = { app = "echo-one" }')
    code, _, err = sim_cli(capsys, "validate", str(demo))
    assert code == 0
    assert "sim: warning: " in err and "Service 'echo-1' selects no pod (app=echo-one)" in err
    demo = demo_copy(
        tmp_path, 'name = "echo-2-kind-worker"\nnode = "kind-worker"', 'name = "echo-2-x"\nnode = "kind-worker2"'
    )
    code, _out, err = sim_cli(capsys, "validate", str(demo))
    assert code == 0
    assert "internalTrafficPolicy=Local and has no ready endpoint on node 'kind-worker' of client 'client'" in err
    assert sim_cli(capsys, "validate", str(demo), "-q")[2] == ""  # -q: errors only
    assert sim_cli(capsys, "validate", str(DEMO))[2] == ""  # the demo is as meant


def test_quiet_and_verbose(capsys):
    code, _, err = sim_cli(capsys, "run", str(DEMO), "--requests", "20", "--engine", "auto", "-v")
    assert code == 0 and "engine auto -> des" in err and "estimate: ~40 requests" in err and "simulated 40" in err
    code, _, err = sim_cli(capsys, "-q", "run", str(DEMO), "--requests", "20", "--engine", "auto")
    assert code == 0 and err == ""


def test_run_on_a_spec_says_which_design_point(capsys, tmp_path):
    spec = write_spec(tmp_path)
    code, _, err = sim_cli(capsys, "run", str(spec), "--requests", "20", "--json")
    assert code == 0
    assert "running design point 0 of 4 (services.svc.internalTrafficPolicy='Cluster'" in err
    code, _out, err = sim_cli(capsys, "run", str(spec), "--requests", "20", "--json", "--point", "3")
    assert code == 0 and "design point 3 of 4" in err and "'Local'" in err
    assert "--point" in one_error(*sim_cli(capsys, "run", str(spec), "--point", "4"))


# --- the run summary's texts -----------------------------------------------------------------------------------


def test_validate_says_1_pod_not_1_pods(capsys, tmp_path):
    topo = (ROOT / "topologies" / "kind.toml").read_text()
    (tmp_path / "kind.toml").write_text(topo)
    (tmp_path / "one.toml").write_text(
        'topology = "kind.toml"\n[[pods]]\nname = "c"\nnode = "kind-worker"\nlabels = { app = "c" }\n'
        '[[services]]\nname = "s"\nselector = { app = "c" }\n'
        '[[streams]]\nclient = "c"\nservice = "s"\nrequests = 5\nworkload = { kind = "closed_loop" }\n'
    )
    code, out, _ = sim_cli(capsys, "validate", str(tmp_path / "one.toml"))
    assert code == 0 and "(1 pod, 1 service, 1 stream;" in out


def test_no_endpoint_verdict_and_hints(capsys, tmp_path):
    demo = demo_copy(
        tmp_path,
        'selector = { app = "echo-1" }\ninternalTrafficPolicy = "Cluster"',
        'selector = { app = "none" }\ninternalTrafficPolicy = "Cluster"\ntrafficDistribution = "PreferSameZone"',
    )
    code, out, err = sim_cli(capsys, "run", str(demo), "--requests", "20")
    assert code == 0, err
    block = out.split("Service echo-1")[1].split("Service echo-2")[0]
    assert "verdict: no eligible endpoint: no request could be routed; nothing to test" in block
    assert "one eligible endpoint" not in block
    assert "topology hints: none: the Service has no endpoints" in block
    assert "topology hints: written" not in block


def test_the_exact_binomial_test_is_not_printed_as_chi_square(capsys):
    # 3 requests over 2 endpoints: expected 1.5 each, under 5: the exact binomial test decides
    code, out, _ = sim_cli(capsys, "run", str(DEMO), "--requests", "3")
    assert code == 0
    block = out.split("Service echo-1")[1].split("Service echo-2")[0]
    assert "exact binomial test: statistic" in block
    assert "  chi-square " not in block
    assert "  chi-square 0.000  dof 0" in out.split("Service echo-2")[1]  # one endpoint: as before


# --- resource guards -------------------------------------------------------------------------------------------


def test_a_billion_requests_are_refused_with_the_estimate(capsys, tmp_path):
    demo = demo_copy(tmp_path, "requests = 10000", "requests = 1000000000")
    for command in ("validate", "run"):
        err = one_error(*sim_cli(capsys, command, str(demo), "--max-memory", "16G"))
        assert "the run needs about" in err and "GiB of memory" in err and "--max-memory" in err
    code, out, _ = sim_cli(capsys, "validate", str(DEMO))
    assert code == 0 and "estimate: ~20,000 requests" in out


def test_max_memory_allows_what_the_default_refuses(capsys, tmp_path):
    demo = demo_copy(tmp_path, "requests = 10000", "requests = 100000")
    assert "--max-memory" in one_error(*sim_cli(capsys, "validate", str(demo), "--max-memory", "20M"))
    assert sim_cli(capsys, "validate", str(demo), "--max-memory", "1G")[0] == 0


def test_requests_1e29_through_set_is_refused_fast(capsys):
    started = time.perf_counter()
    for value in ("1e29", "100000000000000000000000000000", "9000000000000000000"):
        one_error(*sim_cli(capsys, "run", str(DEMO), "--set", f"streams.0.requests={value}"))
    one_error(*sim_cli(capsys, "run", str(DEMO), "--requests", "9000000000000000000"))
    assert time.perf_counter() - started < 60  # no hang (a generous bound, not a timing assert on speed)


def test_a_huge_factorial_is_refused_before_expansion(capsys, tmp_path):
    factors = "".join(f'"pods.svc-a.labels.k{i}" = {[str(v) for v in range(10)]}\n' for i in range(10))
    spec = write_spec(tmp_path, SPEC.split("[factors]")[0] + "[factors]\n" + factors)
    started = time.perf_counter()
    err = one_error(*sim_cli(capsys, "validate", str(spec)))
    assert "10,000,000,000 design points" in err
    assert time.perf_counter() - started < 60


def test_a_topology_too_big_for_the_limit_is_refused_before_its_route_tables(capsys, tmp_path):
    nodes = "".join(f'[[nodes]]\nname = "n{i}"\n' for i in range(20_000))
    (tmp_path / "big.toml").write_text(nodes)
    (tmp_path / "s.toml").write_text(
        'topology = "big.toml"\n[[pods]]\nname = "c"\nnode = "n0"\n[[services]]\nname = "s"\nselector = { a = "b" }\n'
    )
    err = one_error(*sim_cli(capsys, "validate", str(tmp_path / "s.toml"), "--max-memory", "2G"))
    assert "20,000 nodes and network elements need about 4.6 GiB" in err and "--max-memory" in err


def test_a_closed_loop_that_never_waits_is_refused(capsys, tmp_path):
    demo = demo_copy(tmp_path, "requests = 10000\nworkload", "workload")
    demo.write_text(
        demo.read_text()
        .replace('service_time = { dist = "exponential", mean_s = 0.0002 }', "service_time = 0")
        .replace("seed = 20261126", "seed = 1\nduration_s = 10")
    )
    code, out, _ = sim_cli(capsys, "validate", str(demo))  # the network still takes time: it ends
    assert code == 0 and "estimate: ~500,002 requests" in out  # 2 streams x (10 s / a 2 x 20 us trip, + 1)
    topology = tmp_path / "kind.toml"
    topology.write_text(
        topology.read_text()
        .replace('{ dist = "exponential", mean_s = 0.00002 }', "0")
        .replace('{ dist = "exponential", mean_s = 0.00005 }', "0")
    )
    assert "sends without end" in one_error(*sim_cli(capsys, "validate", str(demo)))


def test_memory_limit_defaults_to_a_share_of_this_machine(monkeypatch):
    monkeypatch.delenv("SIM_MAX_MEMORY", raising=False)
    total = guards.machine_memory()
    limit, source = guards.memory_limit()
    if total is not None:
        assert limit == int(total * guards.MEMORY_FRACTION) and "this machine" in source
    monkeypatch.setenv("SIM_MAX_MEMORY", "3G")
    assert guards.memory_limit() == (3 << 30, "SIM_MAX_MEMORY")


# --- seeds -----------------------------------------------------------------------------------------------------


def test_a_run_from_a_seed_sequence_is_redone_from_its_record():
    scenario, _ = load_scenario(DEMO, {"requests": 300})
    seed = np.random.SeedSequence(5, spawn_key=(1,))
    first = run(scenario, seed)
    assert first.seed == {"entropy": 5, "spawn_key": [1], "pool_size": 4}
    record = json.loads(dumps_json({"seed": first.seed}))["seed"]  # as a JSON record holds it
    again = run(scenario, seed_from_record(record))
    for name, column in first.columns.items():
        assert column.tobytes() == again.columns[name].tobytes(), name
    plain = run(scenario, 5)  # what the record used to say: another run
    assert plain.columns["t_sent"].tobytes() != first.columns["t_sent"].tobytes()


# --- files -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_results_files_honour_the_umask(tmp_path, umask):
    old = os.umask(umask)
    try:
        write_file(tmp_path / "r.json", "{}\n")
    finally:
        os.umask(old)
    assert (tmp_path / "r.json").stat().st_mode & 0o777 == 0o666 & ~umask


def test_json_never_holds_nan_or_infinity():
    text = dumps_json({"a": float("inf"), "b": [float("-inf"), float("nan")], "c": 1.5})
    assert json.loads(text, parse_constant=lambda c: pytest.fail(f"non-JSON constant {c}")) == {
        "a": None,
        "b": [None, None],
        "c": 1.5,
    }


# --- pipes and Ctrl-C ------------------------------------------------------------------------------------------


def test_a_closed_pipe_ends_quietly():
    proc = subprocess.Popen(
        [sys.executable, "-m", "sim", "run", str(DEMO), "--requests", "200"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # like `| head` that has read what it wanted before sim writes
    err = proc.stderr.read().decode()
    proc.stderr.close()
    assert proc.wait(timeout=120) == 141
    assert "Traceback" not in err and "Exception" not in err, err


def test_ctrl_c_is_one_line_and_exit_130():
    proc = subprocess.Popen(
        [sys.executable, "-m", "sim", "run", str(DEMO), "--requests", "5000000", "--max-memory", "8G", "-v"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    line = proc.stderr.readline()  # "sim: estimate: ...", printed just before the simulation starts
    assert "estimate" in line, line
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130
    assert err == "sim: interrupted\n" and out == ""


def test_license_and_citation():
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["license"] == "Apache-2.0"
    assert "Apache License" in (ROOT / "LICENSE").read_text() and "Version 2.0" in (ROOT / "LICENSE").read_text()
    citation = (ROOT / "CITATION.cff").read_text()
    assert "cff-version: 1.2.0" in citation and "license: Apache-2.0" in citation
    assert f"version: {project['version']}\n" in citation  # one version: the package's


def test_a_sweep_counts_the_runs_it_holds_at_once(capsys, tmp_path):
    spec = write_spec(tmp_path)
    limit = str(guards.BASE_BYTES + (3 << 20))  # one run of 10,000 requests fits (~1.8 MiB), two do not
    args = (
        "sweep",
        str(spec),
        "--set",
        "streams.0.requests=10000",
        "--max-memory",
        limit,
        "--out",
        str(tmp_path / "r"),
    )
    err = one_error(*sim_cli(capsys, *args, "--workers", "2"))
    assert "x 2 runs at once" in err and "--max-memory" in err
    assert not (tmp_path / "r").exists()
    err = one_error(*sim_cli(capsys, "validate", str(spec), "--set", "replications=1000000"))
    assert "at most 100,000 design points and 1,000,000 runs" in err


def test_estimates_bound_what_a_run_makes():
    from sim.workload import ClosedLoop, Poisson
    from tests.conftest import two_node_scenario

    for scenario in (
        two_node_scenario(workload=Poisson(200.0), requests=None, duration_s=5.0),  # open loop to a horizon
        two_node_scenario(workload=ClosedLoop(), requests=None, duration_s=0.5),  # closed loop to a horizon
        load_scenario(DEMO, {"requests": 300})[0],  # fixed counts: exact
    ):
        est = guards.estimate(scenario)
        result = run(scenario, 1)
        assert len(result) <= est.requests
        assert sum(c.nbytes for c in result.columns.values()) <= est.records_bytes
    assert guards.estimate(load_scenario(DEMO, {"requests": 300})[0]).requests == 600


def test_quiet_silences_the_notes_of_reading_cluster_objects(capsys, tmp_path):
    """``-q`` prints errors only: the notes on Pending pods and headless Services go too."""
    dump = str(ROOT / "tests" / "data" / "k8s" / "kind_dump.yaml")
    code, _, err = sim_cli(capsys, "import", dump, "-o", str(tmp_path / "a.toml"))
    assert code == 0 and "sim: note: Pod default/stuck: Pending" in err and "headless" in err
    code, _, err = sim_cli(capsys, "-q", "import", dump, "-o", str(tmp_path / "b.toml"))
    assert code == 0 and err == ""
