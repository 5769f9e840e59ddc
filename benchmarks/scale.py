"""Scale benchmark: a generated leaf-spine multi-zone cluster, 10,000 backend pods, 100 Services, 1M requests.

Usage: ``python benchmarks/scale.py [--quick] [--repeat K] [--nodes N] [--requests R]``.

Cluster (``leaf_spine``): N nodes (default 1,000) in 3 zones, racks of ~20 nodes under a leaf switch, each leaf
linked to every spine of its zone (2-4), each spine to both core routers. One-way link delays: node-leaf
Exponential(20 us), leaf-spine LogNormal(50 us), spine-core LogNormal(250 us), so a cross-zone trip is ~500 us
longer than a same-zone one; same node Exponential(10 us). Nodes carry the zone label and 16 or 32 CPUs.

Workload (``scenario``): 100 Services x 100 backend pods (10,000, placed at random, 10 a node on 1,000 nodes),
1-4 workers each, exponential service; Services 0-9 ``internalTrafficPolicy: Local`` (2 ms mean), 10-14
``trafficDistribution: PreferSameZone``, the rest ``Cluster`` (10 ms mean). 1,000 client pods round robin over
the nodes, two open-loop Poisson streams each (200,000 requests/s in all), R requests in all (default
1,000,000). iptables dataplane, random picker.

Measured, each configuration in a fresh child process (``--child``) so that its peak RSS is its own: setup
(Topology, Scenario with its validation, and the plan's route building: ``sim.facade.choose``), the DES (the
rest of ``simulate(scenario, seed, "des")``: on this open-loop headline the event-free solver's exact way), peak
RSS, and in one more process tracemalloc's peak; the fast path (``simulate(..., "fast")``) on the same headline.
Then how the costs grow with requests (R/100, R/10, R at N nodes) and with nodes (10, 100, N at R/10). The last line is
``scale: graph_s=X setup_s=X des_s=X fast_s=X peak_mb=X`` for the headline (N nodes, R requests). ``--quick`` divides
R by 10.

Targets (issue 6, item 5): setup (graph + path latencies) <= 2 s, DES <= 15 s, peak memory <= 300 MB.

``--size k8s-limits`` (issue 16, item 4): Kubernetes' own limits, 5,000 nodes, 150,000 pods (10,000 Services x 14
backends, 10,000 clients), 10M requests; setup alone, the fast path and the DES, each in a child bounded by
``--timeout``; the last line is ``k8s-limits: setup_s=X fast_s=X des_s=X peak_mb=X fast_peak_mb=X des_peak_mb=X
record_bytes=X`` (peak_mb: the larger of the two engines'). Targets:
setup <= 10 s, DES <= 150 s, fast path <= 20 s, peak memory <= 2 GB, records <= 64 bytes per request.

``--growth`` (issue 16, item 6): wall and CPU seconds and peak RSS of the DES and the fast path against requests
(10k-10M at 1,000 nodes) and nodes (10-5,000 at 100k requests), medians of ``--repeat`` runs, fitted exponents.
"""

from __future__ import annotations

import argparse
import datetime
import gc
import ipaddress
import json
import math
import os
import platform
import resource
import subprocess
import sys
import time
import tracemalloc
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np
import simpy
from run import CLIENTS as W_CLIENTS  # benchmarks/run.py: workload W, the speed reference
from run import W, scenario_of

from sim.cluster import ZONE_LABEL, Pod, Service, TrafficDistribution, TrafficPolicy
from sim.distributions import Exponential, LogNormal
from sim.facade import choose, simulate
from sim.routing import DataplaneConfig
from sim.scenario import Scenario, Stream
from sim.topology import ElementKind, Link, Topology
from sim.workload import Poisson

SEED = 20261126
SETUP_TARGET_S, DES_TARGET_S, MEMORY_TARGET_MB = 2.0, 15.0, 300.0
MB = 2**20
W_REFERENCE = 100_000  # requests of workload W timed as the machine's speed reference (--quick: 10,000)

# The cluster
ZONES = 3
RACK_NODES = 20
NODE_LEAF = Exponential(20e-6)  # NIC, veth and top-of-rack port: ~20 us one way
LEAF_SPINE = LogNormal(50e-6, 0.3)  # ~50 us
SPINE_CORE = LogNormal(250e-6, 0.3)  # two of these between zones: ~500 us more than a same-zone trip
SAME_NODE = Exponential(10e-6)  # veth and the host bridge
CORES = 2

