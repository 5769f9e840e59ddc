"""Sweeps: expansion, seeds and common random numbers, records, resuming, failures, and a crash mid-sweep."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace

import numpy as np
import pytest

from sim.engine import run as simulate
from sim.errors import SpecError
from sim.experiment.analysis import run_metrics
from sim.experiment.results import MemoryStore
from sim.experiment.sweep import expand, replication_seed, sweep
from sim.io import ResultDir, dumps_json, load_experiment, load_results, parse_scenario
from sim.io.store import STALE_TMP_S
from sim.plan import compile_plan
from tests.conftest import ROOT
from tests.test_spec import SCENARIO, SPEC, write_spec

FACTORS = ["services.svc.internalTrafficPolicy", "streams.0.workload.rate_rps"]


def test_expand_is_factorial_times_replications_with_seeds_shared_across_design_points(tmp_path):
    exp = load_experiment(write_spec(tmp_path))
    runs = expand(exp)
    assert len(runs) == 4 * 3
    assert [(r.replication, r.point.index) for r in runs[:5]] == [(0, 0), (0, 1), (0, 2), (0, 3), (1, 0)]
    seeds = {r.replication: {x.seed for x in runs if x.replication == r.replication} for r in runs}
    assert all(len(s) == 1 for s in seeds.values())  # one seed per replication, whatever the design point
    assert len({next(iter(s)) for s in seeds.values()}) == 3  # and replications differ
    assert seeds[1] == {replication_seed(11, 1)}
    assert len({r.key for r in runs}) == len(runs)
    assert [r.key for r in expand(load_experiment(write_spec(tmp_path)))] == [r.key for r in runs]  # stable


def test_run_key_follows_the_files_a_scenario_names(tmp_path):
    path = write_spec(tmp_path)
    before = [r.key for r in expand(load_experiment(path))]
    topo = tmp_path / "topo.toml"
    topo.write_text(topo.read_text().replace("mean_s = 0.0002", "mean_s = 0.0003"))
    after = [r.key for r in expand(load_experiment(path))]
    assert not set(before) & set(after)


def test_policies_see_identical_arrivals_under_common_random_numbers(tmp_path):
    exp = load_experiment(write_spec(tmp_path))
    by_point = {(r.point.factors[FACTORS[0]], r.point.factors[FACTORS[1]], r.replication): r for r in expand(exp)}
    for rate in (100, 400):
        cluster, local = by_point["Cluster", rate, 1], by_point["Local", rate, 1]
        a = simulate(cluster.point.scenario, cluster.seed).columns
        b = simulate(local.point.scenario, local.seed).columns
        assert np.array_equal(a["t_sent"], b["t_sent"])
        assert not np.array_equal(a["endpoint_node"], b["endpoint_node"])  # and yet they routed differently
    other = by_point["Cluster", 100, 2]
    assert not np.array_equal(
        simulate(other.point.scenario, other.seed).columns["t_sent"],
        simulate(by_point["Cluster", 100, 1].point.scenario, by_point["Cluster", 100, 1].seed).columns["t_sent"],
    )


def test_sweep_writes_records_summary_and_reruns_nothing(tmp_path):
    exp = load_experiment(write_spec(tmp_path))
    out = tmp_path / "results"
    first = sweep(exp, ResultDir(out))
    assert (first.total, first.computed, first.reused, first.failed) == (12, 12, 0, 0)
    assert first.report() == "computed 12, reused 0"
    files = sorted((out / "runs").glob("*.json"))
    assert len(files) == 12
    rec = json.loads(files[0].read_text())
    assert rec["status"] == "ok" and rec["seed"] == replication_seed(11, rec["replication"])
    assert set(rec["factors"]) == set(FACTORS)
    svc = rec["metrics"]["services"]["svc"]
    assert {"latency_s", "cross_node_fraction", "cross_zone_fraction", "by_client_node", "latency_histogram"} <= set(
        svc
    )
    assert len(files[0].read_bytes()) < 20_000  # small files

    rows = list(csv.DictReader((out / "summary.csv").read_text().splitlines()))
    assert len(rows) == 12  # one row per run x Service
    assert {"replication", "seed", "design_point", "service", "latency_p99_s", *FACTORS} <= set(rows[0])
    assert {(r["replication"], r["seed"]) for r in rows} == {(str(i), str(replication_seed(11, i))) for i in range(3)}
    assert list(first.summary.columns) == list(rows[0])

    again = sweep(exp, ResultDir(out))
    assert again.report() == "computed 0, reused 12"
    assert [json.dumps(r, sort_keys=True) for r in again.records] == [
        json.dumps(json.loads(dumps_json(r)), sort_keys=True) for r in first.records
    ]
    info, records = load_results(out)
    assert info["name"] == "small" and len(info["runs"]) == 12 and len(records) == 12


def test_a_record_reruns_to_the_same_metrics(tmp_path):
    exp = load_experiment(write_spec(tmp_path))
    rec = sweep(exp, ResultDir(tmp_path / "r")).records[5]
    scenario, _ = parse_scenario(rec["scenario"], rec["scenario_path"])
    again = run_metrics(simulate(scenario, rec["seed"]))
    assert json.loads(dumps_json(again)) == json.loads(dumps_json(rec["metrics"]))


def test_changed_levels_compute_only_new_runs_and_relabel_old_ones(tmp_path):
    path = write_spec(tmp_path)
    store = MemoryStore()
    sweep(load_experiment(path), store)
    path.write_text(SPEC.replace("[100, 400]", "[100, 400, 800]"))
    second = sweep(load_experiment(path), store)
    assert second.report() == "computed 6, reused 12"
    path.write_text(SPEC.replace('name = "small"', 'name = "renamed"'))
    third = sweep(load_experiment(path), store)
    assert third.report() == "computed 0, reused 12"
    assert {r["experiment"] for r in third.records} == {"renamed"}
    assert store.load(third.records[0]["key"])["experiment"] == "renamed"


def test_a_failed_run_is_recorded_and_the_sweep_goes_on(tmp_path):
    exp = load_experiment(write_spec(tmp_path))
    broken = replace(exp.design_points[1], scenario=None)  # the engine will raise on it
    exp = replace(exp, design_points=(exp.design_points[0], broken, *exp.design_points[2:]))
    out = tmp_path / "results"
    result = sweep(exp, ResultDir(out))
    assert (result.computed, result.failed, result.stopped) == (12, 3, False)
    failed = [r for r in result.records if r["status"] == "error"]
    assert {r["design_point"] for r in failed} == {1}
    assert "AttributeError" in failed[0]["error"] and "Traceback" in failed[0]["traceback"]
    assert failed[0]["metrics"] is None
    rows = list(csv.DictReader((out / "summary.csv").read_text().splitlines()))
    assert sum(r["status"] == "error" for r in rows) == 3 and all(r["error"] for r in rows if r["status"] == "error")
    # failed runs are tried again; finished ones are not
    assert sweep(exp, ResultDir(out)).report() == "computed 3, reused 9, failed 3"

    stopped = sweep(exp, MemoryStore(), fail_fast=True)
    assert (stopped.computed, stopped.failed, stopped.stopped) == (2, 1, True)
    assert "stopped at the first failure" in stopped.report()


@pytest.mark.slow
def test_sigkill_mid_sweep_then_rerun_computes_only_the_missing_runs(tmp_path):
    """Kill a sweep (its whole process group) with SIGKILL mid-way: no result file is partial, and a rerun
    computes exactly the runs that have no file. Records are written by the sweep's own process whatever the
    executor, so the serial one (quickest to start) stands for all."""
    spec = write_spec(tmp_path, SPEC.replace("replications = 3", "replications = 5"))
    out = tmp_path / "results"
    runs = out / "runs"
    cmd = [sys.executable, "-m", "sim", "sweep", str(spec), "--out", str(out), "--set", "streams.0.requests=8000"]
    proc = subprocess.Popen(
        [*cmd, "--serial"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True
    )
    deadline = time.monotonic() + 120
    try:
        while len(list(runs.glob("*.json"))) < 3:
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the sweep wrote no results in time"
            time.sleep(0.01)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
    assert proc.returncode == -signal.SIGKILL

    done_before = {p.name: (p.stat().st_mtime_ns, p.read_text()) for p in runs.glob("*.json")}
    for text in (t for _, t in done_before.values()):
        assert json.loads(text)["status"] == "ok"  # every result file is whole
    finished = len(done_before)
    assert 3 <= finished < 20, f"{finished} of 20 runs finished before the kill; expected the kill mid-way"

    left = runs / f".{next(iter(done_before))}.killed.tmp"  # what a kill inside write_atomic leaves
    left.write_text("{")
    os.utime(left, (time.time() - 60, time.time() - 60))
    rerun = subprocess.run([*cmd, "--serial"], cwd=ROOT, capture_output=True, text=True, check=False)
    assert rerun.returncode == 0, rerun.stderr
    assert f"computed {20 - finished}, reused {finished}" in rerun.stdout
    assert not list(runs.glob(".*.tmp")) and not list(out.glob(".*.tmp"))  # the resume removed the stale file
    after = {p.name: (p.stat().st_mtime_ns, p.read_text()) for p in runs.glob("*.json")}
    assert len(after) == 20
    assert all(after[name] == before for name, before in done_before.items())  # finished runs were not redone
    assert all(json.loads(text)["status"] == "ok" for _, text in after.values())


def test_only_stale_temporary_files_are_removed(tmp_path):
    """A live writer's temporary file (younger than STALE_TMP_S) stays; a killed one's goes."""
    store = ResultDir(tmp_path)
    (tmp_path / "runs").mkdir()
    old, fresh = tmp_path / "runs" / ".a.json.x.tmp", tmp_path / ".experiment.json.y.tmp"
    for f in (old, fresh):
        f.write_text("")
    now = time.time()
    os.utime(old, (now - STALE_TMP_S - 1, now - STALE_TMP_S - 1))
    assert store.remove_stale_temporaries(now) == [old]
    assert fresh.exists() and not old.exists()


def test_a_resume_right_after_a_kill_removes_its_temporary_file(tmp_path):
    """A temporary file only 1 s old when the resume starts (too young to remove then) is gone after it: it is
    older than the sweep that finished."""
    exp = load_experiment(write_spec(tmp_path, SPEC.replace("replications = 3", "replications = 1")))
    out = tmp_path / "results"
    (out / "runs").mkdir(parents=True)
    left = out / "runs" / ".abc.json.killed.tmp"
    left.write_text("{")
    os.utime(left, (time.time() - 1, time.time() - 1))
    sweep(exp, ResultDir(out), progress=False)
    assert not left.exists() and not list(out.rglob("*.tmp"))


# --- engines: des, fast, auto ------------------------------------------------------------------------------------

ENGINE_SPEC = """
[experiment]
name = "engines"
scenario = "pair.toml"
replications = 2
root_seed = 5
engine = "auto"

