"""The documentation site builds with Sphinx with warnings as errors, notebooks rendered with their outputs.

The notebooks are not executed twice: the build gets the ones ``tests/notebook_runs.py`` executed for
``tests/test_notebooks.py`` (``SIM_DOCS_NOTEBOOKS``, see ``docs/conf.py``). ``docs/`` is copied to a temporary
folder first, so the build writes nothing into the repository.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sim.cli import _parser
from tests.conftest import ROOT
from tests.notebook_runs import execute
from tests.test_notebooks import NOTEBOOKS, kernel_name  # noqa: F401 - the session's kernel fixture
from tests.test_report import browse, needs_chromium

PAGES = (
    "index",
    "getting-started",
    "scenarios",
    "experiments",
    "reports",
    "statistics",
    "python-api",
    "performance",
    "architecture",
    "cli",
    "api",
)


@pytest.fixture(scope="module")
def site(kernel_name, tmp_path_factory):  # noqa: F811 - the fixture imported above
    """The built site: ``sphinx-build -W -b html`` of a copy of docs/ with the executed notebooks."""
    import nbformat

    work = tmp_path_factory.mktemp("docs")
    executed = work / "executed"
    executed.mkdir()
    for source in NOTEBOOKS:
        done = execute(source, kernel_name, tmp_path_factory.getbasetemp() / "executed-notebooks")
        nbformat.write(done.notebook, executed / f"{source.stem}.ipynb")
    src, out = work / "src", work / "html"
    shutil.copytree(ROOT / "docs", src, ignore=shutil.ignore_patterns("_build", "notebooks"))
    env = {**os.environ, "SIM_DOCS_ROOT": str(ROOT), "SIM_DOCS_NOTEBOOKS": str(executed)}
    start = time.perf_counter()
    built = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html", str(src), str(out)],
        capture_output=True,
        text=True,
        env=env,
        cwd=work,
        check=False,
    )
    print(f"sphinx-build: {time.perf_counter() - start:.1f} s")
    assert built.returncode == 0, built.stderr[-4000:]
    return out


def test_every_page_is_listed_and_sphinx_is_configured():
    """Quick, without a build: every page is in index.md's toctree (or joins it through MORE_PAGES)."""
    index = (ROOT / "docs" / "index.md").read_text()
    listed = set(re.findall(r"^([\w-]+)$", index, flags=re.MULTILINE))
    assert "MORE_PAGES" in listed
    assert set(PAGES[1:]) <= listed
    conf = (ROOT / "docs" / "conf.py").read_text()
    assert '"myst_nb"' in conf and '"sphinx.ext.autodoc"' in conf and '"sphinxarg.ext"' in conf


@pytest.mark.slow
def test_docs_build_with_warnings_as_errors_and_every_page(site):
    for page in PAGES:
        assert (site / f"{page}.html").is_file(), page
    index = (site / "index.html").read_text()
    for page in PAGES[1:]:
        assert f'href="{page}.html"' in index, f"{page} is not in the index's toctree"
    api = (site / "api.html").read_text()
    for name in ("sim.engine.run", "sim.experiment.rundoc.run_document", "sim.plots.run_figures", "sim.report.render"):
        assert f'id="{name}"' in api, name


@pytest.mark.slow
def test_notebooks_are_rendered_with_their_outputs_and_exercises(site):
    for source in NOTEBOOKS:
        page = (site / "notebooks" / f"{source.stem}.html").read_text()
        assert re.search(r'<img [^>]*src="[^"]+\.png"', page), f"{source.stem}: no figure outputs"
        assert "Exercise 3" in page and "<details><summary>Answer</summary>" in page, source.stem
        assert "no prediction yet" in page  # the check cells' outputs


@pytest.mark.slow
def test_cli_reference_lists_every_command_and_option(site):
    text = " ".join(html.unescape(re.sub(r"<[^>]+>", " ", (site / "cli.html").read_text())).split())
    commands = _parser()._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    for name, sub in commands.items():
        assert f"sim {name} [ - h ]" in text, name  # its usage line
        for action in sub._actions:
            for option in action.option_strings:
                assert option in text, f"sim {name} {option}"


# --- the site on a projector and a wide screen ------------------------------------------------------------------

