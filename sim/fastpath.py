"""A vectorised fast path beside the DES: ``run_fast(scenario, seed) -> RunResult`` computed with numpy.

Where no request waits on another's state, a run needs no event loop: send times are cumulative sums of gap
draws, each request's endpoint comes from its route's picker (vectorised per proxy), path delays are drawn per
path in vectors, and each FIFO backend pod is solved from its arrivals: one worker by the Lindley recursion as a
running maximum, more by the Kiefer-Wolfowitz free-time recursion (``sim.queueing.fifo_serve``, a loop per
pod); a processor-sharing pod is exact only with more workers than requests it can ever hold (no wait).
``fast_path_problem`` says whether that is exact for a scenario, and if not, why.

The records have ``sim.records.COLUMNS`` with the DES's meaning, rows in send order. Every draw comes from a
``Streams`` key per purpose and entity: ``("arrivals", client, service, n)`` as in the DES, so under one seed
both engines send at the same times (common random numbers); ``("service", pod)`` and ``("network", *delay
classes)`` as in the DES, though drawn in arrival order rather than event order; ``("route", node, service,
picker, source)`` per proxy and ``("load-balancer", client, service, n)`` per stream. So the two engines agree
in distribution, not request by request (except where no draw decides: round-robin, Maglev and source-hash pick
the same endpoints).

It reads the same plan as the DES (``sim.plan``) and asks each route's picker for its vector form
(``Picker.picks``); a picker without one runs its chooser flow by flow. The steps are small functions: groups
(routes per stream and entry node), sends, picks, delays, serve (per pod), times, outcomes.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from sim.cluster import Discipline
from sim.distributions import Constant, Dist, Sum
from sim.outcomes import Outcome
from sim.plan import Plan, RoutePlan, compile_plan
from sim.queueing import fifo_serve
from sim.records import COLUMNS, PICK_FRESH, RunResult
from sim.rng import Seed, Streams
from sim.routing.ports import first_ports
from sim.scenario import Scenario, Stream
from sim.topology import Topology
from sim.workload import OPEN_LOOP, ClosedLoop, ConstantRate, Trace, send_times, time_order


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
    if scenario.timeline:
        return f"the scenario has a timeline ({len(scenario.timeline)} events): endpoints change during the run"
    return _problem(compile_plan(scenario))


def _problem(plan: Plan) -> str | None:
    """``fast_path_problem`` on a compiled plan."""
    sc = plan.scenario
    if sc.timeline:
        return f"the scenario has a timeline ({len(sc.timeline)} events): endpoints change during the run"
    reach: dict[int, list[int | None]] = {}  # pod index -> bounds of the streams that can reach it
    for sp in plan.streams:
        k, spec = sp.index, sp.spec
        name = _describe(k, spec)
        if not isinstance(spec.workload, OPEN_LOOP):
            return f"{name} is closed loop: each send waits for the previous reply"
        if spec.timeout_s is not None:
            return f"{name} has a request timeout ({spec.timeout_s:g} s): the client's give-up races the reply"
        if spec.retries.attempts:
            return f"{name} retries failed requests: a retry is sent when the failure is seen"
        if spec.connections.keep_alive:
            return f"{name} keeps connections alive: requests ride the connection of an earlier one"
        if any(rp.affinity_timeout_s is not None for rp in sp.routes[0]):
            return f"service {spec.service} has sessionAffinity ClientIP: a pick depends on the client's last pick"
        bound = stream_bound(spec, sc.duration_s)
        for rp in sp.routes[0]:
            if rp.route.endpoints and rp.route.picker.needs_load:
                picker = rp.route.picker.name
                return f"{name} is routed by {picker!r} on {rp.node}, which reads live connection counts"
            for i in rp.pods:
                reach.setdefault(i, []).append(bound)
    for i, bounds in reach.items():
        pod = plan.pods[i]
        most = None if None in bounds else sum(b or 0 for b in bounds)
        if most is not None and pod.concurrency >= most:
            continue  # more workers than requests it can ever hold: no request waits
        can = "an unbounded number of" if most is None else f"up to {most}"
        if pod.queue_limit is not None:
            return f"pod {pod.name} has a queue limit ({pod.queue_limit}): a full queue refuses requests"
        if pod.discipline == Discipline.PS:
            return (
                f"pod {pod.name} shares {pod.concurrency} workers among {can} requests (processor sharing): "
                "each one's pace depends on how many others are in service"
            )
    return None


# --- pieces ----------------------------------------------------------------------------------------------------


def lindley_starts(segment: np.ndarray, arrived: np.ndarray, service: np.ndarray) -> np.ndarray:
    """Service start times (s) at single-worker FIFO queues, without a loop over requests.

    Rows are grouped by queue (``segment`` non-decreasing) and sorted by ``arrived`` (s) within each; ``service``
    holds the service times (s). With E the running sum of earlier service times and G = arrived - E, request n
    starts at E_n + max(G_k, k <= n in its queue) (unrolling D_n = max(D_{n-1}, A_n) + S_n). The per-queue
    running maximum is one ``maximum.accumulate`` over complex numbers, which numpy orders by (real, imaginary) =
    (queue, G): no offsets that would cost precision; with few queues, one real ``maximum.accumulate`` per queue
    (the same maxima, at half the bytes). A request nobody is ahead of starts exactly on arrival.

    >>> lindley_starts(np.array([0, 0, 0, 1]), np.array([0.0, 0.5, 3.0, 0.2]), np.ones(4)).tolist()
    [0.0, 1.0, 3.0, 0.2]
    """
    if not len(arrived):
        return np.zeros(0)
    earlier = np.empty(len(service))  # in place below, each step the value of the plain expression
    earlier[0] = 0.0
    np.cumsum(service[:-1], out=earlier[1:])
    g = arrived - earlier
    edges = np.flatnonzero(segment[1:] != segment[:-1]) + 1
    if len(edges) < _FEW_QUEUES:
        best = np.empty(len(g))
        for lo, hi in itertools.pairwise([0, *edges.tolist(), len(g)]):
            np.maximum.accumulate(g[lo:hi], out=best[lo:hi])
    else:
        keyed = np.empty(len(g), dtype=complex)
        keyed.real, keyed.imag = segment, g
        best = np.maximum.accumulate(keyed, out=keyed).imag
    idle = best == g  # nobody ahead: starts on arrival, exactly
    del g
    np.maximum(np.add(earlier, best, out=earlier), arrived, out=earlier)
    del best
    np.copyto(earlier, arrived, where=idle)
    return earlier


_FEW_QUEUES = 64
"""Below this many queues, ``lindley_starts`` takes each queue's running maximum apart (a numpy call each)."""


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


