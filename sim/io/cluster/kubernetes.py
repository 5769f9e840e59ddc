"""Kubernetes objects as ``kubectl get ... -o yaml|json`` prints them and as manifests keep them: files,
directories and ``-`` (stdin), YAML (``---`` documents, read with ``yaml.safe_load_all`` only) or JSON
(``kind: List``), into typed objects.

Kinds read: Node, Pod, Service, EndpointSlice (``discovery.k8s.io/v1``), Endpoints (``v1``), Deployment,
ReplicaSet, StatefulSet, DaemonSet, and kind ``Cluster`` configs (``sim.io.cluster.kind``). Other kinds are counted and
skipped. Names are ``namespace/name`` (``default`` when absent). An invalid object raises SpecError naming the file,
``Kind namespace/name``, the field and the problem. An object given twice (same kind, namespace and name) is read
once when the copies are identical, and is an error naming both files when they differ.
"""

from __future__ import annotations

import json
import math
import re
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from sim.cluster import (
    MAX_NODES,
    MAX_PODS,
    MAX_SERVICES,
    ZONE_LABEL,
    ServiceType,
    TrafficPolicy,
)
from sim.errors import SpecError, shown
from sim.io.cluster.fields import KObject, label_selector, requirement
from sim.io.cluster.kind import kind_nodes, merged_nodes
from sim.io.cluster.objects import (
    DEPRECATED_ZONE_LABEL,
    OBJECT_SUFFIXES,
    SERVICE_NAME_LABEL,
    SERVICE_TYPES,
    TAINT_EFFECTS,
    WORKLOAD_KINDS,
    KEndpoint,
    KNode,
    KPod,
    KPort,
    KService,
    KSlice,
    KWorkload,
    Objects,
    Scheduling,
    Taint,
    Toleration,
)
from sim.io.cluster.podspec import pod_affinity, priority_class, quantity, scheduling_extras
from sim.io.cluster.schema import SELECTOR, SERVICE_FIELDS, from_object
from sim.io.typed import read_text, type_name
from sim.io.yamlfile import json_document, yaml_documents

MAX_OBJECTS_BYTES = 1 << 30
"""The largest Kubernetes object file read (a ``kubectl get -o yaml`` of 150,000 pods is a few hundred MB)."""

# --- files -----------------------------------------------------------------------------------------------------


def source_files(sources: Sequence[str | Path]) -> list[Path | str]:
    """The files to read: each file as given, each directory's ``*.yaml``/``*.yml``/``*.json`` (recursively, in
    sorted order), and ``-`` for stdin."""
    files: list[Path | str] = []
    for src in sources:
        if str(src) == "-":
            files.append("-")
            continue
        path = Path(src)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in OBJECT_SUFFIXES)
            if not found:
                raise SpecError(str(path), "", "a directory with no .yaml, .yml or .json file")
            files.extend(found)
        elif not path.exists():
            raise SpecError(str(path), "", "no such file")
        else:
            files.append(path)
    return files


def documents(file: Path | str, text: str | None = None) -> list[Any]:
    """The documents of one file (``-``: stdin): JSON when it starts with ``{`` or ``[``, else YAML; both read
    with bounds on size, depth and alias expansion (``sim.io.yamlfile``)."""
    label = str(file)
    if text is None and label == "-":
        try:
            text = sys.stdin.read(MAX_OBJECTS_BYTES + 1)
        except UnicodeDecodeError as e:
            raise SpecError(label, "", f"not UTF-8 text: {e.reason}") from None
        if len(text) > MAX_OBJECTS_BYTES:
            raise SpecError(
                label,
                "",
                f"is more than {MAX_OBJECTS_BYTES:,} characters; a Kubernetes object file may have at most that",
            )
    elif text is None:  # a regular file, bounded: a FIFO or a device is refused before a byte is read
        text = read_text(Path(file), MAX_OBJECTS_BYTES, "Kubernetes object file")
    if text.lstrip().startswith(("{", "[")):
        try:
            return [json_document(label, text)]
        except json.JSONDecodeError:
            pass  # YAML flow style also starts with "{": let the YAML reader say what is wrong
    return yaml_documents(label, text)


