"""Plots: each function draws on an Axes with a title, units and a legend; `sim plot` writes PNG and SVG."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from sim import plots
from sim.cli import main
from sim.experiment.results import summary_frame
from sim.experiment.sweep import sweep
from sim.experiment.tables import design_point_summary
from sim.io import ResultDir, load_experiment, load_results, load_scenario
from tests.conftest import LOCAL_POD_DIES, ROOT
from tests.test_spec import SPEC, write_spec

POLICY = "services.svc.internalTrafficPolicy"
RATE = "streams.0.workload.rate_rps"


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """A finished small sweep on disk: 2 policies x 2 rates x 2 replications."""
    directory = tmp_path_factory.mktemp("plots")
    spec = write_spec(directory, SPEC.replace("replications = 3", "replications = 2"))
    out = directory / "results"
    sweep(load_experiment(spec, {"streams.0.requests": 300}), ResultDir(out))
    return out


def test_each_plot_draws_on_the_given_axes_with_titles_and_units(results):
    info, records = load_results(results)
    names = [f["name"] for f in info["factors"]]
    table = design_point_summary(summary_frame(records, names), names)
    fig = Figure()
    axes = fig.subplots(2, 3).ravel()

    ax = plots.tradeoff_latency(table[table[RATE] == 400], RATE, POLICY, axes[0])
    assert ax is axes[0]
    assert "Latency" in ax.get_title() and ax.get_ylabel() == "latency (ms, log scale)" and ax.get_xlabel() == RATE
    assert {t.get_text() for t in ax.get_legend().get_texts()} == {
        "Cluster mean",
        "Cluster p99",
        "Local mean",
        "Local p99",
    }
    ax = plots.tradeoff_locality(table, RATE, POLICY, axes[1], x_label="rate (requests/s)")
    assert "Locality" in ax.get_title() and ax.get_xlabel().startswith("rate (requests/s)\n(lines offset sideways")
    assert "Local another node" in {t.get_text() for t in ax.get_legend().get_texts()}

    local = [r for r in records if r["factors"][POLICY] == "Local"]
    ax = plots.endpoint_bars(local, "svc", axes[2])
    assert ax.get_title() == f"Requests per endpoint: svc ({len(local)} runs)"
    assert ax.get_ylabel() == "share of routed requests (%)"
    assert [t.get_text() for t in ax.get_xticklabels()] == ["svc-a"]  # Local: only the client's node's endpoint
    assert [bar.get_height() for bar in ax.patches] == pytest.approx([100.0])
    ax = plots.endpoint_bars(local, "svc", axes[5], endpoints=["svc-a", "svc-b"])
    assert [bar.get_height() for bar in ax.patches] == pytest.approx([100.0, 0.0])

    ax = plots.node_heatmap(records, "svc", axes[3])
    assert ax.get_title() == "Client node x serving node: svc"
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("serving node", "client node")

    ax = plots.latency_ecdf({"Local": local}, "svc", axes[4])
    assert ax.get_title() == "Latency ECDF: svc" and ax.get_xscale() == "log"
    assert ax.get_legend().get_texts()[0].get_text() == f"Local ({len(local)} runs)"


def test_plots_make_their_own_figure_without_pyplot():
    ax = plots.latency_ecdf({}, "svc")
    assert isinstance(ax, Axes) and isinstance(ax.figure, Figure)


def test_sweep_figures_are_written_as_png_and_svg(results, tmp_path):
    info, records = load_results(results)
    figures = plots.sweep_figures(info, records, at={RATE: 100})
    assert list(figures) == ["tradeoff_latency", "tradeoff_locality", "endpoints", "heatmap", "latency_ecdf"]
    assert "latency: mean and p99" in figures["tradeoff_latency"].get_suptitle()
    assert "served on another node or zone" in figures["tradeoff_locality"].get_suptitle()
    assert [ax.get_title() for ax in figures["endpoints"].axes] == [f"{POLICY}=Cluster", f"{POLICY}=Local"]
    assert f"{RATE}=100" in figures["heatmap"].get_suptitle()
    bars = figures["endpoints"].axes[0]
    assert [t.get_text() for t in bars.get_xticklabels()] == ["svc-a", "svc-b"]  # the same bars in every panel
    with pytest.raises(ValueError, match="names no factor"):
        plots.sweep_figures(info, records, x="load")
    with pytest.raises(ValueError, match="no level"):
        plots.sweep_figures(info, records, at={RATE: 123})


def test_cli_plot_writes_every_figure(results, tmp_path):
    out = tmp_path / "figs"
    done = subprocess.run(
        [sys.executable, "-m", "sim", "plot", str(results), "--out", str(out), "--line", POLICY, "--x", RATE],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    stems = ("tradeoff_latency", "tradeoff_locality", "endpoints", "heatmap", "latency_ecdf")
    names = {f"{stem}.{ext}" for stem in stems for ext in ("png", "svg")}
    assert {p.name for p in out.iterdir()} == names
    assert all((out / n).stat().st_size > 1000 for n in names)
    assert (out / "heatmap.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert b"<svg" in (out / "heatmap.svg").read_bytes()[:400]
    assert done.stdout.split() == [str(out / n) for s in stems for n in (f"{s}.png", f"{s}.svg")]
    missing = subprocess.run(
        [sys.executable, "-m", "sim", "plot", str(tmp_path / "nothing")], capture_output=True, text=True, check=False
    )
    assert missing.returncode == 2 and missing.stderr.count("\n") == 1 and "no such results directory" in missing.stderr


# --- the sweep figures' faults (issue 17) ------------------------------------------------------------------------


@given(st.floats(1e-6, 1e6), st.floats(1.0, 1e4))
def test_log_ticks_bracket_the_data_with_labels(low, ratio):
    """The lowest label is at or below the data and at most one nice step (x2) away; same for the highest."""
    ticks = plots.log_ticks(low, low * ratio)
    assert ticks[0] <= low * (1 + 1e-9) and ticks[0] > low / 2.0001
    assert ticks[-1] >= low * ratio * (1 - 1e-9) and ticks[-1] < low * ratio * 2.0001
    assert ticks == sorted(ticks) and len(ticks) <= 11


def test_tradeoff_ticks_sit_on_the_levels_styles_mean_one_thing_titles_use_labels(results):
    info, records = load_results(results)
    info = {**info, "plot": {"labels": {RATE: "offered load (requests/s)"}}}
    figures = plots.sweep_figures(info, records, x=RATE, line=POLICY)
    (top,), (bottom,) = figures["tradeoff_latency"].axes, figures["tradeoff_locality"].axes  # one panel each
    for ax in (top, bottom):
        assert [t for t in ax.get_xticks()] == [100, 400]  # at the levels, not at the dodged positions
    styles = {
        row: {ln.get_linestyle() for ln in ax.get_lines() if ln.get_linestyle() != "None"}
        for row, ax in (("top", top), ("bottom", bottom))
    }
    assert styles["top"] and styles["bottom"] and not styles["top"] & styles["bottom"]
    lowest = min(float(np.nanmin(ln.get_ydata())) for ln in top.get_lines() if ln.get_linestyle() != "None")
    assert top.get_ylim()[0] <= lowest and float(top.get_yticks()[0]) <= lowest
    for fig in (figures["tradeoff_latency"], figures["tradeoff_locality"]):
        legend = fig.legends[0]
        assert legend.get_title().get_text() == POLICY
        assert not any("/" in t.get_text() for t in legend.get_texts())  # no entry means two things
        assert "offered load (requests/s)" in fig.get_supxlabel()

    heatmap = plots.sweep_figures(info, records, x=RATE, line=POLICY)["heatmap"]
    assert "at offered load (requests/s): 400" in heatmap.get_suptitle()  # the spec's label, not the path


def test_the_legend_covers_neither_the_title_nor_a_panel(results):
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    info, records = load_results(results)
    figures = plots.sweep_figures(info, records, x=RATE, line=POLICY)
    for fig in (figures["tradeoff_latency"], figures["tradeoff_locality"]):
        renderer = FigureCanvasAgg(fig).get_renderer()
        fig.draw(renderer)
        legend = fig.legends[0].get_window_extent(renderer)
        assert not legend.overlaps(fig._suptitle.get_window_extent(renderer))
        assert not legend.overlaps(fig._supxlabel.get_window_extent(renderer))
        for ax in fig.axes:
            assert not legend.overlaps(ax.get_window_extent(renderer))
            assert not legend.overlaps(ax.title.get_window_extent(renderer))


def test_no_title_is_cut_off(results):
    """Every title and label of every sweep figure lies inside its figure (the ECDF's long design point was cut
    off at the right edge)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    info, records = load_results(results)
    labels = {RATE: "offered load in requests per second, the rate of the one client stream", POLICY: "policy"}
    info = {**info, "plot": {"labels": labels}}
    for name, fig in plots.sweep_figures(info, records, x=RATE, line=POLICY).items():
        renderer = FigureCanvasAgg(fig).get_renderer()
        fig.draw(renderer)
        page = fig.bbox
        texts = [fig._suptitle, *(t for ax in fig.axes for t in (ax.title, ax.xaxis.label, ax.yaxis.label))]
        for text in texts:
            if text is not None and text.get_text():
                box = text.get_window_extent(renderer)
                assert page.x0 - 1 <= box.x0 and box.x1 <= page.x1 + 1, f"{name}: {text.get_text()!r} is cut off"


