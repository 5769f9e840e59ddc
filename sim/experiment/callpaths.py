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
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from sim.experiment.metrics import CallPath, CriticalPath, Latency
from sim.outcomes import Outcome
from sim.records import RunResult

PARTS = tuple(f.name for f in fields(CriticalPath))
"""The parts of a request's latency along its critical path (``CallPath.critical_path_s``; they add up to it)."""


_CHUNK_ROOTS = 1 << 15
"""Pages walked at once (``critical_paths``): the walk's temporaries are a chunk's, not the run's."""
_CHUNK_ROWS = 1 << 17
"""Rows read at once where every row of the run is read (``_stayed``)."""


class Children:
    """Each request's calls (every attempt): the rows with a parent, sorted by parent (stable), int32."""

    def __init__(self, parent: np.ndarray) -> None:
        called = np.flatnonzero(parent >= 0).astype(np.int32)
        order = np.argsort(parent[called], kind="stable")
        self.rows = called[order]
        del called, order
        self.parents = parent[self.rows]

    def of(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The calls of ``rows``: each call's position in ``rows`` and its row, grouped by position, in row order."""
        lo = np.searchsorted(self.parents, rows, "left")
        sizes = np.searchsorted(self.parents, rows, "right") - lo
        owner = np.repeat(np.arange(len(rows)), sizes)
        first = np.cumsum(sizes) - sizes
        return owner, self.rows[np.arange(len(owner)) - first[owner] + lo[owner]]


@dataclass(frozen=True)
class Split:
    """Pages along their critical paths: per page (aligned with the roots), each of ``PARTS`` (s; they add up to
    its latency); per Service (aligned with ``service_names``), the time the paths spent in its calls (s, summed
    over the pages) and how many calls on the paths were its."""

    parts: dict[str, np.ndarray]
    waits: np.ndarray
    calls: np.ndarray


def critical_paths(result: RunResult, roots: np.ndarray, children: Children | None = None) -> Split:
    """The critical paths of the completed requests ``roots`` (rows; see the module), a chunk of pages at a time,
    level by level down their call trees (``_level``)."""
    assert result.parent is not None
    children = children or Children(result.parent)
    cols = result.columns
    times = tuple(cols[k] for k in ("t_sent", "t_arrived", "t_started", "t_finished", "t_returned"))
    parts = {k: np.zeros(len(roots)) for k in PARTS}
    n_services = len(result.service_names)
    waits, calls = np.zeros(n_services), np.zeros(n_services, dtype=np.int64)
    for lo in range(0, len(roots), _CHUNK_ROOTS):
        rows = roots[lo : lo + _CHUNK_ROOTS]
        pages = len(rows)
        page = np.arange(pages)
        while rows.size:
            failed = cols.at("outcome", rows) != Outcome.OK
            spent = times[4][rows[failed]] - times[0][rows[failed]]
            parts["failed_calls"][lo : lo + pages] += np.bincount(page[failed], spent, minlength=pages)
            rows, page = rows[~failed], page[~failed]
            level, path, owner = _level(times, children, rows)
            for k, v in level.items():
                parts[k][lo : lo + pages] += np.bincount(page, v, minlength=pages)
            service = cols.at("service", path)
            waits += np.bincount(service, times[4][path] - times[0][path], minlength=n_services)
            calls += np.bincount(service, minlength=n_services)
            rows, page = path, page[owner]
    return Split(parts, waits, calls)


def _level(
    times: tuple[np.ndarray, ...], children: Children, rows: np.ndarray
) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """Completed requests ``rows``, each on its own: its network, queueing and own work (s) along its critical
    path, and the calls on that path (their rows, and each one's position in ``rows``). A request's calls are
    sorted by return (a tie: the lowest row on top) and a pointer steps down through them from its end: the call
    under the pointer is on the path if it returned by the cursor (and, after the first, was sent before it),
    and the cursor moves to its send; either way the pointer moves on (a call returns no earlier than it was sent,
    so the cursor only moves back: a call passed over is never on the path later). One step of every request at
    a time."""
    sent, arrived, started, finished, returned = times
    owner, kids = children.of(rows)
    back = returned[kids]
    order = np.lexsort((-kids, back, owner))
    owner, kids, back = owner[order], kids[order], back[order]
    stop = np.cumsum(np.bincount(owner, minlength=len(rows)))
    begin = np.concatenate(([0], stop[:-1]))
    cursor = finished[rows]
    active = np.flatnonzero(stop > begin)
    if active.size:
        last = np.maximum.reduceat(back, begin[active])  # NaN if any is: then the pod's end, as max() would
        cursor[active[last > cursor[active]]] = last[last > cursor[active]]
    network = arrived[rows] - sent[rows] + returned[rows] - cursor
    first = np.ones(len(rows), dtype=bool)
    own = np.zeros(len(rows))
    at = stop - 1
    path, path_owner = [], []
    while active.size:
        k = at[active]
        on = (back[k] <= cursor[active]) & (first[active] | (sent[kids[k]] < cursor[active]))
        mine, k = active[on], k[on]
        own[mine] += cursor[mine] - back[k]
        cursor[mine] = sent[kids[k]]
        first[mine] = False
        path.append(kids[k])
        path_owner.append(mine)
        at[active] -= 1
        active = active[at[active] >= begin[active]]
    own += cursor - started[rows]
    level = {"own_work": own, "network": network, "queueing": started[rows] - arrived[rows]}
    empty = np.zeros(0, dtype=np.int64)
    return level, np.concatenate([empty, *path]).astype(np.int64), np.concatenate([empty, *path_owner])


def call_paths(result: RunResult, rows: Mapping[str, np.ndarray], node_zone: np.ndarray) -> dict[str, CallPath]:
    """Per entry Service (its rows by name: clients' requests to a Service that makes calls), its ``CallPath``
    over completed requests sent after the warm-up (``node_zone``: zone code per node index, -1 for none)."""
    if result.parent is None:
        return {}
    callers = {name for name, calls in result.scenario.call_graph.services.items() if calls.stages}
    cols = result.columns
    children: Children | None = None
    out = {}
    for name, mine in rows.items():
        roots = mine[(result.parent[mine] < 0) & (cols.at("outcome", mine) == Outcome.OK)]
        roots = roots[cols["t_sent"][roots] >= result.scenario.warmup_s]
        if name not in callers or not roots.size:
            continue
        children = children or Children(result.parent)
        out[name] = _call_path(result, critical_paths(result, roots, children), roots, node_zone)
    return out


def _call_path(result: RunResult, split: Split, roots: np.ndarray, node_zone: np.ndarray) -> CallPath:
    """One entry Service's ``CallPath`` from its completed client requests (``roots``) and their ``split``."""
    n = int(roots.size)
    same_node, same_zone = _stayed(result, roots, node_zone)
    latency = result.columns["t_returned"][roots] - result.columns["t_sent"][roots]
    names = result.service_names
    return CallPath(
        requests=n,
        latency_s=Latency.of(latency),
        critical_path_s=CriticalPath(**{k: float(v.sum()) / n for k, v in split.parts.items()}),
        wait_on_callee_s={
            names[i]: float(split.waits[i]) / n for i in sorted(np.flatnonzero(split.calls), key=names.__getitem__)
        },
        same_node_fraction=same_node,
        same_zone_fraction=same_zone,
    )


def _stayed(result: RunResult, roots: np.ndarray, node_zone: np.ndarray) -> tuple[float, float]:
    """Of the client requests ``roots``: the share whose every hop (the request and all its calls, every
    attempt) was answered on the client's node (an external client's: where it entered), and the share in its
    zone (NaN where a node has no zone). A chunk of rows at a time: besides the trace ids, a byte a row."""
    cols = result.columns
    trace = result.trace()
    is_root = np.zeros(len(result), dtype=bool)
    is_root[roots] = True
    off_node = np.zeros(len(result), dtype=bool)
    off_zone = np.zeros(len(result), dtype=bool)
    zoned = True
    for lo in range(0, len(result), _CHUNK_ROWS):
        root = trace[lo : lo + _CHUNK_ROWS]
        rows = np.flatnonzero(is_root[root]) + lo
        root = root[rows - lo]
        home = cols["entry_node"][root].astype(np.int64)  # the client's node (an external client's: its entry)
        served = cols.at("endpoint_node", rows).astype(np.int64)
        off_node[root[served != home]] = True
        zone_home, zone_served = node_zone[home], node_zone[served]
        zoned = zoned and bool(((zone_home >= 0) & (zone_served >= 0)).all()) and bool((home >= 0).all())
        off_zone[root[zone_served != zone_home]] = True
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
    # one stable sort by edge, then a slice per edge (as ``service_rows``): a mask per edge cost edges x requests
    n_services = len(result.service_names)
    key = (caller + 1) * n_services + callee
    order = np.argsort(key, kind="stable")
    keys, starts = np.unique(key[order], return_index=True)
    edges = []
    for k, mine in zip(keys.tolist(), np.split(order, starts[1:]) if key.size else [], strict=True):
        a, b = divmod(k, n_services)  # ``mine``: the edge's requests, in row order
        done = mine[ok[mine]]
        here, there = entry[done], served[done]
        zoned = (node_zone[here] >= 0) & (node_zone[there] >= 0)
        edges.append(
            {
                "caller": result.service_names[a - 1] if a > 0 else CLIENTS,
                "callee": result.service_names[b],
                "calls": int(mine.size),
                "calls_per_s": float(mine.size) / span,
                "cross_node_fraction": float(np.mean(there != here)) if done.size else math.nan,
                "cross_zone_fraction": (
                    float(np.mean(node_zone[there[zoned]] != node_zone[here[zoned]])) if zoned.any() else math.nan
                ),
                "latency_mean_s": float(np.mean(cols["t_returned"][rows[done]] - cols["t_sent"][rows[done]]))
                if done.size
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
    assert result.parent is not None
    children = Children(result.parent)
    order: list[tuple[int, int]] = []
    stack = [(root, 0)]
    while stack:
        row, depth = stack.pop()
        order.append((row, depth))
        kids = children.of(np.array([row]))[1]
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
