"""The Kubernetes objects the project reads, typed: Nodes, Pods, Services, EndpointSlices, workloads and what
kube-scheduler reads from a pod spec, with the well-known labels and the values the API allows. Read by
``sim.io.cluster.kubernetes`` (and ``kind``, ``podspec``); used by placement and the cluster-state builders.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

SERVICE_NAME_LABEL = "kubernetes.io/service-name"
DEPRECATED_ZONE_LABEL = "failure-domain.beta.kubernetes.io/zone"
HOSTNAME_LABEL = "kubernetes.io/hostname"
CONTROL_PLANE_TAINT = "node-role.kubernetes.io/control-plane"
WORKLOAD_KINDS = ("Deployment", "ReplicaSet", "StatefulSet", "DaemonSet")
OBJECT_SUFFIXES = (".yaml", ".yml", ".json")
"""The file suffixes of Kubernetes object files (what a directory given as objects is read for)."""
TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")
SERVICE_TYPES = ("ClusterIP", "NodePort", "LoadBalancer", "ExternalName")
OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt")


@dataclass(frozen=True)
class Taint:
    """A node taint: ``key=value:effect``."""

    key: str
    value: str = ""
    effect: str = "NoSchedule"


@dataclass(frozen=True)
class Toleration:
    """A pod toleration; an empty ``effect`` matches every effect, operator ``Exists`` with no key every taint."""

    key: str = ""
    operator: str = "Equal"
    value: str = ""
    effect: str = ""

    def tolerates(self, taint: Taint) -> bool:
        """``Toleration.ToleratesTaint`` (``k8s.io/api/core/v1/toleration.go``)."""
        if self.effect and self.effect != taint.effect:
            return False
        if self.key and self.key != taint.key:
            return False
        if self.operator == "Exists":
            return True
        return self.value == taint.value


@dataclass(frozen=True)
class Requirement:
    """One ``matchExpressions`` entry (node or label selector): key, operator, values."""

    key: str
    operator: str
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether ``labels`` satisfy it (``k8s.io/apimachinery/pkg/labels/selector.go`` ``Requirement.Matches``;
        Gt/Lt compare integers, as node selectors do)."""
        has = self.key in labels
        value = labels.get(self.key, "")
        if self.operator == "In":
            return has and value in self.values
        if self.operator == "NotIn":
            return not has or value not in self.values
        if self.operator == "Exists":
            return has
        if self.operator == "DoesNotExist":
            return not has
        try:
            number, bound = int(value), int(self.values[0])
        except (ValueError, IndexError):
            return False
        return has and (number > bound if self.operator == "Gt" else number < bound)


