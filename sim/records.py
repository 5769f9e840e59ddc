"""Flat per-request records in numpy columns, and the RunResult that carries them with their scenario and seed."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from sim.outcomes import DropReason, Outcome
from sim.rng import SeedRecord

if TYPE_CHECKING:
    import pandas as pd

    from sim.scenario import Scenario, Stream

PICK_REUSED, PICK_FRESH, PICK_AFFINITY = 0, 1, 2
"""The ``pick`` column: the request rode an open connection, a picker chose afresh, or session affinity chose."""
PICK_NAMES = ("reused", "fresh", "affinity")
"""The ``pick`` codes' names, by code (``RunResult.to_frame``)."""

COLUMNS: dict[str, np.dtype] = {
    "stream": np.dtype(np.int32),
    "request": np.dtype(np.int32),
    "attempt": np.dtype(np.int8),
    "version": np.dtype(np.int16),
    "client": np.dtype(np.int32),
    "client_node": np.dtype(np.int16),
    "service": np.dtype(np.int16),
    "entry_node": np.dtype(np.int16),
    "endpoint": np.dtype(np.int32),
    "endpoint_node": np.dtype(np.int16),
    "hops": np.dtype(np.int8),
    "pick": np.dtype(np.int8),
    "source_preserved": np.dtype(np.int8),
    "t_sent": np.dtype(np.float64),
    "t_arrived": np.dtype(np.float64),
    "t_started": np.dtype(np.float64),
    "t_finished": np.dtype(np.float64),
    "t_returned": np.dtype(np.float64),
    "outcome": np.dtype(np.int8),
    "reason": np.dtype(np.int8),
}
"""One row per request. Indices point into RunResult's name tables; -1 means none (a request never routed).

``client`` indexes ``client_names`` (pods first, then external clients, whose ``client_node`` is -1);
``entry_node`` is the node whose proxy decided (the client's node for pod traffic); ``hops`` counts links one
way; ``pick`` says how the endpoint was chosen (0 rode an open connection, 1 the picker, 2 session affinity);
``source_preserved`` whether the backend sees the client's own address (1) or a SNAT address (0).
``request`` is the row of a request's first attempt and ``attempt`` counts retries (0 for the first);
``version`` is the control-plane version the entry node's proxy routed with.

Times are seconds of simulated time: sent by the client, arrived at the backend pod, started service, finished
(when the pod was done with it: served, refused because its queue was full, or killed), returned to the client
(for a failure: when the client learned of it). NaN where a step never happened.
"""

FLAGS: dict[str, tuple[int, int]] = {"pick": (0, 2), "source_preserved": (2, 1), "reason": (3, 4)}
"""Columns kept packed in one stored byte, ``flags``: per column its lowest bit and its width in bits (a pick
code below 4, a flag, a DropReason below 16): one byte a request where three took three."""
assert max(PICK_REUSED, PICK_FRESH, PICK_AFFINITY) < 1 << FLAGS["pick"][1]
assert max(DropReason) < 1 << FLAGS["reason"][1]

DERIVED: dict[str, str] = {
    "client": "stream",
    "client_node": "stream",
    "service": "stream",
    "endpoint_node": "endpoint",
    **dict.fromkeys(FLAGS, "flags"),
}
"""Columns that follow from another (its source here) and are not stored: a stream is one client's requests to one
Service, so its client, the client's node and the Service are the stream's; an endpoint is one pod, on one node;
the ``FLAGS`` are bits of the stored ``flags`` byte. ``Columns`` computes them on access from a small table per
stream, per pod or per byte value."""

STORED: dict[str, np.dtype] = {name: dtype for name, dtype in COLUMNS.items() if name not in DERIVED} | {
    "flags": np.dtype(np.uint8)
}
"""The columns a run keeps, per request: ``COLUMNS`` less ``DERIVED``, plus the ``flags`` byte (60 bytes a
request)."""


def pack_flags(cols: dict[str, np.ndarray]) -> np.ndarray:
    """The ``flags`` byte per request from its ``FLAGS`` columns, which are taken out of ``cols``."""
    flags = np.zeros(len(cols["pick"]), dtype=STORED["flags"])
    for name, (low, _) in FLAGS.items():
        flags |= cols.pop(name).astype(np.uint8) << np.uint8(low)
    return flags