@pytest.fixture(scope="module")
def all_dropped(tmp_path_factory):
    """A sweep where Local has no local endpoint (svc-a moved to node b): every Local request is dropped."""
    directory = tmp_path_factory.mktemp("dropped")
    spec = write_spec(directory, SPEC.replace("replications = 3", "replications = 2"))
    sets = {"streams.0.requests": 100, "pods.svc-a.node": "b", "defaults.connect_timeout_s": 0.01}
    out = directory / "results"
    sweep(load_experiment(spec, sets), ResultDir(out))
    return out


def _texts(ax):
    """The notes on an axes: under its x label, or inside it."""
    return " ".join([ax.get_xlabel(), *(t.get_text() for t in ax.texts)])


def test_a_series_whose_requests_all_failed_is_named_not_hidden(all_dropped):
    info, records = load_results(all_dropped)
    figures = plots.sweep_figures(info, records, x=RATE, line=POLICY)
    latency = figures["tradeoff_latency"].axes[0]
    assert "not drawn: Local mean: no completed requests" in _texts(latency)
    assert "not drawn: Local p99: no completed requests" in _texts(latency)
    assert "Cluster" not in _texts(latency) and not latency.texts  # in the label, where it covers no data
    assert "not drawn: Local another node" in _texts(figures["tradeoff_locality"].axes[0])
    assert "not drawn: Local: no completed requests" in _texts(figures["latency_ecdf"].axes[0])


