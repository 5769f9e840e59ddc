"""Invariants over generated scenarios (hypothesis): accounting, locality, determinism."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sim.cluster import Pod, Service, TrafficPolicy
from sim.distributions import Exponential, Uniform
from sim.engine import run
from sim.facade import simulate
from sim.outcomes import DropReason, Outcome
from sim.routing import DATAPLANES, DataplaneConfig
from sim.scenario import Scenario, Stream
from sim.workload import ClosedLoop, ConstantRate, Poisson
from tests.conftest import TIME_COLUMNS, rounding_drift_s, star


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    n_nodes = draw(st.integers(1, 4))
    nodes = [f"n{i}" for i in range(n_nodes)]
    n_services = draw(st.integers(1, 3))
    pods = []
    for s in range(n_services):
        for node in nodes:
            for k in range(draw(st.integers(0, 2))):
                pods.append(
                    Pod(
                        f"s{s}-{node}-{k}",
                        node,
                        f"10.{s}.{nodes.index(node)}.{k + 2}",
                        {"app": f"s{s}"},
                        ready=draw(st.booleans()) or draw(st.booleans()),
                        service_time=Exponential(draw(st.sampled_from([0.0001, 0.001, 0.01]))),
                        concurrency=draw(st.integers(1, 3)),
                    )
                )
    clients = [Pod(f"c{i}", draw(st.sampled_from(nodes)), f"10.99.0.{i + 2}", {"app": "client"}) for i in range(2)]
    services = tuple(
        Service(f"s{s}", {"app": f"s{s}"}, internal_traffic_policy=draw(st.sampled_from(list(TrafficPolicy))))
        for s in range(n_services)
    )
    workloads = st.sampled_from([ClosedLoop(), Poisson(200.0), ConstantRate(100.0), ClosedLoop(Uniform(0.0, 0.01))])
    streams = tuple(
        Stream(
            c.name,
            f"s{draw(st.integers(0, n_services - 1))}",
            draw(workloads),
            draw(st.integers(0, 60)),
            connect_timeout_s=draw(st.sampled_from([0.5, 127.0])),
        )
        for c in clients
    )
    return Scenario(
        name="generated",
        topology=star(nodes, hop=Exponential(0.0002)),
        pods=tuple(pods + clients),
        services=services,
        streams=streams,
        dataplane=DataplaneConfig(draw(st.sampled_from(sorted(DATAPLANES)))),
        duration_s=draw(st.sampled_from([None, 0.05])),
    )


SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(scenarios(), st.integers(0, 2**32 - 1))
def test_every_request_is_completed_dropped_with_reason_or_in_flight(scenario, seed):
    r = run(scenario, seed)
    c = r.columns
    assert set(np.unique(c["outcome"])) <= {int(o) for o in Outcome}
    dropped = c["outcome"] == Outcome.DROPPED
    assert np.all(c["reason"][dropped] != DropReason.NONE)
    assert np.all(c["reason"][~dropped] == DropReason.NONE)
    in_flight = c["outcome"] == Outcome.IN_FLIGHT
    if scenario.duration_s is None:
        assert not in_flight.any()
        expected = sum(s.requests or 0 for s in scenario.streams)
        assert len(r) == expected
    else:
        assert np.all(c["t_sent"] <= scenario.duration_s)
        assert np.all(np.isnan(c["t_returned"][in_flight]))
    ok = c["outcome"] == Outcome.OK
    assert np.all(c["t_returned"][ok] >= c["t_sent"][ok])
    assert np.all(c["endpoint"][ok] >= 0)


@SETTINGS
@given(scenarios(), st.integers(0, 2**32 - 1))
def test_local_never_leaves_the_node(scenario, seed):
    c = run(scenario, seed).columns
    local = [i for i, s in enumerate(scenario.services) if s.internal_traffic_policy == TrafficPolicy.LOCAL]
    routed_local = np.isin(c["service"], local) & (c["endpoint"] >= 0)
    assert np.all(c["endpoint_node"][routed_local] == c["client_node"][routed_local])


@settings(max_examples=25, deadline=None)
@given(scenarios(), st.integers(0, 2**32 - 1))
def test_same_seed_same_result(scenario, seed):
    a, b = run(scenario, seed), run(scenario, seed)
    for name in a.columns:
        assert np.array_equal(a.columns[name], b.columns[name], equal_nan=True)


# --- a changing cluster under load: timeouts, retries, bounded queues, processor sharing, a timeline -----------

from dataclasses import replace  # noqa: E402

from sim.cluster import Discipline  # noqa: E402
from sim.scenario import Retries, Sync  # noqa: E402
from sim.timeline import Action, Event  # noqa: E402


@st.composite
def busy_scenarios(draw: st.DrawFn) -> Scenario:
    base = draw(scenarios())
    pods = tuple(
        replace(
            p,
            queue_limit=draw(st.sampled_from([None, 0, 2])),
            discipline=draw(st.sampled_from(list(Discipline))),
        )
        for p in base.pods
    )
    streams = tuple(
        replace(
            s,
            timeout_s=draw(st.sampled_from([None, 0.002, 0.05])),
            retries=Retries(draw(st.integers(0, 2)), 0.001, 0.01),
        )
        for s in base.streams
    )
    backends = [p for p in pods if not p.name.startswith("c")]
    events = []
    for _ in range(draw(st.integers(0, 3))):
        at = draw(st.floats(0.0, 0.05))
        kind = draw(st.sampled_from(["pod", "node", "service"]))
        if kind == "pod" and backends:
            pod = draw(st.sampled_from(backends)).name
            action = draw(st.sampled_from([Action.TERMINATE, Action.READY, Action.UNREADY]))
            events.append(Event(at, action, pod=pod, grace_s=draw(st.sampled_from([0.0, 0.01]))))
        elif kind == "node":
            node = draw(st.sampled_from(list(base.topology.nodes)))
            events.append(Event(at, Action.FAIL, node=node, detect_s=0.01))
            if draw(st.booleans()):
                events.append(Event(at + 0.02, Action.RECOVER, node=node))
        else:
            svc = draw(st.sampled_from(base.services)).name
            policy = draw(st.sampled_from(list(TrafficPolicy)))
            events.append(Event(at, Action.UPDATE, service=svc, changes={"internal_traffic_policy": policy}))
    return replace(
        base, pods=pods, streams=streams, timeline=tuple(events), sync=Sync(draw(st.sampled_from([0.0, 0.005])))
    )


@SETTINGS
@given(busy_scenarios(), st.integers(0, 2**32 - 1))
def test_changing_cluster_accounts_for_every_request(scenario, seed):
    r = run(scenario, seed)
    c = r.columns
    outcome = c["outcome"]
    for k in range(len(scenario.services)):
        mine = c["service"] == k
        counts = np.bincount(outcome[mine], minlength=len(Outcome))
        assert counts.sum() == mine.sum()  # sent = completed + dropped + timed out + in flight
    dropped = outcome == Outcome.DROPPED
    assert np.all(c["reason"][dropped] != DropReason.NONE)
    assert np.all(c["reason"][~dropped] == DropReason.NONE)
    if scenario.duration_s is None:
        assert not np.any(outcome == Outcome.IN_FLIGHT)
    # each request's attempts are linked to its first row, in order, no more than the retries allow
    first = c["attempt"] == 0
    assert np.all(c["request"][first] == np.flatnonzero(first))
    per_stream_first = np.bincount(c["stream"][first], minlength=len(scenario.streams))
    for k, stream in enumerate(scenario.streams):
        if scenario.duration_s is None:
            assert per_stream_first[k] == stream.requests
        assert np.all(c["attempt"][c["stream"] == k] <= stream.retries.attempts)
    assert np.all(c["t_sent"] >= c["t_sent"][c["request"]])
    # time order wherever a step happened
    for a, b in (("t_sent", "t_arrived"), ("t_arrived", "t_started"), ("t_started", "t_finished")):
        both = ~np.isnan(c[a]) & ~np.isnan(c[b])
        assert np.all(c[b][both] >= c[a][both])
    resolved = outcome != Outcome.IN_FLIGHT
    assert np.all(c["t_returned"][resolved] >= c["t_sent"][resolved])
    # Local never leaves the node, under the policy of the version the entry node routed with
    for row in np.flatnonzero((c["endpoint"] >= 0) & (c["pick"] == 1)).tolist():
        svc = scenario.control_plane.service_at(scenario.services[c["service"][row]].name, int(c["version"][row]))
        if svc.internal_traffic_policy == TrafficPolicy.LOCAL:  # (no nodePort here: IPVS has no fallback)
            assert c["endpoint_node"][row] == c["entry_node"][row]


# --- the engine's shortcuts (steps computed rather than scheduled) change no record ------------------------------


@SETTINGS
@given(st.one_of(scenarios(), busy_scenarios()), st.integers(0, 2**32 - 1))
def test_shortcuts_give_the_records_of_the_full_event_run(scenario, seed):
    """Shortcut steps (FIFO starts from the workers' free times, replies nobody waits for) match the events they
    replace: everything exactly, times within rounding (``rounding_drift_s``); and where no events are needed,
    the event-free solver's exact way (``simulate(..., "des")``) to the bit."""
    fast, full = run(scenario, seed), run(scenario, seed, shortcuts=False)
    solved = simulate(scenario, seed, "des")
    if solved.engine == "solver":  # no events needed: every bit the same as the full event run
        assert solved.end_s == full.end_s
        for name in solved.columns:
            assert solved.columns[name].tobytes() == full.columns[name].tobytes(), name
    drift = rounding_drift_s(full)
    assert abs(fast.end_s - full.end_s) <= drift
    for name in fast.columns:
        if name in TIME_COLUMNS:
            np.testing.assert_allclose(fast.columns[name], full.columns[name], rtol=0, atol=drift, err_msg=name)
        else:
            np.testing.assert_array_equal(fast.columns[name], full.columns[name], err_msg=name)
    # a monitor sums at most every record's time in the pod, each interval off by at most 2 drifts, over the window
    window = float(full.monitors["window_s"][0]) if len(full.pod_names) else 1.0
    for name, values in full.monitors.items():
        np.testing.assert_allclose(
            fast.monitors[name], values, rtol=0, atol=2 * len(full) * drift / window, err_msg=name
        )


# --- call graphs: the event-free solver (sim.callsolver) writes the event path's records ------------------------

from sim.callgraph import Call, CallMode, Parallel, ServiceCalls  # noqa: E402
from sim.distributions import Constant  # noqa: E402
from tests.conftest import assert_same_call_records, call_tree  # noqa: E402


@st.composite
def call_trees(draw: st.DrawFn) -> Scenario:
    """Call trees over fe, a, b, c: fe (async, or sync with a worker for every request) calls a (maybe with a
    probability) and then, or at once, b (``count`` 1-2) and maybe c (optional or not); a may call c; Local or Cluster
    callees (c missing on n0); constant or exponential service times, 1-2 workers, queue limits, one or two clients,
    with or without a horizon."""
    a = Call("a", probability=draw(st.sampled_from([1.0, 0.5])))
    b = Call("b", count=draw(st.integers(1, 2)))
    c = [Call("c", optional=draw(st.booleans()))] if draw(st.booleans()) else []
    stages = (a, Parallel((b, *c))) if draw(st.booleans()) else (Parallel((a, b, *c)),)
    sync = draw(st.booleans())  # a sync front, with a worker for every request that can reach a pod (<= 160)
    graph = {"fe": ServiceCalls(CallMode.SYNC if sync else CallMode.ASYNC, stages)}
    if not c and draw(st.booleans()):
        graph["a"] = ServiceCalls(CallMode.ASYNC, (Call("c", probability=draw(st.sampled_from([1.0, 0.3]))),))
    mean = draw(st.sampled_from([0.0005, 0.002]))
    dist = Constant(mean) if draw(st.booleans()) else Exponential(mean)
    rate = draw(st.sampled_from([ConstantRate(400.0), Poisson(800.0), Poisson(2000.0)]))
    return call_tree(
        graph,
        {s: dist for s in ("fe", "a", "b", "c")},
        workloads=(rate,) * draw(st.integers(1, 2)),
        requests=draw(st.integers(1, 80)),
        hop=draw(st.sampled_from([Constant(0.0), Constant(0.0005)])),
        policies={s: draw(st.sampled_from(list(TrafficPolicy))) for s in ("a", "b", "c")},
        workers=draw(st.integers(1, 2)),
        queue_limit=draw(st.sampled_from([None, 0, 2])),
        duration_s=draw(st.sampled_from([None, 0.03])),
        missing=("c",),
        front_workers=200 if sync else 4,
    )


@SETTINGS
@given(call_trees(), st.integers(0, 2**32 - 1))
def test_the_solver_writes_a_call_trees_records_byte_for_byte(scenario, seed):
    """Every generated call tree needs no events, and ``des`` solves it tier by tier: every column, the
    span links and the end equal the event path's (``run``, as ``auto`` would run it otherwise) to the bit."""
    solved, events = simulate(scenario, seed, "des"), run(scenario, seed)
    assert solved.events_needed is None
    assert_same_call_records(solved, events)


@st.composite
def changing_call_trees(draw: st.DrawFn) -> Scenario:
    """The call trees above in a cluster that changes: a pod deleted, a node failing (and maybe back) or a callee's
    internalTrafficPolicy updated, at a random time; proxies synced at once or after 5 ms."""
    base = draw(call_trees())
    at = draw(st.floats(0.0, 0.05))
    kind = draw(st.sampled_from(["pod", "node", "service"]))
    if kind == "pod":
        pod = draw(st.sampled_from([p.name for p in base.pods if not p.name.startswith("client")]))
        events = [Event(at, Action.TERMINATE, pod=pod, grace_s=draw(st.sampled_from([0.0, 0.01])))]
    elif kind == "node":
        node = draw(st.sampled_from(list(base.topology.nodes)))
        events = [Event(at, Action.FAIL, node=node, detect_s=0.01), Event(at + 0.02, Action.RECOVER, node=node)]
    else:
        policy = draw(st.sampled_from(list(TrafficPolicy)))
        events = [Event(at, Action.UPDATE, service="b", changes={"internal_traffic_policy": policy})]
    return replace(base, timeline=tuple(events), sync=Sync(draw(st.sampled_from([0.0, 0.005]))))


@SETTINGS
@given(changing_call_trees(), st.integers(0, 2**32 - 1))
def test_a_call_tree_in_a_changing_cluster_accounts_for_every_request(scenario, seed):
    """A timeline with a call graph runs on the event path: every request and call is completed, dropped with its
    reason, or in flight; every call's parent is a request sent no later; a failed call that is not optional
    fails its parent (no parent completes with a failed mandatory call)."""
    r = simulate(scenario, seed)
    assert r.engine == "events"
    outcome, reason = r.columns["outcome"], r.columns["reason"]
    assert np.isin(outcome, [int(o) for o in Outcome]).all()
    assert ((outcome == int(Outcome.DROPPED)) == (reason != 0)).all()
    parent, sent = r.parent, r.columns["t_sent"]
    calls = np.flatnonzero(parent >= 0)
    assert (parent[calls] < calls).all() and (sent[parent[calls]] <= sent[calls]).all()
    graph = scenario.call_graph.of("fe")
    mandatory = {c.service for c in graph.calls() if not c.optional}
    service = np.array(r.service_names)[r.columns["service"]]
    bad = calls[(outcome[calls] == int(Outcome.DROPPED)) & np.isin(service[calls], list(mandatory))]
    bad = bad[service[parent[bad]] == "fe"]
    assert (outcome[parent[bad]] != int(Outcome.OK)).all()
