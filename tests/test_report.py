"""`sim report`: one self-contained HTML file per run or sweep, checked as text and in a real browser.

The browser test opens the report in headless Chromium (Debian's ``chromium``; ``.ci/run`` installs it), with
every host name unresolvable so that any outside resource would fail, and checks that the console stays silent,
that the screenshot is not blank, and that every number the page shows equals the JSON's.
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from sim import report
from sim.cli import main
from sim.errors import SpecError
from sim.experiment.sweep import sweep
from sim.io import ResultDir, load_experiment
from tests.conftest import ROOT
from tests.test_spec import SPEC, write_spec

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",  # the suite runs as root in CI
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--host-resolver-rules=MAP * ~NOTFOUND",  # nothing outside the file can load
    "--enable-logging=stderr",
    "--v=0",
)


def sim(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sim", *args], capture_output=True, text=True, cwd=ROOT, check=False)


@pytest.fixture(scope="module")
def run_report(local_pod_dies_run):
    html = local_pod_dies_run.with_name("report.html")
    done = sim("report", str(local_pod_dies_run), "-o", str(html))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(html)
    return html


@pytest.fixture(scope="module")
def sweep_dir(tmp_path_factory):
    directory = tmp_path_factory.mktemp("sweep-report")
    spec = write_spec(directory, SPEC.replace("replications = 3", "replications = 2"))
    out = directory / "results"
    sweep(load_experiment(spec, {"streams.0.requests": 300}), ResultDir(out))
    return out


class Page(HTMLParser):
    """Every tag with its attributes, and the text of each element that has a ``data-key``."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.cells: list[dict[str, str]] = []
        self._open: list[dict[str, str] | None] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.append((tag, a))
        if tag in ("td", "span"):
            self._open.append({**a, "text": ""} if "data-key" in a else None)

    def handle_endtag(self, tag):
        if tag in ("td", "span") and self._open:
            done = self._open.pop()
            if done is not None:
                self.cells.append(done)

    def handle_data(self, data):
        for cell in self._open:
            if cell is not None:
                cell["text"] += data


def parse(html: str) -> Page:
    page = Page()
    page.feed(html)
    return page


def shown_equals_json(cell: dict[str, str], doc: dict) -> None:
    """The number a cell shows, read back, equals the JSON value at its key to the shown precision."""
    value: object = doc
    for part in cell["data-key"].split("/"):
        value = value[part]  # type: ignore[index]
    text = cell["text"].strip()
    kind = cell.get("data-kind", "count")
    if value is None:
        assert text == "-", cell
        return
    assert json.loads(cell["data-value"]) == value, cell
    if kind == "count":
        assert int(text) == value, cell
    elif kind == "pct":
        assert text.endswith("%") and abs(float(text[:-1]) - value * 100) <= 0.05 + 1e-9, cell
    elif kind == "ms":
        assert text.endswith(" ms") and abs(float(text[:-3]) - value * 1e3) <= 0.0005 + 1e-12, cell
    else:
        assert math.isclose(float(text), value, rel_tol=1e-3), cell


def test_run_report_is_one_self_contained_file_and_shows_the_json(local_pod_dies_run, run_report):
    html = run_report.read_text()
    doc = json.loads(local_pod_dies_run.read_text())
    page = parse(html)
    tags = [t for t, _ in page.tags]
    assert "script" not in tags and "link" not in tags and "img" not in tags and "iframe" not in tags
    for _, attrs in page.tags:
        for name in ("src", "href"):
            target = attrs.get(name) or ""
            assert not target or target.startswith("#"), f"{name}={target}: a reference outside the file"
    assert tags.count("svg") == 5  # the cluster graph and the four figures, inline
    ids = [a["id"] for t, a in page.tags if a.get("id")]
    assert len(ids) == len(set(ids)), "two inline SVGs share an id"
    keys = {c["data-key"] for c in page.cells}
    for name in doc["services"]:
        assert f"services/{name}/completed" in keys and f"services/{name}/latency_s/p99" in keys
    for cell in page.cells:
        shown_equals_json(cell, doc)
    assert doc["provenance"]["command"] in html and "terminate pod echo-local-kind-worker" in html
    assert "no_local_endpoints" in html and "Cluster" in html and "Local" in html


