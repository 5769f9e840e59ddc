"""The record writer of the event path: named operations on three flat arrays, five slots per request."""

from __future__ import annotations

import functools
import itertools
import math
from array import array
from collections import deque
from collections.abc import Iterator

import numpy as np

from sim.outcomes import DropReason, Outcome
from sim.records import COLUMNS

NAN = math.nan
OK = int(Outcome.OK)
DROPPED = int(Outcome.DROPPED)
IN_FLIGHT = int(Outcome.IN_FLIGHT)
TIMEOUT = int(Outcome.TIMEOUT)
REAL_SERVER_DELETED = int(DropReason.REAL_SERVER_DELETED)


RETURNED = 4
"""Offset of the return time in a request's five ``times`` slots (``Records``)."""


class Records:
    """The records while the run writes them: three flat arrays, five slots per request, so that a send costs
    three ``extend``s (``open``). A request's slots start at its ``base`` (five times its row):

    - ``ints``: stream, request (the first attempt's row), endpoint (pod index, -1: none), entry node, version;
    - ``small``: attempt, pick, source preserved, outcome, reason;
    - ``times`` (s): sent, arrived, started, finished, returned (NaN until written).

    The named operations below are the only writes; the two hottest callbacks (``ComputedFifo.arrive`` and
    ``Run.reply``) write ``times`` slots directly at the offsets these operations name, to save a call."""

    __slots__ = ("ints", "small", "times")

    def __init__(self) -> None:
        self.ints = array("i")
        self.small = array("b")
        self.times = array("d")

    def open(
        self, at: float, stream: int, request: int, endpoint: int, node: int, version: int, attempt: int, pick: int,
        preserved: int,
    ) -> int:  # fmt: skip
        """A new attempt sent at ``at`` (s), in flight; ``request`` -1 for a first attempt. Returns its base."""
        base = len(self.times)
        self.times.extend((at, NAN, NAN, NAN, NAN))
        self.ints.extend((stream, base // 5 if request < 0 else request, endpoint, node, version))
        self.small.extend((attempt, pick, preserved, IN_FLIGHT, 0))
        return base

    def arrived(self, base: int, at: float) -> None:
        """The request reached its pod at ``at`` (s)."""
        self.times[base + 1] = at

    def started(self, base: int, at: float) -> None:
        """Its service started at ``at`` (s)."""
        self.times[base + 2] = at

    def finished(self, base: int, at: float) -> None:
        """The pod was done with it at ``at`` (s): served, refused (queue full) or killed."""
        self.times[base + 3] = at

    def in_flight(self, base: int) -> bool:
        """Whether the client still waits for it."""
        return self.small[base + 3] == IN_FLIGHT

    def end(self, base: int, at: float, outcome: int, reason: int = 0) -> None:
        """The client is done with it at ``at`` (s): ``outcome`` (ok, dropped, timeout), and why it was dropped."""
        self.times[base + RETURNED] = at
        self.small[base + 3] = outcome
        if reason:
            self.small[base + 4] = reason

    def sent(self, base: int) -> float:
        """When it was sent (s)."""
        return self.times[base]

    def request(self, base: int) -> int:
        """The row of its request's first attempt."""
        return self.ints[base + 1]

    def attempt(self, base: int) -> int:
        """Which attempt it is (0: the first)."""
        return self.small[base]

    def columns(self) -> dict[str, np.ndarray]:
        """The fifteen raw columns with their RunResult dtypes, each array handed over (the records are empty
        after): the times as strided views on their raw array (every slot is a column: no second copy), the ints
        and the small ints copied out into their own arrays while the raw one shrinks (``_unpack``: the small
        ints' raw array is freed, so that the three of them packed into one byte, ``sim.records.pack_flags``,
        hold one byte)."""
        cols = _unpack(self.times, ("t_sent", "t_arrived", "t_started", "t_finished", "t_returned"), view=True)
        self.times = array("d")
        cols |= _unpack(self.ints, ("stream", "request", "endpoint", "entry_node", "version"))
        self.ints = array("i")
        cols |= _unpack(self.small, ("attempt", "pick", "source_preserved", "outcome", "reason"))
        self.small = array("b")
        return cols


_UNPACK_ROWS = 1 << 16
"""Rows copied out of a raw record array per step where it is copied (``_unpack``)."""


def _unpack(raw: array, names: tuple[str, str, str, str, str], view: bool = False) -> dict[str, np.ndarray]:
    """The five interleaved columns of a raw record array with their RunResult dtypes. With ``view`` (all five
    have the raw dtype): strided views on it (no copy). Else each is copied into its own array, a block of rows
    at a time from the end, and the raw array is cut back after each block (its tail freed): the memory held
    stays about that of the larger of the two, not both (the ints: 20 bytes a request raw, 16 copied)."""
    if view:
        assert all(np.dtype(raw.typecode) == COLUMNS[name] for name in names)
        slots = np.frombuffer(raw, dtype=raw.typecode).reshape(-1, 5)
        return {name: slots[:, i] for i, name in enumerate(names)}
    n = len(raw) // 5
    cols = {name: np.empty(n, dtype=COLUMNS[name]) for name in names}  # pages taken as they are written
    for hi in range(n, 0, -_UNPACK_ROWS):
        lo = max(0, hi - _UNPACK_ROWS)
        block = np.frombuffer(raw, dtype=raw.typecode, count=5 * (hi - lo), offset=5 * lo * raw.itemsize)
        for i, name in enumerate(names):
            cols[name][lo:hi] = block[i::5]
        del block  # no view left on the raw array: it may shrink
        del raw[5 * lo :]
    return cols


_SCHEDULE_ROWS = 1 << 16
"""Sends per block of the merged schedule (``schedule``)."""


def schedule(at: np.ndarray, who: np.ndarray, order: np.ndarray) -> Iterator[tuple[float, int]]:
    """The sends (time in s, stream) in ``order``, one pair per ``next()`` (a C call), held as blocks of
    ``array``s that are freed as they are used up: by the end of a run the schedule holds nothing."""
    blocks = deque(
        (array("d", at[rows].tobytes()), array("i", who[rows].tobytes()))
        for rows in (order[lo : lo + _SCHEDULE_ROWS] for lo in range(0, len(order), _SCHEDULE_ROWS))
    )

    def drain() -> Iterator[tuple[array, array]]:
        while blocks:
            yield blocks.popleft()

    return itertools.chain.from_iterable(itertools.starmap(functools.partial(zip, strict=True), drain()))
