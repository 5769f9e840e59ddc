"""The errors a newcomer meets first: one line each, naming what was given and what to do instead."""

from __future__ import annotations

import pydoc
from pathlib import Path

import pytest

import sim
from sim.cli import main
from tests.conftest import DEMO

K8S = Path(__file__).parent / "data" / "k8s" / "kind_dump.yaml"


def one_line(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    """The one error line of ``sim ARGV`` (exit 2, nothing on stdout)."""
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert code == 2 and out == "" and err.count("\n") == 1 and err.startswith("sim: error: "), (argv, err)
    return err


def test_a_scenario_file_given_service_says_the_flag_is_for_objects(capsys):
    err = one_line(capsys, "run", str(DEMO), "--service", "echo-1")
    assert f"{DEMO}: --service: for Kubernetes objects" in err
    assert "--set streams.0.service=NAME" in err and "give --client NS/POD" not in err


def test_a_scenario_given_to_sweep_says_to_run_it(capsys):
    err = one_line(capsys, "sweep", str(DEMO))
    assert "this is a scenario file, not an experiment spec: `sim run` runs it" in err


def test_a_wrong_service_name_lists_the_services(capsys):
    err = one_line(capsys, "run", str(DEMO), "--set", "streams.0.service=nope")
    assert "no service named 'nope'; the services are echo-1, echo-2" in err
    err = one_line(capsys, "run", str(K8S), "--client", "default/nobody", "--service", "shop/web")
    assert "the clients are " in err


def test_help_of_the_package_lists_every_public_name():
    text = pydoc.render_doc(sim, renderer=pydoc.plaintext)
    for name in sim.__all__:
        assert f"``{name}``" in (sim.__doc__ or ""), name
        assert name in text, name


def test_the_readmes_policy_change_changes_the_output(capsys):
    """The README's "a policy change, with one command" pair: each command (with the repository's copy of the
    dump) prints the lines the README shows, and the two outputs differ."""
    import re
    import shlex

    from tests.conftest import ROOT

    readme = (ROOT / "README.md").read_text()
    block = readme[readme.index("$ sim run cluster.yaml -q --client kube-system/") :].split("```")[0]
    runs = re.findall(r"^\$ (sim run .*?) \| grep -E '(.*)'\n((?:  .*\n)+)", block, flags=re.M)
    assert len(runs) == 2
    outputs = []
    for command, pattern, shown in runs:
        words = [str(K8S) if w == "cluster.yaml" else w for w in shlex.split(command)]
        assert main(words[1:]) == 0
        out = capsys.readouterr().out
        lines = [line for line in out.splitlines() if re.search(pattern, line)]
        assert lines == shown.rstrip("\n").split("\n"), command
        outputs.append(lines)
    assert outputs[0] != outputs[1]
