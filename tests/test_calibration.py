"""Calibration of the verdict: under the null, its p-values over many seeds follow their null distribution.

A test that is right at one seed can still be wrong as a procedure: the p-values of many independent runs of a
scenario whose expectation is true must follow the p-value's null law, uniform for large counts, and for small
ones the exact discrete law (every outcome's p-value and multinomial probability, enumerated). Each case runs
SEEDS seeds (the fast path where it is exact) and bins the p-values (at 0.01, 0.05, 0.1, ..., 0.9) for a
chi-square against that law, and checks the share of p < 0.05 against its binomial, both at level 0.001; a
wrong expectation must be rejected by the same check, so the check can fail. The slow-marked versions take
FULL_SEEDS seeds.

The cases are the random picker, a topology-aware policy with clients in two zones (one zone has one eligible
endpoint, the other two: the groups have different shares), Maglev (whose picks hash the client's source
ports, now drawn from each run's seed, so replications are independent), and keep-alive connections (a few
connections are the draws: the exact binomial p-value takes three values).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from scipy import stats as st

from sim.cluster import Pod, Service, TrafficDistribution
from sim.distributions import Constant, Exponential
from sim.engine import run
from sim.experiment.analysis import summarize_service
from sim.rng import Streams
from sim.routing import DataplaneConfig, ip_key
from sim.routing.ports import EPHEMERAL_PORTS, first_ports, port_blocks, source_ports
from sim.scenario import Connections, Scenario, Stream, stream_route
from sim.solver import events_needed
from sim.stats import chi_square_gof
from sim.topology import ElementKind, Link, Topology
from sim.workload import ClosedLoop, Poisson
from tests.conftest import solve_fast

pytestmark = pytest.mark.statistical

SEEDS = 200
FULL_SEEDS = 1000
LEVEL = 0.001
ZONE = "topology.kubernetes.io/zone"


def zones() -> Topology:
    """Node a1 in zone a; b1, b2 in zone b; one bridge."""
    nodes = {"a1": {ZONE: "a"}, "b1": {ZONE: "b"}, "b2": {ZONE: "b"}}
    links = [Link(n, "br", Constant(0.0001)) for n in nodes]
    return Topology(
        name="zones", nodes=nodes, elements={"br": ElementKind.BRIDGE}, links=links, same_node=Constant(1e-5)
    )


def backends(*nodes: str) -> tuple[Pod, ...]:
    return tuple(
        Pod(f"web-{i}", node, f"10.244.{i}.10", {"app": "web"}, service_time=Exponential(0.001), concurrency=64)
        for i, node in enumerate(nodes)
    )


def random_picker() -> Scenario:
    """iptables, Cluster: uniform over 3 endpoints, 300 connections."""
    pods = (Pod("client", "a1", "10.244.9.2", {"app": "c"}), *backends("a1", "b1", "b2"))
    streams = (Stream("client", "web", Poisson(200.0), 300),)
    return Scenario("random", zones(), pods, (Service("web", {"app": "web"}),), streams)


def two_zones() -> Scenario:
    """PreferSameZone with a client in each zone: zone a's has one eligible endpoint, zone b's two."""
    pods = (
        Pod("client-a", "a1", "10.244.9.2", {"app": "c"}),
        Pod("client-b", "b1", "10.244.9.3", {"app": "c"}),
        *backends("a1", "b1", "b2"),
    )
    service = Service("web", {"app": "web"}, traffic_distribution=TrafficDistribution.PREFER_SAME_ZONE)
    streams = (Stream("client-a", "web", Poisson(200.0), 300), Stream("client-b", "web", Poisson(200.0), 300))
    return Scenario("two-zones", zones(), pods, (service,), streams)


def maglev() -> Scenario:
    """IPVS ``mh`` (Maglev) over 4 endpoints, 250 connections from each of 4 clients: the source ports decide.

    A client has 14,116 source ports towards one destination and a run's connections take distinct ones, so a
    run samples its client's flows without replacement: its counts vary by about 1 - n / 14,116 less than a
    multinomial's (sim.routing.ports). At 250 connections per client that is 2%, out of this check's reach;
    1000 connections from one client (7%) fail it over 1000 seeds (2.7% of p-values below 0.05).
    """
    clients = tuple(Pod(f"client-{i}", node, f"10.244.9.{i + 2}", {"app": "c"}) for i, node in enumerate(
        ("a1", "a1", "b1", "b2")))  # fmt: skip
    streams = tuple(Stream(c.name, "web", Poisson(200.0), 250) for c in clients)
    service = Service("web", {"app": "web"})
    dataplane = DataplaneConfig("ipvs", picker="maglev")
    return Scenario("maglev", zones(), (*clients, *backends("a1", "a1", "b1", "b2")), (service,), streams,
                    dataplane=dataplane)  # fmt: skip


def keep_alive() -> Scenario:
    """40 requests in a loop over connections of 10: 4 connections, each a uniform draw over 2 endpoints."""
    pods = (Pod("client", "a1", "10.244.9.2", {"app": "c"}), *backends("a1", "b1"))
    streams = (Stream("client", "web", ClosedLoop(), 40, connections=Connections(max_requests=10)),)
    return Scenario("keep-alive", zones(), pods, (Service("web", {"app": "web"}),), streams)


def pvalues(make: Callable[[], Scenario], seeds: int) -> np.ndarray:
    """The verdict's p-value in each of ``seeds`` runs (seeds 0..seeds-1)."""
    sc = make()
    engine = solve_fast if events_needed(sc) is None else run
    return np.array([summarize_service(engine(sc, seed), "web").chi_square.pvalue for seed in range(seeds)])


