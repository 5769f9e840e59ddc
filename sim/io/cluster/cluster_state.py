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

from sim.cluster import Endpoint, Pod, Service, ServicePort, namespace_of
from sim.errors import SpecError
from sim.io.cluster import builders
from sim.io.cluster.builders import Addresses, Defaults
from sim.io.cluster.objects import KNode, KPod, KPort, KService, KSlice, Objects
from sim.routing import cilium_port_matches

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


def _target_port(svc: KService, port: KPort, pods: list[KPod], notes: list[str]) -> int:
    """A port's endpoints' port: targetPort as a number, or a named one resolved on the selected pods' containers
    (the first selected pod with a container port of that name, as the EndpointSlice controller finds it per pod)."""
    if isinstance(port.target_port, int):
        return port.target_port or port.port
    selector = svc.fields["selector"]
    for pod in pods:
        selected = selector and all(pod.labels.get(k) == v for k, v in selector.items())
        if selected and namespace_of(pod.name) == namespace_of(svc.name) and port.target_port in pod.ports:
            return pod.ports[port.target_port]
    notes.append(f"Service {svc.name}: targetPort {port.target_port!r} names no port of its pods: {port.port} assumed")
    return port.port


def _service(ks: KService, placed: list[KPod], notes: list[str]) -> Service:
    """The Service with every port, named targetPorts resolved (0 where the target is the port itself)."""
    fields = dict(ks.fields)
    timeout = fields.pop("session_affinity_timeout_s")
    fields["session_affinity_timeout_s"] = builders.affinity_timeout(timeout, _timeout_error(ks))
    ports = []
    for p in ks.ports or (KPort("", 80, 80, 0),):  # a skipped Service may have none
        target = _target_port(ks, p, placed, notes)
        ports.append(ServicePort(p.name, p.port, 0 if target == p.port else target, p.node_port))
    first = ports[0]
    return Service(
        name=ks.name,
        port=first.port,
        port_name=first.name,
        target_port=first.target_port,
        node_port=first.node_port,
        other_ports=tuple(ports[1:]),
        **fields,
    )


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
                host_network=kp.host_network,
            )
        )
    by_name = {p.name: p for p in out.pods}
    kservices = {}
    for ks in objects.services:
        if ks.skip:
            out.notes.append(f"Service {ks.name}: {ks.skip}: skipped, as kube-proxy skips it")
            continue
        out.services.append(_service(ks, placed, out.notes))
        kservices[ks.name] = ks
    first_node = nodes[0].name if nodes else ""
    services = {s.name: s for s in out.services}
    for sl in [*objects.slices, *_mirrored(objects, kservices, out.notes)]:
        found = services.get(sl.service)
        if found is None:
            out.notes.append(f"EndpointSlice {sl.name}: its Service {sl.service} is not given: ignored")
            continue
        out.given[sl.service] = _joined(sl, found, out, by_name, addresses, defaults, first_node)
    return out


def _mirrored(objects: Objects, kservices: dict[str, KService], notes: list[str]) -> list[KSlice]:
    """The core/v1 Endpoints the EndpointSliceMirroring controller mirrors into slices: those of a given Service
    with no selector (``endpointslicemirroring_controller.go`` ``syncEndpoints``: a Service with a selector is the
    EndpointSlice controller's, and an Endpoints object without its Service is not mirrored)."""
    out = []
    for sl in objects.endpoints:
        ks = kservices.get(sl.service)
        if ks is None:
            notes.append(f"Endpoints {sl.service}: no Service {sl.service} given: not mirrored")
        elif not ks.fields["selector"]:
            out.append(sl)
    return out


def _slice_ports(sl: KSlice, svc: Service) -> list[tuple[int, bool]]:
    """The slice's ports that serve the Service's first port, each with whether only Cilium joins it: kube-proxy
    joins by equal port names (``endpointslicecache.go``), Cilium also an unnamed one (``cilium_port_matches``)."""
    exact = sl.ports.get(svc.port_name)
    ports = [(exact, False)] if exact is not None else []
    ports += [
        (n, True) for name, n in sl.ports.items() if name != svc.port_name and cilium_port_matches(svc.port_name, name)
    ]
    return ports


def _joined(
    sl: KSlice,
    svc: Service,
    out: ClusterParts,
    by_name: dict[str, Pod],
    addresses: Addresses,
    defaults: Defaults,
    first_node: str,
) -> tuple[Endpoint, ...]:
    """The Service's endpoints so far with one slice's added (kube-proxy's ``endpointslicecache.go``: a duplicate
    ``IP:port`` is dropped): one per address and first-port match (the ones only Cilium reads marked
    ``cilium_only``); each carries the slice's ports by name when the Service has several, so every port is joined
    by its name (``ServicePortName``), the first port too."""
    endpoints = list(out.given.get(sl.service, ()))
    have = {ep.address for ep in endpoints}
    names = {p.name for p in svc.ports}
    ports = tuple(sorted((n, p) for n, p in sl.ports.items() if n in names)) if svc.other_ports else ()
    # the address takes the first port's number; a slice without the first port, another's (its ``ports`` say
    # which ports the endpoint has, and ``ControlPlane.endpoints`` readdresses it per port)
    firsts = _slice_ports(sl, svc) or [(number, False) for _, number in ports[:1]]
    if not firsts:  # a slice with none of the Service's ports: none of its endpoints is joined
        return tuple(endpoints)
    for kep in sl.endpoints:
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
        for index, ip in enumerate((kep.address, *kep.more_addresses)):
            for port, only_cilium in firsts:
                address = _host_port(ip, port)
                if address in have:
                    continue
                have.add(address)
                endpoints.append(
                    builders.endpoint(
                        address,
                        ready=kep.ready,
                        serving=kep.serving,
                        terminating=kep.terminating,
                        node_name=kep.node,
                        zone=kep.zone,
                        zone_hints=kep.for_zones,
                        node_hints=kep.for_nodes,
                        pod=pod,
                        cilium_only=only_cilium or index > 0,
                        ports=ports,
                    )
                )
    return tuple(sorted(endpoints, key=lambda ep: ep.address))
