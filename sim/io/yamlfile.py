"""YAML and JSON documents read with bounds that hold while parsing, not after.

YAML is read with PyYAML's ``SafeLoader`` only (no Python objects), composed by a loader that counts as it goes:

- nesting deeper than ``MAX_DEPTH`` (tables and arrays) is refused before Python's recursion limit is reached;
- an alias counts as the whole subtree it names, and the nodes aliases add to a document may not pass
  ``MAX_ALIAS_NODES``, so a 1 kB "billion laughs" document is refused after a few thousand steps instead of
  expanding (kubectl never writes aliases; a hand-written manifest uses a few);
- an alias inside its own anchor (a document that contains itself) is refused;
- an integer of more than 4,300 digits (Python's ``int()`` limit) and every other resolver error is the one
  "malformed YAML" line.

JSON is read by ``json.loads`` with the same depth bound (caught as RecursionError when it is deep enough to
matter, checked with ``check_depth`` otherwise). Every string, key or value, is then held to be text: a lone
surrogate (``"\\ud800"`` in JSON) is refused, since nothing downstream could write it.
"""

from __future__ import annotations

import json
from typing import Any

import yaml

from sim.errors import SpecError
from sim.io.typed import MAX_DEPTH, check_depth

MAX_ALIAS_NODES = 100_000
"""The most nodes aliases may add to one YAML document (each alias counts the subtree it repeats)."""


class _Bounded(Exception):
    """The loader stopped: the document passed a bound (the message says which)."""


class BoundedLoader(yaml.SafeLoader):
    """``SafeLoader`` that bounds depth and alias expansion while it composes."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        self._added = 0
        self._sizes: dict[int, int] = {}

    def compose_document(self) -> Any:
        """One document of a stream: the alias budget starts afresh."""
        self._added, self._sizes = 0, {}
        return super().compose_document()

    def compose_node(self, parent: Any, index: Any) -> Any:
        """A node, counted: its depth, and for an alias the size of the subtree it repeats."""
        if self.check_event(yaml.AliasEvent):
            node = super().compose_node(parent, index)
            size = self._sizes.get(id(node))
            if size is None:
                raise _Bounded("an alias inside its own anchor (the document would contain itself)")
            self._added += size
            if self._added > MAX_ALIAS_NODES:
                raise _Bounded(f"aliases expand the document by more than {MAX_ALIAS_NODES:,} nodes")
            return node
        self._depth += 1
        if self._depth > MAX_DEPTH:
            raise _Bounded(f"nests mappings and lists more than {MAX_DEPTH} deep")
        try:
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
        if node is not None:
            self._sizes[id(node)] = 1 + sum(self._sizes.get(id(child), 1) for child in _children(node))
        return node


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    return []


def yaml_documents(label: str, text: str) -> list[Any]:
    """The documents of a YAML stream, bounded (see the module's docstring); any problem is one SpecError."""
    loader = BoundedLoader(text)
    try:
        docs = []
        while loader.check_data():
            docs.append(loader.get_data())
    except _Bounded as e:
        raise SpecError(label, "", f"refused YAML: {e}") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise SpecError(label, where, f"malformed YAML: {problem}") from None
    except (ValueError, OverflowError, RecursionError) as e:  # int() past 4,300 digits, a float past 1e308
        raise SpecError(label, "", f"malformed YAML: {str(e).split(';')[0]}") from None
    finally:
        loader.dispose()
    for doc in docs:
        check_text(label, doc)
    return docs


def json_document(label: str, text: str) -> Any:
    """One JSON document, bounded in depth, every string text; a problem is one SpecError (a ValueError that is
    not: the caller may try YAML)."""
    try:
        doc = json.loads(text)
    except RecursionError:
        raise SpecError(label, "", f"refused JSON: nests arrays and objects more than {MAX_DEPTH} deep") from None
    check_text(label, doc)
    return doc


def check_text(label: str, doc: Any) -> None:
    """Refuse ``doc`` if it nests more than MAX_DEPTH deep or holds a string that is not text (a lone surrogate)."""
    check_depth(label, doc)
    stack = [doc]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                raise SpecError(label, "", "holds a string with a lone surrogate (not text)") from None
