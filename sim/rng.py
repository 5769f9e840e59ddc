"""Seeded random streams: one numpy Generator per (purpose, entity) key, independent of creation order."""

from __future__ import annotations

import itertools
import zlib
from array import array
from collections.abc import Callable, Iterator
from typing import Any, Protocol

import numpy as np

Seed = int | np.random.SeedSequence

SeedRecord = int | dict[str, Any]
"""A seed as a record holds it: the integer, or a SeedSequence's ``entropy``, ``spawn_key`` and ``pool_size``."""


def seed_record(seed: Seed) -> SeedRecord:
    """What a record must hold to redo a run seeded with ``seed``: an int as it is; a SeedSequence as its entropy,
    spawn key and pool size (its first entropy word alone would seed another run).

    >>> seed_record(np.random.SeedSequence(5, spawn_key=(1,)))
    {'entropy': 5, 'spawn_key': [1], 'pool_size': 4}
    >>> seed_record(7)
    7
    """
    if isinstance(seed, np.random.SeedSequence):
        entropy = seed.entropy
        value: int | list[int] = (
            int(entropy) if isinstance(entropy, (int, np.integer)) else [int(w) for w in entropy or ()]
        )
        return {"entropy": value, "spawn_key": [int(k) for k in seed.spawn_key], "pool_size": int(seed.pool_size)}
    return int(seed)


def seed_from_record(record: SeedRecord) -> Seed:
    """The seed ``seed_record`` wrote: ``seed_from_record(seed_record(s))`` seeds the same streams as ``s``.

    >>> s = np.random.SeedSequence(5, spawn_key=(1,))
    >>> seed_from_record(seed_record(s)).generate_state(2).tolist() == s.generate_state(2).tolist()
    True
    """
    if isinstance(record, dict):
        return np.random.SeedSequence(
            record["entropy"], spawn_key=tuple(record["spawn_key"]), pool_size=record.get("pool_size", 4)
        )
    return int(record)


def seed_text(record: SeedRecord) -> str:
    """A seed as ``sim run`` prints it: the integer, or ``entropy/spawn-key``.

    >>> seed_text({"entropy": 5, "spawn_key": [1, 2], "pool_size": 4})
    '5/1.2'
    """
    if isinstance(record, dict):
        return f"{record['entropy']}/{'.'.join(str(k) for k in record['spawn_key'])}"
    return str(record)


DEFAULT_NAMESPACE = "default"
"""Kubernetes' default namespace. Defined here, in the bottom layer, because stream keys drop it (``_word``);
``sim.cluster`` exports it to every reader of objects."""


def _word(part: str | int) -> int:
    """A stable 32-bit word for one key part (crc32, never ``hash()``, which is salted per process).

    An object of the ``default`` namespace keys as its bare name (``default/echo-1`` as ``echo-1``): the two
    name one object, so a cluster read from manifests draws exactly as the same cluster written in TOML.
    """
    if isinstance(part, str) and part.startswith(f"{DEFAULT_NAMESPACE}/"):
        part = part[len(DEFAULT_NAMESPACE) + 1 :]
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
