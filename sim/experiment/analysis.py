"""Observed counts from a run's records against the routing layer's expected shares, and summary tables."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from sim.outcomes import Outcome
from sim.records import PICK_AFFINITY, PICK_FRESH, PICK_REUSED, RunResult
from sim.stats import ChiSquare, chi_square_gof, verdict


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
    deterministic: bool
    max_deviation: float
    verdict: str
    latency_s: dict[str, float]
    cross_node_fraction: float
    source_preserved_fraction: float
    picks: dict[str, int]
    pickers: list[str]

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
                "deterministic_picker": self.deterministic,
                "max_deviation": self.max_deviation,
                "verdict": self.verdict,
            },
            "latency_s": self.latency_s,
            "cross_node_fraction": self.cross_node_fraction,
            "source_preserved_fraction": self.source_preserved_fraction,
            "picks": self.picks,
            "pickers": self.pickers,
        }


def route_shares(result: RunResult) -> dict[tuple[int, int], np.ndarray]:
    """Per (stream, entry node index), the share of fresh picks each pod should receive (rows sum to 1 or 0)."""
    sc = result.scenario
    pod_index = {name: i for i, name in enumerate(result.pod_names)}
    node_index = {name: i for i, name in enumerate(result.node_names)}
    out: dict[tuple[int, int], np.ndarray] = {}
    for k, stream in enumerate(sc.streams):
        ip = sc.client_ip(stream.client)
        for node in sc.entry_nodes(stream):
            shares = np.zeros(len(result.pod_names))
            route = sc.route(stream, node)
            if route.endpoints:
                idx = [pod_index[ep.pod or ""] for ep in route.endpoints]
                shares[idx] = sc.picker(route.picker).shares(route.endpoints, ip)
            out[k, node_index[node]] = shares
    return out


def _pickers_used(result: RunResult, service: str) -> list[str]:
    sc = result.scenario
    names = {sc.route(st, n).picker for st in sc.streams if st.service == service for n in sc.entry_nodes(st)}
    return sorted(names)


def summarize_service(result: RunResult, service: str, *, alpha: float = 0.01) -> ServiceSummary:
    """Summarise one Service's requests in ``result``.

    The chi-square tests the picker's fresh choices only: requests that rode an open keep-alive connection or
    were pinned by session affinity are not independent draws, though they count in ``by_endpoint`` and every
    routed request is checked for violations (an endpoint its route did not allow).
    """
    cols = result.columns
    s_idx = result.service_names.index(service)
    mine = cols["service"] == s_idx
    outcome = cols["outcome"][mine]
    endpoint = cols["endpoint"][mine]
    stream = cols["stream"][mine]
    entry = cols["entry_node"][mine]
    pick = cols["pick"][mine]
    ok = outcome == Outcome.OK
    routed = endpoint >= 0
    fresh = routed & (pick == PICK_FRESH)
    n_pods = len(result.pod_names)

    expected = np.zeros(n_pods)
    violations = 0
    for (k, node), shares in route_shares(result).items():
        group = (stream == k) & (entry == node)
        expected += np.count_nonzero(group & fresh) * shares
        violations += int(np.count_nonzero(shares[endpoint[group & routed]] == 0))

    routed_counts = np.bincount(endpoint[fresh], minlength=n_pods)
    reply_counts = np.bincount(endpoint[ok], minlength=n_pods)
    all_routed = np.bincount(endpoint[routed], minlength=n_pods)
    relevant = np.flatnonzero((expected > 0) | (all_routed > 0))
    positive = expected > 0
    test = chi_square_gof(routed_counts[positive], expected[positive]) if positive.any() else chi_square_gof([0], [1])
    pickers = _pickers_used(result, service)
    deterministic = any(result.scenario.picker(p).deterministic for p in pickers)
    max_dev = float(np.max(np.abs(routed_counts - expected))) if positive.any() else 0.0
    if deterministic and test.dof > 0:
        words = f"deterministic picker ({', '.join(pickers)}): exact balance expected, max deviation {max_dev:g}"
    else:
        words = verdict(test, alpha)

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
        source_preserved_fraction=float(np.mean(cols["source_preserved"][mine][ok])) if ok.any() else nan,
        picks={
            "fresh": int(np.count_nonzero(fresh)),
            "affinity": int(np.count_nonzero(routed & (pick == PICK_AFFINITY))),
            "reused_connection": int(np.count_nonzero(routed & (pick == PICK_REUSED))),
        },
        pickers=pickers,
    )


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
