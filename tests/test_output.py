"""The one output writer (``sim.io.output``) behind every command's files (issue 24).

Each case of the issue is here: devices and FIFOs are refused and stay what they were, a symlink is written through
to its regular file (the link stays a link), a command never writes over a file it reads (the scenario, its
topology, the run or the Kubernetes objects), an empty name, a directory, a parent that is a file and a results
directory whose run record is a directory are one line and exit 2; ``-`` is stdout for ``report -o`` and ``run
--out``.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from sim.errors import SpecError
from sim.io.output import check_directory, check_file, forget_reads, write_file
from tests.conftest import ROOT
from tests.test_cli import demo_copy, one_error, sim_cli
from tests.test_fuzz import SMALL_SPEC, device


@pytest.fixture
def run_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    demo = demo_copy(tmp_path)
    out = tmp_path / "run.json"
    assert sim_cli(capsys, "run", str(demo), "--requests", "100", "--out", str(out))[0] == 0
    return out


@pytest.mark.parametrize("name", ["null", "full", "zero"])
def test_a_device_is_refused_and_stays_a_device(capsys, tmp_path, name):
    """On a private copy of the device where we are root (a regression must not clobber the system's)."""
    target = tmp_path / name
    device(target, name)
    demo = demo_copy(tmp_path)
    err = one_error(*sim_cli(capsys, "run", str(demo), "--requests", "50", "--out", str(target)))
    assert "is a device" in err
    assert stat.S_ISCHR(os.stat(target).st_mode)


def test_dev_stdout_is_refused_where_it_is_a_device_or_a_pipe(tmp_path):
    r, w = os.pipe()
    try:
        with pytest.raises(SpecError, match=r"FIFO|symlink to nothing"):
            check_file(f"/proc/self/fd/{w}", "-o")
    finally:
        os.close(r)
        os.close(w)


def test_a_fifo_is_refused(tmp_path):
    fifo = tmp_path / "f"
    os.mkfifo(fifo)
    with pytest.raises(SpecError, match="is a FIFO"):
        write_file(fifo, "x", "--out")
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


def test_a_symlink_to_a_regular_file_is_written_through_and_stays_a_link(tmp_path):
    target, link = tmp_path / "target.json", tmp_path / "link.json"
    target.write_text("old")
    link.symlink_to(target.name)
    write_file(link, "new", "--out")
    assert link.is_symlink() and os.readlink(link) == target.name
    assert target.read_text() == "new"


@pytest.mark.parametrize("where", ["nothing", "dir", "device"])
def test_a_symlink_to_anything_else_is_refused(tmp_path, where):
    link = tmp_path / "link"
    link.symlink_to({"nothing": str(tmp_path / "missing"), "dir": str(tmp_path), "device": "/dev/null"}[where])
    with pytest.raises(SpecError, match="symlink"):
        write_file(link, "x", "--out")
    assert link.is_symlink()


def test_report_never_overwrites_the_run_it_reports_on(capsys, run_json):
    before = run_json.read_bytes()
    assert "a file this command reads" in one_error(*sim_cli(capsys, "report", str(run_json), "-o", str(run_json)))
    hard = run_json.with_name("hard.json")  # a second name for the same file
    os.link(run_json, hard)
    assert "a file this command reads" in one_error(*sim_cli(capsys, "report", str(run_json), "-o", str(hard)))
    assert run_json.read_bytes() == before


def test_run_never_overwrites_its_topology(capsys, tmp_path):
    demo = demo_copy(tmp_path)
    topology = tmp_path / "kind.toml"
    before = topology.read_bytes()
    err = one_error(*sim_cli(capsys, "run", str(demo), "--requests", "50", "--out", str(topology)))
    assert "a file this command reads" in err and topology.read_bytes() == before


def test_import_never_overwrites_its_input(capsys, tmp_path):
    objects = tmp_path / "c.yaml"
    objects.write_bytes((ROOT / "experiments" / "k8s" / "manifests.yaml").read_bytes())
    kind = tmp_path / "k.yaml"
    kind.write_bytes((ROOT / "experiments" / "k8s" / "kind-cluster.yaml").read_bytes())
    before = objects.read_bytes()
    assert "a file this command reads" in one_error(
        *sim_cli(capsys, "import", str(objects), str(kind), "-o", str(objects))
    )
    assert objects.read_bytes() == before
    assert not (tmp_path / "c-topology.toml").exists()  # nothing written half-way


@pytest.mark.parametrize(
    ("out", "problem"),
    [
        ("", "is empty"),
        (".", "is a directory"),
        ("run.json/x.html", "a parent on its path is a file"),
        ("x/", "names a directory"),
    ],
)
def test_report_refuses_bad_targets_in_one_line(capsys, run_json, monkeypatch, out, problem):
    monkeypatch.chdir(run_json.parent)
    assert problem in one_error(*sim_cli(capsys, "report", str(run_json), "-o", out))


@pytest.mark.parametrize("out", ["", "-", "null"])
def test_import_refuses_bad_targets_in_one_line(capsys, tmp_path, out):
    if out == "null":
        device(tmp_path / out, out)
        out = str(tmp_path / out)
    objects = ROOT / "experiments" / "k8s" / "manifests.yaml"
    one_error(*sim_cli(capsys, "import", str(objects), "-o", out))


def test_dash_is_stdout_for_report_and_run(capsys, tmp_path, run_json):
    code, out, err = sim_cli(capsys, "report", str(run_json), "-o", "-")
    assert code == 0 and out.startswith("<!DOCTYPE html>") and err == ""
    code, out, _ = sim_cli(capsys, "run", str(demo_copy(tmp_path)), "--requests", "50", "--out", "-")
    assert code == 0 and json.loads(out)["scenario"]
    assert not (tmp_path / "-").exists()


def test_directories_refuse_files_devices_and_empty_names(tmp_path):
    (tmp_path / "f").write_text("x")
    for bad, problem in ((tmp_path / "f", "is a regular file"), ("/dev/null", "is a device"), ("", "not a directory")):
        with pytest.raises(SpecError, match=problem):
            check_directory(bad, "--plot")
    assert check_directory(tmp_path / "new" / "dir", "--plot") == tmp_path / "new" / "dir"


def test_a_long_path_is_one_line(capsys, tmp_path):
    deep = "/".join(["d" * 200] * 30)
    demo = demo_copy(tmp_path)
    one_error(*sim_cli(capsys, "run", str(demo), "--requests", "50", "--out", str(tmp_path / deep / "x.json")))


def test_a_run_record_that_is_a_directory_is_one_line(capsys, tmp_path):
    spec = tmp_path / "spec.toml"
    spec.write_text(SMALL_SPEC.replace('"../topologies/kind.toml"', f'"{ROOT / "topologies" / "kind.toml"}"'))
    out = tmp_path / "results"
    assert sim_cli(capsys, "sweep", str(spec), "--serial", "--out", str(out), "-q")[0] == 0
    record = next((out / "runs").glob("*.json"))
    record.unlink()
    record.mkdir()
    code, _, err = sim_cli(capsys, "sweep", str(spec), "--serial", "--out", str(out), "-q")
    assert code == 2 and err.count("\n") == 1 and "is a directory" in err, err


def test_forget_reads_starts_each_command_afresh(tmp_path):
    from sim.io.typed import read_text

    f = tmp_path / "in.toml"
    f.write_text("a = 1\n")
    read_text(f)
    with pytest.raises(SpecError, match="reads"):
        check_file(f, "--out")
    forget_reads()
    assert check_file(f, "--out") == f
