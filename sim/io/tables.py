"""The TOML table reader every file format is read through: typed fields, and whatever is left over rejected.

A problem raises SpecError naming the file, the field (dotted, with ``[i]`` for array entries) and the problem.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from sim.errors import SpecError

T = TypeVar("T")
MISSING: Any = object()
"""The default of a required field."""


class Table:
    """One TOML table being read: takes typed fields and rejects whatever is left over."""

    def __init__(self, path: Path, where: str, data: object) -> None:
        self.path = path
        self.where = where
        if not isinstance(data, dict):
            raise SpecError(str(path), where or "(top level)", f"must be a table, got {type_name(data)}")
        self.data = dict(data)

    def field(self, key: str) -> str:
        """The dotted name of ``key`` in this table, as errors print it."""
        return f"{self.where}.{key}" if self.where else key

    def error(self, key: str, problem: str) -> SpecError:
        """A SpecError for ``key`` of this table."""
        return SpecError(str(self.path), self.field(key), problem)

    def take(self, key: str, kinds: type | tuple[type, ...], default: Any = MISSING) -> Any:
        """Remove and return ``key``, which must be of ``kinds`` (bool is never an int here)."""
        if key not in self.data:
            if default is MISSING:
                raise self.error(key, "is required")
            return default
        value = self.data.pop(key)
        kinds_t = kinds if isinstance(kinds, tuple) else (kinds,)
        if (isinstance(value, bool) and bool not in kinds_t) or not isinstance(value, kinds_t):
            wanted = " or ".join(type_name(k) for k in kinds_t)
            raise self.error(key, f"must be {wanted}, got {type_name(value)} {value!r}")
        return value

    def number(self, key: str, default: Any = MISSING, *, minimum: float | None = None, strict: bool = False) -> Any:
        """A number as float, at least (or, ``strict``, above) ``minimum``."""
        if key not in self.data and default is not MISSING:
            return default
        value = self.take(key, (int, float))
        if minimum is not None and (value < minimum or (strict and value == minimum)):
            raise self.error(key, f"must be {'>' if strict else '>='} {minimum:g}, got {value!r}")
        return float(value)

    def integer(self, key: str, default: Any = MISSING, *, minimum: int | None = None) -> Any:
        """An integer, at least ``minimum``."""
        if key not in self.data and default is not MISSING:
            return default
        value = self.take(key, int)
        if minimum is not None and value < minimum:
            raise self.error(key, f"must be >= {minimum}, got {value!r}")
        return value

    def choice(self, key: str, parse: Callable[[str], T], allowed: list[str], default: Any = MISSING) -> Any:
        """A string parsed by ``parse`` (an enum); a ValueError names the ``allowed`` values."""
        if key not in self.data and default is not MISSING:
            return default
        value = self.take(key, str)
        try:
            return parse(value)
        except ValueError:
            raise self.error(key, f"unknown value {value!r}; expected one of {allowed}") from None

    def strings(self, key: str) -> dict[str, str]:
        """A table of strings (labels, a selector, annotations); absent: empty."""
        table = self.take(key, dict, {})
        for k, v in table.items():
            if not isinstance(v, str):
                raise self.error(f"{key}.{k}", f"must be a string, got {type_name(v)} {v!r}")
        return dict(table)

    def tables(self, key: str) -> list[Table]:
        """An array of tables (``[[key]]``), each a Table named ``key[i]``; absent: empty."""
        items = self.take(key, list, [])
        return [Table(self.path, f"{self.field(key)}[{i}]", item) for i, item in enumerate(items)]

    def done(self) -> None:
        """Reject the first key (sorted) nobody took: "unknown key"."""
        if self.data:
            key = sorted(self.data)[0]
            raise self.error(key, "unknown key")


def type_name(value: object) -> str:
    """How an error message names a TOML value's type (or a type): "a table", "an integer", ..."""
    t = value if isinstance(value, type) else type(value)
    return {
        dict: "a table",
        list: "an array",
        str: "a string",
        int: "an integer",
        float: "a number",
        bool: "a boolean",
    }.get(t, t.__name__)


def load_toml(path: Path) -> dict[str, Any]:
    """A TOML file as a dict; a missing, unreadable or malformed file is a SpecError."""
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise SpecError(str(path), "", "no such file") from None
    except IsADirectoryError:
        raise SpecError(str(path), "", "is a directory, not a TOML file") from None
    except tomllib.TOMLDecodeError as e:
        raise SpecError(str(path), "", f"malformed TOML: {e}") from None
    except UnicodeDecodeError as e:
        raise SpecError(str(path), "", f"not UTF-8 text: {e.reason}") from None
