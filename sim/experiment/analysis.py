"""Observed counts from a run's records against the routing layer's expected shares, and summary tables.

For sweeps: per-run metrics (locality, a compact latency histogram), statistics over replications (t intervals,
paired differences under common random numbers, false-discovery control, power and sample size) and tidy tables
per design point.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike

from sim.outcomes import Outcome
from sim.records import PICK_AFFINITY, PICK_FRESH, PICK_REUSED, RunResult
from sim.routing import Picker
from sim.stats import ChiSquare, chi_square_gof, chi_square_power, cohens_w, grouped_gof, verdict

if TYPE_CHECKING:
    import pandas as pd


def _scipy_stats():
    """scipy.stats, imported on first use: it costs about a second, which every ``sim`` command would pay."""
    from scipy import stats

    return stats


@dataclass(frozen=True)
class ServiceSummary:
    """What one Service did in one run: counts, spread over endpoints and nodes, the test and latency (s)."""

    name: str
    sent: int
    completed: int
    dropped: int
    in_flight: int
    violations: int
    drops: dict[str, int]
    by_node: dict[str, int]
    by_endpoint: dict[str, int]
    routed_by_endpoint: dict[str, int]
    """Fresh picks per endpoint: what the chi-square tests."""
    expected_share: dict[str, float]
    chi_square: ChiSquare
    """The test per group of equal expected shares, combined (``sim.stats.grouped_gof``); its p-value is NaN for
    an adaptive picker, whose picks are not fixed-share draws."""
    deterministic: bool
    max_deviation: float
    verdict: str
    latency_s: dict[str, float]
    cross_node_fraction: float
    cross_zone_fraction: float
    cross_node_by_entry_node: dict[str, float]
    """Per node where requests entered (the client's node for pods), the share served on another node."""
    hints: str
    failed_after_s: float
    """Mean seconds a failed request's client waited before it learned of the failure (0: at once)."""
    source_preserved_fraction: float
    picks: dict[str, int]
    pickers: list[str]
    timed_out: int
    retries: int
    """Attempts after the first (each retry is its own record)."""
    latency_parts_s: dict[str, float]
    pods: dict[str, dict[str, float]]
    adaptive: bool = False
    """True where a picker chooses by live load (power-of-two, least-connections): no p-value applies."""
    balance: dict[str, float] = field(default_factory=dict)
    """Fresh picks over expected picks per endpoint: ``min_ratio``, ``max_ratio``, ``max_over_min`` and ``cv``
    (their coefficient of variation, weighted by expected picks)."""
    groups: list[dict[str, Any]] = field(default_factory=list)
    """Per group of equal expected shares: its (stream, entry node, version) members, picks, shares and test."""

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (the ``services.NAME`` object of ``sim run --json``)."""
        cs = self.chi_square
        return {
            "sent": self.sent,
            "completed": self.completed,
            "dropped": self.dropped,
            "in_flight": self.in_flight,
            "violations": self.violations,
            "drops": self.drops,
            "by_node": self.by_node,
            "by_endpoint": self.by_endpoint,
            "routed_by_endpoint": self.routed_by_endpoint,
            "expected_share": self.expected_share,
            "chi_square": {
                "statistic": cs.statistic,
                "pvalue": cs.pvalue,
                "dof": cs.dof,
                "n": cs.n,
                "cohens_w": cs.cohens_w,
                "method": cs.method,
                "deterministic_picker": self.deterministic,
                "adaptive_picker": self.adaptive,
                "max_deviation": self.max_deviation,
                "balance": self.balance,
                "groups": self.groups,
                "verdict": self.verdict,
            },
            "latency_s": self.latency_s,
            "cross_node_fraction": self.cross_node_fraction,
            "cross_zone_fraction": self.cross_zone_fraction,
            "cross_node_by_entry_node": self.cross_node_by_entry_node,
            "hints": self.hints,
            "failed_after_s": self.failed_after_s,
            "source_preserved_fraction": self.source_preserved_fraction,
            "picks": self.picks,
            "pickers": self.pickers,
            "timed_out": self.timed_out,
            "retries": self.retries,
            "latency_parts_s": self.latency_parts_s,
            "pods": self.pods,
        }


def route_shares(result: RunResult, stream: int, node: int, version: int) -> tuple[np.ndarray, Picker]:
    """The share of fresh picks each pod should receive (over ``pod_names``; sums to 1, or 0 where the route
    drops) for ``stream`` entering at node index ``node`` under control-plane ``version``, and the picker."""
    sc = result.scenario
    spec = sc.streams[stream]
    route = sc.route(spec, result.node_names[node], version)
    shares = np.zeros(len(result.pod_names))
    if route.endpoints:
        pod_index = {name: i for i, name in enumerate(result.pod_names)}
        idx = [pod_index[ep.pod or ""] for ep in route.endpoints]
        shares[idx] = route.picker.shares(route.endpoints, sc.client_ip(spec.client))
    return shares, route.picker


def summarize_service(result: RunResult, service: str, *, alpha: float = 0.01) -> ServiceSummary:
    """Summarise one Service's requests in ``result``.

    The chi-square tests the picker's fresh choices only: requests that rode an open keep-alive connection or
    were pinned by session affinity are not independent draws, though they count in ``by_endpoint`` and every
    routed request is checked for violations (an endpoint its route did not allow).
    """
    cols = result.columns
    s_idx = result.service_names.index(service)
    mine = (cols["service"] == s_idx) & (cols["t_sent"] >= result.scenario.warmup_s)
    outcome = cols["outcome"][mine]
    endpoint = cols["endpoint"][mine]
    stream = cols["stream"][mine]
    entry = cols["entry_node"][mine]
    version = cols["version"][mine]
    pick = cols["pick"][mine]
    ok = outcome == Outcome.OK
    routed = endpoint >= 0
    fresh = routed & (pick == PICK_FRESH)
    n_pods = len(result.pod_names)

    # Expected counts: each (stream, entry node, version) group's fresh picks times its route's shares. Each
    # group is its own multinomial (its route's shares); grouped_gof merges groups of equal shares and sums
    # the rest's statistics and dof.
    n_nodes = len(result.node_names)
    group_key = (stream.astype(np.int64) * n_nodes + entry) * 65536 + version
    expected = np.zeros(n_pods)
    violations = 0
    pickers: dict[str, Picker] = {}
    groups: list[tuple[np.ndarray, np.ndarray]] = []
    members: list[tuple[int, int, int]] = []
    for key in np.unique(group_key).tolist():
        rest, v = divmod(key, 65536)
        k, node = divmod(rest, n_nodes)
        shares, picker = route_shares(result, k, node, v)
        group = group_key == key
        if routed[group].any():
            pickers[picker.name] = picker
        picked = np.bincount(endpoint[group & fresh], minlength=n_pods)
        expected += picked.sum() * shares
        violations += int(np.count_nonzero(shares[endpoint[group & routed]] == 0))
        if picked.any() and shares.sum() > 0:
            groups.append((picked, shares))
            members.append((k, node, v))

    routed_counts = np.bincount(endpoint[fresh], minlength=n_pods)
    reply_counts = np.bincount(endpoint[ok], minlength=n_pods)
    all_routed = np.bincount(endpoint[routed], minlength=n_pods)
    relevant = np.flatnonzero((expected > 0) | (all_routed > 0))
    positive = expected > 0
    test = grouped_gof(groups) if groups else chi_square_gof([0], [1])
    adaptive = any(p.needs_load for p in pickers.values())
    deterministic = any(p.deterministic for p in pickers.values())
    max_dev = float(np.max(np.abs(routed_counts - expected))) if positive.any() else 0.0
    balance = _balance(routed_counts[positive], expected[positive])
    names = ", ".join(sorted(pickers))
    if adaptive and test.dof > 0:
        test = replace(test, pvalue=math.nan, method="none: adaptive picker")
        words = (
            f"adaptive picker ({names}): it picks by live load, so its picks are not draws with fixed shares and "
            f"no p-value applies; balance achieved: picked/expected {balance['min_ratio']:.3f} to "
            f"{balance['max_ratio']:.3f} (CV {balance['cv']:.3f}); this says how even the split was, not whether "
            "the picker is fair"
        )
    elif deterministic and test.dof > 0:
        words = f"deterministic picker ({names}): exact balance expected, max deviation {max_dev:g}"
    else:
        words = verdict(test, alpha)
    group_json = [
        {
            "members": [
                {
                    "stream": members[i][0],
                    "client": result.scenario.streams[members[i][0]].client,
                    "entry_node": result.node_names[members[i][1]],
                    "version": members[i][2],
                }
                for i in g.members
            ],
            "picked": {result.pod_names[c]: int(o) for c, o in zip(g.cells, g.observed, strict=True)},
            "expected_share": {result.pod_names[c]: p for c, p in zip(g.cells, g.shares, strict=True)},
            "statistic": g.test.statistic,
            "dof": g.test.dof,
            "n": g.test.n,
            "pvalue": math.nan if adaptive else g.test.pvalue,
            "method": test.method if adaptive else g.test.method,
        }
        for g in test.groups
    ]

    node_counts = np.bincount(cols["endpoint_node"][mine][ok], minlength=len(result.node_names))
    latency = result.latency_s[mine][ok]
    nan = float("nan")
    latency_s = (
        {
            "mean": float(latency.mean()),
            "p50": float(np.percentile(latency, 50)),
            "p99": float(np.percentile(latency, 99)),
        }
        if latency.size
        else {"mean": nan, "p50": nan, "p99": nan}
    )
    total = expected.sum()
    served = cols["endpoint_node"][mine][ok]
    cross = float(np.mean(served != entry[ok])) if served.size else nan
    cross_by_node = {
        result.node_names[n]: float(np.mean(served[entry[ok] == n] != n)) for n in np.unique(entry[ok]).tolist()
    }
    cross_zone = _cross_zone(result, entry[ok], served)
    withheld = result.scenario.hints(service).withheld
    return ServiceSummary(
        name=service,
        sent=int(mine.sum()),
        completed=int(ok.sum()),
        dropped=int(np.count_nonzero(outcome == Outcome.DROPPED)),
        in_flight=int(np.count_nonzero(outcome == Outcome.IN_FLIGHT)),
        violations=violations,
        drops=result.drops(mine),
        by_node={result.node_names[i]: int(node_counts[i]) for i in np.flatnonzero(node_counts)},
        by_endpoint={result.pod_names[i]: int(reply_counts[i]) for i in relevant},
        routed_by_endpoint={result.pod_names[i]: int(routed_counts[i]) for i in relevant},
        expected_share={result.pod_names[i]: float(expected[i] / total) if total else 0.0 for i in relevant},
        chi_square=test,
        deterministic=deterministic,
        max_deviation=max_dev,
        verdict=words,
        latency_s=latency_s,
        cross_node_fraction=cross,
        cross_zone_fraction=cross_zone,
        cross_node_by_entry_node=cross_by_node,
        hints=f"none: {withheld}" if withheld else "written",
        failed_after_s=float(result.latency_s[mine][outcome == Outcome.DROPPED].mean())
        if (outcome == Outcome.DROPPED).any()
        else nan,
        source_preserved_fraction=float(np.mean(cols["source_preserved"][mine][ok])) if ok.any() else nan,
        picks={
            "fresh": int(np.count_nonzero(fresh)),
            "affinity": int(np.count_nonzero(routed & (pick == PICK_AFFINITY))),
            "reused_connection": int(np.count_nonzero(routed & (pick == PICK_REUSED))),
        },
        pickers=sorted(pickers),
        timed_out=int(np.count_nonzero(outcome == Outcome.TIMEOUT)),
        retries=int(np.count_nonzero(cols["attempt"][mine] > 0)),
        latency_parts_s=_latency_parts(result, mine & (cols["outcome"] == Outcome.OK)),
        pods=_pod_monitors(result, np.unique(endpoint[routed])),
        adaptive=adaptive,
        balance=balance,
        groups=group_json,
    )


def _balance(picked: np.ndarray, expected: np.ndarray) -> dict[str, float]:
    """How even a split was: picks over expected picks per endpoint (1 is exact), their range, max/min and the
    coefficient of variation of the ratios weighted by the expected picks (NaN without expected picks)."""
    nan = math.nan
    if not expected.size or expected.sum() <= 0:
        return {"min_ratio": nan, "max_ratio": nan, "max_over_min": nan, "cv": nan}
    ratio = picked / expected
    mean = float(np.average(ratio, weights=expected))
    cv = float(np.sqrt(np.average((ratio - mean) ** 2, weights=expected)) / mean) if mean > 0 else nan
    low, high = float(ratio.min()), float(ratio.max())
    return {"min_ratio": low, "max_ratio": high, "max_over_min": high / low if low > 0 else nan, "cv": cv}


def _cross_zone(result: RunResult, entry: np.ndarray, served: np.ndarray) -> float:
    """Share (0..1) of requests served in another zone than their entry node's, over requests whose two nodes
    both carry a zone label (NaN if none do: a cluster without zones has no cross-zone traffic to speak of)."""
    zones = [result.scenario.nodes[n].zone for n in result.node_names]
    code = {z: i for i, z in enumerate(sorted(set(zones)))}
    node_zone = np.array([code[z] if z else -1 for z in zones] + [-1], dtype=np.int64)
    ez, sz = node_zone[entry.astype(np.int64)], node_zone[served.astype(np.int64)]
    zoned = (ez >= 0) & (sz >= 0)
    return float(np.mean(ez[zoned] != sz[zoned])) if zoned.any() else float("nan")


def _latency_parts(result: RunResult, rows: np.ndarray) -> dict[str, float]:
    """Mean seconds of each leg of the selected (completed) requests: out, queue wait, service, back."""
    c = result.columns
    legs = {
        "network_out": c["t_arrived"] - c["t_sent"],
        "queue_wait": c["t_started"] - c["t_arrived"],
        "service": c["t_finished"] - c["t_started"],
        "network_back": c["t_returned"] - c["t_finished"],
    }
    return {name: float(v[rows].mean()) if rows.any() else float("nan") for name, v in legs.items()}


def _pod_monitors(result: RunResult, pods: np.ndarray) -> dict[str, dict[str, float]]:
    """Time averages per backend pod since the warm-up: utilisation, queue length and number in system."""
    m = result.monitors
    if not m:
        return {}
    return {
        result.pod_names[i]: {
            "utilization": float(m["utilization"][i]),
            "queue_mean": float(m["queue_mean"][i]),
            "in_system_mean": float(m["in_system_mean"][i]),
        }
        for i in pods.tolist()
    }


def summarize(result: RunResult, *, alpha: float = 0.01) -> dict[str, Any]:
    """The whole run as one JSON-ready dict: seed, scenario name, end time and a summary per Service."""
    return {
        "scenario": result.scenario.name,
        "seed": result.seed,
        "dataplane": result.scenario.dataplane.name,
        "end_s": result.end_s,
        "services": {
            name: summarize_service(result, name, alpha=alpha).to_json()
            for name in result.service_names
            if np.any(result.columns["service"] == result.service_names.index(name))
            or any(s.service == name for s in result.scenario.streams)
        },
    }


# --- per-run metrics for sweeps: locality and a compact latency distribution ------------------------------------

LATENCY_FLOOR_S = 1e-6
"""The lower edge of the first latency-histogram bin (s); shorter latencies are counted in that bin."""
LATENCY_BINS_PER_DECADE = 20
"""Latency-histogram resolution: bin edges grow by a factor 10**(1/20), about 12% per bin."""


def latency_histogram(latency_s: np.ndarray) -> dict[str, Any]:
    """Counts of latencies (s) in log-spaced bins; bin i spans ``floor_s * 10**(i / bins_per_decade)`` upward.

    Only bins from ``first`` to the last occupied one are kept, so the histogram of one run is a few dozen
    integers, and histograms of replications add up exactly (``pooled_histogram``).

    >>> latency_histogram(np.array([0.001, 0.001, 0.0013]))["counts"]
    [2, 0, 1]
    """
    values = np.asarray(latency_s, dtype=float)
    values = values[np.isfinite(values)]
    head = {"floor_s": LATENCY_FLOOR_S, "bins_per_decade": LATENCY_BINS_PER_DECADE}
    if not values.size:
        return {**head, "first": 0, "counts": []}
    ratio = np.maximum(values, LATENCY_FLOOR_S) / LATENCY_FLOOR_S
    index = np.floor(np.log10(ratio) * LATENCY_BINS_PER_DECADE + 1e-9).astype(np.int64)
    first = int(index.min())
    return {**head, "first": first, "counts": np.bincount(index - first).tolist()}


def pooled_histogram(histograms: Sequence[Mapping[str, Any]]) -> tuple[np.ndarray, np.ndarray]:
    """Bin upper edges (s) and summed counts of latency histograms with the same bins (e.g. replications)."""
    kept = [h for h in histograms if h["counts"]]
    if not kept:
        return np.zeros(0), np.zeros(0, dtype=np.int64)
    floor_s, per_decade = kept[0]["floor_s"], kept[0]["bins_per_decade"]
    if any(h["floor_s"] != floor_s or h["bins_per_decade"] != per_decade for h in kept):
        raise ValueError("histograms have different bins")
    lo = min(h["first"] for h in kept)
    hi = max(h["first"] + len(h["counts"]) for h in kept)
    counts = np.zeros(hi - lo, dtype=np.int64)
    for h in kept:
        counts[h["first"] - lo : h["first"] - lo + len(h["counts"])] += h["counts"]
    upper = floor_s * 10.0 ** (np.arange(lo + 1, hi + 1) / per_decade)
    return upper, counts


def histogram_ecdf(histograms: Sequence[Mapping[str, Any]]) -> tuple[np.ndarray, np.ndarray]:
    """The ECDF of pooled latency histograms: bin upper edges (s) and the fraction of requests at or below."""
    upper, counts = pooled_histogram(histograms)
    total = counts.sum()
    return upper, (np.cumsum(counts) / total if total else counts.astype(float))


def locality(result: RunResult, service: str) -> dict[str, Any]:
    """``by_client_node``: one Service's completed requests (after the warm-up) per entry node and serving node;
    the entry node is the client's node for pod clients, for external clients the node whose proxy took the
    connection. Cross-node and cross-zone fractions are ``summarize``'s."""
    cols = result.columns
    mine = (
        (cols["service"] == result.service_names.index(service))
        & (cols["outcome"] == Outcome.OK)
        & (cols["t_sent"] >= result.scenario.warmup_s)
    )
    entry = cols["entry_node"][mine].astype(np.int64)
    served = cols["endpoint_node"][mine].astype(np.int64)
    n_nodes = len(result.node_names)
    pairs = np.bincount(entry * n_nodes + served, minlength=n_nodes * n_nodes) if entry.size else np.zeros(0, int)
    by_client_node: dict[str, dict[str, int]] = {}
    for code in np.flatnonzero(pairs).tolist():
        e, s = divmod(code, n_nodes)
        by_client_node.setdefault(result.node_names[e], {})[result.node_names[s]] = int(pairs[code])
    return {"by_client_node": by_client_node}


def run_metrics(result: RunResult, *, alpha: float = 0.01) -> dict[str, Any]:
    """``summarize(result)`` plus, per Service, ``locality`` and the ``latency_histogram`` of completed requests
    (all after the scenario's warm-up, as in ``summarize``)."""
    metrics = summarize(result, alpha=alpha)
    cols = result.columns
    ok = (cols["outcome"] == Outcome.OK) & (cols["t_sent"] >= result.scenario.warmup_s)
    latency = result.latency_s
    for name, svc in metrics["services"].items():
        svc.update(locality(result, name))
        mine = ok & (cols["service"] == result.service_names.index(name))
        svc["latency_histogram"] = latency_histogram(latency[mine])
    return metrics


# --- statistics over replications -------------------------------------------------------------------------------


@dataclass(frozen=True)
class MeanCI:
    """A mean over replications with its Student-t confidence interval, in the units of the values."""

    mean: float
    low: float
    high: float
    n: int
    sd: float
    confidence: float


def mean_ci(values: ArrayLike, confidence: float = 0.95) -> MeanCI:
    """Mean of replication-level statistics (one value per replication, any unit) and its t interval.

    Replications are independent, so their statistics are too; raw requests within a run are not (they share
    queues), which is why intervals are never taken over requests. NaN values are left out; with fewer than two
    values the interval is NaN.

    >>> r = mean_ci([1.0, 2.0, 3.0, 4.0, 5.0])
    >>> round(r.mean, 4), round(r.low, 4), round(r.high, 4)
    (3.0, 1.0368, 4.9632)
    """
    x = np.asarray(values, dtype=float)
    x = x[~np.isnan(x)]
    n = int(x.size)
    if n == 0:
        return MeanCI(math.nan, math.nan, math.nan, 0, math.nan, confidence)
    mean = float(x.mean())
    if n < 2:
        return MeanCI(mean, math.nan, math.nan, n, math.nan, confidence)
    sd = float(x.std(ddof=1))
    half = float(_scipy_stats().t.ppf(0.5 + confidence / 2, n - 1)) * sd / math.sqrt(n)
    return MeanCI(mean, mean - half, mean + half, n, sd, confidence)


@dataclass(frozen=True)
class PairedDifference:
    """Mean of per-replication differences a - b (units of a and b), t interval, paired t-test and Cohen's d_z."""

    mean: float
    low: float
    high: float
    n: int
    statistic: float
    pvalue: float
    cohens_dz: float


def paired_difference(a: ArrayLike, b: ArrayLike, confidence: float = 0.95) -> PairedDifference:
    """Compare two policies replication by replication: under common random numbers replication r of each saw
    the same arrivals, so the differences a[r] - b[r] have far less variance than two independent samples.

    Pairs with a NaN on either side are left out.

    >>> d = paired_difference([2.0, 4.0, 6.0], [1.0, 2.0, 3.0])
    >>> d.mean, round(d.low, 4), round(d.high, 4), d.cohens_dz
    (2.0, -0.4841, 4.4841, 2.0)
    """
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if x.shape != y.shape:
        raise ValueError(f"paired samples differ in length: {x.size} and {y.size}")
    d = (x - y)[~(np.isnan(x) | np.isnan(y))]
    ci = mean_ci(d, confidence)
    if ci.n < 2:
        return PairedDifference(ci.mean, math.nan, math.nan, ci.n, math.nan, math.nan, math.nan)
    if ci.sd == 0:
        same = ci.mean == 0
        return PairedDifference(ci.mean, ci.mean, ci.mean, ci.n, 0.0 if same else math.inf, 1.0 if same else 0.0, 0.0)
    statistic = ci.mean / (ci.sd / math.sqrt(ci.n))
    pvalue = float(2 * _scipy_stats().t.sf(abs(statistic), ci.n - 1))
    return PairedDifference(ci.mean, ci.low, ci.high, ci.n, float(statistic), pvalue, ci.mean / ci.sd)


def false_discovery(pvalues: ArrayLike, method: str = "bh") -> np.ndarray:
    """Benjamini-Hochberg ("bh") or -Yekutieli ("by") adjusted p-values (q-values); NaN stays NaN.

    >>> false_discovery([0.01, 0.04, 0.03, 0.5]).round(4).tolist()
    [0.04, 0.0533, 0.0533, 0.5]
    """
    p = np.asarray(pvalues, dtype=float)
    q = np.full(p.shape, math.nan)
    finite = ~np.isnan(p)
    if finite.any():
        q[finite] = _scipy_stats().false_discovery_control(p[finite], method=method)
    return q


def sample_size(w: float, dof: int, *, alpha: float = 0.05, power: float = 0.8) -> int:
    """Fewest requests for a chi-square test with ``dof`` at level ``alpha`` to detect Cohen's w with ``power``.

    >>> sample_size(0.1, 1)  # Cohen's table: w=0.1, dof=1, alpha=0.05, power 0.8 -> 785
    785
    """
    if not w > 0 or dof < 1 or not 0 < power < 1:
        raise ValueError(f"need w > 0, dof >= 1 and 0 < power < 1; got w={w}, dof={dof}, power={power}")
    hi = 2
    while chi_square_power(w, hi, dof, alpha) < power:
        hi *= 2
    lo = hi // 2
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if chi_square_power(w, mid, dof, alpha) >= power else (mid, hi)
    return hi


def skew_power(shares: ArrayLike, expected_shares: ArrayLike, n: int, *, alpha: float = 0.05) -> float:
    """Probability that n requests reveal a picker whose true shares are ``shares`` instead of the expected ones."""
    p1, p0 = np.asarray(shares, dtype=float), np.asarray(expected_shares, dtype=float)
    keep = p0 > 0  # as in the test: cells with no expected share are violations, not chi-square cells
    return chi_square_power(cohens_w(p1[keep].tolist(), p0[keep].tolist()), n, int(keep.sum()) - 1, alpha)


def skew_sample_size(shares: ArrayLike, expected_shares: ArrayLike, *, alpha: float = 0.05, power: float = 0.8) -> int:
    """Fewest requests for the chi-square test to reveal true ``shares`` against ``expected_shares``.

    >>> skew_sample_size([0.55, 0.45], [0.5, 0.5])  # w = 0.1
    785
    """
    p1, p0 = np.asarray(shares, dtype=float), np.asarray(expected_shares, dtype=float)
    keep = p0 > 0
    return sample_size(cohens_w(p1[keep].tolist(), p0[keep].tolist()), int(keep.sum()) - 1, alpha=alpha, power=power)


# --- tidy tables over a sweep -------------------------------------------------------------------------------------

SUMMARY_METRICS = ("latency_mean_s", "latency_p99_s", "cross_node_fraction", "cross_zone_fraction")


def design_point_summary(
    frame: pd.DataFrame,
    factors: Sequence[str],
    metrics: Sequence[str] = SUMMARY_METRICS,
    confidence: float = 0.95,
) -> pd.DataFrame:
    """Per design point and Service: replications ``n`` and, per metric, the mean over replications with its t
    interval (``<metric>``, ``<metric>_low``, ``<metric>_high``; units of the metric). Failed runs are left out."""
    import pandas as pd  # here, not at the top: pandas costs ~0.5 s to import, and runs never need it

    ok = frame[frame["status"] == "ok"]
    keys = [*factors, "service"]
    rows = []
    for values, group in ok.groupby(keys, sort=False, dropna=False):
        row: dict[str, Any] = dict(zip(keys, values, strict=True))
        row["design_point"] = int(group["design_point"].iloc[0])
        row["n"] = len(group)
        for m in metrics:
            ci = mean_ci(group[m].to_numpy(dtype=float), confidence)
            row[m], row[f"{m}_low"], row[f"{m}_high"] = ci.mean, ci.low, ci.high
        rows.append(row)
    columns = ["design_point", *keys, "n", *(c for m in metrics for c in (m, f"{m}_low", f"{m}_high"))]
    return pd.DataFrame(rows, columns=columns)


def paired_differences(
    frame: pd.DataFrame,
    factors: Sequence[str],
    factor: str,
    baseline: Any,
    metric: str = "latency_mean_s",
    confidence: float = 0.95,
) -> pd.DataFrame:
    """For each level of ``factor`` against ``baseline``, at every combination of the other factors and Service:
    the mean paired difference of ``metric`` (level - baseline, paired by replication), its t interval, the paired
    t-test and Cohen's d_z. Units of the metric."""
    import pandas as pd  # here, not at the top: pandas costs ~0.5 s to import, and runs never need it

    ok = frame[frame["status"] == "ok"]
    others = [f for f in factors if f != factor] + ["service"]
    rows = []
    for values, group in ok.groupby(others, sort=False, dropna=False):
        wide = group.pivot_table(index="replication", columns=factor, values=metric, aggfunc="first", sort=False)
        if baseline not in wide.columns:
            continue
        for level in wide.columns:
            if level == baseline:
                continue
            d = paired_difference(wide[level].to_numpy(dtype=float), wide[baseline].to_numpy(dtype=float), confidence)
            rows.append(
                {
                    **dict(zip(others, values, strict=True)),
                    factor: level,
                    "baseline": baseline,
                    "metric": metric,
                    "n": d.n,
                    "difference": d.mean,
                    "low": d.low,
                    "high": d.high,
                    "t": d.statistic,
                    "pvalue": d.pvalue,
                    "cohens_dz": d.cohens_dz,
                }
            )
    columns = [*others, factor, "baseline", "metric", "n", "difference", "low", "high", "t", "pvalue", "cohens_dz"]
    return pd.DataFrame(rows, columns=columns)


def chi_square_by_design_point(
    records: Sequence[Mapping[str, Any]],
    factors: Sequence[str],
    *,
    alpha: float = 0.01,
    effect_w: float = 0.1,
) -> pd.DataFrame:
    """Per design point and Service, one goodness-of-fit test of fresh picks per endpoint pooled over
    replications against the routing layer's expected shares, with Benjamini-Hochberg q-values across the sweep.

    Picks are independent draws, so pooling requests is sound here (unlike latencies): each run's groups of
    equal expected shares are pooled with the same groups of the other replications and tested as in a run
    (``sim.stats.grouped_gof``: statistics and dof summed over groups). Pickers that are deterministic or choose
    by load get no p-value (NaN). ``reject`` is q < alpha; ``power`` is the chance to detect a skew of Cohen's
    w = ``effect_w`` with the pooled number of requests.
    """
    import pandas as pd  # here, not at the top: pandas costs ~0.5 s to import, and runs never need it

    pooled: dict[tuple[int, str], dict[str, Any]] = {}
    for rec in records:
        if rec.get("status") != "ok":
            continue
        for name, s in rec["metrics"]["services"].items():
            cell = pooled.setdefault(
                (rec["design_point"], name),
                {"factors": rec["factors"], "groups": {}, "violations": 0, "n_runs": 0, "no_pvalue": False},
            )
            cs = s.get("chi_square", {})
            cell["no_pvalue"] |= bool(cs.get("adaptive_picker") or cs.get("deterministic_picker"))
            # a run's groups of equal expected shares, pooled with the same groups of the other replications
            groups = cs.get("groups") or [{"picked": s["routed_by_endpoint"], "expected_share": s["expected_share"]}]
            for g in groups:
                shares = tuple(sorted((pod, share) for pod, share in g["expected_share"].items() if share > 0))
                counts = cell["groups"].setdefault(shares, {})
                for pod, n in g["picked"].items():
                    counts[pod] = counts.get(pod, 0) + n
            cell["violations"] += s["violations"]
            cell["n_runs"] += 1
    rows = []
    for (point, name), cell in pooled.items():
        pods = sorted({pod for shares in cell["groups"] for pod, _ in shares})
        index = {pod: i for i, pod in enumerate(pods)}
        groups = []
        for shares, counts in cell["groups"].items():
            if not shares or not any(counts.get(pod, 0) for pod, _ in shares):
                continue
            expected, observed = np.zeros(len(pods)), np.zeros(len(pods))
            for pod, share in shares:
                expected[index[pod]] = share
                observed[index[pod]] = counts.get(pod, 0)
            groups.append((observed, expected))
        test = grouped_gof(groups) if groups else None
        valid = test is not None and test.dof > 0 and not cell["no_pvalue"]
        rows.append(
            {
                "design_point": point,
                **{f: cell["factors"].get(f) for f in factors},
                "service": name,
                "runs": cell["n_runs"],
                "n": test.n if test else 0,
                "dof": test.dof if test else 0,
                "statistic": test.statistic if test else math.nan,
                "pvalue": test.pvalue if valid and test else math.nan,
                "cohens_w": test.cohens_w if test else math.nan,
                "violations": cell["violations"],
                "power": chi_square_power(effect_w, test.n, test.dof, alpha) if valid and test else math.nan,
            }
        )
    table = pd.DataFrame(
        rows,
        columns=[
            "design_point",
            *factors,
            "service",
            "runs",
            "n",
            "dof",
            "statistic",
            "pvalue",
            "cohens_w",
            "violations",
            "power",
        ],
    )
    table["qvalue"] = false_discovery(table["pvalue"].to_numpy(dtype=float))
    table["reject"] = table["qvalue"] < alpha
    return table