def read_objects(sources: Sequence[str | Path]) -> Objects:
    """Read every object of the given files, directories and ``-`` into typed objects."""
    out = Objects()
    seen: dict[tuple[str, str], tuple[str, dict[str, Any]]] = {}
    origins: list[str] = []  # per node of out.nodes: the kind config it came from, or "" for a Node object
    for file in source_files(sources):
        label = str(file)
        out.files.append(label)
        for n, doc in enumerate(documents(file), 1):
            for item in _items(label, n, doc):
                kind = item.get("kind")
                api = item.get("apiVersion", "")
                if kind == "Cluster" and isinstance(api, str) and api.startswith("kind.x-k8s.io/"):
                    made = kind_nodes(label, item)
                    origins.extend([label] * len(made))
                    out.nodes.extend(made)
                    out.kind_cluster = True
                    continue
                reader = _READERS.get(kind) if isinstance(kind, str) else None
                if reader is None:
                    out.skipped[str(kind)] += 1
                    continue
                obj = KObject(label, item)
                if _seen_before(obj, seen):
                    continue
                reader(obj, out)
                origins.extend([""] * (len(out.nodes) - len(origins)))
    given = {name.partition("/")[2]: f for (kind, name), (f, _) in seen.items() if kind == "Node"}
    out.nodes = merged_nodes(out.nodes, origins, given)
    _check_sizes(out)
    return out


def _seen_before(obj: KObject, seen: dict[tuple[str, str], tuple[str, dict[str, Any]]]) -> bool:
    """Whether this object (kind and ``namespace/name``) was read already: an identical copy is dropped quietly;
    one with different content is an error naming both files (the API server would hold only one)."""
    key = (obj.object_kind, obj.name)
    if key not in seen:
        seen[key] = (obj.file, obj.data)
        return False
    first_file, first = seen[key]
    if first == obj.data:
        return True
    where = f"in {first_file}" if first_file != obj.file else "earlier in the same file"
    raise obj.error("", f"given twice with different content: also {where}")


def _check_sizes(out: Objects) -> None:
    """Kubernetes' own limits, before any pod is placed: 5,000 nodes, 150,000 pods (those given plus the replicas
    the workloads ask for), 10,000 Services."""
    desired = len(out.pods) + sum(w.replicas for w in out.workloads if not w.owner)
    for what, n, limit in (
        ("nodes", len(out.nodes), MAX_NODES),
        ("pods (given and replicas)", desired, MAX_PODS),
        ("Services", len(out.services), MAX_SERVICES),
    ):
        if n > limit:
            raise SpecError(", ".join(out.files)[:200], "", f"{n:,} {what}: Kubernetes supports at most {limit:,}")


def _items(label: str, n: int, doc: Any) -> Iterable[dict[str, Any]]:
    if doc is None:
        return []
    if not isinstance(doc, dict):
        raise SpecError(label, f"document {n}", f"must be a Kubernetes object (a mapping), got {type_name(doc)}")
    if doc.get("kind") == "List" or (isinstance(doc.get("kind"), str) and doc["kind"].endswith("List")):
        items = doc.get("items") or []
        if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
            raise SpecError(label, f"document {n}: items", "must be a list of Kubernetes objects")
        kind = doc["kind"][: -len("List")] if doc["kind"] != "List" else ""
        return [_with_kind(item, kind) for item in items]
    return [doc]


def _with_kind(item: dict[str, Any], list_kind: str) -> dict[str, Any]:
    """A List item; one without ``kind`` (some tools strip it) takes the List's (``NodeList``), or is taken as a
    Node when it has ``status.nodeInfo``, which only Nodes have."""
    if "kind" in item:
        return item
    status = item.get("status")
    if list_kind:
        return {**item, "kind": list_kind}
    if isinstance(status, dict) and "nodeInfo" in status:
        return {**item, "kind": "Node"}
    return item