def test_without_a_missing_series_there_is_no_note(results):
    info, records = load_results(results)
    figures = plots.sweep_figures(info, records, x=RATE, line=POLICY)
    assert "not drawn" not in _texts(figures["tradeoff_latency"].axes[0])


# --- one run's figures -----------------------------------------------------------------------------------------


def test_run_file_windows_add_up_to_the_summary(local_pod_dies_run):
    doc = json.loads(local_pod_dies_run.read_text())
    scenario, _ = load_scenario(LOCAL_POD_DIES)
    assert doc["window_s"] == 0.5 and scenario.warmup_s == 0  # 30 s in 60 windows; every request is counted
    for _name, s in doc["services"].items():
        w = s["windows"]
        assert len(w["sent"]) == 60 and sum(w["sent"]) == s["sent"]
        assert sum(w["completed"]) == s["completed"]
        assert {r: sum(c) for r, c in w["failed"].items()} == s["drops"]
        # no keep-alive and no warm-up here: every routed request is a fresh pick that summarize counts
        assert {p: sum(c) for p, c in w["landed"].items()} == {p: n for p, n in s["routed_by_endpoint"].items() if n}
        for q in ("p50", "p90", "p99"):
            assert all((v is None) == (n == 0) for v, n in zip(w["latency_s"][q], w["completed"], strict=True))
    local = doc["services"]["echo-local"]["windows"]
    # the local pod is gone at 15 s (grace 5 s): nothing completes from then on; kind-worker's proxy learns 1 s
    # later (sync lag), and from 16 s nothing lands on any pod (no local endpoint: iptables DROP)
    assert local["completed"][30:] == [0] * 30
    assert sum(local["failed"]["stale_endpoint"][30:32]) == sum(local["failed"]["stale_endpoint"]) > 0
    assert all(sum(counts[32:]) == 0 for counts in local["landed"].values())
    assert [e["at_s"] for e in doc["timeline"]] == [10, 10] and doc["timeline"][0]["gone_s"] == 15
    assert doc["cluster"]["topology"] == "kind" and doc["provenance"]["command"].startswith("sim run ")


