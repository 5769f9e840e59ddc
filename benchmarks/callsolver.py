"""Call graphs without events (issue 25, item 5): the event-free solver (``sim.callsolver``) against the event path
on one call tree, in one process, interleaved.

Usage: ``python benchmarks/callsolver.py [--pages 20000] [--rounds 3]``.

The tree is a shop page on four nodes of a star (every link a constant 0.1 ms, 20 us on a node; constant link
delays draw nothing, so the tiers can be solved apart): a client pod sends pages (Poisson, 200 pages/s) to
``frontend`` (async, 2 pods of 4 workers, Exp(mean 2 ms) own work), which calls ``cart`` and then, at once,
``catalog`` three times, ``currency`` and ``ads`` (probability 0.5); ``cart`` (async) calls ``redis``. Every other
Service has one single-worker pod per node, Exp(mean 1 ms). A page is 1 + 7.5 records on average.

Per round, ``simulate(scenario, seed, "des")`` (the solver's exact way: the event path's records byte for byte,
checked here) and ``sim.engine.run`` (the event path) run once each; the table gives each one's median wall seconds
(min-max) and records/s, and the last line ``ratios: callsolver_vs_events=X`` is the event path's median over the
solver's.
"""

from __future__ import annotations

import argparse
import statistics
import time

from sim.callgraph import Call, CallGraph, CallMode, Parallel, ServiceCalls
from sim.cluster import Pod, Service
from sim.distributions import Constant, Exponential
from sim.engine import run
from sim.facade import simulate
from sim.scenario import Scenario, Stream
from sim.topology import ElementKind, Link, Topology
from sim.workload import Poisson

NODES = ("n0", "n1", "n2", "n3")
CALLEES = ("cart", "catalog", "currency", "ads", "redis")


def scenario(pages: int) -> Scenario:
    """The shop page tree of the module's docstring, ``pages`` pages."""
    topology = Topology(
        name="star",
        nodes={n: {"topology.kubernetes.io/zone": "z"} for n in NODES},
        elements={"br": ElementKind.BRIDGE},
        links=[Link(n, "br", Constant(0.0001)) for n in NODES],
        same_node=Constant(0.00002),
    )
    pods = [Pod("client", "n0", "10.9.0.2", {"app": "client"})]
    pods += [
        Pod(f"frontend-{i}", NODES[i], f"10.1.0.{i + 2}", {"app": "frontend"}, Exponential(0.002), concurrency=4)
        for i in range(2)
    ]
    for s, name in enumerate(CALLEES):
        pods += [
            Pod(f"{name}-{n}", node, f"10.{s + 2}.0.{n + 2}", {"app": name}, Exponential(0.001))
            for n, node in enumerate(NODES)
        ]
    graph = {
        "frontend": ServiceCalls(
            CallMode.ASYNC,
            (
                Call("cart"),
                Parallel((Call("catalog", count=3), Call("currency"), Call("ads", probability=0.5))),
            ),
        ),
        "cart": ServiceCalls(CallMode.ASYNC, (Call("redis"),)),
    }
    return Scenario(
        name="shop-tree",
        topology=topology,
        pods=tuple(pods),
        services=tuple(Service(s, {"app": s}) for s in ("frontend", *CALLEES)),
        streams=(Stream("client", "frontend", Poisson(200.0), pages),),
        call_graph=CallGraph(graph),
    )


def main(argv: list[str] | None = None) -> None:
    """Time the solver and the event path, interleaved, and print the table and the ratio."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--pages", type=int, default=20_000, help="pages (default 20000)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds, each running both once (default 3)")
    args = parser.parse_args(argv)
    sc = scenario(args.pages)
    times: dict[str, list[float]] = {"solver: simulate des": [], "events: run": []}
    records = 0
    for _ in range(args.rounds):
        t0 = time.perf_counter()
        solved = simulate(sc, 1, "des")
        t1 = time.perf_counter()
        events = run(sc, 1)
        t2 = time.perf_counter()
        times["solver: simulate des"].append(t1 - t0)
        times["events: run"].append(t2 - t1)
        assert solved.engine == "solver", solved.events_needed
        assert all(solved.columns[c].tobytes() == events.columns[c].tobytes() for c in events.columns)
        records = len(events)
    print(f"{'model':<22}{'pages':>8}{'records':>9}{'median s':>10}{'min-max s':>14}{'records/s':>11}")
    for name, values in times.items():
        med = statistics.median(values)
        span = f"{min(values):.3f}-{max(values):.3f}"
        print(f"{name:<22}{args.pages:>8}{records:>9}{med:>10.3f}{span:>14}{records / med:>11.0f}")
    ratio = statistics.median(times["events: run"]) / statistics.median(times["solver: simulate des"])
    print(f"ratios: callsolver_vs_events={ratio:.2f}")


if __name__ == "__main__":
    main()
