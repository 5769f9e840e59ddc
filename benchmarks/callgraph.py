"""Call-graph benchmark (issue 25, item 9): Online Boutique's home page on the event path, at growing sizes.

Usage: ``python benchmarks/callgraph.py [--pages 10000 100000 300000] [--trace-pages 100000]``.

The scenario is ``experiments/apps/online_boutique.toml`` with its checkout stream removed: one client pod loading
the home page (Poisson, 20 pages/s), each page the frontend's 14 calls (currency, catalogue, cart -> redis,
9 x currency, ads): 15 records a page. Each size runs in a fresh child process (``--child``) so that its peak
RSS is its own: the wall seconds of ``simulate(scenario, seed, "des")`` (setup included), the peak RSS by then
(``des_peak_rss_mb``), the wall seconds of ``summarize`` (the run JSON with the pages' critical paths), the peak
RSS after it (``peak_rss_mb``), and the records' bytes per call (``RunResult``'s columns
plus the ``parent`` column). One more child at ``--trace-pages`` runs the DES under tracemalloc for its peak of
Python allocations. The last lines extrapolate linearly in pages, through the two largest sizes, to 1M pages
(about 15M records).

Targets (issue 25, item 9): 1M pages <= 120 s of DES, <= 2 GB peak, records <= 64 bytes per call.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
FILE = ROOT / "experiments" / "apps" / "online_boutique.toml"
HOME = "default/frontend"
MB = 2**20


def scenario(pages: int) -> tuple[Any, int]:
    """Online Boutique with the home-page stream only, ``pages`` pages: the Scenario and its seed."""
    import dataclasses

    from sim import load_scenario

    sc, seed = load_scenario(FILE, {"requests": pages})
    return dataclasses.replace(sc, streams=tuple(s for s in sc.streams if s.service == HOME)), seed


def _hwm_mb() -> float:
    """This process's peak RSS so far (MB; ``VmHWM``)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(pages: int, trace: bool) -> dict[str, float]:
    """One measurement in this process: DES seconds, summary seconds, peak RSS (MB), bytes per record."""
    from sim import simulate
    from sim.experiment.analysis import summarize

    sc, seed = scenario(pages)
    if trace:
        tracemalloc.start()
    started = time.perf_counter()
    result = simulate(sc, seed, "des")
    des_s = time.perf_counter() - started
    out: dict[str, float] = {"pages": pages, "records": len(result), "des_s": des_s, "des_peak_rss_mb": _hwm_mb()}
    if trace:
        out["tracemalloc_peak_mb"] = tracemalloc.get_traced_memory()[1] / MB
        tracemalloc.stop()
        return out
    started = time.perf_counter()
    summarize(result)
    out["summary_s"] = time.perf_counter() - started
    stored = sum(c.nbytes for c in result.columns.stored.values())
    parent = result.parent.nbytes if result.parent is not None else 0
    out["bytes_per_record"] = (stored + parent) / len(result)
    out["peak_rss_mb"] = _hwm_mb()
    return out


def main() -> None:
    """Run each size in a child and print its figures, then the extrapolation to 1M pages."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pages", type=int, nargs="+", default=[10_000, 100_000, 300_000])
    p.add_argument("--trace-pages", type=int, default=100_000)
    p.add_argument("--child", type=int, help=argparse.SUPPRESS)
    p.add_argument("--trace", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child is not None:
        print(json.dumps(child(args.child, args.trace)))
        return
    runs = []
    for pages, trace in [*((n, False) for n in args.pages), (args.trace_pages, True)]:
        cmd = [sys.executable, __file__, "--child", str(pages), *(["--trace"] if trace else [])]
        done = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
        print(json.dumps(done))
        if not trace:
            runs.append(done)
    a, b = runs[-2], runs[-1]
    print(f"1M pages, linear through {a['pages']:,} and {b['pages']:,} pages (about 15M records):")
    for key in ("des_s", "summary_s", "des_peak_rss_mb", "peak_rss_mb"):
        slope = (b[key] - a[key]) / (b["pages"] - a["pages"])
        print(f"  {key}={b[key] + slope * (1_000_000 - b['pages']):.0f}")
    print(f"  record_bytes={b['bytes_per_record']:.1f}")


if __name__ == "__main__":
    main()
