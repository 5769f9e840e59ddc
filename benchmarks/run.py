"""Benchmark sim.engine.run against hand-written SimPy models and Ciw on the same workloads.

Usage: ``python benchmarks/run.py [--quick] [--requests N] [--repeat K]``. Everything runs in one process; the last
line is ``ratios: vs_simpy_callback=X vs_simpy_process=X vs_ciw=X fast_vs_des=X`` (our DES's requests/s over theirs,
and the vectorised fast path's over our DES's, all on W).

Workload W: 4 clients each sending Poisson 0.5 req/s (open loop) to 8 single-worker backends with exponential
service (mean 1 s), backend picked uniformly at random, constant 0.1 s network delay each way. Each backend is an
M/M/1 queue with lambda 0.25, mu 1, so the mean latency is 1 / (1 - 0.25) + 0.2 = 1.533 s.

Demo: experiments/cilium_demo.toml scaled up: one client curls two Services in a closed loop.

``ours: shortcuts=False`` is our engine with every step of every request a SimPy event (``run(...,
shortcuts=False)``): the same records, to show what the engine's shortcuts (steps computed rather than
scheduled, see ``sim/engine.py``) are worth. Its ``ours/peer`` is the default engine's speed over it.
"""

from __future__ import annotations

import argparse
import datetime
import gc
import os
import platform
import sys
import time
import tracemalloc
from array import array
from collections import deque
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import simpy

from sim.cluster import Pod, Service
from sim.distributions import Constant, Exponential
from sim.engine import run
from sim.fastpath import fast_path_problem, run_fast
from sim.io import load_scenario
from sim.outcomes import Outcome
from sim.records import RunResult
from sim.routing import DataplaneConfig
from sim.scenario import Scenario, Stream
from sim.topology import ElementKind, Link, Topology
from sim.workload import Poisson

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "experiments" / "cilium_demo.toml"
SEED = 20261126
FULL_REQUESTS = 200_000

# Workload W
CLIENTS = 4
BACKENDS = 8
CLIENT_RATE_RPS = 0.5
SERVICE_MEAN_S = 1.0
ONE_WAY_S = 0.1
W_THEORY_S = 1.0 / (1.0 - CLIENTS * CLIENT_RATE_RPS / BACKENDS * SERVICE_MEAN_S) * SERVICE_MEAN_S + 2 * ONE_WAY_S

# The demo as written in experiments/cilium_demo.toml and topologies/kind.toml
DEMO_SERVICE_MEAN_S = 0.0002
DEMO_CONCURRENCY = 4
DEMO_SAME_NODE_S = 0.00002  # one same-node draw per trip
DEMO_BRIDGE_HOP_S = 0.00005  # two such hops per trip between kind-worker and kind-worker2
DEMO_LOCAL, DEMO_REMOTE, DEMO_ECHO2 = 0, 1, 2  # echo-1-kind-worker, echo-1-kind-worker2, echo-2-kind-worker
DEMO_THEORY_S = DEMO_SERVICE_MEAN_S + 2 * (0.75 * DEMO_SAME_NODE_S + 0.25 * 2 * DEMO_BRIDGE_HOP_S)  # 1/4 remote

T = TypeVar("T")
Process = Generator[simpy.Event, object, None]
Times = tuple[np.ndarray, np.ndarray]
"""Per-request send and return times, in seconds of simulated time."""


@dataclass(frozen=True)
class Row:
    """One measured model: requests simulated, wall-clock seconds, mean latency (s), and its reference row."""

    workload: str
    name: str
    requests: int
    seconds: float
    mean_latency_s: float
    ours: Row | None = None

    @property
    def rps(self) -> float:
        """Simulated requests per wall-clock second."""
        return self.requests / self.seconds

    @property
    def ratio(self) -> float | None:
        """Our requests/s over this model's (None for our own rows)."""
        return None if self.ours is None else self.ours.rps / self.rps


def race(models: Mapping[str, Callable[[], T]], repeat: int) -> dict[str, tuple[T, float]]:
    """Time each model ``repeat`` times, round robin, each call after a garbage collection.

    Returns per model its last value and its fastest wall-clock seconds (best-of-N, as timeit does: the machine
    only ever adds noise, and round robin spreads any drift over every model alike).
    """
    best: dict[str, tuple[T, float]] = {}
    for _ in range(repeat):
        for name, model in models.items():
            gc.collect()
            start = time.perf_counter()
            value = model()
            seconds = time.perf_counter() - start
            best[name] = (value, min(seconds, best[name][1]) if name in best else seconds)
    return best


