"""The one exception for bad input: names the file, the field and the problem."""

from __future__ import annotations

import reprlib

SHOWN_CHARS = 80
"""The most characters of any one value an error message quotes."""
_SHORT = reprlib.Repr()
_SHORT.maxstring, _SHORT.maxother, _SHORT.maxlong, _SHORT.maxlevel = SHOWN_CHARS - 2, SHOWN_CHARS, 40, 3
_SHORT.maxlist = _SHORT.maxtuple = _SHORT.maxset = 6
_SHORT.maxdict = 4


def one_line(text: str) -> str:
    """``text`` with every character that is not printable (newline, tab, NUL, other controls) escaped, so that a
    message built from it stays one line.

    >>> one_line("a\\nb\\x00")
    'a\\\\nb\\\\x00'
    """
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in text)


def shown(value: object) -> str:
    """``repr(value)`` cut to at most about SHOWN_CHARS characters, at a cost bounded by that (a million-element
    list or a 5,000-digit integer is not turned into text first).

    >>> shown("x" * 1000)[:12], len(shown("x" * 1000)) <= 80, shown(10**5000), shown([1, 2])
    ("'xxxxxxxxxxx", True, 'an integer of over 4,300 digits', '[1, 2]')
    """
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10**40:
        return f"an integer of {len(str(abs(value))) if value.bit_length() < 14_000 else 'over 4,300'} digits"
    text = _SHORT.repr(value)
    return text if len(text) <= SHOWN_CHARS else text[: SHOWN_CHARS - 3] + "..."


def _clip(text: str, limit: int) -> str:
    """``text`` cut in the middle to at most ``limit`` characters, so that both ends stay readable."""
    if len(text) <= limit:
        return text
    half = (limit - 5) // 2
    return f"{text[:half]} ... {text[-half:]}"


class SpecError(ValueError):
    """Bad input in a scenario, topology or experiment file (or a flag, or a results directory).

    ``str(err)`` is one line, ``"<path>: <field>: <problem>"``, fit to print as the whole error message: control
    characters in any part (a key holding a newline, a path with a NUL byte) are escaped, and each part is cut in
    the middle past 240, 240 and 400 characters (a value inside a problem is quoted with ``shown``).

    >>> str(SpecError("topologies/kind.toml", "links[0].latency", "must be >= 0 seconds, got -1"))
    'topologies/kind.toml: links[0].latency: must be >= 0 seconds, got -1'
    >>> str(SpecError("s.toml", "a\\nb", "unknown key"))
    's.toml: a\\\\nb: unknown key'
    """

    def __init__(self, path: str, field: str, problem: str) -> None:
        self.path = str(path)
        self.field = field
        self.problem = problem
        where, what, key = _clip(one_line(self.path), 240), _clip(one_line(problem), 400), _clip(one_line(field), 240)
        super().__init__(f"{where}: {key}: {what}" if field else f"{where}: {what}")
