"""The argument parsers of ``sim``: one per command, with the flag types (whole numbers, sizes, the
significance level) that refuse a bad value as the one line every bad input gets."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from typing import Any, NoReturn

from sim.cli.text import EXIT_BAD_INPUT
from sim.errors import one_line
from sim.version import __version__


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


def _capacity(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--kind-node-capacity",
        metavar="CPU,MEMORY",
        help="the capacity of nodes whose allocatable is not given (a kind config's report the host's), e.g. "
        "16,64Gi (default 8,16Gi; in a scenario: kind_node_capacity = {cpu = '16', memory = '64Gi'})",
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
    """The ``sim`` command: its global flags, then one subparser per command, in the order ``--help`` lists."""
    parser = _Parser(
        prog="sim", description="Simulate how Kubernetes Services route traffic, and test the spread statistically."
    )
    parser.add_argument("--version", action="version", version=f"sim (k8s-service-sim) {__version__}")
    _chatter(parser, top=True)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add_command in COMMANDS:
        add_command(sub)
    return parser


def _run_parser(sub: Any) -> None:
    """``sim run``: one scenario (or a spec's design point, or Kubernetes objects) run and printed."""
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


def _validate_parser(sub: Any) -> None:
    """``sim validate``: a scenario or spec checked, nothing run."""
    p_val = sub.add_parser("validate", help="check a scenario file and exit 0, or print its first problem and exit 2")
    p_val.add_argument("file")
    _set(p_val, "a scenario field (or, for a spec, a base-scenario field or replications/root_seed)")
    _max_memory(p_val)
    _chatter(p_val, top=False)


def _sweep_parser(sub: Any) -> None:
    """``sim sweep``: an experiment spec run point by point into a results directory."""
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


def _plot_parser(sub: Any) -> None:
    """``sim plot``: a run's or a sweep's figures."""
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


def _routes_parser(sub: Any) -> None:
    """``sim routes``: what each node's proxy programs for each Service."""
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
    _capacity(p_routes)


def _import_parser(sub: Any) -> None:
    """``sim import``: cluster state and traces written as an editable scenario."""
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
    _capacity(p_import)


def _run_plot_argument(p_run: argparse.ArgumentParser) -> None:
    p_run.add_argument("--plot", metavar="DIR", help="also draw the run's figures (PNG and SVG) into DIR")


def _report_parser(sub: Any) -> None:
    """``sim report``: one self-contained HTML report."""
    p_report = sub.add_parser(
        "report", help="write one self-contained HTML report of a run (`sim run --out` file) or a sweep"
    )
    p_report.add_argument("results", help="a `sim run --out` JSON file, or a results directory of `sim sweep`")
    p_report.add_argument("-o", "--out", metavar="FILE", required=True, help="the HTML file to write (atomically)")
    p_report.add_argument("--service", help="sweeps: the Service of the figures (default: the first)")


def _emulate_parser(sub: Any) -> None:
    """``sim emulate``: the scenario on Linux network namespaces with kube-proxy's rules, beside the simulator."""
    p = sub.add_parser(
        "emulate",
        help="run a scenario on the real kernel (network namespaces, kube-proxy's iptables/nftables rules) and "
        "compare it with the simulator; --show-rules prints the rules only",
        description="Build the scenario's nodes and pods as Linux network namespaces (nodes on one bridge, pods "
        "behind veth pairs, on a bridge or named with a prefix where the local-traffic detector says so, every "
        "address private to them), load the rules kube-proxy would write on each node, "
        "run a tiny HTTP server per backend pod and one client process per client pod (a hostNetwork pod's in its "
        "node's namespace; a new TCP connection per request, keep-alive if the stream says), then run the "
        "simulator on the same scenario and request count and compare per Service with a chi-square homogeneity "
        "test. Needs root and the ip, iptables / nft tools "
        "(not for --show-rules). External clients are namespaces on the same bridge; a LoadBalancer is their "
        "uniform choice of a node per connection. Everything made is removed on exit, error, Ctrl-C and SIGTERM. "
        "Not emulated, refused as bad input: latency (the kernel's own applies; timing fields are ignored), IPVS "
        "and Cilium dataplanes (use --mode to run their Services under kube-proxy), timelines, request timeouts, "
        "retries, queue limits, keep-alive max_age_s, non-random pickers, topologies where nodes link to routers "
        "or to each other.",
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


COMMANDS: tuple[Callable[[Any], None], ...] = (
    _run_parser,
    _validate_parser,
    _sweep_parser,
    _plot_parser,
    _routes_parser,
    _import_parser,
    _report_parser,
    _emulate_parser,
)
"""The commands' parsers, in the order ``sim --help`` lists them."""
