"""Small builders shared by every reader of cluster state (scenario TOML, Kubernetes objects): the defaults a
backend pod takes, the address a pod gets when none is given, pods, endpoints with the API's defaults, and the
Scenario's assembly with its validation errors put on the file that was read."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sim.cluster import DEFAULT_AFFINITY_TIMEOUT_S, MAX_AFFINITY_TIMEOUT_S, Discipline, Endpoint, Pod
from sim.distributions import Dist, Exponential
from sim.errors import SpecError
from sim.rpc import LINUX_SYN_TIMEOUT_S
from sim.scenario import SCENARIO, Scenario


@dataclass(frozen=True)
class Defaults:
    """What every pod and stream takes unless it says otherwise (a scenario's ``[defaults]``); times in s."""

    service_time: Dist = Exponential(0.001)
    concurrency: int = 1
    connect_timeout_s: float = LINUX_SYN_TIMEOUT_S
    queue_limit: int | None = None
    discipline: Discipline = Discipline.FIFO
    timeout_s: float | None = None


OVERFLOW_PODS_PER_NODE = 838
"""Pods per node in the overflow range: 100.64.0.0/10 (RFC 6598, 4,194,304 addresses) over 5,000 nodes."""


def pod_ip(node_index: int, k: int) -> str:
    """The address of the k-th pod (from 0) on the node at ``node_index`` when none is given: kind's pod CIDRs,
    ``10.244.<node index>.<k + 2>``, for the first 256 nodes and 253 pods a node; beyond (a 5,000-node cluster, or
    more pods on a node than a /24 holds), ``100.64.0.0/10`` numbered by node and pod, so that every generated
    address is a valid and distinct IPv4 address (past 838 pods on one node: none, which validation refuses).

    >>> pod_ip(1, 0), pod_ip(300, 0), pod_ip(1, 253)
    ('10.244.1.2', '100.67.214.8', '100.64.4.67')
    """
    if node_index < 256 and k < 253:
        return f"10.244.{node_index}.{k + 2}"
    if k >= OVERFLOW_PODS_PER_NODE:
        return f"(pod {k} on node {node_index}: past {OVERFLOW_PODS_PER_NODE} generated addresses a node)"
    return str(ipaddress.IPv4Address(0x64400000 + node_index * OVERFLOW_PODS_PER_NODE + k))


def affinity_timeout(value: float | None, error: Callable[[str], SpecError]) -> float:
    """sessionAffinityConfig.clientIP.timeoutSeconds (s): the API's default when None, else its upper bound
    checked; ``error(problem)`` makes the SpecError for the field."""
    if value is None:
        return DEFAULT_AFFINITY_TIMEOUT_S
    if value > MAX_AFFINITY_TIMEOUT_S:
        raise error(f"must be <= {MAX_AFFINITY_TIMEOUT_S:g}, got {value:g}")
    return value


class Addresses:
    """Pod addresses handed out node by node as a reader meets pods (kind's scheme, ``pod_ip``); every pod takes
    its node's next slot, so a pod given its own address still moves the count on, as in a scenario file."""

    def __init__(self, nodes: Iterable[str]) -> None:
        self.index = {node: i for i, node in enumerate(nodes)}
        self.count: dict[str, int] = {}

    def take(self, node: str, given: str | None = None) -> str:
        """The address of the next pod on ``node``: ``given`` if it has one, else the generated one."""
        k = self.count.get(node, 0)
        self.count[node] = k + 1
        return given if given is not None else pod_ip(self.index[node], k)


def pod(
    name: str, node: str, ip: str, defaults: Defaults, labels: Mapping[str, str] | None = None, **fields: Any
) -> Pod:
    """A Pod taking what it does not say from ``defaults`` (service time, workers, queue limit, discipline)."""
    values: dict[str, Any] = {
        "service_time": defaults.service_time,
        "concurrency": defaults.concurrency,
        "queue_limit": defaults.queue_limit,
        "discipline": defaults.discipline,
    }
    values.update(fields)
    return Pod(name=name, node=node, ip=ip, labels=dict(labels or {}), **values)


def conditions(ready: bool | None, serving: bool | None, terminating: bool | None) -> tuple[bool, bool, bool]:
    """An EndpointSlice endpoint's (ready, serving, terminating) with the API's defaults for missing fields
    (``k8s.io/api/discovery/v1/types.go`` ``EndpointConditions``): ready unknown is ready, serving unknown defers
    to ready, terminating unknown is not terminating. (kube-proxy's ``endpointslicecache.go`` ``addEndpoints``
    reads an unknown serving as true; the two differ only for an endpoint not ready, terminating, serving unset,
    which the EndpointSlice controller never writes.)"""
    is_ready = ready is None or ready
    return is_ready, is_ready if serving is None else serving, bool(terminating)


def endpoint(
    address: str,
    *,
    ready: bool | None = None,
    serving: bool | None = None,
    terminating: bool | None = None,
    node_name: str | None = None,
    zone: str | None = None,
    zone_hints: Iterable[str] = (),
    node_hints: Iterable[str] = (),
    pod: str | None = None,
    cilium_only: bool = False,
    ports: tuple[tuple[str, int], ...] = (),
) -> Endpoint:
    """One endpoint ``"IP:port"`` as an EndpointSlice gives it: conditions defaulted as the API says, hints empty
    when absent."""
    r, s, t = conditions(ready, serving, terminating)
    zones, nodes = frozenset(zone_hints), frozenset(node_hints)
    return Endpoint(address, r, s, t, node_name, zone or None, zones or None, nodes or None, pod, cilium_only, ports)


def scenario(path: Path, **fields: Any) -> Scenario:
    """Build (and so validate) a Scenario; a problem it finds is reported against ``path``, the file read."""
    try:
        return Scenario(**fields)
    except SpecError as e:
        if e.path == SCENARIO:
            raise SpecError(str(path), e.field, e.problem) from None
        raise