[factors]
"streams.0.timeout_s" = [{ unset = true }, 5.0]
"streams.0.workload.rate_rps" = [100, 400]
"""


def test_engine_auto_runs_the_fast_path_where_it_is_exact_and_says_which(tmp_path):
    exp = load_experiment(write_spec(tmp_path, ENGINE_SPEC))
    assert exp.engine == "auto" and exp.describe()["engine"] == "auto"
    out = tmp_path / "results"
    result = sweep(exp, ResultDir(out))
    by_point = {r["design_point"]: r for r in result.records}
    for rec in result.records:
        timeout = rec["factors"]["streams.0.timeout_s"]
        assert rec["engine"] == ("des" if timeout == 5.0 else "fast")
        if rec["engine"] == "des":
            assert "request timeout" in rec["fast_path_problem"]
        else:
            assert rec["fast_path_problem"] is None
    assert {r["engine"] for r in by_point.values()} == {"des", "fast"}
    assert result.report() == "computed 8, reused 0 (engine auto: 4 fast path, 4 DES)"
    with (out / "summary.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert {(r["design_point"], r["engine"]) for r in rows} == {(str(k), v["engine"]) for k, v in by_point.items()}
    # the DES runs keep the keys they have under engine des, so a des sweep reuses them; the fast runs do not
    des = sweep(load_experiment(write_spec(tmp_path, ENGINE_SPEC.replace('"auto"', '"des"'))), ResultDir(out))
    assert (des.computed, des.reused) == (4, 4) and des.report() == "computed 4, reused 4"
    again = sweep(load_experiment(write_spec(tmp_path, ENGINE_SPEC)), ResultDir(out))
    assert again.report() == "computed 0, reused 8 (engine auto: 4 fast path, 4 DES)"


def test_engine_fast_is_refused_where_it_is_not_exact_naming_the_design_point(tmp_path):
    path = write_spec(tmp_path, ENGINE_SPEC.replace('"auto"', '"fast"'))
    with pytest.raises(SpecError, match=r"experiment\.engine: fast: the fast path is not exact for design point 2: "):
        load_experiment(path)
    with pytest.raises(SpecError, match=r"^--engine: fast: "):
        load_experiment(write_spec(tmp_path, ENGINE_SPEC), engine="fast")
    bad = write_spec(tmp_path, ENGINE_SPEC.replace('"auto"', '"fastest"'))
    with pytest.raises(SpecError, match=r"experiment\.engine: unknown value 'fastest'; expected one of"):
        load_experiment(bad)
    exact = ENGINE_SPEC.replace('"auto"', '"fast"').replace('"streams.0.timeout_s" = [{ unset = true }, 5.0]\n', "")
    exact = write_spec(tmp_path, exact)
    assert {r.engine for r in expand(load_experiment(exact))} == {"fast"}


def test_sweep_command_takes_engine_and_prints_the_counts(tmp_path):
    path = write_spec(tmp_path, ENGINE_SPEC.replace('engine = "auto"\n', ""))
    done = subprocess.run(
        [sys.executable, "-m", "sim", "sweep", str(path), "--serial", "--engine", "auto", "--out", str(tmp_path / "r")],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "computed 8, reused 0 (engine auto: 4 fast path, 4 DES) in " in done.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "sim", "sweep", str(path), "--serial", "--engine", "fast", "--out", str(tmp_path / "f")],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    assert bad.returncode == 2 and bad.stderr.startswith("sim: error: --engine: fast: the fast path is not exact")
    assert "Traceback" not in bad.stderr and not (tmp_path / "f").exists()


# The equivalence of engines over a sweep, as tests/test_fastpath.py derives it for single runs: the DES at R
# replications, the fast path at 4R others (another root seed); per design point and Service, chi-square
# homogeneity of the pooled per-endpoint counts (p > 0.01) and the fast path's mean over replications of the mean
# and p99 latency inside the DES replications' 99% t interval. Requests the seeds fix (sent per Service) and picks
# no draw decides (round-robin) are the same run for run.
EQUIVALENCE_SPEC = """
[experiment]
name = "equivalence"
scenario = "pair.toml"
replications = {replications}
root_seed = {root_seed}
engine = "{engine}"

