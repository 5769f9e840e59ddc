"""Benchmark the event path (``sim.engine.run``) and the event-free solver (``sim.facade`` with engine des and
fast) against the strongest hand-written models of the same system, each against its own anchor.

Usage: ``python benchmarks/run.py [--quick] [--requests N] [--rounds K]``. Everything runs in one process,
interleaved: each round runs every model of a workload once, round robin, and a model's time is the **median** of
its rounds (min-max beside it). The last line is
``ratios: vs_simpy_callback=X vs_simpy_process=X vs_ciw=X vs_heapq=X fanout_vs_simpy_callback=X fanout_vs_heapq=X
closed_loop_vs_simpy_callback=X solver_vs_lindley=X fast_vs_lindley=X``: the event path's requests/s over the
peer's on W, then on the fan-out, then on the closed loop W3; then the event-free solver's (exact, and fast) over
numpy Lindley's on the fan-out.

Two open-loop workloads, the same but for the network:

- **fan-out** (the classic): 4 clients each sending Poisson 0.5 requests/s to 8 single-server backends, exponential
  service with mean 1 s, backend picked uniformly at random, no network. Each backend is M/M/1 at lambda 0.25,
  mu 1: mean latency 1 / (1 - 0.25) = 1.333 s.
- **W**: the fan-out with a constant 0.1 s trip each way: 1.333 + 0.2 = 1.533 s.

Per workload the peers are the minimal hand-written models (they share one set of draws, so they must agree with
each other to rounding, and the script checks it): SimPy processes with a ``simpy.Resource``; SimPy callbacks with
the fewest events the model allows (two a request: the arrival at the backend, with the trip out folded into the
client's send schedule, and the service's end, with the trip back folded into the reply time); a bare ``heapq``
event loop with the same two events; numpy Lindley (a single-server FIFO queue's departures as one cumulative
maximum per backend, no events at all); and Ciw. No request of these workloads waits on another's state, so
``simulate(engine="des")`` takes the event-free solver's exact way (``solver: simulate des``: the event path's
records byte for byte, checked here) and ``fast`` its numpy way; ``ours: events`` is the event path on the same
scenario, and ``ours: shortcuts=False`` the event path with every step of every request an event.

**W3**, the closed loop no shortcut can settle: 32 clients, each ``while true; think Exp(mean 8 s); request``,
8 single-worker FIFO backends with Exp(mean 1 s) service, picked uniformly at random, no network, 6,250 requests
a client at full size (200,000). Its anchor is the minimal SimPy callback model with two events a request (the
think, the service). Theory: exact Mean Value Analysis of the closed network (``mva_latency_s``).

Demo: experiments/cilium_demo.toml scaled up: one client curls two Services in a closed loop, next to a callback
SimPy model of it.
"""

from __future__ import annotations

import argparse
import datetime
import gc
import heapq
import os
import platform
import statistics
import sys
import time
import tracemalloc
from array import array
from collections import deque
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import simpy

from sim.cluster import Pod, Service
from sim.distributions import Constant, Exponential
from sim.engine import run
from sim.facade import simulate
from sim.io import load_scenario
from sim.outcomes import Outcome
from sim.records import RunResult
from sim.routing import DataplaneConfig
from sim.scenario import Scenario, Stream
from sim.solver import events_needed
from sim.topology import ElementKind, Link, Topology
from sim.workload import ClosedLoop, Poisson

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "experiments" / "cilium_demo.toml"
SEED = 20261126
FULL_REQUESTS = 200_000

CLIENTS = 4
BACKENDS = 8
CLIENT_RATE_RPS = 0.5
SERVICE_MEAN_S = 1.0
RHO = CLIENTS * CLIENT_RATE_RPS / BACKENDS * SERVICE_MEAN_S
MM1_MEAN_S = SERVICE_MEAN_S / (1.0 - RHO)
"""M/M/1 mean time in system (s) of each backend: 1 / (mu - lambda)."""

