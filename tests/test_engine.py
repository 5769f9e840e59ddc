"""The SimPy engine: request life, records, outcomes, determinism."""

from dataclasses import replace

import numpy as np
import pytest

from sim.callgraph import Call, CallMode, Parallel, ServiceCalls
from sim.cluster import Pod, Service, TrafficPolicy
from sim.distributions import Constant, Dist, Exponential
from sim.engine import run
from sim.facade import simulate
from sim.outcomes import DropReason, Outcome
from sim.scenario import Scenario, Stream
from sim.workload import ClosedLoop, ConstantRate, Poisson, Trace
from tests.conftest import (
    TIME_COLUMNS,
    assert_same_call_records,
    call_tree,
    rounding_drift_s,
    star,
    two_node_scenario,
)

LOCAL, CLUSTER = TrafficPolicy.LOCAL, TrafficPolicy.CLUSTER


def test_every_request_sent_completes_without_a_horizon():
    r = run(two_node_scenario(requests=500), seed=1)
    assert len(r) == 500
    assert r.counts() == {"in_flight": 0, "ok": 500, "dropped": 0, "timeout": 0}


def test_times_are_ordered_along_the_request():
    c = run(two_node_scenario(requests=300, workload=Poisson(500.0)), seed=2).columns
    assert np.all(c["t_sent"] <= c["t_arrived"])
    assert np.all(c["t_arrived"] <= c["t_started"])
    assert np.all(c["t_started"] <= c["t_finished"])
    assert np.all(c["t_finished"] <= c["t_returned"])


def test_local_never_leaves_the_node():
    c = run(two_node_scenario(LOCAL, requests=400), seed=3).columns
    assert np.all(c["endpoint_node"] == c["client_node"])
    assert np.all(c["hops"] == 0)


def test_cluster_crosses_nodes_with_hops():
    c = run(two_node_scenario(CLUSTER, requests=400), seed=3).columns
    remote = c["endpoint_node"] != c["client_node"]
    assert remote.any() and (~remote).any()
    assert np.all(c["hops"][remote] == 2)  # a -> bridge -> b


@pytest.mark.parametrize(
    ("dataplane", "reason", "delay_s"),
    [
        ("iptables", DropReason.NO_LOCAL_ENDPOINTS, 127.0),
        ("nftables", DropReason.NO_LOCAL_ENDPOINTS, 127.0),
        ("cilium", DropReason.NO_BACKENDS, 0.0),
    ],
)
def test_local_without_local_endpoint_drops_with_the_dataplanes_reason(dataplane, reason, delay_s):
    r = run(two_node_scenario(LOCAL, dataplane=dataplane, local_backend=False, requests=5), seed=4)
    c = r.columns
    assert np.all(c["outcome"] == Outcome.DROPPED)
    assert np.all(c["reason"] == reason)
    assert np.all(c["endpoint"] == -1)
    # closed loop: each attempt fails after the connect timeout (DROP) or at once (EHOSTUNREACH)
    assert np.allclose(c["t_returned"] - c["t_sent"], delay_s)
    assert r.drops() == {reason.label: 5}


def test_no_endpoints_anywhere_is_refused_at_once():
    r = run(two_node_scenario(CLUSTER, local_backend=False, remote_backend=False, requests=3), seed=5)
    assert np.all(r.columns["reason"] == DropReason.NO_ENDPOINTS)
    assert np.all(r.latency_s == 0)


def test_closed_loop_has_one_request_in_flight():
    c = run(two_node_scenario(requests=200), seed=6).columns
    assert np.all(c["t_sent"][1:] >= c["t_returned"][:-1])


def test_closed_loop_think_time():
    from sim.distributions import Constant

    c = run(two_node_scenario(requests=50, workload=ClosedLoop(Constant(0.5))), seed=6).columns
    assert np.allclose(c["t_sent"][1:] - c["t_returned"][:-1], 0.5)