_PORT_NAME = re.compile(r"(?=.{1,15}$)(?=.*[a-z])[a-z0-9]+(-[a-z0-9]+)*")
"""``validation.IsValidPortName`` (IANA_SVC_NAME): 1-15 lowercase letters, digits and inner dashes, a letter."""
MAX_CPU_CORES = 1e6
"""The most CPU cores a node may allocate: far above any machine (a quantity past it, NaN or inf is refused)."""
_CPU = re.compile(r"^([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(m|k|M|G)?$")


def cpu_cores(text: object) -> float | None:
    """A CPU quantity in cores (``"3500m"`` -> 3.5, ``"4"`` -> 4.0), or None if it is not one.

    >>> cpu_cores("3500m"), cpu_cores("4"), cpu_cores(2), cpu_cores("lots"), cpu_cores(float("nan"))
    (3.5, 4.0, 2.0, None, None)
    >>> cpu_cores("9" * 400), cpu_cores(10**400)
    (None, None)
    """
    if isinstance(text, bool):
        return None
    if isinstance(text, (int, float)):
        cores = float(text) if abs(text) < 1e300 else math.inf  # a 400-digit int: no OverflowError
    else:
        match = _CPU.match(str(text).strip())
        if match is None:
            return None
        scale = {"m": 1e-3, None: 1.0, "k": 1e3, "M": 1e6, "G": 1e9}[match.group(2)]
        cores = float(match.group(1)) * scale
    return cores if math.isfinite(cores) and 0 <= cores <= MAX_CPU_CORES else None


def _condition(o: KObject, kind: str) -> bool | None:
    """``status.conditions[type=kind].status == "True"``; None when the object has no such condition."""
    for fld, cond in o.items("status.conditions"):
        if cond.get("type") == kind:
            status = cond.get("status")
            if status not in ("True", "False", "Unknown"):
                raise o.error(f"{fld}.status", f"must be 'True', 'False' or 'Unknown', got {shown(status)}")
            return status == "True"
    return None


def _node(o: KObject, out: Objects) -> None:
    """Node: labels (zone from topology.kubernetes.io/zone), allocatable CPU, taints, the Ready condition."""
    name = o.short
    labels = o.strings("metadata.labels")
    cpu_raw = o.get("status.allocatable.cpu", (str, int, float), None)
    cpu = 0.0 if cpu_raw is None else cpu_cores(cpu_raw)
    if cpu is None:
        raise o.error("status.allocatable.cpu", f"not a CPU quantity: {shown(cpu_raw)} (e.g. '3500m' or '4')")
    taints = []
    for fld, t in o.items("spec.taints"):
        key = o.get("key", str, None, t)
        if not key:
            raise o.error(f"{fld}.key", "is required")
        effect = o.one_of("effect", TAINT_EFFECTS, None, t, f"{fld}.effect")
        if effect is None:
            raise o.error(f"{fld}.effect", "is required")
        taints.append(Taint(key, o.get("value", str, "", t), effect))
    if o.get("spec.unschedulable", bool, False):
        taints.append(Taint("node.kubernetes.io/unschedulable", "", "NoSchedule"))
    memory, pods = (_allocatable(o, name) for name in ("memory", "pods"))
    ready = _condition(o, "Ready")
    if o.get("spec.providerID", str, "").startswith("kind://"):
        out.kind_cluster = True  # kind's nodes are containers on one Docker bridge
    if ZONE_LABEL not in labels and DEPRECATED_ZONE_LABEL in labels:
        out.notes.append(
            f"{o.file}: Node {name}: only the deprecated {DEPRECATED_ZONE_LABEL} label: the EndpointSlice "
            f"controller and kube-proxy read {ZONE_LABEL}, so the node has no zone"
        )
    out.nodes.append(KNode(name, labels, cpu, tuple(taints), ready is None or ready, memory=memory, pods=pods))


def _allocatable(o: KObject, resource: str) -> int:
    """``status.allocatable.<resource>`` as an integer (memory in bytes), 0 when not given."""
    raw = o.get(f"status.allocatable.{resource}", (str, int, float), None)
    value = None if raw is None else quantity(raw)
    if raw is not None and (value is None or value < 0):
        raise o.error(f"status.allocatable.{resource}", f"not a resource quantity: {raw!r}")
    return round(value or 0)


