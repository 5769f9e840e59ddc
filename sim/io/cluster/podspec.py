"""What kube-scheduler reads from a pod spec beyond the filters of ``sim.io.cluster.kubernetes``: resource requests,
preferred node affinity, and required and preferred pod (anti-)affinity; and resource quantities.

Requests follow ``k8s.io/component-helpers/resource`` ``PodRequests``: the containers' requests summed, an init
container's taken instead where it asks more. The scheduler's scores count a container that names no request for
CPU or memory as asking ``DefaultMilliCPURequest`` = 100m and ``DefaultMemoryRequest`` = 200 MiB
(``pkg/scheduler/util/pod_resources.go``; ``NonMissingContainerRequests``), its filter as asking nothing.
"""

from __future__ import annotations

import re
from typing import Any

from sim.io.cluster.fields import KObject, label_selector, requirement
from sim.io.cluster.objects import AntiAffinity, LabelSelector, Requirement, SpreadConstraint

DEFAULT_MILLI_CPU_REQUEST = 100
"""``schedutil.DefaultMilliCPURequest``: a container without a CPU request counts as 0.1 core in the scores."""
DEFAULT_MEMORY_REQUEST = 200 * 1024 * 1024
"""``schedutil.DefaultMemoryRequest``: a container without a memory request counts as 200 MiB in the scores."""

_QUANTITY = re.compile(r"^([+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)(Ki|Mi|Gi|Ti|Pi|Ei|m|k|M|G|T|P|E)?$")
_SCALE: dict[str | None, float] = {
    None: 1.0,
    "m": 1e-3,
    "k": 1e3,
    "M": 1e6,
    "G": 1e9,
    "T": 1e12,
    "P": 1e15,
    "E": 1e18,
    **{s: float(1024 ** (i + 1)) for i, s in enumerate(("Ki", "Mi", "Gi", "Ti", "Pi", "Ei"))},
}


def quantity(text: object) -> float | None:
    """A Kubernetes resource quantity (``apimachinery/pkg/api/resource``) as a number, or None if it is not one.

    >>> quantity("64Mi"), quantity("250m"), quantity("1G"), quantity(2), quantity("lots")
    (67108864.0, 0.25, 1000000000.0, 2.0, None)
    """
    if isinstance(text, bool):
        return None
    if isinstance(text, int | float):
        return float(text)
    match = _QUANTITY.match(str(text).strip())
    if match is None:
        return None
    return float(match.group(1)) * _SCALE[match.group(2)]


def _container_requests(o: KObject, container: Any, where: str) -> tuple[int | None, int | None]:
    """One container's CPU (millicores) and memory (bytes) requests; None where it names none."""
    requests = o.get("resources.requests", dict, {}, container)
    out: list[int | None] = []
    for name, scale in (("cpu", 1000), ("memory", 1)):
        raw = requests.get(name)
        if raw is None:
            out.append(None)
            continue
        value = quantity(raw)
        if value is None or value < 0:
            raise o.error(f"{where}.resources.requests.{name}", f"not a resource quantity: {raw!r}")
        out.append(round(value * scale))
    return out[0], out[1]


def _or(value: int | None, default: int) -> int:
    return default if value is None else value


def pod_requests(o: KObject, spec: Any, where: str) -> tuple[tuple[int, int], tuple[int, int]]:
    """``(requests, nonzero)``: CPU (millicores) and memory (bytes), as the filter and as the scores count them."""
    sums = [[0, 0], [0, 0]]
    defaults = (DEFAULT_MILLI_CPU_REQUEST, DEFAULT_MEMORY_REQUEST)
    for f, c in o.items("containers", spec, f"{where}.containers"):
        got = _container_requests(o, c, f)
        for i in range(2):
            sums[0][i] += got[i] or 0
            sums[1][i] += _or(got[i], defaults[i])
    for f, c in o.items("initContainers", spec, f"{where}.initContainers"):
        got = _container_requests(o, c, f)
        for i in range(2):
            sums[0][i] = max(sums[0][i], got[i] or 0)
            sums[1][i] = max(sums[1][i], _or(got[i], defaults[i]))
    return (sums[0][0], sums[0][1]), (sums[1][0], sums[1][1])


def _weight(o: KObject, raw: Any, where: str) -> int:
    weight = o.get("weight", int, None, raw)
    if weight is None or not 1 <= weight <= 100:
        raise o.error(f"{where}.weight", f"is required: an integer 1-100, got {weight!r}")
    return weight


def preferred_node_terms(o: KObject, spec: Any, where: str) -> tuple[tuple[int, tuple[Requirement, ...]], ...]:
    """``nodeAffinity.preferredDuringSchedulingIgnoredDuringExecution``: (weight, the term's matchExpressions)."""
    path = "affinity.nodeAffinity.preferredDuringSchedulingIgnoredDuringExecution"
    out = []
    for f, term in o.items(path, spec, f"{where}.{path}"):
        pref = o.get("preference", dict, {}, term)
        exprs = tuple(requirement(o, e, g) for g, e in o.items("matchExpressions", pref, f"{f}.preference"))
        out.append((_weight(o, term, f), exprs))
    return tuple(out)


def _pod_term(o: KObject, term: Any, where: str) -> AntiAffinity:
    key = o.get("topologyKey", str, None, term)
    if not key:
        raise o.error(f"{where}.topologyKey", "is required")
    namespaces = o.get("namespaces", list, [], term)
    selector = label_selector(o, o.get("labelSelector", dict, None, term), f"{where}.labelSelector")
    return AntiAffinity(selector, key, tuple(str(n) for n in namespaces) or (o.namespace,))


