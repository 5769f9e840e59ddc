"""How one endpoint is picked from a selected set: the Picker protocol and the registry of pickers."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Sequence
from typing import ClassVar, Protocol

import numpy as np

from sim.cluster import Endpoint

Chooser = Callable[[int], int]
"""``choose(flow) -> index`` into the endpoint tuple it was made for; ``flow`` is a hash of the connection."""


class Picker(Protocol):
    """A load-balancing algorithm: states its expected shares and makes per-proxy choosers."""

    name: ClassVar[str]
    deterministic: ClassVar[bool]

    def shares(self, endpoints: Sequence[Endpoint]) -> np.ndarray:
        """The long-run fraction of new connections each endpoint receives (sums to 1)."""
        ...

    def chooser(self, endpoints: Sequence[Endpoint], rng: np.random.Generator) -> Chooser:
        """A chooser for one proxy (one node) over ``endpoints``; any state it keeps is that proxy's."""
        ...


def _uniform_indices(n: int, rng: np.random.Generator, block: int = 4096) -> Iterator[int]:
    """Endless uniform draws from ``range(n)``, fetched from the rng in blocks."""
    while True:
        yield from rng.integers(0, n, size=block).tolist()


class Random:
    """Uniform per new connection: iptables ``statistic --mode random``, nftables ``numgen``, Cilium ``random``."""

    name: ClassVar[str] = "random"
    deterministic: ClassVar[bool] = False

    def shares(self, endpoints: Sequence[Endpoint]) -> np.ndarray:
        """1/n each."""
        return np.full(len(endpoints), 1.0 / len(endpoints))

    def chooser(self, endpoints: Sequence[Endpoint], rng: np.random.Generator) -> Chooser:
        """Independent uniform draws; the flow is ignored."""
        draws = _uniform_indices(len(endpoints), rng)
        return lambda flow: next(draws)


class RoundRobin:
    """Deterministic rotation per proxy (IPVS ``rr``): counts are exactly balanced, never random."""

    name: ClassVar[str] = "round-robin"
    deterministic: ClassVar[bool] = True

    def shares(self, endpoints: Sequence[Endpoint]) -> np.ndarray:
        """1/n each."""
        return np.full(len(endpoints), 1.0 / len(endpoints))

    def chooser(self, endpoints: Sequence[Endpoint], rng: np.random.Generator) -> Chooser:
        """Rotation starting at the first endpoint; the rng is not used."""
        order = itertools.cycle(range(len(endpoints)))
        return lambda flow: next(order)


PICKERS: dict[str, Picker] = {p.name: p for p in (Random(), RoundRobin())}
"""Every picker by the name used in scenario files."""
