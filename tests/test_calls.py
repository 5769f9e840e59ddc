"""The call-graph contract in scenario files (``call_mode``, ``calls = [...]`` on ``[[services]]``): what it reads
into, how it reaches Services read from Kubernetes files, ``--set`` and sweep factors, the one-line error for each
bad value, and what ``sim validate``, ``sim run``, ``sim sweep`` and ``sim routes`` do with it today."""

from __future__ import annotations

import hashlib
import json
import math
import tomllib
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sim.callgraph import Call, CallGraph, CallMode, Connection, Parallel, ServiceCalls
from sim.distributions import Constant
from sim.errors import SpecError
from sim.io import load_experiment, load_scenario
from sim.io.calls import calls_entry, service_calls
from sim.io.cluster.builders import Defaults
from sim.io.experiment import load_scenario_set
from sim.io.importer import key, value
from sim.io.typed import Table
from sim.rpc import Retries
from tests.conftest import ROOT
from tests.test_cli import one_error, sim_cli

SHOP = """
name = "shop"
topology = "kind.toml"
[defaults]
timeout_s = 2.0
[[pods]]
name = "client"
node = "kind-worker"
[[pods]]
name = "fe"
node = "kind-worker"
labels = { app = "frontend" }
service_time = 0.0
concurrency = 1000
[[pods]]
name = "cart-1"
node = "kind-worker2"
labels = { app = "cart" }
[[pods]]
name = "currency-1"
node = "kind-worker2"
labels = { app = "currency" }
[[pods]]
name = "ads-1"
node = "kind-worker2"
labels = { app = "ads" }
[[pods]]
name = "catalog-1"
node = "kind-worker"
labels = { app = "catalog" }
[[services]]
name = "frontend"
selector = { app = "frontend" }
call_mode = "sync"
calls = [
  { service = "cart" },
  { service = "currency", count = 3 },
  { parallel = [ { service = "ads", probability = 0.5 }, { service = "catalog" } ] },
]
[[services]]
name = "cart"
selector = { app = "cart" }
call_mode = "async"
calls = [ { service = "currency", optional = true, timeout_s = 0.5, retries = { attempts = 2 }, port = 80 } ]
[[services]]
name = "currency"
selector = { app = "currency" }
[[services]]
name = "ads"
selector = { app = "ads" }
[[services]]
name = "catalog"
selector = { app = "catalog" }
[[streams]]
client = "client"
service = "frontend"
requests = 100
workload = { kind = "poisson", rate_rps = 10 }
"""


def shop(tmp_path: Path, old: str = "", new: str = "") -> Path:
    """The shop scenario in ``tmp_path`` (its topology next to it), with ``old`` replaced by ``new``."""
    (tmp_path / "kind.toml").write_text((ROOT / "topologies" / "kind.toml").read_text())
    text = SHOP
    if old:
        assert old in text, old
        text = text.replace(old, new)
    path = tmp_path / "shop.toml"
    path.write_text(text)
    return path


def test_the_contract_reads_into_typed_calls(tmp_path):
    scenario, _ = load_scenario(shop(tmp_path))
    g = scenario.call_graph
    assert g.of("frontend") == ServiceCalls(
        CallMode.SYNC,
        (
            Call("cart", timeout_s=2.0),
            Call("currency", count=3, timeout_s=2.0),
            Parallel((Call("ads", probability=0.5, timeout_s=2.0), Call("catalog", timeout_s=2.0))),
        ),
    )
    assert g.of("cart") == ServiceCalls(
        CallMode.ASYNC,
        (Call("currency", optional=True, timeout_s=0.5, retries=Retries(attempts=2), port="80"),),
    )
    assert set(g.services) == {"frontend", "cart"}  # Services without calls are not in the graph
    assert g.expected_calls("frontend")["currency"] == 4.0
    fe = scenario.pod("fe")
    assert fe.service_time == Constant(0.0) and fe.concurrency == 1000  # a pure caller: no own work, no queue


