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