# The workload
SERVICES = 100
ENDPOINTS = 100  # backend pods per Service
LOCAL_SERVICES = 10  # internalTrafficPolicy: Local (node-local agents: fast service)
ZONAL_SERVICES = 5  # trafficDistribution: PreferSameZone
CLIENTS = 1000  # client pods, spread round robin over the nodes
STREAMS_PER_CLIENT = 2
TOTAL_RATE_RPS = 200_000.0  # over all streams: each stream sends TOTAL_RATE_RPS / streams
SERVICE_MEAN_S = 0.010
LOCAL_SERVICE_MEAN_S = 0.002


@dataclass(frozen=True)
class Shape:
    """The workload's size: Services, backend pods per Service, client pods (two streams each)."""

    services: int = SERVICES
    endpoints: int = ENDPOINTS
    clients: int = CLIENTS

    @property
    def local_services(self) -> int:
        """Services 0 .. this - 1 are ``internalTrafficPolicy: Local`` (10%)."""
        return self.services * LOCAL_SERVICES // SERVICES

    @property
    def zonal_services(self) -> int:
        """The next this many have ``trafficDistribution: PreferSameZone`` (5%)."""
        return self.services * ZONAL_SERVICES // SERVICES

    @property
    def pods(self) -> int:
        """Backend and client pods."""
        return self.services * self.endpoints + self.clients


SIZES = {
    "default": (1000, 1_000_000, Shape()),
    # Kubernetes' own limits (kubernetes.io/docs/setup/best-practices/cluster-large): 5,000 nodes, 150,000 pods
    # (140,000 backends: 14 for each of 10,000 Services, and 10,000 clients), 10,000 Services; 10M requests
    "k8s-limits": (5000, 10_000_000, Shape(services=10_000, endpoints=14, clients=10_000)),
}


def zone_name(z: int) -> str:
    """The zone label value of zone ``z``."""
    return f"zone-{chr(ord('a') + z)}"