def test_calls_on_services_read_from_kubernetes_files(tmp_path):
    """A ``[[services]]`` entry naming ``ns/name`` of a ``cluster = [...]`` scenario adds calls to that Service and
    changes nothing else of it."""
    base = (ROOT / "experiments" / "k8s" / "demo.toml").read_text()
    for name in ("kind-cluster.yaml", "manifests.yaml"):
        (tmp_path / name).write_text((ROOT / "experiments" / "k8s" / name).read_text())
    path = tmp_path / "demo.toml"
    path.write_text(
        base + '\n[[services]]\nname = "default/echo-1"\ncalls = [{ service = "default/echo-2", count = 2 }]\n'
    )
    scenario, _ = load_scenario(path)
    plain, _ = load_scenario(ROOT / "experiments" / "k8s" / "demo.toml")
    assert scenario.call_graph.of("default/echo-1").stages == (Call("default/echo-2", count=2),)
    assert scenario.service("default/echo-1") == plain.service("default/echo-1")
    assert scenario.call_graph.of("default/echo-1").mode == CallMode.SYNC
    moved, _ = load_scenario_set(path, {'services."default/echo-1".call_mode': "async"})
    assert moved.call_graph.of("default/echo-1") == ServiceCalls(CallMode.ASYNC, (Call("default/echo-2", count=2),))
    added, _ = load_scenario_set(
        ROOT / "experiments" / "k8s" / "demo.toml", {'services."default/echo-2".calls': [{"service": "default/echo-1"}]}
    )
    assert added.call_graph.callees("default/echo-2") == ("default/echo-1",)


def test_set_reaches_mode_counts_and_fan_out_members(tmp_path):
    path = shop(tmp_path)
    scenario, _ = load_scenario_set(
        path,
        {
            "services.cart.call_mode": "sync",
            "services.frontend.calls.1.count": 5,
            "services.frontend.calls.2.parallel.0.probability": 1.0,
        },
    )
    g = scenario.call_graph
    assert g.of("cart").mode == CallMode.SYNC
    assert g.expected_calls("frontend") == {
        "frontend": 1.0,
        "cart": 1.0,
        "currency": 6.0,
        "ads": 1.0,
        "catalog": 1.0,
    }


def test_a_sweep_varies_a_mode_and_a_callee_policy(tmp_path):
    path = shop(tmp_path)
    spec = tmp_path / "spec.toml"
    spec.write_text(
        '[experiment]\nscenario = "shop.toml"\nreplications = 1\n[factors]\n'
        '"services.frontend.call_mode" = ["sync", "async"]\n'
        '"services.currency.internalTrafficPolicy" = ["Cluster", "Local"]\n'
    )
    assert path.exists()
    experiment = load_experiment(spec)
    modes = {p.scenario.call_graph.of("frontend").mode for p in experiment.design_points}
    assert modes == {CallMode.SYNC, CallMode.ASYNC} and len(experiment.design_points) == 4
    assert all(p.scenario.call_graph.of("cart").stages for p in experiment.design_points)