def _scheduling(o: KObject, spec: Any, where: str, labels: dict[str, str]) -> Scheduling:
    """A pod spec's nodeSelector, required node affinity, tolerations, required pod anti-affinity, priority and
    what ``podspec`` reads (``labels``: the pod's, for matchLabelKeys)."""
    required = o.get("affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution", dict, None, spec)
    terms = []
    if required is not None:
        path = f"{where}.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution"
        for f, term in o.items("nodeSelectorTerms", required, f"{path}.nodeSelectorTerms"):
            exprs = tuple(requirement(o, e, g) for g, e in o.items("matchExpressions", term, f"{f}.matchExpressions"))
            fields = tuple(requirement(o, e, g) for g, e in o.items("matchFields", term, f"{f}.matchFields"))
            terms.append((exprs, fields))
    tolerations = []
    for f, t in o.items("tolerations", spec, f"{where}.tolerations"):
        op = o.one_of("operator", ("Equal", "Exists"), "Equal", t, f"{f}.operator")
        effect = o.get("effect", str, "", t)
        if effect and effect not in TAINT_EFFECTS:
            raise o.error(f"{f}.effect", f"unknown value {shown(effect)}; expected one of {list(TAINT_EFFECTS)}")
        tolerations.append(Toleration(o.get("key", str, "", t), op, o.get("value", str, "", t), effect))
    anti = pod_affinity(o, spec, where, "podAntiAffinity")
    return Scheduling(
        o.strings("nodeSelector", spec, f"{where}.nodeSelector"),
        tuple(terms),
        tuple(tolerations),
        anti,
        priority=o.get("priority", int, None, spec),
        priority_class=o.get("priorityClassName", str, "", spec),
        **scheduling_extras(o, spec, where, labels),
    )


def _container_ports(o: KObject, spec: Any, where: str) -> dict[str, int]:
    """Named container ports of a pod spec (what a named targetPort resolves to)."""
    ports: dict[str, int] = {}
    for f, c in o.items("containers", spec, f"{where}.containers"):
        for g, p in o.items("ports", c, f"{f}.ports"):
            number = o.get("containerPort", int, None, p)
            name = o.get("name", str, "", p)
            if number is None:
                raise o.error(f"{g}.containerPort", "is required")
            if name:
                ports[name] = number
    return ports


def _pod(o: KObject, out: Objects) -> None:
    """Pod: node, labels, phase, the Ready condition, deletionTimestamp (terminating), podIP, hostNetwork. A pod without
    status is a manifest: taken as Running and Ready once placed."""
    spec = o.get("spec", dict, {})
    status = o.get("status", dict, {})
    has_status = bool(status.get("phase"))
    phase = o.one_of("status.phase", ("Pending", "Running", "Succeeded", "Failed", "Unknown"), "Running")
    ready = _condition(o, "Ready")
    if has_status and ready is None and phase == "Running":
        out.notes.append(
            f"{o.file}: Pod {o.name}: Running with no Ready condition: not ready (IsPodReady, "
            "k8s.io/kubernetes/pkg/api/v1/pod/util.go: no condition is not ready)"
        )
    node = o.get("nodeName", str, None, spec)
    labels = o.strings("metadata.labels")
    out.pods.append(
        KPod(
            name=o.name,
            node=node,
            labels=labels,
            phase=phase if has_status else "Running",
            ready=bool(ready) if has_status else True,
            terminating=o.get("metadata.deletionTimestamp", str, None) is not None,
            ip=o.get("status.podIP", str, None),
            scheduling=_scheduling(o, spec, "spec", labels),
            ports=_container_ports(o, spec, "spec"),
            has_status=has_status,
            file=o.file,
            owner=_controller(o),
            host_network=o.get("hostNetwork", bool, False, spec),
        )
    )


