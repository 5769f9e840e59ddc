"""Guard for refactoring: every example experiment, at a reduced request count, gives byte-identical records.

Each shipped scenario file (``experiments/*.toml``, ``experiments/k8s/demo.toml``; a spec's first design point at
replication 0, as ``sim run`` runs it) runs through ``simulate(..., "des")`` (the event-free solver's exact way
where ``sim.solver.events_needed`` finds no events needed, else the event path), the event path with every step an
event, and, where no events are needed, ``simulate(..., "fast")``. The sha256 of every record column's bytes, of
the monitors, of the end time and of ``dumps_json(summarize(result))`` must equal the digests saved in
``tests/data/golden/digests.json`` from the code before the refactor of issue 15; once since, issue 16's settled
runs rewrote the ``des`` digests of the five examples that settle, to exactly their ``des-no-shortcuts`` digests
(issue 22 moved those runs to the solver and changed no digest). A change that alters a single draw or a single
bit of a time fails.

Regenerate (only for a change meant to alter records, and say so in its commit):
``python -m tests.test_golden --write``.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from sim.engine import run
from sim.experiment.analysis import summarize
from sim.experiment.sweep import replication_seed
from sim.facade import simulate
from sim.io import is_experiment, load_experiment, load_scenario, parse_scenario
from sim.io.store import dumps_json
from sim.records import RunResult
from sim.scenario import Scenario
from sim.solver import events_needed
from tests.conftest import ROOT

GOLDEN = ROOT / "tests" / "data" / "golden" / "digests.json"
REQUESTS = 1000
FILES = [*sorted((ROOT / "experiments").glob("*.toml")), ROOT / "experiments" / "k8s" / "demo.toml"]
ENGINES = ("des", "des-no-shortcuts", "fast")


def _load(path: Path) -> tuple[Scenario, int]:
    overrides = {"requests": REQUESTS}
    if is_experiment(path):
        experiment = load_experiment(path)
        point = experiment.design_points[0]
        overrides["seed"] = replication_seed(experiment.root_seed, 0)
        return parse_scenario(point.table, point.anchor, overrides)
    return load_scenario(path, overrides)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def digests(result: RunResult) -> dict[str, str]:
    """sha256 per record column (its dtype and bytes), of the monitors, the end time and the summary JSON."""
    out = {
        f"column {name}": _sha(str(col.dtype).encode() + np.ascontiguousarray(col).tobytes())
        for name, col in result.columns.items()
    }
    for name, values in sorted(result.monitors.items()):
        out[f"monitor {name}"] = _sha(np.ascontiguousarray(values, dtype=float).tobytes())
    out["end_s"] = _sha(np.float64(result.end_s).tobytes())
    out["summarize"] = _sha(dumps_json(summarize(result)).encode())
    return out


def _run(engine: str, scenario: Scenario, seed: int) -> RunResult | None:
    if engine == "fast":
        return None if events_needed(scenario) is not None else simulate(scenario, seed, "fast")
    if engine == "des":
        return simulate(scenario, seed, "des")
    return run(scenario, seed, shortcuts=False)


def compute() -> dict[str, dict[str, dict[str, str]]]:
    """Every file's digests per engine that applies."""
    table: dict[str, dict[str, dict[str, str]]] = {}
    for path in FILES:
        scenario, seed = _load(path)
        key = str(path.relative_to(ROOT))
        table[key] = {}
        for engine in ENGINES:
            result = _run(engine, scenario, seed)
            if result is not None:
                table[key][engine] = digests(result)
    return table


def _saved() -> dict[str, dict[str, dict[str, str]]]:
    return json.loads(GOLDEN.read_text())  # type: ignore[no-any-return]


def test_golden_covers_every_example():
    saved = _saved()
    assert sorted(saved) == sorted(str(p.relative_to(ROOT)) for p in FILES)
    assert sum("fast" in engines for engines in saved.values()) >= 3  # the fast path is guarded too


@pytest.mark.parametrize("path", FILES, ids=[str(p.relative_to(ROOT / "experiments")) for p in FILES])
@pytest.mark.parametrize("engine", ENGINES)
def test_records_byte_identical_to_golden(path, engine):
    want = _saved()[str(path.relative_to(ROOT))].get(engine)
    scenario, seed = _load(path)
    result = _run(engine, scenario, seed)
    if want is None:
        assert result is None  # the fast path still refuses where it refused
        return
    assert result is not None
    got = digests(result)
    assert sorted(got) == sorted(want)
    changed = [name for name in want if got[name] != want[name]]
    assert not changed, f"{path.name} on {engine}: differs from the golden records in {changed}"


if __name__ == "__main__":
    if sys.argv[1:] != ["--write"]:
        sys.exit("usage: python -m tests.test_golden --write")
    GOLDEN.parent.mkdir(parents=True, exist_ok=True)
    GOLDEN.write_text(json.dumps(compute(), indent=1, sort_keys=True) + "\n")
    print(f"wrote {GOLDEN}")
