"""Ephemeral source ports of a client's new connections, drawn as Linux draws them, from the run's seed.

Hashing pickers (Maglev, source-hash with ports) read the source port, so the ports decide their picks: ports
taken in turn from one fixed start would give a client the same picks under every seed, and replications would
not be independent. Linux chooses a connect()'s port in ``__inet_hash_connect`` (net/ipv4/inet_hashtables.c,
RFC 6056 algorithm 4, "double-hash"):

- the range is ``net.ipv4.ip_local_port_range``, 32768-60999 by default (``inet_init_net``,
  net/ipv4/af_inet.c: ``range = 60999u << 16 | 32768u``); ``high++`` and ``remaining = high - low`` rounded
  down to even: 28232 ports;
- ``port_offset`` is ``secure_ipv4_port_ephemeral(saddr, daddr, dport)``, a siphash of the connection's
  addresses under a secret drawn at boot (net/core/secure_seq.c); it picks ``index``, a slot of
  ``table_perturb``, an array of random words also drawn at boot;
- ``offset = (table_perturb[index] + (port_offset >> 32)) % remaining``, made even (``offset &= ~1``: the
  first pass tries ports of ``low``'s parity), and the port is ``low + offset``, or the next free one 2 further
  on;
- after a success ``i = max(i, get_random_u32_below(8) * 2)`` and ``table_perturb[index] += i + 2``, where ``i``
  is how far the scan went (0 when the first port tried was free).

Both secrets are unknown random numbers, so the first offset is uniform; each later one moves on by
``2 + 2 * U{0..7}`` (mod 28232). Here a stream is one socket sequence (its own destination tuple) and every
first port tried is taken as free (i = 0): ports still in TIME_WAIT towards the same destination, which
would make the scan skip, are not modelled. The draws come from the stream's ``("ports", client, service, n)``
generator, so they are fixed by the seed and differ between seeds.

A consequence for hashed pickers: one client has 14,116 ports (of ``low``'s parity) towards one destination, and
its first ~3,000 connections (one pass through the range) use each at most once, so a run samples that client's
flows without replacement; its pick counts vary about n / 14,116 less than a multinomial's.
"""

from __future__ import annotations

import itertools
from array import array
from collections.abc import Callable, Iterator

import numpy as np

from sim.rng import growing

EPHEMERAL_PORTS = (32768, 60999)
"""Linux's default ``net.ipv4.ip_local_port_range`` (``inet_init_net``, net/ipv4/af_inet.c), inclusive."""
_LOW = EPHEMERAL_PORTS[0]
_REMAINING = (EPHEMERAL_PORTS[1] + 1 - EPHEMERAL_PORTS[0]) & ~1  # __inet_hash_connect: high++, remaining &= ~1
_MAX_SKIP = 8  # get_random_u32_below(8) * 2: an extra random step of 0..14 ports


Rng = np.random.Generator | Callable[[], np.random.Generator]


def port_blocks(rng: Rng, block: int = 4096) -> Iterator[np.ndarray]:
    """Source ports of a stream's successive new connections, as int64 arrays of 16, 32, ... ``block`` ports.

    The sequence depends only on the rng: the DES takes it port by port (``source_ports``), the fast path
    whole (``first_ports``), and both see the same ports. ``rng`` may be a function that makes the Generator
    on first use. Nothing is drawn until the first ``next()``.

    >>> ports = next(port_blocks(np.random.default_rng(1)))
    >>> bool(np.all((ports >= 32768) & (ports <= 60999) & (ports % 2 == 0)))
    True
    """
    g = rng if isinstance(rng, np.random.Generator) else rng()
    # table_perturb[index] + (port_offset >> 32): two boot-time secrets, so a uniform start
    offset = int(g.integers(0, _REMAINING))
    for size in growing(block):
        steps = 2 + 2 * g.integers(0, _MAX_SKIP, size)  # table_perturb[index] += i + 2, i = 2 * U{0..7}
        before = offset + np.cumsum(steps) - steps  # table_perturb[index] when each connection is made
        offset = int(before[-1] + steps[-1]) % _REMAINING
        yield _LOW + ((before % _REMAINING) & ~1)  # offset %= remaining; offset &= ~1; port = low + offset


def source_ports(rng: Rng) -> Iterator[int]:
    """``port_blocks`` one Python int at a time (``next()`` on it is a C call), each block held as an
    ``array('q')``: 8 bytes a port, not a list's 36 (20,000 streams each holding a block of 512 at the end of a
    large run: 80 MB, not 370)."""
    return itertools.chain.from_iterable(map(_ports, port_blocks(rng)))


def _ports(block: np.ndarray) -> array[int]:
    return array("q", np.ascontiguousarray(block, dtype=np.int64).tobytes())


def first_ports(rng: np.random.Generator, n: int) -> np.ndarray:
    """The first ``n`` ports of ``port_blocks(rng)`` (int64)."""
    if n <= 0:
        return np.zeros(0, dtype=np.int64)
    parts, got = [], 0
    for ports in port_blocks(rng):
        parts.append(ports)
        got += len(ports)
        if got >= n:
            break
    return np.concatenate(parts)[:n]
