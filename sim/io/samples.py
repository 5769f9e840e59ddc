"""Numbers of seconds given inline or in a sample file (trace send times, empirical service times).

A sample file is plain UTF-8 text: the first column of each line (comma-separated), one number a line, an optional
header line, ``#`` comments and blank lines ignored. Every number must be finite: a NaN would drop a trace's
sends from there on, silently.
"""

from __future__ import annotations

import math

from sim.errors import SpecError
from sim.io.typed import MAX_SAMPLE_BYTES, NUMBER_RANGE, Table, read_text


def numbers(t: Table, inline_key: str) -> tuple[str, tuple[float, ...]]:
    """Numbers of seconds: inline ``<inline_key> = [...]`` or ``file = "x.csv"`` (first column, one a line, an
    optional header line, # comments). Returns the key that gave them, for error messages."""
    if "file" in t.data:
        name = t.take("file", str)
        try:
            file = t.path.parent / name
        except ValueError as e:
            raise t.error("file", f"cannot read {name!r}: {e}") from None
        try:
            lines = read_text(file, MAX_SAMPLE_BYTES, "sample file").splitlines()
        except SpecError as e:
            raise t.error("file", f"cannot read {file}: {e.problem}") from None
        values = []
        for n, line in enumerate(lines, 1):
            text = line.split("#", 1)[0].strip().split(",")[0].strip()
            if not text or (n == 1 and not text[0].isdigit() and text[0] not in "+-."):
                continue  # blank, comment or a header line
            try:
                value = float(text)
            except ValueError:
                raise SpecError(str(file), f"line {n}", f"not a number of seconds: {text[:40]!r}") from None
            if not math.isfinite(value):
                raise SpecError(str(file), f"line {n}", f"must be a finite number of seconds, got {text[:40]!r}")
            if abs(value) > NUMBER_RANGE[1]:
                raise SpecError(
                    str(file), f"line {n}", f"must be at most {NUMBER_RANGE[1]:g} seconds, got {text[:40]!r}"
                )
            values.append(value)
        return "file", tuple(values)
    t.known.add("file")
    raw = t.take(inline_key, list)
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in raw):
        raise t.error(inline_key, "must be an array of numbers of seconds")
    try:
        inline = tuple(float(v) for v in raw)
    except OverflowError:
        raise t.error(inline_key, "must be an array of finite numbers of seconds; an integer is too large") from None
    if not all(math.isfinite(v) for v in inline):
        raise t.error(inline_key, "must be an array of finite numbers of seconds; got NaN or inf")
    if any(abs(v) > NUMBER_RANGE[1] for v in inline):
        raise t.error(inline_key, f"must be an array of numbers of seconds, each at most {NUMBER_RANGE[1]:g}")
    return inline_key, inline