def _controller(o: KObject) -> str:
    """``metadata.ownerReferences``: the controller's ``kind/namespace/name`` (the first owner without one)."""
    owners = [r for r in o.get("metadata.ownerReferences", list, []) if isinstance(r, dict) and r.get("name")]
    first = next((r for r in owners if r.get("controller")), owners[0] if owners else None)
    return f"{first.get('kind', '')}/{o.namespace}/{first['name']}" if first else ""


def _service(o: KObject, out: Objects) -> None:
    """Service: type, selector, every port (targetPort defaulting to port, nodePort), and the fields of
    ``schema.SERVICE_FIELDS``; of those, what only a LoadBalancer has (the load balancer's ingress, its source
    ranges, an eTP=Local one's healthCheckNodePort) kept only on one."""
    kind = o.one_of("spec.type", SERVICE_TYPES, ServiceType.CLUSTER_IP.value)
    cluster_ip = o.get("spec.clusterIP", str, "")
    skip = ""
    if kind == "ExternalName":
        skip = "type ExternalName (a DNS alias: no proxy rules)"
    elif cluster_ip == "None":
        skip = "headless (clusterIP: None: no proxy rules, clients resolve the pods directly)"
    selector = from_object(o, (SELECTOR,))
    ports = _service_ports(o, out, kind, skip)
    fields = from_object(o, SERVICE_FIELDS)
    balanced = kind == ServiceType.LOAD_BALANCER
    health = fields["health_check_node_port"]
    local = fields["external_traffic_policy"] == TrafficPolicy.LOCAL
    if balanced and local and not health:
        health = _allocate_node_port(out, ports)
        out.notes.append(f"{o.file}: Service {o.name}: no healthCheckNodePort given: {health} assumed")
    ingress = [o.get("ip", str, "", i) for _, i in o.items("status.loadBalancer.ingress")]
    if o.get("spec.publishNotReadyAddresses", bool, False) and not skip:
        out.notes.append(
            f"{o.file}: Service {o.name}: publishNotReadyAddresses is not modelled: endpoints not "
            "given by EndpointSlices follow the pods' readiness"
        )
    fields.update(
        selector,
        type=ServiceType(kind) if kind != "ExternalName" else None,
        health_check_node_port=health if balanced and local else 0,
        load_balancer_source_ranges=fields["load_balancer_source_ranges"] if balanced else (),
        load_balancer_ips=tuple(ip for ip in ingress if ip) if balanced else (),
    )
    out.services.append(KService(o.name, fields, tuple(ports), skip, o.file))


def _service_ports(o: KObject, out: Objects, kind: str, skip: str) -> list[KPort]:
    """``spec.ports``: each port, targetPort (a number, or a name resolved later on the pods), and nodePort,
    allocated when a NodePort or LoadBalancer Service leaves it out (``allocateLoadBalancerNodePorts``)."""
    items = o.items("spec.ports")
    if not items and not skip:
        raise o.error("spec.ports", "is required: at least one port")
    allocate = kind == "NodePort" or (
        kind == "LoadBalancer" and o.get("spec.allocateLoadBalancerNodePorts", bool, True)
    )
    ports: list[KPort] = []
    for f, raw in items:
        port = o.get("port", int, None, raw)
        if port is None or not 1 <= port <= 65535:
            raise o.error(f"{f}.port", f"is required: an integer 1-65535, got {shown(port)}")
        target = o.get("targetPort", (int, str), port, raw)
        if isinstance(target, int) and not 1 <= target <= 65535:
            raise o.error(f"{f}.targetPort", f"must be 1-65535 or a port name, got {shown(target)}")
        if isinstance(target, str) and target.isascii() and target.isdigit():
            target = int(target) if len(target) <= 5 and 1 <= int(target) <= 65535 else 0
        if target == 0 or (isinstance(target, str) and not _PORT_NAME.fullmatch(target)):
            got = shown(raw.get("targetPort"))
            raise o.error(f"{f}.targetPort", f"must be 1-65535 or a port name (IANA_SVC_NAME), got {got}")
        name = o.get("name", str, "", raw)
        if len(items) > 1 and not name:
            raise o.error(f"{f}.name", "is required when a Service has more than one port")
        node_port = o.get("nodePort", int, 0, raw)
        if not 0 <= node_port <= 65535:
            raise o.error(f"{f}.nodePort", f"must be a port 1-65535 (by default 30000-32767), got {shown(node_port)}")
        if kind == "ClusterIP":
            node_port = 0
        if allocate and not node_port:
            node_port = _allocate_node_port(out, ports)
            out.notes.append(f"{o.file}: Service {o.name}: {f}: no nodePort given: {node_port} assumed")
        ports.append(KPort(name, port, target, node_port))
    return ports


