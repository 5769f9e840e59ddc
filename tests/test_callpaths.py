"""A call graph's pages along their critical path (``sim.experiment.callpaths``), on runs whose every time is a
constant, so that each part has one exact value: the pods' service times and the links' delays summed along the
path the engine took. Each test names the wrong model it fails on.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.callgraph import Call, CallGraph, CallMode, Parallel, ServiceCalls
from sim.cluster import Pod, Service
from sim.distributions import Constant
from sim.experiment.analysis import summarize
from sim.experiment.callpaths import PARTS, critical_paths
from sim.experiment.metrics import CallPath, services_from_json
from sim.experiment.presentation import critical_path_parts
from sim.facade import simulate
from sim.outcomes import Outcome
from sim.records import STORED, Columns, RunResult, flag_lookups
from sim.scenario import Scenario, Stream
from sim.workload import Poisson
from tests.conftest import star

HOP, SAME = 0.0005, 0.0001
"""One link's delay (s; another node is two links away, through the bridge) and a same-node hop's."""
FRONT, BACK = 0.001, 0.002
"""The front pod's and the callee's own work per request (s)."""


def chain(be_node: str, calls: ServiceCalls) -> Scenario:
    """A client and the ``fe`` pod on node a, the ``be`` pod on ``be_node``; ``fe`` makes ``calls``; every pod
    has workers enough never to queue, so each page's parts are exact."""
    big = 10**6
    return Scenario(
        name="path",
        topology=star(["a", "b"], hop=Constant(HOP), same_node=Constant(SAME)),
        pods=(
            Pod("client", "a", "10.0.0.2", {"app": "client"}),
            Pod("fe-1", "a", "10.0.0.3", {"app": "fe"}, service_time=Constant(FRONT), concurrency=big),
            Pod("be-1", be_node, "10.0.0.4", {"app": "be"}, service_time=Constant(BACK), concurrency=big),
        ),
        services=(Service("fe", {"app": "fe"}), Service("be", {"app": "be"})),
        streams=(Stream("client", "fe", Poisson(20.0), 300),),
        call_graph=CallGraph({"fe": calls}),
    )


def path(sc: Scenario) -> tuple[CallPath, dict]:
    """The entry Service's ``CallPath`` and the run's JSON."""
    doc = summarize(simulate(sc, 7))
    return services_from_json(json.loads(json.dumps(doc)))["fe"].call_path, doc


@pytest.mark.parametrize("mode", [CallMode.SYNC, CallMode.ASYNC])
def test_a_chain_splits_into_its_hops_exactly(mode: CallMode) -> None:
    """Two calls one after another to a pod on another node: own work is the front's plus both calls' work,
    network every leg (client to front on its node, each call two links each way), no queueing; the wait on
    ``be`` is both calls whole. Fails on "the front's own work only" (own 1 ms) and on a split that drops the
    network of the calls (0.2 ms)."""
    p, doc = path(chain("b", ServiceCalls(mode, (Call("be", count=2),))))
    assert p is not None and p.requests == 300
    assert p.critical_path_s.own_work == pytest.approx(FRONT + 2 * BACK, rel=1e-9)
    assert p.critical_path_s.network == pytest.approx(2 * SAME + 2 * 2 * 2 * HOP, rel=1e-9)
    assert p.critical_path_s.queueing == pytest.approx(0.0, abs=1e-12)
    assert sum(v for _, _, v in critical_path_parts(p.critical_path_s)) == pytest.approx(p.latency_s.mean, rel=1e-9)
    assert p.wait_on_callee_s == {"be": pytest.approx(2 * (BACK + 4 * HOP), rel=1e-9)}
    assert (p.same_node_fraction, p.same_zone_fraction) == (0.0, 1.0)
    assert doc["services"]["be"]["cross_node_fraction"] == 1.0  # every call answered off the calling pod's node
    assert "call_path" not in doc["services"]["be"]  # a callee only: no pages of its own


def test_a_fan_out_counts_its_slowest_call_once() -> None:
    """Two calls at once: the path holds one of them, so own work is the front's and one call's. Fails on "the
    sum" of the fan-out (own 5 ms, wait 2 calls)."""
    p, doc = path(chain("a", ServiceCalls(CallMode.SYNC, (Parallel((Call("be", count=2),)),))))
    assert p is not None
    assert p.critical_path_s.own_work == pytest.approx(FRONT + BACK, rel=1e-9)
    assert p.wait_on_callee_s["be"] == pytest.approx(BACK + 2 * SAME, rel=1e-9)
    assert (p.same_node_fraction, doc["services"]["be"]["cross_node_fraction"]) == (1.0, 0.0)


