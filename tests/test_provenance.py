"""Provenance: the command a run, a sweep or a report records redoes it. Each test parses the recorded command with
shlex, runs it through the CLI's ``main`` and compares the result with the first, byte for byte.

Wrong models these catch: a recorder that drops ``--set`` (the rerun keeps echo-1 Cluster, so its picks differ),
one that drops ``--point`` (the rerun runs design point 0), one that drops the sweep's ``--engine`` (the rerun's run
keys and records are the DES's)."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest

from sim.cli import main
from sim.io import load_results
from tests.conftest import DEMO
from tests.test_spec import write_spec


def rerun(command: str, *extra: str) -> int:
    """Run a recorded ``sim ...`` command (shlex-parsed) through ``main``, with ``extra`` flags appended."""
    words = shlex.split(command)
    assert words[0] == "sim"
    return main([*words[1:], *extra])


def test_a_run_with_set_seed_and_requests_is_redone_by_its_recorded_command(capsys, tmp_path):
    first, second = tmp_path / "r.json", tmp_path / "again.json"
    local = 'services.echo-1.internalTrafficPolicy="Local"'
    args = ["run", str(DEMO), "--requests", "300", "--seed", "3", "--set", local, "--alpha", "0.05"]
    assert main([*args, "--out", str(first), "--json"]) == 0
    doc = json.loads(first.read_text())
    command = doc["provenance"]["command"]
    assert "--set" in command and "--alpha 0.05" in command and "--seed 3" in command
    assert rerun(command, "--out", str(second), "-q") == 0
    capsys.readouterr()
    assert second.read_bytes() == first.read_bytes()
    without = tmp_path / "without-set.json"  # the wrong model: the same command less its --set
    assert main([*args[:6], "--alpha", "0.05", "--out", str(without), "-q"]) == 0
    assert without.read_bytes() != first.read_bytes()


def test_a_design_point_of_a_spec_is_redone_by_its_recorded_command(capsys, tmp_path):
    spec = write_spec(tmp_path)
    first, second = tmp_path / "p.json", tmp_path / "again.json"
    assert main(["run", str(spec), "--point", "3", "--requests", "50", "--engine", "auto", "--out", str(first)]) == 0
    command = json.loads(first.read_text())["provenance"]["command"]
    assert "--point 3" in command and "--engine auto" in command
    assert rerun(command, "--out", str(second)) == 0
    capsys.readouterr()
    assert second.read_bytes() == first.read_bytes()


@pytest.mark.slow
def test_a_sweep_is_redone_by_the_command_its_report_shows(capsys, tmp_path):
    spec = write_spec(tmp_path)
    first, second = tmp_path / "first", tmp_path / "second"
    sets = ["--set", "replications=2", "--set", "streams.0.requests=60", "--set", 'services.svc.sessionAffinity="None"']
    assert main(["sweep", str(spec), "--serial", "-q", "--engine", "auto", *sets, "--out", str(first)]) == 0
    report = tmp_path / "report.html"
    assert main(["report", str(first), "-o", str(report), "--service", "svc"]) == 0
    page = report.read_text()
    made_by = page.split("made by</th><td><code>")[1].split("</code>")[0]
    from html import unescape

    command = unescape(made_by)
    assert "--engine auto" in command and "replications=2" in command and "streams.0.requests=60" in command
    assert "sim report" in page and "--service svc" in page  # the report's own command, with its --service
    assert '<code class="engine">auto</code> (8 runs on the fast path)' in page.replace("\n", " ")
    assert rerun(command, "--serial", "-q", "--out", str(second)) == 0
    capsys.readouterr()
    import pandas as pd

    tables = [pd.read_csv(d / "summary.csv").drop(columns="wall_s") for d in (first, second)]  # wall time differs
    pd.testing.assert_frame_equal(tables[0], tables[1])
    info_1, records_1 = load_results(first)
    info_2, records_2 = load_results(second)
    assert info_1 == info_2
    assert [r["key"] for r in records_1] == [r["key"] for r in records_2]
    assert [r["metrics"] for r in records_1] == [r["metrics"] for r in records_2]


def test_sweep_command_round_trips_values_through_parse_set():
    from sim.io import parse_set, sweep_command

    info = {"spec": "s p.toml", "sets": {"a.b": "Local", "n": 3, "x": [1.5, True], "t": {"k": "v"}}, "engine": "fast"}
    words = sweep_command(info)
    sets = dict(parse_set(words[i + 1]) for i, w in enumerate(words) if w == "--set")
    assert sets == info["sets"] and words[-2:] == ["--engine", "fast"] and words[2] == "s p.toml"
    assert Path(shlex.split(shlex.join(words))[2]).name == "s p.toml"