def mean_latency(value: RunResult | Times) -> float:
    """Mean seconds from send to return: over our run's OK requests, or over a model's returned requests."""
    if isinstance(value, RunResult):
        ok = value.outcome == int(Outcome.OK)
        return float(np.mean(value.latency_s[ok]))
    sent, returned = value
    done = returned > 0
    return float(np.mean(returned[done] - sent[done]))


def zeros(n: int) -> array[float]:
    """A preallocated array of ``n`` doubles (seconds)."""
    return array("d", bytes(8 * n))


def as_times(sent: array[float], returned: array[float]) -> Times:
    """View two double arrays as numpy (no copy)."""
    return np.frombuffer(sent), np.frombuffer(returned)


# --- workload W through our engine -------------------------------------------------------------------------------


def w_scenario(per_client: int) -> Scenario:
    """Workload W: clients and backends on their own nodes around one switch, two 0.05 s links each way."""
    clients = [f"client-{k}" for k in range(CLIENTS)]
    backends = [f"backend-{b}" for b in range(BACKENDS)]
    nodes = [f"node-{name}" for name in clients + backends]
    link = Constant(ONE_WAY_S / 2)
    topology = Topology(
        name="star",
        nodes={node: {} for node in nodes},
        elements={"switch": ElementKind.SWITCH},
        links=[Link(node, "switch", link) for node in nodes],
        same_node=Constant(0.0),
    )
    pods = tuple(
        Pod(
            name=name,
            node=f"node-{name}",
            ip=f"10.244.{i}.2",
            labels={"app": "backend" if name in backends else "client"},
            service_time=Exponential(SERVICE_MEAN_S),
            concurrency=1,
        )
        for i, name in enumerate(clients + backends)
    )
    streams = tuple(Stream(c, "backend", Poisson(CLIENT_RATE_RPS), requests=per_client) for c in clients)
    return Scenario(
        name="workload-w",
        topology=topology,
        pods=pods,
        services=(Service("backend", selector={"app": "backend"}),),
        streams=streams,
        dataplane=DataplaneConfig(name="iptables", picker="random"),
    )


def peak_bytes_per_request(scenario: Scenario, requests: int, engine: Callable[[Scenario, int], object] = run) -> float:
    """tracemalloc's peak traced bytes during ``engine(scenario)`` (the DES unless told), per request."""
    gc.collect()
    tracemalloc.start()
    engine(scenario, SEED)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak / requests


# --- workload W in hand-written SimPy -------------------------------------------------------------------------


@dataclass(frozen=True)
class WDraws:
    """Per-request random numbers for W, indexed by request i = client * per_client + j: gap before send (s),
    backend index, service time (s)."""

    gaps: list[float]
    backend: list[int]
    service: list[float]

    @classmethod
    def draw(cls, per_client: int, seed: int) -> WDraws:
        """Draw every number up front in three numpy blocks."""
        rng = np.random.default_rng(seed)
        n = CLIENTS * per_client
        return cls(
            rng.exponential(1.0 / CLIENT_RATE_RPS, n).tolist(),
            rng.integers(0, BACKENDS, n).tolist(),
            rng.exponential(SERVICE_MEAN_S, n).tolist(),
        )


def simpy_process_w(per_client: int, seed: int) -> Times:
    """W with one generator process per request and a simpy.Resource(capacity=1) per backend."""
    env = simpy.Environment()
    d = WDraws.draw(per_client, seed)
    servers = [simpy.Resource(env, capacity=1) for _ in range(BACKENDS)]
    sent, returned = zeros(CLIENTS * per_client), zeros(CLIENTS * per_client)

    def request(i: int) -> Process:
        sent[i] = env.now
        yield env.timeout(ONE_WAY_S)
        with servers[d.backend[i]].request() as slot:
            yield slot
            yield env.timeout(d.service[i])
        yield env.timeout(ONE_WAY_S)
        returned[i] = env.now

    def client(k: int) -> Process:
        for i in range(k * per_client, (k + 1) * per_client):
            yield env.timeout(d.gaps[i])
            env.process(request(i))

    for k in range(CLIENTS):
        env.process(client(k))
    env.run()
    return as_times(sent, returned)


