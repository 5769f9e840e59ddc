"""The event-free solver: a run in which no request waits on another's state, solved without an event loop.

``events_needed(plan)`` says whether a run needs events, and if so why: a closed loop, a timeout, a retry, a
kept-alive connection, session affinity, a picker that reads live connection counts, a changing cluster, a
processor-sharing pod where requests can wait, or a call graph whose tiers cannot be solved apart
(``sim.callsolver.calls_problem``; where they can, ``solve`` hands the run to ``sim.callsolver``). It is the one
answer for every caller (``sim.facade``, the CLI, sweeps, the benchmarks). Where it says None, ``solve(plan, seed)``
computes the run's records in steps: the send schedule (each stream's send times, merged in time order), each send's
entry node, endpoint and trips out and back, then each pod's requests served in arrival order by the FIFO recursion
(``sim.queueing``), the horizon rule and outcomes (``sim.plan.clip_to_horizon``), and the RunResult
(``Plan.result``).

Two ways to draw, one pipeline:

- ``exact=True`` (what ``sim.simulate(..., engine="des")`` runs where no events are needed): every draw made as the
  event path makes it, request by request in send order, from the same ``sim.plan.Draws`` (the same pickers,
  ports, load-balancer picks, path and service draws), and each pod's requests served by ``fifo_serve``, the
  recursion the event path's pods take on arrival. Its records equal the event path's byte for byte
  (``tests/test_engine.py``), for FIFO pods; a processor-sharing pod that never holds more requests than CPUs
  finishes each request its service time after its arrival, which the event path's running credit of work
  reaches within rounding (a few ulps), not to the bit.
- ``exact=False`` (``engine="fast"``): numpy vectors per purpose. Send times are the same (common random numbers:
  ``("arrivals", client, service, n)``); the endpoint comes from each route's picker in vector form
  (``Picker.picks``, ``("route", node, service, picker, source)``), path delays are drawn per path in vectors
  (``("network", *classes)``: a path's trips out in send order, then its trips back), a load balancer's picks in
  one vector, and a single-worker pod without a queue limit is solved by the Lindley recursion as a running
  maximum (``lindley_starts``, exact to rounding); more workers or a queue limit take ``fifo_serve``. So the two
  ways agree in distribution, not request by request (except where no draw decides: round-robin, Maglev and
  source-hash pick the same endpoints), and the statistical tests (``tests/test_fastpath.py``) check it.

The records have ``sim.records.COLUMNS`` with the event path's meaning, rows in send order.
"""

from __future__ import annotations

import functools
import itertools
from array import array
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from sim.callsolver import calls_problem, solve_calls
from sim.cluster import Discipline, Pod
from sim.distributions import fixed_value
from sim.outcomes import DropReason, Outcome
from sim.plan import Draws, Plan, RoutePlan, StreamPlan, clip_to_horizon, compile_plan, first_attempts, stream_bound
from sim.queueing import fifo_serve
from sim.records import COLUMNS, RunResult
from sim.rng import Seed, Streams
from sim.routing.ports import first_ports
from sim.scenario import Scenario, Stream
from sim.workload import OPEN_LOOP, send_times, time_order


def _describe(k: int, spec: Stream) -> str:
    return f"stream {k} ({spec.client} -> {spec.service})"


def events_needed(plan: Plan | Scenario) -> str | None:
    """None where the run needs no event loop (``solve`` computes it); otherwise a one-line reason why it does."""
    if isinstance(plan, Scenario):
        if plan.timeline:  # answered before compiling every version's routes
            return _timeline(plan)
        plan = compile_plan(plan)
    if plan.scenario.timeline:
        return _timeline(plan.scenario)
    reach: dict[int, list[int | None]] = {}  # pod index -> bounds of the streams that can reach it
    for sp in plan.streams:
        problem = _stream_problem(sp, plan.duration_s, reach)
        if problem is not None:
            return problem
    if plan.call_streams:
        return calls_problem(plan)
    for i, bounds in reach.items():
        pod = plan.pods[i]
        most = None if None in bounds else sum(b or 0 for b in bounds)
        if pod.discipline == Discipline.PS and (most is None or pod.concurrency < most):
            can = "an unbounded number of" if most is None else f"up to {most}"
            return (
                f"pod {pod.name} shares {pod.concurrency} workers among {can} requests (processor sharing): "
                "each one's pace depends on how many others are in service"
            )
    return None


