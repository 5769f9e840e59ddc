"""Call graphs from traces: which service calls which, how many times per request, in what order, and each
service's own work (self time), derived from spans as tracing backends export them.

Pure: the readers (``sim.io.jaeger``, ``sim.io.otlp``) give Spans; ``derive`` gives the call graph as the scenario
contract's own objects (``sim.callgraph``: stages of ``Call`` and ``Parallel``, ``count``, ``probability``,
``CallMode``), with what only traces know (requests, self times, notes) beside it in ``Traced``. Every rule
that reads a real export one way rather than another is in ``docs/traces.md``:

- a *request* is a server or consumer span, or a span whose parent is absent from the export or in another
  service (so a database or cache that has only client spans of its own is still a callee);
- a request's *calls* are the spans of its service under it (not crossing into another request) that leave the
  service: client and producer spans, spans with a child in another service, and client spans that name a peer
  (``peer.service``, ``db.system``) with no span of its own, which makes that peer a service;
- its *self time* is its duration minus the union of its calls' spans, each clipped to the request, so parallel
  calls count once and a child that starts before its parent (clock skew) is cut at the parent's start;
- calls that overlap in time form one ``parallel`` stage; calls one after another are stages in order.
"""

from __future__ import annotations

import enum
import math
import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from sim.callgraph import Call, CallGraph, CallMode, CallStage, Parallel, ServiceCalls, members
from sim.errors import SpecError


class Kind(enum.Enum):
    """A span's kind, as OpenTelemetry names them (Jaeger's ``span.kind`` tag says the same in lower case)."""

    SERVER = "server"
    CLIENT = "client"
    PRODUCER = "producer"
    CONSUMER = "consumer"
    INTERNAL = "internal"


@dataclass(frozen=True)
class Span:
    """One span as an export gives it; times in integer nanoseconds since the epoch (exact, as exported)."""

    trace_id: str
    span_id: str
    parent_id: str | None
    """The parent's span id, or None for a root (the parent may still be absent from the export)."""
    service: str
    kind: Kind | None
    """None where the export gives no kind (Jaeger spans without a ``span.kind`` tag; OTLP's UNSPECIFIED)."""
    start_ns: int
    end_ns: int
    peer: str | None = None
    """The service a client span names for its callee (``peer.service``, else ``db.system``/``db.type``)."""
    where: str = ""
    """The file and field it was read from, for messages."""


@dataclass(frozen=True)
class TracedService:
    """What only traces say of a service: how many requests it served, each one's self time (s), and the mean
    calls per request it made to each callee (all calls, over all its requests), as seen."""

    requests: int
    self_times_s: tuple[float, ...]
    calls_per_request: Mapping[str, float] = field(default_factory=dict, hash=False, compare=False)

    @property
    def median_self_s(self) -> float:
        """The median self time (s)."""
        return statistics.median(self.self_times_s)


@dataclass(frozen=True)
class Traced:
    """What the spans show: the call graph in the scenario contract's terms, what only traces know of each traced
    service (by name, from where requests come in through their calls), the traces and spans read, and notes."""

    graph: CallGraph
    services: Mapping[str, TracedService]
    traces: int
    spans: int
    notes: tuple[str, ...] = ()

    def service(self, name: str) -> TracedService:
        """What the traces say of the service ``name`` (KeyError if untraced)."""
        return self.services[name]


@dataclass(frozen=True)
class _Seen:
    """One call as a request made it: callee, the interval it covers (ns), whether it is asynchronous."""

    callee: str
    start_ns: int
    end_ns: int
    is_async: bool


@dataclass
class _Tally:
    """What one service's requests showed, before they are summed up."""

    self_ns: list[int] = field(default_factory=list)
    shapes: list[tuple[tuple[str, tuple[tuple[str, int], ...]], ...]] = field(default_factory=list)
    calls: Counter[str] = field(default_factory=Counter)
    requests_calling: Counter[str] = field(default_factory=Counter)
    async_calls: int = 0
    widest: dict[str, tuple[int, int]] = field(default_factory=dict)
    """Per parallel callee set: (calls, most at once), for the worker-pool note."""