def flag_lookups() -> dict[str, np.ndarray]:
    """Per ``FLAGS`` column, its value for each ``flags`` byte (the ``DERIVED`` lookups of the packed columns)."""
    byte = np.arange(256)
    return {name: ((byte >> low) & ((1 << bits) - 1)).astype(COLUMNS[name]) for name, (low, bits) in FLAGS.items()}


class Columns(Mapping[str, np.ndarray]):
    """A run's record columns, all of ``COLUMNS`` in that order, read like a dict: the ``STORED`` ones held, the
    ``DERIVED`` ones computed on each access (not kept) from their source column and a lookup table of their
    dtype (``lookups[name][source value]``; the endpoint table ends with -1, the node of endpoint -1: none).

    >>> c = Columns({n: np.zeros(2, d) for n, d in STORED.items()} | {"endpoint": np.array([1, -1], np.int32)},
    ...             {"client": np.array([4], np.int32), "client_node": np.array([0], np.int16),
    ...              "service": np.array([7], np.int16), "endpoint_node": np.array([3, 5, -1], np.int16)}
    ...             | flag_lookups())
    >>> c["service"].tolist(), c["endpoint_node"].tolist(), c["endpoint_node"].dtype.name
    ([7, 7], [5, -1], 'int16')
    """

    __slots__ = ("_lookups", "_stored")

    def __init__(self, stored: Mapping[str, np.ndarray], lookups: Mapping[str, np.ndarray]) -> None:
        if set(stored) != set(STORED) or set(lookups) != set(DERIVED):
            raise ValueError(f"columns {sorted(stored)} and lookups {sorted(lookups)}: expected STORED and DERIVED")
        for name, column, dtype in (
            *((n, c, STORED[n]) for n, c in stored.items()),
            *((n, c, COLUMNS[n]) for n, c in lookups.items()),
        ):
            if column.dtype != dtype:
                raise ValueError(f"column {name} is {column.dtype}, expected {dtype}")
        self._stored = {name: stored[name] for name in STORED}
        self._lookups = dict(lookups)

    def __getitem__(self, name: str) -> np.ndarray:
        column = self._stored.get(name)
        if column is not None:
            return column
        return self._lookups[name][self._stored[DERIVED[name]]]  # a KeyError names an unknown column

    def at(self, name: str, rows: np.ndarray) -> np.ndarray:
        """Column ``name`` at ``rows`` (indices or a mask): a derived one looked up from its source there, without
        computing it over every row."""
        column = self._stored.get(name)
        if column is not None:
            return column[rows]
        return self._lookups[name][self._stored[DERIVED[name]][rows]]

    def take(self, rows: np.ndarray, names: Iterable[str] = COLUMNS) -> dict[str, np.ndarray]:
        """Every column (or those ``names``) at ``rows`` (``at``), in ``COLUMNS`` order (or ``names``')."""
        return {name: self.at(name, rows) for name in names}

    def __iter__(self) -> Iterator[str]:
        return iter(COLUMNS)

    def __len__(self) -> int:
        return len(COLUMNS)

    def __contains__(self, name: object) -> bool:
        return name in COLUMNS

    def __repr__(self) -> str:
        return f"Columns({len(self._stored['t_sent'])} rows: {', '.join(COLUMNS)})"

    @property
    def stored(self) -> Mapping[str, np.ndarray]:
        """The columns held (``STORED``), by name."""
        return self._stored

    @property
    def lookups(self) -> Mapping[str, np.ndarray]:
        """Per derived column, its table indexed by the source column's value."""
        return self._lookups