def simpy_callback_w(per_client: int, seed: int) -> Times:
    """W as callbacks chained on env.timeout events, with a hand-rolled FIFO queue per backend.

    Reads ``ev._value`` as sim/engine.py does (skipping the ``value`` property's check), so both pay alike.
    """
    env = simpy.Environment()
    timeout = env.timeout
    d = WDraws.draw(per_client, seed)
    gaps, backend, service = d.gaps, d.backend, d.service
    busy = [False] * BACKENDS
    queues: list[deque[int]] = [deque() for _ in range(BACKENDS)]
    sent, returned = zeros(CLIENTS * per_client), zeros(CLIENTS * per_client)

    def send(ev: simpy.Event) -> None:
        i = ev._value
        sent[i] = env.now
        timeout(ONE_WAY_S, i).callbacks.append(arrive)
        if (i + 1) % per_client:
            timeout(gaps[i + 1], i + 1).callbacks.append(send)

    def arrive(ev: simpy.Event) -> None:
        i = ev._value
        b = backend[i]
        if busy[b]:
            queues[b].append(i)
        else:
            busy[b] = True
            timeout(service[i], i).callbacks.append(finish)

    def finish(ev: simpy.Event) -> None:
        i = ev._value
        timeout(ONE_WAY_S, i).callbacks.append(back)
        queue = queues[backend[i]]
        if queue:
            j = queue.popleft()
            timeout(service[j], j).callbacks.append(finish)
        else:
            busy[backend[i]] = False

    def back(ev: simpy.Event) -> None:
        returned[ev._value] = env.now

    for k in range(CLIENTS):
        first = k * per_client
        timeout(gaps[first], first).callbacks.append(send)
    env.run()
    return as_times(sent, returned)


# --- workload W in Ciw -----------------------------------------------------------------------------------------


def ciw_w(requests: int, seed: int, ours: Row) -> tuple[Row, str] | None:
    """W in Ciw, run until ``requests`` customers have left; with Ciw's version, or None if it is not installed.

    Node 1 is the 0.1 s trip out (infinite servers, Deterministic), nodes 2-9 the backends (1 server, Exp(1)),
    each reached with probability 1/8, node 10 the trip back. Arrivals: one Poisson stream at the total 2.0 req/s
    (the superposition of the four 0.5 req/s clients). Timed: building the Simulation and simulating.
    """
    try:
        import ciw  # an optional peer: pip install -e '.[bench]'
    except ImportError:
        return None
    out, back = 0, BACKENDS + 1
    routing = [[0.0] * (BACKENDS + 2) for _ in range(BACKENDS + 2)]
    for b in range(1, BACKENDS + 1):
        routing[out][b] = 1.0 / BACKENDS
        routing[b][back] = 1.0
    network = ciw.create_network(
        arrival_distributions=[ciw.dists.Exponential(CLIENTS * CLIENT_RATE_RPS)] + [None] * (BACKENDS + 1),
        service_distributions=[ciw.dists.Deterministic(ONE_WAY_S)]
        + [ciw.dists.Exponential(1.0 / SERVICE_MEAN_S)] * BACKENDS
        + [ciw.dists.Deterministic(ONE_WAY_S)],
        number_of_servers=[float("inf")] + [1] * BACKENDS + [float("inf")],
        routing=routing,
    )

    def simulate() -> Any:  # a ciw.Simulation (Ciw has no type hints)
        ciw.seed(seed)  # seeds the global `random` module: allowed only here, for the peer
        sim = ciw.Simulation(network)
        sim.simulate_until_max_customers(requests, method="Finish")
        return sim

    sim, seconds = race({"ciw": simulate}, 1)["ciw"]
    records = sim.get_all_records()
    sent = {r.id_number: r.arrival_date for r in records if r.node == out + 1}
    latencies = [r.exit_date - sent[r.id_number] for r in records if r.node == back + 1]
    row = Row("W", "ciw (delays as nodes)", len(latencies), seconds, float(np.mean(latencies)), ours)
    return row, ciw.__version__


# --- the demo in hand-written SimPy ------------------------------------------------------------------------------


def demo_draws(per_stream: int, rng: np.random.Generator) -> tuple[list[int], list[float], list[float], list[float]]:
    """Per-request pod index, service time (s), and trip out and back (s); stream 0 is echo-1, stream 1 echo-2."""
    pod = np.concatenate([rng.integers(DEMO_LOCAL, DEMO_REMOTE + 1, per_stream), np.full(per_stream, DEMO_ECHO2)])
    remote = pod == DEMO_REMOTE
    n = 2 * per_stream

    def trip() -> list[float]:
        bridge = rng.exponential(DEMO_BRIDGE_HOP_S, (2, n)).sum(axis=0)
        return np.where(remote, bridge, rng.exponential(DEMO_SAME_NODE_S, n)).tolist()

    return pod.tolist(), rng.exponential(DEMO_SERVICE_MEAN_S, n).tolist(), trip(), trip()