WIDTHS = (1280, 1920)
"""A projector's width and a wide screen's, in CSS pixels."""
LAYOUT_PAGES = ("getting-started", "python-api", "cli", "notebooks/03_statistics_of_load_balancing")

MEASURE = """<script>
(function () {
  const box = (el) => { const r = el.getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom]; };
  const nav = document.querySelector(".sidebar-drawer");
  const text = document.querySelector("article");
  const cut = [...document.querySelectorAll("pre")].filter((p) => p.scrollWidth > p.clientWidth + 1);
  const out = document.createElement("pre");
  out.id = "measured";
  out.textContent = JSON.stringify({
    width: window.innerWidth, nav: nav ? box(nav) : null, text: text ? box(text) : null,
    cut: cut.map((p) => p.textContent.slice(0, 60)), pres: document.querySelectorAll("pre").length,
  });
  document.body.appendChild(out);
})();
</script>"""
"""Measures the page as laid out: where the navigation and the text are, and which code blocks scroll sideways."""


def layout(page: Path, width: int, tmp_path: Path) -> dict:
    """The page's measurements (``MEASURE``) in headless Chromium at ``width`` x 900 pixels."""
    measured = page.with_name(f"{page.stem}.measure-{width}.html")
    measured.write_text(page.read_text().replace("</body>", MEASURE + "</body>"))
    done = browse(measured, tmp_path, f"--window-size={width},900", "--dump-dom")
    found = re.search(r'<pre id="measured">(.*?)</pre>', done.stdout, flags=re.S)
    assert found, done.stderr[-2000:]
    return json.loads(html.unescape(found.group(1)))


def beside(m: dict) -> bool:
    """Whether the navigation is on screen, left of the text and level with it (not dropped below, not hidden)."""
    nav, text = m["nav"], m["text"]
    return bool(nav and text) and nav[0] >= 0 and nav[2] - nav[0] >= 150 and nav[2] <= text[0] + 1 and nav[1] < 300


def test_the_layout_check_can_fail():
    """A mobile layout (navigation off screen or below the text) and a scrolled code block are caught."""
    ok = {"width": 1280, "nav": [0, 0, 240, 900], "text": [288, 0, 1232, 4000], "cut": [], "pres": 3}
    assert beside(ok)
    assert not beside({**ok, "nav": [-240, 0, 0, 900]})  # Furo's drawer, closed
    assert not beside({**ok, "nav": [0, 4100, 1280, 4600], "text": [0, 0, 1280, 4000]})  # below the text
    assert not beside({**ok, "nav": None})


@pytest.mark.slow
@needs_chromium
@pytest.mark.parametrize("width", WIDTHS)
def test_the_site_reads_on_a_projector_and_a_wide_screen(site, width, tmp_path):
    """At 1280 and 1920 pixels the navigation is beside the text and no code block is cut off behind a scrollbar;
    the screenshots are kept in the test's folder for a look."""
    for name in LAYOUT_PAGES:
        page = site / f"{name}.html"
        m = layout(page, width, tmp_path)
        assert m["width"] == width and m["pres"] > 0, (name, m)
        assert beside(m), f"{name} at {width} px: navigation {m['nav']}, text {m['text']}"
        assert not m["cut"], f"{name} at {width} px: code cut off: {m['cut']}"
        shot = tmp_path / f"{name.replace('/', '-')}-{width}.png"
        done = browse(page, tmp_path, f"--window-size={width},900", f"--screenshot={shot}", "--hide-scrollbars")
        assert shot.is_file() and shot.stat().st_size > 10_000, done.stderr[-2000:]


@pytest.mark.slow
def test_program_output_is_text_not_python(site):
    """Every fenced block of the pages names its language (program output: ``text``), so no output is coloured as
    Python (an apostrophe in "Cohen's w" opened a string for the rest of the block)."""
    for page in sorted((ROOT / "docs").glob("*.md")):
        opening = re.findall(r"^```(\S*)$(?:.*?)^```$", page.read_text(), flags=re.M | re.S)
        assert "" not in opening, f"{page.name}: a fenced block without a language (program output is ```text)"
    text = (site / "getting-started.html").read_text()
    assert 'class="highlight-text notranslate"' in text and "Cohen's w" in text
