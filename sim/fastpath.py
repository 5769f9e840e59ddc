"""A vectorised fast path beside the DES: ``run_fast(scenario, seed) -> RunResult`` computed with numpy.

Where no request waits on another's state, a run needs no event loop: send times are cumulative sums of gap
draws, each request's endpoint comes from its route's picker (vectorised per proxy), path delays are drawn per
path in vectors, and each FIFO backend pod is solved from its arrivals: one worker by the Lindley recursion as a
running maximum, more by the Kiefer-Wolfowitz free-time recursion (a loop per pod); a processor-sharing pod is
exact only with more workers than requests it can ever hold (no wait). ``fast_path_problem`` says whether that is
exact for a scenario, and if not, why.

The records have ``sim.records.COLUMNS`` with the DES's meaning, rows in send order. Every draw comes from a
``Streams`` key per purpose and entity: ``("arrivals", client, service, n)`` as in the DES, so under one seed
both engines send at the same times (common random numbers); ``("service", pod)`` and ``("network", *delay
classes)`` as in the DES, though drawn in arrival order rather than event order; ``("route", node, service,
picker, source)`` per proxy and ``("load-balancer", client, service, n)`` per stream. So the two engines agree
in distribution, not request by request (except where no draw decides: round-robin, Maglev and source-hash pick
the same endpoints).
"""

from __future__ import annotations

import heapq
import itertools
import math

import numpy as np

from sim.cluster import Discipline, SessionAffinity
from sim.distributions import Constant, Dist, Sum
from sim.outcomes import Outcome
from sim.records import COLUMNS, PICK_FRESH, RunResult, monitors
from sim.rng import Seed, Streams, seed_record
from sim.routing import Route, ip_key, maglev
from sim.routing.pickers import Maglev, Random, RoundRobin, SourceHash
from sim.routing.ports import first_ports
from sim.scenario import Scenario, Stream
from sim.topology import Topology
from sim.workload import OPEN_LOOP, ClosedLoop, ConstantRate, Trace, send_times


def _describe(k: int, spec: Stream) -> str:
    return f"stream {k} ({spec.client} -> {spec.service})"


def stream_bound(spec: Stream, duration_s: float | None) -> int | None:
    """Most requests ``spec`` can send in a run (None: no bound, e.g. Poisson until ``duration_s``)."""
    w = spec.workload
    bounds = [] if spec.requests is None else [spec.requests]
    if isinstance(w, Trace):
        bounds.append(len(w.times_s))
    elif isinstance(w, ConstantRate) and duration_s is not None:
        bounds.append(max(0, math.floor((duration_s - spec.start_s) * w.rate_rps) + 1))
    return min(bounds) if bounds else None


def fast_path_problem(scenario: Scenario) -> str | None:
    """None where ``run_fast`` is exact for ``scenario``; otherwise a one-line reason why it is not."""
    sc = scenario
    if sc.timeline:
        return f"the scenario has a timeline ({len(sc.timeline)} events): endpoints change during the run"
    reach: dict[str, list[int | None]] = {}  # pod -> bounds of the streams that can reach it
    for k, spec in enumerate(sc.streams):
        name = _describe(k, spec)
        if not isinstance(spec.workload, OPEN_LOOP):
            return f"{name} is closed loop: each send waits for the previous reply"
        if spec.timeout_s is not None:
            return f"{name} has a request timeout ({spec.timeout_s:g} s): the client's give-up races the reply"
        if spec.retries.attempts:
            return f"{name} retries failed requests: a retry is sent when the failure is seen"
        if spec.connections.keep_alive:
            return f"{name} keeps connections alive: requests ride the connection of an earlier one"
        if sc.service(spec.service).session_affinity != SessionAffinity.NONE:
            return f"service {spec.service} has sessionAffinity ClientIP: a pick depends on the client's last pick"
        bound = stream_bound(spec, sc.duration_s)
        for node in sc.entry_nodes(spec):
            route = sc.route(spec, node)
            if route.endpoints and sc.picker(route.picker).needs_load:
                return f"{name} is routed by {route.picker!r} on {node}, which reads live connection counts"
            for ep in route.endpoints:
                reach.setdefault(ep.pod or "", []).append(bound)
    for pod_name, bounds in reach.items():
        pod = sc.pod(pod_name)
        most = None if None in bounds else sum(b or 0 for b in bounds)
        if most is not None and pod.concurrency >= most:
            continue  # more workers than requests it can ever hold: no request waits
        can = "an unbounded number of" if most is None else f"up to {most}"
        if pod.queue_limit is not None:
            return f"pod {pod_name} has a queue limit ({pod.queue_limit}): a full queue refuses requests"
        if pod.discipline == Discipline.PS:
            return (
                f"pod {pod_name} shares {pod.concurrency} workers among {can} requests (processor sharing): "
                "each one's pace depends on how many others are in service"
            )
    return None


