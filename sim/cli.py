"""Command line: ``sim run``, ``validate``, ``sweep``, ``plot`` and ``report``. Bad input: one line, exit 2."""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
import shlex
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sim.errors import SpecError

if TYPE_CHECKING:
    from sim.experiment.executors import Executor
    from sim.scenario import Scenario

# The rest of sim is imported inside the functions that need it, so that `sim --help` and a bad flag answer
# without loading numpy's dependents, SimPy, scipy or pandas (issue 16, cold start).

EXIT_BAD_INPUT = 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sim", description="Simulate how Kubernetes Services route traffic, and test the spread statistically."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    p_run = sub.add_parser("run", help="run one scenario and print a table per Service (or JSON)")
    p_run.add_argument("file", help="scenario TOML file, e.g. experiments/cilium_demo.toml")
    _objects_run_arguments(p_run)
    p_run.add_argument("--seed", type=_non_negative, help="root seed (default: the file's seed, else 0)")
    p_run.add_argument("--requests", type=_non_negative, help="requests per client stream (overrides the file)")
    p_run.add_argument("--alpha", type=float, default=0.01, help="significance level of the chi-square verdict")
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
    p_val = sub.add_parser("validate", help="check a scenario file and exit 0, or print its first problem and exit 2")
    p_val.add_argument("file")
    _sweep_parsers(sub)
    _kubernetes_parsers(sub)
    _report_parser(sub)
    return parser


