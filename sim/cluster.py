"""Kubernetes objects as frozen values: Node, Pod, Service, Endpoint, and the policies spelled as the API does."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum

from sim.distributions import Dist, Exponential
from sim.rng import DEFAULT_NAMESPACE as DEFAULT_NAMESPACE

ZONE_LABEL = "topology.kubernetes.io/zone"
MAX_NODES = 5_000
"""Kubernetes' largest supported cluster ("Considerations for large clusters"): 5,000 nodes ..."""
MAX_PODS = 150_000
"""... and 150,000 pods in all."""
MAX_SERVICES = 10_000
"""sig-scalability's thresholds (``configs-and-limits/thresholds.md``): 10,000 Services in a cluster."""
MAX_PORT = 65_535
"""The largest TCP/UDP port (``validation.IsValidPortNum``: 1-65535)."""
NODE_PORT_RANGE = (30_000, 32_767)
"""kube-apiserver's default ``--service-node-port-range``."""


def namespace_of(name: str) -> str:
    """The namespace of a pod or Service named ``namespace/name``; a bare name is in ``default``.

    >>> namespace_of("kube-system/coredns"), namespace_of("echo-1")
    ('kube-system', 'default')
    """
    namespace, slash, _ = name.partition("/")
    return namespace if slash else DEFAULT_NAMESPACE


class TrafficPolicy(StrEnum):
    """``internalTrafficPolicy`` / ``externalTrafficPolicy``."""

    CLUSTER = "Cluster"
    LOCAL = "Local"


class TrafficDistribution(StrEnum):
    """``spec.trafficDistribution``; PreferClose is the deprecated alias of PreferSameZone."""

    PREFER_CLOSE = "PreferClose"
    PREFER_SAME_ZONE = "PreferSameZone"
    PREFER_SAME_NODE = "PreferSameNode"


class Discipline(StrEnum):
    """How a backend pod serves its requests."""

    FIFO = "fifo"
    """``concurrency`` workers; the others wait in arrival order."""
    PS = "ps"
    """Processor sharing, like threads on ``concurrency`` CPUs: n requests each progress at min(1, c/n)."""


class SessionAffinity(StrEnum):
    """``spec.sessionAffinity``."""

    NONE = "None"
    CLIENT_IP = "ClientIP"


DEFAULT_AFFINITY_TIMEOUT_S = 10800.0
"""``DefaultClientIPServiceAffinitySeconds``: ClientIP affinity lasts 3 hours unless ``timeoutSeconds`` says."""
MAX_AFFINITY_TIMEOUT_S = 86400.0
"""``MaxClientIPServiceAffinitySeconds``."""


@dataclass(frozen=True)
class Node:
    """A Kubernetes Node: name, labels, allocatable CPU (cores) and readiness."""

    name: str
    labels: Mapping[str, str] = field(default_factory=dict, hash=False, compare=False)
    allocatable_cpu: float = 0.0
    ready: bool = True

    @property
    def zone(self) -> str:
        """The zone label, or ``""`` (which matches no zone hint)."""
        return self.labels.get(ZONE_LABEL, "")


@dataclass(frozen=True)
class Pod:
    """A pod on a node; backends serve requests with ``concurrency`` workers drawing ``service_time`` (s)."""

    name: str
    node: str
    ip: str
    labels: Mapping[str, str] = field(default_factory=dict, hash=False, compare=False)
    ready: bool = True
    terminating: bool = False
    service_time: Dist = Exponential(0.001)
    concurrency: int = 1
    queue_limit: int | None = None
    """Most requests that may wait for a worker; one more is refused (``queue_full``). None: unbounded."""
    discipline: Discipline = Discipline.FIFO
    host_network: bool = False
    """``spec.hostNetwork``: its connections leave from the node itself (the node's address), which kube-proxy
    treats as the node's traffic (``sim.routing.Source.NODE``), not a pod's. Only its calls change."""


class ServiceType(StrEnum):
    """``spec.type`` (ExternalName Services are skipped on reading: no proxy rules)."""

    CLUSTER_IP = "ClusterIP"
    NODE_PORT = "NodePort"
    LOAD_BALANCER = "LoadBalancer"


@dataclass(frozen=True)
class ServicePort:
    """One entry of ``spec.ports``: its name (empty for a Service's only port), port, the endpoints' port
    (``targetPort``, resolved to a number; 0: the same as ``port``) and nodePort (0: none)."""

    name: str
    port: int
    target_port: int = 0
    node_port: int = 0


