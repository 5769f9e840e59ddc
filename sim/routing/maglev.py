"""Maglev consistent hashing (Eisenbud et al., NSDI 2016) as Cilium builds it: a lookup table of prime size."""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import mmh3
import numpy as np

DEFAULT_TABLE_SIZE = 16381
"""Cilium's ``--bpf-lb-maglev-table-size`` default."""
TABLE_SIZES = (251, 509, 1021, 2039, 4093, 8191, 16381, 32749, 65521, 131071)
"""The sizes Cilium accepts (primes)."""
DEFAULT_SEED = "JLfvgnHc2kaSUFaI"
"""Cilium's ``--bpf-lb-maglev-hash-seed`` default."""

_MASK64 = (1 << 64) - 1


def mix64(x: int) -> int:
    """A 64-bit integer hash (splitmix64's finaliser), used to hash a flow onto the table.

    >>> mix64(1) != mix64(2)
    True
    """
    x &= _MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return x ^ (x >> 31)


def table(names: Sequence[str], size: int = DEFAULT_TABLE_SIZE, seed: str = DEFAULT_SEED) -> np.ndarray:
    """The lookup table: entry j is the index (into ``names`` as given) of the backend owning slot j.

    Backends are ordered by name before the table is filled, so every node builds the same table whatever order
    it saw them in. Each backend's permutation comes from murmur3 of its name: offset = h1 mod M and
    skip = h2 mod (M-1) + 1.
    """
    return _table(tuple(names), size, seed).copy()


@lru_cache(maxsize=256)
def _table(names: tuple[str, ...], size: int, seed: str) -> np.ndarray:
    if not names:
        raise ValueError("a Maglev table needs at least one backend")
    order = sorted(range(len(names)), key=lambda i: names[i])
    seed_word = mmh3.hash(seed, signed=False)
    perms = []
    for i in order:
        h = mmh3.hash128(names[i], seed_word, signed=False)
        h1, h2 = h & _MASK64, h >> 64
        perms.append((h1 % size, h2 % (size - 1) + 1))
    entry = np.full(size, -1, dtype=np.int64)
    nxt = [0] * len(order)
    filled = 0
    while True:
        for k, (offset, skip) in enumerate(perms):
            c = (offset + nxt[k] * skip) % size
            while entry[c] >= 0:
                nxt[k] += 1
                c = (offset + nxt[k] * skip) % size
            entry[c] = order[k]
            nxt[k] += 1
            filled += 1
            if filled == size:
                entry.flags.writeable = False
                return entry
