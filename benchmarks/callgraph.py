"""Call-graph benchmark (issue 25, item 9): Online Boutique's home page on the event path, at growing sizes.

Usage: ``python benchmarks/callgraph.py [--pages 10000 100000 300000] [--trace-pages 100000]``, or
``python benchmarks/callgraph.py --growth [--growth-pages 20000]``.

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

``--growth`` prints the growth table against call depth and fan-out instead: ``--growth-pages`` pages (default
20,000, Poisson at 50 pages/s) into a chain of d Services (each calls the next, sync; d = 1 is one Service that
calls nobody) and into a fan-out of f (the entry Service calls f Services at once, one ``parallel`` stage), each
Service one pod (Exp(1 ms) service, 4 workers) on a node of its own around one switch (0.1 ms a link); per row,
each in its own child: records, DES and summary seconds, microseconds per record, peak RSS.
"""

from __future__ import annotations

import argparse
import itertools
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


def shape_scenario(shape: str, size: int, pages: int) -> tuple[Any, int]:
    """A ``chain`` of ``size`` Services or a ``fanout`` of ``size`` callees behind one entry Service (see the
    module): the Scenario and its seed."""
    from sim.callgraph import Call, CallGraph, CallMode, Parallel, ServiceCalls
    from sim.cluster import Pod, Service
    from sim.distributions import Constant, Exponential
    from sim.scenario import Scenario, Stream
    from sim.topology import ElementKind, Link, Topology
    from sim.workload import Poisson

    names = ["entry", *(f"s{i}" for i in range(1, size if shape == "chain" else size + 1))]
    if shape == "chain":
        graph = {a: ServiceCalls(CallMode.SYNC, (Call(b),)) for a, b in itertools.pairwise(names)}
    else:
        graph = {"entry": ServiceCalls(CallMode.SYNC, (Parallel(tuple(Call(b) for b in names[1:])),))}
    nodes = ["client", *names]
    topology = Topology(
        name="star",
        nodes={n: {} for n in nodes},
        elements={"switch": ElementKind.SWITCH},
        links=[Link(n, "switch", Constant(0.0001)) for n in nodes],
        same_node=Constant(0.0),
    )
    pods = [Pod("client", "client", "10.0.0.1", {"app": "client"})]
    pods += [
        Pod(n, n, f"10.0.1.{i + 1}", {"app": n}, service_time=Exponential(0.001), concurrency=4)
        for i, n in enumerate(names)
    ]
    sc = Scenario(
        name=f"{shape}-{size}",
        topology=topology,
        pods=tuple(pods),
        services=tuple(Service(n, {"app": n}) for n in names),
        streams=(Stream("client", "entry", Poisson(50.0), pages),),
        call_graph=CallGraph(graph),
    )
    return sc, 1


def _hwm_mb() -> float:
    """This process's peak RSS so far (MB; ``VmHWM``)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(pages: int, trace: bool, shape: str = "", size: int = 0) -> dict[str, float]:
    """One measurement in this process (Online Boutique, or a ``shape`` of ``size``): DES seconds, summary
    seconds, peak RSS (MB), bytes per record."""
    from sim import simulate
    from sim.experiment.analysis import summarize

    sc, seed = shape_scenario(shape, size, pages) if shape else scenario(pages)
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
    parent = result.parent.itemsize if result.parent is not None else 0
    out["bytes_per_record"] = float(result.nbytes_per_request() + parent)
    out["peak_rss_mb"] = _hwm_mb()
    out["us_per_record"] = 1e6 * des_s / len(result)
    return out


def growth(pages: int) -> None:
    """The growth table against call depth (a chain of d) and fan-out (a parallel of f), one child per row."""
    print("| shape | size | records | DES s | us/record | summary s | DES peak RSS MB | peak RSS MB |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for shape in ("chain", "fanout"):
        for size in (1, 2, 4, 8, 16, 32):
            cmd = [sys.executable, __file__, "--child", str(pages), "--shape", shape, "--size", str(size)]
            r = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
            print(
                f"| {shape} | {size} | {r['records']:,} | {r['des_s']:.2f} | {r['us_per_record']:.1f} | "
                f"{r['summary_s']:.2f} | {r['des_peak_rss_mb']:.0f} | {r['peak_rss_mb']:.0f} |",
                flush=True,
            )


def main() -> None:
    """Run each size in a child and print its figures, then the extrapolation to 1M pages."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pages", type=int, nargs="+", default=[10_000, 100_000, 300_000])
    p.add_argument("--trace-pages", type=int, default=100_000)
    p.add_argument("--growth", action="store_true", help="the growth table against call depth and fan-out")
    p.add_argument("--growth-pages", type=int, default=20_000, help="--growth: pages per row (default 20,000)")
    p.add_argument("--child", type=int, help=argparse.SUPPRESS)
    p.add_argument("--trace", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--shape", default="", help=argparse.SUPPRESS)
    p.add_argument("--size", type=int, default=0, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child is not None:
        print(json.dumps(child(args.child, args.trace, args.shape, args.size)))
        return
    if args.growth:
        growth(args.growth_pages)
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
