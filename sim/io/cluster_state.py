"""Cluster state from Kubernetes objects: pods placed, Services, and each Service's endpoints, built through the
same builders as a scenario file's.

Endpoints: where EndpointSlices name a Service, they win (joined by the ``kubernetes.io/service-name`` label, the
Service's port found in each slice by port name, duplicates across slices dropped by ``IP:port`` as kube-proxy's
``endpointslicecache.go`` does). Where none does, the Scenario derives them as the EndpointSlice controller would
(``sim.cluster.endpoints_for``: selector in the Service's namespace, then ``sim.routing.generate_hints``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from sim.cluster import Endpoint, Pod, Service, namespace_of
from sim.errors import SpecError
from sim.io import builders
from sim.io.builders import Addresses, Defaults
from sim.io.kubernetes import KNode, KPod, KService, Objects

SERVING_PHASES = ("Running", "Unknown")


@dataclass
class ClusterParts:
    """What a Scenario takes from cluster state."""

    pods: list[Pod] = field(default_factory=list)
    services: list[Service] = field(default_factory=list)
    given: dict[str, tuple[Endpoint, ...]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def _host_port(address: str, port: int) -> str:
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def _target_port(svc: KService, pods: list[KPod], notes: list[str]) -> int:
    """The endpoints' port: targetPort as a number, or a named one resolved on the selected pods' containers."""
    port = int(svc.fields["port"])
    if isinstance(svc.target_port, int):
        return svc.target_port or port
    selector = svc.fields["selector"]
    for pod in pods:
        selected = selector and all(pod.labels.get(k) == v for k, v in selector.items())
        if selected and namespace_of(pod.name) == namespace_of(svc.name) and svc.target_port in pod.ports:
            return pod.ports[svc.target_port]
    notes.append(f"Service {svc.name}: targetPort {svc.target_port!r} names no port of its pods: {port} assumed")
    return port


def _timeout_error(ks: KService) -> Callable[[str], SpecError]:
    return lambda why: SpecError(ks.file, f"Service {ks.name}: spec.sessionAffinityConfig.clientIP.timeoutSeconds", why)


def cluster_parts(
    objects: Objects, nodes: list[KNode], placed: list[KPod], addresses: Addresses, defaults: Defaults
) -> ClusterParts:
    """Pods (Running/Unknown ones; the others reported), Services (headless and ExternalName ones reported and
    left out, as kube-proxy skips them) and the given endpoints, by Service."""
    out = ClusterParts()
    for kp in placed:
        if kp.phase not in SERVING_PHASES and (kp.phase != "Pending" or kp.ip is None):
            out.notes.append(f"Pod {kp.name}: phase {kp.phase}: not running, left out")
            continue
        ip = addresses.take(kp.node or "", kp.ip)
        out.pods.append(
            builders.pod(
                kp.name,
                kp.node or "",
                ip,
                defaults,
                kp.labels,
                ready=kp.ready and kp.phase in SERVING_PHASES,
                terminating=kp.terminating,
            )
        )
    by_name = {p.name: p for p in out.pods}
    kservices = {}
    for ks in objects.services:
        if ks.skip:
            out.notes.append(f"Service {ks.name}: {ks.skip}: skipped, as kube-proxy skips it")
            continue
        fields = dict(ks.fields)
        timeout = fields.pop("session_affinity_timeout_s")
        fields["session_affinity_timeout_s"] = builders.affinity_timeout(timeout, _timeout_error(ks))
        target = _target_port(ks, placed, out.notes)
        out.services.append(Service(name=ks.name, target_port=0 if target == fields["port"] else target, **fields))
        kservices[ks.name] = ks
    first_node = nodes[0].name if nodes else ""
    for sl in objects.slices:
        found = kservices.get(sl.service)
        if found is None:
            out.notes.append(f"EndpointSlice {sl.name}: its Service {sl.service} is not given: ignored")
            continue
        port = sl.ports.get(found.port_name)
        have = {ep.address for ep in out.given.get(sl.service, ())}
        endpoints = list(out.given.get(sl.service, ()))
        for kep in sl.endpoints:
            if port is None:
                break
            address = _host_port(kep.address, port)
            if address in have:
                continue
            have.add(address)
            pod = kep.pod
            if pod is None or pod not in by_name:
                pod = pod or f"{namespace_of(sl.service)}/endpoint-{kep.address}"
                node = kep.node or first_node
                if pod not in by_name:
                    by_name[pod] = builders.pod(pod, node, addresses.take(node, kep.address), defaults)
                    out.pods.append(by_name[pod])
                    out.notes.append(
                        f"EndpointSlice {sl.name}: endpoint {kep.address}: pod {pod} not given: "
                        f"simulated as a bare pod on node {node}"
                    )
            endpoints.append(
                builders.endpoint(
                    address,
                    ready=kep.ready,
                    serving=kep.serving,
                    terminating=kep.terminating,
                    node=kep.node,
                    zone=kep.zone,
                    for_zones=kep.for_zones,
                    for_nodes=kep.for_nodes,
                    pod=pod,
                )
            )
        out.given[sl.service] = tuple(sorted(endpoints, key=lambda ep: ep.address))
    return out
