"""Where results go on disk: atomic writes, canonical JSON, and a sweep's results directory (``runs/<key>.json``
per run, ``experiment.json`` and ``summary.csv``, each written atomically)."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sim.errors import SpecError


def write_atomic(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` so that readers see the old file or the whole new one, never a part."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def dumps_json(obj: object) -> str:
    """Canonical JSON text (sorted keys, NaN as null) so that equal results give byte-identical files."""
    return json.dumps(_nan_to_none(obj), sort_keys=True, indent=2) + "\n"


def _nan_to_none(obj: object) -> object:
    if isinstance(obj, float) and obj != obj:
        return None
    if isinstance(obj, dict):
        return {k: _nan_to_none(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_nan_to_none(v) for v in obj]
    return obj


class ResultDir:
    """A sweep's results on disk: ``runs/<key>.json`` per run, ``experiment.json`` and ``summary.csv``."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def run_file(self, key: str) -> Path:
        """Where the record of run ``key`` lives."""
        return self.path / "runs" / f"{key}.json"

    def load(self, key: str) -> dict[str, Any] | None:
        """The record of run ``key``, or None if there is none (or it cannot be read)."""
        try:
            record = json.loads(self.run_file(key).read_text())
        except (OSError, ValueError):
            return None
        return record if isinstance(record, dict) and record.get("key") == key else None

    def save(self, record: Mapping[str, Any]) -> None:
        """Write one run's record atomically."""
        write_atomic(self.run_file(record["key"]), dumps_json(record))

    def save_experiment(self, info: Mapping[str, Any]) -> None:
        """Write ``experiment.json`` atomically."""
        write_atomic(self.path / "experiment.json", dumps_json(info))

    def save_summary(self, csv_text: str) -> None:
        """Write ``summary.csv`` atomically."""
        write_atomic(self.path / "summary.csv", csv_text)


def load_results(path: str | Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A result directory's experiment description and the records of its runs found there, in run order."""
    path = Path(path)
    if not path.is_dir():
        raise SpecError(str(path), "", "no such results directory")
    info_file = path / "experiment.json"
    try:
        info = json.loads(info_file.read_text())
    except FileNotFoundError:
        raise SpecError(str(path), "", "not a results directory: no experiment.json (run `sim sweep` first)") from None
    except (OSError, ValueError) as e:
        raise SpecError(str(info_file), "", f"cannot be read: {e}") from None
    store = ResultDir(path)
    records = [rec for run in info.get("runs", []) if (rec := store.load(run["key"])) is not None]
    return info, records