def _sweep_parsers(sub: Any) -> None:
    p_sweep = sub.add_parser(
        "sweep", help="run an experiment spec: every design point x replication, in parallel, resumable"
    )
    p_sweep.add_argument("spec", help="experiment spec TOML, e.g. experiments/latency_locality_tradeoff.toml")
    p_sweep.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="PATH=VALUE",
        help="override a base-scenario field by dotted path (VALUE read as TOML; a bare word is a string)",
    )
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


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _non_negative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``sim`` command; returns the exit code."""
    args = _parser().parse_args(argv)
    if args.command in ("routes", "import") or (args.command == "run" and _objects_run(args)):
        return {"routes": _routes, "import": _import, "run": _run_objects}[args.command](args)
    if args.command == "report":
        return _report(args)
    if args.command == "sweep":
        return _sweep(args)
    if args.command == "plot":
        return _plot(args)
    from sim.fastpath import fast_path_problem
    from sim.io import is_experiment, load_experiment, load_scenario, parse_scenario

    try:
        overrides: dict[str, Any] = {}
        if getattr(args, "seed", None) is not None:
            overrides["seed"] = args.seed
        if getattr(args, "requests", None) is not None:
            overrides["requests"] = args.requests
        if is_experiment(args.file):
            # An experiment spec: validate checks all of it; run runs its first design point at replication 0.
            experiment = load_experiment(args.file)
            if args.command == "validate":
                n = len(experiment.design_points)
                print(
                    f"{args.file}: ok (experiment {experiment.name}: {n} design points x "
                    f"{experiment.replications} replications = {n * experiment.replications} runs)"
                )
                return 0
            from sim.experiment.sweep import replication_seed

            point = experiment.design_points[0]
            overrides.setdefault("seed", replication_seed(experiment.root_seed, 0))
            scenario, seed = parse_scenario(point.table, point.anchor, overrides)
        else:
            scenario, seed = load_scenario(args.file, overrides)
    except SpecError as e:
        print(f"sim: error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if args.command == "validate":
        problem = fast_path_problem(scenario)
        fast = "exact" if problem is None else f"no ({problem})"
        print(
            f"{args.file}: ok ({len(scenario.pods)} pods, {len(scenario.services)} services, "
            f"{len(scenario.streams)} streams; fast path: {fast})"
        )
        return 0
    return _execute(args, scenario, seed)


def _execute(args: argparse.Namespace, scenario: Scenario, seed: int) -> int:
    """Run a loaded scenario on the engine ``--engine`` asks for, and print (and ``--out``, ``--plot``) it."""
    from sim.engine import run
    from sim.experiment.rundoc import run_document
    from sim.fastpath import fast_path_problem, run_fast
    from sim.io import dumps_json, write_atomic

    problem = fast_path_problem(scenario)
    engine = args.engine
    if engine == "fast" and problem is not None:
        print(f"sim: error: {args.file}: --engine fast: the fast path is not exact here: {problem}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if engine == "auto":
        engine = "des" if problem else "fast"
        why = f"the fast path is not exact here: {problem}" if problem else "the fast path is exact here"
        print(f"sim: engine auto -> {engine}: {why}", file=sys.stderr)
    result = (run_fast if engine == "fast" else run)(scenario, seed)
    summary = {**run_document(result, alpha=args.alpha, command=_run_command(args)), "engine": engine}
    text = dumps_json(summary)
    if args.out:
        write_atomic(args.out, text)
    _emit(text if args.json else format_summary(scenario, summary))
    if args.plot:
        return _plot_run(summary, Path(args.plot), quiet=args.json)
    return 0


def _pct(x: float | None) -> str:
    return "-" if x is None or x != x else f"{x:.1%}"


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None or seconds != seconds else f"{seconds * 1e3:.3f} ms"


def format_summary(scenario: Scenario, summary: dict[str, Any]) -> str:
    """The human tables of ``sim run``: one block per Service."""
    out = [
        f"scenario {summary['scenario']}  seed {summary['seed']}  dataplane {summary['dataplane']}  "
        f"simulated {summary['end_s']:.3f} s"
    ]
    for name, s in summary["services"].items():
        svc = scenario.service(name)
        clients = sorted({f"{st.client}@{scenario.origin(st.client)}" for st in scenario.streams if st.service == name})
        out.append("")
        out.append(
            f"Service {name}  internalTrafficPolicy={svc.internal_traffic_policy}  "
            f"externalTrafficPolicy={svc.external_traffic_policy}  clients: {', '.join(clients)}"
        )
        out.append(
            f"  sent {s['sent']}  completed {s['completed']}  dropped {s['dropped']}  "
            f"in flight {s['in_flight']}  violations {s['violations']}"
        )
        routed = sum(s["routed_by_endpoint"].values())
        node_expected: dict[str, float] = {}
        for pod, share in s["expected_share"].items():
            node = scenario.pod(pod).node
            node_expected[node] = node_expected.get(node, 0.0) + share
        replies = max(s["completed"], 1)
        out.append(f"  {'replies by node':<28}{'replies':>9}{'share':>9}{'expected':>10}")
        for node in sorted(set(s["by_node"]) | set(node_expected)):
            n = s["by_node"].get(node, 0)
            out.append(f"  {node:<28}{n:>9}{n / replies:>9.1%}{node_expected.get(node, 0.0):>10.1%}")
        out.append(f"  {'new connections by pod':<28}{'picked':>9}{'share':>9}{'expected':>10}{'replies':>9}")
        for pod, n in s["routed_by_endpoint"].items():
            share = n / routed if routed else 0.0
            out.append(
                f"  {pod:<28}{n:>9}{share:>9.1%}{s['expected_share'].get(pod, 0.0):>10.1%}{s['by_endpoint'][pod]:>9}"
            )
        out.extend(_verdict_lines(s["chi_square"]))
        lat = s["latency_s"]
        out.append(f"  latency (completed): mean {_ms(lat['mean'])}  p50 {_ms(lat['p50'])}  p99 {_ms(lat['p99'])}")
        drops = ", ".join(f"{reason} {n}" for reason, n in s["drops"].items()) or "none"
        waited = f" (the client learned after {s['failed_after_s']:.3f} s on average)" if s["dropped"] else ""
        out.append(f"  drops: {drops}{waited}")
        picks = s["picks"]
        out.append(
            f"  cross-node {_pct(s['cross_node_fraction'])}  cross-zone {_pct(s['cross_zone_fraction'])}  "
            f"source IP kept {_pct(s['source_preserved_fraction'])}  picker {', '.join(s['pickers']) or '-'}  "
            f"picks: {picks['fresh']} fresh, {picks['affinity']} by affinity, {picks['reused_connection']} on open "
            "connections"
        )
        out.append(f"  topology hints: {s['hints']}")
        if s["timed_out"] or s["retries"]:
            out.append(f"  timed out {s['timed_out']}  retries {s['retries']}")
        parts = s["latency_parts_s"]
        if s["completed"]:
            out.append(
                f"  latency legs (mean): out {_ms(parts['network_out'])}  queue {_ms(parts['queue_wait'])}  "
                f"service {_ms(parts['service'])}  back {_ms(parts['network_back'])}"
            )
        busy = ", ".join(f"{pod} {m['utilization']:.0%}" for pod, m in s["pods"].items())
        if busy:
            out.append(f"  backend utilisation: {busy}")
    return "\n".join(out)


def _verdict_lines(cs: dict[str, Any]) -> list[str]:
    """The test's lines of a Service's table: the combined statistic, how it was combined, and the verdict."""
    pvalue = "-" if cs["pvalue"] is None else f"{cs['pvalue']:.4f}"
    lines = [f"  chi-square {cs['statistic']:.3f}  dof {cs['dof']}  p-value {pvalue}  Cohen's w {cs['cohens_w']:.4f}"]
    groups = cs.get("groups", [])
    if len(groups) > 1:
        lines.append(
            f"  tested per group (requests whose routes expect the same shares): {len(groups)} groups, dof "
            f"{' + '.join(str(g['dof']) for g in groups)}, statistics summed; each group in --json"
        )
    lines.append(f"  verdict: {cs['verdict']}")
    return lines


def _error(e: SpecError | str) -> int:
    print(f"sim: error: {e}", file=sys.stderr)
    return EXIT_BAD_INPUT


def _sweep(args: argparse.Namespace) -> int:
    """``sim sweep``: run an experiment's missing runs, print "computed X, reused Y" and where results are."""
    from sim.experiment.executors import Dask, Processes, Serial
    from sim.experiment.sweep import sweep
    from sim.io import ResultDir, load_experiment, parse_set

    started = time.perf_counter()
    try:
        sets = dict(parse_set(text) for text in args.set)
        experiment = load_experiment(args.spec, sets, args.engine)
    except SpecError as e:
        return _error(e)
    out = Path(args.out) if args.out else Path("results") / re.sub(r"[^\w.-]+", "-", experiment.name)
    executor: Executor
    if args.scheduler:
        executor = Dask(args.scheduler)
    elif args.dask_local:
        executor = Dask(workers=args.workers)
    elif args.serial:
        executor = Serial()
    else:
        executor = Processes(args.workers)
    n = len(experiment.design_points)
    print(
        f"experiment {experiment.name}: {n} design points x {experiment.replications} replications = "
        f"{n * experiment.replications} runs -> {out} ({executor.describe()})",
        flush=True,
    )
    try:
        result = sweep(experiment, ResultDir(out), executor, fail_fast=args.fail_fast)
    except KeyboardInterrupt:
        print(f"sim: interrupted; finished runs are kept in {out}: run the same command to resume", file=sys.stderr)
        return 130
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
    from sim.io import load_results, load_run, parse_set

    if Path(args.results).is_file():
        try:
            doc = load_run(args.results)
        except SpecError as e:
            return _error(e)
        run_path = Path(args.results)
        out = Path(args.out) if args.out else run_path.with_name(f"{run_path.stem}-figures")
        try:
            return _plot_run(doc, out)
        except (KeyError, TypeError, ValueError, IndexError) as e:  # a hand-edited file load_run let through
            return _error(f"{args.results}: cannot be drawn: {type(e).__name__}: {e}")
    try:
        info, records = load_results(args.results)
        at = dict(parse_set(text) for text in args.at)
    except SpecError as e:
        return _error(e)
    from sim import plots  # here: matplotlib takes a while to import, and only this command needs it

    try:
        figures = plots.sweep_figures(info, records, x=args.x, line=args.line, service=args.service, at=at)
    except ValueError as e:
        return _error(f"{args.results}: {e}")
    out = Path(args.out) if args.out else Path(args.results) / "figures"
    for name, figure in figures.items():
        for path in plots.save_figure(figure, out / name):
            print(path)
    return 0