[factors]
dataplane = [{{ name = "iptables" }}, {{ name = "ipvs", picker = "round-robin" }}]
"services.svc.internalTrafficPolicy" = ["Cluster", "Local"]
"""


def engine_sweep(tmp_path, engine: str, replications: int, root_seed: int):
    text = EQUIVALENCE_SPEC.format(engine=engine, replications=replications, root_seed=root_seed)
    directory = tmp_path / f"{engine}-{root_seed}"
    directory.mkdir()
    return sweep(load_experiment(write_spec(directory, text, SCENARIO.replace("requests = 400", "requests = 2000"))))


def per_point(records) -> dict:
    """Per design point: replication values of mean and p99 latency (s), pooled endpoint counts per Service."""
    out: dict = {}
    for rec in records:
        point = out.setdefault(rec["design_point"], {"mean_s": [], "p99_s": [], "counts": {}})
        for name, s in rec["metrics"]["services"].items():
            point["mean_s"].append(s["latency_s"]["mean"])
            point["p99_s"].append(s["latency_s"]["p99"])
            counts = point["counts"].setdefault(name, {})
            for pod, n in s["routed_by_endpoint"].items():
                counts[pod] = counts.get(pod, 0) + n
    return out


def sweep_disagreements(des, fast) -> list[str]:
    from scipy import stats

    from tests.test_fastpath import ALPHA, ci99

    found = []
    for point, d in per_point(des.records).items():
        f = per_point(fast.records)[point]
        for service, counts in d["counts"].items():
            pods = sorted(set(counts) | set(f["counts"][service]))
            table = np.array([[counts.get(p, 0) for p in pods], [f["counts"][service].get(p, 0) for p in pods]])
            table = table[:, table.sum(axis=0) > 0]
            if table.shape[1] > 1 and (p := stats.chi2_contingency(table).pvalue) <= ALPHA:
                found.append(f"design point {point} {service}: endpoint counts differ (p={p:.2g})")
        for stat in ("mean_s", "p99_s"):
            lo, hi = ci99(np.array(d[stat]))
            value = float(np.mean(f[stat]))
            if not lo <= value <= hi:
                found.append(f"design point {point} {stat} {value:.5g} outside the DES's 99% CI [{lo:.5g}, {hi:.5g}]")
    return found


@pytest.mark.statistical
def test_a_sweep_on_engine_auto_equals_the_des_sweep(tmp_path):
    des = engine_sweep(tmp_path, "des", 10, 1)
    auto = engine_sweep(tmp_path, "auto", 40, 2)
    assert {r["engine"] for r in auto.records} == {"fast"} and {r["engine"] for r in des.records} == {"des"}
    assert sweep_disagreements(des, auto) == []
    # under one seed: the same requests per Service, and round-robin picks request for request
    same_seeds = engine_sweep(tmp_path, "auto", 10, 1)
    for a, b in zip(des.records, same_seeds.records, strict=True):
        assert (a["design_point"], a["seed"]) == (b["design_point"], b["seed"]) and a["key"] != b["key"]
        for name, s in a["metrics"]["services"].items():
            assert s["sent"] == b["metrics"]["services"][name]["sent"]
            if a["factors"]["dataplane"]["name"] == "ipvs":
                assert s["routed_by_endpoint"] == b["metrics"]["services"][name]["routed_by_endpoint"]


@pytest.mark.statistical
def test_a_sweep_on_a_wrong_fast_path_is_told_apart(tmp_path, monkeypatch):
    import sim.solver
    from tests.test_fastpath import slower

    right = sim.solver.solve

    def wrong(plan, seed, *, exact=True):  # the fast way on slower pods; the exact way as it is
        return right(plan if exact else compile_plan(slower(plan.scenario)), seed, exact=exact)

    monkeypatch.setattr(sim.solver, "solve", wrong)
    des = engine_sweep(tmp_path, "des", 10, 1)
    found = sweep_disagreements(des, engine_sweep(tmp_path, "auto", 40, 2))
    assert any("mean_s" in f for f in found)
