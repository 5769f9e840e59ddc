"""Guard for the presentation: every example's CLI text, run JSON and report HTML, byte for byte.

Each shipped scenario (``experiments/*.toml``, ``experiments/k8s/demo.toml``, ``experiments/apps/*.toml``; a
spec's first design point, as ``sim run`` runs it) is run through the CLI in this process at ``--requests``
``REQUESTS``: ``sim run FILE`` (its tables on stdout, its notes on stderr), ``sim run FILE --out RUN.json`` and
``sim report RUN.json -o REPORT.html``. Each output must equal the copy saved in ``tests/data/outputs/`` from the
code before the presentation layer of issue 28, except where a commit says why it changed. Only what differs from
machine to machine is normalised (``normalise``): the package versions a JSON and a page record, the temporary
directory the files were written to, and the figures (inline SVG, matplotlib's bytes; ``tests/test_plots.py``
guards them), each replaced by a placeholder.

Regenerate (only for a change meant to alter an output, and say so in its commit):
``python -m tests.test_outputs --write``.
"""

from __future__ import annotations

import contextlib
import difflib
import io
import itertools
import os
import re
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from sim.cli import main
from tests.conftest import ROOT

SAVED = ROOT / "tests" / "data" / "outputs"
REQUESTS = 400
"""Requests per client stream: call_chain.toml sends 100 requests/s and warms up for 2 s, so it needs more than 200."""
FILES = [
    *sorted((ROOT / "experiments").glob("*.toml")),
    ROOT / "experiments" / "k8s" / "demo.toml",
    *sorted((ROOT / "experiments" / "apps").glob("*.toml")),
]
OUTPUTS = ("run.txt", "run.stderr", "run.json", "report.html")

_VOLATILE = (
    (re.compile(r'^  "version": "[^"]*",$', re.M), '  "version": "*",'),
    (re.compile(r'"versions": \{[^}]*\}'), '"versions": "*"'),
    (re.compile(r'(<meta name="generator" content="k8s-service-sim )[^"]*(">)'), r"\1*\2"),
    (re.compile(r"(<tr><th>versions \((?:run|report)\)</th><td>)[^<]*(</td></tr>)"), r"\1*\2"),
    (re.compile(r"<svg .*?</svg>", re.S), "<svg>(figure)</svg>"),
)
"""What differs between machines, and what it is replaced by."""


def normalise(text: str, tmp: str) -> str:
    """``text`` with the volatile parts replaced (``_VOLATILE``) and the temporary directory ``tmp`` as TMP."""
    text = text.replace(tmp, "TMP")
    for pattern, replacement in _VOLATILE:
        text = pattern.sub(replacement, text)
    return text


@contextlib.contextmanager
def _at_root() -> Iterator[None]:
    """Run with the repository as the working directory, so that the commands name files as a user types them."""
    before = os.getcwd()
    os.chdir(ROOT)
    try:
        yield
    finally:
        os.chdir(before)


def _sim(*argv: str) -> tuple[str, str]:
    """``sim ARGV`` in this process: its stdout and stderr (exit 0 asserted)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    assert code == 0, err.getvalue()
    return out.getvalue(), err.getvalue()


def outputs(path: Path) -> dict[str, str]:
    """One example's outputs (``OUTPUTS``), normalised."""
    name = str(path.relative_to(ROOT))
    with tempfile.TemporaryDirectory() as tmp, _at_root():
        text, notes = _sim("run", name, "--requests", str(REQUESTS))
        run_json = os.path.join(tmp, "run.json")
        _sim("run", name, "--requests", str(REQUESTS), "--out", run_json)
        report = os.path.join(tmp, "report.html")
        _sim("report", run_json, "-o", report)
        got = {"run.txt": text, "run.stderr": notes}
        got["run.json"] = Path(run_json).read_text()
        got["report.html"] = Path(report).read_text()
        return {key: normalise(value, tmp) for key, value in got.items()}


def _key(path: Path) -> str:
    return str(path.relative_to(ROOT / "experiments")).removesuffix(".toml").replace("/", "--")


def test_outputs_cover_every_example():
    assert sorted(p.name for p in SAVED.iterdir()) == sorted(_key(p) for p in FILES)


@pytest.mark.filterwarnings("ignore:Attempting to set identical:UserWarning")  # an empty heatmap: no reply
@pytest.mark.parametrize("path", FILES, ids=[_key(p) for p in FILES])
def test_outputs_byte_identical_to_saved(path):
    got = outputs(path)
    saved = {name: (SAVED / _key(path) / name).read_text() for name in OUTPUTS}
    changed = [name for name in OUTPUTS if got[name] != saved[name]]
    diff = "".join(line for name in changed for line in _diff(saved[name], got[name], f"{_key(path)}/{name}"))
    assert not changed, f"{_key(path)}: differs from tests/data/outputs in {changed}:\n{diff}"


def _diff(saved: str, got: str, name: str, most: int = 40) -> list[str]:
    """The first ``most`` lines of the unified diff from the saved output to this one."""
    lines = difflib.unified_diff(saved.splitlines(True), got.splitlines(True), f"saved {name}", f"now {name}", n=1)
    return list(itertools.islice(lines, most))


if __name__ == "__main__":
    if sys.argv[1:] != ["--write"]:
        sys.exit("usage: python -m tests.test_outputs --write")
    for p in FILES:
        (SAVED / _key(p)).mkdir(parents=True, exist_ok=True)
        for output, value in outputs(p).items():
            (SAVED / _key(p) / output).write_text(value)
    print(f"wrote {SAVED}")