# --- Kubernetes objects: sim routes, sim import, sim run FILE... --client --service ------------------------------

OBJECT_SUFFIXES = (".yaml", ".yml", ".json")


def _objects_run_arguments(p_run: argparse.ArgumentParser) -> None:
    p_run.add_argument("more", nargs="*", metavar="FILE", help="more Kubernetes object files or directories")
    p_run.add_argument("--client", metavar="NS/POD", help="Kubernetes objects: the pod that sends")
    p_run.add_argument("--service", metavar="NS/NAME", help="Kubernetes objects: the Service it calls")
    p_run.add_argument(
        "--rate", type=float, metavar="RPS", help="Kubernetes objects: Poisson requests/s (default: curl in a loop)"
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
    p_import = sub.add_parser("import", help="write cluster state (Kubernetes objects) as an editable scenario")
    p_import.add_argument("files", nargs="+", metavar="FILE", help="Kubernetes objects: files, directories, -")
    p_import.add_argument(
        "-o",
        "--out",
        required=True,
        metavar="SCENARIO",
        help="the scenario TOML to write; its topology goes beside it as <name>-topology.toml",
    )


def _is_objects(files: Sequence[str]) -> bool:
    return any(f == "-" or Path(f).is_dir() or Path(f).suffix in OBJECT_SUFFIXES for f in files)


def _objects_run(args: argparse.Namespace) -> bool:
    """Whether ``sim run`` was given Kubernetes objects (then --client and --service say what to run)."""
    return bool(args.more or args.client or args.service or args.rate is not None or _is_objects([args.file]))


def _emit(text: str) -> None:
    """Print ``text`` on stdout; a reader that went away (``| head``) ends the output quietly."""
    try:
        print(text, end="" if text.endswith("\n") else "\n", flush=True)
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def _notes(notes: Sequence[str]) -> None:
    for note in notes:
        print(f"sim: note: {note}", file=sys.stderr)


def _load_objects(
    files: Sequence[str], dataplane: str, streams: list[dict[str, Any]], notes: list[str], need_streams: bool = True
) -> tuple[Scenario, int]:
    """Kubernetes objects as a Scenario, through the scenario reader (``cluster = [...]``); a problem in a stream
    built from flags is put on the flag."""
    from sim.io import parse_scenario
    from sim.io.scenario import objects_table

    table = {**objects_table(list(files), dataplane), "streams": streams}
    try:
        return parse_scenario(table, Path("(command line)"), need_streams=need_streams, notes=notes)
    except SpecError as e:
        flags = {
            "streams[0].client": "--client",
            "streams[0].service": "--service",
            "streams[0].workload.rate_rps": "--rate",
        }
        if e.path == "(command line)" and e.field in flags:
            raise SpecError(flags[e.field], "", e.problem) from None
        raise


def _routes(args: argparse.Namespace) -> int:
    """``sim routes``: what each node's proxy programs for each Service (human table or --json)."""
    from sim.io import dumps_json, is_experiment, load_experiment, load_scenario, parse_scenario
    from sim.routes import format_routes, routes
    from sim.routing import DataplaneConfig

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
            scenario = dataclasses.replace(scenario, dataplane=DataplaneConfig(name=args.dataplane))
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
    _emit(dumps_json(table) if args.json else format_routes(scenario, table))
    return 0


def _import(args: argparse.Namespace) -> int:
    """``sim import``: Kubernetes objects -> an editable scenario file and its topology file."""
    from sim.io import write_atomic
    from sim.io.importer import default_streams, scenario_text, topology_text

    out = Path(args.out)
    topology_file = out.with_name(f"{out.stem}-topology.toml")
    notes: list[str] = []
    try:
        scenario = _load_objects(args.files, "iptables", [], notes, need_streams=False)[0]
        streams = default_streams(scenario)
        scenario = dataclasses.replace(scenario, name=out.stem)
        texts = {
            topology_file: topology_text(scenario.topology),
            out: scenario_text(scenario, topology_file.name, args.files, streams),
        }
        for path, text in texts.items():
            write_atomic(path, text)
    except SpecError as e:
        return _error(e)
    except OSError as e:
        return _error(f"{e.filename or out}: cannot write: {e.strerror}")
    _notes(notes)
    if not streams:
        print("sim: note: no pods to send from: add [[streams]] before `sim run`", file=sys.stderr)
    print(
        f"wrote {out} ({len(scenario.pods)} pods, {len(scenario.services)} services, {len(streams)} streams) "
        f"and {topology_file}"
    )
    return 0


def _run_objects(args: argparse.Namespace) -> int:
    """``sim run FILE... --client NS/POD --service NS/NAME``: one stream straight from Kubernetes objects."""
    if not args.client or not args.service:
        return _error(f"{args.file}: Kubernetes objects: give --client NS/POD and --service NS/NAME to run them")
    workload = {"kind": "poisson", "rate_rps": args.rate} if args.rate is not None else {"kind": "closed_loop"}
    stream = {
        "client": args.client,
        "service": args.service,
        "requests": 1000 if args.requests is None else args.requests,
        "workload": workload,
    }
    notes: list[str] = []
    try:
        scenario, seed = _load_objects([args.file, *args.more], "iptables", [stream], notes)
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
        ("--rate", getattr(args, "rate", None)),
        ("--seed", args.seed),
        ("--requests", args.requests),
    ):
        if value is not None:
            words += [flag, str(value)]
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
        for path in plots.save_figure(figure, out / name):
            print(path, file=sys.stderr if quiet else sys.stdout)
    return 0


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
    from sim.io import write_atomic

    command = shlex.join(["sim", "report", args.results, "-o", args.out])
    try:
        html = report.render(args.results, command=command, service=args.service)
    except SpecError as e:
        return _error(e)
    except (KeyError, TypeError, ValueError, IndexError) as e:  # a hand-edited file the loaders let through
        return _error(f"{args.results}: cannot be reported: {type(e).__name__}: {e}")
    write_atomic(args.out, html)
    print(args.out)
    return 0