@pytest.mark.parametrize(
    ("old", "new", "field", "problem"),
    [
        ('call_mode = "sync"', 'call_mode = "Sync"', "services[0].call_mode", "did you mean 'sync'?"),
        ('{ service = "cart" },', '{ service = "cart", count = 0 },', "services[0].calls[0].count", "must be >= 1"),
        ('{ service = "cart" },', '{ service = "cart", count = 1.5 },', "services[0].calls[0].count", "integer"),
        ("probability = 0.5", "probability = 1.5", "services[0].calls[2].parallel[0].probability", "must be <= 1"),
        ("probability = 0.5", "probability = -0.5", "services[0].calls[2].parallel[0].probability", "must be >= 0"),
        ("probability = 0.5", "probability = nan", "services[0].calls[2].parallel[0].probability", "finite"),
        ("timeout_s = 0.5", "timeout_s = 0", "services[1].calls[0].timeout_s", "must be > 0"),
        ("attempts = 2", "attempts = -1", "services[1].calls[0].retries.attempts", "must be >= 0"),
        ("attempts = 2", "tries = 2", "services[1].calls[0].retries.tries", "unknown key"),
        ("optional = true", 'optional = "yes"', "services[1].calls[0].optional", "must be a boolean"),
        ("port = 80", "port = 0", "services[1].calls[0].port", "a port name or 1-65535"),
        ("port = 80", 'port = "grpc"', "services.cart.calls[0].port", "has no port 'grpc'; it has ['80']"),
        ('{ service = "cart" },', '{ servce = "cart" },', "services[0].calls[0].service", "is required"),
        (
            '{ service = "cart" },',
            '{ service = "cart", countt = 2 },',
            "services[0].calls[0].countt",
            "did you mean 'count'?",
        ),
        ('{ service = "cart" },', '"cart",', "services[0].calls[0]", "must be a table"),
        (
            '{ service = "cart" },',
            '{ service = "cart", connection = "per_node" },',
            "services[0].calls[0].connection",
            "unknown value 'per_node'; expected one of ['per_call', 'per_pod']",
        ),
        ('{ service = "cart" },', "{ parallel = [] },", "services[0].calls[0].parallel", "at least one call"),
        (
            '{ service = "catalog" } ] }',
            '{ parallel = [ { service = "catalog" } ] } ] }',
            "services[0].calls[2].parallel[1].parallel",
            "a fan-out holds calls",
        ),
        ('{ service = "cart" },', '{ service = "cart", parallel = [] },', "services[0].calls[0].service", "unknown"),
        (
            '{ service = "cart" },',
            '{ service = "cartt" },',
            "services.frontend.calls[0].service",
            "no service named 'cartt'; the Services are ['ads', 'cart', 'catalog', 'currency', 'frontend']",
        ),
        (
            'service = "ads", probability',
            'service = "nope", probability',
            "services.frontend.calls[2].parallel[0].service",
            "no service named 'nope'",
        ),
        (
            'calls = [ { service = "currency", optional',
            'calls = [ { service = "frontend" }, { service = "currency", optional',
            "services.frontend.calls",
            "the calls form a cycle: frontend -> cart -> frontend",
        ),
        (
            'calls = [ { service = "currency"',
            'calls = "x"\nno = [ { service = "currency"',
            "services[1].calls",
            "must be an array",
        ),
    ],
)
def test_bad_calls_are_one_line_naming_the_field(capsys, tmp_path, old, new, field, problem):
    path = shop(tmp_path, old, new)
    with pytest.raises(SpecError) as e:
        load_scenario(path)
    assert e.value.path == str(path) and e.value.field == field and problem in e.value.problem, str(e.value)
    err = one_error(*sim_cli(capsys, "validate", str(path)))
    assert field in err and "\n" not in err.rstrip("\n")


def test_a_self_call_is_a_cycle(tmp_path):
    path = shop(tmp_path, 'name = "ads"\n', 'name = "ads"\ncalls = [{ service = "ads" }]\n')
    with pytest.raises(SpecError, match=r"services\.ads\.calls: the calls form a cycle: ads -> ads"):
        load_scenario(path)


def test_validate_prints_the_call_graph(capsys, tmp_path):
    code, out, err = sim_cli(capsys, "validate", str(shop(tmp_path)))
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].endswith(")") and "fast path: no (stream 0 (client -> frontend) has a request timeout" in lines[0]
    assert lines[1] == "call graph: 5 services, 5 caller -> callee pairs"
    assert "  frontend (sync) -> currency: 3 per request" in lines
    assert "  frontend (sync) -> ads: 0.5 per request" in lines
    assert "  cart (async) -> currency: 1 per request" in lines
    assert lines[-1] == (
        "  a request into frontend: depth 2, widest fan-out 2; requests each Service receives: "
        "cart 1, currency 4, ads 0.5, catalog 1"
    )


