"""The code's own checks, so that the one test command holds them: ruff, mypy, and the import layers."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT


def tool(name: str, *args: str) -> subprocess.CompletedProcess[str]:
    exe = shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)
    if exe is None:
        pytest.fail(f"{name} is not installed: pip install -e '.[test]'")
    return subprocess.run([exe, *args], capture_output=True, text=True, cwd=ROOT, check=False)


def test_ruff():
    done = tool("ruff", "check", "sim", "tests", "benchmarks")
    assert done.returncode == 0, done.stdout + done.stderr


def test_ruff_format():
    done = tool("ruff", "format", "--check", "sim", "tests", "benchmarks")
    assert done.returncode == 0, done.stdout + done.stderr


def test_mypy():
    done = subprocess.run([sys.executable, "-m", "mypy"], capture_output=True, text=True, cwd=ROOT, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def test_import_layers():
    done = tool("lint-imports")
    assert done.returncode == 0, done.stdout + done.stderr
