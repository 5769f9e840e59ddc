"""How one endpoint is picked from a selected set: the Picker protocol and the registry of pickers.

A picker is one class and one registry line. It states the share of new connections each endpoint should get
(what the chi-square test expects), makes a chooser per proxy, which keeps that proxy's state (the DES), and states
its vector form: many connections' picks at once (``picks``, the fast path), or None and why not.

A flow is an int: ``(crc32(client IP) << 16) | source port`` (see ``flow_key``). Pickers that hash read it;
the others ignore it.
"""

from __future__ import annotations

import functools
import itertools
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import ClassVar, Protocol

import numpy as np

from sim.cluster import Endpoint
from sim.rng import growing
from sim.routing import maglev

Chooser = Callable[[int], int]
"""``choose(flow) -> index`` into the endpoint tuple it was made for."""
RngFn = Callable[[], np.random.Generator]
"""A proxy's generator, made when first asked for (``Picker.picks``)."""
FlowsFn = Callable[[], np.ndarray]
"""The flows (uint64) of a proxy's new connections in send order, computed when first asked for."""


def ip_key(ip: str) -> int:
    """A stable 32-bit key for a client IP address."""
    return zlib.crc32(ip.encode())


def flow_key(ip: str, port: int) -> int:
    """The flow of a new connection from ``ip`` with source ``port``."""
    return (ip_key(ip) << 16) | (port & 0xFFFF)


class Picker(Protocol):
    """A load-balancing algorithm: states its expected shares and makes per-proxy choosers."""

    name: ClassVar[str]
    deterministic: ClassVar[bool]
    """True where counts are balanced by construction (a chi-square p-value would look "too good")."""
    needs_load: ClassVar[bool]
    """True where the chooser reads live per-endpoint connection counts."""
    reads_flow: ClassVar[bool]
    """True where the chooser reads the flow it is given (the others ignore it: no source port need be drawn)."""
    what_if: ClassVar[bool]
    """True for a picker no dataplane implements (a what-if, e.g. power of two choices): every dataplane accepts it.
    A picker that is some dataplane's mode is accepted only by the dataplanes that offer it (``Dataplane.pickers``)."""

    def shares(self, endpoints: Sequence[Endpoint], client_ip: str | None = None) -> np.ndarray:
        """Long-run fraction of new connections per endpoint (sums to 1); ``client_ip`` for per-client pickers."""
        ...

    def chooser(self, endpoints: Sequence[Endpoint], rng: np.random.Generator, load: Sequence[int]) -> Chooser:
        """A chooser for one proxy; ``load[i]`` is that proxy's open connections to endpoint i (kept by the engine)."""
        ...

    def picks(
        self,
        endpoints: Sequence[Endpoint],
        size: int,
        rng: RngFn,
        flows: FlowsFn,
    ) -> np.ndarray | None:
        """The picks (indices into ``endpoints``) of one proxy's ``size`` new connections at once, in send order: the
        fast path's form of ``chooser``. ``rng()`` is the proxy's generator and ``flows()`` the connections' flows
        (uint64), each made only if asked for. None where the picker has no vector form (its chooser then runs one
        flow at a time); a picker that reads live load never gets here (the fast path refuses it)."""
        ...


def uniform_indices(n: int, rng: np.random.Generator, block: int = 4096) -> Iterator[int]:
    """Endless uniform draws from ``range(n)``, fetched from the rng in blocks doubling from 16 to ``block``
    (lazily, block by block; ``next()`` on it is a C call, like ``sim.rng.blocks``)."""

    def fill(size: int) -> list[int]:
        return rng.integers(0, n, size=size).tolist()  # type: ignore[no-any-return]

    return itertools.chain.from_iterable(map(fill, growing(block)))


def uniform_slots(rng: np.random.Generator, n: int, size: int) -> np.ndarray:
    """``size`` independent uniform picks from ``range(n)`` in one draw: the ``random`` picker's vector form."""
    return rng.integers(0, n, size)


def _uniform(endpoints: Sequence[Endpoint]) -> np.ndarray:
    return np.full(len(endpoints), 1.0 / len(endpoints))