@dataclass(frozen=True, eq=False)
class RunResult:
    """The records of one run, with the scenario and seed that made them and the simulated end time (s).

    ``seed`` is ``sim.rng.seed_record`` of the run's seed (an int, or a SeedSequence's entropy and spawn key):
    ``run(scenario, sim.rng.seed_from_record(result.seed))`` redoes the run exactly.
    """

    scenario: Scenario
    seed: SeedRecord
    columns: Columns
    """Every column of ``COLUMNS`` by name (``Columns``: the ``DERIVED`` ones computed when read)."""
    node_names: tuple[str, ...]
    pod_names: tuple[str, ...]
    service_names: tuple[str, ...]
    end_s: float
    client_names: tuple[str, ...] = ()
    monitors: dict[str, np.ndarray] = field(default_factory=dict)
    """Per pod (aligned with ``pod_names``), time averages since the warm-up: ``queue_mean``, ``busy_mean``,
    ``utilization`` (the busy fraction), ``in_system_mean``, and ``window_s`` (the averaging window in seconds);
    see ``monitors``."""
    engine: str = "events"
    """The way the run was made: ``events`` (the event path), ``solver`` (the event-free solver, exact: the event
    path's records) or ``fast`` (the solver's numpy way); see ``sim.facade``."""
    events_needed: str | None = None
    """Why the run needed events (``sim.solver.events_needed``), where ``sim.facade`` asked; None otherwise."""
    call_streams: tuple[Stream, ...] = ()
    """The call streams (``sim.plan.Plan.call_streams``): stream indices past the scenario's are these, in order:
    a calling pod (the client) and its callee Service; ``stream(k)`` reads either."""
    parent: np.ndarray | None = None
    """A call graph's spans: per row, the row of the request whose call it is (-1: a client's request); None in
    a run without calls. Every row is a span; ``trace()`` gives each one's root."""

    def stream(self, k: int) -> Stream:
        """The stream of records whose ``stream`` column is ``k``: the scenario's, or a call stream."""
        streams = self.scenario.streams
        return streams[k] if k < len(streams) else self.call_streams[k - len(streams)]

    def trace(self) -> np.ndarray:
        """Per row, the row of the client's request whose trace it belongs to (its trace id): the parents
        followed to the root (each row itself in a run without calls)."""
        rows = np.arange(len(self), dtype=np.int32)
        if self.parent is None:
            return rows
        root = np.where(self.parent >= 0, self.parent, rows)
        while True:
            up = root[root]
            if np.array_equal(up, root):
                return root
            root = up

    def __len__(self) -> int:
        return len(self.columns["t_sent"])

    @property
    def outcome(self) -> np.ndarray:
        """The Outcome code of each request."""
        return self.columns["outcome"]

    @property
    def latency_s(self) -> np.ndarray:
        """Seconds from send to return for every request (NaN while in flight)."""
        return self.columns["t_returned"] - self.columns["t_sent"]

    def counts(self) -> dict[str, int]:
        """Requests by outcome name, e.g. ``{"ok": 9990, "dropped": 0, "in_flight": 10}``."""
        codes = np.bincount(self.outcome, minlength=len(Outcome))
        return {o.name.lower(): int(codes[o]) for o in Outcome}

    def drops(self, mask: np.ndarray | None = None) -> dict[str, int]:
        """Dropped requests by DropReason label (only reasons that occurred), optionally within ``mask``."""
        reasons = self.columns["reason"] if mask is None else self.columns.at("reason", mask)
        codes = np.bincount(reasons, minlength=len(DropReason))
        return {r.label: int(codes[r]) for r in DropReason if r != DropReason.NONE and codes[r]}

    def to_frame(self) -> pd.DataFrame:
        """One row per request with names in place of codes: Service, client, nodes and pod (``endpoint``) by
        name, ``outcome`` (ok, dropped, timeout, in_flight), ``reason`` (a DropReason label: none, no_endpoints,
        ...), ``pick`` (reused, fresh, affinity); times in seconds, with ``latency_s`` (send to return). Names are
        pandas categoricals; a request never routed has no pod or endpoint node (NaN)."""
        import pandas as pd  # here: the engine and the CLI's tables need no pandas

        c = self.columns
        names = {
            "client": self.client_names,
            "client_node": self.node_names,
            "service": self.service_names,
            "entry_node": self.node_names,
            "endpoint": self.pod_names,
            "endpoint_node": self.node_names,
            "pick": PICK_NAMES,
            "outcome": tuple(o.name.lower() for o in Outcome),
            "reason": tuple(r.label for r in DropReason),
        }
        frame = {
            name: pd.Categorical.from_codes(c[name], categories=names[name]) if name in names else c[name]
            for name in COLUMNS
        }
        frame["source_preserved"] = c["source_preserved"].astype(bool)
        frame["latency_s"] = self.latency_s
        return pd.DataFrame(frame)

    def nbytes_per_request(self) -> float:
        """Memory the stored columns hold per request, in bytes (the derived ones are not held)."""
        return sum(c.itemsize for c in self.columns.stored.values()) if len(self) else 0.0


_CHUNK_ROWS = 1 << 17


