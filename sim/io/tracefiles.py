"""Trace exports among ``sim import``'s inputs, recognised by content as Kubernetes objects are: a file whose
first bytes hold a ``"resourceSpans"`` (OTLP) or ``"traceID"`` (Jaeger) key, or that opens as Jaeger's API
answers (``{"data": [``), is a trace, read whole (bounded),
parsed as JSON (or JSON Lines, as the collector's file exporter writes), and handed to the reader of its format
(``TRACE_FORMATS``, one line per format). Trace files are given by name, not inside a directory.
"""

from __future__ import annotations

import json
import re
import stat
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from sim.errors import SpecError
from sim.io.jaeger import is_jaeger, jaeger_spans
from sim.io.otlp import is_otlp, otlp_spans
from sim.io.typed import MAX_DEPTH, MAX_SAMPLE_BYTES, check_depth, read_bytes
from sim.traces import Span

MAX_TRACE_BYTES = MAX_SAMPLE_BYTES
"""The largest trace file read (bytes): some 150,000 spans as pretty-printed OTLP (HotROD's take 1.8 kB each)."""
PEEK_BYTES = 4096
"""How much of a file is looked at to tell a trace from Kubernetes objects."""
MARKERS = (b'"resourceSpans"', b'"traceID"')
"""Keys that open a trace export and no Kubernetes object."""
JAEGER_OPENING = re.compile(rb'^\s*\{\s*"data"\s*:\s*\[')
"""How Jaeger's API answer opens, even with no trace in it (a ConfigMap's ``data`` is a mapping, not an array)."""
TRACE_FORMATS: dict[str, tuple[Callable[[object], bool], Callable[[Path, Any], list[Span]]]] = {
    "Jaeger JSON": (is_jaeger, jaeger_spans),
    "OTLP JSON": (is_otlp, otlp_spans),
}
"""Format name -> (recognises a parsed document, reads its spans)."""


def is_trace_file(name: str) -> bool:
    """Whether ``name`` is a regular file whose first bytes hold a trace export's opening key."""
    if name == "-":
        return False
    path = Path(name)
    try:
        if not stat.S_ISREG(path.stat().st_mode):
            return False
        with path.open("rb") as f:
            head = f.read(PEEK_BYTES)
    except (OSError, ValueError):
        return False  # the Kubernetes reader says what is wrong with it
    return any(m in head for m in MARKERS) or JAEGER_OPENING.match(head) is not None


def split_traces(sources: Sequence[str]) -> tuple[list[str], list[str]]:
    """``sources`` as (trace files, the rest: Kubernetes objects), each in the order given."""
    traces = [s for s in sources if is_trace_file(s)]
    return traces, [s for s in sources if s not in traces]


def read_spans(files: Sequence[str]) -> list[Span]:
    """Every span of the trace files, in file order; an empty, malformed, unrecognised or oversized file is a
    SpecError naming it."""
    spans: list[Span] = []
    for name in files:
        path = Path(name)
        doc = _json(path)
        for fmt, (recognises, reader) in TRACE_FORMATS.items():
            if recognises(doc):
                found = reader(path, doc)
                if not found:
                    raise SpecError(name, "", f"{fmt} with no spans")
                spans.extend(found)
                break
        else:
            raise SpecError(
                name,
                "",
                'not a trace export: expected Jaeger JSON ({"data": [{"traceID", "spans", "processes"}]}) or OTLP '
                'JSON ({"resourceSpans": [...]})',
            )
    return spans


def _json(path: Path) -> Any:
    """The file's JSON document, or its JSON Lines as a list of documents."""
    data = read_bytes(path, MAX_TRACE_BYTES, "trace file")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise SpecError(str(path), "", f"not UTF-8 text: {e.reason} at byte {e.start}") from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        if e.msg != "Extra data":
            raise SpecError(str(path), f"line {e.lineno}", f"malformed JSON: {e.msg}") from None
        doc = _lines(path, text)
    except RecursionError:
        raise SpecError(str(path), "", f"malformed JSON: nests more than {MAX_DEPTH} deep") from None
    check_depth(path, doc)
    return doc


def _lines(path: Path, text: str) -> list[Any]:
    """JSON Lines: one document a non-blank line."""
    docs = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            docs.append(json.loads(line))
        except json.JSONDecodeError as e:
            raise SpecError(str(path), f"line {n}", f"malformed JSON: {e.msg}") from None
    return docs
