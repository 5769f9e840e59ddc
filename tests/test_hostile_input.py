"""Every case of issue 24 ("Hardened, round 3"), each one clear line and exit 2, or a correct result.

The output-writer cases (devices, symlinks, inputs as outputs, ``-o DIR``, ``-o ''``, a run record that is a
directory) are in tests/test_output.py, the rule-payload cases in tests/test_rule_quoting.py; the classes are
fuzzed in tests/test_fuzz.py (``test_fuzz_hostile``).
"""

from __future__ import annotations

import io
import json
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.test_cli import demo_copy, one_error, sim_cli

MANIFESTS = (ROOT / "experiments" / "k8s" / "manifests.yaml").read_text()
KIND = str(ROOT / "experiments" / "k8s" / "kind-cluster.yaml")
BOMB = "\n".join(
    ["a0: &a0 [" + ", ".join(["lol"] * 9) + "]"]
    + [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 9)]
)
"""A 1 kB "billion laughs": 9 ** 9 = 387,420,489 strings once expanded."""


def indent(text: str, n: int) -> str:
    return "".join(" " * n + line + "\n" for line in text.splitlines())


def quick_error(capsys: pytest.CaptureFixture[str], *args: str, within_s: float = 10.0) -> str:
    started = time.perf_counter()
    err = one_error(*sim_cli(capsys, *args))
    assert time.perf_counter() - started < within_s
    return err


def test_the_bomb_is_small():
    from sim.io.yamlfile import MAX_ALIAS_NODES

    assert len(BOMB) < 1100 and MAX_ALIAS_NODES < 9**9


@pytest.mark.parametrize("where", ["labels", "replicas", "kind", "patch"])
def test_an_alias_bomb_is_refused_while_parsing(capsys, tmp_path, where):
    if where == "labels":
        pod = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: b\n  labels:\n" + indent(BOMB, 4)
        files = [tmp_path / "o.yaml", KIND]
        files[0].write_text(MANIFESTS + "\n---\n" + pod + "  x: *a8\nspec:\n  nodeName: kind-worker\n")
    elif where == "replicas":
        files = [tmp_path / "o.yaml", KIND]
        files[0].write_text(BOMB + "\n" + MANIFESTS.split("---", 1)[1].replace("replicas: 2", "replicas: *a8", 1))
    elif where == "kind":
        files = [tmp_path / "k.yaml"]
        files[0].write_text(Path(KIND).read_text() + "x:\n" + indent(BOMB, 2))
    else:
        files = [tmp_path / "k.yaml"]
        files[0].write_text(
            "kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nnodes:\n- role: control-plane\n"
            "  kubeadmConfigPatches:\n  - |\n" + indent(BOMB, 4)
        )
    err = quick_error(capsys, "routes", *map(str, files))
    assert "aliases expand the document" in err or "malformed YAML" in err


def test_an_alias_bomb_on_stdin(capsys, monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.StringIO(MANIFESTS + "\n---\n" + BOMB + "\n"))
    assert "aliases expand" in quick_error(capsys, "routes", "-", KIND)


def test_a_document_that_contains_itself_is_refused(capsys, tmp_path):
    (tmp_path / "o.yaml").write_text("a: &a [*a]\n")
    assert "inside its own anchor" in quick_error(capsys, "routes", str(tmp_path / "o.yaml"))


@pytest.mark.parametrize("n", [5_000, 100_000])
@pytest.mark.parametrize("suffix", ["yaml", "json"])
def test_deep_nesting_is_one_line(capsys, tmp_path, n, suffix):
    path = tmp_path / f"o.{suffix}"
    path.write_text(("a: " if suffix == "yaml" else "") + "[" * n + "]" * n)
    assert "more than 32 deep" in quick_error(capsys, "routes", str(path))


