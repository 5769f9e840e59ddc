"""The one exception for bad input: names the file, the field and the problem."""

from __future__ import annotations


class SpecError(ValueError):
    """Bad input in a scenario, topology or experiment file.

    ``str(err)`` is one line, ``"<path>: <field>: <problem>"``, fit to print as the whole error message.

    >>> str(SpecError("topologies/kind.toml", "links[0].latency", "must be >= 0 seconds, got -1"))
    'topologies/kind.toml: links[0].latency: must be >= 0 seconds, got -1'
    """

    def __init__(self, path: str, field: str, problem: str) -> None:
        self.path = str(path)
        self.field = field
        self.problem = problem
        super().__init__(f"{self.path}: {field}: {problem}" if field else f"{self.path}: {problem}")
