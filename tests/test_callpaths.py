"""A call graph's pages along their critical path (``sim.experiment.callpaths``), on runs whose every time is a
constant, so that each part has one exact value: the pods' service times and the links' delays summed along the
path the engine took. Each test names the wrong model it fails on.
"""

from __future__ import annotations

import json

import pytest

from sim.callgraph import Call, CallGraph, CallMode, Parallel, ServiceCalls
from sim.cluster import Pod, Service
from sim.distributions import Constant
from sim.experiment.analysis import summarize
from sim.experiment.metrics import CallPath, services_from_json
from sim.facade import simulate
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
    assert p.critical_path_s["own_work"] == pytest.approx(FRONT + 2 * BACK, rel=1e-9)
    assert p.critical_path_s["network"] == pytest.approx(2 * SAME + 2 * 2 * 2 * HOP, rel=1e-9)
    assert p.critical_path_s["queueing"] == pytest.approx(0.0, abs=1e-12)
    assert sum(p.critical_path_s.values()) == pytest.approx(p.latency_s["mean"], rel=1e-9)
    assert p.wait_on_callee_s == {"be": pytest.approx(2 * (BACK + 4 * HOP), rel=1e-9)}
    assert (p.same_node_fraction, p.same_zone_fraction) == (0.0, 1.0)
    assert doc["services"]["be"]["cross_node_fraction"] == 1.0  # every call answered off the calling pod's node
    assert "call_path" not in doc["services"]["be"]  # a callee only: no pages of its own


def test_a_fan_out_counts_its_slowest_call_once() -> None:
    """Two calls at once: the path holds one of them, so own work is the front's and one call's. Fails on "the
    sum" of the fan-out (own 5 ms, wait 2 calls)."""
    p, doc = path(chain("a", ServiceCalls(CallMode.SYNC, (Parallel((Call("be", count=2),)),))))
    assert p is not None
    assert p.critical_path_s["own_work"] == pytest.approx(FRONT + BACK, rel=1e-9)
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
