"""An experiment: a base scenario table, factors over its fields by dotted path, replications and a root seed.

A path addresses the scenario's TOML structure: table keys by name, entries of an array of tables by their
``name`` (``services.echo-2.internalTrafficPolicy``), or by index where entries have no name
(``streams.0.workload.rate_rps``). A segment that itself holds a dot goes in double quotes:
``pods.client.labels."topology.kubernetes.io/zone"``. Paths are resolved on the table, and every design point's
table is then parsed like a scenario file, so any field the scenario format has is sweepable from here without
this module knowing it.

A level may be the inline table ``{ unset = true }``: the field is removed, so the scenario takes its default
(TOML has no null, and some fields, such as ``trafficDistribution``, have no value meaning "not set").

Reading spec files is ``sim.io``'s job (``load_experiment``); this module holds the values and the pure steps.

>>> parse_path('pods.client.labels."topology.kubernetes.io/zone"')
('pods', 'client', 'labels', 'topology.kubernetes.io/zone')
>>> table = {"streams": [{"client": "c", "workload": {"kind": "poisson", "rate_rps": 5}}]}
>>> set_path(table, parse_path("streams.0.workload.rate_rps"), 50)
'streams[0].workload.rate_rps'
>>> table["streams"][0]["workload"]["rate_rps"]
50
"""

from __future__ import annotations

import copy
import itertools
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sim.scenario import Scenario

_SEGMENT = re.compile(r'"([^"]*)"|([^."]+)')


UNSET: Mapping[str, Any] = {"unset": True}
"""The level value that removes a field instead of setting it."""


class PathError(ValueError):
    """A path that does not lead anywhere in the scenario table; the message says where it stopped and why."""


def parse_path(text: str) -> tuple[str, ...]:
    """Split a dotted path into its segments; a double-quoted segment may hold dots."""
    segments: list[str] = []
    pos = 0
    while True:
        match = _SEGMENT.match(text, pos)
        if match is None or match.group(0) == '""':
            raise PathError(f"malformed path {text!r}: expected dot-separated names")
        segments.append(match.group(1) if match.group(1) is not None else match.group(2))
        pos = match.end()
        if pos == len(text):
            return tuple(segments)
        if text[pos] != ".":
            raise PathError(f"malformed path {text!r}: expected '.' at character {pos + 1}")
        pos += 1


def format_path(segments: Sequence[str]) -> str:
    """The dotted path of ``segments``, quoting any segment that holds a dot.

    >>> format_path(["pods", "client", "labels", "topology.kubernetes.io/zone"])
    'pods.client.labels."topology.kubernetes.io/zone"'
    """
    return ".".join(f'"{s}"' if "." in s or not s else s for s in segments)


def _entry(items: list[Any], segment: str, where: str) -> int:
    """The index of the array entry a segment names: the entry whose ``name`` it is, else a literal index."""
    for i, item in enumerate(items):
        if isinstance(item, dict) and item.get("name") == segment:
            return i
    if segment.isascii() and segment.isdigit() and len(segment) < 10 and int(segment) < len(items):
        return int(segment)
    names = [str(item["name"]) for item in items if isinstance(item, dict) and "name" in item]
    known = f"entries named {names}" if names else f"indices 0..{len(items) - 1}" if items else "no entries"
    raise PathError(f"{where or 'the scenario'} has no entry {segment!r} ({known})")


def set_path(table: dict[str, Any], path: Sequence[str], value: Any) -> str:
    """Set ``path`` in ``table`` (in place) to ``value``; return the field as scenario errors spell it.

    Missing tables on the way are created, so a field the base leaves at its default can be set; whether the
    scenario format knows that field is for the scenario parser to say. ``UNSET`` removes the field.
    """
    unset = value == UNSET
    node: Any = table
    where = ""
    for i, segment in enumerate(path):
        last = i == len(path) - 1
        if isinstance(node, dict):
            where = f"{where}.{segment}" if where else segment
            if last and unset:
                node.pop(segment, None)
            elif last:
                node[segment] = value
            else:
                node = node.setdefault(segment, {})
        elif isinstance(node, list):
            k = _entry(node, segment, where)
            where = f"{where}[{k}]"
            if last and unset:
                raise PathError(f"{where} is an array entry: it can be replaced, not unset")
            if last:
                node[k] = value
            else:
                node = node[k]
        else:
            raise PathError(f"{where} is a single value ({node!r}), not a table or an array")
    return where


