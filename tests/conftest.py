"""Shared builders: small scenarios made in code, and paths to the shipped files."""

from __future__ import annotations

from pathlib import Path

import pytest

from sim.cluster import Pod, Service, TrafficPolicy
from sim.distributions import Constant, Dist, Exponential
from sim.routing import DataplaneConfig
from sim.scenario import Scenario, Stream
from sim.topology import ElementKind, Link, Topology
from sim.workload import ClosedLoop, Workload

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "experiments" / "cilium_demo.toml"


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
