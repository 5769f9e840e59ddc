"""Simulate how Kubernetes Services route traffic across a cluster, and test what you see with statistics.

>>> from sim import load_scenario, run, summarize
"""

from sim.engine import run
from sim.errors import SpecError
from sim.experiment.analysis import summarize, summarize_service
from sim.experiment.executors import Dask, Processes, Serial
from sim.experiment.sweep import sweep
from sim.fastpath import fast_path_problem, run_fast
from sim.io import load_experiment, load_scenario, load_topology
from sim.outcomes import DropReason, Outcome
from sim.records import RunResult
from sim.scenario import Scenario, Stream
from sim.stats import ChiSquare, chi_square_gof, chi_square_power
from sim.version import __version__

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
    "fast_path_problem",
    "load_experiment",
    "load_scenario",
    "load_topology",
    "run",
    "run_fast",
    "summarize",
    "summarize_service",
    "sweep",
]
