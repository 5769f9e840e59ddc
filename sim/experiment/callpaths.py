"""A call graph's requests along their critical path (``RunResult.parent``): per entry Service, where the
end-to-end latency of its completed pages went, and how many of them stayed on the client's node and zone.

The critical path of a request is walked back from the moment its pod's work ended (the later of ``t_finished``
and its last call's return): the call that returned last before that moment is on the path, then the one that
returned last before that call was sent, and so on; the time between calls (and before the first) is the pod's
own work. Each call on the path is split the same way, recursively, so that, per request,
``own_work + network + queueing + failed_calls`` is its latency exactly: ``network`` the legs out and back of
every hop on the path, ``queueing`` the waits in a pod's queue, ``failed_calls`` the attempts that failed and were
retried (or were optional). ``wait_on_callee_s`` is, per callee Service, the time the path spent inside its calls
(its own callees' included, so these overlap along a chain).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import fields
from typing import Any

import numpy as np

from sim.experiment.metrics import CallPath, CriticalPath, Latency
from sim.outcomes import Outcome
from sim.records import RunResult

PARTS = tuple(f.name for f in fields(CriticalPath))
"""The parts of a request's latency along its critical path (``CallPath.critical_path_s``; they add up to it)."""


class _Walk:
    """The run's columns and each row's calls (``children``), read by ``split``."""

    def __init__(self, result: RunResult) -> None:
        assert result.parent is not None
        cols = result.columns
        self.sent, self.arrived = cols["t_sent"], cols["t_arrived"]
        self.started, self.finished, self.returned = cols["t_started"], cols["t_finished"], cols["t_returned"]
        self.ok = cols["outcome"] == Outcome.OK
        self.service = cols["service"]
        self.names = result.service_names
        parent = result.parent
        called = np.flatnonzero(parent >= 0)
        order = called[np.argsort(parent[called], kind="stable")]
        bounds = np.searchsorted(parent[order], np.arange(len(parent) + 1))
        self.order, self.bounds = order, bounds

    def children(self, row: int) -> np.ndarray:
        """The rows of the calls (every attempt) that request ``row`` made."""
        return self.order[self.bounds[row] : self.bounds[row + 1]]

    def split(self, row: int, parts: dict[str, float], waits: dict[str, float]) -> None:
        """Add request ``row``'s latency (s) along its critical path to ``parts`` and its calls' to ``waits``."""
        if not self.ok[row]:
            parts["failed_calls"] += float(self.returned[row] - self.sent[row])
            return
        kids = self.children(row)
        end = float(max(self.finished[row], self.returned[kids].max())) if kids.size else float(self.finished[row])
        parts["network"] += float(self.arrived[row] - self.sent[row]) + float(self.returned[row]) - end
        parts["queueing"] += float(self.started[row] - self.arrived[row])
        cursor, start = end, float(self.started[row])
        while True:
            before = kids[self.returned[kids] <= cursor]
            if not before.size:
                break
            last = int(before[np.argmax(self.returned[before])])
            parts["own_work"] += cursor - float(self.returned[last])
            name = self.names[self.service[last]]
            waits[name] = waits.get(name, 0.0) + float(self.returned[last] - self.sent[last])
            self.split(last, parts, waits)
            cursor = float(self.sent[last])
            kids = kids[self.sent[kids] < cursor]
        parts["own_work"] += cursor - start


def call_paths(result: RunResult, rows: Mapping[str, np.ndarray], node_zone: np.ndarray) -> dict[str, CallPath]:
    """Per entry Service (its rows by name: clients' requests to a Service that makes calls), its ``CallPath``
    over completed requests sent after the warm-up (``node_zone``: zone code per node index, -1 for none)."""
    if result.parent is None:
        return {}
    callers = {name for name, calls in result.scenario.call_graph.services.items() if calls.stages}
    cols = result.columns
    walk: _Walk | None = None
    out = {}
    for name, mine in rows.items():
        roots = mine[(result.parent[mine] < 0) & (cols["outcome"][mine] == Outcome.OK)]
        roots = roots[cols["t_sent"][roots] >= result.scenario.warmup_s]
        if name not in callers or not roots.size:
            continue
        walk = walk or _Walk(result)
        out[name] = _call_path(result, walk, roots, node_zone)
    return out


def _call_path(result: RunResult, walk: _Walk, roots: np.ndarray, node_zone: np.ndarray) -> CallPath:
    """One entry Service's ``CallPath`` from its completed client requests (``roots``)."""
    parts = dict.fromkeys(PARTS, 0.0)
    waits: dict[str, float] = {}
    for row in roots.tolist():
        walk.split(row, parts, waits)
    n = int(roots.size)
    same_node, same_zone = _stayed(result, roots, node_zone)
    latency = walk.returned[roots] - walk.sent[roots]
    return CallPath(
        requests=n,
        latency_s=Latency(float(latency.mean()), float(np.percentile(latency, 50)), float(np.percentile(latency, 99))),
        critical_path_s=CriticalPath(**{k: v / n for k, v in parts.items()}),
        wait_on_callee_s={k: waits[k] / n for k in sorted(waits)},
        same_node_fraction=same_node,
        same_zone_fraction=same_zone,
    )


