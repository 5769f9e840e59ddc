"""What every teaching notebook needs before it starts: the repository root, and where to save figures.

The notebooks run from ``notebooks/`` (as Jupyter runs them) or as plain scripts; either way this file sits beside
them, so ``from nbsetup import ...`` finds it.
"""

from __future__ import annotations

import os
from pathlib import Path

import sim


def find_root(start: Path) -> Path:
    """The repository root: the first folder upwards holding pyproject.toml and experiments/."""
    for folder in (start, *start.parents):
        if (folder / "pyproject.toml").is_file() and (folder / "experiments").is_dir():
            return folder
    return Path(sim.__file__).resolve().parent.parent  # an editable install: the package sits in the root


ROOT = find_root(Path.cwd().resolve())
EXPERIMENTS = ROOT / "experiments"
FIGURES = Path(os.environ["SIM_FIGURES_DIR"]) if os.environ.get("SIM_FIGURES_DIR") else None


def save(fig, name: str) -> None:
    """Write the figure to $SIM_FIGURES_DIR/<name>.png when that variable is set (the test suite sets it)."""
    if FIGURES is not None:
        FIGURES.mkdir(parents=True, exist_ok=True)
        fig.savefig(FIGURES / f"{name}.png", dpi=110, bbox_inches="tight")


def scenario_table(name: str) -> dict:
    """The TOML table of ``experiments/<name>``, to change before ``build`` (a fresh copy each call)."""
    import tomllib

    with (EXPERIMENTS / name).open("rb") as f:
        return tomllib.load(f)


def build(table: dict, name: str, overrides: dict | None = None):
    """A validated Scenario and seed from a (changed) table of ``experiments/<name>``, as ``sim run`` reads it."""
    from sim.io import parse_scenario

    return parse_scenario(table, EXPERIMENTS / name, overrides)


def check(exercise: str, prediction, measured, *, within: float | None = None, unit: str = "") -> bool | None:
    """Say whether the student's ``prediction`` holds against what the run ``measured``: within ``within`` (same
    unit) for numbers, one of them when ``measured`` is a set (ties), equal otherwise. ``None`` (no prediction
    yet) asks for one and reveals nothing."""
    if prediction is None:
        print(f"{exercise}: no prediction yet. Write yours in the cell above, run it, then run this cell again.")
        return None
    if isinstance(measured, (set, frozenset)):
        holds = prediction in measured
        rule = "one of them"
        measured = " or ".join(sorted(map(str, measured)))
    elif within is None:
        holds = prediction == measured
        rule = "equal"
    else:
        holds = abs(float(prediction) - float(measured)) <= within
        rule = f"within {within:g}{unit}"
    shown = f"{measured:.4g}" if isinstance(measured, float) else str(measured)
    verdict = "holds" if holds else "does not hold"
    print(f"{exercise}: your prediction {prediction}{unit} {verdict}: the run measured {shown}{unit} ({rule} holds)")
    return holds