@pytest.mark.parametrize("replicas", [150_001, 1_000_000_000])
def test_replicas_past_kubernetes_limit_are_refused_before_placement(capsys, tmp_path, replicas):
    (tmp_path / "o.yaml").write_text(MANIFESTS.replace("replicas: 2", f"replicas: {replicas}", 1))
    assert "150,000" in quick_error(capsys, "routes", str(tmp_path / "o.yaml"), KIND, within_s=5)


def node(cpu: str) -> str:
    return f"apiVersion: v1\nkind: Node\nmetadata:\n  name: kind-worker\nstatus:\n  allocatable:\n    cpu: {cpu}\n"


@pytest.mark.parametrize("cpu", ["'" + "9" * 400 + "'", "9" * 400, ".nan", ".inf", "'-1'"])
def test_a_cpu_quantity_must_be_finite(capsys, tmp_path, cpu):
    (tmp_path / "o.yaml").write_text(MANIFESTS + "\n---\n" + node(cpu))
    err = one_error(*sim_cli(capsys, "import", str(tmp_path / "o.yaml"), KIND, "-o", str(tmp_path / "i.toml")))
    assert "status.allocatable.cpu" in err or "malformed YAML" in err
    assert len(err) < 400 and not (tmp_path / "i.toml").exists()


def test_a_5000_digit_integer_is_one_line(capsys, tmp_path):
    (tmp_path / "o.yaml").write_text(MANIFESTS.replace("replicas: 2", "replicas: " + "9" * 5000, 1))
    assert "4300 digits" in one_error(*sim_cli(capsys, "routes", str(tmp_path / "o.yaml"), KIND))


def service(**ports: object) -> str:
    fields = ", ".join(f"{k}: {v}" for k, v in ports.items())
    head = "apiVersion: v1\nkind: Service\nmetadata:\n  name: s2\nspec:\n  selector: {app: echo-1}\n"
    return head + f"  ports: [{{{fields}}}]\n"


@pytest.mark.parametrize(
    "ports",
    [
        {"port": 80, "targetPort": "'²'"},
        {"port": 80, "targetPort": "'99999'"},
        {"port": 70000},
        {"port": 80, "nodePort": 99999999},
    ],
)
def test_unicode_digits_and_out_of_range_ports_are_refused(capsys, tmp_path, ports):
    (tmp_path / "o.yaml").write_text(MANIFESTS + "\n---\n" + service(**ports))
    assert "spec.ports[0]" in one_error(*sim_cli(capsys, "routes", str(tmp_path / "o.yaml"), KIND))


def test_a_set_path_with_a_unicode_digit_is_one_line(capsys):
    err = one_error(
        *sim_cli(capsys, "validate", str(ROOT / "experiments" / "cilium_demo.toml"), "--set", "streams.².requests=5")
    )
    assert "no entry" in err


@pytest.mark.parametrize(("key", "value"), [("port", 70000), ("nodePort", 99999999), ("targetPort", 65536)])
def test_toml_ports_are_held_to_65535(capsys, tmp_path, key, value):
    demo = demo_copy(tmp_path, 'name = "echo-1"', f'name = "echo-1"\n{key} = {value}')
    assert "65535" in one_error(*sim_cli(capsys, "validate", str(demo)))


def test_addresses_are_ip_addresses(capsys, tmp_path):
    demo = demo_copy(tmp_path, 'name = "echo-1"', 'name = "echo-1"\nexternalIPs = ["1.2.3.4 -j DROP"]')
    assert "must be an IP address" in one_error(*sim_cli(capsys, "validate", str(demo)))


def test_a_lone_surrogate_in_a_name_is_one_line(capsys, tmp_path):
    doc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "a\ud800"}, "spec": {"ports": [{"port": 80}]}}
    (tmp_path / "o.json").write_text(json.dumps(doc))
    assert "lone surrogate" in one_error(*sim_cli(capsys, "routes", str(tmp_path / "o.json"), KIND))


