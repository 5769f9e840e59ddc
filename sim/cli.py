"""Command line: ``sim run``, ``validate``, ``sweep``, ``plot``, ``report``, ``routes``, ``import``, ``emulate``.

Every problem with what the user gave (a file, a flag, a results directory, an output path) is a SpecError and
ends here as ``sim: error: FILE: FIELD: PROBLEM`` on stderr, exit 2, before anything is written. A closed pipe
(``sim run ... | head``) ends quietly, and Ctrl-C ends with one line and exit 130.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import re
import shlex
import sys
import time
from collections.abc import Sequence
from contextvars import ContextVar
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from sim.errors import SpecError, one_line
from sim.version import __version__

if TYPE_CHECKING:
    from sim import guards
    from sim.experiment.executors import Executor
    from sim.experiment.metrics import ServiceSummary
    from sim.scenario import Scenario

# The rest of sim is imported inside the functions that need it, so that `sim --help` and a bad flag answer
# without loading numpy's dependents, SimPy, scipy or pandas (cold start, tests/test_cold_start.py).

EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141
"""128 + SIGPIPE, as a shell reports a process the pipe's reader went away from."""

_VERBOSITY: ContextVar[int] = ContextVar("sim_verbosity", default=0)
"""-1 with -q (errors only), 0 by default, 1 or more with -v: set by ``main`` for the command it runs."""


class _Parser(argparse.ArgumentParser):
    """argparse, with a bad flag reported as the one line every bad input gets (no usage block)."""

    def error(self, message: str) -> NoReturn:
        """Print ``sim: error: PROBLEM (see PROG --help)`` and exit 2."""
        self.exit(EXIT_BAD_INPUT, f"sim: error: {one_line(message)} (see `{self.prog} --help`)\n")


def _chatter(parser: argparse.ArgumentParser, *, top: bool) -> None:
    """-q and -v, on the top-level parser and on each command (``sim -q run`` and ``sim run -q`` alike)."""
    default: dict[str, Any] = {} if top else {"default": argparse.SUPPRESS}
    quiet = "print errors only: no notes, warnings or progress bar"
    parser.add_argument("-q", "--quiet", action="store_true", help=quiet, **default)
    parser.add_argument("-v", "--verbose", action="count", help="say more: estimates, timings", **default)


def _max_memory(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--max-memory",
        type=_size,
        metavar="SIZE",
        help="memory a run may plan to use, e.g. 8G (default: 75%% of this machine's memory, or SIM_MAX_MEMORY)",
    )


def _set(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="PATH=VALUE",
        help=f"override {what} by dotted path (VALUE read as TOML; a bare word is a string); all are applied "
        "together before validation",
    )


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="sim", description="Simulate how Kubernetes Services route traffic, and test the spread statistically."
    )
    parser.add_argument("--version", action="version", version=f"sim (k8s-service-sim) {__version__}")
    _chatter(parser, top=True)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    p_run = sub.add_parser("run", help="run one scenario and print a table per Service (or JSON)")
    p_run.add_argument("file", help="scenario TOML file, e.g. experiments/cilium_demo.toml (or an experiment spec)")
    _objects_run_arguments(p_run)
    p_run.add_argument("--seed", type=_seed, help="root seed, a whole number >= 0 (default: the file's seed, else 0)")
    p_run.add_argument("--requests", type=_non_negative, help="requests per client stream (overrides the file)")
    p_run.add_argument("--alpha", type=_alpha, default=0.01, help="significance level of the verdict, in (0, 1)")
    p_run.add_argument("--json", action="store_true", help="print exactly one JSON object instead of tables")
    p_run.add_argument("--out", metavar="PATH", help="also write the JSON summary to PATH (atomically)")
    p_run.add_argument(
        "--engine",
        choices=("des", "fast", "auto"),
        default="des",
        help="des: the SimPy simulation (default); fast: the vectorised fast path, refused where it is not exact; "
        "auto: fast where exact, else des (says which and why on stderr)",
    )
    _run_plot_argument(p_run)
    p_run.add_argument(
        "--point", type=_non_negative, help="for an experiment spec: the design point to run (default: 0)"
    )
    _set(p_run, "a scenario field (or, for a spec, a base-scenario field or replications/root_seed)")
    _max_memory(p_run)
    _chatter(p_run, top=False)
    p_val = sub.add_parser("validate", help="check a scenario file and exit 0, or print its first problem and exit 2")
    p_val.add_argument("file")
    _set(p_val, "a scenario field (or, for a spec, a base-scenario field or replications/root_seed)")
    _max_memory(p_val)
    _chatter(p_val, top=False)
    _sweep_parsers(sub)
    _kubernetes_parsers(sub)
    _report_parser(sub)
    _emulate_parser(sub)
    return parser