def leaf_spine(nodes: int, zones: int = ZONES, seed: int = SEED) -> Topology:
    """A leaf-spine cluster: ``nodes`` Kubernetes nodes in ``zones`` zones, racks of ~20 nodes under one leaf
    switch each, every leaf linked to each of its zone's 2-4 spines, every spine to each of the core routers.

    Nodes are numbered zone by zone (``node-0000`` ... ); each has the zone label, a hostname label and 16 or 32
    allocatable cores (drawn from ``seed``).
    """
    rng = np.random.default_rng(seed)
    cpu = rng.choice([16.0, 32.0], nodes)
    labels: dict[str, dict[str, str]] = {}
    elements: dict[str, ElementKind] = {f"core-{c}": ElementKind.ROUTER for c in range(CORES)}
    links: list[Link] = []
    width = len(str(nodes - 1))
    for z in range(zones):
        members = range(z * nodes // zones, (z + 1) * nodes // zones)
        racks = max(1, round(len(members) / RACK_NODES))
        spines = [f"spine-{z}-{s}" for s in range(min(4, max(2, math.ceil(racks / 4))))]
        for spine in spines:
            elements[spine] = ElementKind.ROUTER
            links.extend(Link(spine, f"core-{c}", SPINE_CORE) for c in range(CORES))
        for r in range(racks):
            leaf = f"leaf-{z}-{r}"
            elements[leaf] = ElementKind.SWITCH
            links.extend(Link(leaf, spine, LEAF_SPINE) for spine in spines)
        for k, i in enumerate(members):
            name = f"node-{i:0{width}d}"
            labels[name] = {ZONE_LABEL: zone_name(z), "kubernetes.io/hostname": name}
            links.append(Link(name, f"leaf-{z}-{k * racks // len(members)}", NODE_LEAF))
    return Topology(
        name=f"leaf-spine-{nodes}",
        nodes=labels,
        elements=elements,
        links=links,
        same_node=SAME_NODE,
        allocatable_cpu={name: float(c) for name, c in zip(labels, cpu, strict=True)},
    )


def pod_ip(k: int) -> str:
    """A unique pod address for pod number ``k`` (10.128.0.0/9)."""
    return str(ipaddress.IPv4Address("10.128.0.2") + k)


def scenario(topology: Topology, requests: int, seed: int = SEED, shape: Shape = Shape()) -> Scenario:
    """The workload (``workload``) as a Scenario, validated."""
    return Scenario(**workload(topology, requests, seed, shape))


def workload(topology: Topology, requests: int, seed: int = SEED, shape: Shape = Shape()) -> dict[str, Any]:
    """The Scenario's fields: 100 Services of 100 backend pods each over ``topology``'s nodes; 1,000 client
    pods, each with two open-loop Poisson streams to Services it can reach, ``requests`` in all.

    Services 0-9 are ``internalTrafficPolicy: Local`` (their pods serve in 2 ms mean), 10-14 have
    ``trafficDistribution: PreferSameZone``, the rest are plain ``Cluster``; others serve in 10 ms mean. Backend
    pods have 1-4 workers. Backends are placed by a random balanced assignment (10 per node on 1,000 nodes); a
    client picks its Services uniformly among the non-Local ones and the Local ones with a pod on its node.
    """
    rng = np.random.default_rng(seed)
    nodes = list(topology.nodes)
    n_backends = shape.services * shape.endpoints
    svc_width, client_width = max(3, len(str(shape.services - 1))), max(4, len(str(shape.clients - 1)))
    placement = rng.permutation(np.resize(np.arange(len(nodes)), n_backends)).tolist()
    workers = rng.integers(1, 5, n_backends).tolist()
    services: list[Service] = []
    pods: list[Pod] = []
    local_on: dict[str, set[int]] = {n: set() for n in nodes}
    for s in range(shape.services):
        local, zonal = s < shape.local_services, shape.local_services <= s < shape.local_services + shape.zonal_services
        name = f"svc-{s:0{svc_width}d}"
        services.append(
            Service(
                name,
                selector={"app": name},
                internal_traffic_policy=TrafficPolicy.LOCAL if local else TrafficPolicy.CLUSTER,
                traffic_distribution=TrafficDistribution.PREFER_SAME_ZONE if zonal else None,
            )
        )
        mean_s = LOCAL_SERVICE_MEAN_S if local else SERVICE_MEAN_S
        for j in range(shape.endpoints):
            k = s * shape.endpoints + j
            node = nodes[placement[k]]
            if local:
                local_on[node].add(s)
            pods.append(
                Pod(
                    f"{name}-{j:03d}",
                    node,
                    pod_ip(k),
                    {"app": name},
                    service_time=Exponential(mean_s),
                    concurrency=workers[k],
                )
            )
    streams: list[Stream] = []
    n_streams = shape.clients * STREAMS_PER_CLIENT
    per_stream = np.full(n_streams, requests // n_streams)
    per_stream[: requests % n_streams] += 1
    rate = TOTAL_RATE_RPS / n_streams
    cluster_wide = list(range(shape.local_services, shape.services))
    for c in range(shape.clients):
        name, node = f"client-{c:0{client_width}d}", nodes[c % len(nodes)]
        pods.append(Pod(name, node, pod_ip(n_backends + c), {"app": "client"}))
        choices = cluster_wide + sorted(local_on[node])
        for t, s in enumerate(rng.choice(choices, STREAMS_PER_CLIENT, replace=False).tolist()):
            sends = int(per_stream[c * STREAMS_PER_CLIENT + t])
            streams.append(Stream(name, f"svc-{s:0{svc_width}d}", Poisson(rate), sends))
    return {
        "name": f"scale-{len(nodes)}-nodes",
        "topology": topology,
        "pods": tuple(pods),
        "services": tuple(services),
        "streams": tuple(streams),
        "dataplane": DataplaneConfig(name="iptables"),
    }


# --- measuring, each configuration in a fresh child process ------------------------------------------------------


@dataclass(frozen=True)
class Config:
    """One measurement: cluster size, requests, engine (``des`` or ``fast``), and whether tracemalloc runs."""

    nodes: int
    requests: int
    engine: str = "des"
    trace: bool = False
    services: int = SERVICES
    endpoints: int = ENDPOINTS
    clients: int = CLIENTS
    setup_only: bool = False  # stop before the first event: setup, and its memory, alone

    @property
    def shape(self) -> Shape:
        """The workload's size."""
        return Shape(self.services, self.endpoints, self.clients)


def measure(cfg: Config) -> dict[str, Any]:
    """Build and run one configuration in this process; wall-clock seconds per phase and memory.

    ``topology_s`` is building the Topology and its all-pairs route tables (the graph and path latencies);
    ``setup_s`` adds validating the Scenario (``Scenario(...)`` on the generated pods, Services and streams;
    generating them is not timed) and, for the DES, ``sim.facade.choose(scenario, "des")``: the plan (routes
    per stream, entry node and version) and ``events_needed``. ``run_s`` is the rest, ``Choice.run(seed)``, so
    setup + run is one cold ``simulate(scenario, seed, "des")``. For the fast path, ``run_s`` is
    ``simulate(scenario, seed, "fast")`` end to end.
    """
    gc.collect()
    if cfg.trace:
        tracemalloc.start()
    start = time.perf_counter()
    topology = leaf_spine(cfg.nodes)
    topology.hops(*[next(iter(topology.nodes))] * 2)  # the route tables, computed on first use
    built = time.perf_counter()
    fields = workload(topology, cfg.requests, SEED, cfg.shape)
    generated = time.perf_counter()
    sc = Scenario(**fields)
    validated = time.perf_counter()
    out: dict[str, Any] = {"topology_s": built - start, "scenario_s": validated - generated}
    setup_s = (built - start) + (validated - generated)
    if cfg.engine == "fast":
        result = simulate(sc, SEED, "fast")
        done = time.perf_counter()
        out["setup_s"], out["run_s"] = setup_s, done - validated
    else:
        choice = choose(sc, "des")
        routed = time.perf_counter()
        out["routes_s"] = routed - validated
        out["setup_s"] = setup_s + (routed - validated)
        if cfg.setup_only:
            out["setup_maxrss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / MB
            out["setup_cpu_s"] = time.process_time()
            return _about(out, topology, sc)
        result = choice.run(SEED)
        done = time.perf_counter()
        out["run_s"] = done - routed
    out["cpu_s"] = time.process_time()  # this process's CPU seconds, imports included (the machine is shared)
    out["fast_path_problem"] = result.events_needed or ""  # for the DES; the fast path needs none
    if cfg.trace:
        out["tracemalloc_peak_mb"] = tracemalloc.get_traced_memory()[1] / MB
        tracemalloc.stop()
    out["maxrss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / MB  # Linux: KiB
    out["counts"] = result.counts()
    out["mean_latency_s"] = float(np.nanmean(result.latency_s))
    out["record_bytes_per_request"] = result.nbytes_per_request()
    out["requests"] = len(result)
    return _about(out, topology, sc)


def _about(out: dict[str, Any], topology: Topology, sc: Scenario) -> dict[str, Any]:
    """Add the cluster's size to a measurement: vertices, the core the topology routes, pods, Services, streams,
    and the delay classes among node pairs (from 100 source nodes spread over the zones: untimed)."""
    routes = topology._routes
    nodes = list(topology.nodes)
    sources = nodes[:: max(1, len(nodes) // 100)]
    out["vertices"] = len(topology.vertices)
    out["core_vertices"] = len(routes.core)
    out["pods"], out["services"], out["streams"] = len(sc.pods), len(sc.services), len(sc.streams)
    out["delay_classes"] = len({c for a in sources for c, _ in topology.delay_classes_between(a, nodes)})
    return out


def in_child(cfg: Config, timeout_s: float | None = None) -> dict[str, Any]:
    """``measure(cfg)`` in a fresh Python process, so that its ru_maxrss is this configuration's alone."""
    done = subprocess.run(
        [sys.executable, __file__, "--child", json.dumps(asdict(cfg))],
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout_s,
    )
    if done.returncode != 0:
        raise RuntimeError(f"child {cfg} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def median_of(cfg: Config, repeat: int) -> dict[str, Any]:
    """``in_child(cfg)`` ``repeat`` times: the median of each time (wall and CPU seconds), the largest memory."""
    runs = [in_child(cfg) for _ in range(repeat)]
    out = dict(runs[0])
    for key in ("topology_s", "scenario_s", "routes_s", "setup_s", "run_s", "cpu_s"):
        if key in out:
            out[key] = float(np.median([r[key] for r in runs]))
    for key in ("maxrss_mb", "tracemalloc_peak_mb"):
        if key in out:
            out[key] = max(r[key] for r in runs)
    out["runs"] = len(runs)
    return out


GROWTH_NODES = 1000  # the cluster of the requests axis
GROWTH_REQUESTS = (10_000, 100_000, 1_000_000, 10_000_000)
GROWTH_AT = 100_000  # the requests of the nodes axis
GROWTH_NODE_COUNTS = (10, 100, 1000, 5000)


def exponent(xs: list[float], ys: list[float]) -> float:
    """The least-squares slope of log(y) on log(x): y grows like x to this power."""
    return float(np.polyfit(np.log(xs), np.log(ys), 1)[0])


def growth(repeat: int, largest: int) -> None:
    """Issue 16 item 6: wall and CPU seconds and peak RSS of the DES and the fast path against requests (10k to
    ``largest`` at 1,000 nodes) and nodes (10 to 5,000 at 100k requests), medians of ``repeat`` fresh processes,
    with the fitted exponents."""
    axes = {
        "requests": [(GROWTH_NODES, r) for r in GROWTH_REQUESTS if r <= largest],
        "nodes": [(n, GROWTH_AT) for n in GROWTH_NODE_COUNTS],
    }
    for axis, sizes in axes.items():
        for name in ("des", "fast"):
            rows = []
            for nodes, requests in sizes:
                row = median_of(Config(nodes, requests, engine=name), repeat)
                rows.append({"nodes": nodes, **row})
                print(f"growth {name} {nodes} nodes {requests:,} requests: {row['setup_s'] + row['run_s']:.1f} s",
                      file=sys.stderr)  # fmt: skip
            label = "DES" if name == "des" else "fast path"
            print(f"\n{label} against {axis} ({'1,000 nodes' if axis == 'requests' else '100,000 requests'}), "
                  f"medians of {repeat}:\n")  # fmt: skip
            print(f"| nodes | requests | setup s | {label} s | wall s (setup + run) | CPU s (process) | peak RSS MB |")
            print("|---:|---:|---:|---:|---:|---:|---:|")
            for r in rows:
                print(
                    f"| {r['nodes']:,} | {r['requests']:,} | {r['setup_s']:.2f} | {r['run_s']:.2f} | "
                    f"{r['setup_s'] + r['run_s']:.2f} | {r['cpu_s']:.2f} | {r['maxrss_mb']:.0f} |"
                )
            xs = [float(r[axis]) for r in rows]
            wall = exponent(xs, [r["setup_s"] + r["run_s"] for r in rows])
            cpu = exponent(xs, [r["cpu_s"] for r in rows])
            memory = exponent(xs, [r["maxrss_mb"] for r in rows])
            print(f"\nfitted exponent against {axis}: wall {wall:.2f}, CPU {cpu:.2f}, peak RSS {memory:.2f}")


def _w_scenario(per_client: int) -> Scenario:
    """Workload W of benchmarks/run.py with ``per_client`` requests per client."""
    return scenario_of(W, per_client)


def reference_rps(requests: int) -> float:
    """Our DES's requests/s on workload W (benchmarks/run.py) right now: the machine's speed, for ratios."""
    sc = _w_scenario(requests // W_CLIENTS)
    gc.collect()
    start = time.perf_counter()
    simulate(sc, SEED, "des")
    return requests / (time.perf_counter() - start)


def mb(value: float | None) -> str:
    """Megabytes, or ``-``."""
    return "-" if value is None else f"{value:.0f}"


def count(value: int | None) -> str:
    """A count with thousands separators, or ``-``."""
    return "-" if value is None else f"{value:,}"


def markdown(rows: list[dict[str, Any]]) -> str:
    """A growth table: one row per configuration, DES timings and the child process's peak RSS."""
    lines = [
        "| nodes | requests | delay classes | setup s | DES s | DES requests/s | setup + DES s | peak RSS MB |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['nodes']:,} | {r['requests']:,} | {count(r['delay_classes'])} | {r['setup_s']:.2f} | "
            f"{r['run_s']:.2f} | "
            f"{r['requests'] / r['run_s']:,.0f} | {r['setup_s'] + r['run_s']:.2f} | {mb(r['maxrss_mb'])} |"
        )
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line flags."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="every request count 10x smaller (a smoke test)")
    parser.add_argument("--nodes", type=int, default=1000, help="nodes of the headline cluster (default 1000)")
    parser.add_argument("--requests", type=int, default=1_000_000, help="headline requests (default 1000000)")
    parser.add_argument("--repeat", type=int, default=1, help="runs per configuration, medians kept (default 1)")
    parser.add_argument(
        "--growth",
        action="store_true",
        help="the growth table (issue 16): DES and fast path against requests and nodes, --repeat runs each",
    )
    parser.add_argument("--largest", type=int, default=10_000_000, help="--growth: the most requests (default 10M)")
    parser.add_argument(
        "--size",
        choices=sorted(SIZES),
        default="default",
        help="default: --nodes/--requests with 100 Services x 100 pods; k8s-limits: 5,000 nodes, 150,000 pods, "
        "10,000 Services, 10M requests (setup, the fast path and the DES, each in its own process)",
    )
    parser.add_argument("--skip-des", action="store_true", help="k8s-limits: leave out the 10M-request DES run")
    parser.add_argument("--timeout", type=float, default=1800.0, help="k8s-limits: seconds a child may take")
    parser.add_argument(
        "--stages",
        choices=("des", "fast"),
        help="k8s-limits: one engine in this process, RSS and peak RSS per stage (Linux /proc)",
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        args.requests //= 10
    if args.stages and args.size != "k8s-limits":
        parser.error("--stages needs --size k8s-limits")
    if args.size != "default":
        args.nodes, args.requests, _ = SIZES[args.size]
        if args.quick:
            args.requests //= 10
    if args.requests < CLIENTS * STREAMS_PER_CLIENT or args.nodes < ZONES:
        parser.error(f"need --requests >= {CLIENTS * STREAMS_PER_CLIENT} and --nodes >= {ZONES}")
    return args


def main(argv: list[str] | None = None) -> None:
    """Measure the headline configuration and the growth table; print them and the ``scale:`` line."""
    args = parse_args(argv)
    if args.child:
        print(json.dumps(measure(Config(**json.loads(args.child)))))
        return
    n, r = args.nodes, args.requests
    print(f"{datetime.datetime.now().astimezone():%Y-%m-%d %H:%M %Z}  {platform.machine()}, {os.cpu_count()} cpus")
    print(f"python {platform.python_version()}, simpy {simpy.__version__}, numpy {np.__version__}")
    if args.size == "k8s-limits" and args.stages:
        stages(args.stages, n, r, SIZES[args.size][2])
        return
    if args.size == "k8s-limits":
        k8s_limits(n, r, SIZES[args.size][2], args)
        return
    if args.growth:
        growth(args.repeat, args.largest)
        return
    ref = reference_rps(W_REFERENCE // (10 if args.quick else 1))
    # requests at n nodes: r / 100, r / 10, r; nodes at r / 10 requests: 10, 100, n (that row is in both)
    sizes = dict.fromkeys([(10, r // 10), (100, r // 10), (n, r // 100), (n, r // 10), (n, r)])
    rows = []
    for nodes, requests in sizes:
        row = median_of(Config(nodes, requests), args.repeat)
        rows.append({"nodes": nodes, **row})
        print(
            f"{nodes} nodes, {requests:,} requests: setup {row['setup_s']:.2f} s, DES {row['run_s']:.2f} s",
            file=sys.stderr,
        )
    head = next(row for row in rows if row["nodes"] == n and row["requests"] == r)
    traced = in_child(Config(n, r, trace=True))
    fast = median_of(Config(n, r, engine="fast"), args.repeat)  # the headline itself: exact since the KW recursion
    print()
    print(
        f"headline: {n:,} nodes in {ZONES} zones (leaf-spine, {head['vertices']:,} graph vertices, "
        f"{head['delay_classes']} delay classes among node pairs), {SERVICES * ENDPOINTS:,} backend pods, "
        f"{SERVICES} Services, "
        f"{CLIENTS:,} client pods x {STREAMS_PER_CLIENT} Poisson streams, {r:,} requests"
    )
    print(
        f"  setup {head['setup_s']:.2f} s = topology (graph + all-pairs path tables) {head['topology_s']:.2f} + "
        f"scenario (validation) {head['scenario_s']:.2f} + engine routes and send schedule (_Run) "
        f"{head['routes_s']:.2f}"
    )
    print(
        f"  DES {head['run_s']:.2f} s ({r / head['run_s']:,.0f} requests/s; workload W now runs at {ref:,.0f}/s, "
        f"so a request here costs {ref / (r / head['run_s']):.1f}x one of W's); outcomes {head['counts']}, "
        f"mean latency {head['mean_latency_s'] * 1e3:.3f} ms"
    )
    print(
        f"  fast path: {'not exact here (' + head['fast_path_problem'] + ')' if head['fast_path_problem'] else 'exact'}"
    )
    print(
        f"  fast path (simulate fast, end to end) on the headline: {fast['run_s']:.2f} s "
        f"({r / fast['run_s']:,.0f} requests/s), outcomes {fast['counts']}, peak RSS {fast['maxrss_mb']:.0f} MB"
    )
    print(
        f"  memory: peak RSS {head['maxrss_mb']:.0f} MB (ru_maxrss of a process that did only this), "
        f"tracemalloc peak {traced['tracemalloc_peak_mb']:.0f} MB (a second such process, traced)"
    )
    verdicts = [
        ("setup (graph + path latencies)", head["topology_s"], SETUP_TARGET_S, "s"),
        ("setup (all of it: + validation + engine routes)", head["setup_s"], SETUP_TARGET_S, "s"),
        ("DES", head["run_s"], DES_TARGET_S, "s"),
        ("peak memory (RSS)", head["maxrss_mb"], MEMORY_TARGET_MB, "MB"),
    ]
    for name, value, target, unit in verdicts:
        shown = f"{value:.0f}" if unit == "MB" else f"{value:.2f}"
        print(f"  target {name} <= {target:g} {unit}: {shown} {unit}, {'met' if value <= target else 'MISSED'}")
    print(f"\ncost against requests ({n:,} nodes):\n")
    print(markdown([row for row in rows if row["nodes"] == n]))
    print(f"\ncost against nodes ({r // 10:,} requests):\n")
    print(markdown(sorted((row for row in rows if row["requests"] == r // 10), key=lambda row: row["nodes"])))
    print()
    print(
        f"scale: graph_s={head['topology_s']:.2f} setup_s={head['setup_s']:.2f} des_s={head['run_s']:.2f} "
        f"fast_s={fast['run_s']:.2f} peak_mb={head['maxrss_mb']:.0f}"
    )


def _status_mb() -> tuple[float, float]:
    """This process's resident set and its peak since the last ``_reset_peak`` (``VmRSS``, ``VmHWM``; MB)."""
    got = {}
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                key, value = line.split(":")
                got[key] = int(value.split()[0]) * 1024 / MB
    return got["VmRSS"], got["VmHWM"]


def _reset_peak() -> None:
    """Set this process's peak RSS (``VmHWM``) back to its RSS now (Linux: ``echo 5 > /proc/self/clear_refs``)."""
    with open("/proc/self/clear_refs", "w", encoding="ascii") as f:
        f.write("5")


def stages(which: str, n: int, r: int, shape: Shape) -> None:
    """``--stages des|fast``: one engine on the k8s-limits cluster in this process, with the RSS and the peak RSS
    of each span between stage boundaries (the start and end of each function listed below; the peak is reset
    at every boundary, so each row's peak is that span's alone). Imports first, as in a child."""
    from sim import facade, solver
    from sim import plan as plan_module

    rows: list[tuple[str, float, float, float]] = []
    clock = [time.perf_counter()]

    def boundary(label: str) -> None:
        rss, peak = _status_mb()
        now = time.perf_counter()
        rows.append((label, rss, peak, now - clock[0]))
        clock[0] = now
        _reset_peak()

    def wrap(owner: Any, attr: str, label: str) -> None:
        inner = getattr(owner, attr)

        def timed(*args: Any, **kwargs: Any) -> Any:
            boundary(f"-> start of {label}")
            try:
                return inner(*args, **kwargs)
            finally:
                boundary(f"-> end of {label}")

        setattr(owner, attr, timed)

    _reset_peak()
    boundary("imports")
    topology = leaf_spine(n)
    topology.hops(*[next(iter(topology.nodes))] * 2)
    sc = Scenario(**workload(topology, r, SEED, shape))
    boundary("-> topology and Scenario built")
    listed: list[tuple[Any, str, str]] = [(plan_module.Plan, "result", "Plan.result")]
    listed += [(plan_module.Plan, "_hops", "Plan._hops"), (plan_module, "monitors", "monitors")]
    if which == "des":
        steps: tuple[str, ...] = ("_groups", "_sends", "_route_exact", "_serve_exact", "_times", "_outcomes")
    else:
        steps = ("_groups", "_sends", "_picks", "_delays", "_serve", "_times", "_outcomes")
    listed += [(solver, m, m) for m in steps]
    listed += [(facade, "compile_plan", "compile_plan")]
    for owner, attr, label in listed:
        wrap(owner, attr, label)
    choice = choose(sc, which)
    boundary("-> end of choose (the plan: setup)")
    result = choice.run(SEED)
    boundary("-> result returned")
    print(f"\n--stages {which}: {n:,} nodes, {shape.pods:,} pods, {len(result):,} requests; RSS at the end of each")
    print("span and the span's own peak RSS (VmHWM reset at each boundary)\n")
    print("| span up to | RSS after MB | peak in span MB | s |")
    print("|---|---:|---:|---:|")
    for label, rss, peak, seconds in rows:
        print(f"| {label} | {rss:.0f} | {peak:.0f} | {seconds:.1f} |")
    largest = max(peak for _, _, peak, _ in rows)
    print(f"\nlargest peak {largest:.0f} MB; records {result.nbytes_per_request():.0f} bytes/request")


K8S_TARGETS = {"setup_s": 10.0, "des_s": 150.0, "fast_s": 20.0, "peak_mb": 2048.0, "record_bytes": 64.0}
"""Issue 16 item 4, at Kubernetes' limits: setup (s), DES and fast path (s), peak RSS (MB), record bytes/request."""


def k8s_limits(n: int, r: int, shape: Shape, args: argparse.Namespace) -> None:
    """Issue 16 item 4: setup alone, the fast path and the DES on the Kubernetes-limits cluster, each in a fresh
    process (bounded by ``--timeout``); print the figures, the verdicts and the ``k8s-limits:`` line."""
    cfg = Config(n, r, services=shape.services, endpoints=shape.endpoints, clients=shape.clients)
    print(
        f"\nk8s-limits: {n:,} nodes, {shape.pods:,} pods ({shape.services * shape.endpoints:,} backends: "
        f"{shape.endpoints} for each of {shape.services:,} Services; {shape.clients:,} clients x "
        f"{STREAMS_PER_CLIENT} Poisson streams), {r:,} requests"
    )
    results: dict[str, dict[str, Any] | str] = {}
    for name, c in (
        ("setup", replace(cfg, setup_only=True)),
        ("fast", replace(cfg, engine="fast")),
        *([] if args.skip_des else [("des", cfg)]),
    ):
        started = time.perf_counter()
        try:
            results[name] = in_child(c, args.timeout)
        except subprocess.TimeoutExpired:
            results[name] = f"stopped after {args.timeout:.0f} s (--timeout)"
        except RuntimeError as e:
            results[name] = f"failed: {str(e).strip().splitlines()[-1]}"
        print(f"  {name}: done in {time.perf_counter() - started:.1f} s wall", file=sys.stderr)
    setup = results["setup"]
    verdicts: list[tuple[str, float | None, float, str]] = []
    if isinstance(setup, dict):
        print(
            f"  cluster: {setup['vertices']:,} vertices, a routed core of {setup['core_vertices']:,} (the rest hang "
            f"off it), {setup['delay_classes']} delay classes among node pairs; {setup['pods']:,} pods, "
            f"{setup['services']:,} Services, {setup['streams']:,} streams"
        )
        print(
            f"  setup {setup['setup_s']:.2f} s = topology (graph + routes) {setup['topology_s']:.2f} + scenario "
            f"(validation) {setup['scenario_s']:.2f} + engine routes and send schedule (_Run) {setup['routes_s']:.2f}"
            f"; peak RSS after setup {setup['setup_maxrss_mb']:.0f} MB, CPU {setup['setup_cpu_s']:.1f} s "
            "(imports included)"
        )
        verdicts.append(("setup", setup["setup_s"], K8S_TARGETS["setup_s"], "s"))
    else:
        print(f"  setup: {setup}")
        verdicts.append(("setup", None, K8S_TARGETS["setup_s"], "s"))
    peaks: dict[str, float] = {}  # per engine: its child's peak RSS (MB)
    records: dict[str, float] = {}  # ... its records' stored bytes per request
    for name, key in (("fast", "fast_s"), ("des", "des_s")):
        got = results.get(name)
        label = "fast path (run_fast, end to end)" if name == "fast" else "DES (after setup)"
        short = "fast path" if name == "fast" else "DES"
        if isinstance(got, dict):
            print(
                f"  {label}: {got['run_s']:.2f} s ({r / got['run_s']:,.0f} requests/s), CPU {got['cpu_s']:.1f} s, "
                f"peak RSS {got['maxrss_mb']:.0f} MB, records {got['record_bytes_per_request']:.0f} bytes/request, "
                f"outcomes {got['counts']}, mean latency {got['mean_latency_s'] * 1e3:.3f} ms"
            )
            peaks[name], records[name] = got["maxrss_mb"], got["record_bytes_per_request"]
        else:
            print(f"  {label}: {'not run (--skip-des)' if got is None else got}")
        verdicts.append((label, got["run_s"] if isinstance(got, dict) else None, K8S_TARGETS[key], "s"))
        verdicts.append((f"peak memory, {short} (RSS of its process)", peaks.get(name), K8S_TARGETS["peak_mb"], "MB"))
        verdicts.append((f"records, {short}", records.get(name), K8S_TARGETS["record_bytes"], "bytes/request"))
    peak = max(peaks.values(), default=None)
    record = max(records.values(), default=None)
    for name, value, target, unit in verdicts:
        if value is None:
            print(f"  target {name} <= {target:g} {unit}: not measured")
        else:
            shown = f"{value:.0f}" if unit != "s" else f"{value:.2f}"
            print(f"  target {name} <= {target:g} {unit}: {shown} {unit}, {'met' if value <= target else 'MISSED'}")

    def fig(name: str, key: str) -> str:
        got = results.get(name)
        return f"{got[key]:.2f}" if isinstance(got, dict) and key in got else "na"

    def fig_mb(name: str) -> str:
        return f"{peaks[name]:.0f}" if name in peaks else "na"

    print(
        f"\nk8s-limits: setup_s={fig('setup', 'setup_s')} fast_s={fig('fast', 'run_s')} des_s={fig('des', 'run_s')} "
        f"peak_mb={'na' if peak is None else f'{peak:.0f}'} "
        f"fast_peak_mb={fig_mb('fast')} des_peak_mb={fig_mb('des')} "
        f"record_bytes={'na' if record is None else f'{record:.0f}'}"
    )


if __name__ == "__main__":
    main()
