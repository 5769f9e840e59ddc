"""Each teaching notebook executed once per test session, shared by tests/test_notebooks.py (which checks what it
ran and wrote) and tests/test_docs.py (which renders the executed notebooks into the documentation site)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import ROOT

NOTEBOOK_DIR = ROOT / "notebooks"
CELL_TIMEOUT_S = 120


@dataclass(frozen=True)
class Executed:
    """A notebook with its outputs, the folder its figures went to (SIM_FIGURES_DIR) and its run time (s)."""

    notebook: object
    figures: Path
    elapsed_s: float


_DONE: dict[Path, Executed] = {}


def execute(source: Path, kernel_name: str, workdir: Path) -> Executed:
    """Run ``source`` (jupytext py:percent) from ``notebooks/`` as Jupyter would, once per session."""
    if source in _DONE:
        return _DONE[source]
    import jupytext
    from nbclient import NotebookClient

    figures = workdir / source.stem / "figures"
    notebook = jupytext.read(source)
    client = NotebookClient(
        notebook,
        timeout=CELL_TIMEOUT_S,
        kernel_name=kernel_name,
        resources={"metadata": {"path": str(NOTEBOOK_DIR)}},  # run from notebooks/, as Jupyter would
    )
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SIM_FIGURES_DIR", str(figures))  # the kernel inherits it
        start = time.perf_counter()
        client.execute()  # raises CellExecutionError, with the cell and its traceback, if any cell fails
        elapsed = time.perf_counter() - start
    _DONE[source] = Executed(notebook, figures, elapsed)
    return _DONE[source]