# --- pieces ----------------------------------------------------------------------------------------------------


def mix64(x: np.ndarray) -> np.ndarray:
    """``sim.routing.maglev.mix64`` on a uint64 array (splitmix64's finaliser; wraps mod 2**64)."""
    x = x.astype(np.uint64)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def uniform_slots(rng: np.random.Generator, n: int, size: int) -> np.ndarray:
    """``size`` independent uniform picks from ``range(n)``: the ``random`` picker."""
    return rng.integers(0, n, size)


def lindley_starts(segment: np.ndarray, arrived: np.ndarray, service: np.ndarray) -> np.ndarray:
    """Service start times (s) at single-worker FIFO queues, without a loop over requests.

    Rows are grouped by queue (``segment`` non-decreasing) and sorted by ``arrived`` (s) within each; ``service``
    holds the service times (s). With E the running sum of earlier service times and G = arrived - E, request n
    starts at E_n + max(G_k, k <= n in its queue) (unrolling D_n = max(D_{n-1}, A_n) + S_n). The per-queue
    running maximum is one ``maximum.accumulate`` over complex numbers, which numpy orders by (real, imaginary) =
    (queue, G): no offsets that would cost precision. A request nobody is ahead of starts exactly on arrival.

    >>> lindley_starts(np.array([0, 0, 0, 1]), np.array([0.0, 0.5, 3.0, 0.2]), np.ones(4)).tolist()
    [0.0, 1.0, 3.0, 0.2]
    """
    if not len(arrived):
        return np.zeros(0)
    earlier = np.concatenate(([0.0], np.cumsum(service)[:-1]))
    g = arrived - earlier
    keyed = np.empty(len(g), dtype=complex)
    keyed.real, keyed.imag = segment, g
    best = np.maximum.accumulate(keyed).imag
    idle = best == g  # nobody ahead: starts on arrival, exactly
    return np.where(idle, arrived, np.maximum(earlier + best, arrived))


def multi_worker_starts(arrived: np.ndarray, service: np.ndarray, workers: int) -> np.ndarray:
    """Service start times (s) at one FIFO queue with ``workers`` workers, requests sorted by ``arrived`` (s).

    Each request takes the worker that frees first (Kiefer-Wolfowitz: the workers' free times as a heap), so it
    starts at the later of its arrival and that time: the DES's shortcut, as a loop over this pod's requests
    (``heapq`` in C; no vector form: the recursion's state is the whole heap).

    >>> multi_worker_starts(np.array([0.0, 0.0, 0.0, 5.0]), np.array([2.0, 3.0, 1.0, 1.0]), 2).tolist()
    [0.0, 0.0, 2.0, 5.0]
    """
    free = [0.0] * workers
    starts = []
    replace = heapq.heapreplace
    for a, s in zip(arrived.tolist(), service.tolist(), strict=True):
        first = free[0]
        start = first if first > a else a
        replace(free, start + s)
        starts.append(start)
    return np.asarray(starts, dtype=float)


