"""The documentation site builds with Sphinx with warnings as errors, notebooks rendered with their outputs.

The notebooks are not executed twice: the build gets the ones ``tests/notebook_runs.py`` executed for
``tests/test_notebooks.py`` (``SIM_DOCS_NOTEBOOKS``, see ``docs/conf.py``). ``docs/`` is copied to a temporary
folder first, so the build writes nothing into the repository.
"""

from __future__ import annotations

import html
import os
import re
import shutil
import subprocess
import sys
import time

import pytest

from sim.cli import _parser
from tests.conftest import ROOT
from tests.notebook_runs import execute
from tests.test_notebooks import NOTEBOOKS, kernel_name  # noqa: F401 - the session's kernel fixture

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