def simpy_callback_demo(per_stream: int, seed: int) -> Times:
    """The demo as callbacks: two closed-loop streams, three 4-worker echo pods with FIFO queues (``ev._value``)."""
    env = simpy.Environment()
    timeout = env.timeout
    pod, service, out, back = demo_draws(per_stream, np.random.default_rng(seed))
    busy = [0, 0, 0]
    queues: list[deque[int]] = [deque(), deque(), deque()]
    sent, returned = zeros(2 * per_stream), zeros(2 * per_stream)

    def send(i: int) -> None:
        sent[i] = env.now
        timeout(out[i], i).callbacks.append(arrive)

    def arrive(ev: simpy.Event) -> None:
        i = ev._value
        p = pod[i]
        if busy[p] < DEMO_CONCURRENCY:
            busy[p] += 1
            timeout(service[i], i).callbacks.append(finish)
        else:
            queues[p].append(i)

    def finish(ev: simpy.Event) -> None:
        i = ev._value
        timeout(back[i], i).callbacks.append(reply)
        queue = queues[pod[i]]
        if queue:
            j = queue.popleft()
            timeout(service[j], j).callbacks.append(finish)
        else:
            busy[pod[i]] -= 1

    def reply(ev: simpy.Event) -> None:
        i = ev._value
        returned[i] = env.now
        if (i + 1) % per_stream:
            send(i + 1)

    send(0)
    send(per_stream)
    env.run()
    return as_times(sent, returned)


# --- running and reporting -----------------------------------------------------------------------------------


FAST = "fast: fastpath.run_fast"
FULL = "ours: shortcuts=False"


def measure_w(per_client: int, repeat: int) -> tuple[list[Row], Row, float, float, float, str]:
    """Every W model; returns the rows, the fast path's row, tracemalloc peak bytes/request of the DES and of the
    fast path, RunResult bytes/request, and Ciw's version."""
    n = CLIENTS * per_client
    scenario = w_scenario(per_client)
    assert fast_path_problem(scenario) is None
    models: dict[str, Callable[[], RunResult | Times]] = {
        "ours: sim.engine.run": lambda: run(scenario, SEED),
        FULL: lambda: run(scenario, SEED, shortcuts=False),  # every step an event: what the shortcuts save
        FAST: lambda: run_fast(scenario, SEED),  # the same scenario object, timed end to end like the DES
        "simpy callback": lambda: simpy_callback_w(per_client, SEED),
        "simpy process": lambda: simpy_process_w(per_client, SEED),
    }
    raced = race(models, repeat)
    fast_value, fast_seconds = raced.pop(FAST)
    result = raced["ours: sim.engine.run"][0]
    assert isinstance(result, RunResult) and result.counts()["ok"] == n
    assert isinstance(fast_value, RunResult) and fast_value.counts()["ok"] == n
    rows = rows_of("W", n, raced)
    fast = Row("W", FAST, n, fast_seconds, mean_latency(fast_value))  # also ours: no ours/peer ratio
    peer = ciw_w(n, SEED, rows[0])  # once: Ciw takes ~15x as long as the rest, far beyond any timing noise
    if peer is not None:
        rows.append(peer[0])
    peak = peak_bytes_per_request(w_scenario(per_client), n)
    fast_peak = peak_bytes_per_request(w_scenario(per_client), n, run_fast)
    return rows, fast, peak, fast_peak, result.nbytes_per_request(), "na" if peer is None else peer[1]


def measure_demo(per_stream: int, repeat: int) -> list[Row]:
    """Our run of the scaled cilium demo, and the hand-written callback model of it."""
    scenario, seed = load_scenario(DEMO, {"requests": per_stream})
    models: dict[str, Callable[[], RunResult | Times]] = {
        "ours: sim.engine.run": lambda: run(scenario, seed),
        FULL: lambda: run(scenario, seed, shortcuts=False),
        "simpy callback": lambda: simpy_callback_demo(per_stream, seed),
    }
    raced = race(models, repeat)
    result = raced["ours: sim.engine.run"][0]
    assert isinstance(result, RunResult) and result.counts()["ok"] == 2 * per_stream
    return rows_of("demo", 2 * per_stream, raced)


