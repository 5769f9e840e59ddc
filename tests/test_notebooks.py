"""The teaching notebooks: each runs from its jupytext source, as a reader runs it, and writes its figures.

Every ``notebooks/NN_*.py`` (jupytext py:percent) is converted to a notebook and executed by nbclient on a
kernel of the interpreter running the tests, from ``notebooks/`` as working directory, with ``SIM_FIGURES_DIR``
pointing at a temporary folder (once per session: ``tests/notebook_runs.py``, which the docs build reuses); the
test then checks that every figure the notebook promises is a PNG there, and that every notebook has exercises.
The notebooks' parameters cells hold small defaults, so each runs in well under a minute on 2 cores.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.notebook_runs import NOTEBOOK_DIR, execute

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
        "02_locality",
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
    "06_locality_along_a_call_graph": [
        "06_chain_parts",
        "06_chain_page_latency",
        "06_fanout_p99",
        "06_local_breaks_a_page",
    ],
}
"""The PNGs each notebook writes into SIM_FIGURES_DIR (without the suffix)."""
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
def test_notebook_runs_and_writes_its_figures(source, kernel_name, tmp_path_factory):
    done = execute(source, kernel_name, tmp_path_factory.getbasetemp() / "executed-notebooks")  # once a session
    notebook, figures, elapsed = done.notebook, done.figures, done.elapsed_s

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


# --- headings --------------------------------------------------------------------------------------------------

HEADING = re.compile(r"^(#{1,6})[ \t]+(.+)$", re.MULTILINE)
SECTION = re.compile(r"^(\d+)\.\s")
COMMENTED_HEADING = re.compile(r"^#[ \t]*#{1,6}[ \t]+\S.*$", re.MULTILINE)
"""A markdown heading left as a comment in a code cell (``# ## 5. Title``): the page would skip that section."""


def headings(cells: list) -> tuple[list[tuple[int, str]], list[str]]:
    """The markdown cells' headings (level, text), and the heading-like comment lines of the code cells."""
    marked = [(len(h), t.strip()) for c in cells if c.cell_type == "markdown" for h, t in HEADING.findall(c.source)]
    commented = [m.group(0) for c in cells if c.cell_type == "code" for m in COMMENTED_HEADING.finditer(c.source)]
    return marked, commented


def test_the_heading_check_finds_a_section_left_in_a_code_cell():
    """The wrong model: notebook 03 as it was, its section 5 title in a code cell's comments."""
    import jupytext

    text = "# %% [markdown]\n# # T\n# ## 1. One\n\n# %%\nx = 1\n#\n# ## 2. Two\n#\n# words\n"
    marked, commented = headings(jupytext.reads(text, fmt="py:percent").cells)
    assert marked == [(1, "T"), (2, "1. One")] and commented == ["# ## 2. Two"]


@pytest.mark.parametrize("source", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_section_heading_is_a_markdown_cell_and_sections_count_up(source):
    """One title (level 1), numbered sections 1, 2, 3, ... at level 2 in order, exercises at level 3; no heading
    hides as a comment in a code cell."""
    import jupytext

    marked, commented = headings(jupytext.read(source).cells)
    assert not commented, f"headings inside code cells: {commented}"
    assert [level for level, _ in marked].count(1) == 1 and marked[0][0] == 1, marked
    numbers = [int(m.group(1)) for level, text in marked if level == 2 and (m := SECTION.match(text))]
    assert numbers == list(range(1, len(numbers) + 1)) and len(numbers) >= 2, numbers
    assert all(level <= 3 for level, _ in marked), marked


# --- exercises -------------------------------------------------------------------------------------------------

EXERCISE = re.compile(r"^### Exercise (\d+)", re.MULTILINE)


@pytest.mark.parametrize("source", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_notebook_has_three_exercises_each_predict_run_check_answer(source):
    """At least three exercises; each asks for a prediction, sets a parameter to change, has a check cell and
    its answer folded in a <details> block."""
    import jupytext

    cells = jupytext.read(source).cells
    starts = [i for i, c in enumerate(cells) if c.cell_type == "markdown" and EXERCISE.search(c.source)]
    numbers = [int(n) for i in starts for n in EXERCISE.findall(cells[i].source)]
    assert len(numbers) >= 3 and numbers == list(range(1, len(numbers) + 1)), numbers
    text = "\n".join(c.source for c in cells)
    for n in numbers:
        block = text[text.index(f"### Exercise {n}") :]
        block = block[: block.index(f"### Exercise {n + 1}")] if f"### Exercise {n + 1}" in block else block
        assert "**Predict.**" in block and "**Change and run.**" in block, f"exercise {n}"
        assert re.search(rf"^PREDICTION_{n} = None", block, re.MULTILINE), f"exercise {n}: no PREDICTION_{n} cell"
        assert f'check("Exercise {n}", PREDICTION_{n}' in block, f"exercise {n}: no check cell"
        assert "<details><summary>Answer</summary>" in block and "</details>" in block, f"exercise {n}: no answer"


def test_check_says_whether_a_prediction_holds(capsys):
    sys.path.insert(0, str(NOTEBOOK_DIR))
    try:
        from nbsetup import check
    finally:
        sys.path.remove(str(NOTEBOOK_DIR))
    assert check("E", None, 0.5) is None and "no prediction yet" in capsys.readouterr().out
    assert check("E", 1 / 3, 0.3265, within=0.04) is True
    assert "holds: the run measured 0.3265" in capsys.readouterr().out
    assert check("E", 0.5, 0.3265, within=0.04) is False and "does not hold" in capsys.readouterr().out
    assert check("E", "Local", {"Local", "PreferSameNode"}) is True
    assert check("E", "Cluster", {"Local", "PreferSameNode"}) is False
    assert check("E", 0, 0) is True and check("E", 1, 0) is False
