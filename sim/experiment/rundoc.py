"""What ``sim run --json`` / ``--out`` write for one run, beyond ``summarize``: enough to draw and report it.

``run_document(result)`` is ``summarize(result)`` (every key it has, unchanged) plus, per Service, the sweep
record's ``by_client_node`` and ``latency_histogram`` (``run_metrics``) and ``windows`` (the run over time), and at
the top ``window_s`` (the width of those windows), ``timeline`` (the scenario's events), ``cluster`` (nodes,
network, pods, Services and client streams, for drawing the cluster) and ``provenance`` (command and versions).

The windows are compact: per window of ``window_s`` seconds by send time, counts of requests sent, routed to
each endpoint, completed and failed by reason, and the latency percentiles (s) of the completed ones. A run of
30 s in 0.5 s windows adds a few KB, whatever the number of requests.
"""

from __future__ import annotations

import math
import platform
import shlex
from collections.abc import Sequence
from dataclasses import replace
from importlib import metadata
from typing import Any

import numpy as np

from sim.experiment.analysis import metric_summaries, run_index, run_json, service_rows
from sim.experiment.callpaths import call_graph_document
from sim.experiment.metrics import ServiceWindows
from sim.outcomes import DropReason, Outcome
from sim.records import RunResult
from sim.scenario import Scenario
from sim.timeline import Event

MAX_WINDOWS = 60
"""At most this many windows over a run; their width is 1, 2 or 5 times a power of ten seconds."""
PERCENTILES = (50, 90, 99)
TIMEOUT = "timeout"
"""The ``failed`` key of requests whose client gave up at its request timeout (Outcome.TIMEOUT)."""


def window_width(end_s: float, max_windows: int = MAX_WINDOWS) -> float:
    """The smallest of 1, 2, 5 x 10^k seconds that cuts [0, ``end_s``] into at most ``max_windows`` windows.

    >>> window_width(30.0), window_width(3.19), window_width(0.0)
    (0.5, 0.1, 1.0)
    """
    if not end_s > 0:
        return 1.0
    exponent = math.floor(math.log10(end_s / max_windows))
    for power in (exponent, exponent + 1):
        for step in (1, 2, 5):
            width = float(f"{step}e{power}")
            if math.ceil(end_s / width - 1e-9) <= max_windows:
                return width
    return float(f"1e{exponent + 2}")