def test_constant_rate_and_trace_send_times():
    c = run(two_node_scenario(requests=4, workload=ConstantRate(10.0)), seed=7).columns
    assert np.allclose(c["t_sent"], [0.1, 0.2, 0.3, 0.4])
    c = run(two_node_scenario(requests=None, workload=Trace((0.0, 0.5, 0.5, 2.0))), seed=7).columns
    assert np.allclose(np.sort(c["t_sent"]), [0.0, 0.5, 0.5, 2.0])


def test_requests_cap_a_trace():
    assert len(run(two_node_scenario(requests=2, workload=Trace((0.0, 0.5, 1.0))), seed=7)) == 2


def test_horizon_leaves_requests_in_flight():
    from sim.distributions import Constant

    sc = two_node_scenario(requests=None, workload=Poisson(100.0), service_time=Constant(0.05), duration_s=1.0)
    r = run(sc, seed=8)
    counts = r.counts()
    assert counts["in_flight"] > 0
    assert counts["ok"] + counts["in_flight"] + counts["dropped"] == len(r)
    assert np.all(np.isnan(r.columns["t_returned"][r.outcome == Outcome.IN_FLIGHT]))
    assert r.end_s == 1.0


def test_same_seed_same_records_other_seed_differs():
    sc = two_node_scenario(requests=300, workload=Poisson(200.0))
    a, b, c = run(sc, 9), run(sc, 9), run(sc, 10)
    for name in a.columns:
        assert np.array_equal(a.columns[name], b.columns[name], equal_nan=True)
    assert not np.array_equal(a.columns["t_sent"], c.columns["t_sent"])


def test_common_random_numbers_across_policies():
    """Cluster and Local under one seed see identical arrival times (the arrival stream is keyed by client)."""
    a = run(two_node_scenario(CLUSTER, requests=200, workload=Poisson(50.0)), 11).columns
    b = run(two_node_scenario(LOCAL, requests=200, workload=Poisson(50.0)), 11).columns
    assert np.array_equal(a["t_sent"], b["t_sent"])


def test_records_are_compact():
    r = run(two_node_scenario(requests=10), 1)
    assert r.nbytes_per_request() <= 100


# --- routing features through the engine ---------------------------------------------------------------------

from sim.cluster import SessionAffinity  # noqa: E402
from sim.experiment.analysis import summarize_service  # noqa: E402
from sim.records import PICK_AFFINITY, PICK_FRESH, PICK_REUSED  # noqa: E402
from sim.routing import DataplaneConfig  # noqa: E402
from sim.scenario import Connections, ExternalClient, Target  # noqa: E402


def three_node(service: Service, streams, *, dataplane="iptables", pods=None, external=()):
    pods = pods or [
        Pod("client", "a", "10.244.0.2", {"app": "client"}),
        Pod("web-a", "a", "10.244.0.3", {"app": "web"}),
        Pod("web-b", "b", "10.244.1.3", {"app": "web"}),
        Pod("web-c", "c", "10.244.2.3", {"app": "web"}),
    ]
    topo = star(["a", "b", "c"], internet=Constant(0.01))
    return Scenario(
        name="three",
        topology=topo,
        pods=tuple(pods),
        services=(service,),
        streams=tuple(streams),
        dataplane=DataplaneConfig(dataplane),
        external_clients=tuple(external),
    )


def test_session_affinity_sticks_until_the_timeout_since_the_last_connection():
    svc = Service("web", {"app": "web"}, session_affinity=SessionAffinity.CLIENT_IP, session_affinity_timeout_s=1.0)
    # a request every 0.6 s keeps refreshing the 1 s window: one fresh pick, then affinity all the way
    r = run(three_node(svc, [Stream("client", "web", ConstantRate(1 / 0.6), 20)]), 1)
    c = r.columns
    assert c["pick"][0] == PICK_FRESH and np.all(c["pick"][1:] == PICK_AFFINITY)
    assert len(set(c["endpoint"].tolist())) == 1
    # a request every 1.5 s outlives the window: every connection is a fresh draw
    r = run(three_node(svc, [Stream("client", "web", ConstantRate(1 / 1.5), 60)]), 1)
    assert np.all(r.columns["pick"] == PICK_FRESH)
    assert len(set(r.columns["endpoint"].tolist())) == 3


