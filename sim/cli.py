"""Command line: ``sim run`` and ``sim validate``. Bad input prints one line and exits 2."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from sim.engine import run
from sim.errors import SpecError
from sim.experiment.analysis import summarize
from sim.io import dumps_json, load_scenario, write_atomic
from sim.scenario import Scenario

EXIT_BAD_INPUT = 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sim", description="Simulate how Kubernetes Services route traffic, and test the spread statistically."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    p_run = sub.add_parser("run", help="run one scenario and print a table per Service (or JSON)")
    p_run.add_argument("file", help="scenario TOML file, e.g. experiments/cilium_demo.toml")
    p_run.add_argument("--seed", type=_non_negative, help="root seed (default: the file's seed, else 0)")
    p_run.add_argument("--requests", type=_non_negative, help="requests per client stream (overrides the file)")
    p_run.add_argument("--alpha", type=float, default=0.01, help="significance level of the chi-square verdict")
    p_run.add_argument("--json", action="store_true", help="print exactly one JSON object instead of tables")
    p_run.add_argument("--out", metavar="PATH", help="also write the JSON summary to PATH (atomically)")
    p_val = sub.add_parser("validate", help="check a scenario file and exit 0, or print its first problem and exit 2")
    p_val.add_argument("file")
    return parser


def _non_negative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``sim`` command; returns the exit code."""
    args = _parser().parse_args(argv)
    try:
        overrides: dict[str, Any] = {}
        if getattr(args, "seed", None) is not None:
            overrides["seed"] = args.seed
        if getattr(args, "requests", None) is not None:
            overrides["requests"] = args.requests
        scenario, seed = load_scenario(args.file, overrides)
    except SpecError as e:
        print(f"sim: error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if args.command == "validate":
        print(
            f"{args.file}: ok ({len(scenario.pods)} pods, {len(scenario.services)} services, "
            f"{len(scenario.streams)} streams)"
        )
        return 0
    result = run(scenario, seed)
    summary = summarize(result, alpha=args.alpha)
    text = dumps_json(summary)
    if args.out:
        write_atomic(args.out, text)
    print(text, end="") if args.json else print(format_summary(scenario, summary))
    return 0


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
        clients = sorted(
            {f"{st.client}@{scenario.pod(st.client).node}" for st in scenario.streams if st.service == name}
        )
        out.append("")
        out.append(
            f"Service {name}  internalTrafficPolicy={svc.internal_traffic_policy}  clients: {', '.join(clients)}"
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
        out.append(f"  {'routed by endpoint (pod)':<28}{'routed':>9}{'share':>9}{'expected':>10}{'replies':>9}")
        for pod, n in s["routed_by_endpoint"].items():
            share = n / routed if routed else 0.0
            out.append(
                f"  {pod:<28}{n:>9}{share:>9.1%}{s['expected_share'].get(pod, 0.0):>10.1%}{s['by_endpoint'][pod]:>9}"
            )
        cs = s["chi_square"]
        out.append(
            f"  chi-square {cs['statistic']:.3f}  dof {cs['dof']}  p-value {cs['pvalue']:.4f}  "
            f"Cohen's w {cs['cohens_w']:.4f}"
        )
        out.append(f"  verdict: {cs['verdict']}")
        lat = s["latency_s"]
        out.append(f"  latency (completed): mean {_ms(lat['mean'])}  p50 {_ms(lat['p50'])}  p99 {_ms(lat['p99'])}")
        drops = ", ".join(f"{reason} {n}" for reason, n in s["drops"].items()) or "none"
        out.append(f"  drops: {drops}")
    return "\n".join(out)