@dataclass(frozen=True)
class Factor:
    """One factor: its name, its levels, and the value each scenario path takes at each level.

    A plain factor sets the one path it is named after to each level. A linked factor sets several paths
    together, level by level (e.g. moving several client pods at once), and records ``levels`` as its value.
    """

    name: str
    levels: tuple[Any, ...]
    settings: tuple[tuple[str, tuple[Any, ...]], ...]

    def assignments(self, level: int) -> list[tuple[str, Any]]:
        """The (path, value) pairs that level number ``level`` sets."""
        return [(path, values[level]) for path, values in self.settings]


ENGINES = ("des", "fast", "auto")
"""An experiment's ``engine``: the DES; the fast path (every design point must be exact); the fast path where it
is exact, else the DES."""


@dataclass(frozen=True, eq=False)
class DesignPoint:
    """One combination of factor levels, the scenario table it resolves to and the Scenario built from it.

    ``anchor`` is the file that relative names in ``table`` (topology, traces) are relative to; ``files`` holds
    the sha256 of each file the table refers to, so that a changed topology file is a changed run.
    """

    index: int
    factors: Mapping[str, Any]
    table: Mapping[str, Any]
    scenario: Scenario
    anchor: str
    files: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, eq=False)
class Experiment:
    """A full factorial of design points, each run ``replications`` times with seeds drawn from ``root_seed``."""

    name: str
    path: str
    factors: tuple[Factor, ...]
    replications: int
    root_seed: int
    design_points: tuple[DesignPoint, ...]
    plot: Mapping[str, Any] = field(default_factory=dict)
    sets: Mapping[str, Any] = field(default_factory=dict)
    engine: str = "des"  # des | fast | auto: which engine runs it (ENGINES)

    @property
    def factor_names(self) -> list[str]:
        """Factor names in spec order (the order of the summary table's factor columns)."""
        return [f.name for f in self.factors]

    def describe(self) -> dict[str, Any]:
        """A JSON-ready description: factors with their levels and paths, replications, seeds' root, plot roles."""
        return {
            "name": self.name,
            "spec": self.path,
            "replications": self.replications,
            "root_seed": self.root_seed,
            "engine": self.engine,
            "sets": dict(self.sets),
            "factors": [
                {"name": f.name, "levels": list(f.levels), "paths": {p: list(v) for p, v in f.settings}}
                for f in self.factors
            ],
            "design_points": [{"index": p.index, "factors": dict(p.factors)} for p in self.design_points],
            "plot": dict(self.plot),
        }


def level_choices(factors: Sequence[Factor]) -> list[tuple[int, ...]]:
    """Every combination of level numbers, the first factor varying slowest (a full factorial)."""
    return list(itertools.product(*(range(len(f.levels)) for f in factors)))


def resolve(base: Mapping[str, Any], assignments: Iterable[tuple[str, Any]]) -> tuple[dict[str, Any], dict[str, str]]:
    """A deep copy of ``base`` with each (path, value) set; also each path's field as scenario errors spell it."""
    table = copy.deepcopy(dict(base))
    fields = {}
    for path, value in assignments:
        fields[path] = set_path(table, parse_path(path), copy.deepcopy(value))
    return table, fields


def overlapping(paths: Iterable[str]) -> tuple[str, str] | None:
    """Two paths of which one is the other or lies inside it (they would fight over a field), if any."""
    parsed = sorted((parse_path(p), p) for p in paths)
    for (a, a_text), (b, b_text) in itertools.pairwise(parsed):
        if b[: len(a)] == a:
            return a_text, b_text
    return None