def test_a_run_without_calls_writes_no_call_path() -> None:
    """Today's JSON is unchanged where nothing calls: no ``call_path`` key (additive only)."""
    doc = summarize(simulate(chain("a", ServiceCalls()), 7))
    assert all("call_path" not in s for s in doc["services"].values())


def test_sim_run_prints_the_critical_path() -> None:
    """``sim run``'s table has the entry Service's pages, its split and the wait on each callee."""
    from sim.cli import format_summary

    sc = chain("b", ServiceCalls(CallMode.SYNC, (Call("be"),)))
    text = format_summary(sc, summarize(simulate(sc, 7)))
    assert "pages: 300 completed" in text and "every hop on the client's node 0.0%" in text
    assert f"critical path (mean): own work {(FRONT + BACK) * 1e3:.3f} ms" in text
    assert "the wait on each callee (mean): be " in text


def test_the_run_document_figures_and_report_show_the_call_graph(tmp_path) -> None:
    """``sim run --out``'s ``call_graph``: each edge's calls and shares, one page's spans; the figures drawn from
    them (a waterfall row per span, a number per edge and its row in the edge table) and the report's section of
    pages, whose shown numbers are the JSON's. Fails on a sample that is not one trace, or an edge counted from the
    wrong rows."""
    from sim import plots, report
    from sim.experiment.rundoc import run_document
    from sim.io import dumps_json
    from sim.plots.axes import latency_words

    sc = chain("b", ServiceCalls(CallMode.SYNC, (Call("be", count=2),)))
    doc = json.loads(dumps_json(run_document(simulate(sc, 7))))
    edges = {(e["caller"], e["callee"]): e for e in doc["call_graph"]["edges"]}
    assert edges["(clients)", "fe"]["calls"] == 300 and edges["fe", "be"]["calls"] == 600
    assert (edges["fe", "be"]["cross_node_fraction"], edges["(clients)", "fe"]["cross_node_fraction"]) == (1.0, 0.0)
    assert edges["fe", "be"]["latency_mean_s"] == pytest.approx(BACK + 4 * HOP, rel=1e-9)
    sample = doc["call_graph"]["sample"]
    spans = sample["spans"]
    assert [s["service"] for s in spans] == ["fe", "be", "be"] and {s["parent"] for s in spans[1:]} == {sample["row"]}
    figures = plots.run_figures(doc)
    assert {"service_graph", "waterfall", "page_latency_ecdf"} <= set(figures)
    assert len(figures["waterfall"].axes[0].get_yticklabels()) == 3
    graph, table = figures["service_graph"].axes
    assert sorted(t.get_text() for t in graph.texts if t.get_text().isdigit()) == ["1", "2"]  # a number per edge
    cells = table.tables[0].get_celld()
    rows = [[cells[r, c].get_text().get_text() for c in range(6)] for r in range(1, len(edges) + 1)]
    rate = f"{edges['fe', 'be']['calls_per_s']:.3g}"
    assert ["2", "fe -> be", rate, latency_words(BACK + 4 * HOP), "100%", "0%"] in rows  # the edge's row
    (tmp_path / "run.json").write_text(dumps_json(doc))
    html = report.render(tmp_path / "run.json")
    assert "Pages of fe" in html and 'data-figure="waterfall"' in html
    assert 'data-key="services/fe/call_path/critical_path_s/own_work"' in html


def _reference(result: RunResult, roots: np.ndarray) -> tuple[np.ndarray, dict[str, float]]:
    """The critical-path walk as a plain recursive loop, one request at a time (the module's definition, as it
    was written before it was vectorised): per root its PARTS (s), and per callee Service the summed wait (s)."""
    cols, parent = result.columns, result.parent
    sent, arrived, started = cols["t_sent"], cols["t_arrived"], cols["t_started"]
    finished, returned, service = cols["t_finished"], cols["t_returned"], cols["service"]
    ok = cols["outcome"] == Outcome.OK
    waits: dict[str, float] = {}

    def split(row: int, parts: dict[str, float]) -> None:
        if not ok[row]:
            parts["failed_calls"] += float(returned[row] - sent[row])
            return
        kids = np.flatnonzero(parent == row)
        end = float(max(finished[row], returned[kids].max())) if kids.size else float(finished[row])
        parts["network"] += float(arrived[row] - sent[row]) + float(returned[row]) - end
        parts["queueing"] += float(started[row] - arrived[row])
        cursor = end
        while (before := kids[returned[kids] <= cursor]).size:
            last = int(before[np.argmax(returned[before])])
            parts["own_work"] += cursor - float(returned[last])
            name = result.service_names[service[last]]
            waits[name] = waits.get(name, 0.0) + float(returned[last] - sent[last])
            split(last, parts)
            cursor = float(sent[last])
            kids = kids[sent[kids] < cursor]
        parts["own_work"] += cursor - float(started[row])

    out = []
    for row in roots.tolist():
        parts = dict.fromkeys(PARTS, 0.0)
        split(row, parts)
        out.append([parts[k] for k in PARTS])
    return np.array(out).reshape(-1, len(PARTS)), waits


