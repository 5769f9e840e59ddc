"""Kubernetes objects as frozen values: Node, Pod, Service, Endpoint, and the policies spelled as the API does."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from sim.distributions import Dist, Exponential

ZONE_LABEL = "topology.kubernetes.io/zone"
DEFAULT_NAMESPACE = "default"
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


@dataclass(frozen=True)
class Service:
    """A Service: a label selector plus the routing fields, named after the Kubernetes API in snake_case."""

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


def endpoints_for(service: Service, pods: Iterable[Pod], nodes: Mapping[str, Node]) -> tuple[Endpoint, ...]:
    """The Service's endpoints, one per selected pod, sorted by ``"IP:port"`` string as kube-proxy sorts them.

    Conditions follow the EndpointSlice controller: a terminating pod is never ready, stays ``serving`` while its
    readiness probe passes, and is marked ``terminating``.
    """
    endpoints = [
        Endpoint(
            address=f"{pod.ip}:{service.target_port or service.port}",
            ready=pod.ready and not pod.terminating,
            serving=pod.ready,
            terminating=pod.terminating,
            node_name=pod.node,
            zone=nodes[pod.node].zone or None,
            pod=pod.name,
        )
        for pod in pods
        if service.selects(pod)
    ]
    return tuple(sorted(endpoints, key=lambda ep: ep.address))
