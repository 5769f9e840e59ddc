"""A ``sim run --out`` file read back (``sim.experiment.rundoc.run_document`` wrote it), checked enough for
``sim plot`` and ``sim report`` to draw and render it: every table and list they read is there, with the right
type and length; anything else is the one bad-input error."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sim.errors import SpecError
from sim.experiment.metrics import json_problem
from sim.io.store import MAX_JSON_BYTES
from sim.io.typed import read_bytes, type_name


def load_run(path: str | Path) -> dict[str, Any]:
    """A ``sim run --out`` file (``sim.experiment.rundoc.run_document``), checked enough to draw and report:
    every table and list the figures and the report read is there, with the right type and length."""
    path = Path(path)
    data = read_bytes(path, MAX_JSON_BYTES, "JSON file")  # a regular file, bounded: no FIFO or device read
    try:
        doc = json.loads(data)
    except (RecursionError, ValueError) as e:
        raise SpecError(str(path), "", f"not a JSON file: {e}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("services"), dict) or "seed" not in doc:
        raise SpecError(str(path), "", "not a `sim run --out` file: expected an object with seed and services")
    for key in ("window_s", "cluster", "timeline"):
        if key not in doc:
            raise SpecError(str(path), key, "missing: written by an older `sim run`; run it again with --out")

    def need(obj: Any, where: str, kind: type | tuple[type, ...]) -> Any:
        if not isinstance(obj, kind) or isinstance(obj, bool):
            raise SpecError(str(path), where, f"expected {getattr(kind, '__name__', 'a number')}, got {type_name(obj)}")
        return obj

    number = (int, float)
    if not need(doc["window_s"], "window_s", number) > 0:
        raise SpecError(str(path), "window_s", "must be > 0")
    for key in ("scenario", "dataplane"):
        need(doc.get(key), key, str)
    need(doc.get("end_s"), "end_s", number)
    provenance = need(doc.get("provenance", {}), "provenance", dict)
    need(provenance.get("command", ""), "provenance.command", str)
    for name, version in need(provenance.get("versions", {}), "provenance.versions", dict).items():
        need(version, f"provenance.versions.{name}", str)
    cluster = need(doc["cluster"], "cluster", dict)
    for key in ("nodes", "elements", "links", "pods", "services", "streams"):
        for i, item in enumerate(need(cluster.get(key), f"cluster.{key}", list)):
            need(item, f"cluster.{key}[{i}]", dict)
    for i, event in enumerate(need(doc["timeline"], "timeline", list)):
        need(need(event, f"timeline[{i}]", dict).get("at_s"), f"timeline[{i}].at_s", number)
    for name, svc in doc["services"].items():
        where = f"services.{name}"
        need(svc, where, dict)
        for key in ("routed_by_endpoint", "expected_share", "by_endpoint", "by_client_node", "latency_histogram"):
            need(svc.get(key), f"{where}.{key}", dict)
        w = need(svc.get("windows"), f"{where}.windows", dict)
        n = len(need(w.get("sent"), f"{where}.windows.sent", list))
        series = {"completed": w.get("completed")}
        for group in ("landed", "failed", "latency_s"):
            series.update({f"{group}.{k}": v for k, v in need(w.get(group), f"{where}.windows.{group}", dict).items()})
        for key, values in series.items():
            if not isinstance(values, list) or len(values) != n:
                raise SpecError(str(path), f"{where}.windows.{key}", f"expected a list of {n} values, one per window")
            for v in values:
                if v is not None and (not isinstance(v, number) or isinstance(v, bool)):
                    raise SpecError(str(path), f"{where}.windows.{key}", f"expected numbers, got {type_name(v)}")
        problem = json_problem(svc)
        if problem is not None:
            raise SpecError(str(path), ".".join(p for p in (where, problem[0]) if p), problem[1])
    return doc