def _fixed(dist: Dist) -> float | None:
    """The value (s) of a distribution that draws no randomness (a Constant, or a Sum of them), else None."""
    if isinstance(dist, Constant):
        return dist.value_s
    if isinstance(dist, Sum):
        total = 0.0
        for part in dist.parts:
            value = _fixed(part)
            if value is None:
                return None
            total += value
        return total
    return None


def _segments(keys: np.ndarray, n_keys: int) -> tuple[np.ndarray, np.ndarray]:
    """Row order grouping ``keys`` (0..n_keys-1, stable: send order kept within a key) and each key's start."""
    dtype = np.int16 if n_keys < 2**15 else np.int32  # numpy radix-sorts 16-bit keys
    order = np.argsort(keys.astype(dtype), kind="stable")
    starts = np.concatenate(([0], np.cumsum(np.bincount(keys, minlength=n_keys))))
    return order, starts


# --- the run ---------------------------------------------------------------------------------------------------


def run_fast(scenario: Scenario, seed: Seed) -> RunResult:
    """Simulate ``scenario`` with numpy where ``fast_path_problem`` finds it exact; the DES's records and meaning.

    Raises ValueError naming the problem where the fast path would not be exact.
    """
    problem = fast_path_problem(scenario)
    if problem is not None:
        raise ValueError(f"the fast path is not exact for scenario {scenario.name!r}: {problem}")
    sc = scenario
    rngs = Streams(seed)
    horizon = math.inf if sc.duration_s is None else sc.duration_s
    topo = sc.topology
    node_names = tuple(topo.nodes)
    node_index = {n: i for i, n in enumerate(node_names)}
    pod_names = tuple(p.name for p in sc.pods)
    pod_index = {n: i for i, n in enumerate(pod_names)}
    client_names = pod_names + tuple(c.name for c in sc.external_clients)
    service_names = tuple(s.name for s in sc.services)

    # Routes per (stream, entry node) group; a proxy (node, service, picker, source) holds a picker's state.
    g_entry: list[int] = []  # per group: entry node, drop reason, seconds to learn of a drop, SNAT or not, ...
    g_drop: list[int] = []
    g_fail: list[float] = []
    g_preserved: list[int] = []
    g_proxy: list[int] = []  # ... its proxy (-1: the route drops) and its first (group, slot) pair
    g_pairs: list[int] = []
    proxies: dict[tuple[object, ...], int] = {}  # (node, service, picker, source, endpoints) -> proxy index
    proxy_routes: list[tuple[tuple[str, ...], Route]] = []  # its rng key (node, service, picker, source), route
    pair_rows: list[tuple[str, str, str, int]] = []  # (group, slot) pairs: origin, entry node, pod's node, pod
    sends, stream_of, group_of = [], [], []
    occurrences: dict[tuple[str, str], int] = {}
    for k, spec in enumerate(sc.streams):
        nth = occurrences.get((spec.client, spec.service), 0)
        occurrences[spec.client, spec.service] = nth + 1
        entries = sc.entry_nodes(spec)
        origin = sc.origin(spec.client)
        base = len(g_entry)
        for node in entries:
            route = sc.route(spec, node)
            g_entry.append(node_index[node])
            g_drop.append(int(route.drop))
            g_fail.append(spec.connect_timeout_s if route.drop.client_waits else 0.0)
            g_preserved.append(int(route.source_preserved))
            g_pairs.append(len(pair_rows))
            if not route.endpoints:
                g_proxy.append(-1)
                continue
            rng_key: tuple[str, ...] = (node, spec.service, route.picker, sc.source(spec).value)
            key = (*rng_key, route.endpoints)
            if key not in proxies:
                proxies[key] = len(proxy_routes)
                proxy_routes.append((rng_key, route))
            g_proxy.append(proxies[key])
            pair_rows.extend((origin, node, ep.node_name or node, pod_index[ep.pod or ""]) for ep in route.endpoints)
        arrivals = rngs.generator("arrivals", spec.client, spec.service, nth)
        assert not isinstance(spec.workload, ClosedLoop)  # fast_path_problem: open loop only
        times = send_times(spec.workload.gap_blocks(arrivals), spec.start_s, spec.requests, horizon)
        if len(entries) > 1:
            lb = rngs.generator("load-balancer", spec.client, spec.service, nth)
            groups = base + lb.integers(0, len(entries), len(times))
        else:
            groups = np.full(len(times), base)
        sends.append(times)
        stream_of.append(np.full(len(times), k, dtype=np.int32))
        group_of.append(groups)

    # Rows in send order.
    t_sent = np.concatenate(sends)
    stream = np.concatenate(stream_of)
    group = np.concatenate(group_of)
    if len(sends) > 1:
        order = np.argsort(t_sent, kind="stable")  # merges the streams' sorted runs
        t_sent, stream, group = t_sent[order], stream[order], group[order]
    n = len(t_sent)
    proxy = np.asarray(g_proxy, dtype=np.int32)[group]
    routed = proxy >= 0
    every = bool(routed.all())
    ridx: slice | np.ndarray = slice(None)  # the routed rows
    m = n
    if not every:
        ridx = np.flatnonzero(routed)
        m = len(ridx)

    # Picks: per proxy, over its requests in send order.
    slot = np.zeros(n, dtype=np.int64)
    by_proxy, starts = _segments(proxy + 1, len(proxies) + 1)
    flows: np.ndarray | None = None
    for p, (rng_key, route) in enumerate(proxy_routes):
        rows = by_proxy[starts[p + 1] : starts[p + 2]]
        size, width = len(rows), len(route.endpoints)
        picker = sc.picker(route.picker)
        if not size:
            continue
        if isinstance(picker, Random):
            slot[rows] = uniform_slots(rngs.generator("route", *rng_key), width, size)
            continue
        if isinstance(picker, RoundRobin):
            slot[rows] = np.arange(size) % width
            continue
        if flows is None:
            flows = _flows(sc, rngs, stream, routed)
        flow = flows[rows]
        if isinstance(picker, SourceHash):
            slot[rows] = (mix64(flow >> np.uint64(16)) % np.uint64(width)).astype(np.int64)
        elif isinstance(picker, Maglev):
            lut = maglev.table([ep.address for ep in route.endpoints], picker.table_size, picker.seed)
            slot[rows] = lut[(mix64(flow) % np.uint64(picker.table_size)).astype(np.int64)]
        else:  # a picker without a vector form here: its own chooser, one flow at a time, in send order
            choose = picker.chooser(route.endpoints, rngs.generator("route", *rng_key), [])
            slot[rows] = [choose(f) for f in flow.tolist()]
    # A (group, slot) pair says the endpoint, the paths out and back and the hops; -1 (the row appended): unrouted.
    pair = np.asarray(g_pairs, dtype=np.int64)[group] + slot
    if not every:
        pair[~routed] = -1
    rpair = pair[ridx]
    pair_pod = np.array([row[3] for row in pair_rows] + [-1], dtype=COLUMNS["endpoint"])
    endpoint = pair_pod[pair]
    pair_out, pair_back = np.zeros(len(pair_rows) + 1, dtype=np.int64), np.zeros(len(pair_rows) + 1, dtype=np.int64)
    pair_hops = np.zeros(len(pair_rows) + 1, dtype=COLUMNS["hops"])
    paths: dict[tuple[int, ...], int] = {}  # the legs' delay classes -> path index, as the DES keys its draws
    for q in np.flatnonzero(np.bincount(rpair, minlength=len(pair_rows))).tolist():
        origin, node, ep_node, _ = pair_rows[q]
        lead = (origin,) if origin != node else ()  # an external client's packets pass through the entry node
        pair_out[q] = paths.setdefault(_classes(topo, (*lead, node, ep_node)), len(paths))
        pair_back[q] = paths.setdefault(_classes(topo, (ep_node, node, *lead)), len(paths))
        pair_hops[q] = topo.hops(origin, node) + topo.hops(node, ep_node)

    # Path delays out and back: one draw per request each way, from each path's keyed stream, in send order.
    dists = [_path_dist(topo, classes) for classes in paths]
    fixed = np.array([np.nan if (f := _fixed(d)) is None else f for d in dists] + [0.0], dtype=float)  # NaN: drawn
    out, back = fixed[pair_out][rpair], fixed[pair_back][rpair]
    if np.isnan(fixed).any() and m:
        need = np.concatenate((pair_out[rpair], pair_back[rpair]))
        delay = np.concatenate((out, back))
        by_path, starts = _segments(need, len(paths))
        for path_id, classes in enumerate(paths):
            rows = by_path[starts[path_id] : starts[path_id + 1]]
            if len(rows) and np.isnan(fixed[path_id]):
                delay[rows] = dists[path_id](rngs.generator("network", *classes), len(rows))
        out, back = delay[:m], delay[m:]

    # Backends: FIFO per pod, in arrival order.
    pod = endpoint[ridx]
    arrived = t_sent[ridx] + out
    by_time = np.argsort(arrived, kind="stable")  # nearly sorted already: timsort runs
    by_pod = by_time[_segments(pod[by_time], len(pod_names))[0]]
    pod_s, arrived_s = pod[by_pod], arrived[by_pod]
    service_s = np.empty(m)
    counts = np.bincount(pod_s, minlength=len(pod_names))
    bounds = np.concatenate(([0], np.cumsum(counts)))
    for i in np.flatnonzero(counts).tolist():
        backend = sc.pods[i]
        draws = backend.service_time(rngs.generator("service", backend.name), int(counts[i]))
        service_s[bounds[i] : bounds[i + 1]] = draws
    single = np.array([p.concurrency == 1 for p in sc.pods], dtype=bool)[pod_s]
    started_s = arrived_s
    if single.all():
        started_s = lindley_starts(pod_s, arrived_s, service_s)
    elif single.any():
        started_s = np.where(single, lindley_starts(pod_s, arrived_s, service_s), arrived_s)
    for i in np.flatnonzero(counts).tolist():  # pods with more workers: the free-time recursion, pod by pod
        if sc.pods[i].concurrency > 1:
            span = slice(bounds[i], bounds[i + 1])
            started_s[span] = multi_worker_starts(arrived_s[span], service_s[span], sc.pods[i].concurrency)
    started, finished = np.empty(m), np.empty(m)
    started[by_pod] = started_s
    finished[by_pod] = started_s + service_s
    returned = finished + back

    # Times; a step at or after the horizon has not happened (the DES stops before events at duration_s).
    if every:
        t_arrived, t_started, t_finished, t_returned = arrived, started, finished, returned
    else:
        t_arrived, t_started, t_finished = (np.full(n, np.nan) for _ in range(3))
        t_arrived[ridx], t_started[ridx], t_finished[ridx] = arrived, started, finished
        t_returned = t_sent + np.asarray(g_fail)[group]
        t_returned[ridx] = returned
    if horizon < math.inf:
        for col in (t_arrived, t_started, t_finished, t_returned):
            col[col >= horizon] = np.nan
    outcome = np.full(n, int(Outcome.OK), dtype=COLUMNS["outcome"])
    reason = np.zeros(n, dtype=COLUMNS["reason"])
    if not every:
        outcome[~routed] = int(Outcome.DROPPED)
        reason[~routed] = np.asarray(g_drop, dtype=COLUMNS["reason"])[group[~routed]]
    if horizon < math.inf:
        pending = np.isnan(t_returned)
        outcome[pending] = int(Outcome.IN_FLIGHT)
        reason[pending] = 0
    end_s = sc.duration_s
    if end_s is None:  # the DES runs until its last event: a reply, a failure, or the end of the warm-up
        end_s = max(sc.warmup_s, float(t_returned.max()) if n else 0.0)

    # The other columns, looked up per stream, group and pod.
    client_index = {c: i for i, c in enumerate(client_names)}
    node_of_pod = np.array([node_index[p.node] for p in sc.pods] + [-1], dtype=COLUMNS["endpoint_node"])
    stream_client = np.array([client_index[s.client] for s in sc.streams], dtype=COLUMNS["client"])
    node_of_client = [node_index[p.node] for p in sc.pods] + [-1] * len(sc.external_clients)
    stream_node = np.array([node_of_client[client_index[s.client]] for s in sc.streams], dtype=COLUMNS["client_node"])
    stream_service = np.array([service_names.index(s.service) for s in sc.streams], dtype=COLUMNS["service"])
    cols = {
        "stream": stream,
        "request": np.arange(n),
        "attempt": np.zeros(n),
        "version": np.zeros(n),
        "client": stream_client[stream],
        "client_node": stream_node[stream],
        "service": stream_service[stream],
        "entry_node": np.asarray(g_entry, dtype=COLUMNS["entry_node"])[group],
        "endpoint": endpoint,
        "endpoint_node": node_of_pod[endpoint],
        "hops": pair_hops[pair],
        "pick": np.full(n, PICK_FRESH),
        "source_preserved": np.asarray(g_preserved, dtype=COLUMNS["source_preserved"])[group],
        "t_sent": t_sent,
        "t_arrived": t_arrived,
        "t_started": t_started,
        "t_finished": t_finished,
        "t_returned": t_returned,
        "outcome": outcome,
        "reason": reason,
    }
    columns = {name: cols[name].astype(dtype, copy=False) for name, dtype in COLUMNS.items()}
    pods = monitors(
        columns, [p.concurrency for p in sc.pods], sc.warmup_s, end_s, [p.discipline == Discipline.PS for p in sc.pods]
    )
    seed_value = seed_record(seed)  # a SeedSequence's entropy and spawn key: what redoes this run
    return RunResult(sc, seed_value, columns, node_names, pod_names, service_names, end_s, client_names, pods)


