"""The SimPy engine: request life, records, outcomes, determinism."""

import numpy as np
import pytest

from sim.cluster import TrafficPolicy
from sim.engine import run
from sim.outcomes import DropReason, Outcome
from sim.workload import ClosedLoop, ConstantRate, Poisson, Trace
from tests.conftest import two_node_scenario

LOCAL, CLUSTER = TrafficPolicy.LOCAL, TrafficPolicy.CLUSTER


def test_every_request_sent_completes_without_a_horizon():
    r = run(two_node_scenario(requests=500), seed=1)
    assert len(r) == 500
    assert r.counts() == {"in_flight": 0, "ok": 500, "dropped": 0}


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