def _sweep_parsers(sub: Any) -> None:
    p_sweep = sub.add_parser(
        "sweep", help="run an experiment spec: every design point x replication, in parallel, resumable"
    )
    p_sweep.add_argument("spec", help="experiment spec TOML, e.g. experiments/latency_locality_tradeoff.toml")
    _set(p_sweep, "a base-scenario field, or the spec's replications or root_seed")
    p_sweep.add_argument("--out", metavar="DIR", help="results directory (default: results/<experiment name>)")
    p_sweep.add_argument("--workers", type=_positive, help="local worker processes (default: every core)")
    where = p_sweep.add_mutually_exclusive_group()
    where.add_argument("--serial", action="store_true", help="run in this process, one run after another")
    where.add_argument("--scheduler", metavar="ADDRESS", help="a Dask scheduler, e.g. tcp://host:8786")
    where.add_argument("--dask-local", action="store_true", help="start a Dask LocalCluster of --workers workers")
    p_sweep.add_argument("--fail-fast", action="store_true", help="stop at the first failed run")
    p_sweep.add_argument(
        "--engine",
        choices=("des", "fast", "auto"),
        help="override the spec's [experiment] engine: des (default), fast (refused unless exact for every design "
        "point), auto (the fast path where it is exact, else the DES; records say which)",
    )
    _max_memory(p_sweep)
    _chatter(p_sweep, top=False)
    p_plot = sub.add_parser(
        "plot", help="draw a run's figures (from `sim run --out RUN.json`) or a sweep's (from its results directory)"
    )
    p_plot.add_argument("results", help="a results directory written by `sim sweep`, or a `sim run --out` JSON file")
    p_plot.add_argument(
        "--out", metavar="DIR", help="where to write the figures (default: RESULTS/figures, or RUN-figures/ beside RUN)"
    )
    p_plot.add_argument("--x", help="factor on the x axis of the trade-off (default: the spec's [plot] x)")
    p_plot.add_argument("--line", help="factor drawn as one line each (default: the spec's [plot] line)")
    p_plot.add_argument("--service", help="the Service to plot (default: the first)")
    p_plot.add_argument(
        "--at",
        action="append",
        default=[],
        metavar="FACTOR=LEVEL",
        help="the design point of the per-run figures (default: each factor's last level)",
    )
    _chatter(p_plot, top=False)


