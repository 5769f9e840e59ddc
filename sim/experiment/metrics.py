"""The per-Service metrics of a run, typed: ``ServiceSummary`` and the parts it holds, each with its JSON.

``sim.experiment.analysis`` computes them; ``to_json`` is what ``sim run --json``, a sweep record's
``metrics.services.NAME`` and a ``sim run --out`` document hold, and ``from_json`` reads them back (NaN, written
as null, back as NaN) for the tables (``sim.experiment.results``, ``sim.experiment.tables``), the figures
(``sim.plots``), the report and the CLI, which read attributes, never string keys. A new metric is one field
here and one function computing it in ``sim.experiment.analysis``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import MISSING, dataclass, field, fields
from typing import Any, TypeVar, cast

import numpy as np

from sim.stats import ChiSquare

_MISSING = object()
_CHI_SQUARE_JSON = ("statistic", "pvalue", "dof", "n", "cohens_w", "method")
"""The ChiSquare fields the JSON holds (``min_expected`` and the per-group tests are not written)."""


def _number(value: float | None) -> float:
    """A JSON number, null (NaN as written to a file) as NaN."""
    return math.nan if value is None else float(value)


def _meta(
    path: str | object | None = _MISSING, read: Callable[[Any], Any] | None = None, optional: bool = False
) -> dict[str, Any]:
    """A field's place in its JSON: a dotted path (``chi_square.verdict``; default: its name), or None: not
    written; ``read``: how its JSON value becomes the field's (default: as it is, a ``float`` field's null as
    NaN); ``optional``: left out of the JSON where None."""
    out: dict[str, Any] = {"read": read, "optional": optional}
    if path is not _MISSING:
        out["json"] = path
    return out


def _to_json(value: Any) -> Any:
    """A field's value as JSON: a ChiSquare's written fields, a part's ``to_json``, a list or dict of them."""
    if isinstance(value, ChiSquare):
        return {k: getattr(value, k) for k in _CHI_SQUARE_JSON}
    if hasattr(value, "to_json"):
        return value.to_json()
    if isinstance(value, list):
        return [_to_json(v) for v in value]
    if isinstance(value, dict):
        return {k: _to_json(v) for k, v in value.items()}
    return value


def _read(f: Any, value: Any) -> Any:
    """A field's value from its JSON (see ``_meta``)."""
    read = f.metadata.get("read")
    if read is not None:
        return read(value)
    return _number(value) if f.type == "float" else value


def _chi_square(value: Mapping[str, Any]) -> ChiSquare:
    """The test from its JSON: ``min_expected`` is not written (NaN), nor the per-group tests (none)."""
    return ChiSquare(
        _number(value["statistic"]),
        _number(value["pvalue"]),
        int(value["dof"]),
        int(value["n"]),
        _number(value["cohens_w"]),
        math.nan,
        value["method"],
    )


_Part = TypeVar("_Part", bound="_JsonPart")


class _JsonPart:
    """A part of the metrics whose JSON is an object with a key per field, in field order."""

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict: every field at its name."""
        return {f.name: _to_json(getattr(self, f.name)) for f in fields(cast(Any, self))}

    @classmethod
    def from_json(cls: type[_Part], data: Mapping[str, Any]) -> _Part:
        """The part back from its JSON (``to_json``'s, or a file's, where NaN is null)."""
        return cls(**{f.name: _read(f, data[f.name]) for f in fields(cast(Any, cls))})

    @classmethod
    def list_from_json(cls: type[_Part], data: list[Mapping[str, Any]]) -> list[_Part]:
        """A list of parts back from their JSON."""
        return [cls.from_json(item) for item in data]

    @classmethod
    def dict_from_json(cls: type[_Part], data: Mapping[str, Mapping[str, Any]]) -> dict[str, _Part]:
        """Parts by name (a pod's, a node's) back from their JSON."""
        return {name: cls.from_json(item) for name, item in data.items()}


@dataclass(frozen=True)
class Latency(_JsonPart):
    """Completed requests' latency (s): ``mean``, median ``p50`` and 99th percentile ``p99`` (NaN without any)."""

    mean: float
    p50: float
    p99: float

    @classmethod
    def of(cls, seconds: np.ndarray) -> Latency:
        """The mean, median and 99th percentile of latencies ``seconds`` (NaN without any)."""
        if not seconds.size:
            return cls(math.nan, math.nan, math.nan)
        return cls(float(seconds.mean()), float(np.percentile(seconds, 50)), float(np.percentile(seconds, 99)))