@dataclass
class _Groups:
    """Routes per (stream, entry node) group, in stream order; a proxy (node, Service, picker, source, endpoints)
    holds a picker's state; a (group, slot) pair is one endpoint as reached through one group's entry node."""

    entry: list[int] = field(default_factory=list)  # per group: entry node index
    drop: list[int] = field(default_factory=list)  # ... drop reason
    fail_s: list[float] = field(default_factory=list)  # ... seconds to learn of a drop
    preserved: list[int] = field(default_factory=list)  # ... source kept (1) or SNAT (0)
    proxy: list[int] = field(default_factory=list)  # ... its proxy (-1: the route drops)
    first_pair: list[int] = field(default_factory=list)  # ... its first (group, slot) pair
    proxies: list[RoutePlan] = field(default_factory=list)  # per proxy: the first route that made it
    pairs: list[tuple[str, str, str, int]] = field(default_factory=list)  # origin, entry node, pod's node, pod
    first_group: list[int] = field(default_factory=list)  # per stream: its first group


def _groups(plan: Plan) -> _Groups:
    """Every stream's routes (as of version 0: the fast path runs no timeline) as groups, proxies and pairs."""
    g = _Groups()
    proxies: dict[tuple[object, ...], int] = {}
    for sp in plan.streams:
        g.first_group.append(len(g.entry))
        for rp in sp.routes[0]:
            g.entry.append(rp.node_index)
            g.drop.append(int(rp.route.drop))
            g.fail_s.append(rp.fail_after_s)
            g.preserved.append(int(rp.route.source_preserved))
            g.first_pair.append(len(g.pairs))
            if not rp.route.endpoints:
                g.proxy.append(-1)
                continue
            if rp.proxy_key not in proxies:
                proxies[rp.proxy_key] = len(g.proxies)
                g.proxies.append(rp)
            g.proxy.append(proxies[rp.proxy_key])
            g.pairs.extend(zip(itertools.repeat(sp.origin), itertools.repeat(rp.node), rp.endpoint_nodes, rp.pods))
    return g


