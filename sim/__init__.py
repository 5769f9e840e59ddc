"""Simulate how Kubernetes Services route traffic across a cluster, and test what you see with statistics.

>>> from sim import load_scenario, simulate, summarize

The public API (``help(sim.NAME)`` for each):

- read: ``load_scenario``, ``load_topology``, ``load_experiment`` (files to ``Scenario``, ``Experiment``);
  ``Scenario``, ``Stream`` (what a run simulates); ``SpecError`` (what bad input raises: file, field, problem)
- run: ``simulate`` (the one way in: ``engine`` des, fast or auto), ``events_needed`` (why a run needs the event
  path, or None), ``run`` (the event path itself) -> ``RunResult`` (one row per request; ``RunResult.to_frame()``
  names every code; ``engine`` and ``events_needed`` say which way ran and why);
  ``Outcome``, ``DropReason`` (the codes of its outcome and reason columns)
- measure: ``summarize``, ``summarize_service`` (per Service counts, shares, the chi-square test, the verdict);
  ``chi_square_gof``, ``chi_square_power``, ``ChiSquare``
- sweep: ``sweep`` (every design point x replication, resumable) on ``Serial``, ``Processes`` or ``Dask``
- ``__version__``

These names are loaded on first use (a module ``__getattr__``, PEP 562), so that ``import sim`` and the
``sim`` command start without numpy, SimPy, scipy or pandas until a command needs them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # what type checkers and editors see; at run time each name is imported on first use
    from sim.engine import run
    from sim.errors import SpecError
    from sim.experiment.analysis import summarize, summarize_service
    from sim.experiment.executors import Dask, Processes, Serial
    from sim.experiment.sweep import sweep
    from sim.facade import simulate
    from sim.io import load_experiment, load_scenario, load_topology
    from sim.outcomes import DropReason, Outcome
    from sim.records import RunResult
    from sim.scenario import Scenario, Stream
    from sim.solver import events_needed
    from sim.stats import ChiSquare, chi_square_gof, chi_square_power
    from sim.version import __version__

_WHERE = {
    "ChiSquare": "sim.stats",
    "Dask": "sim.experiment.executors",
    "DropReason": "sim.outcomes",
    "Outcome": "sim.outcomes",
    "Processes": "sim.experiment.executors",
    "RunResult": "sim.records",
    "Scenario": "sim.scenario",
    "Serial": "sim.experiment.executors",
    "SpecError": "sim.errors",
    "Stream": "sim.scenario",
    "chi_square_gof": "sim.stats",
    "chi_square_power": "sim.stats",
    "events_needed": "sim.solver",
    "load_experiment": "sim.io",
    "load_scenario": "sim.io",
    "load_topology": "sim.io",
    "run": "sim.engine",
    "simulate": "sim.facade",
    "summarize": "sim.experiment.analysis",
    "summarize_service": "sim.experiment.analysis",
    "sweep": "sim.experiment.sweep",
    "__version__": "sim.version",
}
"""Each public name and the module that defines it."""

__all__ = [
    "ChiSquare",
    "Dask",
    "DropReason",
    "Outcome",
    "Processes",
    "RunResult",
    "Scenario",
    "Serial",
    "SpecError",
    "Stream",
    "__version__",
    "chi_square_gof",
    "chi_square_power",
    "events_needed",
    "load_experiment",
    "load_scenario",
    "load_topology",
    "run",
    "simulate",
    "summarize",
    "summarize_service",
    "sweep",
]


def __getattr__(name: str) -> Any:
    """A public name, imported from its module on first use (then cached in this module's namespace)."""
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'sim' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    """The module's names, the lazily loaded public ones included."""
    return sorted(set(globals()) | set(__all__))
