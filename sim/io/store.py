"""Where results go on disk: canonical JSON, and a sweep's results directory (``runs/<key>.json`` per run,
``experiment.json`` and ``summary.csv``, each written atomically by ``sim.io.output``).

Reading a results directory back (``load_results``, for ``sim plot``) checks every part it uses: a damaged
experiment.json or run record is a SpecError naming the file and the field, never a traceback in a figure.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sim.errors import SpecError
from sim.experiment.analysis import LATENCY_BINS_PER_DECADE, LATENCY_FLOOR_S
from sim.experiment.metrics import json_problem
from sim.io.output import write_file
from sim.io.typed import check_depth, read_text

MAX_JSON_BYTES = 64 << 20
"""The largest experiment.json or run record read back (bytes)."""
STALE_TMP_S = 5.0
"""Seconds after which a results directory's temporary file is a killed writer's (``ResultDir``)."""


def dumps_json(obj: object) -> str:
    """Canonical JSON text (sorted keys, NaN and infinities as null) so that equal results give byte-identical
    files, and strict JSON: never ``NaN`` or ``Infinity``, which JSON does not have."""
    return json.dumps(_finite(obj), sort_keys=True, indent=2, allow_nan=False) + "\n"


def _finite(obj: object) -> object:
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def _read_json(path: Path) -> Any:
    """A JSON file, bounded and depth-checked; any problem is a SpecError naming it."""
    text = read_text(path, MAX_JSON_BYTES, "JSON file")
    try:
        data = json.loads(text)
    except RecursionError:
        raise SpecError(str(path), "", "cannot be read: nests too deeply") from None
    except ValueError as e:
        raise SpecError(str(path), "", f"cannot be read: not JSON ({e})") from None
    check_depth(path, data)
    return data


class ResultDir:
    """A sweep's results on disk: ``runs/<key>.json`` per run, ``experiment.json`` and ``summary.csv``."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.opened: float | None = None  # when this sweep began writing here (time.time(), s)

    def run_file(self, key: str) -> Path:
        """Where the record of run ``key`` lives."""
        return self.path / "runs" / f"{key}.json"

    def load(self, key: str) -> dict[str, Any] | None:
        """The record of run ``key``, or None if there is none (or it cannot be read: the run is done again)."""
        try:
            record = _read_json(self.run_file(key))
        except SpecError:
            return None
        return record if isinstance(record, dict) and record.get("key") == key else None

    def save(self, record: Mapping[str, Any]) -> None:
        """Write one run's record atomically."""
        write_file(self.run_file(record["key"]), dumps_json(record), "run record", rewrite=True)

    def save_experiment(self, info: Mapping[str, Any]) -> None:
        """Write ``experiment.json`` atomically (a sweep's first write), after removing the temporary files a
        killed sweep left (older than ``STALE_TMP_S``: a live writer's exist for milliseconds)."""
        self.opened = time.time()
        self.remove_stale_temporaries()
        write_file(self.path / "experiment.json", dumps_json(info), "results directory", rewrite=True)

    def remove_stale_temporaries(self, now: float | None = None) -> list[Path]:
        """Delete ``sim.io.output.write_file``'s temporary files here and in ``runs/`` older than ``STALE_TMP_S``
        seconds at ``now`` (default: the clock); return them."""
        limit = (time.time() if now is None else now) - STALE_TMP_S
        removed = []
        for folder in (self.path, self.path / "runs"):
            for tmp in folder.glob(".*.tmp") if folder.is_dir() else ():
                try:
                    if tmp.is_file() and tmp.stat().st_mtime < limit:
                        tmp.unlink()
                        removed.append(tmp)
                except FileNotFoundError:  # another sweep finished with it meanwhile
                    continue
        return removed

    def save_summary(self, csv_text: str) -> None:
        """Write ``summary.csv`` atomically (a sweep's last write), and remove every temporary file last written
        before the sweep began: a kill's, even when the resume came within ``STALE_TMP_S`` of it (a live writer
        does not keep one for a whole sweep)."""
        write_file(self.path / "summary.csv", csv_text, "results directory", rewrite=True)
        if self.opened is not None:
            self.remove_stale_temporaries(self.opened + STALE_TMP_S)


def _need(file: Path, obj: Any, field: str, kinds: type | tuple[type, ...], what: str) -> Any:
    """``obj[field]`` (``field`` dotted), which must be of ``kinds``; else a SpecError naming the file and field."""
    value = obj
    for part in field.split("."):
        if not isinstance(value, dict) or part not in value:
            raise SpecError(str(file), field, f"is missing: not a {what} (damaged, or written by another program)")
        value = value[part]
    if isinstance(value, bool) and bool not in (kinds if isinstance(kinds, tuple) else (kinds,)):
        raise SpecError(str(file), field, f"must be {_kind_words(kinds)}, got {value!r}")
    if not isinstance(value, kinds):
        raise SpecError(str(file), field, f"must be {_kind_words(kinds)}, got {type(value).__name__}")
    return value


def _kind_words(kinds: type | tuple[type, ...]) -> str:
    names = {dict: "an object", list: "an array", str: "a string", int: "an integer", float: "a number"}
    return " or ".join(names.get(k, k.__name__) for k in (kinds if isinstance(kinds, tuple) else (kinds,)))


