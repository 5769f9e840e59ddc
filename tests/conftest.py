"""Shared builders: small scenarios made in code, and paths to the shipped files."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pytest

from sim.callgraph import CallGraph, ServiceCalls
from sim.cluster import Pod, Service, TrafficPolicy
from sim.distributions import Constant, Dist, Exponential
from sim.records import RunResult
from sim.routing import DataplaneConfig
from sim.scenario import Scenario, Stream
from sim.topology import ElementKind, Link, Topology
from sim.workload import ClosedLoop, Poisson, Workload

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "experiments" / "cilium_demo.toml"
LOCAL_POD_DIES = ROOT / "experiments" / "local_pod_dies.toml"


@pytest.fixture(scope="session")
def local_pod_dies_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``sim run experiments/local_pod_dies.toml --out RUN.json`` (in this process, once a session): its path."""
    import contextlib
    import io

    from sim.cli import main

    out = tmp_path_factory.mktemp("run") / "run.json"
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["run", str(LOCAL_POD_DIES), "--out", str(out)]) == 0
    return out


def star(
    nodes: list[str], hop: Dist = Constant(0.0001), same_node: Dist = Constant(0.00001), internet: Dist | None = None
) -> Topology:
    """Nodes joined by one bridge, every link drawing ``hop`` seconds; optionally an ``internet`` router on it."""
    links = [Link(n, "br", hop) for n in nodes]
    elements = {"br": ElementKind.BRIDGE}
    if internet is not None:
        elements["internet"] = ElementKind.ROUTER
        links.append(Link("internet", "br", internet))
    return Topology(
        name="star",
        nodes={n: {"topology.kubernetes.io/zone": "z"} for n in nodes},
        elements=elements,
        links=links,
        same_node=same_node,
    )


def two_node_scenario(
    policy: TrafficPolicy = TrafficPolicy.CLUSTER,
    *,
    dataplane: str = "iptables",
    local_backend: bool = True,
    remote_backend: bool = True,
    requests: int = 1000,
    workload: Workload = ClosedLoop(),
    service_time: Dist = Exponential(0.001),
    duration_s: float | None = None,
) -> Scenario:
    """A client on node a; backends of Service 'svc' on a and/or b."""
    pods = [Pod("client", "a", "10.244.0.2", {"app": "client"})]
    if local_backend:
        pods.append(Pod("svc-a", "a", "10.244.0.3", {"app": "svc"}, service_time=service_time))
    if remote_backend:
        pods.append(Pod("svc-b", "b", "10.244.1.2", {"app": "svc"}, service_time=service_time))
    return Scenario(
        name="two-node",
        topology=star(["a", "b"]),
        pods=tuple(pods),
        services=(Service("svc", {"app": "svc"}, internal_traffic_policy=policy),),
        streams=(Stream("client", "svc", workload, requests),),
        dataplane=DataplaneConfig(dataplane),
        duration_s=duration_s,
    )


@pytest.fixture
def demo_path() -> Path:
    """The shipped demo experiment."""
    return DEMO


TIME_COLUMNS = ("t_sent", "t_arrived", "t_started", "t_finished", "t_returned")


def rounding_drift_s(result: RunResult) -> float:
    """How far (s) a time of ``result`` may lie from the same time in a run that schedules each step as an event.

    A step scheduled from an earlier instant computes ``now + ((t - now) + d)`` where the event run computes
    ``t + d``: at most 4 more roundings, each at most half an ulp (``eps / 2``) of the largest time T, so 2 eps T.
    Such an error carries forward along a chain of dependent steps (a closed loop's next send follows the
    previous reply; a FIFO start follows the previous finish), and no chain is longer than the run's records.
    """
    largest = max((float(np.nanmax(np.abs(result.columns[c]), initial=0.0)) for c in TIME_COLUMNS), default=0.0)
    return 2 * max(len(result), 1) * float(np.finfo(float).eps) * max(largest, result.end_s)


def check_theory(grand: float, se: float, theory: float, wrong: Mapping[str, float]) -> None:
    """The statistical tests' acceptance rule: the grand mean of independent replications (standard error ``se``,
    the estimator's own sampling error) within 3 standard errors of ``theory``, and beyond 3 of each named wrong
    model's value (so the data could have told them apart)."""
    assert abs(grand - theory) < 3 * se, f"{grand:.4f} vs theory {theory:.4f} (SE {se:.4f})"
    for name, w in wrong.items():
        assert abs(grand - w) > 3 * se, f"{grand:.4f} cannot tell theory {theory:.4f} from {name} {w:.4f}"


def solve_fast(scenario: Scenario, seed: int) -> RunResult:
    """The event-free solver's numpy way, through the facade (``sim.simulate(..., engine="fast")``)."""
    from sim.facade import simulate

    return simulate(scenario, seed, "fast")


def assert_same_call_records(solved: RunResult, events: RunResult) -> None:
    """``solved`` (the event-free solver's) writes ``events``' records (the event path's) to the bit: the end, the
    span links (``parent``) and every column, dtype and bytes."""
    assert (solved.engine, events.engine) == ("solver", "events")
    assert solved.end_s == events.end_s
    assert solved.parent is not None and events.parent is not None
    assert solved.parent.tobytes() == events.parent.tobytes()
    for name, column in events.columns.items():
        got = solved.columns[name]
        assert column.dtype == got.dtype and column.tobytes() == got.tobytes(), name


def call_tree(
    graph: dict[str, ServiceCalls],
    work: dict[str, Dist],
    *,
    workloads: tuple[Workload, ...] = (Poisson(800.0),),
    requests: int = 300,
    hop: Dist = Constant(0.0005),
    policies: dict[str, TrafficPolicy] | None = None,
    workers: int = 1,
    queue_limit: int | None = None,
    duration_s: float | None = None,
    missing: tuple[str, ...] = (),
    front_workers: int = 4,
) -> Scenario:
    """A call graph on three nodes: one client pod per workload (on n0, n1, ...) into Service ``fe``; every Service of
    ``work`` one pod per node (``fe``: ``front_workers``, the others ``workers``, all with ``queue_limit``) of its own
    service time, but none on n0 for those in ``missing``; every link ``hop`` s, 0.1 ms on a node."""
    nodes = ["n0", "n1", "n2"]
    pods = [Pod(f"client{i}", nodes[i % 3], f"10.9.0.{i + 2}", {"app": "client"}) for i in range(len(workloads))]
    for si, (name, dist) in enumerate(work.items()):
        for ni, node in enumerate(nodes):
            if not (name in missing and node == "n0"):
                conc = front_workers if name == "fe" else workers
                labels = {"app": name}
                pods.append(Pod(f"{name}-{node}", node, f"10.{si}.{ni}.2", labels, service_time=dist, concurrency=conc,
                                queue_limit=queue_limit))  # fmt: skip
    services = tuple(Service(s, {"app": s}, internal_traffic_policy=(policies or {}).get(s, TrafficPolicy.CLUSTER))
                     for s in work)  # fmt: skip
    streams = tuple(Stream(f"client{i}", "fe", w, requests) for i, w in enumerate(workloads))
    return Scenario(
        name="call-tree",
        topology=star(nodes, hop=hop, same_node=Constant(0.0001)),
        pods=tuple(pods),
        services=services,
        streams=streams,
        call_graph=CallGraph(graph),
        duration_s=duration_s,
    )