def _classes(topo: Topology, vertices: tuple[str, ...]) -> tuple[int, ...]:
    """The delay class of each leg along consecutive vertices (each leg its own lowest-latency path)."""
    return tuple(topo.delay_class(a, b) for a, b in itertools.pairwise(vertices))


def _path_dist(topo: Topology, classes: tuple[int, ...]) -> Dist:
    """The delay (s) along legs of the given delay classes (as the DES draws it)."""
    legs = tuple(topo.class_delay(c) for c in classes)
    return legs[0] if len(legs) == 1 else Sum(legs)


def _flows(sc: Scenario, rngs: Streams, stream: np.ndarray, routed: np.ndarray) -> np.ndarray:
    """Per row, its new connection's flow as the DES makes it: ``(crc32(client IP) << 16) | source port``, the
    stream's n-th new connection taking the n-th port of its ``("ports", client, service, n)`` sequence
    (``sim.routing.ports``) (uint64)."""
    by_stream, starts = _segments(stream, len(sc.streams))
    running = np.cumsum(routed[by_stream])
    before = np.concatenate(([0], running))[starts[:-1]]
    opened = np.empty(len(stream), dtype=np.int64)
    opened[by_stream] = running - np.repeat(before, np.diff(starts))  # 1 for a stream's first new connection
    ports = np.zeros(len(stream), dtype=np.uint64)
    occurrences: dict[tuple[str, str], int] = {}
    for k, spec in enumerate(sc.streams):
        nth = occurrences.get((spec.client, spec.service), 0)
        occurrences[spec.client, spec.service] = nth + 1
        rows = by_stream[starts[k] : starts[k + 1]]
        if len(rows):
            seq = first_ports(rngs.generator("ports", spec.client, spec.service, nth), max(1, int(opened[rows].max())))
            ports[rows] = seq[np.maximum(opened[rows] - 1, 0)]  # an unrouted row's port is never read
    ips = np.array([ip_key(sc.client_ip(s.client)) for s in sc.streams], dtype=np.uint64)
    return (ips[stream] << np.uint64(16)) | ports
