"""``sim sweep``, ``sim plot`` and ``sim report``: a spec's runs into a results directory, and its figures and
report."""

from __future__ import annotations

import argparse
import os
import re
import shlex
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from sim.cli.run import _plot_run, _save_figure
from sim.cli.text import _VERBOSITY, EXIT_INTERRUPTED, _detail, _error
from sim.errors import SpecError

if TYPE_CHECKING:
    from sim.experiment.executors import Executor


def _safe_name(name: str) -> str:
    """An experiment's name as a directory name: no separators, no leading dots (``..`` is not a way out).

    >>> _safe_name("my sweep/1"), _safe_name(".."), _safe_name("")
    ('my-sweep-1', 'experiment', 'experiment')
    """
    return re.sub(r"[^\w.-]+", "-", name).lstrip(".-")[:100] or "experiment"


def _sweep(args: argparse.Namespace) -> int:
    """``sim sweep``: run an experiment's missing runs, print "computed X, reused Y" and where results are."""
    from sim import guards
    from sim.experiment.executors import Dask, ExecutorLost, Processes, Serial
    from sim.experiment.sweep import sweep
    from sim.facade import checked_runs
    from sim.io import ResultDir, check_directory, load_experiment, parse_set

    started = time.perf_counter()
    sets = dict(parse_set(text) for text in args.set)
    experiment = load_experiment(args.spec, sets, args.engine)
    out = Path(args.out) if args.out is not None else Path("results") / _safe_name(experiment.name)
    executor: Executor
    if args.scheduler:
        executor, at_once = Dask(args.scheduler), 1  # the memory that counts is the workers', elsewhere
    elif args.dask_local:
        executor, at_once = Dask(workers=args.workers), args.workers or os.cpu_count() or 1
    elif args.serial:
        executor, at_once = Serial(), 1
    else:
        executor, at_once = Processes(args.workers), args.workers or os.cpu_count() or 1
    scenarios = [p.scenario for p in experiment.design_points]
    runs_at_once = min(at_once, len(scenarios) * experiment.replications)
    estimates = checked_runs(scenarios, args.spec, runs_at_once)
    largest = max(estimates, key=lambda e: e.memory_bytes)
    check_directory(args.out if args.out is not None else out, "--out" if args.out is not None else "results directory")
    n = len(experiment.design_points)
    print(
        f"experiment {experiment.name}: {n} design points x {experiment.replications} replications = "
        f"{n * experiment.replications} runs -> {out} ({executor.describe()})",
        flush=True,
    )
    total = sum(e.requests for e in estimates) * experiment.replications
    _detail(f"estimate: ~{total:,.0f} requests in all; the largest run ~{guards.size_text(largest.memory_bytes)}")
    try:
        result = sweep(
            experiment,
            ResultDir(out),
            executor,
            fail_fast=args.fail_fast,
            progress=False if _VERBOSITY.get() < 0 else None,
        )
    except KeyboardInterrupt:
        print(f"sim: interrupted; finished runs are kept in {out}: run the same command to resume", file=sys.stderr)
        return EXIT_INTERRUPTED
    except ExecutorLost as e:
        return _error(f"{e.what}; results are in {out}: rerun the same command to resume ({e.kept} runs kept)")
    print(f"{result.report()} in {time.perf_counter() - started:.1f} s")
    print(f"summary: {out / 'summary.csv'}")
    failures = [r for r in result.records if r["status"] != "ok"]
    if failures:
        first = failures[0]
        print(
            f"sim: {len(failures)} run(s) failed; first: design point {first['design_point']} replication "
            f"{first['replication']}: {first['error']} (traceback in {ResultDir(out).run_file(first['key'])})",
            file=sys.stderr,
        )
        return 1
    return 0


def _plot(args: argparse.Namespace) -> int:
    """``sim plot``: write a sweep's figures (or, given a ``sim run --out`` file, a run's) as PNG and SVG."""
    from sim.io import check_directory, load_results, load_run, parse_set

    if Path(args.results).is_file():
        doc = load_run(args.results)
        run_path = Path(args.results)
        out = Path(args.out) if args.out is not None else run_path.with_name(f"{run_path.stem}-figures")
        check_directory(
            args.out if args.out is not None else out, "--out" if args.out is not None else "figures directory"
        )
        try:
            return _plot_run(doc, out)
        except (KeyError, TypeError, ValueError, IndexError) as e:  # a hand-edited file load_run let through
            return _error(f"{args.results}: cannot be drawn: {type(e).__name__}: {e}")
    info, records = load_results(args.results)
    at = dict(parse_set(text) for text in args.at)
    out = Path(args.out) if args.out is not None else Path(args.results) / "figures"
    check_directory(args.out if args.out is not None else out, "--out" if args.out is not None else "figures directory")
    from sim import plots  # here: matplotlib takes a while to import, and only this command needs it

    try:
        figures = plots.sweep_figures(info, records, x=args.x, line=args.line, service=args.service, at=at)
    except ValueError as e:
        return _error(f"{args.results}: {e}")
    except (KeyError, TypeError, IndexError, AttributeError) as e:
        # load_results checked every field the figures read; what is left is data that does not fit together
        return _error(f"{args.results}: the results do not fit together (damaged?): {type(e).__name__}: {e}")
    for name, figure in figures.items():
        for path in _save_figure(plots.figure_files(figure), out / name):
            print(path)
    return 0


def _report(args: argparse.Namespace) -> int:
    """``sim report``: render the HTML report and write it atomically."""
    from sim import report  # here: matplotlib and jinja2 take a while to import
    from sim.io import check_file, write_file
    from sim.io.output import STDOUT

    service = ["--service", args.service] if args.service is not None else []
    command = shlex.join(["sim", "report", args.results, "-o", args.out, *service])
    try:
        check_file(args.out, "-o", inputs=[args.results], stdout=True)
        html = report.render(args.results, command=command, service=args.service)
    except SpecError:  # a ValueError too, but one main reports as it reports every input error
        raise
    except (KeyError, TypeError, ValueError, IndexError) as e:  # a hand-edited file the loaders let through
        return _error(f"{args.results}: cannot be reported: {type(e).__name__}: {e}")
    write_file(args.out, html, "-o", inputs=[args.results], stdout=True)
    if args.out != STDOUT:
        print(args.out)
    return 0