@dataclass(frozen=True)
class Random:
    """Uniform per new connection: iptables ``statistic --mode random``, nftables ``numgen``, Cilium ``random``."""

    name: ClassVar[str] = "random"
    deterministic: ClassVar[bool] = False
    needs_load: ClassVar[bool] = False
    reads_flow: ClassVar[bool] = False
    what_if: ClassVar[bool] = False

    def shares(self, endpoints: Sequence[Endpoint], client_ip: str | None = None) -> np.ndarray:
        """1/n each."""
        return _uniform(endpoints)

    def chooser(self, endpoints: Sequence[Endpoint], rng: np.random.Generator, load: Sequence[int]) -> Chooser:
        """Independent uniform draws; the flow is ignored."""
        # next(iterator, default): the flow lands in next()'s unused default, so the chooser is a C-level call
        return functools.partial(next, uniform_indices(len(endpoints), rng))

    def picks(self, endpoints: Sequence[Endpoint], size: int, rng: RngFn, flows: FlowsFn) -> np.ndarray | None:
        """Independent uniform draws in one vector (as likely as the chooser's, not the same draws)."""
        return uniform_slots(rng(), len(endpoints), size)


@dataclass(frozen=True)
class RoundRobin:
    """Deterministic rotation per proxy (IPVS ``rr``): counts are exactly balanced, never random."""

    name: ClassVar[str] = "round-robin"
    deterministic: ClassVar[bool] = True
    needs_load: ClassVar[bool] = False
    reads_flow: ClassVar[bool] = False
    what_if: ClassVar[bool] = False

    def shares(self, endpoints: Sequence[Endpoint], client_ip: str | None = None) -> np.ndarray:
        """1/n each."""
        return _uniform(endpoints)

    def chooser(self, endpoints: Sequence[Endpoint], rng: np.random.Generator, load: Sequence[int]) -> Chooser:
        """Rotation starting at the first endpoint; the rng is not used."""
        return functools.partial(next, itertools.cycle(range(len(endpoints))))

    def picks(self, endpoints: Sequence[Endpoint], size: int, rng: RngFn, flows: FlowsFn) -> np.ndarray | None:
        """The rotation: the chooser's very picks."""
        return np.arange(size) % len(endpoints)


@dataclass(frozen=True)
class LeastConnections:
    """IPVS ``lc``: the endpoint with the fewest open connections from this proxy.

    Ties go to the next endpoint after the last one picked: IPVS counts recently closed (inactive) connections
    too, which spreads idle ties round the list rather than always picking the first. Shares are 1/n for
    identical backends.
    """

    name: ClassVar[str] = "least-connections"
    deterministic: ClassVar[bool] = True
    needs_load: ClassVar[bool] = True
    reads_flow: ClassVar[bool] = False
    what_if: ClassVar[bool] = False

    def shares(self, endpoints: Sequence[Endpoint], client_ip: str | None = None) -> np.ndarray:
        """1/n each (by symmetry, for identical backends)."""
        return _uniform(endpoints)

    def picks(self, endpoints: Sequence[Endpoint], size: int, rng: RngFn, flows: FlowsFn) -> np.ndarray | None:
        """None: each pick reads the live connection counts, which only the DES has."""
        return None

    def chooser(self, endpoints: Sequence[Endpoint], rng: np.random.Generator, load: Sequence[int]) -> Chooser:
        """Scan from after the last pick for the least-loaded endpoint."""
        n = len(endpoints)
        last = [n - 1]

        def choose(flow: int) -> int:
            start = last[0] + 1
            best = start % n
            for k in range(start, start + n):
                i = k % n
                if load[i] < load[best]:
                    best = i
            last[0] = best
            return best

        return choose