def derive(spans: Sequence[Span]) -> Traced:
    """The call graph the spans show; a cycle of parents, or of calls between services, is a SpecError."""
    traces, notes = _by_trace(spans)
    tallies: dict[str, _Tally] = {}
    unnamed: Counter[str] = Counter()
    for trace in traces.values():
        children = _children(trace)
        for span in trace.values():
            if _is_request(span, trace):
                _tally(span, trace, children, tallies, unnamed)
    models = {name: _model(name, t, notes) for name, t in tallies.items()}
    notes += [
        f"{n} client span{'s' if n > 1 else ''} of {svc} name{'' if n > 1 else 's'} no callee (no child span, no "
        "peer.service or db.system): kept in its own time"
        for svc, n in unnamed.items()
    ]
    order = _in_call_order(list(models), CallGraph({name: calls for name, (calls, _) in models.items()}))
    graph = CallGraph({name: models[name][0] for name in order if models[name][0].stages})
    cycle = graph.find_cycle()
    if cycle is not None:
        where = spans[0].where if spans else ""
        raise SpecError(where, "", f"the traced calls form a cycle {' -> '.join(cycle)}: a call graph has none")
    seen = {name: models[name][1] for name in order}
    return Traced(graph, seen, len(traces), sum(len(t) for t in traces.values()), tuple(notes))


def _by_trace(spans: Iterable[Span]) -> tuple[dict[str, dict[str, Span]], list[str]]:
    """Spans by trace and span id; an exact duplicate (exports repeat spans) is dropped with a note, a span id used
    twice for different spans is a SpecError; a cycle of parents is one too."""
    traces: dict[str, dict[str, Span]] = defaultdict(dict)
    duplicates = 0
    for s in spans:
        seen = traces[s.trace_id].get(s.span_id)
        if seen is None:
            traces[s.trace_id][s.span_id] = s
        elif _same(seen, s):
            duplicates += 1
        else:
            raise SpecError(s.where, "", f"span id {s.span_id} is used twice in trace {s.trace_id} ({seen.where})")
    for trace_id, trace in traces.items():
        _refuse_parent_cycle(trace_id, trace)
    notes = [f"{duplicates} duplicate span{'s' if duplicates > 1 else ''} dropped (same trace, id and times)"]
    return dict(traces), notes if duplicates else []


def _same(a: Span, b: Span) -> bool:
    """Whether two spans are one span exported twice (equal but for where they were read)."""
    return replace(a, where=b.where) == b


def _refuse_parent_cycle(trace_id: str, trace: Mapping[str, Span]) -> None:
    """A SpecError naming the spans if following parents from any span comes back to it."""
    done: set[str] = set()
    for start in trace:
        path: list[str] = []
        on_path: set[str] = set()
        node: str | None = start
        while node is not None and node in trace and node not in done:
            if node in on_path:
                cycle = [*path[path.index(node) :], node]
                raise SpecError(
                    trace[node].where, "", f"trace {trace_id}: spans {' -> '.join(cycle)} are each other's parents"
                )
            path.append(node)
            on_path.add(node)
            node = trace[node].parent_id
        done.update(path)


def _children(trace: Mapping[str, Span]) -> dict[str, list[Span]]:
    """Each span's children present in the export, by start time."""
    out: dict[str, list[Span]] = defaultdict(list)
    for s in trace.values():
        if s.parent_id is not None and s.parent_id in trace:
            out[s.parent_id].append(s)
    for kids in out.values():
        kids.sort(key=lambda s: (s.start_ns, s.span_id))
    return out


def _is_request(span: Span, trace: Mapping[str, Span]) -> bool:
    """A server or consumer span, or one whose parent is absent or in another service."""
    if span.kind in (Kind.SERVER, Kind.CONSUMER):
        return True
    parent = trace.get(span.parent_id) if span.parent_id is not None else None
    return parent is None or parent.service != span.service


