"""The one exception for bad input: names the file, the field and the problem."""

from __future__ import annotations


def one_line(text: str) -> str:
    """``text`` with every character that is not printable (newline, tab, NUL, other controls) escaped, so that a
    message built from it stays one line.

    >>> one_line("a\\nb\\x00")
    'a\\\\nb\\\\x00'
    """
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in text)


class SpecError(ValueError):
    """Bad input in a scenario, topology or experiment file (or a flag, or a results directory).

    ``str(err)`` is one line, ``"<path>: <field>: <problem>"``, fit to print as the whole error message: control
    characters in any part (a key holding a newline, a path with a NUL byte) are escaped.

    >>> str(SpecError("topologies/kind.toml", "links[0].latency", "must be >= 0 seconds, got -1"))
    'topologies/kind.toml: links[0].latency: must be >= 0 seconds, got -1'
    >>> str(SpecError("s.toml", "a\\nb", "unknown key"))
    's.toml: a\\\\nb: unknown key'
    """

    def __init__(self, path: str, field: str, problem: str) -> None:
        self.path = str(path)
        self.field = field
        self.problem = problem
        where, what = one_line(self.path), one_line(problem)
        super().__init__(f"{where}: {one_line(field)}: {what}" if field else f"{where}: {what}")