@dataclass(frozen=True)
class PowerOfTwoChoices:
    """Two endpoints drawn at random; the one with fewer open connections wins (ties: the first drawn)."""

    name: ClassVar[str] = "power-of-two"
    deterministic: ClassVar[bool] = False
    needs_load: ClassVar[bool] = True
    reads_flow: ClassVar[bool] = False
    what_if: ClassVar[bool] = True

    def shares(self, endpoints: Sequence[Endpoint], client_ip: str | None = None) -> np.ndarray:
        """1/n each (by symmetry, for identical backends)."""
        return _uniform(endpoints)

    def picks(self, endpoints: Sequence[Endpoint], size: int, rng: RngFn, flows: FlowsFn) -> np.ndarray | None:
        """None: each pick reads the live connection counts, which only the DES has."""
        return None

    def chooser(self, endpoints: Sequence[Endpoint], rng: np.random.Generator, load: Sequence[int]) -> Chooser:
        """Two distinct uniform candidates per connection."""
        n = len(endpoints)
        if n == 1:
            return lambda flow: 0
        first = uniform_indices(n, rng)
        offset = uniform_indices(n - 1, rng)

        def choose(flow: int) -> int:
            a = next(first)
            b = (a + 1 + next(offset)) % n
            return b if load[b] < load[a] else a

        return choose


@dataclass(frozen=True)
class Maglev:
    """Maglev consistent hashing of the flow (Cilium ``maglev``; IPVS ``mh`` with the source-port flag)."""

    table_size: int = maglev.DEFAULT_TABLE_SIZE
    seed: str = maglev.DEFAULT_SEED
    name: ClassVar[str] = "maglev"
    deterministic: ClassVar[bool] = False
    needs_load: ClassVar[bool] = False
    reads_flow: ClassVar[bool] = True
    what_if: ClassVar[bool] = False

    def shares(self, endpoints: Sequence[Endpoint], client_ip: str | None = None) -> np.ndarray:
        """Each endpoint's fraction of table slots (within about 1% of 1/n for M >> n)."""
        lut = maglev.table([ep.address for ep in endpoints], self.table_size, self.seed)
        return np.bincount(lut, minlength=len(endpoints)) / self.table_size

    def chooser(self, endpoints: Sequence[Endpoint], rng: np.random.Generator, load: Sequence[int]) -> Chooser:
        """Table lookup of the hashed flow; the same flow always lands on the same backend."""
        lut = maglev.table([ep.address for ep in endpoints], self.table_size, self.seed).tolist()
        size = self.table_size
        return lambda flow: lut[maglev.mix64(flow) % size]

    def picks(self, endpoints: Sequence[Endpoint], size: int, rng: RngFn, flows: FlowsFn) -> np.ndarray | None:
        """The table lookups of the hashed flows: the chooser's very picks."""
        lut = maglev.table([ep.address for ep in endpoints], self.table_size, self.seed)
        return lut[(maglev.mix64_array(flows()) % np.uint64(self.table_size)).astype(np.int64)]


@dataclass(frozen=True)
class SourceHash:
    """IPVS ``sh``: a hash of the client IP alone, so every connection of one client lands on one endpoint."""

    name: ClassVar[str] = "source-hash"
    deterministic: ClassVar[bool] = False
    needs_load: ClassVar[bool] = False
    reads_flow: ClassVar[bool] = True
    what_if: ClassVar[bool] = False

    def shares(self, endpoints: Sequence[Endpoint], client_ip: str | None = None) -> np.ndarray:
        """One-hot on the client's endpoint; 1/n each over many clients (``client_ip=None``)."""
        if client_ip is None:
            return _uniform(endpoints)
        out = np.zeros(len(endpoints))
        out[maglev.mix64(ip_key(client_ip)) % len(endpoints)] = 1.0
        return out

    def chooser(self, endpoints: Sequence[Endpoint], rng: np.random.Generator, load: Sequence[int]) -> Chooser:
        """Hash of the flow's client-IP part."""
        n = len(endpoints)
        return lambda flow: maglev.mix64(flow >> 16) % n

    def picks(self, endpoints: Sequence[Endpoint], size: int, rng: RngFn, flows: FlowsFn) -> np.ndarray | None:
        """The hashes of the flows' client-IP parts: the chooser's very picks."""
        hashed = maglev.mix64_array(flows() >> np.uint64(16))
        return (hashed % np.uint64(len(endpoints))).astype(np.int64)


PICKERS: dict[str, type[Random | RoundRobin | LeastConnections | PowerOfTwoChoices | Maglev | SourceHash]] = {
    p.name: p for p in (Random, RoundRobin, LeastConnections, PowerOfTwoChoices, Maglev, SourceHash)
}
"""Every picker class by the name used in scenario files; ``PICKERS[name]()`` makes one with defaults."""