def _tally(
    request: Span,
    trace: Mapping[str, Span],
    children: Mapping[str, list[Span]],
    tallies: dict[str, _Tally],
    unnamed: Counter[str],
) -> None:
    """Add one request to its service's tally (and a named peer's request to the peer's)."""
    calls: list[_Seen] = []
    stack = [request]
    while stack:
        span = stack.pop()
        for child in children.get(span.span_id, []):
            if _is_request(child, trace):
                calls.append(_Seen(child.service, child.start_ns, child.end_ns, child.kind is Kind.CONSUMER))
            elif _is_call(child, children, trace):
                leaving = _leaving(child, children, trace, tallies)
                calls.extend(leaving)
                if not leaving:
                    unnamed[child.service] += 1
            else:
                stack.append(child)
    tally = tallies.setdefault(request.service, _Tally())
    tally.self_ns.append(self_time_ns(request.start_ns, request.end_ns, [(c.start_ns, c.end_ns) for c in calls]))
    shape = _shape(calls, tally.widest)
    tally.shapes.append(shape)
    counts = Counter(c.callee for c in calls)
    tally.calls.update(counts)
    tally.requests_calling.update(counts.keys())
    tally.async_calls += sum(c.is_async for c in calls)


def _is_call(span: Span, children: Mapping[str, list[Span]], trace: Mapping[str, Span]) -> bool:
    """A span of the request's service that leaves it: client or producer, or with a child that is a request."""
    if span.kind in (Kind.CLIENT, Kind.PRODUCER):
        return True
    return any(_is_request(c, trace) for c in children.get(span.span_id, []))


def _leaving(
    span: Span, children: Mapping[str, list[Span]], trace: Mapping[str, Span], tallies: dict[str, _Tally]
) -> list[_Seen]:
    """The calls a call span makes: one per child request (in another service), else one to the peer it names
    (which then counts as a request of that peer in ``tallies``, its self time the span's duration)."""
    is_async = span.kind is Kind.PRODUCER
    targets = [c for c in children.get(span.span_id, []) if _is_request(c, trace)]
    if targets:
        return [_Seen(t.service, span.start_ns, span.end_ns, is_async or t.kind is Kind.CONSUMER) for t in targets]
    if span.peer is None or span.peer == span.service:
        return []
    peer = tallies.setdefault(span.peer, _Tally())
    peer.self_ns.append(span.end_ns - span.start_ns)
    peer.shapes.append(())
    return [_Seen(span.peer, span.start_ns, span.end_ns, is_async)]


def self_time_ns(start_ns: int, end_ns: int, calls: Iterable[tuple[int, int]]) -> int:
    """A request's duration minus the union of its calls' intervals, each clipped to the request (ns).

    >>> self_time_ns(0, 100, [(10, 30), (20, 40), (90, 120), (-5, 5)])
    55
    """
    clipped = sorted((max(a, start_ns), min(b, end_ns)) for a, b in calls)
    covered, reach = 0, start_ns
    for a, b in clipped:
        if b <= a:
            continue
        a = max(a, reach)
        if b > a:
            covered += b - a
            reach = b
    return max(end_ns - start_ns - covered, 0)


def _shape(
    calls: Sequence[_Seen], widest: dict[str, tuple[int, int]]
) -> tuple[tuple[str, tuple[tuple[str, int], ...]], ...]:
    """A request's stages: calls that overlap in time grouped (``"par"``), runs of single calls to one callee
    merged (``"seq"``), each with its (callee, count) pairs."""
    groups: list[list[_Seen]] = []
    reach = None
    for c in sorted(calls, key=lambda c: (c.start_ns, c.end_ns, c.callee)):
        if groups and reach is not None and c.start_ns < reach:
            groups[-1].append(c)
            reach = max(reach, c.end_ns)
        else:
            groups.append([c])
            reach = c.end_ns
    out: list[tuple[str, tuple[tuple[str, int], ...]]] = []
    for g in groups:
        if len(g) == 1:
            callee = g[0].callee
            if out and out[-1][0] == "seq" and out[-1][1][0][0] == callee:
                out[-1] = ("seq", ((callee, out[-1][1][0][1] + 1),))
            else:
                out.append(("seq", ((callee, 1),)))
            continue
        counts = tuple(sorted(Counter(c.callee for c in g).items()))
        out.append(("par", counts))
        key = ", ".join(name for name, _ in counts)
        calls_before, most = widest.get(key, (0, 0))
        widest[key] = (max(calls_before, len(g)), max(most, _most_at_once(g)))
    return tuple(out)


