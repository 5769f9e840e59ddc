"""The call graph's pure functions (sim.callgraph) and the queueing results the engines' call graphs will be tested
against.

The structure checks are properties over random graphs: calls per entry request equal a brute-force expansion of
the call tree (a different algorithm: every path walked, no topological order), the topological order puts every
caller before its callees, and a cycle planted in a random acyclic graph is always found (and is a real cycle).

The reference formulas are checked against direct simulations of the queues they describe, made with the FIFO
recursion both engines use (``sim.queueing.fifo_serve``) on numpy draws at fixed seeds: R independent replications,
accepted within 3 standard errors of the replication means, and the same data must reject each named wrong model
(as tests/test_queueing.py does for the single-queue results).
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.callgraph import (
    Call,
    CallGraph,
    CallMode,
    Parallel,
    ServiceCalls,
    fork_join_mean_s,
    sync_call_mean_s,
    thinned_rate_rps,
)
from sim.queueing import fifo_serve
from sim.rpc import Retries
from tests.conftest import check_theory

CONTRACT = CallGraph(
    {
        "frontend": ServiceCalls(
            CallMode.SYNC,
            (
                Call("cart"),
                Call("currency", count=3),
                Parallel((Call("ads", probability=0.5), Call("catalog"))),
            ),
        ),
        "cart": ServiceCalls(CallMode.ASYNC, (Call("redis"),)),
    }
)


def test_the_contract_example_counts_and_structure():
    g = CONTRACT
    assert g.expected_calls("frontend") == {
        "frontend": 1.0,
        "cart": 1.0,
        "currency": 3.0,
        "ads": 0.5,
        "catalog": 1.0,
        "redis": 1.0,
    }
    assert g.calls_per_request("frontend") == {"cart": 1.0, "currency": 3.0, "ads": 0.5, "catalog": 1.0}
    assert g.topological_order()[0] == "frontend"
    assert g.depth("frontend") == 2 and g.depth("cart") == 1 and g.depth("redis") == 0
    assert g.of("frontend").fan_out == 2 and g.max_fan_out("frontend") == 2 and g.max_fan_out("cart") == 1
    assert g.entries() == ("frontend",)
    assert g.find_cycle() is None
    assert g.of("nobody") == ServiceCalls() and not CallGraph() and g


def test_counts_compound_along_the_graph_and_inside_a_fan_out():
    g = CallGraph(
        {
            "a": ServiceCalls(stages=(Call("b", count=2, probability=0.5), Parallel((Call("c", count=4),)))),
            "b": ServiceCalls(stages=(Call("c", count=3),)),
        }
    )
    # a -> b: 1 per request; a -> c directly 4, through b 1 x 3
    assert g.expected_calls("a") == {"a": 1.0, "b": 1.0, "c": 7.0}
    assert g.of("a").fan_out == 4  # count inside a fan-out: that many at once
    assert g.expected_calls("c") == {"c": 1.0}


def test_a_self_call_and_a_longer_cycle_are_named():
    assert CallGraph({"a": ServiceCalls(stages=(Call("a"),))}).find_cycle() == ("a", "a")
    g = CallGraph(
        {
            "frontend": ServiceCalls(stages=(Call("cart"),)),
            "cart": ServiceCalls(stages=(Parallel((Call("redis"), Call("frontend"))),)),
        }
    )
    assert g.find_cycle() == ("frontend", "cart", "frontend")
    with pytest.raises(ValueError, match="frontend -> cart -> frontend"):
        g.topological_order()


def test_describe_lists_every_edge_and_each_entry():
    lines = CONTRACT.describe()
    assert lines[0] == "call graph: 6 services, 5 caller -> callee pairs"
    assert "  frontend (sync) -> currency: 3 per request" in lines
    assert "  cart (async) -> redis: 1 per request" in lines
    assert lines[-1].startswith("  a request into frontend: depth 2, widest fan-out 2;")
    assert CallGraph().describe() == []


# --- properties over random graphs --------------------------------------------------------------------------


@st.composite
def dags(draw, min_nodes: int = 2, max_nodes: int = 7) -> CallGraph:
    """A random acyclic call graph: Services s0..sN, each calling only higher-numbered ones, with random counts,
    probabilities and fan-outs."""
    n = draw(st.integers(min_nodes, max_nodes))
    services = {}
    for i in range(n - 1):
        stages = []
        for _ in range(draw(st.integers(0, 3))):
            members = [
                Call(
                    f"s{draw(st.integers(i + 1, n - 1))}",
                    count=draw(st.integers(1, 3)),
                    probability=draw(st.sampled_from([0.0, 0.25, 0.5, 1.0])),
                )
                for _ in range(draw(st.integers(1, 3)))
            ]
            stages.append(Parallel(tuple(members)) if len(members) > 1 else members[0])
        services[f"s{i}"] = ServiceCalls(stages=tuple(stages))
    return CallGraph(services)


def brute_force(g: CallGraph, entry: str) -> dict[str, float]:
    """Requests each Service receives per request into ``entry``, by walking every path of the call tree."""
    out: dict[str, float] = {entry: 1.0}

    def walk(service: str, weight: float) -> None:
        for call in g.of(service).calls():
            w = weight * call.count * call.probability
            out[call.service] = out.get(call.service, 0.0) + w
            walk(call.service, w)

    walk(entry, 1.0)
    return out


@settings(max_examples=150, deadline=None)
@given(dags())
def test_expected_calls_equal_the_expanded_tree(g):
    for entry in ("s0", *g.entries()):
        expected = g.expected_calls(entry)
        truth = brute_force(g, entry)
        assert expected.keys() == truth.keys()
        for name, value in truth.items():
            assert math.isclose(expected[name], value, rel_tol=1e-12, abs_tol=1e-12), name


@settings(max_examples=150, deadline=None)
@given(dags())
def test_topological_order_respects_every_edge(g):
    order = g.topological_order()
    assert sorted(order) == sorted(g.names())
    position = {name: i for i, name in enumerate(order)}
    for caller, callee in g.edges():
        assert position[caller] < position[callee]
    assert g.find_cycle() is None
    for entry in g.names():  # depth: the longest chain, checked against a walk of every path
        assert g.depth(entry) == _longest(g, entry)


def _longest(g: CallGraph, name: str) -> int:
    return max((1 + _longest(g, c) for c in g.callees(name)), default=0)


@settings(max_examples=150, deadline=None)
@given(dags(min_nodes=2), st.data())
def test_every_planted_cycle_is_found(g, data):
    """A back edge from a Service to any Service that reaches it closes a cycle; find_cycle must name one, and what
    it names must be a cycle of the graph (each step an edge, back to where it started)."""
    names = g.names()
    target = data.draw(st.sampled_from(names))
    reaching = [n for n in names if target in g.reachable(n)]  # n reaches target (target itself included)
    source = data.draw(st.sampled_from(reaching))
    old = g.of(target)
    planted = CallGraph({**g.services, target: ServiceCalls(old.mode, (*old.stages, Call(source)))})
    cycle = planted.find_cycle()
    assert cycle is not None and cycle[0] == cycle[-1] and len(cycle) >= 2
    edges = set(planted.edges())
    assert all((a, b) in edges for a, b in itertools.pairwise(cycle))
    with pytest.raises(ValueError, match="a cycle"):
        planted.topological_order()


# --- the reference formulas -------------------------------------------------------------------------------------


def test_reference_values_and_their_domain():
    lam, mu = 0.5, 1.0
    assert fork_join_mean_s(lam, mu) == pytest.approx((12 - 0.5) / 8 * 2.0)
    assert 1 / (mu - lam) < fork_join_mean_s(lam, mu) < 2 / (mu - lam)  # between one queue and the sum
    assert fork_join_mean_s(0.0, mu) == pytest.approx(1.5 / mu)  # E[max of two Exp(mu)] = 1.5/mu
    assert sync_call_mean_s(0.3, lam, mu) == pytest.approx(2.3)
    assert thinned_rate_rps(10.0, 0.25) == 2.5
    for bad in ((1.0, 1.0), (2.0, 1.0), (-0.1, 1.0), (0.5, 0.0)):
        with pytest.raises(ValueError):
            fork_join_mean_s(*bad)
        with pytest.raises(ValueError):
            sync_call_mean_s(0.1, *bad)
    with pytest.raises(ValueError):
        thinned_rate_rps(1.0, 1.5)


R = 6
N = 20_000


def _check(samples: list[float], theory: float, wrong: dict[str, float], se: float | None = None) -> None:
    """``check_theory`` on the grand mean of R replication means, with ``se`` where theory gives it, else the
    replications' own standard error."""
    se = se if se is not None else float(np.std(samples, ddof=1) / math.sqrt(len(samples)))
    check_theory(float(np.mean(samples)), se, theory, wrong)