def _timeline(sc: Scenario) -> str:
    return f"the scenario has a timeline ({len(sc.timeline)} events): endpoints change during the run"


def _stream_problem(sp: StreamPlan, duration_s: float | None, reach: dict[int, list[int | None]]) -> str | None:
    """Why the stream's sends need events (None: they do not); adds its bound to each pod it can reach."""
    spec = sp.spec
    name = _describe(sp.index, spec)
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
    bound = stream_bound(spec, duration_s)
    for rp in sp.routes[0]:
        if rp.route.endpoints and rp.route.picker.needs_load:
            return f"{name} is routed by {rp.route.picker.name!r} on {rp.node}, which reads live connection counts"
        for i in rp.pods:
            reach.setdefault(i, []).append(bound)
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
    route_groups = _Groups()
    proxies: dict[tuple[object, ...], int] = {}
    for sp in plan.streams:
        route_groups.first_group.append(len(route_groups.entry))
        for rp in sp.routes[0]:
            route_groups.entry.append(rp.node_index)
            route_groups.drop.append(int(rp.route.drop))
            route_groups.fail_s.append(rp.fail_after_s)
            route_groups.preserved.append(int(rp.route.source_preserved))
            route_groups.first_pair.append(len(route_groups.pairs))
            if not rp.route.endpoints:
                route_groups.proxy.append(-1)
                continue
            if rp.proxy_key not in proxies:
                proxies[rp.proxy_key] = len(route_groups.proxies)
                route_groups.proxies.append(rp)
            route_groups.proxy.append(proxies[rp.proxy_key])
            route_groups.pairs.extend(
                zip(itertools.repeat(sp.origin), itertools.repeat(rp.node), rp.endpoint_nodes, rp.pods)
            )
    return route_groups


def _sends(
    plan: Plan, rngs: Streams, route_groups: _Groups, draws: Draws | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every send in time order (equal times in stream order): its time (s), stream and group (a load balancer's
    pick of entry node: drawn as the event path draws it with ``draws``, else in one vector)."""
    sends, stream_of, group_of = [], [], []
    for sp in plan.streams:
        spec = sp.spec
        arrivals = rngs.generator(*sp.key("arrivals"))
        times = send_times(spec.workload.gap_blocks(arrivals), spec.start_s, spec.requests, plan.horizon_s)  # type: ignore[union-attr]
        base = route_groups.first_group[sp.index]
        if len(sp.entries) < 2:
            groups = np.full(len(times), base, dtype=np.int32)
        elif draws is not None:
            picks = np.fromiter(itertools.islice(draws.entries(sp) or (), len(times)), dtype=np.int32)  # type: ignore[arg-type]
            groups = (base + picks).astype(np.int32)
        else:
            lb = rngs.generator(*sp.key("load-balancer"))
            groups = (base + lb.integers(0, len(sp.entries), len(times))).astype(np.int32)
        sends.append(times)
        stream_of.append(np.full(len(times), sp.index, dtype=np.int32))
        group_of.append(groups)
    t_sent, stream, group = np.concatenate(sends), np.concatenate(stream_of), np.concatenate(group_of)
    if len(sends) > 1:
        order = time_order(t_sent)  # merges the streams' sorted runs
        t_sent, stream, group = t_sent[order], stream[order], group[order]
    return t_sent, stream, group


def _picks(
    plan: Plan, rngs: Streams, route_groups: _Groups, proxy: np.ndarray, flows: Callable[[], np.ndarray]
) -> np.ndarray:
    """Per row, the slot its proxy's picker chose (0 for unrouted rows): each picker's vector form
    (``Picker.picks``) over its proxy's requests in send order, or its own chooser one flow at a time."""
    slot = np.zeros(len(proxy), dtype=np.int32)  # slots index a route's endpoints
    by_proxy, starts = _segments(proxy + 1, len(route_groups.proxies) + 1)
    for p, rp in enumerate(route_groups.proxies):
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
    plan: Plan, route_groups: _Groups, request_pair: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[tuple[int, ...], int]]:
    """Per (group, slot) pair reached, the index of its path out and back (by the legs' delay classes, as the DES
    keys its draws) and its hop count one way (the trailing pair, unrouted: path 0, no hops)."""
    topo = plan.topology
    pair_out = np.zeros(len(route_groups.pairs) + 1, dtype=np.int64)
    pair_back = np.zeros(len(route_groups.pairs) + 1, dtype=np.int64)
    pair_hops = np.zeros(len(route_groups.pairs) + 1, dtype=COLUMNS["hops"])
    paths: dict[tuple[int, ...], int] = {}
    for q in np.flatnonzero(np.bincount(request_pair, minlength=len(route_groups.pairs))).tolist():
        origin, node, ep_node, _ = route_groups.pairs[q]
        [(out, back)] = plan.path_classes(origin, node, (ep_node,))
        pair_out[q] = paths.setdefault(out, len(paths))
        pair_back[q] = paths.setdefault(back, len(paths))
        pair_hops[q] = topo.hops(origin, node) + topo.hops(node, ep_node)
    return pair_out, pair_back, pair_hops, paths