def _most_at_once(calls: Sequence[_Seen]) -> int:
    """The most calls in flight at one instant."""
    edges = sorted([(c.start_ns, 1) for c in calls] + [(c.end_ns, -1) for c in calls])
    most = now = 0
    for _, step in edges:
        now += step
        most = max(most, now)
    return most


def _model(name: str, t: _Tally, notes: list[str]) -> tuple[ServiceCalls, TracedService]:
    """One service's model: the stage shape most of its requests have (the first met on a tie), each count the
    median over those requests (half rounded up), each callee's probability the share of all requests that
    call it; callees outside that shape follow as stages of their own."""
    n = len(t.self_ns)
    signature = [tuple((kind, tuple(c for c, _ in pairs)) for kind, pairs in shape) for shape in t.shapes]
    common = Counter(signature).most_common(1)[0][0] if signature else ()
    alike = [shape for shape, sig in zip(t.shapes, signature, strict=True) if sig == common]
    stages: list[CallStage] = []
    for i, (kind, names) in enumerate(common):
        calls = tuple(
            Call(c, _median_count([dict(shape[i][1])[c] for shape in alike]), _share(t.requests_calling[c], n))
            for c in names
        )
        stages.append(Parallel(calls) if kind == "par" else calls[0])
    placed = {c for _, names in common for c in names}
    for callee in t.calls:
        if callee not in placed:
            calling = t.requests_calling[callee]
            stages.append(Call(callee, max(1, _round(t.calls[callee] / calling)), _share(calling, n)))
    total = sum(t.calls.values())
    mode = CallMode.ASYNC if total and t.async_calls * 2 > total else CallMode.SYNC
    if 0 < t.async_calls < total:
        notes.append(
            f"{name}: {t.async_calls} of {total} calls asynchronous (producer/consumer): call_mode {mode.value}"
        )
    for key, (calls_seen, most) in t.widest.items():
        if most < calls_seen:
            notes.append(
                f"{name}: {calls_seen} overlapping calls to {key} ran at most {most} at a time (a worker pool?); "
                "written as one parallel stage"
            )
    seen = TracedService(n, tuple(ns / 1e9 for ns in t.self_ns), {c: k / n for c, k in t.calls.items()})
    return ServiceCalls(mode, tuple(stages)), seen


def _in_call_order(names: Sequence[str], graph: CallGraph) -> list[str]:
    """The services from each entry (a service no one calls, in the order met) through its calls, breadth first,
    so a graph reads from where requests come in; services only on a cycle follow in the order met."""
    called = {callee for _, callee in graph.edges()}
    order = [name for name in names if name not in called]
    for name in order:
        order += [c for c in graph.callees(name) if c not in order]
    order += [name for name in names if name not in order]
    return order


def _round(x: float) -> int:
    """Half rounded up: 2.5 -> 3."""
    return math.floor(x + 0.5)


def _median_count(counts: Sequence[int]) -> int:
    return max(1, _round(statistics.median(counts)))


def _share(k: int, n: int) -> float:
    """``k / n`` to 4 significant digits (a probability as the scenario writes it; never rounded to 0)."""
    return float(f"{k / n:.4g}")


def describe(traced: Traced) -> list[str]:
    """The graph as lines a user checks against a tracing UI: each service's requests and median self time,
    then each ``caller -> callee`` with its mean calls per request."""
    lines = [
        f"traced call graph ({traced.traces} trace{'s' if traced.traces != 1 else ''}, {traced.spans} spans):",
    ]
    for name, s in traced.services.items():
        calls = traced.graph.of(name)
        mode = ", async" if calls.mode is CallMode.ASYNC else ""
        lines.append(
            f"  {name}: {s.requests} request{'s' if s.requests != 1 else ''}, "
            f"self time median {s.median_self_s * 1e3:.3f} ms{mode}"
        )
        shown: set[str] = set()
        for stage in calls.stages:
            how = ", in parallel" if isinstance(stage, Parallel) else ""
            for c in members(stage):
                if c.service in shown:
                    continue
                shown.add(c.service)
                lines.append(f"    {name} -> {c.service}  {s.calls_per_request[c.service]:g} per request{how}")
    return lines
