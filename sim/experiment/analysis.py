"""Per-run metrics: a run's records summarised per Service (``summarize_service``, ``summarize``), its picks
tested against the routing layer's expected shares (``sim.experiment.shares``); for sweeps, locality and a compact
latency histogram per Service (``run_metrics``). Each Service's rows are found once (``service_rows``), so a run
of many Services is summarised in time linear in its requests. The metrics are typed, ``ServiceSummary`` and its
parts in ``sim.experiment.metrics``; their JSON is its ``to_json``.

Statistics over replications are in ``sim.stats``; tidy tables over a sweep in ``sim.experiment.tables``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from sim.experiment.callpaths import call_paths
from sim.experiment.metrics import (
    NO_BALANCE,
    Balance,
    GroupMember,
    Latency,
    LatencyHistogram,
    LatencyParts,
    NodeReplies,
    PickGroup,
    Picks,
    PodMonitors,
    ServiceSummary,
)
from sim.experiment.presentation import adaptive_verdict, deterministic_verdict, fit_verdict, nothing_to_test
from sim.experiment.shares import expected_picks, pod_index
from sim.outcomes import Outcome
from sim.records import PICK_AFFINITY, PICK_FRESH, PICK_REUSED, Columns, RunResult
from sim.routing import Picker
from sim.stats import ChiSquare, chi_square_gof, grouped_gof


def service_rows(result: RunResult) -> list[np.ndarray]:
    """Row indices of each Service's requests (aligned with ``service_names``), in record order.

    One stable sort of the service column, then a slice per Service: summarising every Service is linear in
    requests (a boolean mask per Service would cost Services x requests)."""
    service = result.columns["service"]
    order = np.argsort(service, kind="stable").astype(np.int32)  # held while the summary runs: 4 bytes a row
    bounds = np.searchsorted(service[order], np.arange(len(result.service_names) + 1))
    return [order[a:b] for a, b in zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True)]


@dataclass(frozen=True)
class _Requests:
    """One Service's requests sent after the warm-up: their record columns (in record order), latency (s), and
    the selections the summary counts by."""

    rows: np.ndarray
    """Their row indices in the run's records."""
    cols: dict[str, np.ndarray]
    latency: np.ndarray
    ok: np.ndarray
    routed: np.ndarray
    fresh: np.ndarray


_READ = (
    "stream", "entry_node", "version", "endpoint", "endpoint_node", "attempt", "pick", "source_preserved",
    "outcome", "t_sent", "t_returned",
)  # fmt: skip
"""The columns a Service's summary reads of its requests (``_requests``): taken at its rows, not all of them."""


def _requests(result: RunResult, service: str, rows: np.ndarray | None) -> _Requests:
    """``service``'s requests after the warm-up, from its rows (``service_rows``; found here when None)."""
    cols = result.columns
    if rows is None:
        rows = np.flatnonzero(cols["service"] == result.service_names.index(service))
    rows = rows[cols["t_sent"][rows] >= result.scenario.warmup_s]
    mine = cols.take(rows, _READ)  # derived ones looked up at these rows only
    routed = mine["endpoint"] >= 0
    return _Requests(
        rows=rows,
        cols=mine,
        latency=mine["t_returned"] - mine["t_sent"],
        ok=mine["outcome"] == Outcome.OK,
        routed=routed,
        fresh=routed & (mine["pick"] == PICK_FRESH),
    )


@dataclass(frozen=True)
class _Spread:
    """How one Service's picks spread over its endpoints, against the routing layer's expected shares."""

    expected: np.ndarray
    """Expected fresh picks per pod (aligned with ``pod_names``)."""
    fresh: np.ndarray
    replies: np.ndarray
    relevant: np.ndarray
    """The pods reported: expected or routed to."""
    violations: int
    pickers: dict[str, Picker]
    max_deviation: float
    balance: Balance
    test: ChiSquare
    verdict: str
    adaptive: bool
    deterministic: bool
    groups: list[PickGroup]


