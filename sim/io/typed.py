"""The TOML table reader every file format is read through: typed fields, and whatever is left over rejected.

A problem raises SpecError naming the file, the field (dotted, with ``[i]`` for array entries) and the problem.
"""

from __future__ import annotations

import difflib
import math
import os
import stat
import sys
import tomllib
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from sim.errors import SpecError, shown
from sim.io.output import note_read

T = TypeVar("T")
MISSING: Any = object()
"""The default of a required field."""

MAX_TOML_BYTES = 16 << 20
"""The largest scenario, topology or experiment file read (bytes): a 1,000-node topology is about 200 kB."""
MAX_SAMPLE_BYTES = 256 << 20
"""The largest sample or trace file read (bytes): about 20 million send times."""
MAX_DEPTH = 32
"""The deepest nesting of tables and arrays a file may have (the formats need 5)."""
NUMBER_RANGE = (1e-15, 1e15)
"""The magnitudes a number other than 0 may have: seconds from a femtosecond to 30 million years, rates to match.
Beyond them sums and reciprocals (a rate's gap) leave float64's range or its precision, and the run goes silently
wrong (an infinite send time, a gap that rounds away)."""
INT_MAX = 2**63 - 1
"""Integers are 64-bit in TOML and in the simulator; a larger one is refused, not wrapped or stored as a bignum."""


