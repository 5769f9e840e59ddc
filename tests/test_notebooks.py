"""The teaching notebooks: each runs from its jupytext source, as a reader runs it, and writes its figures.

Every ``notebooks/NN_*.py`` (jupytext py:percent) is converted to a notebook and executed by nbclient on a
kernel of the interpreter running the tests, from ``notebooks/`` as working directory, with ``SIM_FIGURES_DIR``
pointing at a temporary folder; the test then checks that every figure the notebook promises is a PNG there.
The notebooks' parameters cells hold small defaults, so each runs in well under a minute on 2 cores.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT

NOTEBOOK_DIR = ROOT / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("[0-9][0-9]_*.py"))
FIGURES = {
    "01_internal_traffic_policy": [
        "01_cluster_graph",
        "01_replies_per_node",
        "01_chi_square_explained",
        "01_local_pod_gone",
    ],
    "02_latency_vs_locality": [
        "02_skewed_clients",
        "02_tradeoff",
        "02_latency_ecdf",
        "02_paired_differences",
    ],
    "03_statistics_of_load_balancing": [
        "03_power_curve",
        "03_effect_size_vs_pvalue",
        "03_round_robin_too_good",
        "03_keepalive_skew",
        "03_false_discovery",
    ],
    "04_topology_aware_routing": [
        "04_multizone_graph",
        "04_prefer_same_zone_node_heatmaps",
        "04_cross_zone_fractions",
    ],
    "05_kernel_rules": ["05_probability_cascade"],
}
"""The PNGs each notebook writes into SIM_FIGURES_DIR (without the suffix)."""
CELL_TIMEOUT_S = 120
KERNEL = "k8s-service-sim-tests"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_every_notebook_is_listed():
    assert [p.stem for p in NOTEBOOKS] == sorted(FIGURES)


@pytest.mark.parametrize("source", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_has_a_parameters_cell_near_the_top(source):
    import jupytext

    code = [c for c in jupytext.read(source).cells if c.cell_type == "code"]
    tagged = [i for i, c in enumerate(code) if "parameters" in c.metadata.get("tags", [])]
    assert tagged and tagged[0] <= 1, "the first or second code cell must be tagged 'parameters'"


@pytest.fixture(scope="session")
def kernel_name(tmp_path_factory):
    """A kernelspec for this very interpreter, first on JUPYTER_PATH: the notebooks run in the environment under
    test (a fresh ``pip install -e '.[test]'`` venv in CI), whatever kernels the machine or the user has."""
    data = tmp_path_factory.mktemp("jupyter")
    spec = data / "kernels" / KERNEL
    spec.mkdir(parents=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    (spec / "kernel.json").write_text(
        json.dumps({"argv": argv, "display_name": "k8s-service-sim tests", "language": "python"})
    )
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("JUPYTER_PATH", os.pathsep.join(filter(None, [str(data), os.environ.get("JUPYTER_PATH")])))
        yield KERNEL


@pytest.mark.slow
@pytest.mark.parametrize("source", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_and_writes_its_figures(source, kernel_name, tmp_path, monkeypatch):
    import jupytext
    from nbclient import NotebookClient

    figures = tmp_path / "figures"
    monkeypatch.setenv("SIM_FIGURES_DIR", str(figures))
    notebook = jupytext.read(source)
    client = NotebookClient(
        notebook,
        timeout=CELL_TIMEOUT_S,
        kernel_name=kernel_name,
        resources={"metadata": {"path": str(NOTEBOOK_DIR)}},  # run from notebooks/, as Jupyter would
    )
    start = time.perf_counter()
    client.execute()  # raises CellExecutionError, with the cell and its traceback, if any cell fails
    elapsed = time.perf_counter() - start

    errors = [o for c in notebook.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors
    written = sorted(p.stem for p in figures.glob("*.png"))
    assert written == sorted(FIGURES[source.stem]), f"{source.name} wrote {written}"
    for name in written:
        data = (figures / f"{name}.png").read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 10_000, f"{name}.png is not a real figure"
    shown = [o for c in notebook.cells if c.cell_type == "code" for o in c.outputs if "image/png" in o.get("data", {})]
    assert len(shown) >= len(written), "every saved figure is also shown in the notebook"
    print(f"{source.name}: {elapsed:.1f} s")


def _ruff(*args: str) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")
    if exe is None:
        pytest.fail("ruff is not installed: pip install -e '.[test]'")
    return subprocess.run([exe, *args], capture_output=True, text=True, cwd=ROOT, check=False)


def test_notebooks_pass_ruff():
    done = _ruff("check", "notebooks")
    assert done.returncode == 0, done.stdout + done.stderr
    done = _ruff("format", "--check", "notebooks")
    assert done.returncode == 0, done.stdout + done.stderr