def test_keep_alive_rides_one_connection_for_max_requests():
    conn = Connections(max_requests=10)
    r = run(
        three_node(Service("web", {"app": "web"}), [Stream("client", "web", ClosedLoop(), 100, connections=conn)]), 2
    )
    c = r.columns
    assert np.count_nonzero(c["pick"] == PICK_FRESH) == 10
    assert np.count_nonzero(c["pick"] == PICK_REUSED) == 90
    for start in range(0, 100, 10):
        assert len(set(c["endpoint"][start : start + 10].tolist())) == 1
    s = summarize_service(r, "web")
    assert s.chi_square.n == 10 and s.picks.reused_connection == 90


def test_keep_alive_max_age():
    conn = Connections(max_requests=1000, max_age_s=0.35)
    r = run(
        three_node(Service("web", {"app": "web"}), [Stream("client", "web", ConstantRate(10), 20, connections=conn)]), 2
    )
    fresh_times = r.columns["t_sent"][r.columns["pick"] == PICK_FRESH]
    assert np.allclose(fresh_times, [0.1, 0.5, 0.9, 1.3, 1.7])


@pytest.mark.parametrize(("etp", "local_only"), [(LOCAL, True), (CLUSTER, False)])
def test_external_load_balancer_spreads_over_nodes(etp, local_only):
    svc = Service("web", {"app": "web"}, external_traffic_policy=etp, load_balancer_ips=("198.51.100.7",))
    stream = Stream("user", "web", Poisson(500.0), 3000, target=Target.LOAD_BALANCER)
    r = run(three_node(svc, [stream], external=[ExternalClient("user", "internet", "203.0.113.9")]), 3)
    c = r.columns
    assert set(np.unique(c["entry_node"]).tolist()) == {0, 1, 2}
    assert np.all(c["client_node"] == -1)
    same = c["endpoint_node"] == c["entry_node"]
    assert np.all(same) if local_only else (~same).any()
    assert np.all(c["source_preserved"] == (1 if local_only else 0))
    assert summarize_service(r, "web").violations == 0


def test_etp_local_drops_on_nodes_without_endpoints_unless_health_checked():
    svc = Service("web", {"app": "web"}, external_traffic_policy=LOCAL, load_balancer_ips=("198.51.100.7",))
    pods = [Pod("web-a", "a", "10.244.0.3", {"app": "web"})]
    ext = [ExternalClient("user", "internet", "203.0.113.9")]
    blind = Stream("user", "web", Poisson(100.0), 600, target=Target.LOAD_BALANCER, connect_timeout_s=3.0)
    r = run(three_node(svc, [blind], pods=pods, external=ext), 4)
    dropped = r.columns["outcome"] == Outcome.DROPPED
    # the LB picks each node with p = 1/3 and 2 of 3 have no local endpoint: Binomial(600, 2/3), within 4 SE
    assert abs(dropped.mean() - 2 / 3) < 4 * (2 / 3 * 1 / 3 / 600) ** 0.5
    assert np.all(r.columns["entry_node"][dropped] != 0)
    assert np.allclose(r.latency_s[dropped], 3.0)
    checked = Stream("user", "web", Poisson(100.0), 600, target=Target.LOAD_BALANCER, health_checks=True)
    r = run(three_node(svc, [checked], pods=pods, external=ext), 4)
    assert r.counts()["dropped"] == 0 and np.all(r.columns["entry_node"] == 0)


def test_node_port_enters_at_the_named_node():
    svc = Service("web", {"app": "web"}, node_port=30080)
    stream = Stream("user", "web", Poisson(100.0), 200, target=Target.NODE_PORT, node="b")
    r = run(three_node(svc, [stream], external=[ExternalClient("user", "internet", "203.0.113.9")]), 5)
    assert np.all(r.columns["entry_node"] == 1)
    assert np.all(r.columns["hops"][r.columns["endpoint_node"] == 1] == 2)  # internet -> br -> b, then same node