@dataclass(frozen=True)
class LabelSelector:
    """``matchLabels`` and ``matchExpressions``, all of which must hold; an empty selector selects everything."""

    match_labels: Mapping[str, str] = field(default_factory=dict, hash=False, compare=False)
    expressions: tuple[Requirement, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether ``labels`` satisfy every part."""
        return all(labels.get(k) == v for k, v in self.match_labels.items()) and all(
            r.matches(labels) for r in self.expressions
        )


@dataclass(frozen=True)
class AntiAffinity:
    """A pod (anti-)affinity term: the pods its selector matches in ``namespaces``, on nodes with the same
    ``topology_key`` value (required anti-affinity: none may be there; affinity: one must be)."""

    selector: LabelSelector
    topology_key: str
    namespaces: tuple[str, ...]


@dataclass(frozen=True)
class SpreadConstraint:
    """One ``topologySpreadConstraints`` entry: at most ``max_skew`` more matching pods in a ``topology_key``
    domain than in the least loaded one; ``DoNotSchedule`` a filter, ``ScheduleAnyway`` a score. ``selector``
    None: no labelSelector (it selects no pod); ``matchLabelKeys`` already merged into it."""

    max_skew: int
    topology_key: str
    when_unsatisfiable: str
    selector: LabelSelector | None
    min_domains: int = 1
    node_affinity_policy: str = "Honor"
    node_taints_policy: str = "Ignore"


@dataclass(frozen=True)
class Scheduling:
    """What decides where a pod may run: nodeSelector, required node affinity (terms ORed, each term's
    requirements ANDed; ``fields`` on ``metadata.name``), tolerations and required pod anti-affinity; and what the
    scheduler scores (``sim.io.cluster.podspec``): requests (CPU millicores, memory bytes; ``nonzero_requests`` as the
    scores count them), preferred node terms (weight, requirements), required pod affinity, preferred pod terms
    (weight, negative for anti-affinity)."""

    node_selector: Mapping[str, str] = field(default_factory=dict, hash=False, compare=False)
    terms: tuple[tuple[tuple[Requirement, ...], tuple[Requirement, ...]], ...] = ()
    tolerations: tuple[Toleration, ...] = ()
    anti_affinity: tuple[AntiAffinity, ...] = ()
    requests: tuple[int, int] = (0, 0)
    nonzero_requests: tuple[int, int] = (0, 0)
    preferred_nodes: tuple[tuple[int, tuple[Requirement, ...]], ...] = ()
    affinity: tuple[AntiAffinity, ...] = ()
    preferred_pods: tuple[tuple[int, AntiAffinity], ...] = ()
    spread: tuple[SpreadConstraint, ...] = ()
    priority: int | None = None
    """``spec.priority`` where given (else the value of ``priority_class``: ``sim.io.cluster.placement``)."""
    priority_class: str = ""


@dataclass(frozen=True)
class KNode:
    """A Node: labels, allocatable CPU (cores), taints, readiness; ``bare`` when only a pod or endpoint named it;
    allocatable memory (bytes) and pods (0: not given)."""

    name: str
    labels: Mapping[str, str] = field(default_factory=dict, hash=False, compare=False)
    cpu: float = 0.0
    taints: tuple[Taint, ...] = ()
    ready: bool = True
    bare: bool = False
    memory: int = 0
    pods: int = 0


@dataclass(frozen=True)
class KPod:
    """A Pod: where it runs (None: not scheduled), labels, readiness, terminating, address, scheduling rules."""

    name: str
    node: str | None
    labels: Mapping[str, str] = field(default_factory=dict, hash=False, compare=False)
    phase: str = "Running"
    ready: bool = True
    terminating: bool = False
    ip: str | None = None
    scheduling: Scheduling = Scheduling()
    ports: Mapping[str, int] = field(default_factory=dict, hash=False, compare=False)
    has_status: bool = False
    file: str = ""
    owner: str = ""
    """The controller that made the pod (``kind/namespace/name``), or ``""``: kube-scheduler spreads its pods."""
    host_network: bool = False
    """``spec.hostNetwork``: the pod's calls are its node's own traffic."""


@dataclass(frozen=True)
class KPort:
    """One ``spec.ports`` entry before a named ``targetPort`` is resolved on the pods."""

    name: str
    port: int
    target_port: int | str
    node_port: int


@dataclass(frozen=True)
class KService:
    """A Service's routing fields, spelled as sim.cluster.Service takes them, plus what needs the pods to resolve
    (a named ``targetPort``) and why kube-proxy would skip it (``skip``: headless or ExternalName)."""

    name: str
    fields: Mapping[str, Any] = field(hash=False, compare=False)
    ports: tuple[KPort, ...] = ()
    skip: str = ""
    file: str = ""

    @property
    def port_name(self) -> str:
        """The first port's name."""
        return self.ports[0].name if self.ports else ""


@dataclass(frozen=True)
class KEndpoint:
    """One EndpointSlice endpoint before it is joined to its Service's port."""

    address: str
    ready: bool | None
    serving: bool | None
    terminating: bool | None
    node: str | None
    zone: str | None
    for_zones: tuple[str, ...]
    for_nodes: tuple[str, ...]
    pod: str | None
    more_addresses: tuple[str, ...] = ()
    """The endpoint's addresses after the first: backends for Cilium only (``Endpoint.cilium_only``)."""


@dataclass(frozen=True)
class KSlice:
    """An EndpointSlice: its Service (``namespace/name`` from the service-name label), endpoints and ports."""

    name: str
    service: str
    endpoints: tuple[KEndpoint, ...]
    ports: Mapping[str, int] = field(hash=False, compare=False)
    file: str = ""


@dataclass(frozen=True)
class KWorkload:
    """A Deployment, ReplicaSet, StatefulSet or DaemonSet: its pod template and how many replicas."""

    kind: str
    name: str
    replicas: int
    labels: Mapping[str, str] = field(hash=False, compare=False)
    selector: LabelSelector
    scheduling: Scheduling
    ports: Mapping[str, int] = field(hash=False, compare=False)
    owner: str = ""
    """The Deployment (``namespace/name``) that owns a ReplicaSet, or ``""``."""
    file: str = ""
    host_network: bool = False
    """The pod template's ``spec.hostNetwork``."""


@dataclass
class Objects:
    """Everything read from the given files, in input order, with what was skipped and why."""

    nodes: list[KNode] = field(default_factory=list)
    pods: list[KPod] = field(default_factory=list)
    services: list[KService] = field(default_factory=list)
    slices: list[KSlice] = field(default_factory=list)
    endpoints: list[KSlice] = field(default_factory=list)
    """core/v1 Endpoints, as slices: mirrored for selectorless Services only (``sim.io.cluster.cluster_state``)."""
    workloads: list[KWorkload] = field(default_factory=list)
    priority_classes: dict[str, tuple[int, bool]] = field(default_factory=dict)
    """PriorityClasses by name: value and globalDefault."""
    kind_cluster: bool = False
    skipped: Counter[str] = field(default_factory=Counter)
    notes: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)

    def skipped_line(self) -> str:
        """One summary line of the kinds skipped, or ``""``."""
        if not self.skipped:
            return ""
        parts = ", ".join(f"{n} {kind}" for kind, n in sorted(self.skipped.items()))
        n = sum(self.skipped.values())
        return f"skipped {n} object{'' if n == 1 else 's'} of kinds not simulated: {parts}"
