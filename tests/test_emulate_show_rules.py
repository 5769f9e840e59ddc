"""Guard for refactoring the rule writer: ``sim emulate --show-rules`` of every shipped scenario, in both kube-proxy
modes, gives byte-identical text.

The sha256 of what the command prints and its exit status (a scenario the emulation refuses prints nothing and
exits 2; its error wording is not guarded here) for each scenario file under ``experiments/`` and ``tests/data/``
must equal the digests in ``tests/data/golden/emulate_rules.json``, saved from the code before issue 28's split of
``sim/emulate/rules.py`` into ``sim/emulate/rules/`` and of ``Emulation`` into its steps. A change to any rule,
comment, chain name or their order fails.

Regenerate (only for a change meant to alter the rules, and say so in its commit):
``python -m tests.test_emulate_show_rules --write``.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import sys
from pathlib import Path

import pytest

from sim.cli import main
from tests.conftest import ROOT

GOLDEN = ROOT / "tests" / "data" / "golden" / "emulate_rules.json"
FILES = sorted([*(ROOT / "experiments").rglob("*.toml"), *(ROOT / "tests" / "data").rglob("*.toml")])
MODES = ("iptables", "nftables")


def show_rules(path: Path, mode: str) -> str:
    """The digest of ``sim emulate PATH --mode MODE --show-rules``: its exit status and stdout."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        status = main(["emulate", str(path), "--mode", mode, "--show-rules"])
    return hashlib.sha256(f"exit {status}\n{out.getvalue()}".encode()).hexdigest()


def _key(path: Path) -> str:
    return str(path.relative_to(ROOT))


def compute() -> dict[str, dict[str, str]]:
    """Every file's digest per mode."""
    return {_key(path): {mode: show_rules(path, mode) for mode in MODES} for path in FILES}


def test_the_guard_covers_every_scenario_file():
    assert sorted(json.loads(GOLDEN.read_text())) == sorted(_key(p) for p in FILES)


@pytest.mark.parametrize("path", FILES, ids=[_key(p) for p in FILES])
@pytest.mark.parametrize("mode", MODES)
def test_show_rules_byte_identical(path, mode):
    want = json.loads(GOLDEN.read_text())[_key(path)][mode]
    assert show_rules(path, mode) == want, f"sim emulate {_key(path)} --mode {mode} --show-rules changed"


if __name__ == "__main__":
    if sys.argv[1:] != ["--write"]:
        sys.exit("usage: python -m tests.test_emulate_show_rules --write")
    GOLDEN.write_text(json.dumps(compute(), indent=1, sort_keys=True) + "\n")
    print(f"wrote {GOLDEN}")
