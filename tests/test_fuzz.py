"""Fuzzing: mutated example files, --set values and damaged results directories through the CLI.

``sim validate`` and ``sim run`` get mutated files and ``--set`` values, ``sim plot`` damaged results
directories, ``sim sweep`` mutated specs. Every case must end in exit 0 or in the one error (exit 2, one line
``sim: error: ...`` on stderr, nothing on stdout), never in another exception, and within a per-case time limit.
The cases start from the shipped files (experiments/*.toml, topologies/*.toml) and mutate keys (renamed,
deleted, added), types, values (NaN, inf, huge, negative, empty, scaled), references (a name swapped for another
entity's or for none) and bytes (flipped, inserted, deleted, truncated, NUL, invalid UTF-8). ``sim.cli.main``
runs in this process with stdout and stderr captured, so a case costs milliseconds, not an interpreter start.

Counts per kind (cases, exit 0, exit 2, other) are printed at the end of the module (``pytest -s``) and, when
``SIM_FUZZ_COUNTS`` names a file, written there as JSON (``SIM_FUZZ_COUNT_ONLY=1``: count, never fail).

The hostile classes of issue 24 (``test_fuzz_hostile``) add deep nesting (YAML, JSON, TOML), big integers,
unicode digits, lone surrogates, long paths, mathtext and rule syntax in names, YAML alias bombs (in labels,
replicas, a kind config and on stdin), huge replicas, out-of-range ports, NaN flags, devices, FIFOs, symlinks and
inputs as outputs. The default run tries a few hundred cases; the slow run
(``-m slow``) more than 1,000.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import math
import os
import shutil
import signal
import stat
import sys
import tomllib
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sim.cli import main
from tests.conftest import ROOT

EXAMPLES = sorted((ROOT / "experiments").glob("*.toml"))
TOPOLOGIES = sorted((ROOT / "topologies").glob("*.toml"))
SCENARIOS = [p for p in EXAMPLES if "experiment" not in tomllib.loads(p.read_text())]
SMALL_SPEC = """
[experiment]
name = "fuzz"
replications = 2
root_seed = 3
[scenario]
name = "fuzz-pair"
topology = "../topologies/kind.toml"
[defaults]
service_time = { dist = "exponential", mean_s = 0.0005 }
[[scenario.pods]]
name = "client"
node = "kind-worker"
[[scenario.pods]]
name = "svc-a"
node = "kind-worker"
labels = { app = "svc" }
[[scenario.pods]]
name = "svc-b"
node = "kind-worker2"
labels = { app = "svc" }
[[scenario.services]]
name = "svc"
selector = { app = "svc" }
[[scenario.streams]]
client = "client"
service = "svc"
requests = 40
workload = { kind = "poisson", rate_rps = 200 }
[factors]
"services.svc.internalTrafficPolicy" = ["Cluster", "Local"]
"""
SMALL_SPEC = SMALL_SPEC.replace("[defaults]", "[scenario.defaults]")
TIME_LIMIT_S = 20
"""Per case: far above any case's cost here (the slowest, a figure set, takes about a second)."""

COUNTS: dict[str, Counter[str]] = {}
COUNT_ONLY = bool(os.environ.get("SIM_FUZZ_COUNT_ONLY"))
"""Count every outcome without failing on one (to measure a tree that still has tracebacks)."""


class Hang(Exception):
    """A case ran past TIME_LIMIT_S."""


@contextlib.contextmanager
def time_limit(seconds: float) -> Iterator[list[str]]:
    """Raise Hang in the case if it runs longer than ``seconds`` (SIGALRM; the main thread only). The list it
    yields says whether the alarm rang, in case the Hang was raised where Python ignores exceptions (a gc hook)."""
    rang: list[str] = []

    def ring(signum: int, frame: object) -> None:
        rang.append(f"no answer after {seconds} s")
        raise Hang(rang[0])

    old = signal.signal(signal.SIGALRM, ring)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield rang
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def cli(kind: str, *args: str) -> tuple[int, str, str]:
    """``sim ARGS`` in this process; counts the outcome under ``kind`` and fails the test on anything but exit 0
    or the one error."""
    out, err = io.StringIO(), io.StringIO()
    counts = COUNTS.setdefault(kind, Counter())
    counts["cases"] += 1
    try:
        with time_limit(TIME_LIMIT_S) as rang, contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(list(args))
    except BaseException as e:
        counts["other"] += 1
        if COUNT_ONLY:
            return 1, "", ""
        raise AssertionError(f"sim {' '.join(args)!r} raised {type(e).__name__}: {str(e)[:300]}") from e
    if rang:
        counts["other"] += 1
        if COUNT_ONLY:
            return 1, "", ""
        raise AssertionError(f"sim {' '.join(args)!r}: {rang[0]}")
    stderr = err.getvalue()
    if code == 0:
        counts["exit 0"] += 1
    elif code == 2 and stderr.startswith("sim: error: ") and stderr.endswith("\n") and stderr.count("\n") == 1:
        counts["exit 2"] += 1
        assert COUNT_ONLY or out.getvalue() == "", "an error must not print results"
    else:
        counts["other"] += 1
        if not COUNT_ONLY:
            raise AssertionError(f"sim {' '.join(args)!r}: exit {code}, stderr {stderr[-300:]!r}")
    return code, out.getvalue(), stderr