@dataclass(frozen=True)
class LatencyParts(_JsonPart):
    """Completed requests' mean seconds in each leg: trip out, queue wait, service, trip back (NaN without any)."""

    network_out: float
    queue_wait: float
    service: float
    network_back: float


@dataclass(frozen=True)
class Picks(_JsonPart):
    """Routed requests by how their endpoint was chosen: afresh, by session affinity, riding an open connection."""

    fresh: int
    affinity: int
    reused_connection: int


@dataclass(frozen=True)
class PodMonitors(_JsonPart):
    """A backend pod's time averages since the warm-up: utilisation (busy fraction, 0..1), mean queue length and
    mean number in system (requests)."""

    utilization: float
    queue_mean: float
    in_system_mean: float


@dataclass(frozen=True)
class Balance(_JsonPart):
    """How even a split was: fresh picks over expected picks per endpoint (1 is exact), their least and greatest,
    greatest over least, and their coefficient of variation weighted by expected picks (NaN without any)."""

    min_ratio: float
    max_ratio: float
    max_over_min: float
    cv: float


NO_BALANCE = Balance(math.nan, math.nan, math.nan, math.nan)
"""The balance of a split with no expected picks."""


@dataclass(frozen=True)
class NodeReplies(_JsonPart):
    """One node's replies against expected: completed requests it served, their share of the Service's completed
    requests (0..1), and the share of fresh picks the routing layer expects its pods to get (0..1)."""

    replies: int
    share: float
    expected_share: float


@dataclass(frozen=True)
class CriticalPath(_JsonPart):
    """Pages' mean latency (s) along their critical path, split into parts that add up to it: the pods' own work,
    the network legs, queueing, and calls that failed."""

    own_work: float
    network: float
    queueing: float
    failed_calls: float


@dataclass(frozen=True)
class GroupMember(_JsonPart):
    """Requests of one route: their stream (index), client, entry node and control-plane version."""

    stream: int
    client: str
    entry_node: str
    version: int


@dataclass(frozen=True)
class PickGroup(_JsonPart):
    """One group of equal expected shares: its routes, fresh picks and expected share per pod, and its test (no
    p-value, NaN, for an adaptive picker)."""

    members: list[GroupMember] = field(metadata=_meta(read=GroupMember.list_from_json))
    picked: dict[str, int]
    expected_share: dict[str, float]
    statistic: float
    dof: int
    n: int
    pvalue: float
    method: str


@dataclass(frozen=True)
class LatencyHistogram(_JsonPart):
    """Counts of latencies in log-spaced bins: bin i spans ``floor_s * 10**(i / bins_per_decade)`` (s) upward;
    ``counts`` are bins ``first`` onward (``sim.experiment.analysis.latency_histogram``)."""

    floor_s: float
    bins_per_decade: int
    first: int
    counts: list[int]


@dataclass(frozen=True)
class ServiceWindows(_JsonPart):
    """One Service's requests over time, one entry per window by send time (``sim.experiment.rundoc.windows``):
    requests sent, routed to each endpoint pod (``landed``), completed, failed per reason, and the completed
    ones' latency percentiles (``p50``, ``p90``, ``p99``; s, None where a window has none)."""

    sent: list[int]
    landed: dict[str, list[int]]
    completed: list[int]
    failed: dict[str, list[int]]
    latency_s: dict[str, list[float | None]]


