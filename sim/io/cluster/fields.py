"""One Kubernetes object being read: typed fields by dotted path, errors naming the file, ``Kind namespace/name``
and the field; and the label selectors every reader of a pod spec shares.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sim.cluster import DEFAULT_NAMESPACE
from sim.errors import SpecError, shown
from sim.io.cluster.objects import OPERATORS, LabelSelector, Requirement
from sim.io.typed import Table, type_name


class KObject(Table):
    """One object being read as a Table that is not consumed: typed access by dotted path (absent or null: the
    default), errors naming file, ``Kind namespace/name`` and field."""

    def __init__(self, file: str, data: dict[str, Any]) -> None:
        super().__init__(Path(file), "", data)
        self.file = file
        self.object_kind = str(data.get("kind"))
        meta = data.get("metadata")
        self.meta = meta if isinstance(meta, dict) else {}
        ns = self.meta.get("namespace") or DEFAULT_NAMESPACE
        name = self.meta.get("name")
        self.namespace = ns if isinstance(ns, str) else DEFAULT_NAMESPACE
        self.short = name if isinstance(name, str) else ""
        self.name = f"{self.namespace}/{self.short}"
        self.names: dict[int, str] = {}  # id of a mapping or list met while reading -> its field name
        if not isinstance(meta, dict):
            raise self.error("metadata", "is required: a mapping with a name")
        if not isinstance(name, str) or not name:
            raise self.error("metadata.name", "is required")
        if not isinstance(ns, str):
            raise self.error("metadata.namespace", f"must be a string, got {type_name(ns)}")

    def field(self, key: str) -> str:
        """``Kind namespace/name: field`` (``key`` empty: the object as a whole), as errors print it."""
        return f"{self.object_kind} {self.name}" + (f": {key}" if key else "")

    def error(self, key: str, problem: str) -> SpecError:
        """The bad-input error for field ``key`` of this object (empty: the object as a whole)."""
        return SpecError(self.file, self.field(key), problem)

    def dotted(self, path: str, base: Any = None) -> str:
        """The full field name of ``path`` read from ``base`` (a mapping met earlier), as errors print it."""
        prefix = self.names.get(id(base), "") if base is not None else ""
        return f"{prefix}.{path}" if prefix else path

    def get(self, path: str, kinds: type | tuple[type, ...], default: Any = None, base: Any = None) -> Any:
        """The value at dotted ``path`` (from ``base``, else the object), of ``kinds``; absent or null: default."""
        node: Any = self.data if base is None else base
        for segment in path.split("."):
            if not isinstance(node, dict):
                return default
            node = node.get(segment)
            if node is None:
                return default
        full = self.dotted(path, base)
        self.checked(full, node, kinds)
        if isinstance(node, (dict, list)):
            self.names[id(node)] = full
        return node

    def strings(self, path: str, base: Any = None, where: str = "") -> dict[str, str]:
        """A map of strings (labels, a selector); every value must be a string, as the API requires."""
        return self.string_map(where or self.dotted(path, base), self.get(path, dict, {}, base))

    def items(self, path: str, base: Any = None, where: str = "") -> list[tuple[str, dict[str, Any]]]:
        """A list of mappings, each with its field name ``path[i]``."""
        values = self.get(path, list, [], base)
        name = where or self.dotted(path, base)
        out = []
        for i, v in enumerate(values):
            if not isinstance(v, dict):
                raise self.error(f"{name}[{i}]", f"must be a mapping, got {type_name(v)} {shown(v)}")
            self.names[id(v)] = f"{name}[{i}]"
            out.append((f"{name}[{i}]", v))
        return out

    def one_of(self, path: str, allowed: Sequence[str], default: Any = None, base: Any = None, where: str = "") -> Any:
        """A string that must be one of ``allowed``."""
        value = self.get(path, str, default, base)
        if value is not default and value not in allowed:
            raise self.error(
                where or self.dotted(path, base), f"unknown value {shown(value)}; expected one of {list(allowed)}"
            )
        return value


def label_selector(o: KObject, base: Any, where: str) -> LabelSelector:
    """A LabelSelector (``matchLabels``, ``matchExpressions``) at ``base``."""
    if base is None:
        return LabelSelector()
    return LabelSelector(
        o.strings("matchLabels", base, f"{where}.matchLabels"),
        tuple(requirement(o, e, f) for f, e in o.items("matchExpressions", base, f"{where}.matchExpressions")),
    )


def requirement(o: KObject, raw: dict[str, Any], where: str) -> Requirement:
    key = o.get("key", str, None, raw)
    if not key:
        raise o.error(f"{where}.key", "is required")
    op = o.one_of("operator", OPERATORS, None, raw, f"{where}.operator")
    if op is None:
        raise o.error(f"{where}.operator", "is required")
    values = o.get("values", list, [], raw)
    if not all(isinstance(v, str) for v in values):
        raise o.error(f"{where}.values", "must be a list of strings")
    if op in ("In", "NotIn") and not values:
        raise o.error(f"{where}.values", f"must not be empty for operator {op}")
    if op in ("Gt", "Lt") and (len(values) != 1 or not re.fullmatch(r"-?[0-9]{1,18}", values[0])):
        raise o.error(f"{where}.values", f"operator {op} takes one integer value")
    return Requirement(key, op, tuple(values))