def test_terminating_pods_serve_only_when_nothing_is_ready():
    pods = [
        Pod("client", "a", "10.244.0.2", {"app": "client"}),
        Pod("web-a", "a", "10.244.0.3", {"app": "web"}, terminating=True),
        Pod("web-b", "b", "10.244.1.3", {"app": "web"}),
    ]
    r = run(three_node(Service("web", {"app": "web"}), [Stream("client", "web", ClosedLoop(), 100)], pods=pods), 6)
    assert set(r.columns["endpoint"].tolist()) == {2}
    pods[2] = Pod("web-b", "b", "10.244.1.3", {"app": "web"}, ready=False)
    r = run(three_node(Service("web", {"app": "web"}), [Stream("client", "web", ClosedLoop(), 100)], pods=pods), 6)
    assert set(r.columns["endpoint"].tolist()) == {1}  # terminating but serving: the fallback


# --- load, failures and a changing cluster --------------------------------------------------------------------


from sim.scenario import Retries, Sync  # noqa: E402
from sim.timeline import Action, Event  # noqa: E402


def test_request_timeout_records_timeout_and_the_backend_still_works():
    sc = two_node_scenario(requests=5, service_time=Constant(2.0), remote_backend=False)
    sc = replace(sc, streams=(Stream("client", "svc", ClosedLoop(), 5, timeout_s=0.5),))
    c = run(sc, 1).columns
    assert np.all(c["outcome"] == Outcome.TIMEOUT)
    assert np.allclose(c["t_returned"] - c["t_sent"], 0.5)
    assert np.all(c["t_finished"][:1] > c["t_returned"][:1])  # the work went on after the client gave up
    assert np.allclose(np.diff(c["t_sent"]), 0.5)  # the closed loop moved on at each timeout


def test_retries_are_linked_records_with_backoff():
    sc = two_node_scenario(LOCAL, local_backend=False, requests=4, dataplane="cilium")
    retries = Retries(attempts=2, base_s=0.1, max_s=1.0)
    sc = replace(sc, streams=(Stream("client", "svc", ClosedLoop(), 4, retries=retries),))
    c = run(sc, 2).columns
    assert len(c["request"]) == 12  # 4 requests x 3 attempts, all failing at once (EHOSTUNREACH)
    assert np.array_equal(c["attempt"], np.tile([0, 1, 2], 4))
    assert np.array_equal(c["request"], np.repeat(c["request"][::3], 3))
    gaps = c["t_sent"][1:3] - c["t_returned"][0:2]
    assert 0 <= gaps[0] <= 0.1 and 0 <= gaps[1] <= 0.2  # full jitter below base * 2**k


def test_queue_full_is_refused():
    pods = (
        Pod("client", "a", "10.244.0.2", {"app": "client"}),
        Pod("svc-a", "a", "10.244.0.3", {"app": "svc"}, service_time=Constant(1.0), queue_limit=1),
    )
    sc = two_node_scenario(requests=10, workload=ConstantRate(100.0))
    sc = replace(sc, pods=pods)
    r = run(sc, 3)
    c = r.columns
    # one in service, one waiting, the other eight refused within the first second
    assert r.counts()["ok"] == 2 and r.drops() == {"queue_full": 8}
    assert np.all(c["t_returned"][c["outcome"] == Outcome.DROPPED] < 1.0)


def dying_scenario(policy, *, lag_s: float, grace_s: float = 2.0):
    """Client and one backend on node a, one on b; the pod on a is deleted at t=5 s."""
    sc = two_node_scenario(
        policy, requests=None, workload=Poisson(100.0), duration_s=12.0, service_time=Constant(0.001)
    )
    return replace(
        sc,
        timeline=(Event(5.0, Action.TERMINATE, pod="svc-a", grace_s=grace_s),),
        sync=Sync(lag_s),
        streams=(Stream("client", "svc", Poisson(100.0), None, connect_timeout_s=1.0),),
    )


