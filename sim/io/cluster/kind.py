"""kind ``Cluster`` configs (``kind.x-k8s.io/v1alpha4``): the Nodes kind creates, named as kind names them.

kind names nodes ``<cluster>-<role><n>``, the first of a role without a number (``kind-control-plane``,
``kind-worker``, ``kind-worker2``: ``pkg/cluster/internal/providers/common/namer.go`` ``MakeNodeNamer``).
kubeadm labels and taints control-plane nodes (``node-role.kubernetes.io/control-plane``, the
exclude-from-external-load-balancers label, and the ``NoSchedule`` taint); kind removes the taint when the
cluster is that one node (``pkg/cluster/internal/create/actions/kubeadminit/init.go``), and a
``kubeadmConfigPatches`` entry setting ``nodeRegistration.taints`` replaces it (``taints: []``: none).

Labels: kubelet registers every node with ``kubernetes.io/hostname``, ``kubernetes.io/os`` and
``kubernetes.io/arch`` (``pkg/kubelet/kubelet_node_status.go`` ``initialNode``: ``GOOS`` / ``GOARCH``; kind's
node images are ``linux``, and ``amd64`` is assumed for the architecture); then the node's ``labels`` and the
``node-labels`` a patch gives kubelet (``nodeRegistration.kubeletExtraArgs``, as a mapping or as kubeadm v1beta4's
list of ``{name, value}``), which kind passes as ``--node-labels`` (``pkg/cluster/internal/kubeadm/config.go``).
"""

from __future__ import annotations

from typing import Any

from sim.errors import SpecError
from sim.io.cluster.objects import CONTROL_PLANE_TAINT, HOSTNAME_LABEL, KNode, Taint
from sim.io.typed import type_name
from sim.io.yamlfile import yaml_documents

ROLES = ("control-plane", "worker")
EXCLUDE_FROM_LB = "node.kubernetes.io/exclude-from-external-load-balancers"
OS_LABEL = "kubernetes.io/os"
ARCH_LABEL = "kubernetes.io/arch"
KIND_OS, KIND_ARCH = "linux", "amd64"
"""What kubelet's ``goruntime.GOOS`` / ``GOARCH`` are in a kind node (its images are Linux; amd64 assumed)."""


def kind_nodes(file: str, doc: dict[str, Any]) -> list[KNode]:
    """The Nodes of one kind Cluster config, in the config's order."""
    cluster = doc.get("name") or "kind"
    where = f"Cluster {cluster}"
    if doc.get("apiVersion") != "kind.x-k8s.io/v1alpha4":
        raise SpecError(
            file, f"{where}: apiVersion", f"must be 'kind.x-k8s.io/v1alpha4', got {doc.get('apiVersion')!r}"
        )
    raw_nodes = doc.get("nodes") or [{"role": "control-plane"}]
    if not isinstance(raw_nodes, list):
        raise SpecError(file, f"{where}: nodes", f"must be a list, got {type_name(raw_nodes)}")
    counter: dict[str, int] = {}
    nodes = []
    for i, raw in enumerate(raw_nodes):
        fld = f"{where}: nodes[{i}]"
        if not isinstance(raw, dict):
            raise SpecError(file, fld, f"must be a mapping, got {type_name(raw)}")
        role = raw.get("role", "control-plane")
        if role not in ROLES:
            raise SpecError(file, f"{fld}.role", f"unknown value {role!r}; expected one of {list(ROLES)}")
        count = counter.get(role, 0) + 1
        counter[role] = count
        name = f"{cluster}-{role}{count if count > 1 else ''}"
        labels = raw.get("labels") or {}
        if not isinstance(labels, dict) or not all(isinstance(v, str) for v in labels.values()):
            raise SpecError(file, f"{fld}.labels", "must be a mapping of strings")
        node_labels = {HOSTNAME_LABEL: name, OS_LABEL: KIND_OS, ARCH_LABEL: KIND_ARCH}
        taints: tuple[Taint, ...] = ()
        if role == "control-plane":
            node_labels.update({CONTROL_PLANE_TAINT: "", EXCLUDE_FROM_LB: ""})
            taints = (Taint(CONTROL_PLANE_TAINT, "", "NoSchedule"),) if len(raw_nodes) > 1 else ()
        patches = _patches(file, f"{fld}.kubeadmConfigPatches", raw.get("kubeadmConfigPatches") or [])
        patched = _patched_taints(file, f"{fld}.kubeadmConfigPatches", patches)
        if patched is not None:
            taints = patched
        node_labels.update(labels)
        node_labels.update(_patched_labels(file, f"{fld}.kubeadmConfigPatches", patches))
        nodes.append(KNode(name, node_labels, 0.0, taints))
    return nodes