def test_report_escapes_what_the_json_says(local_pod_dies_run, tmp_path):
    doc = json.loads(local_pod_dies_run.read_text())
    doc["scenario"] = "<script>alert(1)</script>"
    doc["cluster"]["services"][0]["name"] = '"><img src=x onerror=alert(1)>'
    hostile = tmp_path / "hostile.json"
    hostile.write_text(json.dumps(doc))
    html = report.render(hostile)
    assert "<script>" not in html and "<img" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_report_of_a_run_file_written_before_replies_by_node(local_pod_dies_run, tmp_path):
    """A ``sim run --out`` file from before the field existed still reports: without the replies-by-node table
    (a file written since has it, each cell tagged with its JSON path)."""
    doc = json.loads(local_pod_dies_run.read_text())
    assert "/replies_by_node/" in report.render(local_pod_dies_run)
    for service in doc["services"].values():
        del service["replies_by_node"]
    older = tmp_path / "older.json"
    older.write_text(json.dumps(doc))
    html = report.render(older)
    assert "/replies_by_node/" not in html and "Per Service" in html


def test_sweep_report_has_factors_tables_figures_and_seeds(sweep_dir, tmp_path):
    out = tmp_path / "sweep.html"
    done = sim("report", str(sweep_dir), "-o", str(out))
    assert done.returncode == 0, done.stderr
    html = out.read_text()
    page = parse(html)
    assert [t for t, _ in page.tags].count("svg") == 6  # cluster, latency, locality, endpoints, heatmap, ECDF
    info = json.loads((sweep_dir / "experiment.json").read_text())
    assert f"sim sweep {info['spec']}" in html and f"root seed {info['root_seed']}" in html
    assert {c["data-key"] for c in page.cells} == {"runs_ok"}
    assert next(c for c in page.cells if c["data-key"] == "runs_ok")["text"] == "8"
    for run in info["runs"]:
        assert f"{run['replication']}: {run['seed']}" in html


def test_sweep_report_shows_paired_differences_with_intervals_and_q_values(sweep_dir, tmp_path):
    """The line factor's levels against its first, per other factor level: the numbers of
    ``paired_difference_table`` (Benjamini-Hochberg over the table), and table cells that do not wrap."""
    from sim.experiment.presentation import difference as fmt_diff
    from sim.experiment.results import summary_frame
    from sim.experiment.tables import paired_difference_table
    from sim.io import load_results

    out = tmp_path / "sweep.html"
    assert main(["report", str(sweep_dir), "-o", str(out)]) == 0
    html = out.read_text()
    info, records = load_results(sweep_dir)
    names = [f["name"] for f in info["factors"]]
    table = paired_difference_table(summary_frame(records, names), names, names[0], "Cluster")
    assert len(table) == 2 * 3 and table["qvalue"].notna().all()  # 2 rates x 3 metrics, Local against Cluster
    paired = html[html.index('id="paired"') : html.index('id="figures"')]
    assert "against Cluster" in paired and "Benjamini-Hochberg" in paired
    for r in table.itertuples():
        unit = "pp" if r.metric == "cross_node_fraction" else "ms"
        assert fmt_diff(r.difference, unit) in paired
        assert f"{fmt_diff(r.low, unit, True)} to {fmt_diff(r.high, unit, True)}" in paired
        assert f"{r.qvalue:.4g}" in paired
    assert ".scroll td { white-space: nowrap; }" in html