def test_cluster_moves_to_the_remote_pod_without_failures_when_the_lag_is_within_the_grace():
    r = run(dying_scenario(CLUSTER, lag_s=0.5), 4)
    c = r.columns
    assert r.counts()["dropped"] == 0
    late = c["t_sent"] > 5.5  # after the proxy synced, only the remote pod
    assert np.all(c["endpoint"][late] == 2)
    assert np.any(c["endpoint"][(c["t_sent"] > 5.0) & (c["t_sent"] < 5.5)] == 1)  # still served while terminating


def test_local_fails_from_the_moment_the_endpoint_is_gone():
    r = run(dying_scenario(LOCAL, lag_s=0.5), 4)
    c = r.columns
    failed = c["outcome"] == Outcome.DROPPED
    assert not failed[c["t_sent"] < 7.0].any()  # terminating but serving: the local fallback (doc (e))
    assert np.all(c["outcome"][c["t_sent"] > 7.0] != Outcome.OK)  # gone at 5 + 2 s (the last still in flight)
    assert failed[(c["t_sent"] > 7.0) & (c["t_sent"] < 10.9)].all()
    reasons = set(c["reason"][failed].tolist())
    assert reasons <= {DropReason.STALE_ENDPOINT, DropReason.NO_LOCAL_ENDPOINTS, DropReason.BACKEND_GONE}
    after_sync = (c["t_sent"] > 7.6) & failed
    assert after_sync.any() and np.all(c["reason"][after_sync] == DropReason.NO_LOCAL_ENDPOINTS)


def test_cluster_with_a_lag_longer_than_the_grace_fails_only_in_between():
    r = run(dying_scenario(CLUSTER, lag_s=3.0, grace_s=1.0), 5)
    c = r.columns
    failed = c["outcome"] == Outcome.DROPPED
    assert failed.any()
    assert np.all((c["t_sent"][failed] >= 6.0 - 0.01) & (c["t_sent"][failed] <= 8.0))  # gone at 6, synced at 8
    assert set(c["reason"][failed].tolist()) <= {DropReason.STALE_ENDPOINT, DropReason.BACKEND_GONE}


def test_node_failure_kills_in_flight_and_is_noticed_after_detection():
    sc = two_node_scenario(CLUSTER, requests=None, workload=Poisson(50.0), duration_s=20.0, service_time=Constant(0.5))
    sc = replace(
        sc,
        timeline=(Event(5.0, Action.FAIL, node="b", detect_s=4.0),),
        sync=Sync(0.5),
        streams=(Stream("client", "svc", Poisson(50.0), None, connect_timeout_s=1.0, timeout_s=2.0),),
        pods=tuple(replace(p, concurrency=100) for p in sc.pods),
    )
    c = run(sc, 6).columns
    to_b = c["endpoint_node"] == 1
    hit = to_b & (c["t_sent"] > 4.6) & (c["t_sent"] < 9.4)
    assert np.all(c["outcome"][hit] != Outcome.OK)  # in flight at the failure, or sent to b before detection
    assert not np.any(to_b & (c["t_sent"] > 9.6))  # detected at 9 s, synced at 9.5 s: b no longer chosen
    assert np.all(c["outcome"][~to_b & (c["t_sent"] < 19)] == Outcome.OK)


def test_service_update_switches_policy_after_the_lag():
    sc = two_node_scenario(CLUSTER, requests=None, workload=Poisson(200.0), duration_s=4.0)
    update = Event(2.0, Action.UPDATE, service="svc", changes={"internal_traffic_policy": LOCAL})
    sc = replace(sc, timeline=(update,), sync=Sync(0.25))
    c = run(sc, 7).columns
    assert np.any(c["endpoint_node"][c["t_sent"] < 2.0] == 1)
    assert np.all(c["endpoint_node"][c["t_sent"] > 2.25] == 0)
    assert set(np.unique(c["version"]).tolist()) == {0, 1}


def _overloaded_fifo(duration_s: float | None) -> Scenario:
    """Open loop into two-worker FIFO pods with a queue limit of 3, overloaded, over random network delays."""
    base = two_node_scenario(requests=4000, workload=Poisson(6000.0), duration_s=duration_s)
    pods = tuple(replace(p, concurrency=2, queue_limit=3) if p.name.startswith("svc") else p for p in base.pods)
    return replace(base, pods=pods)


