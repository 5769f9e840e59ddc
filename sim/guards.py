"""Before a run: what it will cost (requests, memory) and what looks like a mistake, so that a run that cannot fit
in this machine's memory is refused with its estimate instead of dying half-way, and a scenario that will not do
what its author meant says so on stderr.

The estimates are upper-leaning, from the sizes the simulator keeps per thing:
- records: ``sim.records.STORED`` (60 bytes a request; the derived columns are not kept) plus what the run holds
  while it builds them (tracemalloc's peak through the event path is near 105 bytes a request, through the
  solver's fast way near 140: benchmarks/README.md), per attempt (retries add records), and per call a request
  makes to other Services (``CallGraph.expected_calls``, every retry counted);
- the topology's all-pairs route tables (``sim.topology._routes``): four vertex x vertex matrices, 12 bytes a pair,
  and the link-count scratch of one chunk;
- route tables: each node's proxy holds a route per Service (its endpoints), per control-plane version;
- backends: each pod's workers (``concurrency``) as a list of free times, 8 bytes each;
- a base of what the interpreter and its libraries take.

The limit is ``--max-memory`` (or ``SIM_MAX_MEMORY``), by default three quarters of this machine's memory
(``MemTotal`` in /proc/meminfo).
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

from sim.cluster import TrafficPolicy
from sim.errors import SpecError
from sim.records import STORED
from sim.scenario import Scenario, Stream
from sim.workload import ClosedLoop, ConstantRate, Poisson, Trace

BASE_BYTES = 150 << 20
"""The interpreter with numpy, scipy, networkx and simpy imported (measured ~140 MB RSS for ``sim run``)."""
RECORD_BYTES = sum(dtype.itemsize for dtype in STORED.values())
"""The records' stored columns, per request (bytes)."""
DES_BYTES_PER_REQUEST = 110
"""The DES's peak per request while it runs (tracemalloc: 103 on workload W, benchmarks/README.md), above the
records it returns."""
FAST_BYTES_PER_REQUEST = 120
"""The fast path's peak per request (tracemalloc: 108 on workload W, benchmarks/README.md), above the records."""
PAIR_BYTES = 12
"""The topology's route tables per vertex pair: link kind (int16), predecessor (int32), hops (int16), delay class
(int32)."""
ROUTE_ENDPOINT_BYTES = 64
"""A node's route entry per endpoint (the endpoint in a tuple, its share, its picker state), bytes."""
WORKER_BYTES = 8
"""A backend's worker: one slot of its list of free times (``sim.engine``), bytes."""
MAX_FLAG_INT = 2**63 - 1
"""The largest whole number a flag takes (seeds, request counts): 64-bit, as in TOML."""
MAX_RECORDS = 2**31 - 1
"""Records are indexed by int32 columns (``stream``, ``request``): no run may have more."""
MAX_DESIGN_POINTS = 100_000
"""The most design points a spec may expand to (each holds its scenario table and a built Scenario)."""
MAX_RUNS = 1_000_000
"""The most runs (design points x replications) a sweep may list."""
MEMORY_FRACTION = 0.75
"""The share of this machine's memory a run may plan to use unless ``--max-memory`` says otherwise."""

_MAX_MEMORY: ContextVar[int | None] = ContextVar("sim_max_memory", default=None)
"""``--max-memory`` for the command being run (bytes), set only inside ``max_memory``; None: not given."""


def machine_memory() -> int | None:
    """This machine's memory in bytes (``MemTotal``), or None where /proc/meminfo is not there."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def parse_size(text: str) -> int:
    """A size in bytes from ``"8G"``, ``"512MiB"``, ``"1.5GB"`` or ``"1000000"``; a ValueError says what is expected.

    >>> parse_size("2G"), parse_size("512MiB"), parse_size("1000")
    (2147483648, 536870912, 1000)
    """
    match = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]*)?)\s*([kKmMgGtT]?)(?:i?[bB])?\s*", text)
    if not match:
        raise ValueError(f"expected a size such as 8G, 512M or a number of bytes, got {text!r}")
    value = float(match.group(1)) * 1024 ** " KMGT".index(match.group(2).upper() or " ")
    if not math.isfinite(value) or value < 1 or value > 2**62:
        raise ValueError(f"expected a size between 1 byte and 4 EiB, got {text!r}")
    return int(value)


@contextmanager
def max_memory(limit: int | None) -> Iterator[None]:
    """Inside this block, runs may plan to use ``limit`` bytes (``--max-memory``; None: the default limit)."""
    token = _MAX_MEMORY.set(limit)
    try:
        yield
    finally:
        _MAX_MEMORY.reset(token)


def memory_limit() -> tuple[int, str]:
    """The memory a run may plan to use (bytes) and where that limit comes from, for the refusal's message."""
    given = _MAX_MEMORY.get()
    if given is not None:
        return given, "--max-memory"
    env = os.environ.get("SIM_MAX_MEMORY")
    if env:
        try:
            return parse_size(env), "SIM_MAX_MEMORY"
        except ValueError:
            pass
    total = machine_memory()
    if total is None:
        return 8 << 30, "the default of 8 GiB (this machine's memory is unknown)"
    return int(total * MEMORY_FRACTION), f"{MEMORY_FRACTION:.0%} of this machine's {size_text(total)}"