def test_run_and_sweep_run_call_graphs_fast_says_why_not_and_routes_work(capsys, tmp_path):
    """``sim run`` runs the shop on the event path: each callee's ``sent`` is the calls it received (cart 1,
    currency 3 + 1 from cart, catalog 1 per page; ads half, within 3 binomial standard deviations); ``--engine
    fast`` is refused with the reason; a sweep runs it; ``sim routes`` shows every Service."""
    path = shop(tmp_path)
    code, out, err = sim_cli(capsys, "run", str(path), "--json")
    assert code == 0, err
    services = json.loads(out)["services"]
    sent = {name: services[name]["sent"] for name in ("frontend", "cart", "currency", "catalog")}
    assert sent == {"frontend": 100, "cart": 100, "currency": 400, "catalog": 100}
    pages, p = 100, 0.5  # ads: Binomial(100, 0.5) (no retries), accepted within 3 of its standard deviations
    assert abs(services["ads"]["sent"] - pages * p) < 3 * math.sqrt(pages * p * (1 - p)), services["ads"]["sent"]
    err = one_error(*sim_cli(capsys, "run", str(path), "--engine", "fast"))
    assert "has a request timeout (2 s): the client's give-up races the reply" in err
    spec = tmp_path / "spec.toml"
    spec.write_text('[experiment]\nscenario = "shop.toml"\nreplications = 1\n')
    code, out, err = sim_cli(capsys, "sweep", str(spec), "--serial", "--out", str(tmp_path / "out"))
    assert code == 0, err
    code, out, err = sim_cli(capsys, "routes", str(path), "--json")
    assert code == 0, err
    assert set(json.loads(out)["services"]) == {"frontend", "cart", "currency", "ads", "catalog"}


def test_a_call_graph_in_a_changing_cluster_runs_on_the_event_path(capsys, tmp_path):
    """A timeline with a call graph: ``sim run`` runs it (the calls routed by the control plane as of their send
    time); every page still calls cart once."""
    path = shop(
        tmp_path, "[[streams]]", '[[timeline]]\nat_s = 1.0\naction = "terminate"\npod = "cart-1"\n\n[[streams]]'
    )
    code, out, err = sim_cli(capsys, "run", str(path), "--json")
    assert code == 0, err
    summary = json.loads(out)
    assert summary["services"]["cart"]["sent"] == 100
    assert summary["engine"] == "des" and summary["timeline"][0]["target"] == "cart-1"


def test_online_boutique_validates_with_the_calls_its_source_makes(capsys):
    """experiments/apps/online_boutique.toml: the released manifests, unchanged (the digest SOURCE.md gives), on
    three zones, with the home page's and the checkout's calls as handlers.go homeHandler / placeOrderHandler and
    checkoutservice main.go PlaceOrder make them."""
    app = ROOT / "experiments" / "apps"
    manifests = app / "online-boutique" / "kubernetes-manifests.yaml"
    assert hashlib.sha256(manifests.read_bytes()).hexdigest() in (app / "online-boutique" / "SOURCE.md").read_text()
    scenario, _ = load_scenario(app / "online_boutique.toml")
    zones = {n.zone for name, n in scenario.nodes.items() if name != "kind-control-plane"}
    assert zones == {"zone-a", "zone-b", "zone-c"}
    g = scenario.call_graph
    home = g.expected_calls("default/frontend")
    assert home["default/currencyservice"] == 10  # GetSupportedCurrencies + Convert for each of the 9 products
    assert home["default/redis-cart"] == 1 and g.depth("default/frontend") == 2
    ad = g.of("default/frontend").stages[-1]
    assert isinstance(ad, Call) and ad.optional and ad.timeout_s == 0.1  # getAd's 100 ms deadline
    checkout = g.expected_calls("default/frontend-checkout")
    assert checkout["default/productcatalogservice"] == 7 and checkout["default/cartservice"] == 2
    assert g.depth("default/frontend-checkout") == 3
    code, out, err = sim_cli(capsys, "validate", str(app / "online_boutique.toml"))
    assert code == 0 and "call graph: 12 services" in out, err


def test_the_estimate_counts_the_calls_a_request_makes(tmp_path):
    """guards.estimate: a record per entry request and per call (every retry counted), so that the memory check
    of a call graph is not ten times short."""
    from sim import guards

    scenario, _ = load_scenario(shop(tmp_path))
    flat, _ = load_scenario_set(shop(tmp_path), {"services.frontend.calls": [], "services.cart.calls": []})
    # per page: frontend 1, cart 1, currency 3 + 1 x 3 tries of cart's call, ads 0.5, catalog 1
    assert guards.estimate(flat).requests == 100
    assert guards.estimate(scenario).requests == pytest.approx(100 * (1 + 1 + 3 + 3 + 0.5 + 1))