def pod_affinity(o: KObject, spec: Any, where: str, kind: str = "podAffinity") -> tuple[AntiAffinity, ...]:
    """``podAffinity.requiredDuringSchedulingIgnoredDuringExecution``: the pod-affinity terms that must hold
    (``kind`` ``podAntiAffinity``: the required anti-affinity terms)."""
    path = f"affinity.{kind}.requiredDuringSchedulingIgnoredDuringExecution"
    return tuple(_pod_term(o, term, f) for f, term in o.items(path, spec, f"{where}.{path}"))


def preferred_pod_terms(o: KObject, spec: Any, where: str) -> tuple[tuple[int, AntiAffinity], ...]:
    """Preferred pod affinity (weight > 0) and anti-affinity (weight < 0) terms, each with its weight."""
    out = []
    for kind, sign in (("podAffinity", 1), ("podAntiAffinity", -1)):
        path = f"affinity.{kind}.preferredDuringSchedulingIgnoredDuringExecution"
        for f, term in o.items(path, spec, f"{where}.{path}"):
            inner = o.get("podAffinityTerm", dict, None, term)
            if inner is None:
                raise o.error(f"{f}.podAffinityTerm", "is required")
            out.append((sign * _weight(o, term, f), _pod_term(o, inner, f"{f}.podAffinityTerm")))
    return tuple(out)


HIGHEST_USER_PRIORITY = 1_000_000_000
"""``scheduling.HighestUserDefinablePriority``: a PriorityClass's value at most this (the system classes above)."""
SYSTEM_PRIORITY_CLASSES = {"system-cluster-critical": 2_000_000_000, "system-node-critical": 2_000_001_000}
"""The built-in PriorityClasses (``pkg/apis/scheduling/types.go`` ``SystemCriticalPriority`` and the node's 1000
above it)."""


def priority_class(o: KObject, out: Any) -> None:
    """PriorityClass (``scheduling.k8s.io/v1``): its value (-2,147,483,648 to 1,000,000,000) and globalDefault."""
    value = o.get("value", int, None)
    if value is None or not -(2**31) <= value <= HIGHEST_USER_PRIORITY:
        raise o.error("value", f"is required: an integer -2147483648 to {HIGHEST_USER_PRIORITY}, got {value!r}")
    out.priority_classes[o.short] = (value, o.get("globalDefault", bool, False))


SPREAD_ACTIONS = ("DoNotSchedule", "ScheduleAnyway")
INCLUSION_POLICIES = ("Honor", "Ignore")


def spread_constraints(o: KObject, spec: Any, where: str, labels: dict[str, str]) -> tuple[SpreadConstraint, ...]:
    """``topologySpreadConstraints``, validated as the API server does (``ValidateTopologySpreadConstraints``:
    maxSkew > 0, minDomains > 0 and only with DoNotSchedule), defaulted as kube-scheduler reads them
    (nodeAffinityPolicy Honor, nodeTaintsPolicy Ignore, minDomains 1); ``matchLabelKeys`` merged into the selector
    with the pod's values (``podtopologyspread/common.go`` ``mergeLabelSetWithSelector``)."""
    out = []
    for f, c in o.items("topologySpreadConstraints", spec, f"{where}.topologySpreadConstraints"):
        skew = o.get("maxSkew", int, None, c)
        if skew is None or skew < 1:
            raise o.error(f"{f}.maxSkew", f"is required: an integer above 0, got {skew!r}")
        key = o.get("topologyKey", str, None, c)
        if not key:
            raise o.error(f"{f}.topologyKey", "is required")
        action = o.one_of("whenUnsatisfiable", SPREAD_ACTIONS, None, c, f"{f}.whenUnsatisfiable")
        if action is None:
            raise o.error(f"{f}.whenUnsatisfiable", f"is required: one of {list(SPREAD_ACTIONS)}")
        min_domains = o.get("minDomains", int, None, c)
        if min_domains is not None and (min_domains < 1 or action != "DoNotSchedule"):
            raise o.error(f"{f}.minDomains", "must be above 0, and is allowed with DoNotSchedule only")
        raw = o.get("labelSelector", dict, None, c)
        selector = None if raw is None else label_selector(o, raw, f"{f}.labelSelector")
        keys = [str(k) for k in o.get("matchLabelKeys", list, [], c)]
        if selector is not None and any(k in labels for k in keys):
            extra = tuple(Requirement(k, "In", (labels[k],)) for k in keys if k in labels)
            selector = LabelSelector(selector.match_labels, selector.expressions + extra)
        out.append(
            SpreadConstraint(
                skew, key, action, selector, min_domains or 1,
                o.one_of("nodeAffinityPolicy", INCLUSION_POLICIES, "Honor", c, f"{f}.nodeAffinityPolicy"),
                o.one_of("nodeTaintsPolicy", INCLUSION_POLICIES, "Ignore", c, f"{f}.nodeTaintsPolicy"),
            )
        )  # fmt: skip
    return tuple(out)


def scheduling_extras(o: KObject, spec: Any, where: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
    """The ``Scheduling`` fields this module reads, by field name."""
    requests, nonzero = pod_requests(o, spec, where)
    return {
        "requests": requests,
        "nonzero_requests": nonzero,
        "preferred_nodes": preferred_node_terms(o, spec, where),
        "affinity": pod_affinity(o, spec, where),
        "preferred_pods": preferred_pod_terms(o, spec, where),
        "spread": spread_constraints(o, spec, where, labels or {}),
    }