def size_text(n: float) -> str:
    """Bytes in words: ``1.5 GiB``, ``300 MiB``, ``12 KiB``.

    >>> size_text(3 << 30), size_text(1536), size_text(10 ** 30)
    ('3.0 GiB', '1.5 KiB', '9.09e+17 TiB')
    """
    for unit, size in (("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            value = n / size
            return f"{value:.3g} {unit}" if value >= 1e6 else f"{value:.1f} {unit}"
    return f"{n:.0f} bytes"


def topology_bytes(vertices: int) -> int:
    """The topology's all-pairs route tables for ``vertices`` vertices (nodes and network elements), bytes."""
    return PAIR_BYTES * vertices * vertices


def check_topology(vertices: int) -> str | None:
    """Why a topology of ``vertices`` vertices will not fit (its route tables over the memory limit), or None."""
    need = BASE_BYTES + topology_bytes(vertices)
    limit, source = memory_limit()
    if need <= limit:
        return None
    return (
        f"{vertices:,} nodes and network elements need about {size_text(need)} for the all-pairs route tables "
        f"({vertices:,}^2 pairs x {PAIR_BYTES} bytes), over the limit of {size_text(limit)} ({source}); "
        "give --max-memory to allow more"
    )


def stream_requests(scenario: Scenario, stream: Stream) -> float:
    """How many requests (first attempts) ``stream`` will send, at most or on average; ``inf`` if unbounded."""
    load = stream.workload
    if isinstance(load, Trace):
        n = float(len(load.times_s))
        return n if stream.requests is None else min(n, float(stream.requests))
    if stream.requests is not None:
        return float(stream.requests)
    horizon = max(0.0, (scenario.duration_s or 0.0) - stream.start_s)
    if isinstance(load, (Poisson, ConstantRate)):
        mean = load.rate_rps * horizon
        return math.ceil(mean + 6 * math.sqrt(mean) + 1)  # Poisson: six standard deviations above the mean
    assert isinstance(load, ClosedLoop)
    cycle = load.think.mean_s + _fastest_reply_s(scenario, stream)
    return math.inf if cycle <= 0 else math.ceil(horizon / cycle) + 1


def _fastest_reply_s(scenario: Scenario, stream: Stream) -> float:
    """The shortest mean time (s) from a send of ``stream`` to its reply: the nearest backend's trip there and
    back plus its service; with no backend, the connect timeout (the longest a failure makes the client wait)."""
    origin = scenario.origin(stream.client)
    svc = scenario.service(stream.service)
    best = math.inf
    for pod in scenario.selected(svc.name):
        if scenario.topology.connected(origin, pod.node):
            trip = scenario.topology.path(origin, pod.node).mean_s
            best = min(best, 2 * trip + pod.service_time.mean_s)
    return stream.connect_timeout_s if math.isinf(best) else best


@dataclass(frozen=True)
class Estimate:
    """What a run will cost: requests (records, retries included), and memory in bytes by part."""

    requests: float
    records_bytes: float
    topology_bytes: float
    routes_bytes: float
    workers_bytes: float = 0.0
    unbounded: tuple[int, ...] = ()
    """Streams that would never stop (a closed loop with nothing to wait for, until ``duration_s``)."""

    @property
    def memory_bytes(self) -> float:
        """The whole estimate, bytes."""
        return BASE_BYTES + self.records_bytes + self.topology_bytes + self.routes_bytes + self.workers_bytes

    def describe(self) -> str:
        """One line: ``~12,000 requests, ~160 MiB``."""
        requests = "unbounded" if math.isinf(self.requests) else f"~{self.requests:,.0f}"
        return f"{requests} requests, ~{size_text(self.memory_bytes)} of memory"


def estimate(scenario: Scenario, *, fast: bool = False) -> Estimate:
    """The cost of running ``scenario`` once (``fast``: on the fast path), before anything is simulated."""
    per_request = RECORD_BYTES + (FAST_BYTES_PER_REQUEST if fast else DES_BYTES_PER_REQUEST)
    total = 0.0
    unbounded = []
    for i, stream in enumerate(scenario.streams):
        n = stream_requests(scenario, stream)
        if math.isinf(n):
            unbounded.append(i)
        calls = sum(scenario.call_graph.expected_calls(stream.service, with_retries=True).values())
        total += n * (1 + stream.retries.attempts) * calls  # a record per request and per call it makes
    vertices = len(scenario.topology.nodes) + len(scenario.topology.elements)
    endpoints = sum(len(scenario.selected(svc.name)) for svc in scenario.services)
    versions = 1 + len(scenario.timeline)
    routes = float(len(scenario.topology.nodes)) * endpoints * versions * ROUTE_ENDPOINT_BYTES
    workers = float(sum(p.concurrency for p in scenario.pods)) * WORKER_BYTES
    return Estimate(total, total * per_request, float(topology_bytes(vertices)), routes, workers, tuple(unbounded))


def refusal(est: Estimate, *, runs_at_once: int = 1) -> tuple[str, str] | None:
    """Why a run with estimate ``est`` (``runs_at_once`` of them side by side) must not start, as the field to
    blame and the problem; or None."""
    if est.unbounded:
        return (
            f"streams[{est.unbounded[0]}]",
            "a closed loop with no think time, service time or network delay sends without end before duration_s; "
            "give requests, a think time or a service time",
        )
    if est.requests > MAX_RECORDS:
        return (
            "streams",
            f"~{est.requests:.3g} requests: more than the {MAX_RECORDS:,} records one run can hold "
            "(32-bit request indices); lower requests or duration_s, or split the run",
        )
    limit, source = memory_limit()
    need = BASE_BYTES + runs_at_once * (est.memory_bytes - BASE_BYTES)
    if need <= limit:
        return None
    at_once = f" x {runs_at_once} runs at once" if runs_at_once > 1 else ""
    return "streams", (
        f"the run needs about {size_text(need)} of memory ({est.requests:,.0f} requests x "
        f"{size_text(est.records_bytes / max(est.requests, 1))} each{at_once}, "
        f"route tables {size_text(est.topology_bytes + est.routes_bytes)}, "
        f"backend workers {size_text(est.workers_bytes)}), over the limit of {size_text(limit)} "
        f"({source}); lower requests or duration_s, or give --max-memory to allow more"
    )


def refuse(where: str, est: Estimate, *, runs_at_once: int = 1) -> None:
    """Raise the SpecError (on file ``where``) of a run that must not start (``refusal``); else nothing."""
    why = refusal(est, runs_at_once=runs_at_once)
    if why is not None:
        raise SpecError(where, *why)


def warnings(scenario: Scenario) -> list[str]:
    """What in ``scenario`` is allowed but probably not meant: a Service whose selector matches no pod, and a
    Local Service with no endpoint on the node of a pod that calls it (its requests fail or leave the node, as
    the dataplane decides)."""
    found = []
    absent = scenario.absent
    for i, svc in enumerate(scenario.services):
        if svc.name in scenario.given_endpoints or scenario.selected(svc.name):
            continue
        if not svc.selector:  # a selectorless Service: its endpoints are whatever EndpointSlices / Endpoints say
            found.append(
                f"Service {svc.name!r} has no selector and no EndpointSlice or Endpoints names it: no endpoints"
            )
            continue
        selector = ", ".join(f"{k}={v}" for k, v in svc.selector.items())
        found.append(f"services[{i}].selector: Service {svc.name!r} selects no pod ({selector})")
    for i, stream in enumerate(scenario.streams):
        svc = scenario.service(stream.service)
        if svc.internal_traffic_policy != TrafficPolicy.LOCAL or scenario.is_external(stream.client):
            continue
        node = scenario.pod(stream.client).node
        selected = scenario.selected(svc.name)
        local = [p for p in selected if p.name not in absent and p.node == node and p.ready and not p.terminating]
        if not local and selected:
            found.append(
                f"streams[{i}]: Service {svc.name!r} is internalTrafficPolicy=Local and has no ready endpoint on "
                f"node {node!r} of client {stream.client!r}: its requests get no local endpoint"
            )
    return found


def design_points(counts: Iterable[int]) -> int:
    """How many design points factors with these level counts give (their product), without listing them."""
    return math.prod(counts)
