"""The field table of each Kubernetes object the project reads: per field, its ``sim.cluster`` attribute, its key
in a scenario file (the API's name), where a Kubernetes object has it, and how it is read, checked and written.
Three readers and writers share it: the scenario reader (``sim.io.scenario``), the Kubernetes reader
(``sim.io.cluster.kubernetes``) and ``sim import`` (``sim.io.importer``). Adding a field of a known kind is one
line of its table (``SERVICE_FIELDS``, ``ENDPOINT_FIELDS``).

A field's kind is how every one of them handles it (``FieldKind``): read from a scenario table (``from_table``),
from a Kubernetes object (``from_object``) and written back as TOML (``to_toml``).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sim.cluster import (
    MAX_AFFINITY_TIMEOUT_S,
    MAX_PORT,
    ServiceType,
    SessionAffinity,
    TrafficDistribution,
    TrafficPolicy,
)
from sim.errors import shown
from sim.io.cluster import builders
from sim.io.cluster.fields import KObject
from sim.io.typed import MISSING, Table


@dataclass(frozen=True)
class FieldKind:
    """How one kind of field is read from a scenario table and from a Kubernetes object, and written as TOML."""

    from_table: Callable[[Table, str, Any, ObjectField], Any]
    """(table, key, default, field) -> the value; absent: ``default`` (a base object's value, or the field's)."""
    from_object: Callable[[KObject, str, ObjectField], Any] | None
    """(object, dotted path, field) -> the value as ``sim.cluster`` holds it; absent: the API's default. None: a
    kind the Kubernetes reader reads in a structure of its own (an EndpointSlice's endpoints)."""
    to_toml: Callable[[Any], Any]
    """The value as a scenario file writes it."""


@dataclass(frozen=True)
class ObjectField:
    """One field of a Kubernetes object as the project reads and writes it."""

    attr: str
    """The attribute of the ``sim.cluster`` object."""
    key: str
    """Its key in a scenario file: the API's name (dotted: nested tables)."""
    path: str
    """Where a Kubernetes object has it (dotted); ``""``: the Kubernetes reader derives it itself."""
    kind: FieldKind
    enum: type[StrEnum] | None = None
    """A choice's values."""
    api_default: Any = None
    """A choice's value in a Kubernetes object that leaves it out (None: absent)."""
    always: bool = False
    """Written by ``sim import`` even at its default."""
    default: Any = None
    """Its value where a scenario table leaves it out and no base object is given (``MISSING``: required)."""

    @property
    def values(self) -> list[str]:
        """A choice's allowed values, as the API spells them."""
        return [v.value for v in self.enum] if self.enum else []


# --- the kinds ---------------------------------------------------------------------------------------------------


def string_list(t: Table, key: str) -> tuple[str, ...]:
    """An array of strings at ``key`` (absent: empty)."""
    values = t.take(key, list, [])
    if not all(isinstance(v, str) for v in values):
        raise t.error(key, "must be an array of strings")
    return tuple(values)


def _table_strings(t: Table, key: str, default: Any, f: ObjectField) -> dict[str, str]:
    return t.strings(key) if key in t.data else dict(default)


def _table_choice(t: Table, key: str, default: Any, f: ObjectField) -> Any:
    assert f.enum is not None
    return t.choice(key, f.enum, f.values, default)


def _table_port(t: Table, key: str, default: Any, f: ObjectField) -> int:
    return t.integer(key, default, minimum=0)  # type: ignore[no-any-return]


def _table_list(t: Table, key: str, default: Any, f: ObjectField) -> tuple[str, ...]:
    return string_list(t, key) if key in t.data else default  # type: ignore[no-any-return]


def _table_cidrs(t: Table, key: str, default: Any, f: ObjectField) -> tuple[str, ...]:
    """A list of CIDRs (``loadBalancerSourceRanges``), each checked and written as ``ipaddress`` writes it."""
    if key not in t.data:
        return default  # type: ignore[no-any-return]
    out = []
    for text in string_list(t, key):
        try:
            out.append(str(ipaddress.ip_network(text.strip(), strict=False)))
        except ValueError:
            raise t.error(key, f"{text!r} is not a CIDR") from None
    return tuple(out)


def _table_affinity_timeout(t: Table, key: str, default: Any, f: ObjectField) -> float:
    """``timeoutSeconds`` (s) at least 1, at most the API's bound; absent: the API's default."""
    timeout = t.number(key, None, minimum=1)
    return builders.affinity_timeout(timeout, lambda why: t.error(key, why))


def _object_strings(o: KObject, path: str, f: ObjectField) -> dict[str, str]:
    return o.strings(path)


def _object_choice(o: KObject, path: str, f: ObjectField) -> Any:
    value = o.one_of(path, f.values, f.api_default)
    return None if value is None else f.enum(value) if f.enum else value


def _object_port(o: KObject, path: str, f: ObjectField) -> int:
    port = o.get(path, int, 0)
    if not 0 <= port <= MAX_PORT:
        raise o.error(path, f"must be a port 1-{MAX_PORT}, got {shown(port)}")
    return port  # type: ignore[no-any-return]


def _object_list(o: KObject, path: str, f: ObjectField) -> tuple[str, ...]:
    values = o.get(path, list, [])
    if not all(isinstance(v, str) for v in values):
        raise o.error(path, "must be a list of strings")
    return tuple(values)


def _object_cidrs(o: KObject, path: str, f: ObjectField) -> tuple[str, ...]:
    """CIDRs (surrounding spaces ignored, as kube-proxy ignores them), as ``ipaddress`` writes them."""
    cidrs = []
    for i, text in enumerate(o.get(path, list, [])):
        try:
            cidrs.append(str(ipaddress.ip_network(str(text).strip(), strict=False)))
        except ValueError:
            raise o.error(f"{path}[{i}]", f"{text!r} is not a CIDR") from None
    return tuple(cidrs)


def _object_affinity_timeout(o: KObject, path: str, f: ObjectField) -> float | None:
    """``timeoutSeconds`` as given (1 to the API's bound), None where absent (the default taken later)."""
    timeout = o.get(path, int, None)
    if timeout is not None and not 1 <= timeout <= MAX_AFFINITY_TIMEOUT_S:
        raise o.error(path, f"must be 1-{MAX_AFFINITY_TIMEOUT_S:.0f}, got {timeout}")
    return float(timeout) if timeout is not None else None


def _table_text(t: Table, key: str, default: Any, f: ObjectField) -> Any:
    return t.take(key, str, default)


def _table_flag(t: Table, key: str, default: Any, f: ObjectField) -> Any:
    return t.take(key, bool, default)


def _table_port_map(t: Table, key: str, default: Any, f: ObjectField) -> Any:
    """``ports = { http = 8080, grpc = 9090 }``: ports by name, sorted."""
    if key not in t.data:
        return default
    ports = Table(t.path, t.field(key), t.take(key, dict))
    out = tuple(sorted((name, ports.integer(name, minimum=1, maximum=MAX_PORT)) for name in list(ports.data)))
    ports.done()
    return out


TEXT = FieldKind(_table_text, None, lambda v: v)
"""A string (an address, a name)."""
FLAG = FieldKind(_table_flag, None, lambda v: v)
"""A boolean (None where absent: the API's default decides)."""
NAMES = FieldKind(_table_list, None, sorted)
"""A set of names, written sorted."""
PORT_MAP = FieldKind(_table_port_map, None, dict)
"""Port numbers by name."""
STRINGS = FieldKind(_table_strings, _object_strings, dict)
"""A map of strings (a selector, annotations)."""
CHOICE = FieldKind(_table_choice, _object_choice, lambda v: v.value)
"""One of an enum's values."""
PORT = FieldKind(_table_port, _object_port, lambda v: v)
"""A port number (0: none)."""
STRING_LIST = FieldKind(_table_list, _object_list, list)
"""A list of strings (addresses)."""
CIDRS = FieldKind(_table_cidrs, _object_cidrs, list)
"""A list of CIDRs."""
AFFINITY_TIMEOUT = FieldKind(_table_affinity_timeout, _object_affinity_timeout, lambda v: v)
"""ClientIP session affinity's timeout (s)."""

# --- the tables --------------------------------------------------------------------------------------------------

SERVICE_FIELDS: tuple[ObjectField, ...] = (
    ObjectField("type", "type", "", CHOICE, ServiceType),
    ObjectField(
        "internal_traffic_policy", "internalTrafficPolicy", "spec.internalTrafficPolicy", CHOICE, TrafficPolicy,
        TrafficPolicy.CLUSTER.value,
    ),
    ObjectField(
        "external_traffic_policy", "externalTrafficPolicy", "spec.externalTrafficPolicy", CHOICE, TrafficPolicy,
        TrafficPolicy.CLUSTER.value,
    ),
    ObjectField("health_check_node_port", "healthCheckNodePort", "spec.healthCheckNodePort", PORT),
    ObjectField("load_balancer_source_ranges", "loadBalancerSourceRanges", "spec.loadBalancerSourceRanges", CIDRS),
    ObjectField("load_balancer_ips", "loadBalancerIPs", "", STRING_LIST),
    ObjectField("external_ips", "externalIPs", "spec.externalIPs", STRING_LIST),
    ObjectField(
        "traffic_distribution", "trafficDistribution", "spec.trafficDistribution", CHOICE, TrafficDistribution
    ),
    ObjectField(
        "session_affinity", "sessionAffinity", "spec.sessionAffinity", CHOICE, SessionAffinity,
        SessionAffinity.NONE.value,
    ),
    ObjectField(
        "session_affinity_timeout_s", "sessionAffinityConfig.clientIP.timeoutSeconds",
        "spec.sessionAffinityConfig.clientIP.timeoutSeconds", AFFINITY_TIMEOUT,
    ),
    ObjectField("annotations", "annotations", "metadata.annotations", STRINGS),
)  # fmt: skip
"""A Service's fields besides its name, selector and ports (which each reader reads first: a structure of
their own), in the order ``sim import`` writes them. ``type`` and ``loadBalancerIPs`` the Kubernetes reader
derives (ExternalName, the load balancer's ingress)."""

ENDPOINT_FIELDS: tuple[ObjectField, ...] = (
    ObjectField("address", "address", "", TEXT, always=True, default=MISSING),
    ObjectField("ready", "ready", "", FLAG, always=True),
    ObjectField("serving", "serving", "", FLAG, always=True),
    ObjectField("terminating", "terminating", "", FLAG, always=True),
    ObjectField("pod", "pod", "", TEXT),
    ObjectField("node_name", "node", "", TEXT),
    ObjectField("zone", "zone", "", TEXT),
    ObjectField("zone_hints", "forZones", "", NAMES, default=()),
    ObjectField("node_hints", "forNodes", "", NAMES, default=()),
    ObjectField("cilium_only", "cilium_only", "", FLAG, default=False),
    ObjectField("ports", "ports", "", PORT_MAP, default=()),
)
"""An EndpointSlice endpoint as a scenario's ``[[endpoint_slices]]`` gives it and ``sim import`` writes it,
in that order; read into ``builders.endpoint`` (the API's defaults for unset conditions). The Kubernetes reader
reads an EndpointSlice's endpoints in their own structure (conditions, hints, targetRef, every address)."""

SELECTOR = ObjectField("selector", "selector", "spec.selector", STRINGS, always=True)
"""A Service's selector: read and written before its ports."""


# --- the readers' and the writer's loops ---------------------------------------------------------------------------


def from_table(t: Table, fields: tuple[ObjectField, ...], base: object = None) -> dict[str, Any]:
    """Each field of ``fields`` read from a scenario table, by attribute; absent: ``base``'s value (no base: the
    field's default). A dotted key is nested tables, each checked for leftovers."""
    out = {}
    for f in fields:
        keys = f.key.split(".")
        default = f.default if base is None else getattr(base, f.attr)
        out[f.attr] = default if len(keys) > 1 and keys[0] not in t.data else _from_table(t, f, keys, default)
    return out


def _from_table(t: Table, f: ObjectField, keys: list[str], default: Any) -> Any:
    """A nested key's value: each table on the way required, and checked for leftovers once read."""
    first, *rest = keys
    if not rest:
        return f.kind.from_table(t, first, default, f)
    inner = Table(t.path, t.field(first), t.take(first, dict))
    value = _from_table(inner, f, rest, default)
    inner.done()
    return value


def from_object(o: KObject, fields: tuple[ObjectField, ...]) -> dict[str, Any]:
    """Each field of ``fields`` that has a path read from a Kubernetes object, by attribute."""
    return {f.attr: f.kind.from_object(o, f.path, f) for f in fields if f.path and f.kind.from_object}


def to_toml(fields: tuple[ObjectField, ...], obj: object, default: object) -> dict[str, Any]:
    """Each field of ``obj`` that is set (not None, not empty) and differs from ``default``'s, or is always
    written, as a scenario file writes it, by key; a dotted key nested."""
    out: dict[str, Any] = {}
    for f in fields:
        value = getattr(obj, f.attr)
        if f.always or (value not in (None, (), frozenset(), {}) and value != getattr(default, f.attr)):
            *outer, last = f.key.split(".")
            into = out
            for k in outer:
                into = into.setdefault(k, {})
            into[last] = f.kind.to_toml(value)
    return out