@dataclass(frozen=True)
class Service:
    """A Service: a label selector plus the routing fields, named after the Kubernetes API in snake_case.

    ``port``, ``port_name``, ``target_port`` and ``node_port`` are the Service's first port (the one routed when a
    stream names none); ``other_ports`` the rest. ``at_port`` gives the Service as kube-proxy handles one of its
    ports (its ``ServicePort``: ``ns/name:port`` in kube-proxy's ``ServicePortName``)."""

    name: str
    selector: Mapping[str, str] = field(default_factory=dict, hash=False, compare=False)
    port: int = 80
    internal_traffic_policy: TrafficPolicy = TrafficPolicy.CLUSTER
    external_traffic_policy: TrafficPolicy = TrafficPolicy.CLUSTER
    node_port: int = 0
    load_balancer_ips: tuple[str, ...] = ()
    external_ips: tuple[str, ...] = ()
    traffic_distribution: TrafficDistribution | None = None
    session_affinity: SessionAffinity = SessionAffinity.NONE
    session_affinity_timeout_s: float = DEFAULT_AFFINITY_TIMEOUT_S
    annotations: Mapping[str, str] = field(default_factory=dict, hash=False, compare=False)
    target_port: int = 0
    """The endpoints' port (``targetPort``); 0: the same as ``port``, as the API defaults it."""
    port_name: str = ""
    other_ports: tuple[ServicePort, ...] = ()
    type: ServiceType | None = None
    """``spec.type`` as given; None: the narrowest type with these fields (``kind``)."""
    health_check_node_port: int = 0
    """``spec.healthCheckNodePort`` of an eTP=Local LoadBalancer (0: none)."""
    load_balancer_source_ranges: tuple[str, ...] = ()
    """``spec.loadBalancerSourceRanges``: CIDRs allowed to reach the LoadBalancer IPs (empty: everyone)."""

    @property
    def kind(self) -> ServiceType:
        """``spec.type``: as given, else LoadBalancer with LB IPs, NodePort with a nodePort, else ClusterIP."""
        if self.type is not None:
            return self.type
        if self.load_balancer_ips:
            return ServiceType.LOAD_BALANCER
        return ServiceType.NODE_PORT if self.node_port else ServiceType.CLUSTER_IP

    @property
    def ports(self) -> tuple[ServicePort, ...]:
        """Every port, the first first."""
        return (ServicePort(self.port_name, self.port, self.target_port, self.node_port), *self.other_ports)

    def port_of(self, selector: str) -> ServicePort | None:
        """The port a stream names: by name, or by number (``"8080"``); ``""`` is the first port."""
        if not selector:
            return self.ports[0]
        by_name = [p for p in self.ports if p.name == selector]
        by_number = [p for p in self.ports if str(p.port) == selector]
        found = by_name or by_number
        return found[0] if found else None

    def at_port(self, selector: str) -> Service:
        """The Service as kube-proxy handles its port ``selector`` (``port_of``): that port first, alone."""
        p = self.port_of(selector)
        if p is None:
            raise KeyError(f"Service {self.name} has no port {selector!r}")
        if not self.other_ports:  # its only port: already first and alone
            return self
        return replace(
            self, port=p.port, port_name=p.name, target_port=p.target_port, node_port=p.node_port, other_ports=()
        )

    @property
    def externally_accessible(self) -> bool:
        """NodePort, LoadBalancer VIPs or externalIPs make the Service reachable from outside."""
        return self.node_port != 0 or bool(self.load_balancer_ips) or bool(self.external_ips)

    @property
    def uses_cluster_endpoints(self) -> bool:
        """kube-proxy builds the cluster set unless iTP=Local on a Service that is not externally accessible."""
        return self.internal_traffic_policy != TrafficPolicy.LOCAL or self.externally_accessible

    @property
    def uses_local_endpoints(self) -> bool:
        """kube-proxy builds the local set for iTP=Local, or eTP=Local on an externally accessible Service."""
        return self.internal_traffic_policy == TrafficPolicy.LOCAL or (
            self.external_traffic_policy == TrafficPolicy.LOCAL and self.externally_accessible
        )

    def selects(self, pod: Pod) -> bool:
        """Whether the selector matches the pod's labels (an empty selector selects nothing, as in Kubernetes); only
        pods of the Service's own namespace are selected."""
        return (
            bool(self.selector)
            and all(pod.labels.get(k) == v for k, v in self.selector.items())
            and namespace_of(pod.name) == namespace_of(self.name)
        )


@dataclass(frozen=True)
class Endpoint:
    """One EndpointSlice endpoint with its conditions and hints; ``pod`` names the backing pod."""

    address: str
    ready: bool = True
    serving: bool = True
    terminating: bool = False
    node_name: str | None = None
    zone: str | None = None
    zone_hints: frozenset[str] | None = None
    node_hints: frozenset[str] | None = None
    pod: str | None = None
    cilium_only: bool = False
    """An endpoint only Cilium reads: a second or later address of its EndpointSlice endpoint (Cilium's
    ``ParseEndpointSliceV1`` makes every address a backend; kube-proxy's ``endpointslicecache.go`` takes the first),
    or a slice port joined to the Service port only by Cilium's ``matchesFrontend`` (an unnamed port on either side;
    kube-proxy joins by equal names)."""
    ports: tuple[tuple[str, int], ...] = ()
    """Every port of its slice, (name, number): what ``at_port`` readdresses the endpoint to (empty: only the
    address's port, for the Service's first port)."""

    def at_port(self, name: str) -> Endpoint | None:
        """The endpoint for the Service port called ``name``: its address with that port, or None when its slice
        has no such port (kube-proxy joins slices to Service ports by name)."""
        for port_name, number in self.ports:
            if port_name == name:
                return replace(self, address=f"{self.address.rsplit(':', 1)[0]}:{number}")
        return None


def endpoints_for(service: Service, pods: Iterable[Pod], nodes: Mapping[str, Node]) -> tuple[Endpoint, ...]:
    """The Service's endpoints, one per selected pod, sorted by ``"IP:port"`` string as kube-proxy sorts them.

    Conditions follow the EndpointSlice controller: a terminating pod is never ready, stays ``serving`` while its
    readiness probe passes, and is marked ``terminating``.
    """
    ports = tuple(sorted((p.name, p.target_port or p.port) for p in service.ports)) if service.other_ports else ()
    endpoints = [
        Endpoint(
            address=f"{pod.ip}:{service.target_port or service.port}",
            ready=pod.ready and not pod.terminating,
            serving=pod.ready,
            terminating=pod.terminating,
            node_name=pod.node,
            zone=nodes[pod.node].zone or None,
            pod=pod.name,
            ports=ports,
        )
        for pod in pods
        if service.selects(pod)
    ]
    return tuple(sorted(endpoints, key=lambda ep: ep.address))
