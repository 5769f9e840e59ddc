"""What ``sim`` prints beside its results: notes, details and warnings on stderr (as ``-q``/``-v`` say), the
one error line, and the per-Service tables of ``sim run``."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from sim.errors import SpecError, one_line

if TYPE_CHECKING:
    from sim.experiment.metrics import ServiceSummary
    from sim.scenario import Scenario


EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141
"""128 + SIGPIPE, as a shell reports a process the pipe's reader went away from."""


_VERBOSITY: ContextVar[int] = ContextVar("sim_verbosity", default=0)
"""-1 with -q (errors only), 0 by default, 1 or more with -v: set by ``main`` for the command it runs."""


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
    return out + _call_path_lines(s)


def _call_path_lines(s: ServiceSummary) -> list[str]:
    """An entry Service's pages along their critical path (none for other Services)."""
    p = s.call_path
    if p is None:
        return []
    parts = "  ".join(f"{k.replace('_', ' ')} {_ms(v)}" for k, v in p.critical_path_s.items())
    waits = "  ".join(f"{k} {_ms(v)}" for k, v in p.wait_on_callee_s.items())
    return [
        f"  pages: {p.requests} completed, mean {_ms(p.latency_s['mean'])}  p99 {_ms(p.latency_s['p99'])}; "
        f"every hop on the client's node {_pct(p.same_node_fraction)}, in its zone {_pct(p.same_zone_fraction)}",
        f"  critical path (mean): {parts}",
        f"  on it, the wait on each callee (mean): {waits}",
    ]


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


def _notes(notes: Sequence[str]) -> None:
    for note in notes:
        _note(f"note: {note}")