def _sends(plan: Plan, rngs: Streams, g: _Groups, horizon: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every send in time order: its time (s), stream and group (a load balancer's pick of entry node)."""
    sends, stream_of, group_of = [], [], []
    for sp in plan.streams:
        spec = sp.spec
        assert not isinstance(spec.workload, ClosedLoop)  # fast_path_problem: open loop only
        arrivals = rngs.generator(*sp.key("arrivals"))
        times = send_times(spec.workload.gap_blocks(arrivals), spec.start_s, spec.requests, horizon)
        base = g.first_group[sp.index]
        if len(sp.entries) > 1:
            lb = rngs.generator(*sp.key("load-balancer"))
            groups = (base + lb.integers(0, len(sp.entries), len(times))).astype(np.int32)
        else:
            groups = np.full(len(times), base, dtype=np.int32)
        sends.append(times)
        stream_of.append(np.full(len(times), sp.index, dtype=np.int32))
        group_of.append(groups)
    t_sent, stream, group = np.concatenate(sends), np.concatenate(stream_of), np.concatenate(group_of)
    if len(sends) > 1:
        order = time_order(t_sent)  # merges the streams' sorted runs
        t_sent, stream, group = t_sent[order], stream[order], group[order]
    return t_sent, stream, group


def _picks(plan: Plan, rngs: Streams, g: _Groups, proxy: np.ndarray, flows: Callable[[], np.ndarray]) -> np.ndarray:
    """Per row, the slot its proxy's picker chose (0 for unrouted rows): each picker's vector form
    (``Picker.picks``) over its proxy's requests in send order, or its own chooser one flow at a time."""
    slot = np.zeros(len(proxy), dtype=np.int32)  # slots index a route's endpoints
    by_proxy, starts = _segments(proxy + 1, len(g.proxies) + 1)
    for p, rp in enumerate(g.proxies):
        rows = by_proxy[starts[p + 1] : starts[p + 2]]
        if not len(rows):
            continue
        endpoints, picker = rp.route.endpoints, rp.route.picker
        rng = functools.partial(rngs.generator, "route", *rp.proxy)
        picked = picker.picks(endpoints, len(rows), rng, functools.partial(_take, flows, rows))
        if picked is None:  # no vector form: its own chooser, one flow at a time, in send order
            choose = picker.chooser(endpoints, rng(), [])
            picked = np.array([choose(f) for f in flows()[rows].tolist()], dtype=np.int64)
        slot[rows] = picked
    return slot


def _take(flows: Callable[[], np.ndarray], rows: np.ndarray) -> np.ndarray:
    """The flows of ``rows``."""
    return flows()[rows]


def _paths(
    plan: Plan, g: _Groups, rpair: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[tuple[int, ...], int]]:
    """Per (group, slot) pair reached, the index of its path out and back (by the legs' delay classes, as the DES
    keys its draws) and its hop count one way (the trailing pair, unrouted: path 0, no hops)."""
    topo = plan.topology
    pair_out = np.zeros(len(g.pairs) + 1, dtype=np.int64)
    pair_back = np.zeros(len(g.pairs) + 1, dtype=np.int64)
    pair_hops = np.zeros(len(g.pairs) + 1, dtype=COLUMNS["hops"])
    paths: dict[tuple[int, ...], int] = {}
    for q in np.flatnonzero(np.bincount(rpair, minlength=len(g.pairs))).tolist():
        origin, node, ep_node, _ = g.pairs[q]
        lead = (origin,) if origin != node else ()  # an external client's packets pass through the entry node
        pair_out[q] = paths.setdefault(_classes(topo, (*lead, node, ep_node)), len(paths))
        pair_back[q] = paths.setdefault(_classes(topo, (ep_node, node, *lead)), len(paths))
        pair_hops[q] = topo.hops(origin, node) + topo.hops(node, ep_node)
    return pair_out, pair_back, pair_hops, paths


def _delays(plan: Plan, rngs: Streams, g: _Groups, rpair: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Path delays (s) out and back of the routed rows: one draw per request each way, from each path's keyed
    stream, in send order (a path of constant links draws nothing); and the hop count of each pair."""
    pair_out, pair_back, pair_hops, paths = _paths(plan, g, rpair)
    dists = [_path_dist(plan.topology, classes) for classes in paths]
    fixed = np.array([np.nan if (f := _fixed(d)) is None else f for d in dists] + [0.0], dtype=float)  # NaN: drawn
    out, back = fixed[pair_out][rpair], fixed[pair_back][rpair]
    if np.isnan(fixed).any() and len(rpair):
        # A path's draws go to its rows' trips out in send order, then to its rows' trips back in send order.
        by_out, starts_out = _segments(pair_out[rpair], len(paths))
        by_back, starts_back = _segments(pair_back[rpair], len(paths))
        for path_id, classes in enumerate(paths):
            rows_out = by_out[starts_out[path_id] : starts_out[path_id + 1]]
            rows_back = by_back[starts_back[path_id] : starts_back[path_id + 1]]
            k = len(rows_out)
            if k + len(rows_back) and np.isnan(fixed[path_id]):
                delay = dists[path_id](rngs.generator("network", *classes), k + len(rows_back))
                out[rows_out], back[rows_back] = delay[:k], delay[k:]
    return out, back, pair_hops


def _serve(plan: Plan, rngs: Streams, pod: np.ndarray, arrived: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start and finish times (s) of the routed rows at their FIFO pods, in arrival order per pod: the Lindley
    recursion for one worker, the free-time recursion for more (pod by pod)."""
    m, pods = len(pod), plan.pods
    if m < 2 or bool((arrived[1:] >= arrived[:-1]).all()):  # in send order already (e.g. fixed trips out)
        by_pod = _segments(pod, len(pods))[0]
    else:
        by_time = time_order(arrived)
        by_pod = by_time[_segments(pod[by_time], len(pods))[0]]
        del by_time
    counts = np.bincount(pod, minlength=len(pods))
    pod_s = np.repeat(np.arange(len(pods), dtype=pod.dtype), counts)  # pod[by_pod], without the gather
    arrived_s = arrived[by_pod]
    service_s = np.empty(m)
    bounds = np.concatenate(([0], np.cumsum(counts)))
    for i in np.flatnonzero(counts).tolist():
        draws = pods[i].service_time(rngs.generator("service", pods[i].name), int(counts[i]))
        service_s[bounds[i] : bounds[i + 1]] = draws
    single_pod = np.array([p.concurrency == 1 for p in pods], dtype=bool)
    single_busy = single_pod[counts > 0]  # the pods with requests
    started_s = arrived_s
    if single_busy.all():
        started_s = lindley_starts(pod_s, arrived_s, service_s)
    elif single_busy.any():
        started_s = np.where(single_pod[pod_s], lindley_starts(pod_s, arrived_s, service_s), arrived_s)
    del pod_s
    for i in np.flatnonzero(counts).tolist():  # pods with more workers: the free-time recursion, pod by pod
        if pods[i].concurrency > 1:
            span = slice(bounds[i], bounds[i + 1])
            starts, _ = fifo_serve(arrived_s[span].tolist(), iter(service_s[span].tolist()), pods[i].concurrency)
            started_s[span] = starts
    started, finished = np.empty(m), np.empty(m)
    started[by_pod] = started_s
    finished[by_pod] = np.add(started_s, service_s, out=service_s)
    return started, finished


def run_fast(scenario: Scenario, seed: Seed) -> RunResult:
    """Simulate ``scenario`` with numpy where ``fast_path_problem`` finds it exact; the DES's records and meaning.

    Raises ValueError naming the problem where the fast path would not be exact.
    """
    if scenario.timeline:
        raise ValueError(f"the fast path is not exact for scenario {scenario.name!r}: {fast_path_problem(scenario)}")
    plan = compile_plan(scenario)
    problem = _problem(plan)
    if problem is not None:
        raise ValueError(f"the fast path is not exact for scenario {scenario.name!r}: {problem}")
    rngs = Streams(seed)
    horizon = math.inf if plan.duration_s is None else plan.duration_s
    g = _groups(plan)
    t_sent, stream, group = _sends(plan, rngs, g, horizon)
    n = len(t_sent)
    proxy = np.asarray(g.proxy, dtype=np.int32)[group]
    routed = proxy >= 0
    every = bool(routed.all())
    ridx: slice | np.ndarray = slice(None) if every else np.flatnonzero(routed)  # the routed rows
    flows = functools.cache(lambda: _flows(plan, rngs, stream, routed))
    slot = _picks(plan, rngs, g, proxy, flows)
    # A (group, slot) pair says the endpoint and the paths out and back; -1 (the row appended): unrouted.
    pair = np.asarray(g.first_pair, dtype=np.int32)[group] + slot  # int32: a list of 2**31 pairs would not fit
    del slot
    if not every:
        pair[~routed] = -1
    rpair = pair[ridx]
    endpoint = np.array([row[3] for row in g.pairs] + [-1], dtype=COLUMNS["endpoint"])[pair]
    out, back, pair_hops = _delays(plan, rngs, g, rpair)
    arrived = np.add(t_sent[ridx], out, out=out)  # in place: the trip out is not needed after
    started, finished = _serve(plan, rngs, endpoint[ridx], arrived)
    fail_s = np.asarray(g.fail_s)[group] if not every else np.zeros(0)  # read for unrouted rows only
    returned = np.add(finished, back, out=back)
    times = _times(n, ridx, t_sent, arrived, started, finished, returned, fail_s)
    outcome, reason = _outcomes(routed, np.asarray(g.drop, dtype=COLUMNS["reason"])[group], times, horizon)
    end_s = plan.duration_s
    if end_s is None:  # the DES runs until its last event: a reply, a failure, or the end of the warm-up
        end_s = max(plan.warmup_s, float(times["t_returned"].max()) if n else 0.0)
    raw = {  # each column built in its final dtype: no second copy
        "stream": stream,
        "request": np.arange(n, dtype=COLUMNS["request"]),
        "attempt": np.zeros(n, dtype=COLUMNS["attempt"]),
        "version": np.zeros(n, dtype=COLUMNS["version"]),
        "entry_node": np.asarray(g.entry, dtype=COLUMNS["entry_node"])[group],
        "endpoint": endpoint,
        "hops": pair_hops[pair],
        "pick": np.full(n, PICK_FRESH, dtype=COLUMNS["pick"]),
        "source_preserved": np.asarray(g.preserved, dtype=COLUMNS["source_preserved"])[group],
        **times,
        "outcome": outcome,
        "reason": reason,
    }
    return plan.result(seed, raw, end_s)


def _times(
    n: int,
    ridx: slice | np.ndarray,
    t_sent: np.ndarray,
    arrived: np.ndarray,
    started: np.ndarray,
    finished: np.ndarray,
    returned: np.ndarray,
    fail_s: np.ndarray,
) -> dict[str, np.ndarray]:
    """The five time columns (s) of all rows from the routed rows' (``ridx``); an unrouted row returns when its
    client learns of the drop (``fail_s`` after sending)."""
    if isinstance(ridx, slice):
        t_arrived, t_started, t_finished, t_returned = arrived, started, finished, returned
    else:
        t_arrived, t_started, t_finished = (np.full(n, np.nan) for _ in range(3))
        t_arrived[ridx], t_started[ridx], t_finished[ridx] = arrived, started, finished
        t_returned = t_sent + fail_s
        t_returned[ridx] = returned
    return {
        "t_sent": t_sent,
        "t_arrived": t_arrived,
        "t_started": t_started,
        "t_finished": t_finished,
        "t_returned": t_returned,
    }


def _outcomes(
    routed: np.ndarray, drop: np.ndarray, times: dict[str, np.ndarray], horizon: float
) -> tuple[np.ndarray, np.ndarray]:
    """Outcome and drop reason per row. A step at or after the horizon has not happened (the DES stops before
    events at ``duration_s``): in place, its time is NaN, and a request not returned by then is in flight."""
    n = len(routed)
    if horizon < math.inf:
        for name in ("t_arrived", "t_started", "t_finished", "t_returned"):
            col = times[name]
            col[col >= horizon] = np.nan
    outcome = np.full(n, int(Outcome.OK), dtype=COLUMNS["outcome"])
    reason = np.zeros(n, dtype=COLUMNS["reason"])
    if not routed.all():
        outcome[~routed] = int(Outcome.DROPPED)
        reason[~routed] = drop[~routed]
    if horizon < math.inf:
        pending = np.isnan(times["t_returned"])
        outcome[pending] = int(Outcome.IN_FLIGHT)
        reason[pending] = 0
    return outcome, reason


def _classes(topo: Topology, vertices: tuple[str, ...]) -> tuple[int, ...]:
    """The delay class of each leg along consecutive vertices (each leg its own lowest-latency path)."""
    return tuple(topo.delay_class(a, b) for a, b in itertools.pairwise(vertices))


def _path_dist(topo: Topology, classes: tuple[int, ...]) -> Dist:
    """The delay (s) along legs of the given delay classes (as the DES draws it)."""
    legs = tuple(topo.class_delay(c) for c in classes)
    return legs[0] if len(legs) == 1 else Sum(legs)


def _flows(plan: Plan, rngs: Streams, stream: np.ndarray, routed: np.ndarray) -> np.ndarray:
    """Per row, its new connection's flow as the DES makes it: ``(crc32(client IP) << 16) | source port``, the
    stream's n-th new connection taking the n-th port of its ``("ports", client, service, n)`` sequence
    (``sim.routing.ports``) (uint64)."""
    by_stream, starts = _segments(stream, len(plan.streams))
    running = np.cumsum(routed[by_stream])
    before = np.concatenate(([0], running))[starts[:-1]]
    opened = np.empty(len(stream), dtype=np.int64)
    opened[by_stream] = running - np.repeat(before, np.diff(starts))  # 1 for a stream's first new connection
    ports = np.zeros(len(stream), dtype=np.uint64)
    for sp in plan.streams:
        rows = by_stream[starts[sp.index] : starts[sp.index + 1]]
        if len(rows):
            seq = first_ports(rngs.generator(*sp.key("ports")), max(1, int(opened[rows].max())))
            ports[rows] = seq[np.maximum(opened[rows] - 1, 0)]  # an unrouted row's port is never read
    ips = np.array([sp.ip for sp in plan.streams], dtype=np.uint64)
    return (ips[stream] << np.uint64(16)) | ports