def _patches(file: str, fld: str, patches: Any) -> list[tuple[int, dict[str, Any]]]:
    """Each kubeadm patch (a YAML string or a mapping) with its index, its ``nodeRegistration`` mapping or {}."""
    if not isinstance(patches, list):
        raise SpecError(file, fld, f"must be a list of YAML strings, got {type_name(patches)}")
    out = []
    for i, patch in enumerate(patches):
        docs = yaml_documents(f"{file}: {fld}[{i}]", patch) if isinstance(patch, str) else [patch]
        doc = docs[0] if docs else None
        registration = doc.get("nodeRegistration") if isinstance(doc, dict) else None
        out.append((i, registration if isinstance(registration, dict) else {}))
    return out


def _patched_taints(file: str, fld: str, patches: list[tuple[int, dict[str, Any]]]) -> tuple[Taint, ...] | None:
    """The taints a kubeadm patch's ``nodeRegistration.taints`` sets, or None if no patch sets them."""
    found = None
    for i, registration in patches:
        if "taints" in registration:
            raw = registration["taints"] or []
            if not isinstance(raw, list) or not all(isinstance(t, dict) and t.get("key") for t in raw):
                raise SpecError(file, f"{fld}[{i}].nodeRegistration.taints", "must be a list of taints with keys")
            found = tuple(
                Taint(str(t["key"]), str(t.get("value", "")), str(t.get("effect", "NoSchedule"))) for t in raw
            )
    return found


def _patched_labels(file: str, fld: str, patches: list[tuple[int, dict[str, Any]]]) -> dict[str, str]:
    """The labels kubelet's ``--node-labels`` gets from the patches' ``nodeRegistration.kubeletExtraArgs``
    (``key=value`` pairs separated by commas, as kubelet's ``--node-labels`` flag parses them)."""
    labels: dict[str, str] = {}
    for i, registration in patches:
        where = f"{fld}[{i}].nodeRegistration.kubeletExtraArgs"
        args = registration.get("kubeletExtraArgs") or {}
        if isinstance(args, list):  # kubeadm v1beta4: [{name: node-labels, value: "a=b"}]
            if not all(isinstance(a, dict) for a in args):
                raise SpecError(file, where, "must be a list of {name, value}")
            args = {a.get("name"): a.get("value") for a in args}
        if not isinstance(args, dict):
            raise SpecError(file, where, f"must be a mapping or a list, got {type_name(args)}")
        text = args.get("node-labels")
        if text is None:
            continue
        if not isinstance(text, str):
            raise SpecError(file, f"{where}.node-labels", f"must be a string, got {type_name(text)}")
        for pair in filter(None, (p.strip() for p in text.split(","))):
            key, eq, value = pair.partition("=")
            if not eq or not key:
                raise SpecError(file, f"{where}.node-labels", f"{pair!r} is not key=value")
            labels[key] = value
    return labels


def merged_nodes(nodes: list[KNode], origins: list[str], node_files: dict[str, str]) -> list[KNode]:
    """The nodes with a kind config's node and a Node object of the same name made one, as an object given twice
    is: where they agree (every label the config gives, with its value, and the same taints) the Node object (what
    the API server holds: allocatable, readiness, every label) takes the kind node's place; where they differ, one
    line naming both files. Two kind configs naming one node must agree in full. ``origins``: per node, the kind
    config it came from (``""``: a Node object); ``node_files``: each Node object's file."""
    at: dict[str, int] = {}
    out: list[KNode] = []
    out_origins: list[str] = []
    for node, origin in zip(nodes, origins, strict=True):
        if node.name not in at:
            at[node.name] = len(out)
            out.append(node)
            out_origins.append(origin)
            continue
        i = at[node.name]
        kind_node, kind_file = (out[i], out_origins[i]) if out_origins[i] else (node, origin)
        other, other_origin = (node, origin) if out_origins[i] else (out[i], out_origins[i])
        diff = _difference(kind_node, other) or (_difference(other, kind_node) if other_origin else "")
        if diff:
            also = other_origin or node_files.get(node.name, "a Node object")
            raise SpecError(kind_file, f"Node {node.name}", f"{diff}; also given in {also}")
        out[i], out_origins[i] = other, other_origin
    return out


def _difference(kind_node: KNode, other: KNode) -> str:
    """What a kind config's node says that another node of the same name does not, or ``""`` (the architecture
    label, assumed, not compared)."""
    for key, value in kind_node.labels.items():
        if key != ARCH_LABEL and other.labels.get(key) != value:
            return f"label {key} is {value!r} here, {other.labels.get(key)!r} in the other"
    if set(kind_node.taints) != set(other.taints):
        return "its taints differ from the other's"
    return ""