def _stayed(result: RunResult, roots: np.ndarray, node_zone: np.ndarray) -> tuple[float, float]:
    """Of the client requests ``roots``: the share whose every hop (the request and all its calls, every
    attempt) was answered on the client's node (an external client's: where it entered), and the share in its
    zone (NaN where a node has no zone)."""
    cols = result.columns
    trace = result.trace()
    mine = np.isin(trace, roots)
    rows = np.flatnonzero(mine)
    client = np.full(len(result), -1, dtype=np.int64)
    client[roots] = cols["entry_node"][roots]  # the client's node (an external client's: where it entered)
    home = client[trace[rows]]
    served = cols.at("endpoint_node", rows).astype(np.int64)
    off_node = np.zeros(len(result), dtype=bool)
    off_node[trace[rows[served != home]]] = True
    zone_home, zone_served = node_zone[home], node_zone[served]
    zoned = bool(((zone_home >= 0) & (zone_served >= 0)).all()) and bool((home >= 0).all())
    off_zone = np.zeros(len(result), dtype=bool)
    off_zone[trace[rows[zone_served != zone_home]]] = True
    node_share = float(np.mean(~off_node[roots]))
    return node_share, float(np.mean(~off_zone[roots])) if zoned else math.nan


CLIENTS = "(clients)"
"""The caller of an edge into an entry Service in ``call_graph_document``: the scenario's clients."""
SAMPLE_SPANS = 200
"""The most spans of the sampled page a run document keeps (a page with more is cut, and says so)."""


def call_graph_document(result: RunResult, node_zone: np.ndarray) -> dict[str, Any] | None:
    """What the call graph's figures need of a run (None without calls): per edge (caller Service, or CLIENTS,
    to callee) over requests sent after the warm-up, its calls, calls/s, the share answered off the caller's
    node and zone, and the completed calls' mean latency (s); and the spans of one sampled page (``sample``)."""
    if result.parent is None:
        return None
    cols = result.columns
    rows = np.flatnonzero(cols["t_sent"] >= result.scenario.warmup_s)
    parent = result.parent[rows]
    caller = np.where(parent >= 0, cols["service"][np.maximum(parent, 0)], -1).astype(np.int64)
    callee = cols["service"][rows].astype(np.int64)
    ok = cols["outcome"][rows] == Outcome.OK
    entry, served = cols["entry_node"][rows].astype(np.int64), cols.at("endpoint_node", rows).astype(np.int64)
    span = max(result.end_s - result.scenario.warmup_s, 1e-12)
    edges = []
    for a, b in sorted({(int(x), int(y)) for x, y in zip(caller.tolist(), callee.tolist(), strict=True)}):
        mine = (caller == a) & (callee == b)
        done = mine & ok
        zoned = done & (node_zone[entry] >= 0) & (node_zone[served] >= 0)
        edges.append(
            {
                "caller": result.service_names[a] if a >= 0 else CLIENTS,
                "callee": result.service_names[b],
                "calls": int(mine.sum()),
                "calls_per_s": float(mine.sum()) / span,
                "cross_node_fraction": float(np.mean(served[done] != entry[done])) if done.any() else math.nan,
                "cross_zone_fraction": (
                    float(np.mean(node_zone[served[zoned]] != node_zone[entry[zoned]])) if zoned.any() else math.nan
                ),
                "latency_mean_s": float(np.mean(cols["t_returned"][rows[done]] - cols["t_sent"][rows[done]]))
                if done.any()
                else math.nan,
            }
        )
    return {"edges": edges, "sample": _sample(result)}


def _sample(result: RunResult) -> dict[str, Any] | None:
    """The spans of one page: of the first entry Service's completed client requests sent after the warm-up
    (entry Services in name order), the one of median latency; times from its send (s), in trace order (each
    span before its calls, calls by send time). None where no page completed."""
    cols = result.columns
    assert result.parent is not None
    callers = sorted(n for n, c in result.scenario.call_graph.services.items() if c.stages)
    for name in callers:
        if name not in result.service_names:
            continue
        roots = np.flatnonzero(
            (cols["service"] == result.service_names.index(name))
            & (result.parent < 0)
            & (cols["outcome"] == Outcome.OK)
            & (cols["t_sent"] >= result.scenario.warmup_s)
        )
        if not roots.size:
            continue
        latency = cols["t_returned"][roots] - cols["t_sent"][roots]
        root = int(roots[np.argsort(latency, kind="stable")[len(roots) // 2]])
        return {"service": name, "row": root, **_spans(result, root)}
    return None


def _spans(result: RunResult, root: int) -> dict[str, Any]:
    """The spans of the trace of ``root`` (at most SAMPLE_SPANS; ``cut``: how many more it had)."""
    cols = result.columns
    walk = _Walk(result)
    order: list[tuple[int, int]] = []
    stack = [(root, 0)]
    while stack:
        row, depth = stack.pop()
        order.append((row, depth))
        kids = walk.children(row)
        stack.extend((int(k), depth + 1) for k in kids[np.argsort(-cols["t_sent"][kids], kind="stable")])
    t0 = float(cols["t_sent"][root])
    spans = []
    for row, depth in order[:SAMPLE_SPANS]:
        endpoint, node = int(cols["endpoint"][row]), int(cols.at("endpoint_node", np.array([row]))[0])
        spans.append(
            {
                "row": row,
                "parent": int(result.parent[row]) if result.parent is not None else -1,
                "depth": depth,
                "service": result.service_names[cols["service"][row]],
                "pod": result.pod_names[endpoint] if endpoint >= 0 else None,
                "node": result.node_names[node] if node >= 0 else None,
                "outcome": Outcome(int(cols["outcome"][row])).name.lower(),
                **{k: _rel(cols[k][row], t0) for k in ("t_sent", "t_arrived", "t_started", "t_finished", "t_returned")},
            }
        )
    return {"spans": spans, "cut": max(len(order) - SAMPLE_SPANS, 0)}


def _rel(t: float, t0: float) -> float | None:
    """A time (s) from the page's send, None where the step never happened."""
    return None if math.isnan(t) else float(t) - t0
