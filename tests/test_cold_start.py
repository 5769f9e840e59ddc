"""Cold start (issue 16): which modules a command loads, not how long it takes (benchmarks/ measures that).

Each check runs in a fresh interpreter and lists the heavy packages found in ``sys.modules`` afterwards."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import ROOT

HEAVY = ("scipy", "networkx", "pandas", "matplotlib", "dask", "distributed", "jinja2", "simpy", "tqdm", "loky")
"""Packages that cost 0.05-0.5 s each to import: ``sim --help`` needs none of them."""

PROBE = """
import contextlib, io, json, sys
{code}
found = {{m for m in sys.modules if m.split('.')[0] in {heavy!r}}} | ({{'scipy.sparse'}} & set(sys.modules))
print(json.dumps(sorted(found)))
"""


def loaded(code: str) -> set[str]:
    """The heavy packages (and scipy.sparse) in sys.modules after running ``code`` in a fresh interpreter."""
    done = subprocess.run(
        [sys.executable, "-c", PROBE.format(code=code, heavy=HEAVY)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=True,
    )
    return {m.split(".")[0] if m != "scipy.sparse" else m for m in json.loads(done.stdout.splitlines()[-1])}


def cli(*args: str) -> str:
    """Code that runs ``sim ARGS`` in-process, its output swallowed."""
    return (
        "from sim.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):\n"
        "    try:\n"
        f"        main({list(args)!r})\n"
        "    except SystemExit:\n"
        "        pass\n"
    )


def test_import_sim_loads_no_heavy_package_and_the_public_names_load_on_use() -> None:
    assert loaded("import sim") == set()
    assert loaded("import sim\nassert 'numpy' not in sys.modules") == set()
    assert "simpy" in loaded("from sim import load_scenario, run, summarize")


def test_every_public_name_resolves_to_its_module() -> None:
    import sim

    assert sorted(sim.__all__) == sorted(sim._WHERE)
    for name in sim.__all__:
        value = getattr(sim, name)
        assert (name == "__version__" and isinstance(value, str)) or value.__module__.startswith("sim")
        assert name in dir(sim)
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        _ = sim.nothing  # type: ignore[attr-defined]


def test_help_and_a_bad_flag_load_no_heavy_package() -> None:
    assert loaded(cli("--help")) == set()
    assert loaded(cli("run", "--help")) == set()
    assert loaded(cli("sweep", "--no-such-flag")) == set()


def test_the_demo_run_loads_only_simpy_and_scipy_special() -> None:
    # SimPy runs it and scipy.special's chi-square tail tests it (not scipy.stats, which would bring scipy.sparse
    # and ~0.4 s); no NetworkX graph, pandas table, figure, template or progress bar is made
    assert loaded(cli("run", "experiments/cilium_demo.toml")) == {"simpy", "scipy"}


def test_validate_routes_the_demo_without_scipy_or_simpy() -> None:
    # validation routes every stream: the kind topology is a tree (nodes on one bridge), walked without scipy
    assert loaded(cli("validate", "experiments/cilium_demo.toml")) == set()
    assert loaded(cli("routes", "experiments/cilium_demo.toml")) == set()