def compositions(n: int, k: int) -> np.ndarray:
    """Every way to put n draws in k cells (rows of counts)."""
    if k == 1:
        return np.array([[n]])
    return np.vstack([np.column_stack((np.full(len(rest), j), rest)) for j in range(n + 1)
                      for rest in [compositions(n - j, k - 1)]])  # fmt: skip


def null_law(n: int, shares: list[float]) -> tuple[np.ndarray, np.ndarray]:
    """The exact null law of the verdict's p-value for n draws over cells of ``shares``: every outcome's p-value
    (as ``chi_square_gof`` computes it) and probability (multinomial)."""
    counts = compositions(n, len(shares))
    prob = st.multinomial.pmf(counts, n, shares)
    expected = n * np.asarray(shares)
    if expected.min() >= 5:  # the chi-square method: vectorised here, checked against chi_square_gof below
        p = st.chi2.sf(((counts - expected) ** 2 / expected).sum(axis=1), len(shares) - 1)
    else:
        p = np.array([chi_square_gof(c, shares).pvalue for c in counts])
    for c, q in zip(counts[:: max(1, len(counts) // 7)], p[:: max(1, len(counts) // 7)], strict=True):
        assert chi_square_gof(c, shares).pvalue == pytest.approx(q, rel=1e-9, abs=1e-12)
    return p, prob


def follows(p: np.ndarray, law: tuple[np.ndarray, np.ndarray] | None = None) -> bool:
    """Whether p-values over seeds follow ``law`` (exact: every outcome's p-value and probability) or, with
    ``law`` None, the uniform law: a chi-square on p-values binned at 0.01, 0.05, 0.1, 0.2, ..., 0.9 (bins of
    the law's probabilities, merged until each expects 5 or more), and the count of p < 0.05 against its
    binomial, both at LEVEL. Binning against the exact law is what keeps discrete p-values (a group of 300
    draws over 2 endpoints has a few dozen likely values) from failing a KS test built for continuous ones."""
    edges = np.array([0.01, 0.05, *np.arange(0.1, 0.95, 0.1), 1.0 + 1e-9])

    def cdf(u: np.ndarray) -> np.ndarray:
        if law is None:
            return np.minimum(u, 1.0)
        values, prob = law
        return np.array([prob[values <= x * (1 + 1e-12)].sum() for x in u])

    expected = np.diff(np.concatenate(([0.0], cdf(edges)))) * len(p)
    observed = np.bincount(np.searchsorted(edges, p * (1 - 1e-12), side="left"), minlength=len(edges))
    merged_e, merged_o, e_acc, o_acc = [], [], 0.0, 0
    for e, o in zip(expected, observed[: len(edges)], strict=True):
        e_acc, o_acc = e_acc + e, o_acc + o
        if e_acc >= 5:
            merged_e.append(e_acc)
            merged_o.append(o_acc)
            e_acc, o_acc = 0.0, 0
    merged_e[-1] += e_acc
    merged_o[-1] += o_acc
    binned = chi_square_gof(merged_o, merged_e).pvalue
    size = 0.05 if law is None else float(law[1][law[0] < 0.05].sum())
    binomial = st.binomtest(int(np.count_nonzero(p < 0.05)), len(p), size).pvalue
    return bool(binned > LEVEL and binomial > LEVEL)


CASES: dict[str, tuple[Callable[[], Scenario], Callable[[], tuple[np.ndarray, np.ndarray]] | None]] = {
    "random": (random_picker, lambda: null_law(300, [1 / 3] * 3)),
    "two-zones": (two_zones, lambda: null_law(300, [0.5, 0.5])),  # zone a's group adds 0 with 0 dof
    "maglev": (maglev, None),  # 1000 draws over 4 cells: ~1000 distinct p-values, the uniform law
    "keep-alive": (keep_alive, lambda: null_law(4, [0.5, 0.5])),  # exact binomial: 3 values
}


@pytest.mark.parametrize("seeds", [SEEDS, pytest.param(FULL_SEEDS, marks=pytest.mark.slow)])
@pytest.mark.parametrize("case", list(CASES))
def test_pvalues_follow_their_null_law(case: str, seeds: int) -> None:
    make, law = CASES[case]
    assert follows(pvalues(make, seeds), law() if law else None)


def test_a_wrong_expectation_is_rejected() -> None:
    """The random picker's counts against 40/30/30 instead of 1/3 each (Cohen's w 0.14, lambda 5.6 at n = 300):
    the same check finds the p-values far from uniform."""
    sc = random_picker()
    wrong = []
    for seed in range(SEEDS):
        s = summarize_service(solve_fast(sc, seed), "web")
        wrong.append(chi_square_gof(list(s.routed_by_endpoint.values()), [0.4, 0.3, 0.3]).pvalue)
    assert not follows(np.array(wrong), null_law(300, [1 / 3] * 3))


def test_the_pooled_test_of_two_zones_was_miscalibrated() -> None:
    """What the verdict did before per-group tests: the zone-b group's statistic (zone a's adds 0) judged with
    the pooled 2 dof instead of 1. Its p-values bunch high (size 0.014 at 0.05), and the check sees it."""
    sc = two_zones()
    pooled = []
    for seed in range(SEEDS):
        s = summarize_service(solve_fast(sc, seed), "web")
        pooled.append(st.chi2.sf(s.chi_square.statistic, 2))
        assert [g.test.dof for g in s.chi_square.groups] == [0, 1]
    assert not follows(np.array(pooled))


def test_a_wrong_law_of_keep_alive_connections_is_rejected() -> None:
    """4 connections of which one endpoint gets 4/5 in the law checked against: rejected by the same check."""
    p, _ = null_law(4, [0.5, 0.5])
    wrong = st.binom.pmf([0, 1, 2, 3, 4], 4, 0.8)  # compositions(4, 2) lists k = 0..4 in the first cell
    assert not follows(pvalues(keep_alive, SEEDS), (p, wrong))


# --- source ports: Linux's __inet_hash_connect, drawn from the run's seed ------------------------------------


def test_source_ports_are_linux_ephemeral_ports() -> None:
    """In ip_local_port_range, of low's parity (first pass), each 2 + 2 * U{0..7} after the last (mod 28232),
    from a uniform start; the same sequence whole or one by one."""
    low, high = EPHEMERAL_PORTS
    ports = first_ports(np.random.default_rng(5), 20_000)
    assert ports.min() >= low and ports.max() <= high and np.all(ports % 2 == low % 2)
    steps = np.diff(ports) % 28232
    assert set(steps.tolist()) == set(range(2, 17, 2))
    assert chi_square_gof(np.bincount(steps // 2 - 1), np.ones(8)).pvalue > LEVEL  # the 8 steps equally likely
    one_by_one = source_ports(lambda: np.random.default_rng(5))
    assert [next(one_by_one) for _ in range(5000)] == ports[:5000].tolist()
    starts = np.array([next(port_blocks(np.random.default_rng(s)))[0] for s in range(2000)])
    assert st.kstest((starts - low) / 28232, "uniform").pvalue > LEVEL


def test_hashed_picks_differ_across_seeds_and_repeat_for_one_seed() -> None:
    """Maglev and source-hash-with-ports read the flow: each seed now gives its own picks (before, every seed gave
    the same counts), one seed always the same ones, and the DES and the fast path agree pick for pick."""
    sc = maglev()
    picks = [solve_fast(sc, seed).columns["endpoint"] for seed in range(6)]
    assert len({p.tobytes() for p in picks}) == 6
    assert len({tuple(np.bincount(p, minlength=5)) for p in picks}) == 6  # the counts too
    assert np.array_equal(solve_fast(sc, 3).columns["endpoint"], picks[3])
    assert np.array_equal(run(sc, 3).columns["endpoint"], picks[3])
    # the ports are the stream's ("ports", client, service, n) draws
    ports = first_ports(Streams(3).generator("ports", "client-0", "web", 0), 250)
    assert len(np.unique(ports)) == 250  # within one pass through the range: no port twice
    route = stream_route(sc, sc.streams[0], "a1")
    choose = route.picker.chooser(route.endpoints, np.random.default_rng(0), [])
    flows = [(ip_key("10.244.9.2") << 16) | p for p in ports.tolist()]
    want = [int(route.endpoints[choose(f)].pod.split("-")[1]) for f in flows]
    result = solve_fast(sc, 3)
    got = result.columns["endpoint"][result.columns["stream"] == 0]
    assert [int(result.pod_names[e].split("-")[1]) for e in got] == want
