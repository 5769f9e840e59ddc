"""Numbers of seconds given inline or in a sample file (trace send times, empirical service times).

A sample file is plain text: the first column of each line (comma-separated), one number a line, an optional
header line, ``#`` comments and blank lines ignored.
"""

from __future__ import annotations

from sim.errors import SpecError
from sim.io.tables import Table


def numbers(t: Table, inline_key: str) -> tuple[str, tuple[float, ...]]:
    """Numbers of seconds: inline ``<inline_key> = [...]`` or ``file = "x.csv"`` (first column, one a line, an
    optional header line, # comments). Returns the key that gave them, for error messages."""
    if "file" in t.data:
        file = t.path.parent / t.take("file", str)
        try:
            lines = file.read_text().splitlines()
        except OSError as e:
            raise t.error("file", f"cannot read {file}: {e.strerror}") from None
        values = []
        for n, line in enumerate(lines, 1):
            text = line.split("#", 1)[0].strip().split(",")[0].strip()
            if not text or (n == 1 and not text[0].isdigit() and text[0] not in "+-."):
                continue  # blank, comment or a header line
            try:
                values.append(float(text))
            except ValueError:
                raise SpecError(str(file), f"line {n}", f"not a number of seconds: {text!r}") from None
        return "file", tuple(values)
    raw = t.take(inline_key, list)
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in raw):
        raise t.error(inline_key, "must be an array of numbers of seconds")
    return inline_key, tuple(float(v) for v in raw)