def _delays(
    plan: Plan, rngs: Streams, route_groups: _Groups, request_pair: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Path delays (s) out and back of the routed rows: one draw per request each way, from each path's keyed
    stream, in send order (a path of constant links draws nothing); and the hop count of each pair."""
    pair_out, pair_back, pair_hops, paths = _paths(plan, route_groups, request_pair)
    dists = [plan.path_dist(classes) for classes in paths]
    fixed = np.array([np.nan if (f := fixed_value(d)) is None else f for d in dists] + [0.0], dtype=float)  # NaN: drawn
    out, back = fixed[pair_out][request_pair], fixed[pair_back][request_pair]
    if np.isnan(fixed).any() and len(request_pair):
        # A path's draws go to its rows' trips out in send order, then to its rows' trips back in send order.
        by_out, starts_out = _segments(pair_out[request_pair], len(paths))
        by_back, starts_back = _segments(pair_back[request_pair], len(paths))
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
    recursion for one worker and no queue limit, the free-time recursion (``fifo_serve``) for the others."""
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
    lindley = np.array([p.concurrency == 1 and _limit(p) is None for p in pods], dtype=bool)
    lindley_busy = lindley[counts > 0]  # the pods with requests
    started_s = arrived_s
    if lindley_busy.all():
        started_s = lindley_starts(pod_s, arrived_s, service_s)
    elif lindley_busy.any():
        started_s = np.where(lindley[pod_s], lindley_starts(pod_s, arrived_s, service_s), arrived_s)
    del pod_s
    served = []  # the free-time recursion, pod by pod: (rows, finishes)
    for i in np.flatnonzero((counts > 0) & ~lindley).tolist():
        span = slice(bounds[i], bounds[i + 1])
        starts, finishes = fifo_serve(
            arrived_s[span].tolist(), iter(service_s[span].tolist()), pods[i].concurrency, _limit(pods[i])
        )
        started_s[span] = starts
        served.append((span, finishes))
    finished_s = np.add(started_s, service_s, out=service_s)  # in place: the service times are done
    for span, finishes in served:
        finished_s[span] = finishes  # a refused request finishes on arrival
    started, finished = np.empty(m), np.empty(m)
    started[by_pod] = started_s
    finished[by_pod] = finished_s
    return started, finished


def _limit(pod: Pod) -> int | None:
    """A FIFO pod's queue limit (a processor-sharing pod that ``events_needed`` lets through never waits)."""
    return pod.queue_limit if pod.discipline == Discipline.FIFO else None


_CHUNK = 1 << 16
"""Sends per chunk turned into Python ints at once (``_route_exact``): a list of every send would cost 36 B each."""


def _route_exact(
    plan: Plan, draws: Draws, route_groups: _Groups, stream: np.ndarray, group: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per send, in send order, as the event path makes it: the (group, slot) pair its proxy's chooser picked for
    its new connection's flow (-1: unrouted, nothing drawn), its trip out and back (s; drawn together, out then
    back, from its path's draws)."""
    choosers = {p: draws.chooser(rp) for p, rp in enumerate(route_groups.proxies)}  # as the event path keys them
    ways = []  # per pair, in the order of the groups' pairs: its draws out and back
    for sp in plan.streams:
        for rp in sp.routes[0]:
            for out, back in plan.path_classes(sp.origin, rp.node, rp.endpoint_nodes):
                ways.append((draws.path(out), draws.path(back)))
    lanes = [(draws.ports(sp), sp.ip << 16) for sp in plan.streams]
    group_lane = [
        (route_groups.proxy[q], choosers.get(route_groups.proxy[q]), route_groups.first_pair[q])
        for q in range(len(route_groups.entry))
    ]
    pairs, outs, backs = array("i"), array("d"), array("d")
    pair_of, out_of, back_of = pairs.append, outs.append, backs.append
    for lo in range(0, len(stream), _CHUNK):
        for k, q in zip(stream[lo : lo + _CHUNK].tolist(), group[lo : lo + _CHUNK].tolist(), strict=True):
            proxy, choose, first = group_lane[q]
            if proxy < 0:
                pair_of(-1)
                continue
            ports, ip = lanes[k]
            pair = first + choose(ip | next(ports))  # type: ignore[misc]
            out, back = ways[pair]
            pair_of(pair)
            out_of(next(out))
            back_of(next(back))
    return np.frombuffer(pairs, dtype=np.int32), np.frombuffer(outs), np.frombuffer(backs)


def _serve_exact(plan: Plan, draws: Draws, pod: np.ndarray, arrived: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start and finish times (s) of the routed rows: each pod serves the requests that arrive before the
    horizon in arrival order (equal times in send order, as SimPy takes events scheduled in that order), by the
    free-time recursion with its service draws in that order (``fifo_serve``); NaN where a step never happened;
    a refused request starts at NaN and finishes on arrival."""
    n, pods = len(arrived), plan.pods
    started, finished = np.full(n, np.nan), np.full(n, np.nan)
    order = np.lexsort((arrived, pod))  # by pod, then arrival; stable: equal times in send order
    order = order[arrived[order] < plan.horizon_s]  # those at or after it never arrived
    bounds = np.concatenate(([0], np.cumsum(np.bincount(pod[order], minlength=len(pods))))).tolist()
    busy = [i for i in range(len(pods)) if bounds[i + 1] > bounds[i]]
    first = 0
    while first < len(busy):  # pods in chunks of about _CHUNK rows: their arrivals as one list of floats
        last = first + 1
        while last < len(busy) and bounds[busy[last] + 1] - bounds[busy[first]] <= _CHUNK:
            last += 1
        lo, hi = bounds[busy[first]], bounds[busy[last - 1] + 1]
        rows = order[lo:hi]
        times = arrived[rows].tolist()
        starts: list[float] = []
        finishes: list[float] = []
        for i in busy[first:last]:
            p = pods[i]
            s, f = fifo_serve(times[bounds[i] - lo : bounds[i + 1] - lo], draws.service(p), p.concurrency, _limit(p))
            starts += s
            finishes += f
        started[rows], finished[rows] = starts, finishes
        first = last
    return started, finished


def solve(plan: Plan, seed: Seed, *, exact: bool = True) -> RunResult:
    """The run of ``plan`` under ``seed`` without an event loop, where ``events_needed(plan)`` is None: with
    ``exact``, the event path's records byte for byte (FIFO pods); else numpy's vectors, the same distribution.

    Raises ValueError naming the reason where the run needs events.
    """
    problem = events_needed(plan)
    if problem is not None:
        raise ValueError(f"scenario {plan.scenario.name!r} needs the event path: {problem}")
    if plan.call_streams:  # no vector form yet: both ways take the exact one
        return solve_calls(plan, seed, "solver" if exact else "fast")
    rngs = Streams(seed)
    draws = Draws(plan, rngs) if exact else None
    route_groups = _groups(plan)
    t_sent, stream, group = _sends(plan, rngs, route_groups, draws)
    n = len(t_sent)
    proxy = np.asarray(route_groups.proxy, dtype=np.int32)[group]
    routed = proxy >= 0
    every = bool(routed.all())
    ridx: slice | np.ndarray = slice(None) if every else np.flatnonzero(routed)  # the routed rows
    if draws is not None:
        pair, out, back = _route_exact(plan, draws, route_groups, stream, group)
        request_pair, hops = pair[ridx], None
    else:
        flows = functools.cache(lambda: _flows(plan, rngs, stream, routed))
        slot = _picks(plan, rngs, route_groups, proxy, flows)
        # A (group, slot) pair says the endpoint and the paths out and back; -1 (the row appended): unrouted.
        pair = np.asarray(route_groups.first_pair, dtype=np.int32)[group] + slot  # int32: 2**31 pairs would not fit
        del slot
        if not every:
            pair[~routed] = -1
        request_pair = pair[ridx]
        out, back, pair_hops = _delays(plan, rngs, route_groups, request_pair)
        hops = pair_hops[pair]
    endpoint = np.array([row[3] for row in route_groups.pairs] + [-1], dtype=COLUMNS["endpoint"])[pair]
    arrived = np.add(t_sent[ridx], out, out=out)  # sent + trip out, the sum SimPy makes (in place: out is done)
    serve = _serve_exact if draws is not None else _serve
    started, finished = serve(plan, draws or rngs, endpoint[ridx], arrived)  # type: ignore[arg-type]
    fail_s = np.asarray(route_groups.fail_s)[group] if not every else np.zeros(0)  # read for unrouted rows only
    returned = np.add(finished, back, out=back)  # a reply or a refusal travels back (in place)
    cols = _times(n, ridx, t_sent, arrived, started, finished, returned, fail_s)
    limits = any(p.queue_limit is not None for p in plan.pods)
    cols |= _outcomes(routed, np.asarray(route_groups.drop, dtype=COLUMNS["reason"])[group], cols, limits)
    clip_to_horizon(cols, plan.horizon_s)
    end_s = plan.duration_s
    if end_s is None:  # the event loop runs until its last event: a send, a reply or a failure
        end_s = max(float(t_sent[-1]), float(np.nanmax(cols["t_returned"]))) if n else 0.0
    cols |= first_attempts(n)
    cols |= {
        "stream": stream,
        "entry_node": np.asarray(route_groups.entry, dtype=COLUMNS["entry_node"])[group],
        "endpoint": endpoint,
        "source_preserved": np.asarray(route_groups.preserved, dtype=COLUMNS["source_preserved"])[group],
    }
    if hops is not None:
        cols["hops"] = hops
    return plan.result(seed, cols, end_s, "solver" if exact else "fast")


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
    routed: np.ndarray, drop: np.ndarray, times: dict[str, np.ndarray], limits: bool
) -> dict[str, np.ndarray]:
    """Outcome and drop reason per row, before the horizon rule: ok; dropped by its route (unrouted rows), or
    (where a pod has a queue ``limits``) refused by a full queue (finished, never started)."""
    n = len(routed)
    outcome = np.full(n, int(Outcome.OK), dtype=COLUMNS["outcome"])
    reason = np.zeros(n, dtype=COLUMNS["reason"])
    if not routed.all():
        outcome[~routed] = int(Outcome.DROPPED)
        reason[~routed] = drop[~routed]
    if limits:
        refused = np.isnan(times["t_started"]) & ~np.isnan(times["t_finished"])
        outcome[refused] = int(Outcome.DROPPED)
        reason[refused] = int(DropReason.QUEUE_FULL)
    return {"outcome": outcome, "reason": reason}


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
