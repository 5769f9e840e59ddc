"""Sweeps: expand an experiment into runs, execute them on an executor, keep every record, resume after a crash.

A run is one design point at one replication. Replication r of every design point runs with the same seed,
drawn from ``root_seed`` and r alone, and the engine keys every random stream by entity (``sim.rng``), so all
policies at replication r see identical arrivals: common random numbers, and comparisons are paired.

A run's key hashes its resolved scenario table (with the contents of the files it names), its seed and the
simulator's version and the digest of its model's source (``sim.version``): a rerun finds the records already
stored under those keys, computes only the rest, and says "computed X, reused Y"; after an upgrade or an engine
change it recomputes instead of mixing old results with new.

The experiment's ``engine`` says what simulates each run: ``des`` (the default), ``fast`` (the event-free solver's numpy
way, refused when the spec is read unless every design point needs no events) or ``auto`` (fast for the design
points where ``sim.solver.events_needed`` finds no events needed, the DES for the others); ``sim.facade`` holds
the choice. Each record says which (``engine``, and
``fast_path_problem`` where auto fell back to the DES), so does the summary table, and the closing line counts them.
The fast path's records equal the DES's in distribution, not draw for draw, so a fast run's key also hashes its
engine: a DES run's key is what it always was.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
import traceback
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from sim.experiment.analysis import run_metrics
from sim.experiment.executors import Executor, ExecutorLost, Serial
from sim.experiment.results import RESULT_FORMAT, MemoryStore, ResultStore, summary_csv, summary_frame
from sim.experiment.spec import DesignPoint, Experiment
from sim.version import __version__, model_digest

if TYPE_CHECKING:
    import pandas as pd


def replication_seed(root_seed: int, replication: int) -> int:
    """The seed of replication ``replication``: a 63-bit integer from child r of ``SeedSequence(root_seed)``.

    >>> replication_seed(1, 0) == replication_seed(1, 0) != replication_seed(1, 1)
    True
    """
    words = np.random.SeedSequence(root_seed, spawn_key=(replication,)).generate_state(2, np.uint32)
    return (int(words[0]) << 31) | (int(words[1]) >> 1)


def run_key(point: DesignPoint, seed: int, engine: str = "des") -> str:
    """The name of a run's result: a hash of its resolved scenario table, the files it names, its seed, the
    simulator's version and model digest, and its engine when that is the fast path."""
    fields: dict[str, Any] = {
        "format": RESULT_FORMAT,
        "version": __version__,
        "model": model_digest(),
        "scenario": point.table,
        "files": point.files,
        "seed": seed,
    }
    if engine != "des":
        fields["engine"] = engine
    text = json.dumps(fields, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


@dataclass(frozen=True, eq=False)
class Run:
    """One task: a design point at one replication, with its seed and its key."""

    key: str
    point: DesignPoint
    replication: int
    seed: int
    engine: str = "des"  # what simulates it: des or fast
    fast_path_problem: str | None = None  # why the fast path is not exact here (engine auto fell back to des)


def engine_of(point: DesignPoint, engine: str) -> tuple[str, str | None]:
    """The engine that runs ``point`` under an experiment's ``engine`` (des, fast or auto), and the fast path's
    problem there (None where it is exact, or where nobody asked)."""
    if engine == "des":
        return "des", None
    from sim.facade import EventsNeeded, choose

    try:
        choice = choose(point.scenario, engine)
    except EventsNeeded as e:
        raise ValueError(f"the fast path is not exact for design point {point.index}: {e.reason}") from None
    return choice.engine, choice.events_needed


def expand(experiment: Experiment) -> list[Run]:
    """Every (design point, replication), replication-major: all design points of replication 0 come first, so
    a sweep stopped half-way has whole replications to look at."""
    seeds = [replication_seed(experiment.root_seed, r) for r in range(experiment.replications)]
    engines = [engine_of(point, experiment.engine) for point in experiment.design_points]
    return [
        Run(run_key(point, seeds[r], engines[i][0]), point, r, seeds[r], *engines[i])
        for r in range(experiment.replications)
        for i, point in enumerate(experiment.design_points)
    ]


def execute(run: Run) -> dict[str, Any]:
    """Simulate one run and measure it; an exception becomes an ``error`` outcome with its traceback.

    Runs on workers: it takes the parsed scenario with it and returns a small JSON-ready dict keyed by the run.
    """
    from sim.facade import simulate

    start = time.perf_counter()
    outcome: dict[str, Any] = {"key": run.key, "status": "ok", "error": None, "traceback": None, "metrics": None}
    try:
        outcome["metrics"] = run_metrics(simulate(run.point.scenario, run.seed, run.engine))
    except Exception as e:  # a failed run is recorded, and the sweep goes on
        outcome.update(status="error", error=f"{type(e).__name__}: {e}", traceback=traceback.format_exc())
    outcome["wall_s"] = time.perf_counter() - start
    return outcome


def _labels(experiment: Experiment, run: Run) -> dict[str, Any]:
    """The fields of a record that say where in this experiment the run sits."""
    return {
        "format": RESULT_FORMAT,
        "version": __version__,
        "model": model_digest(),
        "key": run.key,
        "experiment": experiment.name,
        "design_point": run.point.index,
        "factors": dict(run.point.factors),
        "replication": run.replication,
        "seed": run.seed,
        "engine": run.engine,
    }


def record(experiment: Experiment, run: Run, outcome: dict[str, Any]) -> dict[str, Any]:
    """A run's full record: labels, resolved scenario table (re-runnable with ``parse_scenario(scenario,
    scenario_path)`` and ``run(..., seed)``), status, error and traceback, wall time (s) and metrics."""
    return {
        **_labels(experiment, run),
        "scenario": run.point.table,
        "scenario_path": run.point.anchor,
        "files": dict(run.point.files),
        "fast_path_problem": run.fast_path_problem,
        "status": outcome["status"],
        "error": outcome["error"],
        "traceback": outcome["traceback"],
        "wall_s": outcome["wall_s"],
        "metrics": outcome["metrics"],
    }


def describe(experiment: Experiment, runs: list[Run]) -> dict[str, Any]:
    """The experiment's description with its runs (key, design point, replication, seed) in run order."""
    listed = [{"key": r.key, "design_point": r.point.index, "replication": r.replication, "seed": r.seed} for r in runs]
    return {"format": RESULT_FORMAT, "version": __version__, **experiment.describe(), "runs": listed}


@dataclass(frozen=True, eq=False)
class SweepResult:
    """What a sweep did: every finished record (in design-point order), the tidy summary table, and counts."""

    records: list[dict[str, Any]]
    summary: pd.DataFrame
    total: int
    computed: int
    reused: int
    failed: int
    stopped: bool
    engine: str = "des"  # the experiment's: des, fast or auto
    engines: Mapping[str, int] = field(default_factory=dict)  # runs (computed or reused) by the engine they used

    def report(self) -> str:
        """``"computed X, reused Y"``, with the runs per engine unless all ran on the DES by default, and failures
        and an early stop when there were any."""
        words = f"computed {self.computed}, reused {self.reused}"
        if self.engine != "des":
            words += (
                f" (engine {self.engine}: {self.engines.get('fast', 0)} fast path, {self.engines.get('des', 0)} DES)"
            )
        if self.failed:
            words += f", failed {self.failed}"
        if self.stopped:
            words += f"; stopped at the first failure, {self.total - len(self.records)} runs not done"
        return words


def sweep(
    experiment: Experiment,
    store: ResultStore | None = None,
    executor: Executor | None = None,
    *,
    fail_fast: bool = False,
    progress: bool | None = None,
) -> SweepResult:
    """Run every (design point, replication) of ``experiment`` that ``store`` has no finished record of.

    Records are saved as they arrive, so a crash loses only runs in progress; failed runs are recorded and tried
    again by the next sweep. ``progress``: a tqdm bar on stderr (None: only when stderr is a terminal).
    Defaults: an in-memory store and the serial executor.
    """
    from tqdm import tqdm  # here: only a sweep draws a progress bar

    store = store if store is not None else MemoryStore()
    executor = executor if executor is not None else Serial()
    runs = expand(experiment)
    store.save_experiment(describe(experiment, runs))

    records: dict[str, dict[str, Any]] = {}
    pending: list[Run] = []
    for run in runs:
        old = store.load(run.key)
        if old is None or old.get("status") != "ok":
            pending.append(run)
            continue
        current = {**old, **_labels(experiment, run)}
        if current != old:  # the same run under another name or design point: relabel it for this experiment
            store.save(current)
        records[run.key] = current
    reused = len(records)

    by_key = {run.key: run for run in pending}
    computed = failed = 0
    stopped = False
    bar = tqdm(
        total=len(pending),
        desc=experiment.name,
        unit="run",
        file=sys.stderr,
        disable=(None if progress is None else not progress) if pending else True,
        dynamic_ncols=True,
    )
    outcomes = executor.map(execute, pending)
    try:
        for outcome in outcomes:
            run = by_key[outcome["key"]]
            rec = record(experiment, run, outcome)
            store.save(rec)
            records[run.key] = rec
            computed += 1
            bar.update()
            if rec["status"] != "ok":
                failed += 1
                bar.set_postfix(failed=failed)
                if fail_fast:
                    stopped = True
                    break
    except ExecutorLost as e:  # the records so far are saved: say how many a rerun will reuse
        raise ExecutorLost(e.what, kept=len(records)) from None
    finally:
        close = getattr(outcomes, "close", None)
        if close is not None:
            close()
        bar.close()

    ordered = [records[r.key] for r in sorted(runs, key=lambda r: (r.point.index, r.replication)) if r.key in records]
    summary = summary_frame(ordered, experiment.factor_names)
    store.save_summary(summary_csv(summary))
    engines = {name: sum(r.get("engine", "des") == name for r in ordered) for name in ("fast", "des")}
    return SweepResult(ordered, summary, len(runs), computed, reused, failed, stopped, experiment.engine, engines)