@dataclass(frozen=True)
class CallPath(_JsonPart):
    """An entry Service's completed client requests along their call graph's critical path
    (``sim.experiment.callpaths``): how many, their end-to-end latency (``mean``, ``p50``, ``p99``; s), its mean
    split into ``own_work``, ``network``, ``queueing`` and ``failed_calls`` (s; they add up to the mean), the mean
    time the path spent in each callee Service's calls (s; nested calls overlap their callers), and the share of
    requests whose every hop was answered on the client's node, and in its zone (NaN without zone labels)."""

    requests: int
    latency_s: Latency = field(metadata=_meta(read=Latency.from_json))
    critical_path_s: CriticalPath = field(metadata=_meta(read=CriticalPath.from_json))
    wait_on_callee_s: dict[str, float]
    same_node_fraction: float
    same_zone_fraction: float


@dataclass(frozen=True)
class ServiceSummary:
    """What one Service did in one run: counts, spread over endpoints and nodes, the test and latency (s).

    ``to_json`` writes each field at its name, or where its ``json`` metadata says (``sim run --json``'s
    ``services.NAME``, a sweep record's ``metrics.services.NAME``); ``sim.experiment.results.TABLE_METRICS``
    names the ones the tidy table carries. A new metric is one field here and one function computing it in
    ``sim.experiment.analysis.summarize_service`` (and a ``Column`` line to tabulate it). The last three fields
    are a sweep record's and a run document's only (``run_metrics``, ``run_document``): None elsewhere, and then
    not written.
    """

    name: str = field(metadata=_meta(None))
    sent: int
    completed: int
    dropped: int
    in_flight: int
    violations: int
    """Routed requests that reached an endpoint their route did not allow (0 for a correct model)."""
    drops: dict[str, int]
    by_node: dict[str, int]
    by_endpoint: dict[str, int]
    routed_by_endpoint: dict[str, int]
    """Fresh picks per endpoint: what the chi-square tests."""
    expected_share: dict[str, float]
    chi_square: ChiSquare = field(metadata=_meta(read=_chi_square))
    """The test per group of equal expected shares, combined (``sim.stats.grouped_gof``); its p-value is NaN for
    an adaptive picker, whose picks are not fixed-share draws. In the JSON: statistic, pvalue, dof, n, cohens_w
    and method under ``chi_square``."""
    deterministic: bool = field(metadata=_meta("chi_square.deterministic_picker"))
    max_deviation: float = field(metadata=_meta("chi_square.max_deviation"))
    verdict: str = field(metadata=_meta("chi_square.verdict"))
    latency_s: Latency = field(metadata=_meta(read=Latency.from_json))
    cross_node_fraction: float
    cross_zone_fraction: float
    cross_node_by_entry_node: dict[str, float]
    """Per node where requests entered (the client's node for pods), the share served on another node."""
    hints: str
    failed_after_s: float
    """Mean seconds a failed request's client waited before it learned of the failure (0: at once)."""
    source_preserved_fraction: float
    picks: Picks = field(metadata=_meta(read=Picks.from_json))
    pickers: list[str]
    timed_out: int
    retries: int
    """Attempts after the first (each retry is its own record)."""
    latency_parts_s: LatencyParts = field(metadata=_meta(read=LatencyParts.from_json))
    pods: dict[str, PodMonitors] = field(metadata=_meta(read=PodMonitors.dict_from_json))
    """Per backend pod that got requests, its time averages (none without monitors)."""
    adaptive: bool = field(default=False, metadata=_meta("chi_square.adaptive_picker"))
    """True where a picker chooses by live load (power-of-two, least-connections): no p-value applies."""
    balance: Balance = field(default=NO_BALANCE, metadata=_meta("chi_square.balance", read=Balance.from_json))
    """Fresh picks over expected picks per endpoint (``Balance``)."""
    groups: list[PickGroup] = field(
        default_factory=list, metadata=_meta("chi_square.groups", read=PickGroup.list_from_json)
    )
    """Per group of equal expected shares: its routes, picks, shares and test."""
    replies_by_node: dict[str, NodeReplies] | None = field(
        default=None, metadata=_meta(read=NodeReplies.dict_from_json, optional=True)
    )
    """Per node that served a reply or holds an expected endpoint: its replies against expected (``NodeReplies``;
    None in a file written before it existed)."""
    by_client_node: dict[str, dict[str, int]] | None = field(default=None, metadata=_meta(optional=True))
    """Completed requests per entry node and serving node (``sim.experiment.analysis.locality``)."""
    latency_histogram: LatencyHistogram | None = field(
        default=None, metadata=_meta(read=LatencyHistogram.from_json, optional=True)
    )
    """Completed requests' latencies, binned."""
    windows: ServiceWindows | None = field(default=None, metadata=_meta(read=ServiceWindows.from_json, optional=True))
    """The run over time (a run document's only)."""
    call_path: CallPath | None = field(default=None, metadata=_meta(read=CallPath.from_json, optional=True))
    """An entry Service of a call graph: its pages along their critical path (None elsewhere, and not written)."""
    by_port: dict[str, dict[str, Any]] | None = field(default=None, metadata=_meta(optional=True))
    """Per Service port in use (name, else number): ``sent``, ``completed``, ``dropped`` and ``by_endpoint``
    (completed requests per pod); only where the requests use several ports (None, and not written, else)."""

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (the ``services.NAME`` object of ``sim run --json``): every field at its place."""
        out: dict[str, Any] = {}
        for f in fields(self):
            path = f.metadata.get("json", f.name)
            value = getattr(self, f.name)
            if path is None or (value is None and f.metadata.get("optional")):
                continue
            value = _to_json(value)
            *parents, leaf = path.split(".")
            place = out
            for part in parents:
                place = place.setdefault(part, {})
            if isinstance(value, dict) and isinstance(place.get(leaf), dict):
                place[leaf].update(value)
            else:
                place[leaf] = value
        return out

    @classmethod
    def from_json(cls, name: str, data: Mapping[str, Any]) -> ServiceSummary:
        """The typed summary back from its JSON (``to_json``'s, or as a file holds it, where NaN is null: a
        number field reads null as NaN). Fields with a default may be missing. The test's ``min_expected`` and
        per-group tests are not in the JSON: NaN and none (the groups' JSON is ``groups``)."""
        values: dict[str, Any] = {"name": name}
        for f in fields(cls):
            path = f.metadata.get("json", f.name)
            if path is None:
                continue
            value: Any = data
            for part in path.split("."):
                value = value.get(part, _MISSING) if isinstance(value, Mapping) else _MISSING
            if value is _MISSING:
                continue  # a field with a default (a file written before it existed), or the dataclass says
            values[f.name] = _read(f, value)
        return cls(**values)


def services_from_json(doc: Mapping[str, Any]) -> dict[str, ServiceSummary]:
    """The typed summaries of a run's JSON (``summarize``, ``run_metrics`` or ``run_document``: its
    ``services``), by Service name in the JSON's order."""
    return {name: ServiceSummary.from_json(name, raw) for name, raw in doc["services"].items()}


def record_services(record: Mapping[str, Any]) -> dict[str, ServiceSummary]:
    """The typed per-Service metrics of a sweep's run record (its ``metrics``); none for a run that failed."""
    return services_from_json(record["metrics"]) if record.get("status") == "ok" else {}


def json_problem(data: Any) -> tuple[str, str] | None:
    """Why ``data`` is not a ``ServiceSummary``'s JSON, as (the field's dotted path, the problem); None if it is.
    For the readers of files, so that a damaged one is the one bad-input error rather than a traceback."""
    if not isinstance(data, Mapping):
        return "", "must be an object"
    for f in fields(ServiceSummary):
        path = f.metadata.get("json", f.name)
        if path is None or f.default is not MISSING or f.default_factory is not MISSING:
            continue
        value: Any = data
        for part in path.split("."):
            value = value.get(part, _MISSING) if isinstance(value, Mapping) else _MISSING
        if value is _MISSING:
            return path, "is missing"
    try:
        ServiceSummary.from_json("", data)
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        return "", f"cannot be read as a Service's metrics: {type(e).__name__}: {e}"
    return None
