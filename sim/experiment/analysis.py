"""Observed counts from a run's records against the routing layer's expected shares, and summary tables."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from sim.outcomes import Outcome
from sim.records import RunResult
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
    expected_share: dict[str, float]
    chi_square: ChiSquare
    deterministic: bool
    max_deviation: float
    verdict: str
    latency_s: dict[str, float]

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
        }


def expected_shares(result: RunResult) -> np.ndarray:
    """Per stream, the share of routed requests each pod should receive (streams x pods; rows sum to 1 or 0)."""
    sc = result.scenario
    pod_index = {name: i for i, name in enumerate(result.pod_names)}
    shares = np.zeros((len(sc.streams), len(result.pod_names)))
    for k, stream in enumerate(sc.streams):
        route = sc.route(stream.service, sc.pod(stream.client).node)
        if route.endpoints:
            idx = [pod_index[ep.pod or ""] for ep in route.endpoints]
            shares[k, idx] = sc.picker_impl.shares(route.endpoints)
    return shares


def summarize_service(result: RunResult, service: str, *, alpha: float = 0.01) -> ServiceSummary:
    """Summarise one Service's requests in ``result``; the chi-square tests routing decisions (all routed)."""
    cols = result.columns
    s_idx = result.service_names.index(service)
    mine = cols["service"] == s_idx
    outcome = cols["outcome"][mine]
    endpoint = cols["endpoint"][mine]
    stream = cols["stream"][mine]
    ok = outcome == Outcome.OK
    routed = endpoint >= 0
    n_pods = len(result.pod_names)

    shares = expected_shares(result)
    routed_per_stream = np.bincount(stream[routed], minlength=shares.shape[0])
    expected = routed_per_stream @ shares  # expected routed count per pod
    allowed = shares[stream[routed], endpoint[routed]] > 0
    violations = int(np.count_nonzero(~allowed))

    routed_counts = np.bincount(endpoint[routed], minlength=n_pods)
    reply_counts = np.bincount(endpoint[ok], minlength=n_pods)
    relevant = np.flatnonzero((expected > 0) | (routed_counts > 0))
    test = (
        chi_square_gof(routed_counts[expected > 0], expected[expected > 0])
        if expected.any()
        else chi_square_gof([0], [1])
    )
    deterministic = result.scenario.picker_impl.deterministic
    max_dev = float(np.max(np.abs(routed_counts - expected))) if expected.any() else 0.0
    if deterministic and test.dof > 0:
        words = f"deterministic picker ({result.scenario.picker}): exact balance expected, max deviation {max_dev:g}"
    else:
        words = verdict(test, alpha)

    node_counts = np.bincount(cols["endpoint_node"][mine][ok], minlength=len(result.node_names))
    latency = result.latency_s[mine][ok]
    latency_s = (
        {
            "mean": float(latency.mean()),
            "p50": float(np.percentile(latency, 50)),
            "p99": float(np.percentile(latency, 99)),
        }
        if latency.size
        else {"mean": float("nan"), "p50": float("nan"), "p99": float("nan")}
    )
    total = expected.sum()
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
    )


def summarize(result: RunResult, *, alpha: float = 0.01) -> dict[str, Any]:
    """The whole run as one JSON-ready dict: seed, scenario name, end time and a summary per Service."""
    return {
        "scenario": result.scenario.name,
        "seed": result.seed,
        "dataplane": result.scenario.dataplane,
        "picker": result.scenario.picker,
        "end_s": result.end_s,
        "services": {
            name: summarize_service(result, name, alpha=alpha).to_json()
            for name in result.service_names
            if np.any(result.columns["service"] == result.service_names.index(name))
            or any(s.service == name for s in result.scenario.streams)
        },
    }
