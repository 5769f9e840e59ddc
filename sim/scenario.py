"""A Scenario: topology, cluster objects, client streams, dataplane; validated when built."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property

from sim.cluster import Endpoint, Node, Pod, Service, endpoints_for
from sim.errors import SpecError
from sim.routing import DATAPLANES, DEFAULT_DATAPLANE, PICKERS, Dataplane, Picker, Route
from sim.topology import Topology
from sim.workload import Trace, Workload

LINUX_SYN_TIMEOUT_S = 127.0
"""Linux gives up a TCP connect after 6 SYN retries: 1+2+4+8+16+32+64 s (``net.ipv4.tcp_syn_retries=6``)."""


@dataclass(frozen=True)
class Stream:
    """One client pod calling one Service: ``requests`` sends (None: until the run's ``duration_s``)."""

    client: str
    service: str
    workload: Workload
    requests: int | None = None
    start_s: float = 0.0
    connect_timeout_s: float = LINUX_SYN_TIMEOUT_S


SCENARIO = "<scenario>"


@dataclass(frozen=True, eq=False)
class Scenario:
    """Everything one run needs. Building one checks every reference, and raises SpecError on the first problem."""

    name: str
    topology: Topology
    pods: tuple[Pod, ...]
    services: tuple[Service, ...]
    streams: tuple[Stream, ...]
    dataplane: str = DEFAULT_DATAPLANE
    picker: str = ""
    duration_s: float | None = None
    spec: Mapping[str, object] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if not self.picker:
            object.__setattr__(
                self, "picker", self.dataplane_impl.default_picker if self.dataplane in DATAPLANES else ""
            )
        self._validate()

    def _validate(self) -> None:
        fail = lambda fld, problem: SpecError(SCENARIO, fld, problem)  # noqa: E731 - a local shorthand
        if self.dataplane not in DATAPLANES:
            raise fail("dataplane", f"unknown dataplane {self.dataplane!r}; expected one of {sorted(DATAPLANES)}")
        if self.picker not in self.dataplane_impl.pickers:
            offered = list(self.dataplane_impl.pickers)
            raise fail("picker", f"{self.dataplane} does not offer picker {self.picker!r}; it offers {offered}")
        if self.duration_s is not None and not self.duration_s > 0:
            raise fail("duration_s", f"must be > 0 seconds, got {self.duration_s}")
        pod_names: set[str] = set()
        for i, pod in enumerate(self.pods):
            if pod.name in pod_names:
                raise fail(f"pods[{i}].name", f"duplicate pod name {pod.name!r}")
            pod_names.add(pod.name)
            if pod.node not in self.topology.nodes:
                raise fail(f"pods[{i}].node", f"node {pod.node!r} is not in topology {self.topology.name!r}")
            if pod.concurrency < 1:
                raise fail(f"pods[{i}].concurrency", f"must be >= 1, got {pod.concurrency}")
        service_names: set[str] = set()
        for i, svc in enumerate(self.services):
            if svc.name in service_names:
                raise fail(f"services[{i}].name", f"duplicate service name {svc.name!r}")
            service_names.add(svc.name)
        if not self.streams:
            raise fail("streams", "no client streams: add at least one [[streams]] table")
        for i, stream in enumerate(self.streams):
            if stream.client not in pod_names:
                raise fail(f"streams[{i}].client", f"no pod named {stream.client!r}")
            if stream.service not in service_names:
                raise fail(f"streams[{i}].service", f"no service named {stream.service!r}")
            if stream.requests is None and self.duration_s is None and not isinstance(stream.workload, Trace):
                raise fail(f"streams[{i}].requests", "give requests, or duration_s for the scenario")
            if stream.requests is not None and stream.requests < 0:
                raise fail(f"streams[{i}].requests", f"must be >= 0, got {stream.requests}")
            client_node = self.pod(stream.client).node
            for ep in self.endpoints(stream.service):
                if ep.node_name and not self.topology.connected(client_node, ep.node_name):
                    raise fail(
                        f"streams[{i}]",
                        f"client {stream.client!r} on node {client_node!r} has no network path to backend "
                        f"{ep.pod!r} on node {ep.node_name!r}",
                    )

    @cached_property
    def nodes(self) -> dict[str, Node]:
        """Kubernetes Nodes by name, with their labels from the topology."""
        return {name: Node(name, dict(labels)) for name, labels in self.topology.nodes.items()}

    @cached_property
    def _pods_by_name(self) -> dict[str, Pod]:
        return {pod.name: pod for pod in self.pods}

    @cached_property
    def _services_by_name(self) -> dict[str, Service]:
        return {svc.name: svc for svc in self.services}

    @property
    def dataplane_impl(self) -> Dataplane:
        """The Dataplane object named by ``dataplane``."""
        return DATAPLANES[self.dataplane]

    @property
    def picker_impl(self) -> Picker:
        """The Picker object named by ``picker``."""
        return PICKERS[self.picker]

    def pod(self, name: str) -> Pod:
        """The pod called ``name``."""
        return self._pods_by_name[name]

    def service(self, name: str) -> Service:
        """The Service called ``name``."""
        return self._services_by_name[name]

    @cached_property
    def _endpoints(self) -> dict[str, tuple[Endpoint, ...]]:
        return {svc.name: endpoints_for(svc, self.pods, self.nodes) for svc in self.services}

    def endpoints(self, service: str) -> tuple[Endpoint, ...]:
        """The Service's endpoints (all selected pods, with conditions), sorted by address."""
        return self._endpoints[service]

    def route(self, service: str, node: str) -> Route:
        """Which endpoints a pod on ``node`` may reach through the Service's ClusterIP, per the dataplane."""
        svc = self.service(service)
        return self.dataplane_impl.route(svc, self.endpoints(service), self.nodes[node])