def _vectorised(result: RunResult, roots: np.ndarray) -> tuple[np.ndarray, dict[str, float]]:
    """``critical_paths`` in the reference's shape."""
    split = critical_paths(result, roots)
    waits = {result.service_names[i]: float(split.waits[i]) for i in np.flatnonzero(split.calls)}
    return np.column_stack([split.parts[k] for k in PARTS]).reshape(-1, len(PARTS)), waits


def test_the_vectorised_walk_equals_the_loop_on_online_boutique() -> None:
    """Online Boutique's home page (14 calls a page, cart -> redis a level down), 400 pages: every page's parts
    and every callee's wait equal the recursive loop's (to rounding: the sums run in another order). Fails on a
    walk that stops above the level below cart (redis)."""
    from benchmarks.callgraph import scenario

    sc, seed = scenario(400)
    result = simulate(sc, seed, "des")
    roots = np.flatnonzero((result.parent < 0) & (result.outcome == Outcome.OK))
    parts, waits = _vectorised(result, roots)
    ref_parts, ref_waits = _reference(result, roots)
    np.testing.assert_allclose(parts, ref_parts, rtol=1e-12, atol=1e-15)
    assert waits.keys() == ref_waits.keys() and len(waits) > 3
    assert all(waits[k] == pytest.approx(v, rel=1e-12) for k, v in ref_waits.items())
    latency = result.latency_s[roots]
    np.testing.assert_allclose(parts.sum(axis=1), latency, rtol=1e-9)


@st.composite
def call_trees(draw: st.DrawFn) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Records of call trees with arbitrary whole-second times (ties everywhere, calls sent after their caller's
    end or before it arrived), each returned no earlier than it was sent (as every record is) or never (NaN), some
    failed: parent rows and columns."""
    n = draw(st.integers(1, 40))
    parent = np.array([draw(st.integers(-1, i - 1)) if i else -1 for i in range(n)], dtype=np.int32)
    time = st.floats(0, 12).map(float.__floor__).map(float)
    cols = {k: np.array([draw(time) for _ in range(n)]) for k in ("t_sent", "t_arrived", "t_started", "t_finished")}
    back = np.array([draw(st.one_of(time, st.just(math.nan))) for _ in range(n)])
    cols["t_returned"] = np.where(np.isnan(back), back, np.maximum(back, cols["t_sent"]))  # never before its send
    cols["outcome"] = np.array([draw(st.sampled_from([1, 1, 1, 2, 3])) for _ in range(n)], dtype=np.int8)
    cols["stream"] = np.array([draw(st.integers(0, 2)) for _ in range(n)], dtype=np.int32)
    return parent, cols


@settings(max_examples=300, deadline=None)
@given(call_trees())
def test_the_vectorised_walk_equals_the_loop_on_any_call_tree(tree: tuple[np.ndarray, dict[str, np.ndarray]]) -> None:
    """Hypothesis: on any call tree, whatever its times (ties, NaN, calls that overlap their caller or each other), each
    page's parts and each callee's wait equal the loop's exactly (whole seconds: every sum is exact). Fails on
    a tie broken towards the later row, on calls sorted by send instead of return, and on the sent-before-the-cursor
    filter applied to the first call."""
    parent, raw = tree
    n = len(parent)
    stored = {name: np.zeros(n, dtype) for name, dtype in STORED.items()} | raw
    lookups = {
        "client": np.zeros(3, np.int32),
        "client_node": np.zeros(3, np.int16),
        "service": np.arange(3, dtype=np.int16),
        "endpoint_node": np.zeros(1, np.int16),
    } | flag_lookups()
    sc = chain("a", ServiceCalls())
    result = RunResult(sc, 7, Columns(stored, lookups), ("a",), (), ("x", "y", "z"), 0.0, parent=parent)
    roots = np.flatnonzero(parent < 0)
    parts, waits = _vectorised(result, roots)
    ref_parts, ref_waits = _reference(result, roots)
    np.testing.assert_array_equal(parts, ref_parts)
    assert waits == ref_waits
