"""``sim report``: one self-contained HTML file for a run (a ``sim run --out`` JSON) or a sweep (its results dir).

The page is rendered from Jinja2 templates (``sim/templates/``, autoescaped) and holds everything inline: the
figures of ``sim.plots`` as SVG, a little CSS, no script and no link to anything outside the file, so it opens
offline and can be mailed. Every number cell carries ``data-key`` (its path in the JSON, ``/``-separated) and
``data-value`` (the JSON value), so a test can check that what the page shows is what the JSON says.
"""

from __future__ import annotations

import io
import json
import math
import re
import shlex
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup

from sim import plots
from sim.errors import SpecError
from sim.experiment import presentation as show
from sim.experiment.metrics import ServiceSummary, services_from_json
from sim.experiment.results import summary_frame
from sim.experiment.rundoc import describe_cluster, share_interval, versions
from sim.experiment.tables import (
    PAIRED_METRICS,
    SUMMARY_METRICS,
    chi_square_by_design_point,
    design_point_summary,
    paired_difference_table,
)
from sim.io import load_results, load_run, parse_scenario, sweep_command

_ENV = jinja2.Environment(
    loader=jinja2.PackageLoader("sim", "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


# --- how numbers are shown: sim.experiment.presentation's formats, each cell tagged with its JSON path ---------

_FORMATS: dict[str, Callable[[Any], str]] = {
    "count": show.count,
    "pct": show.percent,
    "ms": show.milliseconds,
    "num": show.significant,
}


def cell(value: Any, key: Sequence[Any], kind: str) -> Markup:
    """A ``<td>`` showing ``value`` formatted as ``kind`` (count, pct, ms, num), tagged with its JSON path."""
    raw = "" if show.is_missing(value) else json.dumps(value)
    return Markup('<td class="num" data-kind="{}" data-key="{}" data-value="{}">{}</td>').format(
        kind, "/".join(str(k) for k in key), raw, _FORMATS[kind](value)
    )


_ENV.globals["cell"] = cell
_ENV.filters.update(
    pct=show.percent, ms=show.milliseconds, num=show.significant, count=show.count, diff=show.difference
)
_ENV.globals["show"] = show
"""The templates word tests and picks as the CLI does: ``show.statistic_label``, ``show.picks_text``."""


# --- figures as inline SVG ---------------------------------------------------------------------------------

_ID = re.compile(r'\bid="([^"]+)"')
_REF = re.compile(r'(id="|url\(#|href="#)([^")]+)([")])')
"""Where an id is defined or used: ``id="X"``, ``url(#X)``, ``href="#X"``."""


def svg_markup(figure: Any, prefix: str) -> Markup:
    """A matplotlib Figure as an inline ``<svg>`` element: no XML prologue, ids prefixed with ``prefix`` so that
    several figures on one page do not share clip paths, and sized to the page's width."""
    buffer = io.StringIO()
    plots.save_svg(figure, buffer)
    text = buffer.getvalue()
    text = text[text.index("<svg") :]
    ids = set(_ID.findall(text))
    # one pass over the text (a replace per id was quadratic: minutes for a 300-node cluster's figure)
    text = _REF.sub(lambda m: f"{m[1]}{prefix}-{m[2]}{m[3]}" if m[2] in ids else m[0], text)
    text = text.replace("<svg ", '<svg class="figure" role="img" ', 1)
    return Markup(text)  # noqa: S704 - matplotlib's own SVG; every text in it is XML-escaped by matplotlib


def _figures(figures: Mapping[str, Any], prefix: str, captions: Mapping[str, str]) -> list[dict[str, Any]]:
    return [
        {"name": name, "svg": svg_markup(fig, f"{prefix}{i}"), "caption": captions.get(name, "")}
        for i, (name, fig) in enumerate(figures.items())
    ]


# --- a run ------------------------------------------------------------------------------------------------

RUN_CAPTIONS = {
    "endpoints": "Share of fresh picks per endpoint; the red mark is the share the routing layer expects, with "
    "the range a single run's share falls in 95% of the time if the picker draws those shares.",
    "heatmap": "Completed requests by the node the client sits on (rows) and the node that served them (columns).",
    "latency_ecdf": "Latency of completed requests, send to reply (log scale), from 20 bins per decade.",
    "over_time": "The run over time, by send time: where requests landed, the latency percentiles of the "
    "completed ones, and the failures by reason; dashed lines mark the timeline's events.",
    "service_graph": "The call graph: Services by depth from the clients; each edge its calls per second, the "
    "mean latency of its completed calls as the caller sees them, and the share answered on another node and "
    "zone than the calling pod's.",
    "waterfall": "One page, the one of median latency: each span from send to return, indented under the "
    "request that made it; network legs, queue, own work and the wait on its calls.",
    "page_latency_ecdf": "End-to-end latency of completed pages, per entry Service (log scale).",
}


def _endpoint_rows(svc: ServiceSummary) -> list[dict[str, Any]]:
    """Per endpoint: fresh picks, their share, the expected share with its 95% range, replies."""
    picked = sum(svc.routed_by_endpoint.values())
    rows = []
    for pod, n in svc.routed_by_endpoint.items():
        expected = svc.expected_share.get(pod, 0.0)
        low, high = share_interval(picked, expected) if picked else (math.nan, math.nan)
        rows.append(
            {
                "pod": pod,
                "picked": n,
                "share": n / picked if picked else math.nan,
                "expected": expected,
                "low": low,
                "high": high,
                "replies": svc.by_endpoint.get(pod, 0),
            }
        )
    return rows


def run_context(doc: Mapping[str, Any], command: str) -> dict[str, Any]:
    """What the run template needs from a ``sim run --out`` document."""
    summaries = services_from_json(doc)
    services = [{"name": name, "s": svc, "endpoints": _endpoint_rows(svc)} for name, svc in summaries.items()]
    return {
        "title": f"Run of {doc['scenario']} (seed {doc['seed']})",
        "doc": doc,
        "cluster": doc["cluster"],
        "pods_on": _pods_on(doc["cluster"]),
        "cluster_svg": svg_markup(_cluster_figure(doc["cluster"]), "cluster"),
        "services": services,
        "pages": [{"name": name, "s": svc} for name, svc in summaries.items() if svc.call_path is not None],
        "figures": _figures(plots.run_figures(doc), "run", RUN_CAPTIONS),
        "made_by": doc.get("provenance", {}).get("command", ""),
        "versions": doc.get("provenance", {}).get("versions", {}),
        "report_command": command,
        "report_versions": versions(),
    }


def _pods_on(cluster: Mapping[str, Any]) -> dict[str, list[Mapping[str, Any]]]:
    """The cluster's pods by node, in their order: the cluster table's rows read them once, not once per node."""
    on: dict[str, list[Mapping[str, Any]]] = {}
    for pod in cluster["pods"]:
        on.setdefault(pod["node"], []).append(pod)
    return on


def _cluster_figure(cluster: Mapping[str, Any]) -> Any:
    ax = plots.cluster_graph(cluster)
    return ax.figure


# --- a sweep ----------------------------------------------------------------------------------------------

SWEEP_CAPTIONS = {
    "tradeoff_latency": "Mean and p99 latency, means over replications with Student-t 95% intervals; one colour "
    "per level of the line factor, one panel per combination of the other factors.",
    "tradeoff_locality": "Share of completed requests served on another node or in another zone, means over "
    "replications with Student-t 95% intervals.",
    "endpoints": "Share of fresh picks per endpoint at one design point, mean over replications, with the "
    "expected share.",
    "heatmap": "Completed requests by client node and serving node at one design point, summed over replications.",
    "latency_ecdf": "Latency ECDF at one design point, pooled over replications.",
    "page_latency_ecdf": "End-to-end latency of completed pages (the call graph's entry Services) at one design "
    "point, one line per level of the line factor, pooled over replications.",
}


def _table_rows(frame: Any, columns: Sequence[str]) -> list[dict[str, Any]]:
    return [
        {c: (None if show.is_missing(v) else v) for c, v in zip(columns, row, strict=True)}
        for row in frame[columns].itertuples(index=False)
    ]


def sweep_context(
    path: Path, info: Mapping[str, Any], records: list[dict[str, Any]], command: str, service: str | None
) -> dict[str, Any]:
    """What the sweep template needs from a results directory."""
    ok = [r for r in records if r.get("status") == "ok"]
    if not ok:
        raise SpecError(str(path), "runs", "no finished runs to report (run `sim sweep` first)")
    names = [f["name"] for f in info["factors"]]
    try:
        scenario, _ = parse_scenario(ok[0]["scenario"], ok[0]["scenario_path"])
        cluster = describe_cluster(scenario)
    except (SpecError, KeyError, TypeError) as e:
        raise SpecError(str(path), "runs", f"the first run's scenario cannot be rebuilt: {e}") from None
    try:
        figures = plots.sweep_figures(info, records, service=service)
    except ValueError as e:
        raise SpecError(str(path), "", str(e)) from None
    frame = summary_frame(ok, names)
    table = design_point_summary(frame, names)
    tests = chi_square_by_design_point(ok, names)
    summary_cols = [
        *names,
        "service",
        "n",
        *(c for m in SUMMARY_METRICS for c in (m, f"{m}_low", f"{m}_high")),
    ]
    test_cols = [*names, "service", "runs", "n", "dof", "statistic", "pvalue", "qvalue", "cohens_w", "violations"]
    return {
        "title": f"Sweep {info.get('name', '')}",
        "info": info,
        "factor_names": names,
        "labels": info.get("plot", {}).get("labels", {}),
        "runs_total": len(info.get("runs", [])),
        "runs_ok": len(ok),
        "runs_failed": len([r for r in records if r.get("status") != "ok"]),
        "runs_missing": len(info.get("runs", [])) - len(records),
        "first_point": ok[0].get("design_point"),
        "seeds": sorted({(r["replication"], r["seed"]) for r in ok}),
        "engines": dict(Counter(str(r.get("engine", "des")) for r in ok)),
        "cluster": cluster,
        "pods_on": _pods_on(cluster),
        "cluster_svg": svg_markup(_cluster_figure(cluster), "cluster"),
        "summary": _table_rows(table, summary_cols),
        "tests": _table_rows(tests, test_cols),
        "paired": _paired(frame, info, names),
        "paired_metrics": [(m, PAIRED_WORDS[m], PAIRED_UNITS[m]) for m in PAIRED_METRICS],
        "figures": _figures(figures, "sweep", SWEEP_CAPTIONS),
        "made_by": shlex.join(sweep_command(info)),
        "report_command": command,
        "report_versions": versions(),
    }


PAIRED_UNITS = {"latency_mean_s": "ms", "latency_p99_s": "ms", "cross_node_fraction": "pp"}
"""How the paired table shows each metric's difference: milliseconds, or percentage points of a fraction."""
PAIRED_WORDS = {"latency_mean_s": "mean latency", "latency_p99_s": "p99 latency", "cross_node_fraction": "another node"}


def _paired(frame: Any, info: Mapping[str, Any], names: Sequence[str]) -> dict[str, Any] | None:
    """The paired differences between the line factor's levels and its first (the baseline), per combination of
    the other factors and Service, one row each with every metric of ``PAIRED_METRICS``; None without factors."""
    line = plots.plot_roles(info)[1]
    if line is None:
        return None
    baseline = next(f["levels"][0] for f in info["factors"] if f["name"] == line)
    table = paired_difference_table(frame, names, line, baseline)
    others = [n for n in names if n != line]
    rows: dict[tuple[Any, ...], dict[str, Any]] = {}
    for r in _table_rows(table, list(table.columns)):
        key = tuple(r[k] for k in (*others, "service", line))
        row = rows.setdefault(key, {"keys": dict(zip((*others, "service", line), key, strict=True)), "m": {}})
        row["m"][r["metric"]] = r
        row["n"] = r["n"]
    return {"factor": line, "baseline": baseline, "others": others, "rows": list(rows.values())}


# --- entry point ------------------------------------------------------------------------------------------


def render(source: str | Path, *, command: str = "", service: str | None = None) -> str:
    """The HTML report of ``source``: a ``sim run --out`` JSON file or a ``sim sweep`` results directory."""
    path = Path(source)
    if path.is_dir():
        info, records = load_results(path)
        return _ENV.get_template("sweep.html.j2").render(sweep_context(path, info, records, command, service))
    doc = load_run(path)
    if service is not None and service not in doc["services"]:
        raise SpecError(str(path), "services", f"no Service {service!r}; the run has {list(doc['services'])}")
    return _ENV.get_template("run.html.j2").render(run_context(doc, command))