# The demo as written in experiments/cilium_demo.toml and topologies/kind.toml
DEMO_SERVICE_MEAN_S = 0.0002
DEMO_CONCURRENCY = 4
DEMO_SAME_NODE_S = 0.00002  # one same-node draw per trip
DEMO_BRIDGE_HOP_S = 0.00005  # two such hops per trip between kind-worker and kind-worker2
DEMO_LOCAL, DEMO_REMOTE, DEMO_ECHO2 = 0, 1, 2  # echo-1-kind-worker, echo-1-kind-worker2, echo-2-kind-worker
DEMO_THEORY_S = DEMO_SERVICE_MEAN_S + 2 * (0.75 * DEMO_SAME_NODE_S + 0.25 * 2 * DEMO_BRIDGE_HOP_S)  # 1/4 remote

Process = Generator[simpy.Event, object, None]
Times = tuple[np.ndarray, np.ndarray]
"""Per-request send and return times, in seconds of simulated time."""


@dataclass(frozen=True)
class Workload:
    """An open-loop fan-out workload: ``one_way_s`` seconds of constant network each way (0: none)."""

    name: str
    one_way_s: float

    @property
    def theory_s(self) -> float:
        """Mean latency (s): the M/M/1 time in system plus the two trips."""
        return MM1_MEAN_S + 2 * self.one_way_s


FANOUT = Workload("fan-out", 0.0)
W = Workload("W", 0.1)

# W3: a closed loop that no shortcut can settle (every send waits for the previous reply)
W3_CLIENTS = 32
W3_THINK_MEAN_S = 8.0
W3_BACKENDS = 8
W3_SERVICE_MEAN_S = 1.0


def mva_latency_s(clients: int, think_s: float, queues: int, service_s: float) -> float:
    """Mean latency (s) of a closed network: ``clients`` customers, a delay station of mean ``think_s``, and
    ``queues`` single-server FIFO queues of mean service ``service_s``, each visited with probability 1/queues.
    Exact Mean Value Analysis (Reiser and Lavenberg 1980): R_k(n) = D_k (1 + Q_k(n-1)), X(n) = n / (Z + sum R_k(n)),
    Q_k(n) = X(n) R_k(n), with demand D_k = service_s / queues; the latency is sum R_k(N).

    >>> round(mva_latency_s(1, 8.0, 8, 1.0), 12)  # one customer never waits: the service time
    1.0
    """
    demand = service_s / queues
    queue = 0.0  # the queues are alike: one of them stands for all
    latency = 0.0
    for n in range(1, clients + 1):
        per_queue = demand * (1.0 + queue)
        latency = queues * per_queue
        queue = n / (think_s + latency) * per_queue
    return latency


W3_THEORY_S = mva_latency_s(W3_CLIENTS, W3_THINK_MEAN_S, W3_BACKENDS, W3_SERVICE_MEAN_S)


@dataclass(frozen=True)
class Row:
    """One measured model: requests simulated, its rounds' wall-clock seconds, mean latency (s), its reference row."""

    workload: str
    name: str
    requests: int
    rounds: tuple[float, ...]
    mean_latency_s: float
    ours: Row | None = None

    @property
    def seconds(self) -> float:
        """The median of the rounds' seconds."""
        return statistics.median(self.rounds)

    @property
    def rps(self) -> float:
        """Simulated requests per wall-clock second, at the median time."""
        return self.requests / self.seconds

    @property
    def ratio(self) -> float | None:
        """Our requests/s over this model's, at the medians (None for the reference row itself)."""
        return None if self.ours is None or self.ours is self else self.ours.rps / self.rps


def race(models: Mapping[str, Callable[[], Any]], rounds: int) -> dict[str, tuple[Any, list[float]]]:
    """Time each model once per round, round robin, each call after a garbage collection.

    Returns per model its last value and the seconds of every round: medians are taken from these, never the best
    (best-of-N flatters whichever model happened to catch a quiet moment).
    """
    timed: dict[str, tuple[Any, list[float]]] = {}
    for _ in range(rounds):
        for name, model in models.items():
            gc.collect()
            start = time.perf_counter()
            value = model()
            seconds = time.perf_counter() - start
            timed[name] = (value, [*timed.get(name, (None, []))[1], seconds])
    return timed


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


# --- the fan-out workloads through our engine ------------------------------------------------------------------