@pytest.fixture(scope="module", autouse=True)
def report_counts() -> Iterator[None]:
    """Print (``-s``) and optionally write (``SIM_FUZZ_COUNTS``) the outcome counts of this module's cases."""
    COUNTS.clear()
    yield
    total = Counter[str]()
    for c in COUNTS.values():
        total.update(c)
    keys = ("cases", "exit 0", "exit 2", "other", "replaced a device")

    def row(kind: str, c: Counter[str]) -> str:
        return f"{kind:>16}: " + ", ".join(f"{k} {c[k]}" for k in keys)

    lines = [row(kind, c) for kind, c in sorted(COUNTS.items())] + [row("all", total)]
    print("\nfuzz counts (cases, exit 0, exit 2, other)\n" + "\n".join(lines), file=sys.stderr)
    if os.environ.get("SIM_FUZZ_COUNTS"):
        counts = {kind: {k: c[k] for k in keys} for kind, c in [*COUNTS.items(), ("all", total)]}
        Path(os.environ["SIM_FUZZ_COUNTS"]).write_text(json.dumps(counts, indent=1))


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of experiments/ and topologies/ where mutated files are written (relative references still work)."""
    root = tmp_path_factory.mktemp("fuzz")
    shutil.copytree(ROOT / "experiments", root / "experiments")
    shutil.copytree(ROOT / "topologies", root / "topologies")
    (root / "experiments" / "fuzz_spec.toml").write_text(SMALL_SPEC)
    return root


# --- writing TOML ----------------------------------------------------------------------------------------------


def toml_value(value: Any) -> str:
    """A Python value as a TOML value: inline tables and arrays, every key quoted (JSON's escapes are TOML's)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf") if math.isinf(value) else repr(value)
    if isinstance(value, (int, str)):
        return json.dumps(value) if isinstance(value, str) else str(value)
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(str(k))} = {toml_value(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    raise TypeError(type(value))


def toml_text(table: dict[str, Any]) -> str:
    """A top-level table as TOML text, one ``key = value`` line per key."""
    return "".join(f"{json.dumps(str(k))} = {toml_value(v)}\n" for k, v in table.items())


# --- mutations -------------------------------------------------------------------------------------------------

NAMES = ["kind-worker", "kind-worker2", "zone-a-node-1", "client", "echo-1", "echo-2", "nope", "", "internet"]
HOSTILE_NUMBERS = [
    math.nan,
    math.inf,
    -math.inf,
    -1,
    0,
    0.0,
    -0.0,
    1e-320,
    1e308,
    10**30,
    2**63,
    2**63 - 1,
    -(2**63) - 1,
    10**400,
    10**9,
    3,
]
HOSTILE_STRINGS = ["", "nope", "local", "Cluster", "a\nb", "\x00", "x" * 300, "../" * 20 + "etc/passwd", "é☃"]


def deep(n: int) -> Any:
    value: Any = 1
    for _ in range(n):
        value = [value]
    return value


def values() -> st.SearchStrategy[Any]:
    """Values of every TOML type, hostile ones included."""
    return st.one_of(
        st.sampled_from(HOSTILE_NUMBERS),
        st.sampled_from(HOSTILE_STRINGS + NAMES),
        st.booleans(),
        st.integers(min_value=-(2**70), max_value=2**70),
        st.floats(allow_nan=True, allow_infinity=True),
        st.text(max_size=12),
        st.just([]),
        st.just({}),
        st.lists(st.integers(-5, 5), max_size=4),
        st.sampled_from([deep(40), {"dist": "uniform", "low_s": 0.1, "high_s": math.nan}, {"unset": True}]),
        st.dictionaries(st.sampled_from(["dist", "kind", "mean_s", "x"]), st.integers(-1, 3), max_size=3),
    )


def paths(obj: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path (keys and indices) to a value inside ``obj``."""
    found = [prefix] if prefix else []
    if isinstance(obj, dict):
        for k, v in obj.items():
            found += paths(v, (*prefix, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            found += paths(v, (*prefix, i))
    return found


def parent_of(obj: Any, path: tuple[Any, ...]) -> Any:
    for p in path[:-1]:
        obj = obj[p]
    return obj


@st.composite
def mutated_table(draw: st.DrawFn, table: dict[str, Any]) -> dict[str, Any]:
    """``table`` with one to three mutations of keys, types, values or references."""
    table = copy.deepcopy(table)
    for _ in range(draw(st.integers(1, 3))):
        where = paths(table)
        if not where:
            break
        path = draw(st.sampled_from(where))
        parent, last = parent_of(table, path), path[-1]
        op = draw(st.sampled_from(["delete", "rename", "add", "value", "value", "reference", "duplicate", "scale"]))
        value = parent[last]
        if op == "scale" and isinstance(value, (int, float)) and not isinstance(value, bool):
            factor = draw(st.sampled_from([0.5, 2, 10, 1000, 1e-3, -1, 0]))
            parent[last] = type(value)(value * factor) if isinstance(value, float) else int(value * factor)
        elif op == "delete":
            del parent[last]
        elif op == "rename" and isinstance(parent, dict):
            new = draw(st.one_of(st.text(max_size=10), st.sampled_from([last.lower(), last + "s", last[:-1], "a\nb"])))
            parent[new] = parent.pop(last)
        elif op == "add" and isinstance(parent, dict):
            parent[draw(st.text(min_size=1, max_size=8))] = draw(values())
        elif op == "reference":
            parent[last] = draw(st.sampled_from(NAMES))
        elif op == "duplicate" and isinstance(parent, list):
            parent.append(copy.deepcopy(parent[last]))
        else:
            parent[last] = draw(values())
    return table


@st.composite
def mutated_bytes(draw: st.DrawFn, data: bytes) -> bytes:
    """``data`` with one to four byte-level changes."""
    buf = bytearray(data)
    for _ in range(draw(st.integers(1, 4))):
        if not buf:
            break
        i = draw(st.integers(0, len(buf) - 1))
        op = draw(st.sampled_from(["flip", "insert", "delete", "truncate", "nul", "utf8"]))
        if op == "flip":
            buf[i] ^= 1 << draw(st.integers(0, 7))
        elif op == "insert":
            buf[i:i] = draw(st.sampled_from([b"\n", b"[", b"]", b"=", b'"', b"{", b"\\", b"#", b"1e999", b"nan"]))
        elif op == "delete":
            del buf[i : i + draw(st.integers(1, 20))]
        elif op == "truncate":
            del buf[i:]
        elif op == "nul":
            buf[i:i] = b"\x00"
        else:
            buf[i:i] = b"\xff\xfe"
    return bytes(buf)


@st.composite
def file_cases(draw: st.DrawFn) -> tuple[str, str, bytes]:
    """(which example, how, the mutated file's bytes): a scenario, a spec or a topology."""
    source = draw(st.sampled_from([*EXAMPLES, *TOPOLOGIES]))
    data = source.read_bytes()
    if draw(st.booleans()):
        return source.name, "bytes", draw(mutated_bytes(data))
    table = tomllib.loads(data.decode())
    return source.name, "table", toml_text(draw(mutated_table(table))).encode()


def write_case(tree: Path, name: str, data: bytes) -> Path:
    """Write a mutated file where its relative references resolve; a topology with a scenario that uses it."""
    if (ROOT / "topologies" / name).exists():
        (tree / "topologies" / "fuzz.toml").write_bytes(data)
        scenario = (ROOT / "experiments" / "cilium_demo.toml").read_text()
        scenario = scenario.replace('topology = "../topologies/kind.toml"', 'topology = "../topologies/fuzz.toml"')
        path = tree / "experiments" / "fuzz_uses_topology.toml"
        path.write_text(scenario)
        if name != "kind.toml":  # the demo's pods sit on kind's nodes: name them after this topology's
            first = [n["name"] for n in tomllib.loads((ROOT / "topologies" / name).read_text())["nodes"]]
            path.write_text(
                scenario.replace('"kind-worker2"', f'"{first[-1]}"').replace('"kind-worker"', f'"{first[0]}"')
            )
        return path
    path = tree / "experiments" / f"fuzz_{name}"
    path.write_bytes(data)
    return path


FUZZ = settings(
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)


def check_file(tree: Path, case: tuple[str, str, bytes], run_too: bool) -> None:
    name, _, data = case
    path = write_case(tree, name, data)
    code, _, _ = cli("files: validate", "validate", str(path), "--max-memory", "2G")
    if code == 0 and run_too:
        cli("files: run", "run", str(path), "--requests", "20", "--max-memory", "2G", "-q", "--json")


@settings(FUZZ, max_examples=300)
@given(case=file_cases(), run_too=st.integers(0, 4))
def test_fuzz_files(tree, case, run_too):
    check_file(tree, case, run_too == 0)


@pytest.mark.slow
@settings(FUZZ, max_examples=1200)
@given(case=file_cases(), run_too=st.integers(0, 2))
def test_fuzz_files_slow(tree, case, run_too):
    check_file(tree, case, run_too == 0)


# --- --set values ----------------------------------------------------------------------------------------------

SET_PATHS = [
    "requests",
    "replications",
    "root_seed",
    "experiment.name",
    "seed",
    "duration_s",
    "warmup_s",
    "defaults.concurrency",
    "defaults.service_time",
    "defaults.service_time.mean_s",
    "services.echo-2.internalTrafficPolicy",
    "services.echo-1.sessionAffinity",
    "services.0.selector",
    "streams.0.requests",
    "streams.0.workload",
    "streams.0.workload.kind",
    "streams.1.connections.max_age_s",
    "pods.client.node",
    "pods.echo-1-kind-worker.labels.app",
    "dataplane",
    "dataplane.picker",
    "topology",
    "timeline",
    "a..b",
    '"x.y".z',
    "services.nope.port",
]
SET_VALUES = [
    "1e29",
    "100000000000000000000000000000",
    "1" * 5000,
    "nan",
    "inf",
    "-inf",
    "-1",
    "0",
    "2",
    "Local",
    "local",
    "[1, 2",
    "[" * 2000 + "]" * 2000,
    "{ dist = 'exponential', mean_s = nan }",
    "{ unset = true }",
    "/dev/zero",
    "a\nb = 1",
    "'\x00'",
    "",
    "true",
]


@st.composite
def set_cases(draw: st.DrawFn) -> tuple[str, str, str]:
    target = draw(st.sampled_from(["cilium_demo.toml", "fuzz_spec.toml", "latency_locality_tradeoff.toml"]))
    path = draw(st.one_of(st.sampled_from(SET_PATHS), st.text(max_size=12)))
    value = draw(st.one_of(st.sampled_from(SET_VALUES), st.text(max_size=12), st.integers().map(str)))
    return target, path, value


def check_set(tree: Path, case: tuple[str, str, str], run_too: bool) -> None:
    target, path, value = case
    spec = tree / "experiments" / target
    args = ["--set", f"{path}={value}", "--max-memory", "2G"]
    if target == "latency_locality_tradeoff.toml":  # 48 design points: run one rather than validate them all
        cli("--set: run", "run", str(spec), *args, "--requests", "20", "-q", "--json")
        return
    code, _, _ = cli("--set: validate", "validate", str(spec), *args)
    if code == 0 and run_too:
        cli("--set: run", "run", str(spec), *args, "--requests", "20", "-q", "--json")


@settings(FUZZ, max_examples=150)
@given(case=set_cases(), run_too=st.integers(0, 3))
def test_fuzz_set_values(tree, case, run_too):
    check_set(tree, case, run_too == 0)


@pytest.mark.slow
@settings(FUZZ, max_examples=500)
@given(case=set_cases(), run_too=st.integers(0, 1))
def test_fuzz_set_values_slow(tree, case, run_too):
    check_set(tree, case, run_too == 0)


# --- results directories for sim plot ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def results(tree: Path) -> Path:
    """A small sweep's results directory (2 design points x 2 replications)."""
    out = tree / "results" / "fuzz"
    code, _, _ = cli(
        "setup", "sweep", str(tree / "experiments" / "fuzz_spec.toml"), "--serial", "--out", str(out), "-q"
    )
    assert code == 0
    return out


@st.composite
def results_cases(draw: st.DrawFn, directory: Path) -> tuple[str, bytes | None]:
    """(a file of the results directory, its damaged bytes; None: delete it)."""
    files = sorted(str(p.relative_to(directory)) for p in directory.rglob("*") if p.is_file())
    name = draw(st.sampled_from(files))
    data = (directory / name).read_bytes()
    how = draw(st.sampled_from(["json", "json", "bytes", "delete"]))
    if how == "delete":
        return name, None
    if how == "bytes" or not name.endswith(".json"):
        return name, draw(mutated_bytes(data))
    mutated = draw(mutated_table({"root": json.loads(data)}))
    text = json.dumps(mutated.get("root", mutated), allow_nan=True, default=str)
    return name, text.encode()


def check_results(results: Path, tmp: Path, case: tuple[str, bytes | None]) -> None:
    name, data = case
    if tmp.exists():
        shutil.rmtree(tmp)
    shutil.copytree(results, tmp)
    if data is None:
        (tmp / name).unlink()
    else:
        (tmp / name).write_bytes(data)
    cli("results: plot", "plot", str(tmp), "--out", str(tmp / "figures"), "-q")


@settings(FUZZ, max_examples=30)
@given(data=st.data())
def test_fuzz_results_directories(results, tree, data):
    check_results(results, tree / "results" / "case", data.draw(results_cases(results)))


@pytest.mark.slow
@settings(FUZZ, max_examples=150)
@given(data=st.data())
def test_fuzz_results_directories_slow(results, tree, data):
    check_results(results, tree / "results" / "case", data.draw(results_cases(results)))


def test_the_harness_fails_on_a_traceback_and_on_a_second_line(monkeypatch):
    """The fuzz tests can fail: a command that raises, or prints more than the one line, is counted and fails."""
    import sim.cli

    def broken(args):
        raise KeyError("boom")

    monkeypatch.setattr(sim.cli, "_run", broken)
    with pytest.raises(AssertionError, match="raised KeyError"):
        cli("harness", "validate", str(EXAMPLES[0]))

    def two_lines(args):
        print("sim: error: x\nmore", file=sys.stderr)
        return 2

    monkeypatch.setattr(sim.cli, "_run", two_lines)
    with pytest.raises(AssertionError, match="exit 2"):
        cli("harness", "validate", str(EXAMPLES[0]))
    assert COUNTS.pop("harness") == Counter({"cases": 2, "other": 2})


# --- sweeps of mutated specs ------------------------------------------------------------------------------------


@st.composite
def spec_cases(draw: st.DrawFn) -> bytes:
    """The small spec, mutated (its tables) or damaged (its bytes)."""
    data = SMALL_SPEC.encode()
    if draw(st.integers(0, 3)) == 0:
        return draw(mutated_bytes(data))
    return toml_text(draw(mutated_table(tomllib.loads(SMALL_SPEC)))).encode()


def check_sweep(tree: Path, data: bytes) -> None:
    path = tree / "experiments" / "fuzz_sweep.toml"
    path.write_bytes(data)
    out = tree / "results" / "sweep"
    if out.exists():
        shutil.rmtree(out)
    args = ["sweep", str(path), "--serial", "--out", str(out), "--max-memory", "2G", "-q", "--set", "replications=1"]
    code, _, _ = cli("spec: sweep", *args)
    if code == 0:
        assert (out / "summary.csv").is_file()


@pytest.mark.slow
@settings(FUZZ, max_examples=150)
@given(data=spec_cases())
def test_fuzz_sweeps_slow(tree, data):
    check_sweep(tree, data)


@settings(FUZZ, max_examples=60)
@given(data=spec_cases())
def test_fuzz_sweeps(tree, data):
    check_sweep(tree, data)


# --- hostile input classes (issue 24) ----------------------------------------------------------------------------

MANIFESTS = (ROOT / "experiments" / "k8s" / "manifests.yaml").read_text()
KIND = ROOT / "experiments" / "k8s" / "kind-cluster.yaml"
SERVICE = (
    "apiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\nspec:\n  selector: {{app: echo-1}}\n"
    "  ports: [{{port: {port}, targetPort: {target}, nodePort: {node_port}}}]\n  type: NodePort\n"
)
NODE = "apiVersion: v1\nkind: Node\nmetadata:\n  name: kind-worker\nstatus:\n  allocatable:\n    cpu: {cpu}\n"
UNICODE_DIGITS = ["²", "٣", "໒", "\uff11", "\U0001d7d5", "Ⅻ", "½"]  # digits other than 0-9
HOSTILE_NAMES = ["$\\undefinedcmd{x}$", "$x^2$", 'a"b', "a b", "x;y", "x#y", "{x}", "é名🙂", "a\\b", "-A INPUT -j DROP"]
DEMO = str(ROOT / "experiments" / "cilium_demo.toml")
DEMO_TEXT = (ROOT / "experiments" / "cilium_demo.toml").read_text().replace('"../topologies/', f'"{ROOT}/topologies/')
"""The demo scenario's text with its topology's path made absolute, to be written into a case's directory."""
RULES = str(ROOT / "experiments" / "local_pod_gone_iptables.toml")


def bomb(levels: int, width: int) -> str:
    """A YAML "billion laughs": ``levels`` anchors, each a list of ``width`` aliases of the one before."""
    lines = ["l0: &l0 [" + ", ".join(["lol"] * width) + "]"]
    lines += [f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * width) + "]" for i in range(1, levels)]
    return "\n".join(lines)


def indent(text: str, n: int) -> str:
    return "".join(" " * n + line + "\n" for line in text.splitlines())


@st.composite
def hostile_cases(draw: st.DrawFn) -> tuple[str, dict[str, bytes], list[str], str | None]:
    """(kind, files to write under the case directory, argv with ``{d}`` for that directory, stdin)."""
    kind = draw(
        st.sampled_from(
            [
                "deep",
                "big integers",
                "unicode digits",
                "surrogates",
                "long paths",
                "names",
                "bombs",
                "limits",
                "outputs",
            ]
        )
    )
    out: tuple[str, dict[str, bytes], list[str], str | None]
    if kind == "deep":
        n = draw(st.sampled_from([33, 200, 5_000, 100_000]))
        how = draw(st.sampled_from(["yaml", "json", "toml", "set"]))
        if how == "yaml":
            out = kind, {"o.yaml": ("a: " + "[" * n + "]" * n + "\n").encode()}, ["routes", "{d}/o.yaml"], None
        elif how == "json":
            out = kind, {"o.json": ("[" * n + "]" * n).encode()}, ["routes", "{d}/o.json"], None
        elif how == "toml":
            out = kind, {"s.toml": ("a = " + "[" * n + "]" * n + "\n").encode()}, ["validate", "{d}/s.toml"], None
        else:
            out = (
                kind,
                {},
                ["validate", DEMO, "--set", "seed=" + "[" * n],
                None,
            )
    elif kind == "big integers":
        digits = "9" * draw(st.sampled_from([20, 400, 4_301, 5_000, 20_000]))
        where = draw(st.sampled_from(["replicas", "cpu", "port", "nodePort", "set", "toml"]))
        if where == "replicas":
            files = {"o.yaml": MANIFESTS.replace("replicas: 2", f"replicas: {digits}", 1).encode()}
        elif where == "cpu":
            files = {"o.yaml": (MANIFESTS + "\n---\n" + NODE.format(cpu=f"'{digits}'")).encode()}
        elif where in ("port", "nodePort"):
            fields = {"port": 80, "target": 80, "node_port": 30080, where.replace("nodePort", "node_port"): digits}
            files = {"o.yaml": (MANIFESTS + "\n---\n" + SERVICE.format(name="s2", **fields)).encode()}
        if where == "set":
            out = (
                kind,
                {},
                ["validate", DEMO, "--set", f"streams.0.requests={digits}"],
                None,
            )
        elif where == "toml":
            text = DEMO_TEXT.replace("requests = ", f"requests = {digits} # ", 1)
            out = (
                kind,
                {"s.toml": text.encode()},
                ["validate", "{d}/s.toml"],
                None,
            )
        else:
            out = kind, files, ["routes", "{d}/o.yaml", str(KIND)], None
    elif kind == "unicode digits":
        digit = draw(st.sampled_from(UNICODE_DIGITS))
        where = draw(st.sampled_from(["targetPort", "port", "cpu", "set index", "set value"]))
        if where in ("targetPort", "port"):
            fields = {"port": 80, "target": 80, "node_port": 30080, where.replace("targetPort", "target"): f"'{digit}'"}
            out = (
                kind,
                {"o.yaml": (MANIFESTS + "\n---\n" + SERVICE.format(name="s2", **fields)).encode()},
                ["routes", "{d}/o.yaml", str(KIND)],
                None,
            )
        elif where == "cpu":
            out = (
                kind,
                {"o.yaml": (MANIFESTS + "\n---\n" + NODE.format(cpu=f"'{digit}'")).encode()},
                ["routes", "{d}/o.yaml", str(KIND)],
                None,
            )
        elif where == "set index":
            out = (
                kind,
                {},
                ["validate", DEMO, "--set", f"streams.{digit}.requests=5"],
                None,
            )
        else:
            out = (
                kind,
                {},
                ["validate", DEMO, "--set", f"streams.0.requests={digit}"],
                None,
            )
    elif kind == "surrogates":
        s = draw(st.sampled_from(["\ud800", "\udfff", "\udcff"]))
        where = draw(st.sampled_from(["json name", "json label", "set", "service flag"]))
        if where.startswith("json"):
            meta = {"name": f"a{s}b"} if where == "json name" else {"name": "s2", "labels": {"x": s}}
            doc = {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": meta,
                "spec": {"selector": {"app": "echo-1"}, "ports": [{"port": 80}]},
            }
            files = {"o.json": json.dumps(doc).encode(), "m.yaml": MANIFESTS.encode()}
            out = kind, files, ["routes", "{d}/o.json", "{d}/m.yaml", str(KIND)], None
        elif where == "set":
            out = (
                kind,
                {},
                [
                    "run",
                    DEMO,
                    "--requests",
                    "20",
                    "--json",
                    "--set",
                    f"services.echo-1.name=a{s}",
                ],
                None,
            )
        else:
            out = kind, {}, ["routes", DEMO, "--service", f"a{s}"], None
    elif kind == "long paths":
        deep = "/".join(["d" * 200] * draw(st.sampled_from([1, 21, 40])))
        long = "{d}/" + ("x" * draw(st.sampled_from([255, 256, 5_000])))
        argv = draw(
            st.sampled_from(
                [
                    ["validate", f"{{d}}/{deep}/x.toml"],
                    ["routes", f"{{d}}/{deep}/x.yaml"],
                    ["plot", f"{{d}}/{deep}"],
                    ["report", f"{{d}}/{deep}/r.json", "-o", "{d}/r.html"],
                    ["import", f"{{d}}/{deep}/x.yaml", "-o", "{d}/i.toml"],
                    [
                        "run",
                        DEMO,
                        "--requests",
                        "10",
                        "--out",
                        f"{{d}}/{deep}/o.json",
                    ],
                    ["run", DEMO, "--requests", "10", "--out", long],
                    ["sweep", f"{{d}}/{deep}/s.toml"],
                ]
            )
        )
        out = kind, {}, argv, None
    elif kind == "names":
        name = draw(st.sampled_from(HOSTILE_NAMES))
        text = DEMO_TEXT.replace('"echo-1"', json.dumps(name, ensure_ascii=False))
        how = draw(st.sampled_from(["plot", "rules iptables", "rules nftables"]))
        if how == "plot":
            argv = ["run", "{d}/s.toml", "--requests", "30", "--plot", "{d}/figs", "--json"]
        else:
            argv = ["emulate", "{d}/s.toml", "--show-rules", "--mode", how.split()[1]]
        out = kind, {"s.toml": text.encode()}, argv, None
    elif kind == "bombs":
        b = bomb(draw(st.sampled_from([4, 9])), draw(st.sampled_from([3, 9])))
        where = draw(st.sampled_from(["labels", "kind", "stdin", "patch"]))
        if where == "labels":
            pod = (
                "apiVersion: v1\nkind: Pod\nmetadata:\n  name: bomb\n  labels:\n"
                + indent(b, 4)
                + "spec:\n  nodeName: kind-worker\n"
            )
            out = kind, {"o.yaml": (MANIFESTS + "\n---\n" + pod).encode()}, ["routes", "{d}/o.yaml", str(KIND)], None
        elif where == "kind":
            out = kind, {"k.yaml": (KIND.read_text() + "x:\n" + indent(b, 2)).encode()}, ["routes", "{d}/k.yaml"], None
        elif where == "patch":
            patch = (
                "kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nnodes:\n- role: control-plane\n"
                "  kubeadmConfigPatches:\n  - |\n" + indent(b, 4)
            )
            out = kind, {"k.yaml": patch.encode()}, ["routes", "{d}/k.yaml"], None
        else:
            out = kind, {}, ["routes", "-", str(KIND)], MANIFESTS + "\n---\n" + b + "\n"
    elif kind == "limits":
        what = draw(st.sampled_from(["replicas", "port", "nodePort", "alpha", "rate", "timeout", "cpu nan"]))
        if what == "replicas":
            n = draw(st.sampled_from([150_001, 1_000_000_000]))
            out = (
                kind,
                {"o.yaml": MANIFESTS.replace("replicas: 2", f"replicas: {n}", 1).encode()},
                ["routes", "{d}/o.yaml", str(KIND)],
                None,
            )
        elif what in ("port", "nodePort"):
            value = draw(st.sampled_from([0, 65_536, 70_000, 99_999_999, -1]))
            text = DEMO_TEXT.replace('name = "echo-1"', f'name = "echo-1"\n{what} = {value}', 1)
            out = kind, {"s.toml": text.encode()}, ["validate", "{d}/s.toml"], None
        elif what == "cpu nan":
            files = {
                "o.yaml": (
                    MANIFESTS + "\n---\n" + NODE.format(cpu=draw(st.sampled_from([".nan", ".inf", "-1"])))
                ).encode()
            }
            out = kind, files, ["import", "{d}/o.yaml", str(KIND), "-o", "{d}/i.toml"], None
        else:
            value = draw(st.sampled_from(["nan", "inf", "-1", "0", "1e400"]))
            flag = {"alpha": "--alpha", "rate": "--rate", "timeout": "--connect-timeout"}[what]
            if what == "rate":
                argv = ["run", str(KIND), "--client", "default/client", "--service", "default/echo-1", flag, value]
            else:
                argv = ["emulate", RULES, "--show-rules", flag, value]
            out = kind, {}, argv, None
    else:
        target = draw(
            st.sampled_from(
                [
                    "{d}/null",
                    "{d}/full",
                    "{d}/zero",
                    "",
                    "{d}/.",
                    "{d}",
                    "{d}/fifo",
                    "{d}/link",
                    "{d}/s.toml",
                    "{d}/kind.toml",
                    "-",
                ]
            )
        )
        text = (
            (ROOT / "experiments" / "cilium_demo.toml").read_text().replace('"../topologies/kind.toml"', '"kind.toml"')
        )
        files = {
            "s.toml": text.encode(),
            "kind.toml": (ROOT / "topologies" / "kind.toml").read_bytes(),
            **dict.fromkeys(["fifo", "link", "null", "full", "zero"], b""),
        }
        argv = draw(
            st.sampled_from(
                [
                    ["run", "{d}/s.toml", "--requests", "20", "--out", target],
                    ["run", "{d}/s.toml", "--requests", "20", "--plot", target],
                    ["import", str(ROOT / "experiments" / "k8s" / "manifests.yaml"), str(KIND), "-o", target],
                ]
            )
        )
        out = kind, files, argv, None
    return out


DEVICES = {"null": 3, "full": 7, "zero": 5}
"""The memory devices (major 1) by name and minor number."""


def device(path: Path, name: str) -> None:
    """A private copy of ``/dev/NAME`` at ``path`` (a device node where we are root, else a symlink to the real
    one, which a non-root writer cannot replace): a regression clobbers this copy, never the system's device."""
    if os.geteuid() == 0:
        os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(1, DEVICES[name]))
    else:
        path.symlink_to(f"/dev/{name}")


def check_hostile(tmp: Path, case: tuple[str, dict[str, bytes], list[str], str | None]) -> None:
    kind, files, argv, stdin = case
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for name, data in files.items():
        if name == "fifo":
            os.mkfifo(tmp / name)
        elif name == "link":
            (tmp / name).symlink_to("/dev/null")
        elif name in DEVICES:
            device(tmp / name, name)
        else:
            (tmp / name).write_bytes(data)
    args = [a.replace("{d}", str(tmp)) for a in argv]
    old_stdin = sys.stdin
    try:
        if stdin is not None:
            sys.stdin = io.StringIO(stdin)
        cli(f"hostile: {kind}", *args, *(["--max-memory", "2G"] if args[0] in ("run", "validate", "sweep") else []))
    finally:
        sys.stdin = old_stdin
    for name in DEVICES:
        if (tmp / name).exists() and not (tmp / name).is_char_device():
            COUNTS[f"hostile: {kind}"]["replaced a device"] += 1
            assert COUNT_ONLY, f"{name} was replaced"
    assert Path("/dev/null").is_char_device()


@settings(FUZZ, max_examples=250)
@given(case=hostile_cases())
def test_fuzz_hostile(tree, case):
    check_hostile(tree / "hostile", case)