NODE_PORT_BASE = 30000
"""The first port of the default ``--service-node-port-range`` (30000-32767)."""


def _allocate_node_port(out: Objects, ports: Sequence[KPort]) -> int:
    """The lowest port from 30000 up that no Service read so far (nor ``ports``, this one's) has taken as a
    nodePort or healthCheckNodePort: the allocator hands both out of one range and never gives one twice."""
    taken = {p.node_port for s in out.services for p in s.ports} | {p.node_port for p in ports}
    taken |= {int(s.fields.get("health_check_node_port") or 0) for s in out.services}
    port = NODE_PORT_BASE
    while port in taken:
        port += 1
    return port


def _named_ports(o: KObject, base: Any, where: str) -> dict[str, int]:
    """The ``ports`` of an EndpointSlice (``base`` None) or of an Endpoints subset: number by name."""
    ports: dict[str, int] = {}
    for f, p in o.items("ports", base, where):
        number = o.get("port", int, None, p)
        if number is None or not 1 <= number <= 65535:
            raise o.error(f"{f}.port", f"is required: an integer 1-65535, got {shown(number)}")
        ports[o.get("name", str, "", p)] = number
    return ports


def _slice(o: KObject, out: Objects) -> None:
    """EndpointSlice (discovery.k8s.io/v1): endpoints with conditions (API defaults where absent), nodeName, zone,
    hints, targetRef, and the slice's ports; joined to its Service by the kubernetes.io/service-name label."""
    api = o.get("apiVersion", str, "")
    if api != "discovery.k8s.io/v1":
        raise o.error("apiVersion", f"must be 'discovery.k8s.io/v1', got {shown(api)}")
    service = o.strings("metadata.labels").get(SERVICE_NAME_LABEL)
    address_type = o.get("addressType", str, "IPv4")
    if address_type not in ("IPv4", "IPv6", "FQDN"):
        raise o.error("addressType", f"unknown value {shown(address_type)}; expected one of ['IPv4', 'IPv6', 'FQDN']")
    if not service or address_type == "FQDN":
        why = "no kubernetes.io/service-name label" if not service else "addressType FQDN"
        out.notes.append(f"{o.file}: EndpointSlice {o.name}: {why}: kube-proxy ignores it")
        return
    ports = _named_ports(o, None, "")
    endpoints = []
    for f, ep in o.items("endpoints"):
        addresses = o.get("addresses", list, [], ep)
        if not addresses or not all(isinstance(a, str) and a for a in addresses):
            raise o.error(f"{f}.addresses", "must be a list of at least one address")
        conds = o.get("conditions", dict, {}, ep)
        flags = [o.get(c, bool, None, conds) for c in ("ready", "serving", "terminating")]
        hints = o.get("hints", dict, {}, ep)
        zones = tuple(o.get("name", str, "", h) for _, h in o.items("forZones", hints, f"{f}.hints.forZones"))
        nodes = tuple(o.get("name", str, "", h) for _, h in o.items("forNodes", hints, f"{f}.hints.forNodes"))
        ref = o.get("targetRef", dict, {}, ep)
        pod = None
        if ref.get("kind", "Pod") == "Pod" and ref.get("name"):
            pod = f"{ref.get('namespace') or o.namespace}/{ref['name']}"
        endpoints.append(
            KEndpoint(
                addresses[0],  # kube-proxy uses the first address (endpointslicecache.go addEndpoints)
                flags[0],
                flags[1],
                flags[2],
                o.get("nodeName", str, None, ep),
                o.get("zone", str, None, ep),
                tuple(z for z in zones if z),
                tuple(n for n in nodes if n),
                pod,
                tuple(addresses[1:]),  # Cilium: one backend per address (ParseEndpointSliceV1)
            )
        )
    out.slices.append(KSlice(o.name, f"{o.namespace}/{service}", tuple(endpoints), ports, o.file))