def windows(result: RunResult, service: str, width_s: float, rows: np.ndarray | None = None) -> ServiceWindows:
    """One Service's requests over time, in windows of ``width_s`` seconds by send time (from 0 s, warm-up
    included): ``sent``, ``landed`` (requests routed to each endpoint pod that got any), ``completed``,
    ``failed`` (per drop reason label, and ``timeout``) and ``latency_s`` (p50/p90/p99 of the completed
    requests, seconds; None where a window has none). Every list has one entry per window. ``rows``: the
    Service's row indices (``sim.experiment.analysis.service_rows``; found here when None)."""
    cols = result.columns
    n = max(1, math.ceil(result.end_s / width_s - 1e-9))
    mine = np.flatnonzero(cols["service"] == result.service_names.index(service)) if rows is None else rows
    window = np.minimum((cols["t_sent"][mine] // width_s).astype(np.int64), n - 1)
    outcome, endpoint, reason = cols["outcome"][mine], cols["endpoint"][mine], cols["reason"][mine]
    latency = cols["t_returned"][mine] - cols["t_sent"][mine]

    def count(selected: np.ndarray) -> list[int]:
        return np.bincount(window[selected], minlength=n).tolist()

    routed = endpoint >= 0  # one bincount over (pod, window) pairs: linear in requests, whatever the pod count
    pods, pod_of = np.unique(endpoint[routed], return_inverse=True)
    grid = np.bincount(pod_of * n + window[routed], minlength=len(pods) * n).reshape(len(pods), n)
    landed = {result.pod_names[p]: row.tolist() for p, row in zip(pods.tolist(), grid, strict=True)}
    failed = {r.label: count(reason == r) for r in DropReason if r != DropReason.NONE and np.any(reason == r)}
    if np.any(outcome == Outcome.TIMEOUT):
        failed[TIMEOUT] = count(outcome == Outcome.TIMEOUT)
    ok = outcome == Outcome.OK
    order = np.argsort(window[ok], kind="stable")
    ok_window, ok_latency = window[ok][order], latency[ok][order]
    bounds = np.searchsorted(ok_window, np.arange(n + 1))
    quantiles: dict[str, list[float | None]] = {f"p{q}": [] for q in PERCENTILES}
    for i in range(n):
        values = ok_latency[bounds[i] : bounds[i + 1]]
        at = np.percentile(values, PERCENTILES).tolist() if values.size else [None] * len(PERCENTILES)
        for q, value in zip(PERCENTILES, at, strict=True):
            quantiles[f"p{q}"].append(value)
    return ServiceWindows(
        sent=count(np.ones(window.size, dtype=bool)),
        landed=landed,
        completed=count(ok),
        failed=failed,
        latency_s=quantiles,
    )


def _event_words(event: Event) -> tuple[str, str]:
    """What an event acts on, and a short description of it."""
    action = str(event.action)
    if event.pod:
        more = f" (grace {event.grace_s:g} s)" if action == "terminate" else ""
        return event.pod, f"{action} pod {event.pod}{more}"
    if event.node:
        more = f" (noticed after {event.detect_s:g} s)" if action == "fail" else ""
        return event.node, f"{action} node {event.node}{more}"
    changes = ", ".join(f"{k}={v}" for k, v in event.changes.items())
    return event.service, f"{action} Service {event.service}" + (f": {changes}" if changes else "")


def timeline_events(scenario: Scenario) -> list[dict[str, Any]]:
    """The scenario's timeline as JSON: ``at_s`` (s), ``action``, ``target`` (pod, node or Service) and ``text``;
    a terminated pod's ``gone_s``, when its grace period ends."""
    out = []
    for event in sorted(scenario.timeline, key=lambda e: e.at_s):
        target, text = _event_words(event)
        item = {"at_s": event.at_s, "action": str(event.action), "target": target, "text": text}
        if event.action == "terminate":
            item["gone_s"] = event.at_s + event.grace_s  # the pod stops answering: its grace period is over
        out.append(item)
    return out


def _workload_words(stream: Any) -> str:
    w = stream.workload
    kind = type(w).__name__
    if hasattr(w, "rate_rps"):
        return f"{kind} {w.rate_rps:g} requests/s"
    if hasattr(w, "think"):
        return f"{kind} (think {w.think.mean_s * 1e3:g} ms)"
    return kind


def describe_cluster(scenario: Scenario) -> dict[str, Any]:
    """The scenario as data for a picture and tables: nodes (zone, ready), network elements, links (mean one-way
    latency, s), pods (node, labels, state), Services (policies, selected pods), streams and the dataplane."""
    topo = scenario.topology
    nodes = scenario.nodes
    present = [p for p in scenario.pods if p.name not in scenario.absent]
    services = []
    for svc in scenario.services:
        services.append(
            {
                "name": svc.name,
                "internalTrafficPolicy": str(svc.internal_traffic_policy),
                "externalTrafficPolicy": str(svc.external_traffic_policy),
                "trafficDistribution": str(svc.traffic_distribution) if svc.traffic_distribution else None,
                "sessionAffinity": str(svc.session_affinity),
                "nodePort": svc.node_port or None,
                "selector": dict(svc.selector),
                "endpoints": [e.pod for e in scenario.control_plane.endpoints(svc.name) if e.pod],
                "hints": scenario.control_plane.hints(svc.name).withheld or "written",
            }
        )
    return {
        "topology": topo.name,
        "dataplane": scenario.dataplane.name,
        "picker": scenario.dataplane.picker or "default",
        "nodes": [{"name": n.name, "zone": n.zone, "ready": n.ready} for n in nodes.values()],
        "elements": [{"name": name, "kind": str(kind)} for name, kind in topo.elements.items()],
        "links": [{"a": link.a, "b": link.b, "mean_s": link.latency.mean_s} for link in topo.links],
        "same_node_s": topo.same_node.mean_s,
        "pods": [
            {
                "name": p.name,
                "node": p.node,
                "labels": dict(p.labels),
                "ready": p.ready,
                "terminating": p.terminating,
                "present": p.name not in scenario.absent,
            }
            for p in scenario.pods
        ],
        "pods_present": len(present),
        "external_clients": [{"name": c.name, "attach": c.attach} for c in scenario.external_clients],
        "services": services,
        "streams": [
            {
                "client": st.client,
                "service": st.service,
                "workload": _workload_words(st),
                "requests": st.requests,
                "target": str(st.target),
            }
            for st in scenario.streams
        ],
        "duration_s": scenario.duration_s,
        "warmup_s": scenario.warmup_s,
        "sync_lag_s": scenario.sync.lag_s,
    }


VERSIONED = ("k8s-service-sim", "numpy", "scipy", "simpy", "networkx", "matplotlib", "jinja2")


def versions(packages: Sequence[str] = VERSIONED) -> dict[str, str]:
    """Python's version and each installed package's, by distribution name (missing ones left out)."""
    out = {"python": platform.python_version()}
    for name in packages:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def run_document(result: RunResult, *, alpha: float = 0.01, command: Sequence[str] = ()) -> dict[str, Any]:
    """``summarize(result)`` plus what pictures and reports of one run need (see the module docstring)."""
    width = window_width(result.end_s)
    found = service_rows(result)
    rows = dict(zip(result.service_names, found, strict=True))
    summaries = {
        name: replace(s, windows=windows(result, name, width, rows[name]))
        for name, s in metric_summaries(result, alpha=alpha, rows=found).items()
    }
    doc = run_json(result, summaries)
    doc["window_s"] = width
    doc["timeline"] = timeline_events(result.scenario)
    doc["cluster"] = describe_cluster(result.scenario)
    doc["provenance"] = {"command": shlex.join(command), "versions": versions()}
    graph = call_graph_document(result, run_index(result).node_zone)
    if graph is not None:
        doc["call_graph"] = graph
    return doc


def share_interval(n: int, share: float, confidence: float = 0.95) -> tuple[float, float]:
    """Where one endpoint's observed share of ``n`` independent picks falls with probability ``confidence`` if
    it is picked with probability ``share``: the central binomial interval, as shares (0..1).

    >>> share_interval(10000, 0.5)
    (0.4902, 0.5098)
    """
    from scipy import stats  # here: scipy.stats costs about a second to import

    if n <= 0:
        return (math.nan, math.nan)
    tail = (1 - confidence) / 2
    low, high = stats.binom.ppf([tail, 1 - tail], n, share)
    return float(low) / n, float(high) / n