class Table:
    """One table being read: takes typed fields and rejects whatever is left over. The one typed reader of nested
    data: ``sim.io.cluster.fields.KObject`` reads a Kubernetes object as a Table that names its fields after the
    object."""

    def __init__(self, path: Path, where: str, data: object) -> None:
        self.path = path
        self.where = where
        if not isinstance(data, dict):
            raise SpecError(str(path), where or "(top level)", f"must be a table, got {type_name(data)}")
        self.data = dict(data)
        self.known: set[str] = set()
        """Every key asked for, present or not: what "did you mean" suggests from."""

    def field(self, key: str) -> str:
        """The dotted name of ``key`` in this table, as errors print it."""
        return f"{self.where}.{key}" if self.where else key

    def error(self, key: str, problem: str) -> SpecError:
        """A SpecError for ``key`` of this table."""
        return SpecError(str(self.path), self.field(key), problem)

    def take(self, key: str, kinds: type | tuple[type, ...], default: Any = MISSING) -> Any:
        """Remove and return ``key``, which must be of ``kinds`` (bool is never an int here)."""
        self.known.add(key)
        if key not in self.data:
            if default is MISSING:
                raise self.error(key, "is required")
            return default
        return self.checked(key, self.data.pop(key), kinds)

    def checked(self, key: str, value: Any, kinds: type | tuple[type, ...]) -> Any:
        """``value`` (read at ``key``) if it is of ``kinds`` (bool is never an int here), else the error."""
        kinds_t = kinds if isinstance(kinds, tuple) else (kinds,)
        if (isinstance(value, bool) and bool not in kinds_t) or not isinstance(value, kinds_t):
            wanted = " or ".join(type_name(k) for k in kinds_t)
            raise self.error(key, f"must be {wanted}, got {type_name(value)} {shown(value)}")
        return value

    def number(
        self,
        key: str,
        default: Any = MISSING,
        *,
        minimum: float | None = None,
        strict: bool = False,
        allow_inf: bool = False,
    ) -> Any:
        """A finite number as float, at least (or, ``strict``, above) ``minimum``; NaN is never a number here, and
        ``inf`` only where ``allow_inf`` (a field whose "for ever" is infinity)."""
        self.known.add(key)
        if key not in self.data and default is not MISSING:
            return default
        value = self.take(key, (int, float))
        try:
            number = float(value)
        except OverflowError:
            raise self.error(key, f"must be a finite number, got an integer of {len(str(abs(value)))} digits") from None
        if math.isnan(number) or (math.isinf(number) and not allow_inf):
            raise self.error(key, f"must be a finite number, got {shown(value)}")
        low, high = NUMBER_RANGE
        if number != 0 and math.isfinite(number) and not low <= abs(number) <= high:
            raise self.error(key, f"must be 0 or between {low:g} and {high:g} in size, got {shown(value)}")
        if minimum is not None and not (number > minimum or (not strict and number == minimum)):
            raise self.error(key, f"must be {'>' if strict else '>='} {minimum:g}, got {shown(value)}")
        return number

    def integer(self, key: str, default: Any = MISSING, *, minimum: int | None = None, maximum: int = INT_MAX) -> Any:
        """An integer, at least ``minimum`` and at most ``maximum`` (64-bit by default)."""
        self.known.add(key)
        if key not in self.data and default is not MISSING:
            return default
        value = self.take(key, int)
        if minimum is not None and value < minimum:
            raise self.error(key, f"must be >= {minimum}, got {_int_text(value)}")
        if value > maximum or value < -INT_MAX - 1:
            raise self.error(key, f"must be <= {maximum}, got {_int_text(value)}")
        return value

    def choice(self, key: str, parse: Callable[[str], T], allowed: list[str], default: Any = MISSING) -> Any:
        """A string parsed by ``parse`` (an enum); a ValueError names the ``allowed`` values."""
        self.known.add(key)
        if key not in self.data and default is not MISSING:
            return default
        value = self.take(key, str)
        try:
            return parse(value)
        except ValueError:
            hint = did_you_mean(value, allowed)
            raise self.error(key, f"unknown value {shown(value)}; expected one of {allowed}{hint}") from None

    def kind(self, key: str, registry: Mapping[str, Callable[[Table], T]], what: str) -> T:
        """Read this table by the reader ``registry`` names for its ``key`` (``dist = "exponential"``,
        ``kind = "poisson"``), then reject what that reader left over; an unknown name lists the known ones."""
        name = self.take(key, str)
        reader = registry.get(name)
        if reader is None:
            hint = did_you_mean(name, list(registry))
            raise self.error(key, f"unknown {what} {shown(name)}; expected one of {list(registry)}{hint}")
        value = reader(self)
        self.done()
        return value

    def strings(self, key: str) -> dict[str, str]:
        """A table of strings (labels, a selector, annotations); absent: empty."""
        return self.string_map(key, self.take(key, dict, {}))

    def string_map(self, key: str, table: Mapping[str, Any]) -> dict[str, str]:
        """``table`` (read at ``key``) if every value is a string, else the error naming the first that is not."""
        for k, v in table.items():
            if not isinstance(v, str):
                raise self.error(f"{key}.{k}", f"must be a string, got {type_name(v)} {shown(v)}")
        return dict(table)

    def tables(self, key: str) -> list[Table]:
        """An array of tables (``[[key]]``), each a Table named ``key[i]``; absent: empty."""
        items = self.take(key, list, [])
        return [Table(self.path, f"{self.field(key)}[{i}]", item) for i, item in enumerate(items)]

    def done(self) -> None:
        """Reject the first key (sorted) nobody took: "unknown key"."""
        if self.data:
            key = sorted(self.data)[0]
            raise self.error(key, "unknown key" + did_you_mean(key, self.known))


def did_you_mean(word: str, known: Iterable[str]) -> str:
    """``"; did you mean 'X'?"`` for the known word closest to ``word`` (same letters in another case first,
    then ``difflib.get_close_matches``), or ``""`` when none is close.

    >>> did_you_mean("internalTraficPolicy", ["internalTrafficPolicy", "externalTrafficPolicy"])
    "; did you mean 'internalTrafficPolicy'?"
    >>> did_you_mean("local", ["Cluster", "Local"])
    "; did you mean 'Local'?"
    >>> did_you_mean("zzz", ["Cluster", "Local"])
    ''
    """
    candidates = sorted(set(known))
    same = [k for k in candidates if k.lower() == word.lower() and k != word]
    close = same or difflib.get_close_matches(word, candidates, n=1)
    return f"; did you mean {shown(close[0])}?" if close else ""


def _int_text(value: int) -> str:
    """An integer as an error message shows it: in full, or its size when it has more than 30 digits."""
    text = str(value)
    return text if len(text) <= 30 else f"an integer of {len(text.lstrip('-'))} digits"


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