def _workload(o: KObject, out: Objects) -> None:
    """Deployment, ReplicaSet, StatefulSet, DaemonSet: replicas (default 1; DaemonSet: one per eligible node), the
    pod template's labels and scheduling rules."""
    replicas = 0 if o.object_kind == "DaemonSet" else o.get("spec.replicas", int, 1)
    if not 0 <= replicas <= MAX_PODS:
        raise o.error("spec.replicas", f"must be 0-{MAX_PODS:,} (Kubernetes' pods in a cluster), got {shown(replicas)}")
    template = o.get("spec.template", dict, None)
    if template is None:
        raise o.error("spec.template", "is required")
    spec = o.get("spec", dict, {}, template)
    owners = o.get("metadata.ownerReferences", list, [])
    owner = next(
        (f"{o.namespace}/{r.get('name')}" for r in owners if isinstance(r, dict) and r.get("kind") == "Deployment"), ""
    )
    labels = o.strings("metadata.labels", template, "spec.template.metadata.labels")
    out.workloads.append(
        KWorkload(
            kind=o.object_kind,
            name=o.name,
            replicas=replicas,
            labels=labels,
            selector=label_selector(o, o.get("spec.selector", dict, None), "spec.selector"),
            scheduling=_scheduling(o, spec, "spec.template.spec", labels),
            ports=_container_ports(o, spec, "spec.template.spec"),
            owner=owner if o.object_kind == "ReplicaSet" else "",
            file=o.file,
            host_network=o.get("hostNetwork", bool, False, spec),
        )
    )


SKIP_MIRROR_LABEL = "endpointslice.kubernetes.io/skip-mirror"


def _endpoints(o: KObject, out: Objects) -> None:
    """core/v1 Endpoints, read as the EndpointSliceMirroring controller reads them
    (``pkg/controller/endpointslicemirroring``): each subset's ``addresses`` ready and ``notReadyAddresses`` not
    (``addressToEndpoint``: only the ready condition is set), with the subset's ports; an object labelled
    ``endpointslice.kubernetes.io/skip-mirror: "true"`` is not mirrored. Whether its Service is selectorless (the
    only ones mirrored) is decided once the Services are known."""
    if o.strings("metadata.labels").get(SKIP_MIRROR_LABEL) == "true":
        out.notes.append(f"{o.file}: Endpoints {o.name}: labelled {SKIP_MIRROR_LABEL}: not mirrored")
        return
    for f, subset in o.items("subsets"):
        ports = _named_ports(o, subset, f"{f}.ports")
        endpoints = []
        for key, ready in (("addresses", True), ("notReadyAddresses", False)):
            for g, a in o.items(key, subset, f"{f}.{key}"):
                ip = o.get("ip", str, None, a)
                if not ip:
                    raise o.error(f"{g}.ip", "is required")
                ref = o.get("targetRef", dict, {}, a)
                pod = f"{ref.get('namespace') or o.namespace}/{ref['name']}" if ref.get("kind") == "Pod" else None
                node = o.get("nodeName", str, None, a)
                endpoints.append(KEndpoint(ip, ready, None, None, node, None, (), (), pod))
        out.endpoints.append(KSlice(f"{o.name} {f}", o.name, tuple(endpoints), ports, o.file))


_READERS = {
    "Node": _node,
    "Pod": _pod,
    "Service": _service,
    "EndpointSlice": _slice,
    "Endpoints": _endpoints,
    "PriorityClass": priority_class,
    **dict.fromkeys(WORKLOAD_KINDS, _workload),
}
"""``kind`` -> its reader; one line per kind."""