def rows_of(workload: str, requests: int, raced: Mapping[str, tuple[RunResult | Times, float]]) -> list[Row]:
    """Table rows from ``race`` results; the first model is ours, the reference of the others' ratios."""
    rows: list[Row] = []
    for name, (value, seconds) in raced.items():
        rows.append(Row(workload, name, requests, seconds, mean_latency(value), rows[0] if rows else None))
    return rows


def table(rows: list[Row]) -> str:
    """The rows as a fixed-width text table."""
    lines = [
        f"{'workload':<9}{'model':<24}{'requests':>10}{'seconds':>10}{'requests/s':>12}"
        f"{'mean latency s':>16}{'ours/peer':>11}"
    ]
    for r in rows:
        ratio = "-" if r.ratio is None else f"{r.ratio:.2f}"
        lines.append(
            f"{r.workload:<9}{r.name:<24}{r.requests:>10}{r.seconds:>10.3f}{r.rps:>12.0f}"
            f"{r.mean_latency_s:>16.5g}{ratio:>11}"
        )
    return "\n".join(lines)


def check(workload: str, rows: list[Row], theory_s: float, why: str) -> None:
    """Print how far each model's mean latency is from theory; warn on stderr beyond 5%."""
    worst = max(abs(r.mean_latency_s / theory_s - 1) for r in rows)
    print(f"{workload} mean latency, theory ({why}): {theory_s:.5g} s; the farthest model is off by {worst:.1%}")
    if worst > 0.05:
        print(f"WARNING: a {workload} model's mean latency is more than 5% from theory", file=sys.stderr)


def ratio_of(rows: list[Row], name: str) -> str:
    """Our W requests/s over the named W peer's, 2 decimals, or ``na`` if that peer did not run."""
    found = [r.ratio for r in rows if r.workload == "W" and r.name.startswith(name) and r.ratio is not None]
    return f"{found[0]:.2f}" if found else "na"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line flags: --requests N (per workload, default 200000), --quick (N / 10), --repeat K."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--requests", type=int, default=FULL_REQUESTS, help="requests per workload (default 200000)")
    parser.add_argument("--quick", action="store_true", help="scale every workload down 10x (a smoke test)")
    parser.add_argument("--repeat", type=int, default=5, help="timed runs per model, best kept (default 5; Ciw: 1)")
    args = parser.parse_args(argv)
    if args.quick:
        args.requests //= 10
    if args.requests < CLIENTS:
        parser.error(f"--requests must be >= {CLIENTS}")
    if args.repeat < 1:
        parser.error("--repeat must be >= 1")
    return args


def main(argv: list[str] | None = None) -> None:
    """Run every benchmark and print the table, the sanity checks and the ratios line."""
    args = parse_args(argv)
    versions = f"python {platform.python_version()}, simpy {simpy.__version__}, numpy {np.__version__}"
    print(f"{datetime.datetime.now().astimezone():%Y-%m-%d %H:%M %Z}  {platform.machine()}, {os.cpu_count()} cpus")
    w_rows, fast, peak, fast_peak, columns, ciw_version = measure_w(args.requests // CLIENTS, args.repeat)
    demo_rows = measure_demo(args.requests // 2, args.repeat)
    print(f"{versions}, ciw {ciw_version}\n")
    print(table([w_rows[0], fast, *w_rows[1:], *demo_rows]))
    print()
    check("W", [*w_rows, fast], W_THEORY_S, "M/M/1 at rho 0.25: 1/(1-0.25) + 0.2 s network")
    check("demo", demo_rows, DEMO_THEORY_S, "no queueing: at most 2 requests in flight")
    if ciw_version != "na":
        print("ciw: the 0.1 s trips are modelled as infinite-server Deterministic(0.1) nodes, not left out")
    print(
        f"memory, W: tracemalloc peak {peak:.0f} bytes/request through run(), {fast_peak:.0f} through run_fast(); "
        f"RunResult columns {columns:.0f}"
    )
    fast_vs_des = fast.rps / w_rows[0].rps
    print(
        f"fast path on W: {fast.rps:,.0f} requests/s, {fast_vs_des:.1f}x the DES "
        f"(targets: >= 20x and >= 3,000,000 requests/s)"
    )
    w = {name: ratio_of(w_rows, name) for name in ("simpy callback", "simpy process", "ciw")}
    print(
        f"ratios: vs_simpy_callback={w['simpy callback']} vs_simpy_process={w['simpy process']} "
        f"vs_ciw={w['ciw']} fast_vs_des={fast_vs_des:.2f}"
    )


if __name__ == "__main__":
    main()
