"""The vectorised fast path: when it is exact, its records, and that it agrees with the DES in distribution.

The equivalence tests run the DES at R seeds and the fast path at 4R other seeds, then ask (1) chi-square
homogeneity of the pooled per-endpoint counts (scipy.stats.chi2_contingency), p > 0.01, and (2) that the fast
path's mean over its replications of each replication's mean and p99 latency lies in the DES replications' 99% t
confidence interval. A deliberately wrong fast path (service 10% slower, no queueing wait, a skewed picker) must
fail the same comparison on the same DES data, so the tests can fail.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import math
from collections.abc import Callable, Sequence
from typing import ClassVar

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats

import sim.routing.pickers
import sim.solver
from sim.cluster import Discipline, Endpoint, Pod, Service, SessionAffinity, TrafficPolicy
from sim.distributions import Constant, Exponential, LogNormal
from sim.engine import run
from sim.experiment.analysis import summarize_service
from sim.facade import simulate
from sim.outcomes import DropReason, Outcome
from sim.queueing import fifo_serve
from sim.records import COLUMNS, PICK_FRESH, RunResult
from sim.routing import PICKERS, Chooser, DataplaneConfig
from sim.scenario import Connections, ExternalClient, Retries, Scenario, Stream, Target
from sim.solver import events_needed, lindley_starts
from sim.timeline import Action, Event
from sim.workload import ClosedLoop, ConstantRate, Poisson, Trace
from tests.conftest import TIME_COLUMNS, rounding_drift_s, solve_fast, star
from tests.test_queueing import reference

LOCAL = TrafficPolicy.LOCAL


def small(
    *,
    stream: Stream | None = None,
    service: Service | None = None,
    concurrency: int = 1,
    queue_limit: int | None = None,
    dataplane: DataplaneConfig = DataplaneConfig(),
    timeline: tuple[Event, ...] = (),
    duration_s: float | None = None,
    service_time: Exponential = Exponential(0.01),
    discipline: Discipline = Discipline.FIFO,
) -> Scenario:
    """A client on node a calling Service 'svc', whose backends run on nodes a and b."""
    pods = (
        Pod("client", "a", "10.244.0.2", {"app": "client"}),
        Pod(
            "svc-a",
            "a",
            "10.244.0.3",
            {"app": "svc"},
            service_time=service_time,
            concurrency=concurrency,
            discipline=discipline,
        ),
        Pod("svc-b", "b", "10.244.1.2", {"app": "svc"}, service_time=service_time, queue_limit=queue_limit),
    )
    return Scenario(
        name="small",
        topology=star(["a", "b"]),
        pods=pods,
        services=(service or Service("svc", {"app": "svc"}),),
        streams=(stream or Stream("client", "svc", Poisson(20.0), 200),),
        dataplane=dataplane,
        timeline=timeline,
        duration_s=duration_s,
    )


# --- when the fast path is exact ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("scenario", "words"),
    [
        (lambda: small(), None),
        (lambda: small(stream=Stream("client", "svc", ConstantRate(10.0), 50)), None),
        (lambda: small(stream=Stream("client", "svc", Trace((0.0, 0.5, 0.7)))), None),
        (lambda: small(dataplane=DataplaneConfig("ipvs")), None),  # round-robin
        (lambda: small(dataplane=DataplaneConfig("ipvs", picker="maglev")), None),
        (lambda: small(dataplane=DataplaneConfig("ipvs", picker="source-hash")), None),
        (lambda: small(stream=Stream("client", "svc", ClosedLoop(), 50)), "closed loop"),
        (lambda: small(timeline=(Event(1.0, Action.TERMINATE, pod="svc-b"),)), "timeline"),
        (lambda: small(stream=Stream("client", "svc", Poisson(5.0), 50, timeout_s=1.0)), "request timeout"),
        (lambda: small(stream=Stream("client", "svc", Poisson(5.0), 50, retries=Retries(2))), "retries"),
        (
            lambda: small(stream=Stream("client", "svc", Poisson(5.0), 50, connections=Connections(5))),
            "keeps connections alive",
        ),
        (
            lambda: small(service=Service("svc", {"app": "svc"}, session_affinity=SessionAffinity.CLIENT_IP)),
            "sessionAffinity",
        ),
        (lambda: small(dataplane=DataplaneConfig("ipvs", picker="least-connections")), "live connection counts"),
        (lambda: small(dataplane=DataplaneConfig("iptables", picker="power-of-two")), "live connection counts"),
        (lambda: small(concurrency=4), None),  # FIFO with several workers: the free-time recursion
        (lambda: small(concurrency=4, discipline=Discipline.PS), "4 workers among up to 200 requests"),
        (lambda: small(concurrency=200, discipline=Discipline.PS), None),  # more workers than requests: no sharing
        (
            lambda: small(
                concurrency=10**6,
                discipline=Discipline.PS,
                stream=Stream("client", "svc", Poisson(5.0)),
                duration_s=10.0,
            ),
            "unbounded",
        ),
        (lambda: small(concurrency=4, queue_limit=10), None),  # fifo_serve refuses as the queue events do
        (
            lambda: small(concurrency=101, stream=Stream("client", "svc", ConstantRate(10.0)), duration_s=10.0),
            None,
        ),
        (lambda: small(queue_limit=10), None),
    ],
)
def test_fast_path_problem_names_each_condition(scenario: Callable[[], Scenario], words: str | None) -> None:
    problem = events_needed(scenario())
    if words is None:
        assert problem is None
    else:
        assert problem is not None and words in problem and "\n" not in problem


def test_processor_sharing_is_exact_only_with_more_workers_than_requests() -> None:
    base = small()
    for concurrency, words in ((1, "processor sharing"), (200, None)):
        pods = tuple(
            dataclasses.replace(p, discipline=Discipline.PS, concurrency=concurrency) if p.name == "svc-b" else p
            for p in base.pods
        )
        problem = events_needed(dataclasses.replace(base, pods=pods))
        assert problem is None if words is None else (problem is not None and words in problem)


def test_the_exact_solver_on_a_processor_sharing_pod_that_never_queues_is_the_event_path_to_rounding() -> None:
    """A processor-sharing pod with more CPUs than requests it can ever hold: no events are needed, and the exact
    solver finishes each request its service time after its arrival, where the event path's running credit of
    work reaches the same instant within rounding (``rounding_drift_s``), not to the bit; everything else equal."""
    base = small(stream=Stream("client", "svc", Poisson(80.0), 200))
    pods = tuple(
        dataclasses.replace(p, discipline=Discipline.PS, concurrency=200) if p.name == "svc-b" else p for p in base.pods
    )
    sc = dataclasses.replace(base, pods=pods)
    solved, events = simulate(sc, 4, "des"), run(sc, 4)
    assert solved.engine == "solver" and events.engine == "events"
    drift = rounding_drift_s(events)
    for name, column in events.columns.items():
        if name in TIME_COLUMNS:
            np.testing.assert_allclose(solved.columns[name], column, rtol=0, atol=drift, err_msg=name)
        else:
            assert np.array_equal(solved.columns[name], column), name


def test_queue_limits_refuse_in_the_fast_way_as_in_the_event_path() -> None:
    """One single-worker pod with a queue limit of 2, overloaded, behind constant links: no draw decides the pick
    or the trips, the arrivals are common random numbers and both ways take the pod's service draws in arrival
    order, one per admitted request, through ``fifo_serve``; so the fast way refuses, starts and finishes every
    request as the event path does, to the bit (the wrong model, a Lindley queue without the limit, would refuse
    none)."""
    base = small(queue_limit=2, stream=Stream("client", "svc", Poisson(400.0), 4000))
    pods = tuple(dataclasses.replace(p, labels={"app": "other"}) if p.name == "svc-a" else p for p in base.pods)
    sc = dataclasses.replace(base, pods=pods)
    fast, des = solve_fast(sc, 5), run(sc, 5)
    refused = fast.columns["reason"] == int(DropReason.QUEUE_FULL)
    assert refused.sum() > 1000 and np.all(fast.columns["outcome"][refused] == int(Outcome.DROPPED))
    for name in ("t_arrived", "t_started", "t_finished", "t_returned", "outcome", "reason", "endpoint"):
        assert fast.columns[name].tobytes() == des.columns[name].tobytes(), name


def test_run_fast_refuses_a_scenario_it_cannot_do_exactly() -> None:
    with pytest.raises(ValueError, match="closed loop"):
        solve_fast(small(stream=Stream("client", "svc", ClosedLoop(), 50)), 1)


# --- records --------------------------------------------------------------------------------------------------------


def test_records_have_the_des_columns_and_invariants() -> None:
    r = solve_fast(small(stream=Stream("client", "svc", Poisson(80.0), 3000)), 3)
    c = r.columns
    assert list(c) == list(COLUMNS) and all(c[k].dtype == COLUMNS[k] for k in COLUMNS)
    assert len(r) == 3000 and r.counts()["ok"] == 3000
    assert np.array_equal(c["request"], np.arange(3000)) and np.all(c["pick"] == PICK_FRESH)
    assert np.all(np.diff(c["t_sent"]) >= 0)
    steps = [c[k] for k in ("t_sent", "t_arrived", "t_started", "t_finished", "t_returned")]
    assert all(np.all(b >= a) for a, b in itertools.pairwise(steps))
    for pod in (1, 2):  # one worker: FIFO, never two in service at once, starts on arrival or at the last finish
        mine = np.flatnonzero(c["endpoint"] == pod)
        mine = mine[np.argsort(c["t_arrived"][mine], kind="stable")]
        started, finished = c["t_started"][mine], c["t_finished"][mine]
        assert np.all(started[1:] >= finished[:-1] - 1e-9)
        expect = np.maximum(c["t_arrived"][mine][1:], finished[:-1])
        assert np.allclose(started[1:], expect, rtol=0, atol=1e-9)
    assert r.end_s == c["t_returned"].max()
    # the monitors: busy time per pod is the service time it did
    for pod in (1, 2):
        mine = c["endpoint"] == pod
        assert math.isclose(
            r.monitors["busy_mean"][pod] * r.monitors["window_s"][pod],
            float(np.sum(c["t_finished"][mine] - c["t_started"][mine])),
            rel_tol=1e-9,
        )


def test_same_send_times_as_the_des_under_one_seed() -> None:
    """Arrivals are drawn from the DES's keys, so both engines see the same sends (common random numbers)."""
    pods = (
        Pod("c1", "a", "10.244.0.2", {"app": "client"}),
        Pod("c2", "b", "10.244.1.2", {"app": "client"}),
        Pod("web", "b", "10.244.1.3", {"app": "web"}),
    )
    streams = (
        Stream("c1", "web", Poisson(30.0)),
        Stream("c1", "web", ConstantRate(7.0), start_s=0.25),
        Stream("c2", "web", Trace((0.0, 0.1, 0.1, 2.0, 9.0, 30.0))),
        Stream("c2", "web", Poisson(3.0), 40),
        Stream("c2", "web", Poisson(3.0), start_s=25.0),  # starts after the end: sends nothing
    )
    sc = Scenario("sends", star(["a", "b"]), pods, (Service("web", {"app": "web"}),), streams, duration_s=20.0)
    fast, des = solve_fast(sc, 11), run(sc, 11)
    sent = [fast.columns["t_sent"][fast.columns["stream"] == k] for k in range(len(streams))]
    assert [len(s) > 0 for s in sent] == [True, True, True, True, False]
    for k, a in enumerate(sent):
        assert np.array_equal(a, np.sort(des.columns["t_sent"][des.columns["stream"] == k]))
    assert fast.end_s == des.end_s == 20.0


