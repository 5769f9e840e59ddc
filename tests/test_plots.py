"""Plots: each function draws on an Axes with a title, units and a legend; `sim plot` writes PNG and SVG."""

from __future__ import annotations

import subprocess
import sys

import pytest
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from sim import plots
from sim.experiment.analysis import design_point_summary
from sim.experiment.results import summary_frame
from sim.experiment.sweep import sweep
from sim.io import ResultDir, load_experiment, load_results
from tests.conftest import ROOT
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
    assert "Locality" in ax.get_title() and ax.get_xlabel() == "rate (requests/s)"
    assert "Local cross-node" in {t.get_text() for t in ax.get_legend().get_texts()}

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
    assert list(figures) == ["tradeoff", "endpoints", "heatmap", "latency_ecdf"]
    titles = [ax.get_title() for ax in figures["tradeoff"].axes]
    assert any(t.startswith("Latency") for t in titles) and any(t.startswith("Locality") for t in titles)
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
    names = {f"{stem}.{ext}" for stem in ("tradeoff", "endpoints", "heatmap", "latency_ecdf") for ext in ("png", "svg")}
    assert {p.name for p in out.iterdir()} == names
    assert all((out / n).stat().st_size > 1000 for n in names)
    assert (out / "heatmap.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert b"<svg" in (out / "heatmap.svg").read_bytes()[:400]
    assert done.stdout.split() == [
        str(out / n) for s in ("tradeoff", "endpoints", "heatmap", "latency_ecdf") for n in (f"{s}.png", f"{s}.svg")
    ]
    missing = subprocess.run(
        [sys.executable, "-m", "sim", "plot", str(tmp_path / "nothing")], capture_output=True, text=True, check=False
    )
    assert missing.returncode == 2 and missing.stderr.count("\n") == 1 and "no such results directory" in missing.stderr