def _spread(result: RunResult, r: _Requests, alpha: float, pods: Mapping[str, int]) -> _Spread:
    """Fresh picks, replies and expected picks per pod, the chi-square test of the fresh picks and its verdict."""
    c = r.cols
    n_pods = len(result.pod_names)
    picks = expected_picks(result, c["stream"], c["entry_node"], c["version"], c["endpoint"], r.fresh, pods)
    expected = picks.expected
    fresh = np.bincount(c["endpoint"][r.fresh], minlength=n_pods)
    all_routed = np.bincount(c["endpoint"][r.routed], minlength=n_pods)
    positive = expected > 0
    max_dev = float(np.max(np.abs(fresh - expected))) if positive.any() else 0.0
    balance = _balance(fresh[positive], expected[positive])
    grouped = grouped_gof(picks.groups) if picks.groups else None
    test, words, adaptive, deterministic = _verdict(grouped, picks.pickers, balance, max_dev, alpha)
    if not positive.any():  # no fresh pick had an endpoint to choose: say why, not "one eligible endpoint"
        words = nothing_to_test(bool(r.rows.size), bool(r.routed.any()))
    return _Spread(
        expected=expected,
        fresh=fresh,
        replies=np.bincount(c["endpoint"][r.ok], minlength=n_pods),
        relevant=np.flatnonzero(positive | (all_routed > 0)),
        violations=picks.violations,
        pickers=picks.pickers,
        max_deviation=max_dev,
        balance=balance,
        test=test,
        verdict=words,
        adaptive=adaptive,
        deterministic=deterministic,
        groups=_pick_groups(result, test, picks.members, adaptive),
    )


def _per_pod(result: RunResult, pods: np.ndarray, values: np.ndarray) -> dict[str, int]:
    """Counts per pod name, for the pods (indices) given."""
    return {result.pod_names[i]: int(values[i]) for i in pods}


def _count(selected: np.ndarray) -> int:
    """How many are selected."""
    return int(np.count_nonzero(selected))


def summarize_service(
    result: RunResult, service: str, *, alpha: float = 0.01, rows: np.ndarray | None = None
) -> ServiceSummary:
    """Summarise one Service's requests in ``result`` (``rows``: its row indices from ``service_rows``, found
    here when not given).

    The chi-square tests the picker's fresh choices only: requests that rode an open keep-alive connection or
    were pinned by session affinity are not independent draws, though they count in ``by_endpoint`` and every
    routed request is checked for violations (an endpoint its route did not allow).
    """
    return _summarize(result, service, alpha, rows, run_index(result))


@dataclass(frozen=True, eq=False)
class _RunIndex:
    """What the summary of every Service of one run looks up, made once per run: each pod's index by name, and
    each node's zone as a code (-1: no zone label; one more entry, -1, for no node)."""

    pods: dict[str, int]
    node_zone: np.ndarray


def run_index(result: RunResult) -> _RunIndex:
    """The lookups of ``result`` every Service's summary shares."""
    zones = [result.scenario.nodes[n].zone for n in result.node_names]
    code = {z: i for i, z in enumerate(sorted(set(zones)))}
    node_zone = np.array([code[z] if z else -1 for z in zones] + [-1], dtype=np.int64)
    return _RunIndex(pod_index(result), node_zone)