@pytest.mark.parametrize("duration_s", [None, 0.4])
def test_the_exact_solver_writes_the_records_of_the_full_event_run_to_the_bit(duration_s):
    """Open loop into multi-worker FIFO pods with a queue limit, overloaded: no events are needed, so ``des``
    takes the event-free solver's exact way (its sends, then each pod's arrivals by the free-time recursion), which
    admits, refuses and starts each request as the queue events do, the horizon cutting the same steps: every
    column byte for byte, against the event path with and without its shortcuts."""
    scenario = _overloaded_fifo(duration_s)
    solved = simulate(scenario, 9, "des")
    assert (solved.engine, solved.events_needed) == ("solver", None)  # the way under test
    assert solved.counts()["dropped"] > 100  # the queue limit did refuse requests
    if duration_s is not None:
        assert solved.counts()["in_flight"] > 0
    for events in (run(scenario, seed=9), run(scenario, seed=9, shortcuts=False)):
        assert events.engine == "events"
        assert solved.end_s == events.end_s
        for name, column in events.columns.items():
            got = solved.columns[name]
            assert column.dtype == got.dtype and column.tobytes() == got.tobytes(), name


def test_an_exact_solver_whose_pods_never_queue_would_be_caught(monkeypatch):
    """The test above can fail: pods that start every request on arrival (no waiting for a worker) give other
    records."""
    import sim.solver

    def no_wait(arrived, service, workers, limit=None):
        starts = list(arrived)
        return starts, [a + s for a, s in zip(starts, service, strict=False)]

    scenario = _overloaded_fifo(None)
    full = run(scenario, seed=9, shortcuts=False)
    monkeypatch.setattr(sim.solver, "fifo_serve", no_wait)
    wrong = simulate(scenario, 9, "des")
    assert not np.array_equal(wrong.columns["t_finished"], full.columns["t_finished"], equal_nan=True)


def test_a_processor_sharing_pod_that_can_queue_runs_on_events_and_says_why():
    """A processor-sharing pod that can hold more requests than CPUs needs events: ``des`` runs the event path,
    the RunResult says so and why, and the shortcuts agree with the full event run within rounding."""
    from sim.cluster import Discipline

    scenario = _overloaded_fifo(0.4)
    pods = tuple(replace(p, discipline=Discipline.PS) if p.name == "svc-b" else p for p in scenario.pods)
    scenario = replace(scenario, pods=pods)
    fast = simulate(scenario, 9, "des")
    assert fast.engine == "events" and "processor sharing" in (fast.events_needed or "")
    full = run(scenario, seed=9, shortcuts=False)
    drift = rounding_drift_s(full)
    assert fast.end_s == pytest.approx(full.end_s, abs=drift)
    for name, column in full.columns.items():
        if name in TIME_COLUMNS:
            np.testing.assert_allclose(fast.columns[name], column, rtol=0, atol=drift, err_msg=name)
        else:
            assert np.array_equal(fast.columns[name], column), name
    assert np.array_equal(fast.columns["t_sent"], full.columns["t_sent"])  # the schedule's sums are the ticks'


# --- the closed-loop lane (sim.engine.lane): one callback per request where it can be -------------------------


def _lane_scenario(think: Dist, *, concurrency: int = 1, queue_limit: int | None = None) -> Scenario:
    """Eight closed-loop clients into four pods over 0 s links, picked at random: the lane's case (a request
    arrives, is served and replies in its send's callback)."""
    clients = [f"c{k}" for k in range(8)]
    backends = [f"b{k}" for k in range(4)]
    topo = star([f"n-{name}" for name in clients + backends], hop=Constant(0.0), same_node=Constant(0.0))
    pods = tuple(
        Pod(
            name,
            f"n-{name}",
            f"10.244.{i}.2",
            {"app": "b" if name in backends else "c"},
            service_time=Exponential(0.5),
            concurrency=1 if name in clients else concurrency,
            queue_limit=None if name in clients else queue_limit,
        )
        for i, name in enumerate(clients + backends)
    )
    streams = tuple(Stream(c, "svc", ClosedLoop(think), requests=400) for c in clients)
    return Scenario("lane", topo, pods, (Service("svc", {"app": "b"}),), streams, duration_s=None)


