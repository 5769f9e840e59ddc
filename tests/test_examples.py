"""Every shipped experiment through the CLI, as a user runs it; bad input exits 2 with one line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import DEMO, ROOT

EXPERIMENTS = sorted((ROOT / "experiments").glob("*.toml"))


def sim(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sim", *args], capture_output=True, text=True, cwd=cwd, check=False)


@pytest.mark.parametrize("path", EXPERIMENTS, ids=[p.stem for p in EXPERIMENTS])
def test_every_experiment_validates_and_runs(path):
    assert sim("validate", str(path)).returncode == 0
    done = sim("run", str(path), "--requests", "200", "--json")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    for service in summary["services"].values():
        assert service["sent"] == service["completed"] + service["dropped"] + service["in_flight"]


def test_demo_table_and_json_shape():
    table = sim("run", str(DEMO), "--requests", "2000")
    assert table.returncode == 0
    assert "Service echo-1" in table.stdout and "chi-square" in table.stdout and "verdict" in table.stdout
    out = json.loads(sim("run", str(DEMO), "--requests", "2000", "--json").stdout)
    echo1, echo2 = out["services"]["echo-1"], out["services"]["echo-2"]
    for key in ("sent", "completed", "dropped", "violations", "by_node", "by_endpoint", "chi_square", "latency_s"):
        assert key in echo1
    assert set(echo1["chi_square"]) >= {"statistic", "pvalue", "dof"}
    assert set(echo1["latency_s"]) == {"mean", "p50", "p99"}
    assert echo2["by_node"] == {"kind-worker": 2000} and echo2["violations"] == 0


def test_same_seed_byte_identical_json_other_seed_differs(tmp_path):
    a = sim("run", str(DEMO), "--requests", "3000", "--json", "--seed", "5").stdout
    b = sim("run", str(DEMO), "--requests", "3000", "--json", "--seed", "5").stdout
    c = sim("run", str(DEMO), "--requests", "3000", "--json", "--seed", "6").stdout
    assert a == b
    assert json.loads(a)["services"]["echo-1"]["by_node"] != json.loads(c)["services"]["echo-1"]["by_node"]
    out = tmp_path / "r.json"
    assert sim("run", str(DEMO), "--requests", "3000", "--seed", "5", "--out", str(out)).returncode == 0
    assert out.read_text() == a


def test_bad_file_exits_2_with_one_line_and_writes_nothing(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text(DEMO.read_text().replace('"Local"', '"Nearby"').replace("../topologies", str(ROOT / "topologies")))
    out = tmp_path / "r.json"
    done = sim("run", str(bad), "--out", str(out))
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.count("\n") == 1
    assert str(bad) in done.stderr and "internalTrafficPolicy" in done.stderr and "Nearby" in done.stderr
    assert "Traceback" not in done.stderr
    assert not out.exists()


def test_help():
    done = sim("--help")
    assert done.returncode == 0 and "run" in done.stdout
    assert "--requests" in sim("run", "--help").stdout