def _summarize(
    result: RunResult, service: str, alpha: float, rows: np.ndarray | None, index: _RunIndex
) -> ServiceSummary:
    """``summarize_service``, with the run's lookups made once for all its Services."""
    r = _requests(result, service, rows)
    c, ok = r.cols, r.ok
    outcome = c["outcome"]
    s = _spread(result, r, alpha, index.pods)
    node_counts = np.bincount(c["endpoint_node"][ok], minlength=len(result.node_names))
    total = s.expected.sum()
    cross, cross_zone, cross_by_node = _crossing(result, index.node_zone, c["entry_node"][ok], c["endpoint_node"][ok])
    dropped = outcome == Outcome.DROPPED
    by_node = {result.node_names[i]: int(node_counts[i]) for i in np.flatnonzero(node_counts)}
    expected_share = {result.pod_names[i]: float(s.expected[i] / total) if total else 0.0 for i in s.relevant}
    return ServiceSummary(
        name=service,
        sent=int(r.rows.size),
        completed=_count(ok),
        dropped=_count(dropped),
        in_flight=_count(outcome == Outcome.IN_FLIGHT),
        violations=s.violations,
        drops=result.drops(r.rows),
        by_node=by_node,
        by_endpoint=_per_pod(result, s.relevant, s.replies),
        routed_by_endpoint=_per_pod(result, s.relevant, s.fresh),
        expected_share=expected_share,
        chi_square=s.test,
        deterministic=s.deterministic,
        max_deviation=s.max_deviation,
        verdict=s.verdict,
        latency_s=Latency.of(r.latency[ok]),
        cross_node_fraction=cross,
        cross_zone_fraction=cross_zone,
        cross_node_by_entry_node=cross_by_node,
        hints=result.scenario.control_plane.hints(service).describe(),
        failed_after_s=float(r.latency[dropped].mean()) if dropped.any() else math.nan,
        source_preserved_fraction=float(np.mean(c["source_preserved"][ok])) if ok.any() else math.nan,
        picks=_picks(c["pick"], r.routed),
        pickers=sorted(s.pickers),
        timed_out=_count(outcome == Outcome.TIMEOUT),
        retries=_count(c["attempt"] > 0),
        latency_parts_s=_latency_parts(result.columns, r.rows[ok]),
        pods=_pod_monitors(result, np.unique(c["endpoint"][r.routed])),
        adaptive=s.adaptive,
        balance=s.balance,
        groups=s.groups,
        replies_by_node=_replies_by_node(result, by_node, expected_share, _count(ok)),
        by_port=_by_port(result, service, r),
    )


def _replies_by_node(
    result: RunResult, by_node: Mapping[str, int], expected_share: Mapping[str, float], completed: int
) -> dict[str, NodeReplies]:
    """Per node that served a reply or holds an endpoint the route expects (by name): its replies, their share of
    the ``completed`` requests, and the expected share of its pods together (shares 0..1)."""
    expected: dict[str, float] = {}
    for pod, share in expected_share.items():
        node = result.scenario.pod(pod).node
        expected[node] = expected.get(node, 0.0) + share
    replies = max(completed, 1)
    return {
        node: NodeReplies(by_node.get(node, 0), by_node.get(node, 0) / replies, expected.get(node, 0.0))
        for node in sorted(set(by_node) | set(expected))
    }


def by_port_label(result: RunResult, service: str, stream: int) -> str:
    """The Service port a stream calls, as the run summary names it: its name, else its number."""
    port = result.scenario.service(service).port_of(result.stream(stream).port)
    return (port.name or str(port.port)) if port is not None else result.stream(stream).port


def _by_port(result: RunResult, service: str, r: _Requests) -> dict[str, dict[str, Any]] | None:
    """Per Service port in use (``by_port_label``): requests sent, completed and dropped, and completed ones
    per pod; None where the requests use one port (the Service's own counts say it all)."""
    streams = r.cols["stream"]
    labels = {int(k): by_port_label(result, service, int(k)) for k in np.unique(streams)}
    if len(set(labels.values())) < 2:
        return None
    out: dict[str, dict[str, Any]] = {}
    for label in sorted(set(labels.values())):
        mine = np.isin(streams, [k for k, v in labels.items() if v == label])
        ok = mine & r.ok
        served = np.bincount(r.cols["endpoint"][ok], minlength=len(result.pod_names))
        out[label] = {
            "sent": _count(mine),
            "completed": _count(ok),
            "dropped": _count(mine & (r.cols["outcome"] == Outcome.DROPPED)),
            "by_endpoint": {result.pod_names[i]: int(served[i]) for i in np.flatnonzero(served)},
        }
    return out


