"""Seeded random streams: one numpy Generator per (purpose, entity) key, independent of creation order."""

from __future__ import annotations

import itertools
import zlib
from array import array
from collections.abc import Callable, Iterator
from typing import Protocol

import numpy as np

Seed = int | np.random.SeedSequence


DEFAULT_NAMESPACE = "default/"


def _word(part: str | int) -> int:
    """A stable 32-bit word for one key part (crc32, never ``hash()``, which is salted per process).

    An object of the ``default`` namespace keys as its bare name (``default/echo-1`` as ``echo-1``): the two
    name one object, so a cluster read from manifests draws exactly as the same cluster written in TOML.
    """
    if isinstance(part, str) and part.startswith(DEFAULT_NAMESPACE):
        part = part[len(DEFAULT_NAMESPACE) :]
    return zlib.crc32(f"{type(part).__name__}:{part}".encode())


class Streams:
    """Independent random streams derived from one seed.

    The stream for a key such as ``("arrivals", "client-a")`` depends only on the seed and the key, so adding a
    pod never shifts another pod's draws, and two scenarios run with one seed share every stream they have in
    common (common random numbers).

    >>> a = Streams(7).generator("arrivals", "client").random()
    >>> b = Streams(7).generator("arrivals", "client").random()
    >>> a == b
    True
    """

    def __init__(self, seed: Seed) -> None:
        self.root = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(int(seed))

    def generator(self, *key: str | int) -> np.random.Generator:
        """The Generator for ``key``; the same key always gives a fresh Generator in the same state."""
        child = np.random.SeedSequence(
            entropy=self.root.entropy,
            spawn_key=tuple(self.root.spawn_key) + tuple(_word(p) for p in key),
            pool_size=self.root.pool_size,
        )
        return np.random.Generator(np.random.PCG64(child))


class BlockDraw(Protocol):
    """Anything callable as ``draw(rng, size) -> ndarray``."""

    def __call__(self, rng: np.random.Generator, size: int, /) -> np.ndarray: ...


def growing(block: int = 4096) -> Iterator[int]:
    """Block sizes 16, 32, 64, ... doubling up to ``block``, then ``block`` for ever: a stream drawn a few times
    holds a small block, a busy one pays numpy's per-call cost once per ``block`` draws.

    >>> list(itertools.islice(growing(64), 6))
    [16, 32, 64, 64, 64, 64]
    """
    doubling = itertools.takewhile(lambda n: n < block, (16 << k for k in itertools.count()))
    return itertools.chain(doubling, itertools.repeat(block))


def block_arrays(
    draw: BlockDraw, rng: np.random.Generator | Callable[[], np.random.Generator], block: int = 4096
) -> Iterator[np.ndarray]:
    """An endless iterator of ``draw(rng, n)`` float64 arrays, ``n`` doubling from 16 to ``block``.

    Nothing is drawn until the first ``next()``, and ``rng`` may be a function that makes the Generator on first
    use: a large cluster has many paths that few requests take. The sequence depends only on the rng's state.
    """
    made: list[np.random.Generator] = []

    def fill(n: int) -> np.ndarray:
        if not made:
            made.append(rng if isinstance(rng, np.random.Generator) else rng())
        return np.asarray(draw(made[0], n), dtype=float)

    return map(fill, growing(block))


def blocks(
    draw: BlockDraw, rng: np.random.Generator | Callable[[], np.random.Generator], block: int = 4096
) -> Iterator[float]:
    """``block_arrays``, one Python float at a time: per draw, one C-level ``next()`` (``itertools.chain`` over
    the blocks, each held as ``array('d')``: 8 bytes a draw, not a list's 32)."""
    return itertools.chain.from_iterable(map(_doubles, block_arrays(draw, rng, block)))


def _doubles(values: np.ndarray) -> array[float]:
    return array("d", values.tobytes())