def test_report_of_bad_input_is_one_line_and_writes_nothing(local_pod_dies_run, tmp_path, capsys):
    out = tmp_path / "r.html"
    for bad, words in ((tmp_path / "none.json", "no such file"), (tmp_path, "no experiment.json")):
        assert main(["report", str(bad), "-o", str(out)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and words in err, err
        assert not out.exists()
    with pytest.raises(SpecError, match="no Service 'nope'"):
        report.render(local_pod_dies_run, service="nope")


@pytest.mark.parametrize(
    ("where", "value", "field"),
    [
        (("window_s",), 0, "window_s: must be > 0"),
        (("cluster", "nodes"), "kind-worker", "cluster.nodes: expected list"),
        (("timeline", 0, "at_s"), "soon", "timeline[0].at_s"),
        (("services", "echo-local", "windows", "sent"), [1, 2], None),
        (("services", "echo-local", "windows", "landed", "echo-local-kind-worker"), [1], "landed.echo-local-kind"),
        (("services", "echo-local", "windows", "latency_s", "p99"), ["x"] * 60, "latency_s.p99: expected numbers"),
        (("services", "echo-cluster", "latency_histogram"), None, "latency_histogram: expected dict"),
        (("services", "echo-cluster", "chi_square", "dof"), "two", "services.echo-cluster: cannot be read"),
    ],
)
def test_a_damaged_run_file_is_one_line_for_plot_and_report(local_pod_dies_run, tmp_path, capsys, where, value, field):
    doc = json.loads(local_pod_dies_run.read_text())
    target = doc
    for key in where[:-1]:
        target = target[key]
    target[where[-1]] = value
    bad = tmp_path / "damaged.json"
    bad.write_text(json.dumps(doc))
    for argv in (
        ["plot", str(bad), "--out", str(tmp_path / "figs")],
        ["report", str(bad), "-o", str(tmp_path / "r.html")],
    ):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith(f"sim: error: {bad}: "), err
        assert field is None or field in err, err
    assert not (tmp_path / "figs").exists() and not (tmp_path / "r.html").exists()


# --- in a real browser -------------------------------------------------------------------------------------------


def _chromium() -> str | None:
    return next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)


def browse(html: Path, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Open ``html`` in headless Chromium with a fresh profile; ``args`` say what to produce."""
    exe = _chromium()
    assert exe is not None
    profile = tmp_path / f"profile-{len(list(tmp_path.glob('profile-*')))}"
    return subprocess.run(
        [exe, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args, html.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def console_messages(stderr: str) -> list[str]:
    """What the page wrote to the console (errors, warnings, failed loads); Chromium logs them as CONSOLE."""
    return [line for line in stderr.splitlines() if ":CONSOLE" in line]


needs_chromium = pytest.mark.skipif(
    _chromium() is None, reason="no chromium on PATH (Debian: apt-get install chromium; .ci/run installs it)"
)


@needs_chromium
def test_the_console_check_catches_a_broken_page(tmp_path):
    """The harness can fail: a page with a script error and a missing outside image is caught."""
    bad = tmp_path / "bad.html"
    bad.write_text('<!DOCTYPE html><p>x</p><img src="https://example.org/x.png"><script>nope();</script>')
    done = browse(bad, tmp_path, "--dump-dom")
    assert any("nope is not defined" in m for m in console_messages(done.stderr)), done.stderr


@pytest.mark.slow
@needs_chromium
def test_report_in_headless_chromium(local_pod_dies_run, run_report, tmp_path):
    from PIL import Image

    dom = browse(run_report, tmp_path, "--dump-dom")
    assert dom.returncode == 0, dom.stderr
    assert console_messages(dom.stderr) == []
    doc = json.loads(local_pod_dies_run.read_text())
    page = parse(dom.stdout)
    assert len(page.cells) > 20
    for cell in page.cells:  # what the browser shows, read from its DOM, against the JSON
        shown_equals_json(cell, doc)

    shot = tmp_path / "report.png"
    done = browse(run_report, tmp_path, "--window-size=1280,2400", f"--screenshot={shot}", "--hide-scrollbars")
    assert done.returncode == 0 and shot.is_file(), done.stderr
    assert console_messages(done.stderr) == []
    pixels = np.asarray(Image.open(shot).convert("RGB"), dtype=np.int16)
    assert pixels.shape[:2] == (2400, 1280)
    inked = np.any(np.abs(pixels - pixels[0, 0]) > 40, axis=2)  # differs clearly from the background
    assert inked.mean() > 0.02, f"the screenshot is nearly blank: {inked.mean():.1%} inked"
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 50  # text, tables and a drawing, not a flat fill


def test_a_call_graph_run_that_measured_no_calls_reports_without_warnings(tmp_path, recwarn):
    """``call_chain.toml`` at 100 requests ends inside its 2 s warm-up: no call is measured, so there is no service
    graph to draw and every heatmap is empty; the report says so instead of failing on ``max()`` of no edges (it
    did) or warning about an empty image's limits."""
    run = tmp_path / "r.json"
    assert (
        main(["-q", "run", str(ROOT / "experiments/apps/call_chain.toml"), "--requests", "100", "--out", str(run)]) == 0
    )
    assert json.loads(run.read_text())["call_graph"]["edges"] == []
    assert main(["-q", "report", str(run), "-o", str(tmp_path / "r.html")]) == 0
    assert "service_graph" not in (tmp_path / "r.html").read_text()
    assert not [w for w in recwarn if "singular" in str(w.message)]


def test_an_empty_plot_out_is_named_as_the_flag(local_pod_dies_run, capsys):
    """``sim plot RUN --out ''``: the one-line error names ``--out``, the flag given (it named "figures directory",
    the default's words, because an empty string is falsy)."""
    assert main(["plot", str(local_pod_dies_run), "--out", ""]) == 2
    assert capsys.readouterr().err.strip() == "sim: error: '': --out: is not a directory name; give one"
