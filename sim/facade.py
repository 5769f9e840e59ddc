"""The one run facade, ``sim.simulate``: ``simulate(scenario, seed, engine="auto") -> RunResult`` holds the engine.

- ``des``: the discrete-event simulation. Where ``sim.solver.events_needed`` finds that no request waits on another's
  state, the event-free solver computes it the exact way (``solve(..., exact=True)``: the event path's records
  byte for byte, with no event per request); otherwise the event path (``sim.engine.run``) runs it.
- ``fast``: the event-free solver's numpy way (``solve(..., exact=False)``): the same distribution, other draws;
  refused (ValueError) where the run needs events.
- ``auto``: ``fast`` where no events are needed, else the event path.

Before a run, ``checked_choice`` is the choice with the guards (``sim.guards``: requests and memory against the
limit), a SpecError on the input's file; the CLI calls it and lays out what it says.

The RunResult says which way ran (``engine``: ``events``, ``solver`` or ``fast``) and why events were needed
(``events_needed``, None where they were not). The CLI (``--engine``), sweeps, the benchmarks and the notebooks
all run through here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

from sim import guards
from sim.errors import SpecError
from sim.plan import Plan, compile_plan
from sim.records import RunResult
from sim.rng import Seed
from sim.scenario import Scenario

ENGINES = ("des", "fast", "auto")
"""The engines a run can be asked for (``sim run --engine``, a sweep's ``engine``)."""


class EventsNeeded(ValueError):
    """``fast`` asked of a run that needs events; ``reason`` says why (``sim.solver.events_needed``)."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"the fast path is not exact here: {reason}")
        self.reason = reason


@dataclass(frozen=True)
class Choice:
    """The engine a run takes: ``engine`` (des or fast, as asked or as auto chose), the way it runs (``path``:
    events, solver or fast) and why it needs events (``events_needed``: None where it does not)."""

    plan: Plan
    engine: str
    path: str
    events_needed: str | None

    def run(self, seed: Seed) -> RunResult:
        """The run under ``seed`` on the chosen way; its RunResult says which way and why."""
        if self.path == "events":
            from sim.engine import run  # here: SimPy is imported only where the event path runs

            result = run(self.plan, seed)
        else:
            from sim.solver import solve

            result = solve(self.plan, seed, exact=self.path == "solver")
        return dataclasses.replace(result, engine=self.path, events_needed=self.events_needed)


def choose(scenario: Scenario | Plan, engine: str = "auto") -> Choice:
    """The way a run of ``scenario`` takes on ``engine`` (des, fast or auto). Raises ValueError for an unknown
    engine, or ``EventsNeeded`` for ``fast`` where the run needs events (it says why)."""
    from sim.solver import events_needed

    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}; expected one of {', '.join(ENGINES)}")
    plan = scenario if isinstance(scenario, Plan) else compile_plan(scenario)
    reason = events_needed(plan)
    if engine == "fast" and reason is not None:
        raise EventsNeeded(reason)
    if engine == "auto":
        engine = "des" if reason else "fast"
    path = "fast" if engine == "fast" else ("events" if reason else "solver")
    return Choice(plan, engine, path, reason)


def simulate(scenario: Scenario | Plan, seed: Seed, engine: str = "auto") -> RunResult:
    """Simulate ``scenario`` under ``seed`` on ``engine`` (des, fast or auto, see the module); its records."""
    return choose(scenario, engine).run(seed)


def checked_choice(scenario: Scenario, engine: str, where: str) -> tuple[Choice, guards.Estimate]:
    """The way a run of ``scenario`` takes on ``engine`` and its estimate (on the fast path where it takes it),
    refused as a SpecError on file ``where``: ``fast`` asked where the run needs events, or a run past the guards
    (``sim.guards.refusal``)."""
    try:
        choice = choose(scenario, engine)
    except EventsNeeded as e:
        raise SpecError(where, "--engine fast", str(e)) from None
    est = guards.estimate(scenario, fast=choice.engine == "fast")
    guards.refuse(where, est)
    return choice, est


def checked_runs(scenarios: Sequence[Scenario], where: str, runs_at_once: int) -> list[guards.Estimate]:
    """The estimates of a sweep's runs (one per scenario), refused as a SpecError on file ``where`` where a run
    never ends or holds too many records, or the largest, ``runs_at_once`` side by side, needs more memory than the
    limit."""
    estimates = [guards.estimate(scenario) for scenario in scenarios]
    largest = max(estimates, key=lambda e: e.memory_bytes)
    for est in (*(e for e in estimates if e.unbounded or e.requests > guards.MAX_RECORDS), largest):
        guards.refuse(where, est, runs_at_once=runs_at_once)
    return estimates