@pytest.mark.parametrize("few", [0, 10**9], ids=["complex running maximum", "per-queue running maximum"])
def test_lindley_starts_match_the_recursion(few: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Both ways of taking the per-queue running maximum: one over complex numbers (many queues), one per queue
    (few)."""
    monkeypatch.setattr(sim.solver, "_FEW_QUEUES", few)
    rng = np.random.default_rng(5)
    segment = np.repeat(np.arange(4), [1, 300, 50, 400])
    arrived = np.concatenate([np.sort(rng.uniform(0, s, k)) for s, k in ((1, 1), (30, 300), (100, 50), (5, 400))])
    service = rng.exponential(0.1, len(arrived))
    expect = np.empty_like(arrived)
    free = -math.inf
    for i in range(len(arrived)):  # D_n = max(D_{n-1}, A_n) + S_n, restarting per queue
        if i == 0 or segment[i] != segment[i - 1]:
            free = -math.inf
        expect[i] = max(free, arrived[i])
        free = expect[i] + service[i]
    got = lindley_starts(segment, arrived, service)
    assert np.allclose(got, expect, rtol=0, atol=1e-9)
    idle = expect == arrived
    assert idle.sum() > 50 and np.array_equal(got[idle], arrived[idle])  # no wait is exactly no wait
    assert np.all(got[~idle] > arrived[~idle])


@pytest.mark.parametrize("picker", ["round-robin", "maglev", "source-hash"])
def test_deterministic_pickers_pick_as_the_des_does(picker: str) -> None:
    """No draw decides these picks, and sends match under one seed, so the endpoints match request for request."""
    pods = (
        Pod("c1", "a", "10.244.0.2", {"app": "client"}),
        Pod("c2", "a", "10.244.0.4", {"app": "client"}),
        *(Pod(f"web-{i}", "ab"[i % 2], f"10.244.{i % 2}.{10 + i}", {"app": "web"}) for i in range(5)),
    )
    streams = (Stream("c1", "web", Poisson(50.0), 400), Stream("c2", "web", Poisson(30.0), 300))
    sc = Scenario(
        "picks",
        star(["a", "b"]),
        pods,
        (Service("web", {"app": "web"}),),
        streams,
        dataplane=DataplaneConfig("ipvs", picker=picker),
    )
    fast, des = solve_fast(sc, 2), run(sc, 2)
    assert np.array_equal(fast.columns["t_sent"], des.columns["t_sent"])
    assert np.array_equal(fast.columns["endpoint"], des.columns["endpoint"])
    assert len(np.unique(fast.columns["endpoint"])) > 1


@dataclasses.dataclass(frozen=True)
class EveryOther:
    """A picker with no vector form in the fast path: endpoint 0, then the last, in turn, per proxy."""

    name: ClassVar[str] = "every-other"
    deterministic: ClassVar[bool] = True
    needs_load: ClassVar[bool] = False
    what_if: ClassVar[bool] = True  # no dataplane's mode: every dataplane accepts it

    def shares(self, endpoints: Sequence[Endpoint], client_ip: str | None = None) -> np.ndarray:
        out = np.zeros(len(endpoints))
        out[[0, -1]] += 0.5
        return out

    def chooser(self, endpoints: Sequence[Endpoint], rng: np.random.Generator, load: Sequence[int]) -> Chooser:
        turn = itertools.cycle((0, len(endpoints) - 1))
        return lambda flow: next(turn)

    def picks(self, endpoints: Sequence[Endpoint], size: int, rng: object, flows: object) -> np.ndarray | None:
        """No vector form: the fast path runs the chooser."""
        return None


def test_a_picker_without_a_vector_form_runs_its_own_chooser(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(PICKERS, EveryOther.name, EveryOther)  # type: ignore[arg-type]
    sc = small(stream=Stream("client", "svc", Poisson(50.0), 300), dataplane=DataplaneConfig(picker="every-other"))
    fast, des = solve_fast(sc, 7), run(sc, 7)
    assert np.array_equal(fast.columns["endpoint"], des.columns["endpoint"])
    assert np.array_equal(fast.columns["endpoint"][:4], [1, 2, 1, 2])


def test_route_drops_fail_as_in_the_des() -> None:
    """iTP=Local with no local endpoint drops (the client waits for its connect timeout); no endpoints rejects."""
    pods = (
        Pod("client", "a", "10.244.0.2", {"app": "client"}),
        Pod("web-b", "b", "10.244.1.3", {"app": "web"}),
    )
    services = (Service("web", {"app": "web"}, internal_traffic_policy=LOCAL), Service("none", {"app": "none"}))
    streams = (
        Stream("client", "web", Poisson(10.0), 30, connect_timeout_s=3.0),
        Stream("client", "none", Poisson(10.0), 20),
    )
    sc = Scenario("drops", star(["a", "b"]), pods, services, streams)
    assert events_needed(sc) is None
    fast, des = solve_fast(sc, 4), run(sc, 4)
    for r in (fast, des):
        assert r.counts()["dropped"] == 50
        assert r.drops() == {"no_local_endpoints": 30, "no_endpoints": 20}
    for k, wait in ((0, 3.0), (1, 0.0)):
        assert np.allclose(fast.latency_s[fast.columns["stream"] == k], wait)
    assert np.array_equal(fast.columns["endpoint"], des.columns["endpoint"])
    assert np.array_equal(fast.columns["hops"], des.columns["hops"])
    assert fast.end_s == des.end_s


def test_one_worker_queues_and_more_workers_than_requests_do_not() -> None:
    r = solve_fast(small(concurrency=200, stream=Stream("client", "svc", Poisson(150.0), 200)), 8)
    c = r.columns
    many, one = c["endpoint"] == 1, c["endpoint"] == 2
    assert many.any() and one.any()
    assert np.array_equal(c["t_started"][many], c["t_arrived"][many])
    assert np.any(c["t_started"][one] > c["t_arrived"][one])


def test_entry_nodes_endpoints_and_hops_agree_with_the_des() -> None:
    """Every (stream, entry node, endpoint, hops) the fast path produces is one the DES produces, and vice versa."""
    sc = mixed()
    fast, des = solve_fast(sc, 3), run(sc, 3)

    def seen(r: RunResult) -> set[tuple[int, ...]]:
        keys = ("stream", "entry_node", "endpoint", "hops", "source_preserved", "client_node", "endpoint_node")
        return set(zip(*(r.columns[k].tolist() for k in keys), strict=True))

    assert seen(fast) == seen(des)


def test_the_horizon_leaves_requests_in_flight() -> None:
    # requests far beyond what fits before the horizon: only those that do are drawn
    sc = small(stream=Stream("client", "svc", Poisson(150.0), 10**12), duration_s=5.0, service_time=Exponential(0.02))
    r = solve_fast(sc, 9)
    c = r.columns
    assert r.end_s == 5.0 and np.all(c["t_sent"] < 5.0)
    for k in ("t_arrived", "t_started", "t_finished", "t_returned"):
        assert not np.any(c[k] >= 5.0)
    in_flight = c["outcome"] == Outcome.IN_FLIGHT
    assert in_flight.any() and np.array_equal(in_flight, np.isnan(c["t_returned"]))
    assert np.all(c["outcome"][~in_flight] == Outcome.OK)


def test_summarize_service_reads_a_fast_result() -> None:
    r = solve_fast(small(stream=Stream("client", "svc", Poisson(20.0), 2000)), 6)
    s = summarize_service(r, "svc")
    assert s.sent == s.completed == 2000 and s.violations == 0 and s.chi_square.n == 2000
    assert set(s.by_endpoint) == {"svc-a", "svc-b"} and s.pickers == ["random"]
    assert set(s.pods) == {"svc-a", "svc-b"} and 0 < s.pods["svc-a"].utilization < 1
    assert s.latency_parts_s.queue_wait >= 0 and s.latency_s.p99 > s.latency_s.p50


# --- statistically indistinguishable from the DES ----------------------------------------------------------------

R_DES, R_FAST = 10, 40
DES_SEEDS = range(100, 100 + R_DES)
FAST_SEEDS = range(1000, 1000 + R_FAST)
ALPHA = 0.01


def mm1() -> Scenario:
    """(a) One Poisson client (0.7/s) to one single-worker pod (exponential, mean 1 s) two random hops away."""
    pods = (
        Pod("client", "a", "10.0.0.2", {"app": "c"}),
        Pod("server", "b", "10.0.1.2", {"app": "s"}, service_time=Exponential(1.0)),
    )
    return Scenario(
        "mm1",
        star(["a", "b"], hop=Exponential(0.05)),
        pods,
        (Service("s", {"app": "s"}),),
        (Stream("client", "s", Poisson(0.7), 4000),),
    )


def infinite() -> Scenario:
    """(b) A Poisson client (50/s) to a pod with more workers than requests: log-normal service, no queueing."""
    pods = (
        Pod("client", "a", "10.0.0.2", {"app": "c"}),
        Pod("server", "b", "10.0.1.2", {"app": "s"}, service_time=LogNormal(0.02, 1.0), concurrency=3000),
    )
    return Scenario(
        "infinite",
        star(["a", "b"], hop=Exponential(0.001)),
        pods,
        (Service("s", {"app": "s"}),),
        (Stream("client", "s", Poisson(50.0), 3000),),
    )


def mixed() -> Scenario:
    """(c) Four single-worker backends on three nodes behind a Cluster, an iTP=Local and an eTP=Local Service
    (random picker), called by two pods and by an external client through a load balancer over every node."""
    web = {"app": "web"}
    pods = (
        Pod("client-a", "a", "10.244.0.2", {"app": "client"}),
        Pod("client-b", "b", "10.244.1.2", {"app": "client"}),
        Pod("web-a1", "a", "10.244.0.3", web, service_time=Exponential(0.1)),
        Pod("web-a2", "a", "10.244.0.4", web, service_time=Exponential(0.1)),
        Pod("web-b", "b", "10.244.1.3", web, service_time=Exponential(0.1)),
        Pod("web-c", "c", "10.244.2.3", web, service_time=Exponential(0.1)),
    )
    services = (
        Service("web", web),
        Service("web-local", web, internal_traffic_policy=LOCAL),
        Service("web-ext", web, external_traffic_policy=LOCAL, load_balancer_ips=("198.51.100.7",)),
    )
    streams = (
        Stream("client-b", "web", Poisson(4.0), 1500),
        Stream("client-a", "web-local", Poisson(4.0), 1500),
        Stream("user", "web-ext", Poisson(6.0), 1500, target=Target.LOAD_BALANCER),
    )
    return Scenario(
        "mixed",
        star(["a", "b", "c"], hop=Exponential(0.002), same_node=Exponential(0.0002), internet=Constant(0.01)),
        pods,
        services,
        streams,
        external_clients=(ExternalClient("user", "internet", "203.0.113.9"),),
    )


def mmc() -> Scenario:
    """(d) One Poisson client (2.4/s) to one three-worker FIFO pod (exponential, mean 1 s): M/M/3 at load 0.8,
    where most requests wait for a worker."""
    pods = (
        Pod("client", "a", "10.0.0.2", {"app": "c"}),
        Pod("server", "b", "10.0.1.2", {"app": "s"}, service_time=Exponential(1.0), concurrency=3),
    )
    return Scenario(
        "mmc",
        star(["a", "b"], hop=Exponential(0.05)),
        pods,
        (Service("s", {"app": "s"}),),
        (Stream("client", "s", Poisson(2.4), 4000),),
    )


SCENARIOS = {"mm1": mm1, "infinite": infinite, "mixed": mixed, "mmc": mmc}


@dataclasses.dataclass(frozen=True)
class Replications:
    """Per replication: mean and p99 latency (s) of completed requests; pooled per-endpoint counts per Service."""

    mean_s: np.ndarray
    p99_s: np.ndarray
    counts: dict[str, np.ndarray]


def replicate(engine: Callable[[Scenario, int], RunResult], scenario: Scenario, seeds: range) -> Replications:
    means, p99s = [], []
    counts = {s.name: np.zeros(len(scenario.pods), dtype=np.int64) for s in scenario.services}
    for seed in seeds:
        r = engine(scenario, seed)
        c = r.columns
        ok = c["outcome"] == Outcome.OK
        assert ok.all()
        latency = r.latency_s
        means.append(latency.mean())
        p99s.append(np.percentile(latency, 99))
        for i, name in enumerate(r.service_names):
            counts[name] += np.bincount(c["endpoint"][c["service"] == i], minlength=len(r.pod_names))
    return Replications(np.array(means), np.array(p99s), counts)


@functools.cache
def des(name: str) -> Replications:
    """The DES replications of a scenario, computed once for the right and the wrong fast paths."""
    return replicate(run, SCENARIOS[name](), DES_SEEDS)


def ci99(values: np.ndarray) -> tuple[float, float]:
    """The 99% t confidence interval of the mean of replication values."""
    half = stats.t.ppf(1 - ALPHA / 2, len(values) - 1) * values.std(ddof=1) / math.sqrt(len(values))
    return float(values.mean() - half), float(values.mean() + half)


def disagreements(reference: Replications, fast: Replications) -> list[str]:
    """What tells the fast path from the DES: a homogeneity p-value <= 0.01, or a latency outside the 99% CI."""
    found = []
    for service, des_counts in reference.counts.items():
        table = np.array([des_counts, fast.counts[service]])
        table = table[:, table.sum(axis=0) > 0]
        if table.shape[1] > 1:
            p = stats.chi2_contingency(table).pvalue
            if p <= ALPHA:
                found.append(f"{service}: endpoint counts differ (p={p:.2g})")
    for stat in ("mean_s", "p99_s"):
        lo, hi = ci99(getattr(reference, stat))
        value = float(getattr(fast, stat).mean())
        if not lo <= value <= hi:
            found.append(f"{stat} {value:.5g} outside the DES's 99% CI [{lo:.5g}, {hi:.5g}]")
    return found


@pytest.mark.statistical
@pytest.mark.parametrize("name", list(SCENARIOS))
def test_fast_path_is_indistinguishable_from_the_des(name: str) -> None:
    scenario = SCENARIOS[name]()
    assert events_needed(scenario) is None
    assert disagreements(des(name), replicate(solve_fast, scenario, FAST_SEEDS)) == []


def slower(scenario: Scenario) -> Scenario:
    """The scenario with every backend's mean service time 10% longer (a service rate about 9% too low)."""

    def scaled(pod: Pod) -> Pod:
        d = pod.service_time
        return dataclasses.replace(pod, service_time=dataclasses.replace(d, mean_s=d.mean_s * 1.1))  # type: ignore[type-var]

    return dataclasses.replace(scenario, pods=tuple(scaled(p) for p in scenario.pods))


@pytest.mark.statistical
@pytest.mark.parametrize("name", list(SCENARIOS))
def test_a_fast_path_with_service_10_percent_off_is_told_apart(name: str) -> None:
    wrong = replicate(solve_fast, slower(SCENARIOS[name]()), FAST_SEEDS)
    assert any("mean_s" in d for d in disagreements(des(name), wrong))


@pytest.mark.statistical
def test_a_fast_path_that_skips_the_wait_is_told_apart(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sim.solver, "lindley_starts", lambda segment, arrived, service: arrived)
    wrong = replicate(solve_fast, mm1(), FAST_SEEDS)
    found = disagreements(des("mm1"), wrong)
    assert any("mean_s" in d for d in found) and any("p99_s" in d for d in found)


@pytest.mark.statistical
def test_a_fast_path_with_a_skewed_picker_is_told_apart(monkeypatch: pytest.MonkeyPatch) -> None:
    def skewed(rng: np.random.Generator, n: int, size: int) -> np.ndarray:
        weights = np.ones(n)
        weights[0] = 1.15  # the first endpoint 15% likelier than the others
        return rng.choice(n, size, p=weights / weights.sum())

    monkeypatch.setattr(sim.routing.pickers, "uniform_slots", skewed)
    found = disagreements(des("mixed"), replicate(solve_fast, mixed(), FAST_SEEDS))
    assert any(d.startswith("web:") for d in found) and any(d.startswith("web-local:") for d in found)


@pytest.mark.statistical
def test_a_fast_path_that_skips_the_wait_at_multi_worker_pods_is_told_apart(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sim.solver, "fifo_serve", lambda arrived, service, workers, limit=None: (arrived, arrived))
    found = disagreements(des("mmc"), replicate(solve_fast, mmc(), FAST_SEEDS))
    assert any("mean_s" in d for d in found) and any("p99_s" in d for d in found)


@given(
    st.lists(st.tuples(st.floats(0, 10), st.floats(0, 3)), min_size=1, max_size=60),
    st.integers(1, 4),
)
def test_fifo_serve_and_lindley_starts_match_a_worker_by_worker_simulation(jobs, workers):
    """Against a plain list of worker free times (no heap, no limit: ``tests/test_queueing.py`` adds queue limits):
    FIFO, each job to the earliest-free worker; one worker also by Lindley's closed form."""
    jobs.sort()
    arrived, service = np.array([a for a, _ in jobs]), np.array([s for _, s in jobs])
    expected = [start for start, _ in reference(jobs, workers, None)]
    assert fifo_serve(arrived.tolist(), iter(service.tolist()), workers)[0] == expected
    if workers == 1:  # Lindley's closed form sums the services (n roundings): within n ulps of the largest time
        largest = float(arrived.max() + service.sum())
        drift = 4 * len(jobs) * np.finfo(float).eps * max(largest, 1.0)
        np.testing.assert_allclose(lindley_starts(np.zeros(len(jobs), int), arrived, service), expected, atol=drift)


@given(st.lists(st.one_of(st.floats(0, 1e6), st.sampled_from([0.0, -0.0, 1.0, 2.0])), max_size=40))
def test_time_order_is_the_stable_float_order(times):
    """Equal times keep their row order; -0.0 (its sign bit set) falls back to the float sort."""
    from sim.workload import time_order

    t = np.array(times, dtype=float)
    assert time_order(t).tolist() == np.argsort(t, kind="stable").tolist()
