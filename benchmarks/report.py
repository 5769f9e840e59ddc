"""``sim report`` at scale (issue 24: "5,000 nodes in seconds"): a run file of ``benchmarks/scale.py``'s leaf-spine
cluster at Kubernetes' node limit, 5,000 nodes, with 30 Services of 100 backend pods, 1,000 client pods and 20,000
requests (the DES), then ``sim report`` and ``sim plot`` on it, timed in fresh processes.

Usage: ``python benchmarks/report.py [--nodes N] [--services S] [--requests R] [--out DIR]``. Writes
``DIR/run.json`` (kept between calls: delete it to rebuild), ``DIR/report.html`` and ``DIR/figures/``; the last line
is ``report: nodes=N services=S run_mb=X report_s=X report_cpu_s=X plot_s=X plot_cpu_s=X`` (wall and
CPU seconds).
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import time
from pathlib import Path

from scale import Shape, leaf_spine, scenario  # benchmarks/scale.py: the generated cluster and its workload

from sim.experiment.rundoc import run_document
from sim.facade import simulate
from sim.io.store import dumps_json

SEED = 1


def write_run(path: Path, nodes: int, services: int, requests: int) -> None:
    """Simulate the workload on ``nodes`` nodes and write its run document (``sim run --out``'s) to ``path``."""
    shape = Shape(services=services, endpoints=100, clients=1000)
    result = simulate(scenario(leaf_spine(nodes), requests, shape=shape), SEED, "des")
    path.write_text(dumps_json(run_document(result, command=["benchmarks/report.py"])))


def timed(*command: str) -> tuple[float, float]:
    """Wall and CPU (user + system) seconds of ``sim COMMAND`` in a fresh process (imports included, as a user
    waits for them); on a shared machine the CPU seconds are the ones to compare."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "sim", *command], check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main(argv: list[str] | None = None) -> None:
    """Build the run file if missing, then time ``sim report`` and ``sim plot`` on it."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, default=5000)
    parser.add_argument("--services", type=int, default=30)
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--out", type=Path, default=Path("results/report-benchmark"))
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    run = args.out / "run.json"
    if not run.exists():
        start = time.perf_counter()
        write_run(run, args.nodes, args.services, args.requests)
        print(f"run file: {time.perf_counter() - start:.1f} s", file=sys.stderr)
    report_s, report_cpu_s = timed("report", str(run), "-o", str(args.out / "report.html"))
    plot_s, plot_cpu_s = timed("plot", str(run), "--out", str(args.out / "figures"))
    run_mb = run.stat().st_size / 1e6
    print(
        f"report: nodes={args.nodes} services={args.services} run_mb={run_mb:.1f} report_s={report_s:.1f} "
        f"report_cpu_s={report_cpu_s:.1f} plot_s={plot_s:.1f} plot_cpu_s={plot_cpu_s:.1f}"
    )


if __name__ == "__main__":
    main()
