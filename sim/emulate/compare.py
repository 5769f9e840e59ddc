"""The kernel's answers beside the simulator's, per Service, with a chi-square test of homogeneity.

The categories compared are where each *new connection* went (a pod) or how a request failed, as the client saw
it: ``timeout`` (a DROP: no answer to the SYN, so the client waited for its connect timeout; the simulator's drop
reasons whose client waits, such as ``no_local_endpoints``), ``refused`` (a REJECT: ``no_endpoints``). The
emulation's clients use a short connect timeout (``--connect-timeout``, 1 s by default) where the scenario's
``connect_timeout_s`` may be 127 s: inside the namespaces a SYN that is answered is answered in microseconds, so
a short timeout tells a DROP apart as surely as a long one, and only the time the client waited differs (the
simulator's figure is the scenario's).

Connections, not requests, are the independent draws (keep-alive requests ride their connection's draw). Under
ClientIP session affinity even connections are not independent (each sticks to its client's endpoint), so no
p-value is given there: the report says whether each client stayed on one endpoint in both.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from sim.cluster import SessionAffinity
from sim.outcomes import DropReason, Outcome
from sim.records import PICK_FRESH
from sim.scenario import Scenario


def failure_kind(reason: DropReason) -> str:
    """What a client sees when the simulator drops its request for ``reason``: the emulation's failure kinds."""
    if reason.client_waits:
        return "timeout"
    if reason in (DropReason.NO_ENDPOINTS, DropReason.QUEUE_FULL):
        return "refused"
    if reason == DropReason.NO_BACKENDS:
        return "unreachable"
    return reason.label


def kernel_counts(records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Counts from the client processes' records of one Service: answers per pod, new connections per pod,
    failed requests per kind, and per client the pods that answered."""
    by_endpoint: Counter[str] = Counter()
    connections: Counter[str] = Counter()
    failures: Counter[str] = Counter()
    per_client: dict[str, set[str]] = {}
    for rec in records:
        for answer, new in zip(rec["answers"], rec["new"], strict=True):
            if answer.startswith("!"):
                failures[answer[1:]] += 1
                continue
            by_endpoint[answer] += 1
            connections[answer] += new
            per_client.setdefault(rec["client"], set()).add(answer)
    return {
        "by_endpoint": dict(sorted(by_endpoint.items())),
        "connections_by_endpoint": dict(sorted(connections.items())),
        "failures": dict(sorted(failures.items())),
        "endpoints_per_client": {c: sorted(p) for c, p in sorted(per_client.items())},
    }


def sim_counts(scenario: Scenario, seed: int) -> dict[str, dict[str, Any]]:
    """The simulator's counts for every Service of ``scenario`` at ``seed``, in the kernel's categories."""
    from sim.engine import run  # here: the comparison is the only part of sim.emulate that needs the simulator

    result = run(scenario, seed)
    cols = result.columns
    out: dict[str, dict[str, Any]] = {}
    for s_idx, name in enumerate(result.service_names):
        mine = cols["service"] == s_idx
        endpoint, pick, reason = cols["endpoint"][mine], cols["pick"][mine], cols["reason"][mine]
        ok = cols["outcome"][mine] == Outcome.OK
        answered = np.bincount(endpoint[ok], minlength=len(result.pod_names))
        fresh = np.bincount(endpoint[(endpoint >= 0) & (pick == PICK_FRESH)], minlength=len(result.pod_names))
        drops: Counter[str] = Counter()
        failures: Counter[str] = Counter()
        for code in reason[reason > 0].tolist():
            drops[DropReason(code).label] += 1
            failures[failure_kind(DropReason(code))] += 1
        per_client: dict[str, set[str]] = {}
        for c, e in zip(cols["client"][mine][ok].tolist(), endpoint[ok].tolist(), strict=True):
            per_client.setdefault(result.client_names[c], set()).add(result.pod_names[e])
        out[name] = {
            "by_endpoint": {result.pod_names[i]: int(answered[i]) for i in np.flatnonzero(answered)},
            "connections_by_endpoint": {result.pod_names[i]: int(fresh[i]) for i in np.flatnonzero(fresh)},
            "failures": dict(sorted(failures.items())),
            "drops": dict(sorted(drops.items())),
            "endpoints_per_client": {c: sorted(p) for c, p in sorted(per_client.items())},
        }
    return out


def homogeneity(kernel: Mapping[str, int], sim: Mapping[str, int]) -> dict[str, Any]:
    """Chi-square test that two samples of categories come from one distribution (scipy's
    ``chi2_contingency`` on the 2 x K table, without Yates' correction, so p is calibrated rather than
    conservative). Categories empty in both are left out; with one category left both samples are all that
    category and there is nothing to test (p = 1, said so).

    >>> homogeneity({"a": 50, "b": 50}, {"a": 50, "b": 50})["pvalue"]
    1.0
    >>> homogeneity({"timeout": 10}, {"timeout": 10})["note"]
    'one category in both (timeout): identical, nothing to test'
    """
    cats = sorted(c for c in set(kernel) | set(sim) if kernel.get(c) or sim.get(c))
    table = np.array([[kernel.get(c, 0) for c in cats], [sim.get(c, 0) for c in cats]], dtype=float)
    if not cats or table.sum(axis=1).min() == 0:
        return {"pvalue": None, "statistic": None, "dof": 0, "note": "a sample is empty: nothing to compare"}
    if len(cats) == 1:
        return {
            "pvalue": 1.0,
            "statistic": 0.0,
            "dof": 0,
            "note": f"one category in both ({cats[0]}): identical, nothing to test",
        }
    from scipy import stats  # lazily: it costs about a second

    res = stats.chi2_contingency(table, correction=False)
    expected_min = float(np.min(res.expected_freq))
    note = (
        f"smallest expected count {expected_min:.1f} < 5: the chi-square approximation is rough"
        if expected_min < 5
        else ""
    )
    return {"pvalue": float(res.pvalue), "statistic": float(res.statistic), "dof": int(res.dof), "note": note}


def compare(scenario: Scenario, kernel: Mapping[str, Sequence[Mapping[str, Any]]], sim: Mapping[str, dict]) -> dict:
    """Per Service: kernel counts, simulator counts, the homogeneity p-value and whether failure kinds agree."""
    services: dict[str, Any] = {}
    for svc in scenario.services:
        if not any(st.service == svc.name for st in scenario.streams):
            continue
        k = kernel_counts(kernel.get(svc.name, ()))
        s = sim[svc.name]
        entry: dict[str, Any] = {"kernel": k, "sim": s}
        entry["failures_match"] = set(k["failures"]) == set(s["failures"])
        if svc.session_affinity == SessionAffinity.CLIENT_IP:
            pinned = all(len(p) == 1 for p in k["endpoints_per_client"].values()) and all(
                len(p) == 1 for p in s["endpoints_per_client"].values()
            )
            entry["homogeneity_p"] = None
            entry["test"] = {
                "note": "ClientIP affinity: connections are not independent draws, so no p-value; every client "
                + ("stayed on one endpoint in both" if pinned else "did NOT stay on one endpoint in both"),
                "pinned": pinned,
            }
        else:
            test = homogeneity(
                {**k["connections_by_endpoint"], **{f"!{f}": n for f, n in k["failures"].items()}},
                {**s["connections_by_endpoint"], **{f"!{f}": n for f, n in s["failures"].items()}},
            )
            entry["homogeneity_p"] = test.pop("pvalue")
            entry["test"] = test
        services[svc.name] = entry
    return {"services": services}
