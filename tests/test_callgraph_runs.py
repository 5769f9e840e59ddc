"""Call graphs on the event path (``sim.engine.calls``) against queueing theory and against the contract's counts.

Theory checks take R replications at fixed seeds, drop each replication's first quarter (the warm-up), and accept
the grand mean within 3 standard errors of the replication means (the estimator's own sampling error, not a tuned
margin); each must reject, on the same data, the wrong model it names. The network is instantaneous (every link
0 s) so the formulas of ``sim.callgraph`` apply as they stand.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
from scipy import stats

from sim.callgraph import (
    Call,
    CallGraph,
    CallMode,
    Connection,
    Parallel,
    ServiceCalls,
    fork_join_mean_s,
    sync_call_mean_s,
    thinned_rate_rps,
)
from sim.cluster import Discipline, Endpoint, Pod, Service, ServicePort
from sim.distributions import Constant, Dist, Exponential
from sim.errors import SpecError
from sim.facade import choose, simulate
from sim.outcomes import DropReason, Outcome
from sim.records import RunResult
from sim.rpc import Retries
from sim.scenario import Scenario, Stream, Sync
from sim.timeline import Action, Event
from sim.workload import Poisson, Trace
from tests.conftest import call_tree, check_theory, star

R = 6
N = 8000
ZERO = Constant(0.0)


def app(
    lam: float, front: Dist, calls: ServiceCalls, backends: dict[str, Dist], n: int = N, *, empty: str = ""
) -> Scenario:
    """A Poisson client (lam/s) into Service ``fe`` (one pod of ``front`` work that never queues: 10^6 workers)
    making ``calls``; each other Service one single-worker pod of its own service time (``empty``: a Service with
    no pod); every hop 0 s."""
    pods = [
        Pod("client", "n", "10.0.0.2", {"app": "client"}),
        Pod("fe-1", "n", "10.0.0.3", {"app": "fe"}, service_time=front, concurrency=10**6),
    ]
    for i, (s, d) in enumerate(backends.items()):
        pods.append(Pod(f"{s}-1", "n", f"10.0.1.{i + 2}", {"app": s}, service_time=d))
    return Scenario(
        name="calls",
        topology=star(["n"], hop=ZERO, same_node=ZERO),
        pods=tuple(pods),
        services=(
            Service("fe", {"app": "fe"}),
            *(Service(s, {"app": s}) for s in backends),
            *((Service(empty, {"app": "none"}),) if empty else ()),
        ),
        streams=(Stream("client", "fe", Poisson(lam), n),),
        call_graph=CallGraph({"fe": calls}),
    )


def of(result: RunResult, service: str) -> np.ndarray:
    """The rows of ``service``'s records (a callee's: the calls it received)."""
    return result.columns["service"] == result.service_names.index(service)


def replicate(sc: Scenario) -> tuple[float, float]:
    """Grand mean and standard error over R seeds of the entry Service's mean latency (s) after the warm-up."""
    values = []
    for rep in range(R):
        r = simulate(sc, 500 + rep)
        lat = r.latency_s[of(r, "fe")]
        values.append(float(np.mean(lat[len(lat) // 4 :])))
    return float(np.mean(values)), float(np.std(values, ddof=1) / math.sqrt(R))


def test_sync_call_graphs_take_the_event_path_and_fast_is_refused_with_the_reason():
    """A sync caller whose workers can run out waits for its calls: its queue depends on its callees, so no
    tier-by-tier solution; one that never runs out of workers, and an async one, are solved without events
    (``sim.callsolver``)."""
    sc = app(1.0, ZERO, ServiceCalls(stages=(Call("a"),)), {"a": ZERO}, n=10)
    assert (choose(sc, "auto").path, choose(sc, "des").path) == ("fast", "solver")  # 10^6 workers, 10 requests
    sc = replace(sc, pods=(sc.pods[0], replace(sc.pods[1], concurrency=9), *sc.pods[2:]))
    reason = "service fe makes sync calls: pod fe-1's 9 workers wait for them and up to 10 requests can reach it"
    assert choose(sc, "auto").path == "events"
    assert (choose(sc, "des").events_needed or "").startswith(reason)
    with pytest.raises(ValueError, match=reason):
        choose(sc, "fast")
    async_sc = app(1.0, ZERO, ServiceCalls(CallMode.ASYNC, (Call("a"),)), {"a": ZERO}, n=10)
    assert (choose(async_sc, "auto").path, choose(async_sc, "des").path) == ("fast", "solver")


@pytest.mark.statistical
@pytest.mark.parametrize("mode", [CallMode.SYNC, CallMode.ASYNC])
def test_two_way_fork_join_of_mm1_queues_nelson_tantawi(mode):
    """Nelson & Tantawi (1988): E[T] = (12 - rho)/8 / (mu - lambda); not one queue's 1/(mu - lambda), not the
    sum of two 2/(mu - lambda)."""
    lam, mu = 0.5, 1.0
    calls = ServiceCalls(mode, (Parallel((Call("a"), Call("b"))),))
    sc = app(lam, ZERO, calls, {"a": Exponential(1 / mu), "b": Exponential(1 / mu)})
    grand, se = replicate(sc)
    check_theory(grand, se, fork_join_mean_s(lam, mu), {"one queue": 1 / (mu - lam), "the sum": 2 / (mu - lam)})


@pytest.mark.statistical
def test_a_sync_call_into_mm1_behind_an_unqueued_front_pod():
    """E[S1] + 1/(mu - lambda); not the callee alone, not the callee unqueued (E[S1] + 1/mu)."""
    lam, mu, s1 = 0.5, 1.0, 0.3
    sc = app(lam, Exponential(s1), ServiceCalls(CallMode.SYNC, (Call("b"),)), {"b": Exponential(1 / mu)})
    grand, se = replicate(sc)
    theory = sync_call_mean_s(s1, lam, mu)
    check_theory(grand, se, theory, {"the callee alone": 1 / (mu - lam), "the callee unqueued": s1 + 1 / mu})


@pytest.mark.statistical
def test_a_call_with_probability_p_is_a_bernoulli_thinned_poisson_stream():
    """The calls' count is Binomial(N, p) (within 3 sd; not N, the unthinned stream) and their gaps are
    exponential of rate p x lambda (Kolmogorov-Smirnov at 0.001; rejecting rate lambda)."""
    lam, p, n = 2.0, 0.3, 20_000
    sc = app(lam, ZERO, ServiceCalls(stages=(Call("b", probability=p),)), {"b": ZERO}, n=n)
    r = simulate(sc, 7)
    sent = np.sort(r.columns["t_sent"][of(r, "b")])
    sd = math.sqrt(n * p * (1 - p))
    assert abs(len(sent) - n * p) < 3 * sd, (len(sent), n * p, sd)
    assert abs(len(sent) - n) > 3 * sd
    gaps = np.diff(sent)
    rate = thinned_rate_rps(lam, p)
    assert stats.kstest(gaps, "expon", args=(0, 1 / rate)).pvalue > 0.001
    assert stats.kstest(gaps, "expon", args=(0, 1 / lam)).pvalue < 0.001


def test_counts_follow_count_exactly_in_sequence_and_at_once():
    """``count = 3`` in a stage: three calls, each sent when the previous one returned; ``count = 2`` inside
    ``parallel``: two calls sent at the same instant; every call's parent is its request, its trace the request."""
    calls = ServiceCalls(stages=(Call("a", count=3), Parallel((Call("b", count=2), Call("a")))))
    sc = app(5.0, Exponential(0.01), calls, {"a": Exponential(0.01), "b": Exponential(0.01)}, n=200)
    r = simulate(sc, 3)
    fe = np.flatnonzero(of(r, "fe"))
    assert len(fe) == 200 and (r.outcome == Outcome.OK).all()
    assert r.parent is not None and (r.parent[fe] == -1).all()
    for row in fe:
        kids = np.flatnonzero(r.parent == row)
        assert (r.trace()[kids] == row).all()
        svc = np.array(r.service_names)[r.columns["service"][kids]].tolist()
        assert svc == ["a", "a", "a", "b", "b", "a"]
        sent, back = r.columns["t_sent"][kids], r.columns["t_returned"][kids]
        assert (sent[1:3] >= back[0:2]).all() and sent[3] >= back[2]
        assert sent[3] == sent[4] == sent[5]
        assert r.columns["t_returned"][row] >= back.max()


def test_a_failed_call_fails_its_parent_with_the_callees_reason_unless_optional():
    """A callee with no endpoint (its selector matches no pod): the parent fails with that call's reason; the
    same call ``optional`` leaves the parent OK."""
    for optional, want in ((False, Outcome.DROPPED), (True, Outcome.OK)):
        calls = ServiceCalls(stages=(Call("a"), Call("b", optional=optional)))
        sc = app(5.0, ZERO, calls, {"a": ZERO}, n=50, empty="b")
        r = simulate(sc, 1)
        fe, b = of(r, "fe"), of(r, "b")
        assert (r.outcome[fe] == want).all()
        assert b.sum() == 50 and (r.outcome[b] == Outcome.DROPPED).all()
        if not optional:
            assert (r.columns["reason"][fe] == r.columns["reason"][b]).all()
            assert DropReason(int(r.columns["reason"][fe][0])) != DropReason.NONE


def test_a_call_past_its_timeout_is_retried_then_times_its_parent_out_unless_optional():
    """``timeout_s`` and ``retries`` as on a stream: a callee taking 1 s against a 0.1 s deadline times out on
    each of its 1 + 2 attempts (one request, attempts 0, 1, 2, each sent after the previous timed out); the parent
    times out with it, or replies OK where the call is ``optional``."""
    for optional, want in ((False, Outcome.TIMEOUT), (True, Outcome.OK)):
        call = Call("a", timeout_s=0.1, retries=Retries(attempts=2), optional=optional)
        sc = app(0.1, ZERO, ServiceCalls(stages=(call,)), {"a": Constant(1.0)}, n=5)
        r = simulate(sc, 2)
        fe, a = np.flatnonzero(of(r, "fe")), np.flatnonzero(of(r, "a"))
        assert (r.outcome[fe] == want).all()
        assert len(a) == 15 and (r.outcome[a] == Outcome.TIMEOUT).all()
        for row in fe:
            kids = np.flatnonzero(r.parent == row)
            assert r.columns["attempt"][kids].tolist() == [0, 1, 2]
            assert (r.columns["request"][kids] == kids[0]).all()
            sent, back = r.columns["t_sent"][kids], r.columns["t_returned"][kids]
            assert np.allclose(back - sent, 0.1) and (sent[1:] >= back[:-1]).all()


def _ps_front(sc: Scenario, limit: int | None = None) -> Scenario:
    """``sc`` with its front pod (fe-1) one CPU shared by processor sharing."""
    fe = replace(sc.pods[1], discipline=Discipline.PS, concurrency=1, queue_limit=limit)
    return replace(sc, pods=(sc.pods[0], fe, *sc.pods[2:]))


def test_a_processor_sharing_pod_waiting_on_sync_calls_leaves_the_cpu_but_stays_held():
    """A thread per request: a request waiting for its sync calls uses no CPU, so the others share the CPU without
    it, but it is held (it counts toward the requests the pod holds) until its calls join, when it is finished.
    Request 1 (1 s of work from t=0) calls b (5 s) from t=1 to 6; request 2 arrives at 1.5 and has the CPU to
    itself: its work is done at 2.5, not at 3.0 (a half share), and its call waits for b until 11; with a queue
    limit of 0 the waiting request fills the pod and request 2 is refused."""
    calls = ServiceCalls(CallMode.SYNC, (Call("b"),))
    sc = app(1.0, Constant(1.0), calls, {"b": Constant(5.0)}, n=2)
    sc = replace(sc, streams=(Stream("client", "fe", Trace((0.0, 1.5)), 2),))
    r = simulate(_ps_front(sc), 1)
    assert r.columns["t_sent"][of(r, "b")].tolist() == [1.0, 2.5]  # each call leaves when its own work is done
    assert r.columns["t_finished"][of(r, "fe")].tolist() == [6.0, 11.0]  # request 2's call queues behind 1's
    full = simulate(_ps_front(sc, limit=0), 1)
    assert full.columns["reason"][of(full, "fe")].tolist() == [0, int(DropReason.QUEUE_FULL)]


@pytest.mark.statistical
def test_a_processor_sharing_front_with_sync_calls_is_mm1_ps_on_its_own_work_plus_the_callee():
    """A PS front of one CPU whose requests' waits for their sync calls take no CPU is an M/M/1-PS queue on its own
    work (mean 1/(mu1 - lambda)); its departures are Poisson (M/M/1-PS is quasi-reversible), so the callee is an
    M/M/1 queue: E[T] = 1/(mu1 - lambda) + 1/(mu2 - lambda). Not the front unqueued (1/mu1 + 1/(mu2 - lambda)),
    and not the waiting request keeping its share (one PS queue of both works: 1/(1/(1/mu1 + 1/mu2) - lambda))."""
    lam, mu1, mu2 = 0.5, 1.0, 2.0
    calls = ServiceCalls(CallMode.SYNC, (Call("b"),))
    sc = _ps_front(app(lam, Exponential(1 / mu1), calls, {"b": Exponential(1 / mu2)}))
    grand, se = replicate(sc)
    theory = 1 / (mu1 - lam) + 1 / (mu2 - lam)
    wrong = {
        "the front unqueued": 1 / mu1 + 1 / (mu2 - lam),
        "the waiting request keeping its share": 1 / (1 / (1 / mu1 + 1 / mu2) - lam),
    }
    check_theory(grand, se, theory, wrong)


def _changing(events: tuple[Event, ...], mode: CallMode) -> Scenario:
    """A call tree (fe calls a) over three nodes, with a timeline; proxies sync at once."""
    graph = {"fe": ServiceCalls(mode, (Call("a"),))}
    work = {"fe": Exponential(0.002), "a": Exponential(0.002)}
    sc = call_tree(graph, work, workloads=(Poisson(400.0),), requests=800)
    return replace(sc, timeline=events, sync=Sync(0.0))


@pytest.mark.parametrize("mode", list(CallMode))
def test_calls_are_routed_by_the_control_plane_state_at_their_send_time(mode):
    """A timeline in a call graph: a call is routed by its node's proxy as of its send time, as a client's request
    is. Service a turns internalTrafficPolicy Local at 1 s: calls sent before spread over a's three pods (two of
    three cross nodes, within 3 binomial standard deviations), calls sent after stay on the calling pod's node,
    with the new control-plane version."""
    r = simulate(
        _changing((Event(1.0, Action.UPDATE, service="a", changes={"internal_traffic_policy": "Local"}),), mode), 5
    )
    assert r.engine == "events" and "timeline" in (r.events_needed or "")
    calls = of(r, "a")
    sent, version = r.columns["t_sent"][calls], r.columns["version"][calls]
    cross = r.columns["client_node"][calls] != r.columns["endpoint_node"][calls]
    before, after = sent < 1.0, sent > 1.0
    assert before.sum() > 100 and after.sum() > 100
    assert (version[before] == 0).all() and (version[after] == 1).all()
    # a's pods are one a node and Cluster picks one uniformly, so a call crosses nodes with probability 2/3: the
    # count is Binomial(n, 2/3), accepted within 3 of its standard deviations
    n = int(before.sum())
    assert abs(cross[before].sum() - n * 2 / 3) < 3 * math.sqrt(n * 2 / 3 * (1 - 2 / 3)), (cross[before].sum(), n)
    assert not cross[after].any()
    assert (r.columns["outcome"] == int(Outcome.OK)).all()


@pytest.mark.parametrize("mode", list(CallMode))
def test_a_calling_pod_that_stops_fails_its_requests_and_makes_no_more_calls(mode):
    """Node n1 dies at 1 s: fe-n1's requests in progress fail (their calls' replies come to nobody) and it sends no
    call after; a-n1's calls in progress fail, failing their parents with the node's reason. Every request is
    accounted for (completed, or dropped with its reason)."""
    r = simulate(_changing((Event(1.0, Action.FAIL, node="n1", detect_s=0.5),), mode), 5)
    sent, client = r.columns["t_sent"], r.columns["client"]
    fe_n1 = r.pod_names.index("fe-n1")
    assert not ((client == fe_n1) & (sent > 1.0)).any()
    fe = of(r, "fe")
    failed = fe & (r.columns["reason"] == int(DropReason.NODE_FAILED))
    assert failed.any() and (r.columns["outcome"][failed] == int(Outcome.DROPPED)).all()
    assert (r.columns["outcome"] != int(Outcome.IN_FLIGHT)).all()
    assert ((r.columns["outcome"] == int(Outcome.OK)) == (r.columns["reason"] == 0)).all()


def test_a_call_names_a_service_port_and_routes_to_the_endpoints_with_that_port():
    """A call names a port of a multi-port Service (``port = "grpc"``), and is routed as a client stream of that
    port is: only endpoints whose EndpointSlice has the port serve it (kube-proxy's ``ServicePortName``). Pod a-2
    serves http only, so every grpc call lands on a-1, while http calls spread over both."""
    for port, want in (("grpc", {"a-1"}), ("http", {"a-1", "a-2"})):
        sc = app(5.0, ZERO, ServiceCalls(stages=(Call("a"),)), {"a": ZERO}, n=200)
        a2 = Pod("a-2", "n", "10.0.1.9", {"app": "a"}, service_time=ZERO)
        svc = Service("a", {"app": "a"}, port=80, port_name="http", other_ports=(ServicePort("grpc", 9000),))
        both = (("grpc", 9000), ("http", 80))
        given = (Endpoint("10.0.1.2:80", pod="a-1", ports=both), Endpoint("10.0.1.9:80", pod="a-2", ports=both[1:]))
        sc = replace(
            sc,
            pods=(*sc.pods, a2),
            services=(sc.services[0], svc),
            given_endpoints={"a": given},
            call_graph=CallGraph({"fe": ServiceCalls(stages=(Call("a", port=port),))}),
        )
        r = simulate(sc, 2)
        served = {r.pod_names[i] for i in r.columns["endpoint"][of(r, "a")]}
        assert served == want, port
    with pytest.raises(SpecError, match=r"has no port 'nope'; it has \['http', 'grpc'\]"):
        replace(sc, call_graph=CallGraph({"fe": ServiceCalls(stages=(Call("a", port="nope"),))}))


def _pinning(connection: Connection, callers: int = 240, backends: int = 4) -> tuple[list[set[int]], np.ndarray]:
    """``callers`` fe pods (a few requests each) each calling ``be`` (``backends`` pods) once a request, every call
    on ``connection``: per calling pod the set of be pods its calls reached, and per be pod how many calling pods
    its first call reached."""
    pods = [Pod("client", "n", "10.0.0.2", {"app": "client"})]
    pods += [Pod(f"fe-{i}", "n", f"10.0.{1 + i // 200}.{2 + i % 200}", {"app": "fe"}) for i in range(callers)]
    pods += [Pod(f"be-{i}", "n", f"10.1.0.{2 + i}", {"app": "be"}) for i in range(backends)]
    calls = ServiceCalls(CallMode.SYNC, (Call("be", connection=connection),))
    sc = Scenario(
        name="pinning",
        topology=star(["n"], hop=ZERO, same_node=ZERO),
        pods=tuple(pods),
        services=(Service("fe", {"app": "fe"}), Service("be", {"app": "be"})),
        streams=(Stream("client", "fe", Poisson(100.0), 10 * callers),),
        call_graph=CallGraph({"fe": calls}),
    )
    r = simulate(sc, 11)
    call = np.flatnonzero(r.parent >= 0)
    caller, endpoint = r.columns["endpoint"][r.parent[call]], r.columns["endpoint"][call]
    reached = [set(endpoint[caller == p].tolist()) for p in np.unique(caller)]
    first = endpoint[np.unique(caller, return_index=True)[1]]
    return reached, np.bincount(first - first.min(), minlength=backends)


def test_per_pod_connections_pin_each_calling_pod_and_spread_the_pods_uniformly():
    """gRPC's channel keeps one HTTP/2 connection per calling pod and callee and multiplexes its calls on it, so
    the proxy (kube-proxy's iptables ``statistic --mode random`` here) picks a backend once per calling pod:
    ``per_pod`` sends every call of a pod to one backend, and the first picks of the 240 calling pods are uniform
    over the 4 backends (chi-square, 3 degrees of freedom, accepted below its 0.001 critical value). Fails on the
    per-call model: there a calling pod's calls (10 on average) reach several backends."""
    reached, first = _pinning(Connection.PER_POD)
    assert len(reached) > 200 and all(len(r) == 1 for r in reached)
    statistic = float(stats.chisquare(first).statistic)
    assert statistic < stats.chi2.ppf(0.999, df=len(first) - 1), first
    per_call, _ = _pinning(Connection.PER_CALL)
    assert sum(len(r) > 1 for r in per_call) > 0.9 * len(per_call)  # the wrong model fails the pinning check