def _whole(text: str, minimum: int, words: str) -> int:
    from sim import guards

    try:
        value = int(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {words}, got {text!r}") from None
    if value < minimum or value > guards.MAX_FLAG_INT:
        raise argparse.ArgumentTypeError(f"expected {words}, got {value}")
    return value


def _positive(text: str) -> int:
    return _whole(text, 1, "a whole number >= 1")


def _non_negative(text: str) -> int:
    return _whole(text, 0, "a whole number >= 0")


def _seed(text: str) -> int:
    from sim import guards

    return _whole(text, 0, f"a whole number from 0 to {guards.MAX_FLAG_INT}")


def _positive_float(text: str) -> float:
    """A finite number > 0 (NaN, inf, 0 and negatives refused)."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"expected a finite number > 0, got {text[:80]!r}")
    return value


def _alpha(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a significance level in (0, 1), e.g. 0.01, got {text!r}") from None
    if not (math.isfinite(value) and 0 < value < 1):
        raise argparse.ArgumentTypeError(f"expected a significance level in (0, 1), e.g. 0.01, got {text!r}")
    return value


def _size(text: str) -> int:
    from sim import guards

    try:
        return guards.parse_size(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _note(text: str) -> None:
    """A note on stderr (``sim: ...``), unless -q."""
    if _VERBOSITY.get() >= 0:
        print(f"sim: {one_line(text)}", file=sys.stderr)


def _detail(text: str) -> None:
    """A detail on stderr, only with -v."""
    if _VERBOSITY.get() > 0:
        print(f"sim: {one_line(text)}", file=sys.stderr)


def _warn(file: str, text: str) -> None:
    """A warning on stderr (``sim: warning: FILE: ...``): allowed, but probably not meant; unless -q."""
    if _VERBOSITY.get() >= 0:
        print(f"sim: warning: {one_line(file)}: {one_line(text)}", file=sys.stderr)


def _plural(n: int, word: str) -> str:
    """``1 pod``, ``2 pods``."""
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``sim`` command; returns the exit code."""
    from sim import guards
    from sim.io.output import forget_reads

    verbosity = None
    try:
        try:
            args = _parser().parse_args(argv)
        except SystemExit as e:  # --help, --version and bad flags: argparse has printed what it had to say
            return e.code if isinstance(e.code, int) else EXIT_BAD_INPUT
        verbosity = _VERBOSITY.set(-1 if args.quiet else min(args.verbose or 0, 2))
        forget_reads()  # the files this command reads are the ones it may not write over
        commands = {
            "sweep": _sweep,
            "plot": _plot,
            "report": _report,
            "routes": _routes,
            "import": _import,
            "emulate": _emulate,
        }
        with guards.max_memory(getattr(args, "max_memory", None)):
            if args.command == "run" and _objects_run(args):
                code = _run_objects(args)
            else:
                code = commands.get(args.command, _run)(args)
        sys.stdout.flush()  # here, not at exit: a closed pipe is reported below, not as a traceback at shutdown
        return code
    except SpecError as e:
        return _error(e)
    except KeyboardInterrupt:
        print("sim: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        _stdout_to_devnull()
        return EXIT_BROKEN_PIPE
    except OSError as e:  # a path the kernel refuses (too long, a loop, no permission) met outside the readers
        return _error(SpecError(str(e.filename or ""), "", f"cannot be used: {e.strerror or e}"))
    finally:
        if verbosity is not None:
            _VERBOSITY.reset(verbosity)


def _stdout_to_devnull() -> None:
    """The reader of stdout went away: point stdout at /dev/null so that the flush at exit cannot fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # stdout is not a file descriptor (a test's capture): nothing to flush
        pass


def _load(args: argparse.Namespace) -> tuple[Scenario, Any]:
    """The scenario ``sim run`` / ``validate`` acts on, and its seed: a scenario file with its ``--set``s, or one
    design point of a spec (``--point``) at replication 0."""
    from sim.io import is_experiment, load_experiment, load_scenario, load_scenario_set, parse_scenario, parse_set

    sets = dict(parse_set(text) for text in args.set)
    overrides: dict[str, Any] = {}
    if getattr(args, "seed", None) is not None:
        overrides["seed"] = args.seed
    if getattr(args, "requests", None) is not None:
        overrides["requests"] = args.requests
    if not is_experiment(args.file):
        if getattr(args, "point", None) is not None:
            raise SpecError(args.file, "--point", "is for an experiment spec; this is a scenario file")
        return load_scenario_set(args.file, sets, overrides) if sets else load_scenario(args.file, overrides)
    experiment = load_experiment(args.file, sets)
    n = len(experiment.design_points)
    index = args.point if args.point is not None else 0
    if index >= n:
        raise SpecError(args.file, "--point", f"must be a design point from 0 to {n - 1}, got {index}")
    point = experiment.design_points[index]
    from sim.experiment.sweep import replication_seed

    overrides.setdefault("seed", replication_seed(experiment.root_seed, 0))
    scenario, seed = parse_scenario(point.table, point.anchor, overrides)
    at = ", ".join(f"{k}={v!r}" for k, v in point.factors.items()) or "no factors"
    _note(
        f"experiment {experiment.name}: running design point {index} of {n} ({at}) at replication 0"
        + (f"; --point 0..{n - 1} picks another" if n > 1 else "")
    )
    return scenario, seed


def _refuse(file: str, est: guards.Estimate, runs_at_once: int = 1) -> None:
    """Raise the SpecError of a run that must not start (see sim.guards.refusal)."""
    from sim import guards

    why = guards.refusal(est, runs_at_once=runs_at_once)
    if why is not None:
        raise SpecError(file, *why)


def _validate_experiment(args: argparse.Namespace) -> int:
    """``sim validate SPEC``: every design point checked, with the sweep's size and its largest run's estimate."""
    from sim import guards
    from sim.io import load_experiment, parse_set

    experiment = load_experiment(args.file, dict(parse_set(text) for text in args.set))
    n = len(experiment.design_points)
    estimates = [guards.estimate(p.scenario) for p in experiment.design_points]
    for est in estimates:
        _refuse(args.file, est)
    requests = sum(e.requests for e in estimates) * experiment.replications
    largest = max(e.memory_bytes for e in estimates)
    print(
        f"{one_line(args.file)}: ok (experiment {one_line(experiment.name)}: {_plural(n, 'design point')} x "
        f"{_plural(experiment.replications, 'replication')} = {_plural(n * experiment.replications, 'run')}; "
        f"~{requests:,.0f} requests in all, ~{guards.size_text(largest)} of memory for the largest run)"
    )
    return 0


def _run(args: argparse.Namespace) -> int:
    """``sim run`` and ``sim validate``."""
    from sim.io import is_experiment

    if args.command == "validate" and is_experiment(args.file):
        return _validate_experiment(args)
    scenario, seed = _load(args)
    return _execute(args, scenario, seed)


def _execute(args: argparse.Namespace, scenario: Scenario, seed: Any) -> int:
    """Check a loaded scenario against the guards and its output paths, then validate (print ok) or run it on the
    engine ``--engine`` asks for and print it (and ``--out``, ``--plot``)."""
    from sim import guards
    from sim.facade import EventsNeeded, choose
    from sim.io import check_directory, check_file, dumps_json, write_file
    from sim.io.output import STDOUT

    try:
        choice = choose(scenario, getattr(args, "engine", "des"))
    except EventsNeeded as e:
        raise SpecError(args.file, "--engine fast", str(e)) from None
    engine, problem = choice.engine, choice.events_needed
    est = guards.estimate(scenario, fast=engine == "fast")
    _refuse(args.file, est)
    inputs = [args.file, *getattr(args, "more", [])]
    if args.command == "run" and args.out is not None:
        check_file(args.out, "--out", inputs=inputs, stdout=True)
    if args.command == "run" and args.plot is not None:
        check_directory(args.plot, "--plot")
    if args.command == "run":
        _refuse_calls(args.file, scenario)
    for warning in guards.warnings(scenario):
        _warn(args.file, warning)
    if args.command == "validate":
        fast = "exact" if problem is None else f"no ({problem})"
        sizes = [_plural(len(scenario.pods), "pod"), _plural(len(scenario.services), "service")]
        sizes.append(_plural(len(scenario.streams), "stream"))
        print(f"{one_line(args.file)}: ok ({', '.join(sizes)}; fast path: {fast}; estimate: {est.describe()})")
        for line in scenario.call_graph.describe():
            print(one_line(line))
        return 0
    if args.engine == "auto":
        why = f"the fast path is not exact here: {problem}" if problem else "the fast path is exact here"
        _note(f"engine auto -> {engine}: {why}")
    _detail(f"estimate: {est.describe()}")
    from sim.experiment.rundoc import run_document

    started = time.perf_counter()
    result = choice.run(seed)
    _detail(f"simulated {len(result):,} requests in {time.perf_counter() - started:.2f} s")
    summary = {
        **run_document(result, alpha=args.alpha, command=_run_command(args)),
        "engine": engine,
        "version": __version__,
    }
    text = dumps_json(summary)
    as_json = args.json or args.out == STDOUT  # `--out -`: the JSON summary is what stdout holds
    if args.out is not None and args.out != STDOUT:
        write_file(args.out, text, "--out", inputs=inputs)
    print(text, end="") if as_json else print(format_summary(scenario, summary))
    if args.plot is not None:
        return _plot_run(summary, Path(args.plot), quiet=as_json)
    return 0


def _refuse_calls(file: str, scenario: Scenario) -> None:
    """A call graph the event path does not run yet (``sim.engine.calls.not_run``) is refused in one line."""
    if not scenario.call_graph:
        return
    from sim.engine.calls import not_run  # here: SimPy is imported only where a call graph is run

    problem = not_run(scenario)
    if problem is not None:
        fld, _, why = problem.partition(": ")
        raise SpecError(file, fld, why)


def _pct(x: float | None) -> str:
    return "-" if x is None or x != x else f"{x:.1%}"


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None or seconds != seconds else f"{seconds * 1e3:.3f} ms"


def format_summary(scenario: Scenario, summary: dict[str, Any]) -> str:
    """The human tables of ``sim run``: one block per Service, read through the typed ``ServiceSummary``."""
    from sim.experiment.metrics import services_from_json
    from sim.rng import seed_text

    out = [
        f"scenario {summary['scenario']}  seed {seed_text(summary['seed'])}  dataplane {summary['dataplane']}  "
        f"simulated {summary['end_s']:.3f} s"
    ]
    for s in services_from_json(summary).values():
        out.extend(_service_lines(scenario, s))
    return "\n".join(out)


def _service_lines(scenario: Scenario, s: ServiceSummary) -> list[str]:
    """One Service's block of ``format_summary``."""
    svc = scenario.service(s.name)
    clients = sorted({f"{st.client}@{scenario.origin(st.client)}" for st in scenario.streams if st.service == s.name})
    callers = [a for a, b in scenario.call_graph.edges() if b == s.name]
    called = f"  called by: {', '.join(callers)} (sent: the calls received)" if callers else ""
    out = [
        "",
        f"Service {s.name}  internalTrafficPolicy={svc.internal_traffic_policy}  "
        f"externalTrafficPolicy={svc.external_traffic_policy}  clients: {', '.join(clients)}{called}",
        f"  sent {s.sent}  completed {s.completed}  dropped {s.dropped}  "
        f"in flight {s.in_flight}  violations {s.violations}",
    ]
    routed = sum(s.routed_by_endpoint.values())
    node_expected: dict[str, float] = {}
    for pod, share in s.expected_share.items():
        node = scenario.pod(pod).node
        node_expected[node] = node_expected.get(node, 0.0) + share
    replies = max(s.completed, 1)
    out.append(f"  {'replies by node':<28}{'replies':>9}{'share':>9}{'expected':>10}")
    for node in sorted(set(s.by_node) | set(node_expected)):
        n = s.by_node.get(node, 0)
        out.append(f"  {node:<28}{n:>9}{n / replies:>9.1%}{node_expected.get(node, 0.0):>10.1%}")
    out.append(f"  {'new connections by pod':<28}{'picked':>9}{'share':>9}{'expected':>10}{'replies':>9}")
    for pod, n in s.routed_by_endpoint.items():
        share = n / routed if routed else 0.0
        out.append(f"  {pod:<28}{n:>9}{share:>9.1%}{s.expected_share.get(pod, 0.0):>10.1%}{s.by_endpoint[pod]:>9}")
    out.extend(_verdict_lines(s))
    lat = s.latency_s
    out.append(f"  latency (completed): mean {_ms(lat['mean'])}  p50 {_ms(lat['p50'])}  p99 {_ms(lat['p99'])}")
    drops = ", ".join(f"{reason} {n}" for reason, n in s.drops.items()) or "none"
    waited = f" (the client learned after {s.failed_after_s:.3f} s on average)" if s.dropped else ""
    out.append(f"  drops: {drops}{waited}")
    picks = s.picks
    out.append(
        f"  cross-node {_pct(s.cross_node_fraction)}  cross-zone {_pct(s.cross_zone_fraction)}  "
        f"source IP kept {_pct(s.source_preserved_fraction)}  picker {', '.join(s.pickers) or '-'}  "
        f"picks: {picks['fresh']} fresh, {picks['affinity']} by affinity, {picks['reused_connection']} on open "
        "connections"
    )
    out.append(f"  topology hints: {s.hints}")
    if s.timed_out or s.retries:
        out.append(f"  timed out {s.timed_out}  retries {s.retries}")
    parts = s.latency_parts_s
    if s.completed:
        out.append(
            f"  latency legs (mean): out {_ms(parts['network_out'])}  queue {_ms(parts['queue_wait'])}  "
            f"service {_ms(parts['service'])}  back {_ms(parts['network_back'])}"
        )
    busy = ", ".join(f"{pod} {m['utilization']:.0%}" for pod, m in s.pods.items())
    if busy:
        out.append(f"  backend utilisation: {busy}")
    return out


def _verdict_lines(s: ServiceSummary) -> list[str]:
    """The test's lines of a Service's table: the combined statistic, how it was combined, and the verdict."""
    cs = s.chi_square
    pvalue = "-" if cs.pvalue != cs.pvalue else f"{cs.pvalue:.4f}"  # NaN: no p-value applies
    # the statistic is Pearson's X^2 whatever decided the p-value; name the test that did (exact, Monte Carlo)
    test = "chi-square" if cs.method == "chi-square" else f"{cs.method} test: statistic"
    lines = [f"  {test} {cs.statistic:.3f}  dof {cs.dof}  p-value {pvalue}  Cohen's w {cs.cohens_w:.4f}"]
    if len(s.groups) > 1:
        lines.append(
            f"  tested per group (requests whose routes expect the same shares): {len(s.groups)} groups, dof "
            f"{' + '.join(str(g.dof) for g in s.groups)}, statistics summed; each group in --json"
        )
    lines.append(f"  verdict: {s.verdict}")
    return lines


def _error(e: SpecError | str) -> int:
    print(f"sim: error: {one_line(str(e))}", file=sys.stderr)
    return EXIT_BAD_INPUT


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
    for point in experiment.design_points:
        _refuse_calls(args.spec, point.scenario)
    estimates = [guards.estimate(p.scenario) for p in experiment.design_points]
    largest = max(estimates, key=lambda e: e.memory_bytes)
    for est in (*(e for e in estimates if e.unbounded or e.requests > guards.MAX_RECORDS), largest):
        _refuse(args.spec, est, runs_at_once=min(at_once, len(estimates) * experiment.replications))
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
        check_directory(args.out if args.out is not None else out, "--out" if args.out else "figures directory")
        try:
            return _plot_run(doc, out)
        except (KeyError, TypeError, ValueError, IndexError) as e:  # a hand-edited file load_run let through
            return _error(f"{args.results}: cannot be drawn: {type(e).__name__}: {e}")
    info, records = load_results(args.results)
    at = dict(parse_set(text) for text in args.at)
    out = Path(args.out) if args.out is not None else Path(args.results) / "figures"
    check_directory(args.out if args.out is not None else out, "--out" if args.out else "figures directory")
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


# --- Kubernetes objects: sim routes, sim import, sim run FILE... --client --service ------------------------------


def _objects_run_arguments(p_run: argparse.ArgumentParser) -> None:
    p_run.add_argument("more", nargs="*", metavar="FILE", help="more Kubernetes object files or directories")
    p_run.add_argument("--client", metavar="NS/POD", help="Kubernetes objects: the pod that sends")
    p_run.add_argument("--service", metavar="NS/NAME", help="Kubernetes objects: the Service it calls")
    p_run.add_argument("--port", metavar="PORT", help="Kubernetes objects: the Service port, by name or number")
    p_run.add_argument(
        "--rate",
        type=_positive_float,
        metavar="RPS",
        help="Kubernetes objects: Poisson requests/s (default: curl in a loop)",
    )


def _kubernetes_parsers(sub: Any) -> None:
    from sim.routing import DATAPLANES

    p_routes = sub.add_parser(
        "routes", help="for every Service and node: the endpoints a new connection may use, with shares, and why"
    )
    p_routes.add_argument(
        "files",
        nargs="+",
        metavar="FILE",
        help="a scenario TOML, or Kubernetes objects (files, "
        "directories, - for stdin), e.g. the output of kubectl get nodes,pods,services,"
        "endpointslices -A -o yaml",
    )
    p_routes.add_argument(
        "--dataplane",
        choices=sorted(DATAPLANES),
        help="the proxy (default: the scenario's; for objects iptables, kube-proxy's default)",
    )
    p_routes.add_argument("--service", metavar="NS/NAME", help="only this Service")
    p_routes.add_argument("--node", metavar="NODE", help="only from this node")
    p_routes.add_argument("--json", action="store_true", help="print exactly one JSON object")
    p_import = sub.add_parser(
        "import",
        help="write cluster state (Kubernetes objects) and traces (Jaeger or OTLP JSON) as an editable scenario",
    )
    p_import.add_argument(
        "files",
        nargs="+",
        metavar="FILE",
        help="Kubernetes objects (files, directories, -) and trace exports (Jaeger or OTLP JSON files), in any mix",
    )
    p_import.add_argument(
        "-o",
        "--out",
        required=True,
        metavar="SCENARIO",
        help="the scenario TOML to write; its topology goes beside it as <name>-topology.toml",
    )


def _is_objects(files: Sequence[str]) -> bool:
    from sim.io.cluster.objects import OBJECT_SUFFIXES

    return any(f == "-" or Path(f).is_dir() or Path(f).suffix in OBJECT_SUFFIXES for f in files)


def _objects_run(args: argparse.Namespace) -> bool:
    """Whether ``sim run`` was given Kubernetes objects (then --client and --service say what to run)."""
    return bool(
        args.more or args.client or args.service or args.port or args.rate is not None or _is_objects([args.file])
    )


def _notes(notes: Sequence[str]) -> None:
    for note in notes:
        _note(f"note: {note}")


def _load_objects(
    files: Sequence[str],
    dataplane: str,
    streams: list[dict[str, Any]],
    notes: list[str],
    need_streams: bool = True,
    sets: Sequence[str] = (),
) -> tuple[Scenario, int]:
    """Kubernetes objects as a Scenario, through the scenario reader (``cluster = [...]``), with ``--set``s
    applied; a problem in a stream built from flags is put on the flag."""
    from sim.io import parse_scenario, parse_set
    from sim.io.experiment import parse_scenario_set
    from sim.io.scenario import objects_table

    table = {**objects_table(list(files), dataplane), "streams": streams}
    where = Path("(command line)")
    try:
        if sets:
            return parse_scenario_set(table, where, dict(parse_set(text) for text in sets), notes=notes)
        return parse_scenario(table, where, need_streams=need_streams, notes=notes)
    except SpecError as e:
        flags = {
            "streams[0].client": "--client",
            "streams[0].service": "--service",
            "streams[0].workload.rate_rps": "--rate",
            "streams[0].port": "--port",
        }
        if e.path == "(command line)" and e.field in flags:
            raise SpecError(flags[e.field], "", e.problem) from None
        raise


def _routes(args: argparse.Namespace) -> int:
    """``sim routes``: what each node's proxy programs for each Service (human table or --json)."""
    from sim.io import dumps_json, is_experiment, load_experiment, load_scenario, parse_scenario
    from sim.routes import format_routes, routes

    notes: list[str] = []
    try:
        if len(args.files) == 1 and not _is_objects(args.files):
            if is_experiment(args.files[0]):
                point = load_experiment(args.files[0]).design_points[0]
                scenario = parse_scenario(point.table, point.anchor, need_streams=False, notes=notes)[0]
            else:
                scenario = load_scenario(args.files[0], need_streams=False, notes=notes)[0]
        else:
            scenario = _load_objects(args.files, "iptables", [], notes, need_streams=False)[0]
        if args.dataplane:
            # the scenario's proxy options (its local-traffic detector...) stay; only its picker is the new one's
            dataplane = dataclasses.replace(scenario.dataplane, name=args.dataplane, picker="")
            scenario = dataclasses.replace(scenario, dataplane=dataplane)
        if args.service is not None and args.service not in {s.name for s in scenario.services}:
            raise SpecError(
                "--service", "", f"no Service {args.service!r}; the Services are {[s.name for s in scenario.services]}"
            )
        if args.node is not None and args.node not in scenario.topology.nodes:
            raise SpecError("--node", "", f"no node {args.node!r}; the nodes are {list(scenario.topology.nodes)}")
    except SpecError as e:
        return _error(e)
    _notes(notes)
    table = routes(scenario, args.service, args.node)
    print(dumps_json(table), end="") if args.json else print(format_routes(scenario, table))
    return 0


def _import(args: argparse.Namespace) -> int:
    """``sim import``: Kubernetes objects and/or trace exports -> an editable scenario file and its topology file."""
    from sim.io import check_file, write_file
    from sim.io.importer import default_streams, scenario_text, topology_text

    notes: list[str] = []
    try:
        out = check_file(args.out, "-o", inputs=args.files) or Path(args.out)
        topology_file = out.with_name(f"{out.stem}-topology.toml")
        scenario, extra, traced, client = _imported(args.files, out.stem, notes)
        streams = default_streams(scenario, skip=sorted(_callees(extra)), client=client)
        scenario = dataclasses.replace(scenario, name=out.stem)
        texts = {
            topology_file: topology_text(scenario.topology),
            out: scenario_text(scenario, topology_file.name, args.files, streams, extra),
        }
        for path in texts:  # both, before either is written
            check_file(path, "-o", inputs=args.files)
        for path, text in texts.items():
            write_file(path, text, "-o", inputs=args.files)
    except SpecError as e:
        return _error(e)
    _notes(notes)
    if not streams:
        _note("note: no pods to send from: add [[streams]] before `sim run`")
    print(
        f"wrote {out} ({len(scenario.pods)} pods, {len(scenario.services)} services, {len(streams)} streams) "
        f"and {topology_file}"
    )
    if traced is not None:
        from sim.traces import describe

        print("\n".join(describe(traced)))
    return 0


def _imported(files: Sequence[str], name: str, notes: list[str]) -> tuple[Scenario, dict[str, Any], Any, str | None]:
    """What ``sim import`` reads: the cluster (Kubernetes objects, or one made for traces given alone, with the
    pod to send from), and the call graph the traces show mapped onto its Services (their keys by Service)."""
    from sim.io.importer import traced_cluster, with_traces
    from sim.io.tracefiles import read_spans, split_traces
    from sim.traces import derive

    traces, objects = split_traces(files)
    traced = derive(read_spans(traces)) if traces else None
    client = None
    if objects or traced is None:
        scenario = _load_objects(objects, "iptables", [], notes, need_streams=False)[0]
    else:
        scenario = traced_cluster(traced, name)
        notes.append(
            f"no Kubernetes objects: a cluster of one node {scenario.pods[0].node!r} with one pod per traced service "
            f"({', '.join(p.name for p in scenario.pods[:-1])}) and a client pod {scenario.pods[-1].name!r}"
        )
        client = scenario.pods[-1].name
    if traced is None:
        return scenario, {}, None, client
    notes.extend(traced.notes)
    scenario, extra, more = with_traces(scenario, traced)
    notes.extend(more)
    return scenario, extra, traced, client


def _callees(extra: dict[str, Any]) -> set[str]:
    """The Services some ``calls`` entry names (directly or in a ``parallel`` stage)."""
    out: set[str] = set()
    for entries in extra.values():
        for call in entries.get("calls", []):
            out.update(c["service"] for c in call.get("parallel", [call]))
    return out


def _run_objects(args: argparse.Namespace) -> int:
    """``sim run FILE... --client NS/POD --service NS/NAME``: one stream straight from Kubernetes objects."""
    if not _is_objects([args.file, *args.more]):
        flags = (("--client", args.client), ("--service", args.service), ("--rate", args.rate))
        given = [flag for flag, value in flags if value is not None]
        return _error(
            f"{args.file}: {', '.join(given) or 'more files'}: for Kubernetes objects (YAML/JSON); this scenario's "
            "[[streams]] say who calls which Service: drop the flag, or change a stream with --set, e.g. "
            "--set streams.0.service=NAME"
        )
    if not args.client or not args.service:
        return _error(f"{args.file}: Kubernetes objects: give --client NS/POD and --service NS/NAME to run them")
    workload = {"kind": "poisson", "rate_rps": args.rate} if args.rate is not None else {"kind": "closed_loop"}
    stream = {
        "client": args.client,
        "service": args.service,
        "requests": 1000 if args.requests is None else args.requests,
        "workload": workload,
        **({"port": args.port} if args.port else {}),
    }
    notes: list[str] = []
    try:
        scenario, seed = _load_objects([args.file, *args.more], "iptables", [stream], notes, sets=args.set)
    except SpecError as e:
        return _error(e)
    _notes(notes)
    return _execute(args, scenario, args.seed if args.seed is not None else seed)


def _run_command(args: argparse.Namespace) -> list[str]:
    """The ``sim run`` command that redoes this run: the file and the flags that change its result (not where
    the output goes, so ``--json`` and ``--out`` write the same bytes)."""
    words = ["sim", "run", args.file, *getattr(args, "more", [])]
    for flag, value in (
        ("--client", getattr(args, "client", None)),
        ("--service", getattr(args, "service", None)),
        ("--port", getattr(args, "port", None)),
        ("--rate", getattr(args, "rate", None)),
        ("--point", getattr(args, "point", None)),
        ("--seed", args.seed),
        ("--requests", args.requests),
    ):
        if value is not None:
            words += [flag, str(value)]
    for text in args.set:
        words += ["--set", text]
    if args.alpha != 0.01:
        words += ["--alpha", str(args.alpha)]
    if args.engine != "des":
        words += ["--engine", args.engine]
    return words


def _run_plot_argument(p_run: argparse.ArgumentParser) -> None:
    p_run.add_argument("--plot", metavar="DIR", help="also draw the run's figures (PNG and SVG) into DIR")


def _plot_run(doc: dict[str, Any], out: Path, *, quiet: bool = False) -> int:
    """Write one run's figures (``sim plot RUN.json``, ``sim run --plot DIR``) and list them (on stderr if
    ``quiet``: after ``--json`` stdout holds exactly one JSON object)."""
    from sim import plots  # here: matplotlib takes a while to import, and only this command needs it

    for name, figure in plots.run_figures(doc).items():
        for path in _save_figure(plots.figure_files(figure), out / name):
            print(path, file=sys.stderr if quiet else sys.stdout)
    return 0


def _save_figure(files: dict[str, bytes], stem: Path) -> list[Path]:
    """Write one figure's files (``stem.png``, ``stem.svg``) through the one output writer; return their paths."""
    from sim.io import check_file, write_file

    paths = [stem.with_suffix(suffix) for suffix in files]
    for path in paths:  # all checked before any is written
        check_file(path, "figure")
    for path, data in zip(paths, files.values(), strict=True):
        write_file(path, data, "figure")
    return paths


def _report_parser(sub: Any) -> None:
    p_report = sub.add_parser(
        "report", help="write one self-contained HTML report of a run (`sim run --out` file) or a sweep"
    )
    p_report.add_argument("results", help="a `sim run --out` JSON file, or a results directory of `sim sweep`")
    p_report.add_argument("-o", "--out", metavar="FILE", required=True, help="the HTML file to write (atomically)")
    p_report.add_argument("--service", help="sweeps: the Service of the figures (default: the first)")


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
    except SpecError as e:
        return _error(e)
    except (KeyError, TypeError, ValueError, IndexError) as e:  # a hand-edited file the loaders let through
        return _error(f"{args.results}: cannot be reported: {type(e).__name__}: {e}")
    write_file(args.out, html, "-o", inputs=[args.results], stdout=True)
    if args.out != STDOUT:
        print(args.out)
    return 0


def _emulate_parser(sub: Any) -> None:
    """``sim emulate``: the scenario on Linux network namespaces with kube-proxy's rules, beside the simulator."""
    p = sub.add_parser(
        "emulate",
        help="run a scenario on the real kernel (network namespaces, kube-proxy's iptables/nftables rules) and "
        "compare it with the simulator; --show-rules prints the rules only",
        description="Build the scenario's nodes and pods as Linux network namespaces (nodes on one bridge, pods "
        "behind veth pairs, every address private to them), load the rules kube-proxy would write on each node, "
        "run a tiny HTTP server per backend pod and one client process per client pod (a new TCP connection per "
        "request, keep-alive if the stream says), then run the simulator on the same scenario and request count "
        "and compare per Service with a chi-square homogeneity test. Needs root and the ip, iptables / nft tools "
        "(not for --show-rules). External clients are namespaces on the same bridge; a LoadBalancer is their "
        "uniform choice of a node per connection. Everything made is removed on exit, error, Ctrl-C and SIGTERM. "
        "Not emulated, refused as bad input: latency (the kernel's own applies; timing fields are ignored), IPVS "
        "and Cilium dataplanes (use --mode to run their Services under kube-proxy), pods calling a NodePort, "
        "LoadBalancer or external IP, timelines, request timeouts, retries, queue limits, keep-alive max_age_s, "
        "non-random pickers, topologies where nodes link to routers or to each other.",
    )
    p.add_argument("file", help="scenario TOML file, e.g. experiments/local_pod_gone_iptables.toml")
    p.add_argument("--requests", type=_non_negative, help="requests per client stream (overrides the file)")
    p.add_argument("--seed", type=_non_negative, help="the simulator's seed (the kernel's randomness is its own)")
    p.add_argument(
        "--mode", choices=("iptables", "nftables"), help="kube-proxy mode (default: the scenario's dataplane)"
    )
    p.add_argument("--json", action="store_true", help="print exactly one JSON object")
    p.add_argument("--show-rules", action="store_true", help="print the rules per node and exit (no root needed)")
    p.add_argument(
        "--connect-timeout",
        type=_positive_float,
        default=1.0,
        metavar="S",
        help="the emulated clients' connect timeout in seconds, what tells a DROP (default 1)",
    )
    p.add_argument(
        "--alpha", type=_alpha, default=0.01, help="significance level of the homogeneity verdict, in (0, 1)"
    )


def _emulate(args: argparse.Namespace) -> int:
    """``sim emulate``: rules only, or the kernel run and its comparison with the simulator."""
    from sim import emulate  # here: only this command needs it
    from sim.io import dumps_json, is_experiment, load_scenario

    overrides: dict[str, Any] = {}
    if args.seed is not None:
        overrides["seed"] = args.seed
    if args.requests is not None:
        overrides["requests"] = args.requests
    try:
        if is_experiment(args.file):
            raise SpecError(args.file, "experiment", "an experiment spec: sim emulate takes a scenario file")
        scenario, seed = load_scenario(args.file, overrides)
        plan = emulate.make_plan(scenario, args.mode, args.file)
        if not 0 < args.connect_timeout <= 60:
            raise SpecError(args.file, "--connect-timeout", f"must be in (0, 60] seconds, got {args.connect_timeout}")
    except SpecError as e:
        return _error(e)
    if args.show_rules:
        print(emulate.show_rules(plan), end="")
        return 0
    from sim.emulate.netns import EmulationError, missing_tools

    missing = missing_tools(plan.mode)
    if missing:
        return _error(f"{args.file}: emulate needs {', '.join(missing)} (--show-rules needs none)")
    try:
        report = emulate.emulate(
            plan, seed, connect_timeout_s=args.connect_timeout, progress=False if _VERBOSITY.get() < 0 else None
        )
    except KeyboardInterrupt:
        print("sim: interrupted; everything the emulation made is removed", file=sys.stderr)
        return 130
    except EmulationError as e:
        print(f"sim: error: {args.file}: the kernel refused a step: {e}", file=sys.stderr)
        return 1
    print(dumps_json(report), end="") if args.json else print(emulate.format_report(report, args.alpha))
    return 0
