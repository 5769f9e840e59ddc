"""OpenTelemetry traces as OTLP JSON: ``{"resourceSpans": [...]}`` as the collector's file exporter writes it (one
such object a line, JSON Lines) and OTLP/HTTP carries it; Jaeger's v3 API wraps it as ``{"result": {...}}``.

A span's service is its resource's ``service.name`` (``unknown_service`` without one, the SDKs' default). Ids are
hex, as the OTLP JSON encoding says, or base64, as the generic protobuf JSON mapping writes bytes and some
exporters do; either is read, to lower-case hex. Kinds are numbers (``2``) or enum names (``SPAN_KIND_SERVER``);
0 (unspecified) is no kind. Times are nanoseconds, as strings (int64 in JSON) or numbers. Spans are read under
``scopeSpans`` or, from older exporters, ``instrumentationLibrarySpans``.
"""

from __future__ import annotations

import base64
import binascii
import re
from pathlib import Path
from typing import Any

from sim.io.typed import INT_MAX, Table
from sim.traces import Kind, Span

KINDS = {1: Kind.INTERNAL, 2: Kind.SERVER, 3: Kind.CLIENT, 4: Kind.PRODUCER, 5: Kind.CONSUMER}
"""OTLP's ``Span.SpanKind`` numbers (``opentelemetry/proto/trace/v1/trace.proto``); 0 is unspecified."""
PEER_ATTRIBUTES = ("peer.service", "db.system", "db.system.name")
"""The attributes that name a client span's callee when it has no span of its own, in order of preference."""
UNKNOWN_SERVICE = "unknown_service"
_HEX = re.compile(r"^[0-9a-fA-F]*$")


def is_otlp(doc: object) -> bool:
    """Whether a parsed JSON document is OTLP: ``{"resourceSpans": ...}``, Jaeger v3's ``{"result": {...}}``, or
    a list of them (JSON Lines)."""
    if isinstance(doc, list):
        return bool(doc) and all(is_otlp(d) for d in doc)
    if not isinstance(doc, dict):
        return False
    return "resourceSpans" in doc or (isinstance(doc.get("result"), dict) and "resourceSpans" in doc["result"])


def otlp_spans(path: Path, doc: Any) -> list[Span]:
    """Every span of an OTLP document; a missing or mistyped field is a SpecError naming it."""
    docs = doc if isinstance(doc, list) else [doc]
    spans: list[Span] = []
    for n, d in enumerate(docs):
        where = f"line {n + 1}: " if isinstance(doc, list) else ""
        top = Table(path, where.rstrip(": "), d)
        if "result" in d:
            top = Table(path, f"{where}result", top.take("result", dict))
        for resource in top.tables("resourceSpans"):
            spans.extend(_resource(resource))
    return spans


def _resource(r: Table) -> list[Span]:
    res = Table(r.path, r.field("resource"), r.take("resource", dict, {}))
    service = str(_attributes(res).get("service.name") or UNKNOWN_SERVICE)
    key = "scopeSpans" if "scopeSpans" in r.data else "instrumentationLibrarySpans"
    out = []
    for scope in r.tables(key):
        for s in scope.tables("spans"):
            out.append(_span(s, service))
    return out


def _span(s: Table, service: str) -> Span:
    start = _nanos(s, "startTimeUnixNano")
    end = _nanos(s, "endTimeUnixNano")
    if end < start:
        raise s.error("endTimeUnixNano", f"ends before the span starts ({end} < {start})")
    attributes = _attributes(s)
    parent = _id(s, "parentSpanId", 8, optional=True)
    return Span(
        trace_id=_id(s, "traceId", 16),
        span_id=_id(s, "spanId", 8),
        parent_id=parent or None,
        service=service,
        kind=_kind(s),
        start_ns=start,
        end_ns=end,
        peer=next((str(attributes[k]) for k in PEER_ATTRIBUTES if attributes.get(k)), None),
        where=str(s.path),
    )


def _attributes(t: Table) -> dict[str, Any]:
    """``attributes`` as key -> value (``{"stringValue": ...}`` and the other ``AnyValue`` kinds unwrapped)."""
    out: dict[str, Any] = {}
    for a in t.tables("attributes"):
        key = a.take("key", str)
        value = a.take("value", dict, {})
        out.setdefault(key, next(iter(value.values()), None) if value else None)
    return out


def _id(t: Table, key: str, size: int, *, optional: bool = False) -> str:
    """A trace or span id of ``size`` bytes, given as hex or base64, as lower-case hex; "" if optional and
    absent, empty or all zeros."""
    text = t.take(key, str, "") if optional else t.take(key, str)
    if optional and not text.strip("0="):
        return ""
    if len(text) == 2 * size and _HEX.match(text):
        return text.lower()
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != size:
        raise t.error(key, f"must be {2 * size} hex digits or {size} bytes in base64, got {text[:48]!r}")
    return raw.hex()


def _kind(t: Table) -> Kind | None:
    """A span kind given as a number or an enum name (``SPAN_KIND_SERVER``, or ``SERVER``); 0: none."""
    value = t.take("kind", (int, str), 0)
    if isinstance(value, str):
        name = value.upper().removeprefix("SPAN_KIND_")
        if name in ("UNSPECIFIED", ""):
            return None
        try:
            return Kind(name.lower())
        except ValueError:
            raise t.error("kind", f"unknown span kind {value!r}") from None
    if value == 0:
        return None
    if value not in KINDS:
        raise t.error("kind", f"unknown span kind {value}; OTLP's are 0 to 5")
    return KINDS[value]


def _nanos(t: Table, key: str) -> int:
    """Nanoseconds since the epoch, a decimal string or an integer, in 0 .. 2**63 - 1."""
    value = t.take(key, (str, int))
    if isinstance(value, str):
        if not value.isdigit() or len(value) > 19:
            raise t.error(key, f"must be nanoseconds as a decimal integer, got {value[:40]!r}")
        value = int(value)
    if not 0 <= value <= INT_MAX:
        raise t.error(key, f"must be nanoseconds in 0 .. {INT_MAX}, got {value}")
    return value