def _verdict(
    test: ChiSquare | None, pickers: Mapping[str, Picker], balance: Balance, max_dev: float, alpha: float
) -> tuple[ChiSquare, str, bool, bool]:
    """The test as reported (no p-value for an adaptive picker), the verdict in words, and whether a picker
    chooses by load (adaptive) or is deterministic."""
    test = test if test is not None else chi_square_gof([0], [1])
    adaptive = any(p.needs_load for p in pickers.values())
    deterministic = any(p.deterministic for p in pickers.values())
    names = ", ".join(sorted(pickers))
    if adaptive and test.dof > 0:
        test = replace(test, pvalue=math.nan, method="none: adaptive picker")
        words = adaptive_verdict(names, balance)
    elif deterministic and test.dof > 0:
        words = deterministic_verdict(names, max_dev)
    else:
        words = fit_verdict(test, alpha)
    return test, words, adaptive, deterministic


def _pick_groups(
    result: RunResult, test: ChiSquare, members: list[tuple[int, int, int]], adaptive: bool
) -> list[PickGroup]:
    """Per group of equal expected shares: its (stream, client, entry node, version) members, picks, shares and
    test (no p-value for an adaptive picker)."""
    return [
        PickGroup(
            members=[
                GroupMember(
                    stream=members[i][0],
                    client=result.stream(members[i][0]).client,
                    entry_node=result.node_names[members[i][1]],
                    version=members[i][2],
                )
                for i in g.members
            ],
            picked={result.pod_names[c]: int(o) for c, o in zip(g.cells, g.observed, strict=True)},
            expected_share={result.pod_names[c]: p for c, p in zip(g.cells, g.shares, strict=True)},
            statistic=g.test.statistic,
            dof=g.test.dof,
            n=g.test.n,
            pvalue=math.nan if adaptive else g.test.pvalue,
            method=test.method if adaptive else g.test.method,
        )
        for g in test.groups
    ]


def _crossing(
    result: RunResult, node_zone: np.ndarray, entry: np.ndarray, served: np.ndarray
) -> tuple[float, float, dict[str, float]]:
    """Of completed requests (their entry and serving node indices): the share served on another node than
    their entry node, in another zone, and the first per entry node (NaN without any)."""
    cross = float(np.mean(served != entry)) if served.size else math.nan
    by_node = {result.node_names[n]: float(np.mean(served[entry == n] != n)) for n in np.unique(entry).tolist()}
    return cross, _cross_zone(node_zone, entry, served), by_node


def _picks(pick: np.ndarray, routed: np.ndarray) -> Picks:
    """Routed requests by how their endpoint was chosen: afresh, by session affinity, riding a connection."""
    return Picks(
        fresh=_count(routed & (pick == PICK_FRESH)),
        affinity=_count(routed & (pick == PICK_AFFINITY)),
        reused_connection=_count(routed & (pick == PICK_REUSED)),
    )


def _balance(picked: np.ndarray, expected: np.ndarray) -> Balance:
    """How even a split was: picks over expected picks per endpoint (1 is exact), their range, max/min and the
    coefficient of variation of the ratios weighted by the expected picks (NaN without expected picks)."""
    nan = math.nan
    if not expected.size or expected.sum() <= 0:
        return NO_BALANCE
    ratio = picked / expected
    mean = float(np.average(ratio, weights=expected))
    cv = float(np.sqrt(np.average((ratio - mean) ** 2, weights=expected)) / mean) if mean > 0 else nan
    low, high = float(ratio.min()), float(ratio.max())
    return Balance(min_ratio=low, max_ratio=high, max_over_min=high / low if low > 0 else nan, cv=cv)


def _cross_zone(node_zone: np.ndarray, entry: np.ndarray, served: np.ndarray) -> float:
    """Share (0..1) of requests served in another zone than their entry node's (``node_zone``: zone code per node
    index, -1 for none), over requests whose two nodes both carry a zone label (NaN if none do: a cluster without
    zones has no cross-zone traffic to speak of)."""
    ez, sz = node_zone[entry.astype(np.int64)], node_zone[served.astype(np.int64)]
    zoned = (ez >= 0) & (sz >= 0)
    return float(np.mean(ez[zoned] != sz[zoned])) if zoned.any() else float("nan")


_LEGS = {
    "network_out": ("t_arrived", "t_sent"),
    "queue_wait": ("t_started", "t_arrived"),
    "service": ("t_finished", "t_started"),
    "network_back": ("t_returned", "t_finished"),
}
"""Each leg of a request (``_latency_parts``): the times it runs between."""