def read_bytes(path: Path, limit: int | None = None, what: str = "TOML file") -> bytes:
    """The bytes of a regular file of at most ``limit`` bytes (default MAX_TOML_BYTES); anything else is a
    SpecError naming the file.

    A FIFO, a device (``/dev/zero``), a socket or a directory is refused before a byte is read (the file is opened
    non-blocking, so a FIFO cannot hang the open, and checked with ``fstat`` on the open descriptor); a symlink
    loop, a name too long, a NUL byte in the name or a permission problem is the error's one line.
    """
    limit = MAX_TOML_BYTES if limit is None else limit
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise SpecError(str(path), "", "no such file") from None
    except IsADirectoryError:
        raise SpecError(str(path), "", f"is a directory, not a {what}") from None
    except OSError as e:
        raise SpecError(str(path), "", f"cannot be read: {e.strerror or e}") from None
    except ValueError as e:  # a NUL byte in the name
        raise SpecError(str(path), "", f"cannot be read: {e}") from None
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise SpecError(str(path), "", f"is a directory, not a {what}")
        if not stat.S_ISREG(info.st_mode):
            raise SpecError(str(path), "", f"is not a regular file (a FIFO, device or socket), not a {what}")
        if info.st_size > limit:
            raise SpecError(str(path), "", f"is {info.st_size:,} bytes; a {what} may have at most {limit:,}")
        note_read(info)  # this command may not write over it
        os.set_blocking(fd, True)
        with os.fdopen(fd, "rb", closefd=True) as f:
            fd = -1
            data = f.read(limit + 1)
    except OSError as e:
        raise SpecError(str(path), "", f"cannot be read: {e.strerror or e}") from None
    finally:
        if fd >= 0:
            os.close(fd)
    if len(data) > limit:  # it grew while we read
        raise SpecError(str(path), "", f"is more than {limit:,} bytes; a {what} may have at most {limit:,}")
    return data


def read_text(path: Path, limit: int | None = None, what: str = "TOML file") -> str:
    """``read_bytes`` decoded as UTF-8; text that is not UTF-8 is a SpecError."""
    try:
        return read_bytes(path, limit, what).decode("utf-8")
    except UnicodeDecodeError as e:
        raise SpecError(str(path), "", f"not UTF-8 text: {e.reason} at byte {e.start}") from None


def depth(obj: object) -> int:
    """How deeply tables and arrays nest in ``obj`` (a scalar: 0), counted without recursion.

    >>> depth({"a": [[1], 2]})
    3
    """
    deepest, stack = 0, [(obj, 1)]
    while stack:
        item, level = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is None:
            continue
        deepest = max(deepest, level)
        stack.extend((child, level + 1) for child in children if isinstance(child, (dict, list)))
    return deepest


def check_depth(path: str | Path, obj: object) -> None:
    """Refuse ``obj`` if its tables and arrays nest deeper than MAX_DEPTH."""
    if depth(obj) > MAX_DEPTH:
        raise SpecError(str(path), "", f"nests tables and arrays more than {MAX_DEPTH} deep")


def load_toml(path: Path) -> dict[str, Any]:
    """A TOML file as a dict; a missing, unreadable, oversized, malformed or too deeply nested file is a SpecError."""
    text = read_text(path)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise SpecError(str(path), "", f"malformed TOML: {e}") from None
    except RecursionError:
        raise SpecError(str(path), "", f"malformed TOML: nests tables and arrays more than {MAX_DEPTH} deep") from None
    except ValueError as e:  # tomllib passes on int()'s limit of 4,300 digits
        raise SpecError(str(path), "", f"malformed TOML: {_digits(e)}") from None
    check_depth(path, data)
    return data


def _digits(e: ValueError) -> str:
    """int()'s complaint about a huge integer, in the user's words rather than Python's advice."""
    text = str(e)
    return f"an integer of more than {sys.get_int_max_str_digits():,} digits" if "Exceeds the limit" in text else text