def test_run_figures_show_shares_nodes_latency_and_time(local_pod_dies_run):
    doc = json.loads(local_pod_dies_run.read_text())
    figures = plots.run_figures(doc)
    assert list(figures) == ["endpoints", "heatmap", "latency_ecdf", "over_time"]
    bars = figures["endpoints"].axes[0]
    assert bars.get_title() == "Service echo-cluster"
    assert "95% range of the share in" in " ".join(t.get_text() for t in bars.get_legend().get_texts())
    over = figures["over_time"]
    landed = over.axes[0]
    heights = np.zeros(60)
    for patch in landed.patches:  # one step patch per series, each window's count above the series below it
        values, edges, baseline = patch.get_data()
        assert np.allclose(edges, np.arange(61) * 0.5)
        heights += np.asarray(values) - np.asarray(baseline)
    assert heights.tolist() == doc["services"]["echo-cluster"]["windows"]["sent"]
    assert {ln.get_xdata()[0] for ln in landed.get_lines()} == {10, 15}  # the events, and the pod gone
    failures = next(ax for ax in over.axes if ax.get_title() == "echo-local: failures by reason")
    assert "no_local_endpoints" in [t.get_text() for t in failures.get_legend().get_texts()]
    quiet = next(ax for ax in over.axes if ax.get_title() == "echo-cluster: failures by reason")
    assert "no failed requests" in _texts(quiet)
    assert "1: 10 s terminate pod echo-cluster-kind-worker (grace 5 s)" in over.get_supxlabel()


def test_cli_plots_a_run_file_and_run_plot_writes_the_same(local_pod_dies_run, tmp_path, capsys):
    assert main(["plot", str(local_pod_dies_run), "--out", str(tmp_path / "a")]) == 0
    names = {f"{s}.{e}" for s in ("endpoints", "heatmap", "latency_ecdf", "over_time") for e in ("png", "svg")}
    assert {p.name for p in (tmp_path / "a").iterdir()} == names
    assert capsys.readouterr().out.split() == [str(tmp_path / "a" / n) for n in sorted(names, key=_figure_order)]
    demo = str(ROOT / "experiments" / "cilium_demo.toml")
    assert main(["run", demo, "--requests", "300", "--json", "--plot", str(tmp_path / "b")]) == 0
    out = capsys.readouterr()
    json.loads(out.out)  # still exactly one JSON object; the figure paths went to stderr
    assert len(out.err.split()) == 8
    assert {p.name for p in (tmp_path / "b").iterdir()} == names


def test_one_run_is_not_called_a_mean_of_runs(local_pod_dies_run):
    """The single run's endpoint legend says what it shows: this run's share, no interval over runs."""
    bars = plots.run_figures(json.loads(local_pod_dies_run.read_text()))["endpoints"].axes[0]
    texts = [t.get_text() for t in bars.get_legend().get_texts()]
    assert "observed share (this run)" in texts and not any("mean of runs" in t for t in texts)


def test_the_same_figure_gives_the_same_svg_bytes(local_pod_dies_run, tmp_path):
    """Drawn twice from the same file, every run figure and the cluster drawing give identical SVG files: ids from
    a fixed salt, no date. (Without the salt, matplotlib draws random clip-path ids each time.)"""
    doc = json.loads(local_pod_dies_run.read_text())
    for attempt in ("a", "b"):
        figures = {**plots.run_figures(doc), "cluster": plots.cluster_graph(doc["cluster"]).figure}
        (tmp_path / attempt).mkdir()
        for name, fig in figures.items():
            (tmp_path / attempt / f"{name}.svg").write_bytes(plots.figure_files(fig)[".svg"])
    assert len(list((tmp_path / "a").glob("*.svg"))) == len(figures)
    for svg in sorted((tmp_path / "a").glob("*.svg")):
        data = svg.read_bytes()
        assert data == (tmp_path / "b" / svg.name).read_bytes(), svg.name
        assert b"<dc:date>" not in data and b'clip-path="url(#' in data
    from matplotlib import rcParams

    assert rcParams["svg.hashsalt"] is None  # the salt was set for the save only