def _latency_parts(cols: Columns, rows: np.ndarray) -> LatencyParts:
    """Mean seconds of each leg of the completed requests ``rows``: out, queue wait, service, back (one leg at a
    time: its two times at those rows, not every time of every request)."""
    if not rows.size:
        return LatencyParts(**dict.fromkeys(_LEGS, math.nan))
    return LatencyParts(
        **{name: float((cols.at(end, rows) - cols.at(start, rows)).mean()) for name, (end, start) in _LEGS.items()}
    )


def _pod_monitors(result: RunResult, pods: np.ndarray) -> dict[str, PodMonitors]:
    """Time averages per backend pod since the warm-up: utilisation, queue length and number in system."""
    m = result.monitors
    if not m:
        return {}
    return {
        result.pod_names[i]: PodMonitors(
            utilization=float(m["utilization"][i]),
            queue_mean=float(m["queue_mean"][i]),
            in_system_mean=float(m["in_system_mean"][i]),
        )
        for i in pods.tolist()
    }


def service_summaries(
    result: RunResult, *, alpha: float = 0.01, rows: Sequence[np.ndarray] | None = None
) -> dict[str, ServiceSummary]:
    """Every Service that had requests or a client stream, summarised, in ``service_names`` order (``rows``:
    ``service_rows(result)``, found here when not given)."""
    rows = service_rows(result) if rows is None else rows
    streamed = {s.service for s in result.scenario.streams}
    index = run_index(result)
    out = {
        name: _summarize(result, name, alpha, rows[i], index)
        for i, name in enumerate(result.service_names)
        if rows[i].size or name in streamed
    }
    mine = {name: rows[i] for i, name in enumerate(result.service_names) if name in out}
    for name, path in call_paths(result, mine, index.node_zone).items():
        out[name] = replace(out[name], call_path=path)
    return out


def run_json(result: RunResult, services: Mapping[str, ServiceSummary]) -> dict[str, Any]:
    """A run's JSON: seed, scenario name, dataplane, end time (s) and the given summaries per Service."""
    return {
        "scenario": result.scenario.name,
        "seed": result.seed,
        "dataplane": result.scenario.dataplane.name,
        "end_s": result.end_s,
        "services": {name: s.to_json() for name, s in services.items()},
    }


def summarize(result: RunResult, *, alpha: float = 0.01) -> dict[str, Any]:
    """The whole run as one JSON-ready dict: seed, scenario name, end time and a summary per Service."""
    return run_json(result, service_summaries(result, alpha=alpha))


# --- per-run metrics for sweeps: locality and a compact latency distribution ------------------------------------

LATENCY_FLOOR_S = 1e-6
"""The lower edge of the first latency-histogram bin (s); shorter latencies are counted in that bin."""
LATENCY_BINS_PER_DECADE = 20
"""Latency-histogram resolution: bin edges grow by a factor 10**(1/20), about 12% per bin."""


def latency_histogram(latency_s: np.ndarray) -> LatencyHistogram:
    """Counts of latencies (s) in log-spaced bins; bin i spans ``floor_s * 10**(i / bins_per_decade)`` upward.

    Only bins from ``first`` to the last occupied one are kept, so the histogram of one run is a few dozen
    integers, and histograms of replications add up exactly (``pooled_histogram``).

    >>> latency_histogram(np.array([0.001, 0.001, 0.0013])).counts
    [2, 0, 1]
    """
    values = np.asarray(latency_s, dtype=float)
    values = values[np.isfinite(values)]
    if not values.size:
        return LatencyHistogram(LATENCY_FLOOR_S, LATENCY_BINS_PER_DECADE, 0, [])
    ratio = np.maximum(values, LATENCY_FLOOR_S) / LATENCY_FLOOR_S
    index = np.floor(np.log10(ratio) * LATENCY_BINS_PER_DECADE + 1e-9).astype(np.int64)
    first = int(index.min())
    return LatencyHistogram(LATENCY_FLOOR_S, LATENCY_BINS_PER_DECADE, first, np.bincount(index - first).tolist())