def scenario_of(workload: Workload, per_client: int) -> Scenario:
    """Clients and backends on their own nodes around one switch, ``one_way_s / 2`` constant links."""
    clients = [f"client-{k}" for k in range(CLIENTS)]
    streams = tuple(Stream(c, "backend", Poisson(CLIENT_RATE_RPS), requests=per_client) for c in clients)
    link = Constant(workload.one_way_s / 2)
    address = "10.244.{}.2".format
    return star_scenario(f"workload-{workload.name}", clients, BACKENDS, link, SERVICE_MEAN_S, streams, address)


def star_scenario(
    name: str,
    clients: list[str],
    backends: int,
    link: Constant,
    service_mean_s: float,
    streams: tuple[Stream, ...],
    address: Callable[[int], str],
) -> Scenario:
    """Each client and ``backends`` single-worker FIFO backends (Exp(``service_mean_s``) service) on a node of its
    own around one switch by ``link``, pod ``i`` at ``address(i)`` (each workload keeps the addresses its
    recorded figures were drawn with: the draws are keyed by them); Service ``backend`` picks at random."""
    names = clients + [f"backend-{b}" for b in range(backends)]
    nodes = [f"node-{name}" for name in names]
    topology = Topology(
        name="star",
        nodes={node: {} for node in nodes},
        elements={"switch": ElementKind.SWITCH},
        links=[Link(node, "switch", link) for node in nodes],
        same_node=Constant(0.0),
    )
    pods = tuple(
        Pod(
            name=pod,
            node=f"node-{pod}",
            ip=address(i),
            labels={"app": "client" if i < len(clients) else "backend"},
            service_time=Exponential(service_mean_s),
            concurrency=1,
        )
        for i, pod in enumerate(names)
    )
    return Scenario(
        name=name,
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


# --- the minimal hand-written models -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Draws:
    """Per-request random numbers, indexed by request i = client * per_client + j: gap before send (s), backend
    index, service time (s). Every hand-written model draws them the same way, inside its timed region."""

    gaps: np.ndarray
    backend: np.ndarray
    service: np.ndarray

    @classmethod
    def draw(cls, per_client: int, seed: int) -> Draws:
        """Draw every number up front in three numpy blocks."""
        rng = np.random.default_rng(seed)
        n = CLIENTS * per_client
        return cls(
            rng.exponential(1.0 / CLIENT_RATE_RPS, n),
            rng.integers(0, BACKENDS, n),
            rng.exponential(SERVICE_MEAN_S, n),
        )


def simpy_process(workload: Workload, per_client: int, seed: int) -> Times:
    """One generator process per request and a simpy.Resource(capacity=1) per backend; a trip is a timeout."""
    env = simpy.Environment()
    d = Draws.draw(per_client, seed)
    gaps, backend, service = d.gaps.tolist(), d.backend.tolist(), d.service.tolist()
    one_way = workload.one_way_s
    servers = [simpy.Resource(env, capacity=1) for _ in range(BACKENDS)]
    sent, returned = zeros(CLIENTS * per_client), zeros(CLIENTS * per_client)

    def request(i: int) -> Process:
        sent[i] = env.now
        if one_way:
            yield env.timeout(one_way)
        with servers[backend[i]].request() as slot:
            yield slot
            yield env.timeout(service[i])
        if one_way:
            yield env.timeout(one_way)
        returned[i] = env.now

    def client(k: int) -> Process:
        for i in range(k * per_client, (k + 1) * per_client):
            yield env.timeout(gaps[i])
            env.process(request(i))

    for k in range(CLIENTS):
        env.process(client(k))
    env.run()
    return as_times(sent, returned)


def simpy_callback(workload: Workload, per_client: int, seed: int) -> Times:
    """Callbacks on ``env.timeout`` events, two a request: the arrival at the backend (each client's next arrival is
    scheduled from its last, the trip out folded in) and the end of service (the trip back folded into the reply
    time, which nothing waits for). A hand-rolled FIFO queue per backend; ``ev._value`` read as sim/engine.py does.
    """
    env = simpy.Environment()
    timeout = env.timeout
    d = Draws.draw(per_client, seed)
    gaps, backend, service = d.gaps.tolist(), d.backend.tolist(), d.service.tolist()
    one_way = workload.one_way_s
    busy = [False] * BACKENDS
    queues: list[deque[int]] = [deque() for _ in range(BACKENDS)]
    sent, returned = zeros(CLIENTS * per_client), zeros(CLIENTS * per_client)

    def arrive(ev: simpy.Event) -> None:
        i = ev._value
        sent[i] = env.now - one_way
        if (i + 1) % per_client:
            timeout(gaps[i + 1], i + 1).callbacks.append(arrive)
        b = backend[i]
        if busy[b]:
            queues[b].append(i)
        else:
            busy[b] = True
            timeout(service[i], i).callbacks.append(finish)

    def finish(ev: simpy.Event) -> None:
        i = ev._value
        returned[i] = env.now + one_way
        queue = queues[backend[i]]
        if queue:
            j = queue.popleft()
            timeout(service[j], j).callbacks.append(finish)
        else:
            busy[backend[i]] = False

    for k in range(CLIENTS):
        first = k * per_client
        timeout(gaps[first] + one_way, first).callbacks.append(arrive)
    env.run()
    return as_times(sent, returned)


def heapq_loop(workload: Workload, per_client: int, seed: int) -> Times:
    """A bare event loop over a ``heapq`` of (time s, request, kind): the same two events a request as the
    callback model, no simulation library."""
    d = Draws.draw(per_client, seed)
    gaps, backend, service = d.gaps.tolist(), d.backend.tolist(), d.service.tolist()
    one_way = workload.one_way_s
    busy = [False] * BACKENDS
    queues: list[deque[int]] = [deque() for _ in range(BACKENDS)]
    sent, returned = zeros(CLIENTS * per_client), zeros(CLIENTS * per_client)
    push, pop = heapq.heappush, heapq.heappop
    events = [(gaps[k * per_client] + one_way, k * per_client, True) for k in range(CLIENTS)]
    heapq.heapify(events)
    while events:
        now, i, arrival = pop(events)
        b = backend[i]
        if arrival:
            sent[i] = now - one_way
            if (i + 1) % per_client:
                push(events, (now + gaps[i + 1], i + 1, True))
            if busy[b]:
                queues[b].append(i)
            else:
                busy[b] = True
                push(events, (now + service[i], i, False))
        else:
            returned[i] = now + one_way
            queue = queues[b]
            if queue:
                j = queue.popleft()
                push(events, (now + service[j], j, False))
            else:
                busy[b] = False
    return as_times(sent, returned)


def numpy_lindley(workload: Workload, per_client: int, seed: int) -> Times:
    """No events: send times are each client's running sum of gaps, and a single-server FIFO backend's departures
    are ``D_n = C_n + max_{k<=n}(A_k - C_{k-1})`` (the Lindley recursion unrolled; C the running sum of service
    times in arrival order), one ``np.maximum.accumulate`` per backend."""
    d = Draws.draw(per_client, seed)
    sent = d.gaps.reshape(CLIENTS, per_client).cumsum(axis=1).ravel()
    arrive = sent + workload.one_way_s
    returned = np.empty_like(sent)
    order = np.argsort(arrive, kind="stable")
    by_backend = order[np.argsort(d.backend[order], kind="stable")]
    bounds = np.searchsorted(d.backend[by_backend], np.arange(BACKENDS + 1))
    for b in range(BACKENDS):
        idx = by_backend[bounds[b] : bounds[b + 1]]
        served = d.service[idx]
        done = served.cumsum()
        returned[idx] = done + np.maximum.accumulate(arrive[idx] - (done - served)) + workload.one_way_s
    return sent, returned


def ciw_model(workload: Workload, requests: int, seed: int, ours: Row) -> tuple[Row, str] | None:
    """The workload in Ciw, run until ``requests`` customers have left; with Ciw's version, or None if it is not
    installed.

    The backends are nodes (1 server, Exp(1)), each reached with probability 1/8; with a network, a trip out and a
    trip back are infinite-server Deterministic nodes before and after them. Arrivals: one Poisson stream at the
    total 2.0 requests/s (the superposition of the four 0.5 requests/s clients). Timed: building the Simulation
    and simulating.
    """
    try:
        import ciw  # an optional peer: pip install -e '.[bench]'
    except ImportError:
        return None
    trips = workload.one_way_s > 0
    first = 1 if trips else 0  # the index of the first backend node
    size = BACKENDS + (2 if trips else 0)
    routing = [[0.0] * size for _ in range(size)]
    for b in range(first, first + BACKENDS):
        if trips:
            routing[0][b] = 1.0 / BACKENDS
            routing[b][size - 1] = 1.0
    backends = [ciw.dists.Exponential(1.0 / SERVICE_MEAN_S)] * BACKENDS
    total = ciw.dists.Exponential(CLIENTS * CLIENT_RATE_RPS)
    if trips:
        trip = ciw.dists.Deterministic(workload.one_way_s)
        arrivals = [total] + [None] * (BACKENDS + 1)
        services = [trip, *backends, trip]
        servers = [float("inf")] + [1] * BACKENDS + [float("inf")]
    else:  # no network: the Poisson stream split evenly, as random choice splits it
        arrivals = [ciw.dists.Exponential(CLIENTS * CLIENT_RATE_RPS / BACKENDS)] * BACKENDS
        services, servers = backends, [1] * BACKENDS
    network = ciw.create_network(
        arrival_distributions=arrivals,
        service_distributions=services,
        number_of_servers=servers,
        routing=routing,
    )

    def simulate() -> Any:  # a ciw.Simulation (Ciw has no type hints)
        ciw.seed(seed)  # seeds the global `random` module: allowed only here, for the peer
        sim = ciw.Simulation(network)
        sim.simulate_until_max_customers(requests, method="Finish")
        return sim

    sim, seconds = race({"ciw": simulate}, 1)["ciw"]
    records = sim.get_all_records()
    if trips:
        sent = {r.id_number: r.arrival_date for r in records if r.node == 1}
        latencies = [r.exit_date - sent[r.id_number] for r in records if r.node == size]
    else:
        latencies = [r.exit_date - r.arrival_date for r in records]
    name = "ciw (delays as nodes)" if trips else "ciw"
    row = Row(workload.name, name, len(latencies), tuple(seconds), float(np.mean(latencies)), ours)
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


OURS = "ours: events"
SOLVER = "solver: simulate des"
FAST = "fast: simulate fast"
FULL = "ours: shortcuts=False"
CALLBACK = "simpy callback"
PROCESS = "simpy process"
HEAPQ = "heapq loop"
LINDLEY = "numpy Lindley"
HAND_WRITTEN = (CALLBACK, HEAPQ, LINDLEY, PROCESS)


@dataclass(frozen=True)
class Measured:
    """One workload's rows: the event path first (the reference of the peers' ratios), then the event-free
    solver's two ways (``solvers``: their own anchor is numpy Lindley, not the event path), and the peers' versions."""

    rows: list[Row]
    solvers: list[Row]
    ciw_version: str

    def row(self, name: str) -> Row | None:
        """The row of the model called ``name`` (a prefix), if it ran."""
        return next((r for r in [*self.rows, *self.solvers] if r.name.startswith(name)), None)


def measure(workload: Workload, per_client: int, rounds: int) -> Measured:
    """Every model of ``workload``, interleaved over ``rounds`` rounds; Ciw once, after them."""
    n = CLIENTS * per_client
    scenario = scenario_of(workload, per_client)
    assert events_needed(scenario) is None
    models: dict[str, Callable[[], RunResult | Times]] = {
        OURS: lambda: run(scenario, SEED),  # the event path: one event per send and per arrival
        SOLVER: lambda: simulate(scenario, SEED, "des"),  # the event-free solver, exact: the same records
        FAST: lambda: simulate(scenario, SEED, "fast"),  # the same scenario object, timed end to end
        FULL: lambda: run(scenario, SEED, shortcuts=False),  # every step an event: what the shortcuts save
        CALLBACK: lambda: simpy_callback(workload, per_client, SEED),
        HEAPQ: lambda: heapq_loop(workload, per_client, SEED),
        LINDLEY: lambda: numpy_lindley(workload, per_client, SEED),
        PROCESS: lambda: simpy_process(workload, per_client, SEED),
    }
    raced = race(models, rounds)
    for name in (OURS, SOLVER, FAST):
        value = raced[name][0]
        assert isinstance(value, RunResult) and value.counts()["ok"] == n
    ours, solved = raced[OURS][0], raced[SOLVER][0]
    assert isinstance(ours, RunResult) and isinstance(solved, RunResult) and solved.engine == "solver"
    if any(ours.columns[k].tobytes() != solved.columns[k].tobytes() for k in ours.columns):
        print(f"WARNING: {workload.name}: the exact solver and the event path differ", file=sys.stderr)
    agree(workload, {name: raced[name][0] for name in HAND_WRITTEN})
    solvers = []
    for name in (SOLVER, FAST):
        value, times = raced.pop(name)
        solvers.append(Row(workload.name, name, n, tuple(times), mean_latency(value)))  # no ratio to the events
    rows = rows_of(workload.name, n, raced)
    peer = ciw_model(workload, n, SEED, rows[0])  # once: Ciw takes ~30x as long as ours, far beyond timing noise
    if peer is not None:
        rows.append(peer[0])
    return Measured(rows, solvers, "na" if peer is None else peer[1])


# --- W3: the closed loop -----------------------------------------------------------------------------------------


def scenario_w3(per_client: int) -> Scenario:
    """W3 in our model: ``W3_CLIENTS`` closed-loop clients (think Exp(mean 8 s), then the next request), each on
    its own node, ``W3_BACKENDS`` single-worker FIFO backends with Exp(mean 1 s) service, picked uniformly at
    random, and no network (every link 0 s)."""
    clients = [f"client-{k}" for k in range(W3_CLIENTS)]
    think = ClosedLoop(Exponential(W3_THINK_MEAN_S))
    streams = tuple(Stream(c, "backend", think, requests=per_client) for c in clients)
    return star_scenario("workload-W3", clients, W3_BACKENDS, Constant(0.0), W3_SERVICE_MEAN_S, streams, _w3_address)


def _w3_address(i: int) -> str:
    """Pod ``i``'s address in W3 (250 a /24)."""
    return f"10.244.{i // 250}.{i % 250 + 2}"


def simpy_callback_w3(per_client: int, seed: int) -> Times:
    """W3 as the minimal SimPy callback model: two ``env.timeout`` events a request, the think (whose callback is
    the arrival at the backend: no network) and the service (whose callback records the reply and starts the
    client's next think, and the backend's next request). A hand-rolled FIFO queue per backend; every number drawn
    up front (request i = client * per_client + j): think before it (s), backend index, service time (s)."""
    env = simpy.Environment()
    timeout = env.timeout
    n = W3_CLIENTS * per_client
    rng = np.random.default_rng(seed)
    think = rng.exponential(W3_THINK_MEAN_S, n).tolist()
    backend = rng.integers(0, W3_BACKENDS, n).tolist()
    service = rng.exponential(W3_SERVICE_MEAN_S, n).tolist()
    busy = [False] * W3_BACKENDS
    queues: list[deque[int]] = [deque() for _ in range(W3_BACKENDS)]
    sent, returned = zeros(n), zeros(n)

    def arrive(ev: simpy.Event) -> None:
        i = ev._value
        sent[i] = env.now
        b = backend[i]
        if busy[b]:
            queues[b].append(i)
        else:
            busy[b] = True
            timeout(service[i], i).callbacks.append(finish)

    def finish(ev: simpy.Event) -> None:
        i = ev._value
        returned[i] = env.now
        if (i + 1) % per_client:
            timeout(think[i + 1], i + 1).callbacks.append(arrive)
        b = backend[i]
        queue = queues[b]
        if queue:
            j = queue.popleft()
            timeout(service[j], j).callbacks.append(finish)
        else:
            busy[b] = False

    for k in range(W3_CLIENTS):
        first = k * per_client
        timeout(think[first], first).callbacks.append(arrive)
    env.run()
    return as_times(sent, returned)


def measure_w3(per_client: int, rounds: int) -> list[Row]:
    """W3 through our event path (``simulate``: a closed loop needs events) and the minimal callback model."""
    scenario = scenario_w3(per_client)
    n = W3_CLIENTS * per_client
    models: dict[str, Callable[[], RunResult | Times]] = {
        OURS: lambda: simulate(scenario, SEED, "des"),
        FULL: lambda: run(scenario, SEED, shortcuts=False),
        CALLBACK: lambda: simpy_callback_w3(per_client, SEED),
    }
    raced = race(models, rounds)
    result = raced[OURS][0]
    assert isinstance(result, RunResult) and result.engine == "events" and result.counts()["ok"] == n
    return rows_of("W3", n, raced)


def agree(workload: Workload, values: Mapping[str, Times]) -> None:
    """The hand-written models share their draws, so they must return the same latencies to float rounding."""
    names = list(values)
    first = values[names[0]][1] - values[names[0]][0]
    for name in names[1:]:
        other = values[name][1] - values[name][0]
        if not np.allclose(first, other, rtol=0, atol=1e-6):
            worst = float(np.max(np.abs(first - other)))
            print(f"WARNING: {workload.name}: {name} differs from {names[0]} by up to {worst:.3g} s", file=sys.stderr)


def rows_by(rows: list[Row], name: str) -> Row:
    """The row called ``name``."""
    return next(r for r in rows if r.name == name)


def measure_demo(per_stream: int, rounds: int) -> list[Row]:
    """Our run of the scaled cilium demo, and the hand-written callback model of it."""
    scenario, seed = load_scenario(DEMO, {"requests": per_stream})
    models: dict[str, Callable[[], RunResult | Times]] = {
        OURS: lambda: run(scenario, seed),
        FULL: lambda: run(scenario, seed, shortcuts=False),
        CALLBACK: lambda: simpy_callback_demo(per_stream, seed),
    }
    raced = race(models, rounds)
    result = raced[OURS][0]
    assert isinstance(result, RunResult) and result.counts()["ok"] == 2 * per_stream
    return rows_of("demo", 2 * per_stream, raced)


def rows_of(workload: str, requests: int, raced: Mapping[str, tuple[RunResult | Times, list[float]]]) -> list[Row]:
    """Table rows from ``race`` results; the first model is ours, the reference of the others' ratios."""
    rows: list[Row] = []
    for name, (value, rounds) in raced.items():
        rows.append(Row(workload, name, requests, tuple(rounds), mean_latency(value), rows[0] if rows else None))
    return rows


def table(rows: list[Row]) -> str:
    """The rows as a fixed-width text table: median seconds with the rounds' min-max."""
    lines = [
        f"{'workload':<9}{'model':<24}{'requests':>9}{'median s':>10}{'min-max s':>16}{'requests/s':>12}"
        f"{'mean latency s':>16}{'ours/peer':>11}"
    ]
    for r in rows:
        ratio = "-" if r.ratio is None else f"{r.ratio:.2f}"
        spread = f"{min(r.rounds):.3f}-{max(r.rounds):.3f}" if len(r.rounds) > 1 else "(1 run)"
        lines.append(
            f"{r.workload:<9}{r.name:<24}{r.requests:>9}{r.seconds:>10.3f}{spread:>16}{r.rps:>12.0f}"
            f"{r.mean_latency_s:>16.5g}{ratio:>11}"
        )
    return "\n".join(lines)


def check(workload: str, rows: list[Row], theory_s: float, why: str) -> None:
    """Print how far each model's mean latency is from theory; warn on stderr beyond 5%."""
    worst = max(rows, key=lambda r: abs(r.mean_latency_s / theory_s - 1))
    off = abs(worst.mean_latency_s / theory_s - 1)
    print(f"{workload} mean latency, theory ({why}): {theory_s:.5g} s; farthest: {worst.name}, off by {off:.1%}")
    if off > 0.05:
        print(f"WARNING: a {workload} model's mean latency is more than 5% from theory", file=sys.stderr)


def ratio(m: Measured, name: str) -> str:
    """Our DES's requests/s over the named peer's (medians), 2 decimals, or ``na`` if that peer did not run."""
    row = m.row(name)
    return "na" if row is None or row.ratio is None else f"{row.ratio:.2f}"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line flags: --requests N (per workload, default 200000), --quick (N / 10), --rounds K."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--requests", type=int, default=FULL_REQUESTS, help="requests per workload (default 200000)")
    parser.add_argument("--quick", action="store_true", help="scale every workload down 10x (a smoke test)")
    parser.add_argument(
        "--rounds", type=int, default=5, help="interleaved rounds; medians reported (default 5; Ciw: 1)"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.requests //= 10
    if args.requests < CLIENTS:
        parser.error(f"--requests must be >= {CLIENTS}")
    if args.rounds < 1:
        parser.error("--rounds must be >= 1")
    return args


def main(argv: list[str] | None = None) -> None:
    """Run every benchmark and print the table, the sanity checks and the ratios line."""
    args = parse_args(argv)
    versions = f"python {platform.python_version()}, simpy {simpy.__version__}, numpy {np.__version__}"
    print(f"{datetime.datetime.now().astimezone():%Y-%m-%d %H:%M %Z}  {platform.machine()}, {os.cpu_count()} cpus")
    per_client = args.requests // CLIENTS
    fanout = measure(FANOUT, per_client, args.rounds)
    w = measure(W, per_client, args.rounds)
    w3_rows = measure_w3(max(1, args.requests // W3_CLIENTS), args.rounds)
    demo_rows = measure_demo(args.requests // 2, args.rounds)
    print(f"{versions}, ciw {w.ciw_version}; medians of {args.rounds} interleaved rounds\n")
    print(table([*fanout.rows[:1], *fanout.solvers, *fanout.rows[1:], *w.rows[:1], *w.solvers, *w.rows[1:]]))
    print(table([*w3_rows, *demo_rows]).split("\n", 1)[1])
    print()
    for m, workload in ((fanout, FANOUT), (w, W)):
        net = "" if not workload.one_way_s else f" + {2 * workload.one_way_s:g} s network"
        check(workload.name, [*m.rows, *m.solvers], workload.theory_s, f"M/M/1 at rho {RHO:g}: 1/(1-{RHO:g}){net}")
    check("W3", w3_rows, W3_THEORY_S, f"exact MVA, {W3_CLIENTS} clients, think 8 s, {W3_BACKENDS} M/M/1 queues")
    check("demo", demo_rows, DEMO_THEORY_S, "no queueing: at most 2 requests in flight")
    if w.ciw_version != "na":
        print("ciw on W: the 0.1 s trips are modelled as infinite-server Deterministic(0.1) nodes, not left out")
    n = CLIENTS * per_client
    peak = peak_bytes_per_request(scenario_of(W, per_client), n, run)
    fast_peak = peak_bytes_per_request(scenario_of(W, per_client), n, lambda sc, seed: simulate(sc, seed, "fast"))
    columns = run(scenario_of(W, per_client), SEED).nbytes_per_request()
    print(
        f"memory, W: tracemalloc peak {peak:.0f} bytes/request through the event path, {fast_peak:.0f} through "
        f"simulate(engine='fast'); RunResult columns {columns:.0f}"
    )
    solver_lindley = fanout.solvers[0].rps / rows_by(fanout.rows, LINDLEY).rps  # both build per-request times
    fast_lindley = fanout.solvers[1].rps / rows_by(fanout.rows, LINDLEY).rps
    closed = rows_by(w3_rows, OURS).rps / rows_by(w3_rows, CALLBACK).rps
    print(
        f"targets: event path >= 1.0x the minimal callback model on the closed loop W3 ({closed:.2f}; issue 22); "
        f"fast path >= 0.7x numpy Lindley on the fan-out ({fast_lindley:.2f}; issue 16)"
    )
    print(
        f"ratios: vs_simpy_callback={ratio(w, CALLBACK)} vs_simpy_process={ratio(w, PROCESS)} "
        f"vs_ciw={ratio(w, 'ciw')} vs_heapq={ratio(w, HEAPQ)} fanout_vs_simpy_callback={ratio(fanout, CALLBACK)} "
        f"fanout_vs_heapq={ratio(fanout, HEAPQ)} closed_loop_vs_simpy_callback={closed:.2f} "
        f"solver_vs_lindley={solver_lindley:.2f} fast_vs_lindley={fast_lindley:.2f}"
    )


if __name__ == "__main__":
    main()