# --- the writer: sim.callgraph objects back into the contract's keys ------------------------------------------

_SECONDS = st.floats(1e-6, 1e4)
"""Durations a scenario file takes (within sim.io.typed.NUMBER_RANGE)."""


@st.composite
def _defaults(draw) -> Defaults:
    """A file's [defaults] as far as calls take them: a timeout or none, a connect timeout."""
    return Defaults(timeout_s=draw(st.none() | _SECONDS), connect_timeout_s=draw(_SECONDS))


@st.composite
def _call(draw, callee: str, defaults: Defaults) -> Call:
    """A call to ``callee`` with every key drawn: left to ``defaults`` or given."""
    timeout = st.just(defaults.timeout_s) | (_SECONDS if defaults.timeout_s is not None else st.none() | _SECONDS)
    return Call(
        callee,
        count=draw(st.integers(1, 20)),
        probability=draw(st.sampled_from([0.0, 1.0]) | st.floats(1e-6, 1)),
        optional=draw(st.booleans()),
        timeout_s=draw(timeout),
        connect_timeout_s=draw(st.just(defaults.connect_timeout_s) | _SECONDS),
        retries=draw(st.builds(Retries, st.integers(0, 5), _SECONDS, _SECONDS)),
        port=draw(st.sampled_from(["", "http", "grpc", "8080"])),
        connection=draw(st.sampled_from(list(Connection))),
    )


@st.composite
def _graphs(draw) -> tuple[CallGraph, Defaults]:
    """A valid call graph (s0..sN, each calling only higher-numbered Services, so acyclic; each in the graph makes
    a call or names async) and the [defaults] it is written under."""
    defaults = draw(_defaults())
    n = draw(st.integers(2, 6))
    services = {}
    for i in range(n - 1):
        callee = st.integers(i + 1, n - 1).map(lambda j: f"s{j}")
        stages = []
        for _ in range(draw(st.integers(0, 3))):
            calls = draw(st.lists(callee.flatmap(lambda c: _call(c, defaults)), min_size=1, max_size=3))
            stages.append(draw(st.sampled_from([Parallel(tuple(calls)), calls[0]])))
        mode = draw(st.sampled_from(CallMode)) if stages else CallMode.ASYNC
        if draw(st.booleans()) or not stages:
            services[f"s{i}"] = ServiceCalls(mode, tuple(stages))
    return CallGraph(services), defaults


def _toml(graph: CallGraph, defaults: Defaults) -> str:
    """The graph's [[services]] entries as a scenario file spells them (``sim.io.importer``'s TOML values)."""
    lines = []
    for name, calls in graph.services.items():
        entry = {"name": name, **calls_entry(calls, defaults)}
        lines += ["[[services]]", *(f"{key(k)} = {value(v)}" for k, v in entry.items()), ""]
    return "\n".join(lines)


@given(_graphs())
def test_written_calls_read_back_into_the_same_graph(drawn):
    """calls_entry, as TOML text, then service_calls (the reader): the same ServiceCalls for every Service."""
    graph, defaults = drawn
    read = {}
    for i, entry in enumerate(tomllib.loads(_toml(graph, defaults)).get("services", [])):
        t = Table(Path("t.toml"), f"services[{i}]", entry)
        name = t.take("name", str)
        read[name] = service_calls(t, defaults, None)
        t.done()
    assert read == dict(graph.services)


def test_the_writer_leaves_out_what_the_reader_defaults():
    """A call of defaults is its service alone; sync is not written; a call without a timeout where [defaults]
    gives one has no spelling, which is a ValueError, not a file that reads back otherwise."""
    d = Defaults(timeout_s=2.0)
    assert calls_entry(ServiceCalls(stages=(Call("a", timeout_s=2.0),)), d) == {"calls": [{"service": "a"}]}
    assert calls_entry(ServiceCalls(), d) == {}
    with pytest.raises(ValueError, match=r"a call to a has no timeout, but \[defaults\] gives 2\.0 s"):
        calls_entry(ServiceCalls(stages=(Call("a"),)), d)