_NUMBER = (int, float, type(None))
_SERVICE_FIELDS: dict[str, type | tuple[type, ...]] = {
    "sent": int,
    "completed": int,
    "dropped": int,
    "in_flight": int,
    "violations": int,
    "latency_s.mean": _NUMBER,
    "latency_s.p50": _NUMBER,
    "latency_s.p99": _NUMBER,
    "cross_node_fraction": _NUMBER,
    "cross_zone_fraction": _NUMBER,
    "chi_square.statistic": _NUMBER,
    "chi_square.dof": int,
    "chi_square.pvalue": _NUMBER,
    "chi_square.cohens_w": _NUMBER,
    "routed_by_endpoint": dict,
    "expected_share": dict,
    "by_client_node": dict,
    "latency_histogram.first": int,
    "latency_histogram.counts": list,
}
"""What a finished run's metrics must hold per Service for the summary table and the figures."""


def check_info(file: Path, info: Any) -> dict[str, Any]:
    """An experiment.json as written by ``sim sweep``: its factors, design points and runs, each the right type."""
    if not isinstance(info, dict):
        raise SpecError(str(file), "", "must be a JSON object (damaged, or written by another program)")
    for i, factor in enumerate(_need(file, info, "factors", list, "results description")):
        _need(file, {"f": factor}, "f", dict, "factor")
        for key, kinds in (("name", str), ("levels", list), ("paths", dict)):
            if not isinstance(factor.get(key), kinds):
                raise SpecError(str(file), f"factors[{i}].{key}", f"must be {_kind_words(kinds)}")
        if not factor["levels"]:
            raise SpecError(str(file), f"factors[{i}].levels", "must have at least one level")
    for i, run in enumerate(_need(file, info, "runs", list, "results description")):
        if not isinstance(run, dict) or not isinstance(run.get("key"), str) or not run["key"].isalnum():
            raise SpecError(str(file), f"runs[{i}].key", "must be a run key (letters and digits)")
    for key in ("plot", "sets"):
        if key in info and not isinstance(info[key], dict):
            raise SpecError(str(file), key, "must be an object")
    plot = info.get("plot", {})
    for role in ("x", "line"):
        if role in plot and not isinstance(plot[role], str):
            raise SpecError(str(file), f"plot.{role}", "must be a string")
    if "labels" in plot and not isinstance(plot["labels"], dict):
        raise SpecError(str(file), "plot.labels", "must be an object")
    if "name" in info and not isinstance(info["name"], str):
        raise SpecError(str(file), "name", "must be a string")
    return info


def check_record(file: Path, record: dict[str, Any], factors: list[str]) -> dict[str, Any]:
    """A run record as ``sim sweep`` writes it: the labels and, for a finished run, the metrics each Service has."""
    status = _need(file, record, "status", str, "run record")
    _need(file, record, "design_point", int, "run record")
    _need(file, record, "replication", int, "run record")
    for f in factors:
        if f not in _need(file, record, "factors", dict, "run record"):
            raise SpecError(str(file), f"factors.{f}", "is missing: the record does not match experiment.json")
    if status == "ok":
        services = _need(file, record, "metrics.services", dict, "run record")
        for name, s in services.items():
            for field, kinds in _SERVICE_FIELDS.items():
                _need(file, {"s": s}, f"s.{field}", kinds, "run record")
            where = f"metrics.services.{name}"
            for key in ("routed_by_endpoint", "expected_share"):
                if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in s[key].values()):
                    raise SpecError(str(file), f"{where}.{key}", "must map names to numbers")
            for node, row in s["by_client_node"].items():
                if not isinstance(row, dict) or not all(type(v) is int for v in row.values()):
                    raise SpecError(str(file), f"{where}.by_client_node.{node}", "must map node names to counts")
            _histogram(file, f"{where}.latency_histogram", s["latency_histogram"])
            problem = json_problem(s)
            if problem is not None:
                raise SpecError(str(file), ".".join(p for p in (where, problem[0]) if p), problem[1])
    return record


def _histogram(file: Path, where: str, h: dict[str, Any]) -> None:
    """A latency histogram as run_metrics writes it: this version's bins, a first bin and counts in range."""
    if h.get("floor_s") != LATENCY_FLOOR_S or h.get("bins_per_decade") != LATENCY_BINS_PER_DECADE:
        raise SpecError(
            str(file), where, f"has other bins than {LATENCY_BINS_PER_DECADE} a decade from {LATENCY_FLOOR_S} s"
        )
    # latencies are finite doubles: at most log10(1e308 / floor) decades above the floor
    top = int((308 - math.log10(LATENCY_FLOOR_S)) * LATENCY_BINS_PER_DECADE) + 1
    if not 0 <= h["first"] <= top or len(h["counts"]) > top + 1 - h["first"]:
        raise SpecError(str(file), where, f"has bins outside 0..{top}")
    if not all(type(c) is int and c >= 0 for c in h["counts"]):
        raise SpecError(str(file), f"{where}.counts", "must be counts (whole numbers >= 0)")


def load_results(path: str | Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A result directory's experiment description and the records of its runs found there, in run order.

    A run without a record (a sweep stopped half-way) is left out; a record that is there but damaged, like a
    damaged experiment.json, is a SpecError naming the file and the field.
    """
    path = Path(path)
    try:
        is_dir = path.is_dir()
    except OSError:
        is_dir = False
    if not is_dir:
        raise SpecError(str(path), "", "no such results directory")
    info_file = path / "experiment.json"
    if not info_file.exists():
        raise SpecError(str(path), "", "not a results directory: no experiment.json (run `sim sweep` first)")
    info = check_info(info_file, _read_json(info_file))
    factors = [f["name"] for f in info["factors"]]
    store = ResultDir(path)
    records = []
    for run in info["runs"]:
        file = store.run_file(run["key"])
        if not file.exists():
            continue
        record = _read_json(file)
        if not isinstance(record, dict) or record.get("key") != run["key"]:
            raise SpecError(str(file), "key", f"must be {run['key']!r}: the record does not match experiment.json")
        records.append(check_record(file, record, factors))
    return info, records
