"""The hand-written peers of benchmarks/run.py simulate the same system: given the same draws, the SimPy
callback model, the bare heapq loop, numpy Lindley and the SimPy process model return the same latencies, with and
without network. A ratio against a peer that simulated something else would be meaningless."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks import run as bench
from sim.facade import simulate
from sim.stats import mean_ci

MODELS = [bench.simpy_callback, bench.heapq_loop, bench.simpy_process]


@pytest.mark.parametrize("workload", [bench.FANOUT, bench.W], ids=lambda w: w.name)
@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_every_peer_returns_numpy_lindleys_latencies(workload: bench.Workload, model) -> None:
    sent, returned = model(workload, 500, 7)
    ref_sent, ref_returned = bench.numpy_lindley(workload, 500, 7)
    # Same draws, same FIFO order: only float rounding may differ, within tests.conftest.rounding_drift_s's bound
    # 2 n eps T (n = 2,000 records, T ~ 1,040 s: 9.2e-10 s).
    np.testing.assert_allclose(returned - sent, ref_returned - ref_sent, rtol=0, atol=1e-9)


def test_a_different_model_is_told_apart() -> None:
    """A plausible bug, a backend serving requests in client order instead of arrival order, is another system:
    the comparison above must see it."""
    d = bench.Draws.draw(500, 7)
    sent = d.gaps.reshape(bench.CLIENTS, 500).cumsum(axis=1).ravel()
    returned = np.empty_like(sent)
    for b in range(bench.BACKENDS):
        idx = np.flatnonzero(d.backend == b)  # request-index order: client 0's first, then client 1's, ...
        done = d.service[idx].cumsum()
        returned[idx] = done + np.maximum.accumulate(sent[idx] - (done - d.service[idx]))
    ref_sent, ref_returned = bench.heapq_loop(bench.FANOUT, 500, 7)
    assert not np.allclose(returned - sent, ref_returned - ref_sent, rtol=0, atol=1e-9)


def test_the_fanout_scenario_is_on_the_fast_path() -> None:
    assert bench.events_needed(bench.scenario_of(bench.FANOUT, 10)) is None


@pytest.mark.statistical
def test_the_closed_loop_w3_and_its_callback_model_agree_with_mean_value_analysis() -> None:
    """W3 is a closed product-form network (32 clients, an infinite-server think station of mean 8 s, 8 FIFO M/M/1
    queues visited with probability 1/8 each), so exact Mean Value Analysis gives its mean latency
    (``bench.mva_latency_s``: 1.653 s). Over 10 independent replications (seeds 0-9, 300 requests a client), the
    99% t interval of the per-run mean latency contains it, for our event path and for the hand-written callback
    model. A named wrong model lies outside both intervals: the open-loop M/M/1 formula at the clients' nominal
    rate (32 / (8 + 1) requests/s over 8 queues: rho 0.444, 1 / (1 - rho) = 1.8 s), which forgets that a waiting
    client sends nothing."""
    per_client, seeds = 300, range(10)
    ours = [bench.mean_latency(simulate(bench.scenario_w3(per_client), seed, "des")) for seed in seeds]
    hand = [bench.mean_latency(bench.simpy_callback_w3(per_client, seed)) for seed in seeds]
    rho = bench.W3_CLIENTS / (bench.W3_THINK_MEAN_S + bench.W3_SERVICE_MEAN_S) / bench.W3_BACKENDS
    open_loop_s = bench.W3_SERVICE_MEAN_S / (1 - rho)
    assert pytest.approx(1.6534, abs=1e-4) == bench.W3_THEORY_S
    for values in (ours, hand):
        ci = mean_ci(values, 0.99)  # the replications' Student t interval
        assert ci.low <= bench.W3_THEORY_S <= ci.high, ci
        assert not ci.low <= open_loop_s <= ci.high, ci
