"""A sweep on Dask that cannot go on says so in one line and exits 2: an unreachable scheduler within about
``DASK_CONNECT_S``, a scheduler lost mid-sweep and a cluster left with no worker with "rerun the same command to
resume (N runs kept)", N the runs on disk. Real schedulers and workers (``dask scheduler``, ``dask worker``
processes), on 127.0.0.1 only.

Wrong models these catch: the Client's default 30 s connect timeout and its OSError traceback (exit 1); the
CancelledError tracebacks of a lost scheduler; a sweep that waits for ever on a scheduler without workers."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sim.experiment.executors import DASK_CONNECT_S, DASK_NO_WORKER_S
from tests.conftest import ROOT
from tests.test_spec import write_spec

DASK = shutil.which("dask", path=str(Path(sys.executable).parent)) or shutil.which("dask")
pytestmark = [pytest.mark.slow, pytest.mark.skipif(DASK is None, reason="the dask command is not installed")]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(*args: str) -> subprocess.Popen[bytes]:
    """A dask process (scheduler or worker) on this machine, in its own process group."""
    assert DASK is not None
    return subprocess.Popen([DASK, *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def wait_for_port(port: int, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    pytest.fail(f"no dask scheduler on 127.0.0.1:{port} after {seconds} s")


def sweep(spec: Path, out: Path, address: str) -> subprocess.Popen[str]:
    """``sim sweep`` of a long sweep (4 design points x 40 replications of 20,000 requests) on ``address``."""
    sets = ["--set", "replications=40", "--set", "streams.0.requests=20000"]
    return subprocess.Popen(
        [sys.executable, "-m", "sim", "sweep", str(spec), "--scheduler", address, "--out", str(out), *sets],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )


def runs_kept(out: Path) -> int:
    return len(list((out / "runs").glob("*.json")))


def wait_for_runs(out: Path, n: int, process: subprocess.Popen[str], seconds: float = 120.0) -> None:
    deadline = time.monotonic() + seconds
    while runs_kept(out) < n:
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, f"fewer than {n} runs after {seconds} s"
        time.sleep(0.2)


def test_an_unreachable_scheduler_is_one_line_within_seconds(tmp_path):
    spec = write_spec(tmp_path)
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "sim", "sweep", str(spec), "--scheduler", f"tcp://127.0.0.1:{free_port()}"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=False,
        timeout=60,
    )
    took = time.monotonic() - started
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr, done.stderr
    assert f"no Dask scheduler answered within {DASK_CONNECT_S:g} s" in done.stderr
    assert took < DASK_CONNECT_S + 8, took  # the connect timeout, plus starting Python and reading the spec


@pytest.mark.parametrize("lose", ["scheduler", "worker"])
def test_a_lost_scheduler_or_last_worker_is_one_line_saying_rerun_resumes(tmp_path, lose):
    spec = write_spec(tmp_path)
    out = tmp_path / "results"
    port = free_port()
    scheduler = start("scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard")
    worker = None
    try:
        wait_for_port(port)
        address = f"tcp://127.0.0.1:{port}"
        worker = start("worker", address, "--nthreads", "1", "--no-dashboard", "--no-nanny", "--host", "127.0.0.1")
        process = sweep(spec, out, address)
        wait_for_runs(out, 2, process)
        stop(scheduler if lose == "scheduler" else worker)
        started = time.monotonic()
        _, err = process.communicate(timeout=DASK_NO_WORKER_S + DASK_CONNECT_S + 30)
        took = time.monotonic() - started
    finally:
        for p in (worker, scheduler):
            if p is not None:
                stop(p)
    assert process.returncode == 2, err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    kept = runs_kept(out)
    assert kept >= 2 and f"rerun the same command to resume ({kept} runs kept)" in err, err
    assert ("was lost" if lose == "scheduler" else f"no worker for {DASK_NO_WORKER_S:g} s") in err, err
    assert took < DASK_NO_WORKER_S + DASK_CONNECT_S + 10, took
    assert not list((out / "runs").glob(".*.tmp"))
