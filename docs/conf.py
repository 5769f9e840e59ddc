"""Sphinx configuration: MyST Markdown pages, the notebooks through myst-nb, autodoc, and the CLI from argparse.

Build: ``sphinx-build -W -b html docs docs/_build/html`` (``pip install -e '.[docs]'``). The notebooks live in
``notebooks/`` as jupytext py:percent files; each build copies them into ``docs/notebooks/`` (generated, not
committed) and myst-nb executes them, caching the results (``nb_execution_mode = "cache"``). The test suite
passes notebooks it has already executed instead (``SIM_DOCS_NOTEBOOKS``: a folder of ``.ipynb`` files with
their outputs), so nothing runs twice.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = Path(os.environ.get("SIM_DOCS_ROOT", DOCS.parent)).resolve()
"""The repository: where ``notebooks/`` and the package are (the test suite builds a copy of ``docs/``)."""

project = "k8s-service-sim"
author = "the k8s-service-sim authors"
copyright = "2026, the k8s-service-sim authors"

extensions = ["myst_nb", "sphinx.ext.autodoc", "sphinxarg.ext"]
source_suffix = {".md": "myst-nb", ".ipynb": "myst-nb"}
exclude_patterns = ["_build", "notebooks/nbsetup.py", "**/.ipynb_checkpoints", "jupyter_execute"]
myst_enable_extensions = ["colon_fence"]
myst_heading_anchors = 3
html_theme = "furo"  # maintained; the navigation stays beside the text from 1008 px (63em) wide
html_static_path = ["_static"]
html_css_files = ["sim.css"]  # a text column that grows with the window; code that wraps instead of scrolling
autodoc_member_order = "bysource"
autodoc_typehints = "signature"

# --- the notebooks -----------------------------------------------------------------------------------------------
staged = DOCS / "notebooks"
shutil.rmtree(staged, ignore_errors=True)
staged.mkdir()
executed = os.environ.get("SIM_DOCS_NOTEBOOKS")
if executed:
    for notebook in sorted(Path(executed).glob("[0-9][0-9]_*.ipynb")):
        shutil.copy(notebook, staged / notebook.name)
    nb_execution_mode = "off"
else:
    for script in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.py")):
        shutil.copy(script, staged / script.name)
    shutil.copy(ROOT / "notebooks" / "nbsetup.py", staged / "nbsetup.py")
    source_suffix[".py"] = "myst-nb"
    nb_custom_formats = {".py": ["jupytext.reads", {"fmt": "py:percent"}]}
    nb_execution_mode = "cache"
    nb_execution_cache_path = str(DOCS / "_build" / ".jupyter_cache")
    exclude_patterns.append("conf.py")
nb_execution_timeout = 300
nb_execution_raise_on_error = True
nb_merge_streams = True


# --- pages added later (e.g. semantics.md) join the guide's toctree without editing index.md -------------------


def _more_pages(app, docname, source):
    """Replace the ``MORE_PAGES`` line of index.md's toctree with every top-level page it does not list."""
    if docname != "index":
        return
    listed = set(re.findall(r"^([\w-]+)$", source[0], flags=re.MULTILINE))
    pages = sorted(p.stem for p in Path(app.srcdir).glob("*.md") if p.stem != "index" and p.stem not in listed)
    source[0] = source[0].replace("MORE_PAGES\n", "".join(f"{page}\n" for page in pages))


def setup(app):
    """Register the index hook."""
    app.connect("source-read", _more_pages)