@pytest.mark.parametrize(
    ("think", "concurrency", "queue_limit"),
    [(Constant(0.0), 1, None), (Constant(0.0), 2, 1), (Exponential(2.0), 1, None), (Exponential(2.0), 2, 1)],
)
def test_the_lane_agrees_with_the_full_event_run_to_rounding(think, concurrency, queue_limit):
    """The lane (a request arriving, served and replying in its send's callback, its reply folded into the next
    send) against the run with every step an event: every pick, pod, outcome and drop the same, times within
    ``rounding_drift_s`` (a computed finish plus the trip back is the same sum in another order); single-worker
    pods, and two-worker pods whose full queue refuses requests; with and without think times."""
    scenario = _lane_scenario(think, concurrency=concurrency, queue_limit=queue_limit)
    lane, full = run(scenario, seed=5), run(scenario, seed=5, shortcuts=False)
    assert lane.counts()["ok"] > 0 and (queue_limit is None or lane.counts()["dropped"] > 0)
    drift = rounding_drift_s(full)
    assert abs(lane.end_s - full.end_s) <= drift
    for name, column in full.columns.items():
        if name in TIME_COLUMNS:
            np.testing.assert_allclose(lane.columns[name], column, rtol=0, atol=drift, err_msg=name)
        else:
            assert np.array_equal(lane.columns[name], column), name


# --- call graphs without events (sim.callsolver) ------------------------------------------------------------------

ASYNC = CallMode.ASYNC
SHOP = {  # fe: a, then b twice and c (optional) at once; a: d with probability 0.5
    "fe": ServiceCalls(ASYNC, (Call("a"), Parallel((Call("b", count=2), Call("c", optional=True))))),
    "a": ServiceCalls(ASYNC, (Call("d", probability=0.5),)),
}


@pytest.mark.parametrize(
    ("work", "options"),
    [
        (
            {"fe": Constant(0.001), "a": Constant(0.002), "b": Constant(0.001), "c": Constant(0.0), "d": Constant(0.0)},
            {"workloads": (ConstantRate(500.0), ConstantRate(500.0))},
        ),
        (
            {s: Exponential(0.002) for s in ("fe", "a", "b", "c", "d")},
            {"policies": {"c": LOCAL, "d": LOCAL}, "missing": ("c", "d")},
        ),
        (
            {s: Exponential(0.002) for s in ("fe", "a", "b", "c", "d")},
            {
                "workloads": (Poisson(3000.0),),
                "queue_limit": 0,
                "duration_s": 0.1,
                "policies": {"d": LOCAL},
                "missing": ("d",),
            },
        ),
        (
            {s: Exponential(0.002) for s in ("fe", "a", "b", "c", "d")},
            {"sync": True, "front_workers": 300, "queue_limit": 1, "policies": {"c": LOCAL}, "missing": ("c",)},
        ),
    ],
    ids=["constant-times-ties", "local-drops", "queue-full-horizon", "sync-front-never-full"],
)
def test_the_exact_solver_writes_a_call_trees_records_to_the_bit(work, options):
    """An async call tree of FIFO pods (a chain, a fan-out with ``count``, a call with a probability, an optional
    call, Local drops, refusals by full queues, the horizon) needs no events: ``des`` solves it tier by tier
    (``sim.callsolver``) and writes the event path's records byte for byte, span links (``parent``) included;
    with constant times, two clients tick at the same instants, so ties are ordered as SimPy orders them. So does
    a sync front whose pods have a worker for every request that can reach them (300 workers, 300 requests)."""
    graph = dict(SHOP)
    if options.pop("sync", False):
        graph["fe"] = replace(graph["fe"], mode=CallMode.SYNC)
    scenario = call_tree(graph, work, **options)
    solved = simulate(scenario, 11, "des")
    assert solved.events_needed is None
    assert_same_call_records(solved, run(scenario, seed=11))
    counts = solved.counts()
    if "missing" in options:
        assert counts["dropped"] > 20  # the Local drops fail calls (and, where not optional, their parents)
    if options.get("duration_s"):
        assert counts["in_flight"] > 0
    fast = simulate(scenario, 11, "fast")  # no vector form for call graphs: the fast way is the exact way
    assert fast.engine == "fast" and fast.columns["t_returned"].tobytes() == solved.columns["t_returned"].tobytes()