def pooled_histogram(histograms: Sequence[LatencyHistogram]) -> tuple[np.ndarray, np.ndarray]:
    """Bin upper edges (s) and summed counts of latency histograms with the same bins (e.g. replications)."""
    kept = [h for h in histograms if h.counts]
    if not kept:
        return np.zeros(0), np.zeros(0, dtype=np.int64)
    floor_s, per_decade = kept[0].floor_s, kept[0].bins_per_decade
    if any(h.floor_s != floor_s or h.bins_per_decade != per_decade for h in kept):
        raise ValueError("histograms have different bins")
    lo = min(h.first for h in kept)
    hi = max(h.first + len(h.counts) for h in kept)
    counts = np.zeros(hi - lo, dtype=np.int64)
    for h in kept:
        counts[h.first - lo : h.first - lo + len(h.counts)] += h.counts
    upper = floor_s * 10.0 ** (np.arange(lo + 1, hi + 1) / per_decade)
    return upper, counts


def histogram_ecdf(histograms: Sequence[LatencyHistogram]) -> tuple[np.ndarray, np.ndarray]:
    """The ECDF of pooled latency histograms: bin upper edges (s) and the fraction of requests at or below."""
    upper, counts = pooled_histogram(histograms)
    total = counts.sum()
    return upper, (np.cumsum(counts) / total if total else counts.astype(float))


def locality(result: RunResult, service: str, rows: np.ndarray | None = None) -> dict[str, Any]:
    """``by_client_node``: one Service's completed requests (after the warm-up) per entry node and serving node;
    the entry node is the client's node for pod clients, for external clients the node whose proxy took the
    connection. ``rows``: the Service's row indices (``service_rows``; found here when None). Cross-node and
    cross-zone fractions are ``summarize``'s."""
    cols = result.columns
    if rows is None:
        rows = np.flatnonzero(cols["service"] == result.service_names.index(service))
    rows = rows[(cols["outcome"][rows] == Outcome.OK) & (cols["t_sent"][rows] >= result.scenario.warmup_s)]
    entry = cols["entry_node"][rows].astype(np.int64)
    served = cols.at("endpoint_node", rows).astype(np.int64)
    n_nodes = len(result.node_names)
    pairs = np.bincount(entry * n_nodes + served, minlength=n_nodes * n_nodes) if entry.size else np.zeros(0, int)
    by_client_node: dict[str, dict[str, int]] = {}
    for code in np.flatnonzero(pairs).tolist():
        e, s = divmod(code, n_nodes)
        by_client_node.setdefault(result.node_names[e], {})[result.node_names[s]] = int(pairs[code])
    return {"by_client_node": by_client_node}


def metric_summaries(
    result: RunResult, *, alpha: float = 0.01, rows: list[np.ndarray] | None = None
) -> dict[str, ServiceSummary]:
    """``service_summaries(result)`` with, per Service, its ``locality`` and the ``latency_histogram`` of its
    completed requests (all after the scenario's warm-up, as in ``summarize``): a sweep record's metrics.
    ``rows``: each Service's row indices (``service_rows``; found here when None)."""
    cols = result.columns
    rows = service_rows(result) if rows is None else rows
    summaries = service_summaries(result, alpha=alpha, rows=rows)
    index = {name: i for i, name in enumerate(result.service_names)}
    for name, s in summaries.items():
        mine = rows[index[name]]
        done = mine[(cols["outcome"][mine] == Outcome.OK) & (cols["t_sent"][mine] >= result.scenario.warmup_s)]
        summaries[name] = replace(
            s,
            by_client_node=locality(result, name, mine)["by_client_node"],
            latency_histogram=latency_histogram(cols["t_returned"][done] - cols["t_sent"][done]),
        )
    return summaries


def run_metrics(result: RunResult, *, alpha: float = 0.01) -> dict[str, Any]:
    """``summarize(result)`` plus, per Service, ``locality`` and the ``latency_histogram`` of completed requests
    (``metric_summaries``)."""
    return run_json(result, metric_summaries(result, alpha=alpha))
