"""The code's own checks, so that the one test command holds them: ruff, mypy, the import layers, and the house
rule that no function in ``sim/`` is longer than ``MAX_FUNCTION_LINES`` unless its docstring says why
(docs/architecture.md)."""

from __future__ import annotations

import ast
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


MAX_FUNCTION_LINES = 80
"""A function in ``sim/`` longer than this (``def`` line to last line) needs a docstring line starting with
``LONG_MARKER``."""
LONG_MARKER = "Long because"


def long_functions(source: str, limit: int = MAX_FUNCTION_LINES) -> list[tuple[str, int]]:
    """(name, lines) of each function or method in ``source`` over ``limit`` lines whose docstring has no line
    starting with ``LONG_MARKER``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            lines = (node.end_lineno or node.lineno) - node.lineno + 1
            doc = ast.get_docstring(node) or ""
            if lines > limit and not any(line.strip().startswith(LONG_MARKER) for line in doc.splitlines()):
                found.append((node.name, lines))
    return found


def test_long_functions_are_found_unless_they_say_why():
    body = "".join(f"    x{i} = {i}\n" for i in range(85))
    assert long_functions(f"def f():\n{body}") == [("f", 86)]
    method = "".join(f"        x{i} = {i}\n" for i in range(85))
    assert long_functions(f"class C:\n    def m(self):\n{method}") == [("m", 86)]
    assert long_functions(f'def f():\n    """Sum.\n\n    Long because: one table.\n    """\n{body}') == []
    assert long_functions(f"def f():\n{body}", limit=90) == []


def test_no_function_in_sim_is_long_without_a_reason():
    long = [
        f"{path.relative_to(ROOT)}: {name} ({lines} lines)"
        for path in sorted((ROOT / "sim").rglob("*.py"))
        for name, lines in long_functions(path.read_text())
    ]
    assert not long, (
        f"over {MAX_FUNCTION_LINES} lines: split into named steps, or say why in a docstring line starting "
        f"{LONG_MARKER!r}: " + "; ".join(long)
    )
