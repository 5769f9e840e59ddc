"""Jaeger's JSON traces, as its query API returns them (``/api/traces``, ``/api/traces/{id}``:
``{"data": [trace, ...]}``) and its UI downloads them; a bare trace ``{"traceID", "spans", "processes"}``, or an
array of them, is read too.

Times are integer microseconds. A span's service is its process's ``serviceName`` (``processes[processID]``, or
the span's own ``process``); its kind the ``span.kind`` tag, which many spans lack; its parent the first
``CHILD_OF`` reference in its trace, else the first ``FOLLOWS_FROM`` (how messaging consumers point at their
producer), else a ``parentSpanID`` field. Only these fields are read; the rest (logs, warnings, flags) are not.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sim.io.typed import Table, type_name
from sim.traces import Kind, Span

PEER_TAGS = ("peer.service", "db.system", "db.type")
"""The tags that name a client span's callee when it has no span of its own, in order of preference."""


def is_jaeger(doc: object) -> bool:
    """Whether a parsed JSON document is Jaeger's: ``{"data": [...]}`` of traces, a trace, or an array of them."""
    if isinstance(doc, list):
        return bool(doc) and all(isinstance(t, dict) and "spans" in t for t in doc)
    if not isinstance(doc, dict):
        return False
    data = doc.get("data")
    return (isinstance(data, list) and all(isinstance(t, dict) and "spans" in t for t in data)) or (
        "traceID" in doc and "spans" in doc
    )


def jaeger_spans(path: Path, doc: Any) -> list[Span]:
    """Every span of a Jaeger document; a missing or mistyped field, or a ``processID`` with no process, is a
    SpecError naming it."""
    if isinstance(doc, list):
        traces = [(f"[{i}]", t) for i, t in enumerate(doc)]
    elif "data" in doc:
        data = Table(path, "", doc).take("data", list)
        traces = [(f"data[{i}]", t) for i, t in enumerate(data)]
    else:
        traces = [("", doc)]
    spans: list[Span] = []
    for where, raw in traces:
        spans.extend(_trace(Table(path, where, raw)))
    return spans


def _trace(t: Table) -> list[Span]:
    trace_id = t.take("traceID", str)
    processes = t.take("processes", dict, {})
    out = []
    for s in t.tables("spans"):
        service = _service(s, processes)
        start_us = s.integer("startTime", minimum=0)
        duration_us = s.integer("duration", minimum=0)
        tags = _tags(s)
        kind = str(tags.get("span.kind", "")).lower()
        out.append(
            Span(
                trace_id=s.take("traceID", str, trace_id).lower(),
                span_id=s.take("spanID", str).lower(),
                parent_id=_parent(s, trace_id),
                service=service,
                kind=Kind(kind) if kind in {k.value for k in Kind} else None,
                start_ns=start_us * 1000,
                end_ns=(start_us + duration_us) * 1000,
                peer=next((str(tags[k]) for k in PEER_TAGS if tags.get(k)), None),
                where=str(t.path),
            )
        )
    return out


def _service(s: Table, processes: dict[str, Any]) -> str:
    """The span's process's serviceName: its own ``process``, else ``processes[processID]``."""
    if "process" in s.data:
        process = Table(s.path, s.field("process"), s.take("process", dict))
    else:
        pid = s.take("processID", str)
        if pid not in processes:
            raise s.error("processID", f"broken reference: {pid!r} is not one of the trace's processes")
        process = Table(s.path, f"processes.{pid}", processes[pid])
    return str(process.take("serviceName", str))


def _tags(s: Table) -> dict[str, Any]:
    """The span's tags as key -> value (the first of a key wins)."""
    out: dict[str, Any] = {}
    for i, tag in enumerate(s.take("tags", list, []) or []):
        if not isinstance(tag, dict) or not isinstance(tag.get("key"), str):
            raise s.error(f"tags[{i}]", f"must be a table with a string key, got {type_name(tag)}")
        out.setdefault(tag["key"], tag.get("value"))
    return out


def _parent(s: Table, trace_id: str) -> str | None:
    """The first CHILD_OF reference within the trace, else the first FOLLOWS_FROM, else ``parentSpanID``."""
    refs = s.take("references", list, []) or []
    found: dict[str, str] = {}
    for i, ref in enumerate(refs):
        r = Table(s.path, s.field(f"references[{i}]"), ref)
        kind = r.take("refType", str, "CHILD_OF")
        span_id = r.take("spanID", str)
        if r.take("traceID", str, trace_id).lower() == trace_id.lower():
            found.setdefault(kind.upper(), span_id.lower())
    parent = found.get("CHILD_OF") or found.get("FOLLOWS_FROM") or s.take("parentSpanID", str, "").lower()
    return parent if parent and parent.strip("0") else None