def test_a_call_tree_solver_whose_pods_never_queue_would_be_caught(monkeypatch):
    """The test above can fail: callee pods that start every call on arrival give other records."""
    import sim.callsolver

    def no_wait(arrived, service, workers, limit=None):
        starts = list(arrived)
        return starts, [a + s for a, s in zip(starts, service, strict=False)]

    scenario = call_tree(SHOP, {s: Exponential(0.002) for s in ("fe", "a", "b", "c", "d")})
    events = run(scenario, seed=11)
    monkeypatch.setattr(sim.callsolver, "fifo_serve", no_wait)
    wrong = simulate(scenario, 11, "des")
    assert not np.array_equal(wrong.columns["t_finished"], events.columns["t_finished"], equal_nan=True)


def test_a_call_tree_solver_that_breaks_ties_by_creation_order_would_be_caught(monkeypatch):
    """Two clients tick at the same instants into pods without own work or network delay, so their calls leave
    at the same instants from different pods: SimPy sends them in the order their events were scheduled (the
    first client's first). A solver that broke such ties in the order it made the rows (pod by pod) would hand the
    callee's random picks to the wrong calls."""
    import sim.callsolver

    zero = Constant(0.0)
    graph = {"fe": ServiceCalls(ASYNC, (Call("a"),))}
    scenario = call_tree(graph, {"fe": zero, "a": zero}, workloads=(ConstantRate(200.0),) * 2, hop=zero)
    events = run(scenario, seed=3)
    assert_same_call_records(simulate(scenario, 3, "des"), events)
    monkeypatch.setattr(sim.callsolver._Events, "compare", lambda self, a, b: 0)
    wrong = simulate(scenario, 3, "des")
    assert not np.array_equal(wrong.columns["endpoint"], events.columns["endpoint"])


@pytest.mark.parametrize(
    ("graph", "options", "reason"),
    [
        (
            {"fe": ServiceCalls(stages=(Call("a"),))},
            {},
            "service fe makes sync calls: pod fe-n0's 4 workers wait for them and up to 20 requests can reach it",
        ),
        ({"fe": ServiceCalls(ASYNC, (Call("a", timeout_s=1.0),))}, {}, "the calls of fe to a time out (1 s)"),
        ({"fe": ServiceCalls(ASYNC, (Call("a", count=3),))}, {}, "service fe calls a 3 times one after another"),
        ({"fe": ServiceCalls(ASYNC, (Call("a"), Call("a")))}, {}, "calls into a are sent only after replies that"),
        (
            {"fe": ServiceCalls(ASYNC, (Call("a", probability=0.5), Call("b", probability=0.5)))},
            {},
            "service fe draws its calls with a probability in stages 1 and 2",
        ),
        (
            {"fe": ServiceCalls(ASYNC, (Call("a"),))},
            {"hop": Exponential(0.0005)},
            "requests into a and into fe take a path of random network delay",
        ),
    ],
)
def test_a_call_graph_that_needs_events_runs_on_them_and_says_why(graph, options, reason):
    """Where the tiers cannot be solved apart, or a draw's order is the event loop's, ``auto`` takes the event
    path and the RunResult says why."""
    scenario = call_tree(graph, {s: Exponential(0.002) for s in ("fe", "a", "b")}, requests=20, **options)
    result = simulate(scenario, 1)
    assert result.engine == "events" and reason in (result.events_needed or "")
