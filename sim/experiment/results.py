"""What one run's result record holds, where records are kept, and the tidy summary table of a sweep.

A record is a JSON-ready dict: the run's key, experiment, design point, factor values, replication and seed, the
resolved scenario table, its status (``ok`` or ``error`` with the error and traceback), wall time (s) and
metrics (``sim.experiment.analysis.run_metrics``). The summary table has one row per run and Service, and every
row carries every factor, the replication and the seed.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from sim.experiment.metrics import ServiceSummary, record_services

if TYPE_CHECKING:
    import pandas as pd

RESULT_FORMAT = "k8s-service-sim.run/1"
"""Written into every record and hashed into every run key: a new format never reuses old results."""

ID_COLUMNS = ("experiment", "design_point", "replication", "seed", "key", "engine", "status")


@dataclass(frozen=True)
class Column:
    """A metric column of the tidy summary table: its name, where its value is in a Service's metrics (a dotted
    path of ``sim.experiment.metrics.ServiceSummary`` attributes, or keys of a dict one holds), its unit, and
    whether it is a count (a nullable integer column)."""

    name: str
    path: str
    unit: str
    count: bool = False

    def read(self, service: ServiceSummary) -> Any:
        """The value of this column for one Service's metrics."""
        value: Any = service
        for part in self.path.split("."):
            value = value[part] if isinstance(value, Mapping) else getattr(value, part)
        return value


TABLE_METRICS = (
    Column("sent", "sent", "requests", count=True),
    Column("completed", "completed", "requests", count=True),
    Column("dropped", "dropped", "requests", count=True),
    Column("in_flight", "in_flight", "requests", count=True),
    Column("violations", "violations", "requests", count=True),
    Column("latency_mean_s", "latency_s.mean", "s"),
    Column("latency_p50_s", "latency_s.p50", "s"),
    Column("latency_p99_s", "latency_s.p99", "s"),
    Column("cross_node_fraction", "cross_node_fraction", "fraction"),
    Column("cross_zone_fraction", "cross_zone_fraction", "fraction"),
    Column("chi_square", "chi_square.statistic", "statistic"),
    Column("chi_square_dof", "chi_square.dof", "degrees of freedom", count=True),
    Column("chi_square_pvalue", "chi_square.pvalue", "probability"),
    Column("cohens_w", "chi_square.cohens_w", "effect size"),
)
"""The per-Service metrics the summary table carries, in column order: tabulating a metric is one line here."""
METRIC_COLUMNS = ("service", *(c.name for c in TABLE_METRICS), "wall_s", "error")
RESERVED_COLUMNS = frozenset(ID_COLUMNS + METRIC_COLUMNS)
"""Column names a factor may not take."""


class ResultStore(Protocol):
    """Where a sweep keeps its records: ``sim.io.ResultDir`` on disk, ``MemoryStore`` in memory."""

    def load(self, key: str) -> dict[str, Any] | None:
        """The stored record for ``key``, or None."""
        ...

    def save(self, record: Mapping[str, Any]) -> None:
        """Keep one run's record (on disk: atomically)."""
        ...

    def save_experiment(self, info: Mapping[str, Any]) -> None:
        """Keep the experiment's description, including the keys of its runs in order."""
        ...

    def save_summary(self, csv_text: str) -> None:
        """Keep the summary table as CSV text."""
        ...


class MemoryStore:
    """A ResultStore in a dict: the Python API's default, for notebooks; nothing survives the process."""

    def __init__(self) -> None:
        self.records: dict[str, dict[str, Any]] = {}
        self.experiment: dict[str, Any] = {}
        self.summary = ""

    def load(self, key: str) -> dict[str, Any] | None:
        """The record kept for ``key``, or None."""
        return self.records.get(key)

    def save(self, record: Mapping[str, Any]) -> None:
        """Keep a record."""
        self.records[record["key"]] = dict(record)

    def save_experiment(self, info: Mapping[str, Any]) -> None:
        """Keep the experiment's description."""
        self.experiment = dict(info)

    def save_summary(self, csv_text: str) -> None:
        """Keep the CSV text."""
        self.summary = csv_text


def _cell(value: Any) -> Any:
    """A factor level as a table cell: scalars as they are, tables and arrays as JSON text."""
    return json.dumps(value, sort_keys=True) if isinstance(value, (dict, list)) else value


def summary_rows(records: Iterable[Mapping[str, Any]], factors: Sequence[str]) -> list[dict[str, Any]]:
    """One row per (run, Service); a failed run gives one row with its error and no Service. Latencies in s."""
    rows = []
    for rec in records:
        ident = {c: rec.get(c) for c in ID_COLUMNS}
        ident["engine"] = rec.get("engine", "des")  # records from before engines were recorded are the DES's
        ident.update({f: _cell(rec["factors"].get(f)) for f in factors})
        if rec.get("status") != "ok":
            rows.append({**ident, "service": None, "wall_s": rec.get("wall_s"), "error": rec.get("error")})
            continue
        for name, s in record_services(rec).items():
            row = {**ident, "service": name, **{c.name: c.read(s) for c in TABLE_METRICS}}
            rows.append({**row, "wall_s": rec.get("wall_s"), "error": None})
    return rows


def summary_frame(records: Iterable[Mapping[str, Any]], factors: Sequence[str]) -> pd.DataFrame:
    """The tidy summary table as a pandas DataFrame: id columns, factor columns, then Service and metrics."""
    import pandas as pd  # here, not at the top: pandas costs ~0.5 s to import, and runs never need it

    columns = [*ID_COLUMNS, *factors, *METRIC_COLUMNS]
    frame = pd.DataFrame(summary_rows(records, factors), columns=columns)
    for c in TABLE_METRICS:
        if c.count:
            frame[c.name] = frame[c.name].astype("Int64")
    return frame


def summary_csv(frame: pd.DataFrame) -> str:
    """The summary table as CSV text (floats at full precision, empty cells for missing values)."""
    return str(frame.to_csv(index=False, lineterminator="\n"))
