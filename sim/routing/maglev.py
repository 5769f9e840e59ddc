"""Maglev consistent hashing (Eisenbud et al., NSDI 2016) as Cilium builds it: a lookup table of prime size.

Cilium ``pkg/maglev/maglev.go``: ``UserConfig.ToConfig`` base64-decodes ``--bpf-lb-maglev-hash-seed`` (12 bytes) and
takes bytes 0-3, big-endian, as the murmur3 seed; ``BackendInfo.setHashString`` names a backend
``[IP:port/TCP,State:active]``; ``GetLookupTable`` sorts backends by that name and ``computeLookupTable`` fills the
table round-robin, each backend taking the next free slot of its permutation (offset = h1 mod M,
skip = h2 mod (M-1) + 1 from ``murmur3.Hash128``), all weights equal.
"""

from __future__ import annotations

import base64
import binascii
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


def mix64_array(x: np.ndarray) -> np.ndarray:
    """``mix64`` on a uint64 array (wraps mod 2**64), for choosing many flows' slots at once.

    >>> int(mix64_array(np.array([5], dtype=np.uint64))[0]) == mix64(5)
    True
    """
    x = x.astype(np.uint64)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def seed_word(seed: str) -> int:
    """The murmur3 seed Cilium derives from ``--bpf-lb-maglev-hash-seed``: base64-decoded, 12 bytes, the first 4
    big-endian (``UserConfig.ToConfig``). Raises ValueError naming the problem otherwise.

    >>> hex(seed_word("JLfvgnHc2kaSUFaI"))
    '0x24b7ef82'
    """
    try:
        raw = base64.b64decode(seed, validate=True)
    except (binascii.Error, ValueError) as err:
        raise ValueError(f"cannot decode base64 Maglev hash seed {seed!r}") from err
    if len(raw) != 12:
        raise ValueError(f"decoded hash seed is {len(raw)} bytes (not 12 bytes)")
    return int.from_bytes(raw[:4], "big")


def hash_string(address: str) -> str:
    """Cilium's ``BackendInfo.setHashString`` for a TCP backend ``IP:port`` (IPv6 in brackets).

    >>> hash_string("10.244.1.2:80")
    '[10.244.1.2:80/TCP,State:active]'
    """
    return f"[{address}/TCP,State:active]"


def table(addresses: Sequence[str], size: int = DEFAULT_TABLE_SIZE, seed: str = DEFAULT_SEED) -> np.ndarray:
    """The lookup table: entry j is the index (into ``addresses`` as given, each ``IP:port``) of the backend owning
    slot j, as Cilium's ``GetLookupTable`` builds it.

    Backends are ordered by their hash string before the table is filled, so every node builds the same table
    whatever order it saw them in.
    """
    return _table(tuple(addresses), size, seed).copy()


@lru_cache(maxsize=256)
def _table(addresses: tuple[str, ...], size: int, seed: str) -> np.ndarray:
    if not addresses:
        raise ValueError("a Maglev table needs at least one backend")
    names = [hash_string(a) for a in addresses]
    order = sorted(range(len(names)), key=lambda i: names[i])
    word = seed_word(seed)
    perms = []
    for i in order:
        h = mmh3.hash128(names[i].encode(), word, signed=False)
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
