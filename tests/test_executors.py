"""Executors: serial, loky processes and Dask give identical results; results stream back as they finish."""

from __future__ import annotations

import json
import time

from distributed import LocalCluster

from sim.experiment.executors import Dask, Processes, Serial
from sim.experiment.sweep import sweep
from sim.io import ResultDir, dumps_json, load_experiment
from tests.test_spec import write_spec


def canonical(records: list[dict]) -> list[str]:
    """Records as their JSON files hold them, without the wall time (which no two machines share)."""
    return [dumps_json({k: v for k, v in r.items() if k != "wall_s"}) for r in records]


def test_serial_processes_and_dask_give_identical_results(tmp_path):
    exp = load_experiment(write_spec(tmp_path), {"streams.0.requests": 300})
    serial = sweep(exp, ResultDir(tmp_path / "serial"), Serial())
    processes = sweep(exp, ResultDir(tmp_path / "processes"), Processes(2))
    dask_local = sweep(exp, ResultDir(tmp_path / "dask"), Dask(workers=2, processes=False))
    with LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=":0") as cluster:
        dask_scheduler = sweep(exp, None, Dask(cluster.scheduler_address))
    assert serial.report() == processes.report() == dask_local.report() == dask_scheduler.report()
    assert serial.report() == "computed 12, reused 0"
    expected = canonical(serial.records)
    for other in (processes, dask_local, dask_scheduler):
        assert canonical(other.records) == expected
    for name in ("processes", "dask"):
        a = sorted((tmp_path / "serial" / "runs").glob("*.json"))
        b = sorted((tmp_path / name / "runs").glob("*.json"))
        assert [p.name for p in a] == [p.name for p in b]
        for pa, pb in zip(a, b, strict=True):
            ra, rb = json.loads(pa.read_text()), json.loads(pb.read_text())
            ra.pop("wall_s"), rb.pop("wall_s")
            assert ra == rb
    cols = [c for c in serial.summary.columns if c != "wall_s"]
    assert serial.summary[cols].equals(dask_local.summary[cols])


def _slow_first(x: float) -> float:
    time.sleep(x)
    return x


def test_results_stream_back_as_they_finish():
    assert list(Processes(2).map(_slow_first, [0.8, 0.0])) == [0.0, 0.8]
    assert list(Serial().map(_slow_first, [0.1, 0.0])) == [0.1, 0.0]


def test_processes_run_functions_defined_in_a_notebook():
    """loky pickles closures and lambdas (cloudpickle), as a notebook's functions are."""
    offset = 10
    assert sorted(Processes(2).map(lambda x: x + offset, [1, 2, 3])) == [11, 12, 13]


def test_executors_describe_themselves_and_handle_no_work():
    assert Serial().describe() == "serial"
    assert Processes(3).describe() == "3 processes"
    assert Dask("tcp://scheduler:8786").describe() == "Dask at tcp://scheduler:8786"
    assert list(Processes(2).map(abs, [])) == [] and list(Dask(workers=1).map(abs, [])) == []