def monitors(
    columns: Mapping[str, np.ndarray],
    capacities: list[int],
    warmup_s: float,
    end_s: float,
    processor_sharing: Sequence[bool] = (),
) -> dict[str, np.ndarray]:
    """Time averages per pod over [``warmup_s``, ``end_s``] seconds, from the records alone.

    A request is in its pod from ``t_arrived`` until ``t_finished`` (the end of the run if still there). With N(t)
    requests in a pod of c workers (CPUs): ``in_system_mean`` is the mean of N, ``busy_mean`` the mean of
    min(N, c) (workers or CPUs in use), ``utilization`` that over c (the busy fraction: rho for M/M/1, and for
    M/G/1-PS too), and ``queue_mean`` the mean of max(N - c, 0), the requests beyond the workers (waiting, at a
    FIFO pod; sharing the CPUs with more requests than CPUs, at a processor-sharing one). So busy + queue = in
    system for both disciplines.

    A FIFO request waits until ``t_started`` and then holds a worker, so its pod's averages are the sum of the
    requests' time inside the window in each state divided by the window. A processor-sharing request
    (``processor_sharing[i]`` true for its pod) is in service from arrival, sharing: min(N, c) is integrated
    over the step function N(t) of that pod's arrivals and departures. Both are exact, with no bookkeeping in the
    simulation loop.
    """
    n = len(capacities)
    window = end_s - warmup_s
    if window <= 0:
        nan = np.full(n, np.nan)
        return {"queue_mean": nan, "busy_mean": nan, "utilization": nan, "in_system_mean": nan, "window_s": nan}

    def inside(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Seconds of each [a, b] inside the window (in place on one temporary)."""
        t = np.minimum(b, end_s)
        t -= np.maximum(a, warmup_s)
        return np.maximum(t, 0.0, out=t)

    cap = np.asarray(capacities, dtype=float)
    ps = np.zeros(n, dtype=bool)
    ps[: len(processor_sharing)] = np.asarray(processor_sharing, dtype=bool)
    waiting, busy = np.zeros(n), np.zeros(n)
    shared: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # processor-sharing rows: pod, in, out
    for lo in range(0, len(columns["t_arrived"]), _CHUNK_ROWS):  # in chunks: a few MB of temporaries at most
        rows = slice(lo, lo + _CHUNK_ROWS)
        arrived, started, finished = columns["t_arrived"][rows], columns["t_started"][rows], columns["t_finished"][rows]
        entered = ~np.isnan(arrived)
        unfinished, unstarted = np.isnan(finished), np.isnan(started)
        left = np.where(unfinished, end_s, finished) if unfinished.any() else finished
        began = np.where(unstarted, left, started) if unstarted.any() else started
        pod = columns["endpoint"][rows]
        if not entered.all():  # requests that never reached a pod (endpoint -1) count nowhere
            pod, arrived, began, left = pod[entered], arrived[entered], began[entered], left[entered]
        waiting += np.bincount(pod, inside(arrived, began), minlength=n)
        busy += np.bincount(pod, inside(began, left), minlength=n)
        if ps.any():
            mine = ps[pod]
            shared.append((pod[mine], arrived[mine], left[mine]))
    in_system = (waiting + busy) / window
    busy /= window
    waiting /= window
    if shared:
        pod, arrived, left = (np.concatenate(parts) for parts in zip(*shared, strict=True))
        busy_ps = _shared_busy(pod, arrived, left, cap, warmup_s, end_s, n)
        busy[ps] = busy_ps[ps] / window
        waiting[ps] = in_system[ps] - busy[ps]
    return {
        "queue_mean": waiting,
        "busy_mean": busy,
        "utilization": busy / cap,
        "in_system_mean": in_system,
        "window_s": np.full(n, window),
    }


def _shared_busy(
    pod: np.ndarray, arrived: np.ndarray, left: np.ndarray, cap: np.ndarray, lo_s: float, hi_s: float, n: int
) -> np.ndarray:
    """Per pod, the integral over [lo_s, hi_s] of min(N(t), c) (CPU-seconds), N(t) the requests between their
    ``arrived`` and ``left`` times (s): a sweep over each pod's arrivals (+1) and departures (-1) in time order.

    Every arrival has its departure, so the running count returns to 0 at the end of each pod's events and one
    cumulative sum over all pods (sorted by pod, then time) is each pod's N(t)."""
    times = np.concatenate((np.minimum(arrived, left), left))
    pods = np.concatenate((pod, pod))
    order = np.lexsort((times, pods))
    times, pods = times[order], pods[order]
    count = np.cumsum(np.concatenate((np.ones(len(arrived)), -np.ones(len(left))))[order])
    span = np.clip(np.minimum(np.append(times[1:], hi_s), hi_s) - np.maximum(times, lo_s), 0.0, None)
    return np.bincount(pods, np.minimum(count, cap[pods]) * span, minlength=n)