@pytest.mark.parametrize("command", ["validate", "routes", "plot", "report", "import", "sweep"])
def test_a_path_past_path_max_is_one_line(capsys, tmp_path, command):
    deep = str(tmp_path / "/".join(["d" * 200] * 25) / "x.toml")
    args = {"report": [deep, "-o", str(tmp_path / "r.html")], "import": [deep, "-o", str(tmp_path / "i.toml")]}
    one_error(*sim_cli(capsys, command, *args.get(command, [deep])))


@pytest.fixture
def run_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    out = tmp_path / "run.json"
    assert sim_cli(capsys, "run", str(demo_copy(tmp_path)), "--requests", "100", "--out", str(out))[0] == 0
    return out


@pytest.mark.parametrize("provenance", [{"versions": 5}, {"versions": {"x": [1]}}, {"command": 7}, 5])
def test_a_run_file_with_a_bad_provenance_is_one_line(capsys, run_json, provenance):
    doc = json.loads(run_json.read_text())
    doc["provenance"] = provenance
    run_json.write_text(json.dumps(doc))
    assert "provenance" in one_error(
        *sim_cli(capsys, "report", str(run_json), "-o", str(run_json.with_suffix(".html")))
    )


def test_a_mathtext_name_is_drawn_as_written(capsys, tmp_path):
    demo = demo_copy(tmp_path, '"echo-1"', '"$\\\\undefinedcmd{x}$"')
    code, _, err = sim_cli(capsys, "run", str(demo), "--requests", "50", "--plot", str(tmp_path / "f"), "--json")
    assert code == 0, err
    assert "$\\undefinedcmd{x}$" in (tmp_path / "f" / "endpoints.svg").read_text()


@pytest.mark.parametrize("value", ["nan", "inf", "0", "1", "-0.5"])
def test_emulate_alpha_is_a_significance_level(capsys, value):
    code, out, err = sim_cli(
        capsys, "emulate", str(ROOT / "experiments" / "local_pod_gone_iptables.toml"), "--show-rules", "--alpha", value
    )
    assert code == 2 and "--alpha" in err and out == ""


def test_a_file_name_with_a_newline_stays_in_the_header_comment(capsys, tmp_path):
    objects = tmp_path / "new\nline.yaml"
    objects.write_text(MANIFESTS)
    out = tmp_path / "i.toml"
    assert sim_cli(capsys, "import", str(objects), KIND, "-o", str(out))[0] == 0
    assert out.read_text().splitlines()[0].endswith("new\\nline.yaml, " + KIND + ".")
    assert sim_cli(capsys, "validate", str(out))[0] == 0


def test_a_one_factor_spec_with_plot_x_is_plotted_and_reported(capsys, tmp_path):
    spec = (ROOT / "tests" / "test_fuzz.py").read_text().split('SMALL_SPEC = """')[1].split('"""')[0]
    spec = spec.replace("[defaults]", "[scenario.defaults]").replace(
        '"../topologies/kind.toml"', json.dumps(str(ROOT / "topologies" / "kind.toml"))
    )
    path = tmp_path / "one.toml"
    path.write_text(spec + '\n[plot]\nx = "services.svc.internalTrafficPolicy"\n')
    results = tmp_path / "results"
    assert sim_cli(capsys, "sweep", str(path), "--serial", "--out", str(results), "-q")[0] == 0
    assert sim_cli(capsys, "plot", str(results))[0] == 0
    assert (results / "figures" / "tradeoff_latency.png").exists()
    assert sim_cli(capsys, "report", str(results), "-o", str(tmp_path / "r.html"))[0] == 0


def test_an_error_quotes_at_most_80_characters_of_a_value(capsys, tmp_path):
    (tmp_path / "o.yaml").write_text(MANIFESTS + "\n---\n" + node("'" + "x" * 100_000 + "'"))
    err = one_error(*sim_cli(capsys, "routes", str(tmp_path / "o.yaml"), KIND))
    assert "x" * 81 not in err and len(err) < 400