@pytest.mark.parametrize("scenario", ["cilium_demo.toml", "topology_aware.toml"])
def test_no_edge_crosses_a_nodes_label_in_the_cluster_drawing(scenario):
    """Each Kubernetes node's label (its name, zone and pods) sits on the side away from its link, so no edge
    of the drawing passes through it."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from sim.experiment.rundoc import describe_cluster

    cluster = describe_cluster(load_scenario(ROOT / "experiments" / scenario)[0])
    ax = plots.cluster_graph(cluster)
    renderer = FigureCanvasAgg(ax.figure).get_renderer()
    ax.figure.draw(renderer)
    nodes = {n["name"] for n in cluster["nodes"]}
    labels = [t for t in ax.texts if t.get_text().split("\n")[0].split(" [")[0] in nodes]
    assert len(labels) == len(nodes)
    from matplotlib.collections import LineCollection

    (segments,) = [c for c in ax.collections if isinstance(c, LineCollection)]  # the edges, drawn as one collection
    edges = [path.transformed(segments.get_transform()) for path in segments.get_paths()]
    assert len(edges) == len(cluster["links"])
    for label in labels:
        box = label.get_window_extent(renderer)
        crossing = [i for i, edge in enumerate(edges) if edge.intersects_bbox(box, filled=False)]
        assert not crossing, f"{scenario}: an edge crosses the label {label.get_text()!r}"


def _figure_order(name: str) -> tuple[int, str]:
    stem, ext = name.split(".")
    return ["endpoints", "heatmap", "latency_ecdf", "over_time"].index(stem), ext


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (b"\xff\xfe not json", "not a JSON file"),
        (b"[1, 2]", "not a `sim run --out` file"),
        (b'{"seed": 1, "services": {}}', "window_s: missing: written by an older `sim run`"),
    ],
)
def test_plot_of_a_bad_run_file_is_one_line_exit_2(tmp_path, capsys, content, words):
    bad = tmp_path / "bad.json"
    bad.write_bytes(content)
    assert main(["plot", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and words in err and str(bad) in err, err
    assert not (tmp_path / "bad-figures").exists()


@pytest.fixture(scope="module")
def many_services_run():
    """A run document of 12 Services of 100 pods each on 150 nodes (100 client pods, 2,720 requests): more
    Services than the run figures draw, more pods than they stack or label."""
    from sim.cluster import Pod, Service
    from sim.experiment.rundoc import run_document
    from sim.facade import simulate
    from sim.routing import DataplaneConfig
    from sim.scenario import Scenario, Stream
    from sim.workload import ClosedLoop
    from tests.conftest import star

    nodes = [f"node-{i:03d}" for i in range(150)]
    services = [Service(f"svc-{s:02d}", {"app": f"svc-{s:02d}"}) for s in range(12)]
    pods = [
        Pod(f"svc-{s:02d}-{j:03d}", nodes[(s * 100 + j) % 150], f"10.1.{s}.{j + 2}", {"app": f"svc-{s:02d}"})
        for s in range(12)
        for j in range(100)
    ]
    clients = [Pod(f"client-{c:03d}", nodes[c], f"10.2.0.{c + 2}", {"app": "client"}) for c in range(100)]
    # Services 0-5 get 240 requests each, 6-11 160: the first six are the busiest
    streams = [
        Stream(f"client-{c:03d}", f"svc-{c % 12:02d}", ClosedLoop(), 40 if c % 12 < 6 else 20) for c in range(100)
    ]
    scenario = Scenario(
        name="many-services",
        topology=star(nodes),
        pods=(*pods, *clients),
        services=tuple(services),
        streams=tuple(streams),
        dataplane=DataplaneConfig("iptables"),
    )
    return run_document(simulate(scenario, 1, "des"))


def test_a_run_with_many_services_draws_a_readable_bounded_set_of_axes(many_services_run):
    """Issue 24 ("5,000 nodes in seconds"): the time of `sim report` on a big run went to drawing every Service's
    panels (about 350 Axes for 30 Services) and a legend entry and tick label per pod. A run's figures draw at
    most MAX_SERVICE_PANELS Services (the busiest), name the others, stack at most MAX_STACKED series and label
    no pod past LABELLED_TICKS: the count of Axes does not grow with the Services."""
    doc = many_services_run
    figures = plots.run_figures(doc)
    cap = plots.MAX_SERVICE_PANELS
    visible = {name: [ax for ax in fig.axes if ax.axison] for name, fig in figures.items()}
    assert len(visible["endpoints"]) == cap
    assert len(visible["heatmap"]) == 2 * cap  # each with its colour bar
    assert len(visible["over_time"]) == 3 * cap
    assert len(figures["latency_ecdf"].axes[0].get_lines()) == cap + 1  # and the p99 line
    drawn = [ax.get_title().removeprefix("Service ") for ax in visible["endpoints"]]
    assert drawn == [f"svc-{s:02d}" for s in range(6)]  # the busiest six, in the document's order
    for name in ("endpoints", "heatmap", "over_time"):
        title = figures[name].get_suptitle()
        assert "not drawn: 6 Services with fewer requests (svc-06, svc-07, svc-08, svc-09, svc-10 and 1 more)" in (
            title.replace("\n", " ")
        ), name
    bars = visible["endpoints"][0]
    assert not bars.get_xticklabels() and "100 endpoints" in bars.get_xlabel()
    assert bars.get_ylim()[1] < 20  # a hundred pods' shares of about 1% each, not on a 0-100% axis
    landed = visible["over_time"][0]
    entries = [t.get_text() for t in landed.get_legend().get_texts()]
    pods = len(doc["services"]["svc-00"]["windows"]["landed"])  # those that got a request
    assert pods > plots.MAX_STACKED
    assert len(entries) <= plots.MAX_STACKED + 1 and f"~ {pods - 9} other pods" in entries, entries  # + "not routed"


def test_a_run_with_few_services_draws_every_one(local_pod_dies_run):
    """Below the cap nothing is left out, and no title says so."""
    figures = plots.run_figures(json.loads(local_pod_dies_run.read_text()))
    assert all("not drawn" not in fig.get_suptitle() for fig in figures.values() if fig.get_suptitle())
    assert len(figures["endpoints"].axes) == 2


def test_a_sweep_over_a_callees_policy_draws_page_latency_per_policy(tmp_path):
    """Issue 25 item 7, "end-to-end latency CDFs per policy": a sweep of the call chain over its callees' policy
    draws one page-latency ECDF per policy (not per entry Service, as a single run's figure does), pooled over
    replications, and the report shows it."""
    out = tmp_path / "results"
    spec = ROOT / "experiments" / "apps" / "call_chain_policies.toml"
    sweep(load_experiment(spec, {"streams.0.requests": 300}), ResultDir(out))
    info, records = load_results(out)
    figures = plots.sweep_figures(info, records, service="db")  # whichever Service is plotted
    ax = figures["page_latency_ecdf"].axes[0]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["Cluster (3 runs)", "Local (3 runs)"]
    assert "policy of api and db" in figures["page_latency_ecdf"].get_suptitle().replace("\n", " ")
    assert ax.get_ylabel() == "fraction of pages at or below"
    without = plots.sweep_figures(info, [_without_call_paths(r) for r in records])
    assert "page_latency_ecdf" not in without  # no call graph, no page figure
    html = tmp_path / "r.html"
    assert main(["report", str(out), "-o", str(html)]) == 0
    assert 'data-figure="page_latency_ecdf"' in html.read_text()


def _without_call_paths(record):
    """A record as if its Services had no call graph (no ``call_path``)."""
    services = {n: {k: v for k, v in s.items() if k != "call_path"} for n, s in record["metrics"]["services"].items()}
    return {**record, "metrics": {**record["metrics"], "services": services}}


def test_the_dense_service_graph_numbers_its_edges_apart_and_tables_them():
    """Issue 25 item 7: Online Boutique's service graph wrote each edge's label along it, and in a graph this
    dense the labels overlapped one another. Each edge now carries its number, placed where its circle overlaps
    no other number and no Service's box, and a table beside the graph gives each numbered edge's figures."""
    from sim.experiment.rundoc import run_document
    from sim.facade import simulate

    scenario, seed = load_scenario(ROOT / "experiments" / "apps" / "online_boutique.toml", {"requests": 200})
    doc = run_document(simulate(scenario, seed, "des"))
    fig = plots.run_figures(doc)["service_graph"]
    fig.draw_without_rendering()
    graph, table = fig.axes
    edges = doc["call_graph"]["edges"]
    numbers = [t for t in graph.texts if t.get_text().isdigit()]
    assert sorted(int(t.get_text()) for t in numbers) == list(range(1, len(edges) + 1))
    circles = [t.get_bbox_patch().get_window_extent() for t in numbers]
    named = [t for t in graph.texts if t.get_text() and not t.get_text().isdigit()]  # not the arrows
    services = [t.get_bbox_patch().get_window_extent() for t in named]
    assert len(services) == len({n for e in edges for n in (e["caller"], e["callee"])})
    for i, circle in enumerate(circles):
        assert not any(circle.overlaps(other) for other in circles[i + 1 :]), numbers[i].get_text()
        assert not any(circle.overlaps(box) for box in services), numbers[i].get_text()
    cells = table.tables[0].get_celld()
    assert [cells[k, 0].get_text().get_text() for k in range(1, len(edges) + 1)] == [
        str(k) for k in range(1, len(edges) + 1)
    ]
    assert cells[1, 1].get_text().get_text() == "(clients) -> frontend"  # the namespace said once, in the title
    assert "namespace default" in table.get_title()
