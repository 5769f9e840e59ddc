"""The closed-loop lane: a client's next request, from its think to its reply, in one callback where it can be.

A closed-loop stream with one entry node, a new connection per request, no request timeout and a picker that
counts no connections, in a cluster that does not change (``lane`` says which), sends each request as
``Run._send`` would, with the same draws in the same order and the same records; its per-stream state (entry,
endpoints with their path draws, the record's constant parts, the arrays' writers) is bound once, in a closure.
Where the trip out is 0 s, the endpoint's pod computes its steps on arrival (``ComputedFifo``) and nothing else is
due now, the arrival's event would be the next one processed: the request arrives, is served and replies in this
callback, its record is written whole, and the reply is folded as ``Run.fold`` folds it (the next send scheduled
after the think). A request costs one SimPy event instead of three. Otherwise (a trip out, another event due now,
a full queue) it takes the event path's steps.

SimPy's private parts, with the measured reason (W3 of benchmarks/run.py at 48,000 requests, CPU time, medians of
7 interleaved rounds, twice; the ratio is the minimal callback model's time over ours):

- the next send is pushed onto SimPy's queue (``env._queue``, with the next ``env._eid``, exactly as
  ``Environment.schedule`` pushes it: the same time, the same order) as one reused ``_Wake`` per stream, an
  object with what ``Environment.step`` reads of an event, instead of building a ``Timeout``: 1.08-1.10x with
  it, 0.88-0.89x with ``env.timeout``;
- ``env._now`` rather than the ``now`` property: 1.04-1.05x with the property.
"""

from __future__ import annotations

from collections.abc import Callable
from heapq import heappush
from typing import TYPE_CHECKING, Any

import simpy
from simpy.events import NORMAL

from sim.engine.backends import ComputedFifo, Request
from sim.engine.records import IN_FLIGHT, NAN, OK
from sim.records import PICK_FRESH

if TYPE_CHECKING:
    from sim.engine.proxies import Stream
    from sim.engine.run import Run


def lane(run: Run, s: Stream) -> Callable[[simpy.Event], None] | None:
    """The callback that makes ``s``'s next send after a think (the event's value is ``s``), or None where the
    stream is not on the lane."""
    entry = s.entries[0]
    if not s.fold or len(s.entries) > 1 or s.max_requests > 1 or run.dynamic:
        return None
    if entry.choose is None or entry.affinity is not None:
        return None
    env, records = run.env, run.records
    queue, eid, timeout, now_of = env._queue, env._eid, env.timeout, env
    times = records.times
    put_times, put_ints, put_small = times.extend, records.ints.extend, records.small.extend
    choose, ports, ip = entry.choose, s.ports, s.ip << 16
    flowless = not entry.reads_flow
    index, node, version = s.index, entry.node, entry.version
    served = (0, PICK_FRESH, entry.preserved, OK, 0)  # attempt, pick, source preserved, outcome, reason
    opened = (0, PICK_FRESH, entry.preserved, IN_FLIGHT, 0)
    ways = []  # per endpoint: pod, its trips' draws, its computed pod (else None), its one worker's free time
    for t in entry.targets:  # (a one-element list: FifoPod.free, where one worker and no limit), service draws
        b = t.backend
        computed = b if isinstance(b, ComputedFifo) else None
        one = computed.pod.free if computed is not None and b.capacity == 1 and computed.pod.limit is None else None
        ways.append((t.pod, t.out.__next__, t.back.__next__, computed, one, b.service_times.__next__, t))
    gaps, think_zero = s.gaps, s.think_zero
    wake = _Wake(s)

    def step(ev: Any) -> None:  # a _Wake, or the Timeout of a reply folded by Run.fold
        now = now_of._now
        pod, out, back, b, one, service, target = ways[choose(0 if flowless else ip | next(ports))]
        trip, back_s = out(), back()
        base = len(times)
        if trip == 0.0 and b is not None and now_of.peek() > now:
            if one is not None:  # FifoPod.admit with one worker and no limit, inlined: Lindley's step
                free = one[0]
                start = free if free > now else now
                one[0] = finish = start + service()
            else:
                got = b.admit(now, b.service_times)
                if got is None:  # the queue is full: arrived now, refused
                    put_times((now, now, NAN, NAN, NAN))
                    put_ints((index, base // 5, pod, node, version))
                    put_small(opened)
                    b.refuse(Request(base, s, target, back_s), now)
                    return
                start, finish = got
            delay = finish - now + back_s  # Run.fold, inlined
            put_times((now, now, start, finish, now + delay))
            put_ints((index, base // 5, pod, node, version))
            put_small(served)
            if s.remaining > 0:
                s.remaining -= 1
                if not think_zero:
                    delay += next(gaps)
                wake.callbacks = again  # SimPy's env.timeout(delay), without building a Timeout
                heappush(queue, (now + delay, NORMAL, next(eid), wake))  # type: ignore[misc]
            return
        put_times((now, NAN, NAN, NAN, NAN))  # records.open, as Run._send writes it
        put_ints((index, base // 5, pod, node, version))
        put_small(opened)
        timeout(trip, Request(base, s, target, back_s)).callbacks.append(target.arrive)

    again: list[Callable[[Any], None]] = [step]
    return step


class _Wake:
    """A lane stream's next send, as SimPy's loop reads an event (``Environment.step``: ``callbacks``, ``_ok``;
    the callback reads ``_value``): one per stream, scheduled again after each request (a closed-loop stream has
    one pending at most)."""

    __slots__ = ("_ok", "_value", "callbacks")

    def __init__(self, s: Stream) -> None:
        self._ok = True
        self._value = s
        self.callbacks: list[Callable[[Any], None]] = []
