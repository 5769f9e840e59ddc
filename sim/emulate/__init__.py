"""The real kernel beside the model: a scenario on Linux network namespaces with kube-proxy's own rules.

``layout`` decides what to build (pure), ``rules`` renders what kube-proxy writes per node (pure), ``netns``'s
``Emulation`` takes the kernel steps in order (``network``, ``install``, ``traffic``, then the teardown),
``compare`` sets the kernel's answers beside the simulator's.
Latency is not emulated: the kernel routes, and the report compares where connections went and how they failed.
"""

from __future__ import annotations

import sys
from typing import Any

from sim.emulate.compare import compare, sim_counts
from sim.emulate.layout import MODES, Layout, make_layout
from sim.emulate.rules import node_proxy, node_rules

__all__ = ["MODES", "Layout", "emulate", "format_report", "make_layout", "show_rules"]


def show_rules(layout: Layout) -> str:
    """The rules kube-proxy would write on every node of ``layout``, as the text it feeds its tool."""
    out = []
    for node in layout.nodes:
        out.append(f"# ===== node {node.name} ({node.ip}): kube-proxy --proxy-mode={layout.mode} =====")
        for step, text in node_rules(node.services, layout.mode, node_proxy(node)).items():
            how = {
                "jumps": "EnsureChain + EnsureRule(Prepend): the jumps from the built-in chains",
                "restore": "syncProxyRules: iptables-restore --noflush",
                "transaction": "setupNFTables + syncProxyRules: nft -f",
            }[step]
            out.append(f"# --- {how}")
            out.append(text.rstrip("\n"))
    return "\n".join(out) + "\n"


PROGRESS_DELAY_S = 2.0
"""Seconds an emulation runs before its progress bar shows: a quick one draws none."""


def emulate(
    layout: Layout, seed: int, *, connect_timeout_s: float = 1.0, progress: bool | None = None
) -> dict[str, Any]:
    """Run ``layout`` on the kernel (root), then the simulator on the same scenario, seed and request counts; the
    comparison per Service (``{"services": {NAME: {"kernel", "sim", "homogeneity_p", ...}}}``). ``progress``: a
    tqdm bar of the requests sent, on stderr, once the run has taken ``PROGRESS_DELAY_S`` seconds (None: only
    when stderr is a terminal)."""
    from tqdm import tqdm

    from sim.emulate.kernel import tool_versions
    from sim.emulate.netns import emulated

    show_rules(layout)  # every payload renders, or a name is refused, before the kernel is touched
    total = sum(st.requests or 0 for st in layout.scenario.streams)
    disable = None if progress is None else not progress
    with (
        tqdm(total=total, desc="emulate", unit="req", file=sys.stderr, disable=disable, delay=PROGRESS_DELAY_S) as bar,
        emulated(layout, connect_timeout_s=connect_timeout_s) as em,
    ):
        kernel = em.run_clients(bar.update)
    report = compare(layout.scenario, kernel, sim_counts(layout.scenario, seed))
    return {
        "scenario": layout.scenario.name,
        "mode": layout.mode,
        "tool": tool_versions(layout.mode),
        "seed": seed,
        "connect_timeout_s": connect_timeout_s,
        "latency": "not emulated",
        **report,
    }


def format_report(report: dict[str, Any], alpha: float = 0.01) -> str:
    """The human tables of ``sim emulate``: per Service, kernel and simulator counts side by side."""
    out = [
        f"scenario {report['scenario']}  kube-proxy {report['mode']} ({report['tool']})  simulator seed "
        f"{report['seed']}  latency not emulated"
    ]
    for name, s in report["services"].items():
        k, m = s["kernel"], s["sim"]
        out.append("")
        out.append(f"Service {name}")
        out.append(f"  {'new connections / failures':<30}{'kernel':>9}{'sim':>9}")
        rows = sorted(set(k["connections_by_endpoint"]) | set(m["connections_by_endpoint"]))
        for pod in rows:
            out.append(
                f"  {pod:<30}{k['connections_by_endpoint'].get(pod, 0):>9}{m['connections_by_endpoint'].get(pod, 0):>9}"
            )
        for kind in sorted(set(k["failures"]) | set(m["failures"])):
            label = f"failed: {kind}"
            out.append(f"  {label:<30}{k['failures'].get(kind, 0):>9}{m['failures'].get(kind, 0):>9}")
        if m["drops"]:
            out.append("  simulator drop reasons: " + ", ".join(f"{r} {n}" for r, n in m["drops"].items()))
        p = s["homogeneity_p"]
        note = s["test"].get("note", "")
        if p is None:
            out.append(f"  homogeneity: no p-value ({note})")
        else:
            verdict = "agree" if p > alpha else "DIFFER"
            out.append(
                f"  homogeneity chi-square p = {p:.4g} (dof {s['test']['dof']}): kernel and simulator {verdict} at "
                f"alpha={alpha}" + (f"; {note}" if note else "")
            )
        out.append(f"  failure kinds {'identical' if s['failures_match'] else 'DIFFER'}")
    return "\n".join(out)
