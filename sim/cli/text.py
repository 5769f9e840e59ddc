"""What ``sim`` prints beside its results: notes, details and warnings on stderr (as ``-q``/``-v`` say), the
one error line, and the per-Service tables of ``sim run``."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from sim.errors import SpecError, one_line
from sim.experiment import presentation as show

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


def format_summary(scenario: Scenario, summary: dict[str, Any]) -> str:
    """The human tables of ``sim run``: one block per Service, read through the typed ``ServiceSummary``."""
    from sim.experiment.metrics import services_from_json
    from sim.rng import seed_text

    out = [
        f"scenario {summary['scenario']}  seed {seed_text(summary['seed'])}  dataplane {summary['dataplane']}  "
        f"simulated {show.decimals(summary['end_s'], 3)} s"
    ]
    clients: dict[str, set[str]] = {}  # per Service, once: a scan of every stream per Service was quadratic
    for st in scenario.streams:
        clients.setdefault(st.service, set()).add(f"{st.client}@{scenario.origin(st.client)}")
    callers: dict[str, list[str]] = {}
    for a, b in scenario.call_graph.edges():
        callers.setdefault(b, []).append(a)
    for s in services_from_json(summary).values():
        out.extend(_service_lines(scenario, s, sorted(clients.get(s.name, ())), callers.get(s.name, [])))
    return "\n".join(out)


def _service_lines(scenario: Scenario, s: ServiceSummary, clients: list[str], callers: list[str]) -> list[str]:
    """One Service's block of ``format_summary``: ``clients`` (``client@origin``, sorted) and ``callers`` (the
    Services that call it) its streams' and the call graph's."""
    svc = scenario.service(s.name)
    called = f"  called by: {', '.join(callers)} (sent: the calls received)" if callers else ""
    who = (f"  clients: {', '.join(clients)}" if clients or not callers else "") + called
    out = [
        "",
        f"Service {s.name}  internalTrafficPolicy={svc.internal_traffic_policy}  "
        f"externalTrafficPolicy={svc.external_traffic_policy}{who}",
        f"  sent {s.sent}  completed {s.completed}  dropped {s.dropped}  "
        f"in flight {s.in_flight}  violations {s.violations}",
    ]
    out.extend(_split_lines(s))
    out.extend(_verdict_lines(s))
    ms, pct, lat = show.milliseconds, show.percent, s.latency_s
    out.append(f"  latency (completed): mean {ms(lat.mean)}  p50 {ms(lat.p50)}  p99 {ms(lat.p99)}")
    drops = ", ".join(f"{reason} {n}" for reason, n in s.drops.items()) or "none"
    waited = f" (the client learned after {show.decimals(s.failed_after_s, 3)} s on average)" if s.dropped else ""
    out.append(f"  drops: {drops}{waited}")
    out.append(
        f"  cross-node {pct(s.cross_node_fraction)}  cross-zone {pct(s.cross_zone_fraction)}  "
        f"source IP kept {pct(s.source_preserved_fraction)}  picker {', '.join(s.pickers) or show.MISSING}  "
        f"picks: {show.picks_text(s.picks)}"
    )
    out.append(f"  topology hints: {s.hints}")
    if s.timed_out or s.retries:
        out.append(f"  timed out {s.timed_out}  retries {s.retries}")
    legs = s.latency_parts_s
    if s.completed:
        out.append(
            f"  latency legs (mean): out {ms(legs.network_out)}  queue {ms(legs.queue_wait)}  "
            f"service {ms(legs.service)}  back {ms(legs.network_back)}"
        )
    busy = ", ".join(f"{pod} {pct(m.utilization, 0)}" for pod, m in s.pods.items())
    if busy:
        out.append(f"  backend utilisation: {busy}")
    return out + _call_path_lines(s)


def _split_lines(s: ServiceSummary) -> list[str]:
    """How a Service's requests split: replies by node against expected, new connections by pod against
    expected."""
    pct = show.percent
    out = [f"  {'replies by node':<28}{'replies':>9}{'share':>9}{'expected':>10}"]
    for node, r in (s.replies_by_node or {}).items():
        out.append(f"  {node:<28}{r.replies:>9}{pct(r.share):>9}{pct(r.expected_share):>10}")
    out.append(f"  {'new connections by pod':<28}{'picked':>9}{'share':>9}{'expected':>10}{'replies':>9}")
    routed = sum(s.routed_by_endpoint.values())
    for pod, n in s.routed_by_endpoint.items():
        share = n / routed if routed else 0.0
        expected = s.expected_share.get(pod, 0.0)
        out.append(f"  {pod:<28}{n:>9}{pct(share):>9}{pct(expected):>10}{s.by_endpoint[pod]:>9}")
    return out


def _call_path_lines(s: ServiceSummary) -> list[str]:
    """An entry Service's pages along their critical path (none for other Services)."""
    p = s.call_path
    if p is None:
        return []
    ms, pct = show.milliseconds, show.percent
    parts = "  ".join(f"{words} {ms(v)}" for _, words, v in show.critical_path_parts(p.critical_path_s))
    waits = "  ".join(f"{k} {ms(v)}" for k, v in p.wait_on_callee_s.items())
    return [
        f"  pages: {p.requests} completed, mean {ms(p.latency_s.mean)}  p99 {ms(p.latency_s.p99)}; "
        f"every hop on the client's node {pct(p.same_node_fraction)}, in its zone {pct(p.same_zone_fraction)}",
        f"  critical path (mean): {parts}",
        f"  on it, the wait on each callee (mean): {waits}",
    ]


def _verdict_lines(s: ServiceSummary) -> list[str]:
    """The test's lines of a Service's table: the combined statistic, how it was combined, and the verdict."""
    cs = s.chi_square
    label, statistic, p, w = show.fit_numbers(cs)
    lines = [f"  {label} {statistic}  dof {cs.dof}  p-value {p}  Cohen's w {w}"]
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