def _poisson(rng: np.random.Generator, rate: float, n: int) -> np.ndarray:
    return np.cumsum(rng.exponential(1 / rate, n))


def _sojourns(arrived: np.ndarray, rng: np.random.Generator, mu: float) -> np.ndarray:
    """Each request's time in an M/M/1 queue (arrivals sorted), by the engines' FIFO recursion."""
    _, finished = fifo_serve(arrived.tolist(), iter(rng.exponential(1 / mu, len(arrived)).tolist()), 1)
    return np.asarray(finished) - arrived


@pytest.mark.statistical
def test_fork_join_of_two_mm1_queues_is_nelson_tantawi():
    """Every request forks to two M/M/1 queues and joins when both are done. Fails on "one queue" (1/(mu-lambda))
    and on "the sum" (2/(mu-lambda))."""
    lam, mu = 0.5, 1.0
    means = []
    for r in range(R):
        rng = np.random.default_rng([2026, 25, r])
        a = _poisson(rng, lam, N)
        both = np.maximum(_sojourns(a, rng, mu), _sojourns(a, rng, mu))
        means.append(float(np.mean(both[N // 4 :])))
    _check(means, fork_join_mean_s(lam, mu), {"one queue": 1 / (mu - lam), "the sum": 2 / (mu - lam)})


@pytest.mark.statistical
def test_sync_call_behind_an_unqueued_front_pod():
    """A front pod that never queues works for S1 ~ Exp(mean 1 s), then calls an M/M/1 queue synchronously. Fails on
    "the front pod is an M/M/1 too" (1/(1/E[S1] - lambda) + 1/(mu - lambda)) and on "the callee alone"."""
    lam, mu, front = 0.5, 1.0, 1.0
    means = []
    for r in range(R):
        rng = np.random.default_rng([2026, 25, 100 + r])
        a = _poisson(rng, lam, N)
        s1 = rng.exponential(front, N)
        call_at = a + s1
        order = np.argsort(call_at, kind="stable")
        waited = np.empty(N)
        waited[order] = _sojourns(call_at[order], rng, mu)
        means.append(float(np.mean((s1 + waited)[N // 4 :])))
    queued_front = 1 / (1 / front - lam) + 1 / (mu - lam)
    wrong = {"the front pod an M/M/1 too": queued_front, "the callee alone": 1 / (mu - lam)}
    _check(means, sync_call_mean_s(front, lam, mu), wrong)


@pytest.mark.statistical
def test_a_call_with_probability_p_is_a_thinned_poisson_stream():
    """Calls made with probability p per request of a Poisson stream arrive at p x lambda, with exponential gaps
    (squared coefficient of variation 1). Fails on "every request calls" (lambda) and on "p^2 x lambda"."""
    lam, p, horizon = 10.0, 0.3, 2_000.0
    rates, scv = [], []
    for r in range(R):
        rng = np.random.default_rng([2026, 25, 200 + r])
        a = _poisson(rng, lam, int(lam * horizon * 1.2))
        a = a[a < horizon]
        called = a[rng.random(len(a)) < p]
        rates.append(len(called) / horizon)
        gaps = np.diff(called)
        scv.append(float(np.var(gaps) / np.mean(gaps) ** 2))
    expected = thinned_rate_rps(lam, p)  # a count over the horizon is Poisson: its variance is its mean
    wrong = {"every request calls": lam, "p^2 x lambda": p * p * lam}
    _check(rates, expected, wrong, se=math.sqrt(expected * horizon) / horizon / math.sqrt(R))
    _check(scv, 1.0, {"Erlang-2 gaps": 0.5, "twice as variable": 2.0})


def test_with_retries_counts_every_attempt_of_every_call():
    """The most records a request can write: each call's attempts compound along the graph like its count."""
    g = CallGraph(
        {
            "a": ServiceCalls(stages=(Call("b", count=2, retries=Retries(attempts=2)),)),
            "b": ServiceCalls(stages=(Call("c", probability=0.5, retries=Retries(attempts=1)),)),
        }
    )
    assert g.expected_calls("a") == {"a": 1.0, "b": 2.0, "c": 1.0}
    assert g.expected_calls("a", with_retries=True) == {"a": 1.0, "b": 6.0, "c": 6.0}
