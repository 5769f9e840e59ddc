"""The event path's proxies and clients: per stream and entry node the route in force (``Entry``), each endpoint
as reached through it (``Target``), each stream's run-time state (``Stream``), and ``Proxies``, which builds the
entries from the plan's routes and rebuilds them when a node's proxy syncs a new control-plane version.
``Proxies.sync`` reads ``event._value``, as every callback of the event path does (``sim.engine.run``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import simpy

from sim.engine.backends import Backend
from sim.outcomes import DropReason
from sim.plan import Draws, Plan, StreamPlan
from sim.routing import Affinity, Chooser
from sim.rpc import Retries

if TYPE_CHECKING:
    from sim.engine.calls import Program


class Target:
    """One endpoint as reached through one entry node: backend (and its arrival callback, bound once), pod index,
    path draws (s) and load slot."""

    __slots__ = ("arrive", "back", "backend", "load", "out", "pod", "slot")

    def __init__(
        self,
        backend: Backend,
        pod: int,
        out: Iterator[float],
        back: Iterator[float],
        load: list[int] | None,
        slot: int,
    ) -> None:
        self.backend = backend
        self.arrive = backend.arrive
        self.pod = pod
        self.out = out
        self.back = back
        self.load = load
        self.slot = slot


class Entry:
    """A stream's route through one entry node's proxy, as of control-plane ``version``."""

    __slots__ = (
        "affinity",
        "choose",
        "drop",
        "expire",
        "fail_after",
        "node",
        "preserved",
        "reads_flow",
        "slot_of",
        "targets",
        "version",
    )

    def __init__(self, node: int) -> None:
        self.node = node
        self.version = 0
        self.targets: tuple[Target, ...] = ()
        self.slot_of: dict[int, int] = {}
        self.choose: Chooser | None = None
        self.affinity: Affinity | None = None
        self.drop = int(DropReason.NONE)
        self.fail_after = 0.0
        self.preserved = 1
        self.reads_flow = True  # whether its picker reads the flow (else a lane draws no source port)
        self.expire: frozenset[int] | None = None  # the route's pods, where connections to others are expired


NO_RETRIES = Retries()
"""A stream that retries nothing."""


class Stream:
    """A client stream's run-time state."""

    __slots__ = (
        "backoff",
        "closed",
        "conn_left",
        "conn_opened",
        "conn_target",
        "connect_timeout_s",
        "entries",
        "fold",
        "gaps",
        "index",
        "ip",
        "is_call",
        "lb",
        "max_age_s",
        "max_requests",
        "passive",
        "ports",
        "program",
        "remaining",
        "resend",
        "retries",
        "think_zero",
        "timeout_s",
    )

    def __init__(self, index: int) -> None:
        self.index = index
        self.entries: tuple[Entry, ...] = ()
        self.lb: Iterator[int] | None = None
        self.gaps: Iterator[float] = iter(())
        self.remaining = 0
        self.closed = False
        self.think_zero = False
        self.passive = False  # open loop without a request timeout: nothing happens when a reply arrives
        self.fold = False  # closed loop, no request timeout, no connection counts: only the next send waits
        self.resend: Callable[[simpy.Event], None]  # the callback of its next send after a think (Run's setup)
        self.ip = 0
        self.ports: Iterator[int] = iter(())  # source ports of new connections (sim.routing.ports)
        self.max_requests = 1
        self.max_age_s = math.inf
        self.conn_target: tuple[Entry, Target] | None = None
        self.conn_left = 0
        self.conn_opened = 0.0
        self.connect_timeout_s = 0.0
        self.timeout_s: float | None = None
        self.retries = NO_RETRIES  # its requests' retries (a call stream's are its calls', ``Call.retries``)
        self.backoff: Iterator[float] = iter(())
        self.program: Program | None = None  # its Service's calls, where it makes any (``sim.engine.calls``)
        self.is_call = False  # a pod's call stream: its attempts' ends go to the calling job


class Proxies:
    """The proxies' run-time state: one chooser (and connection counts) per proxy, one affinity table per node
    and Service, and per node the entries its proxy decides (rebuilt on ``sync``)."""

    __slots__ = ("_affinity", "_choosers", "backends", "by_node", "draws", "plan")

    def __init__(self, plan: Plan, draws: Draws, backends: list[Backend]) -> None:
        self.plan = plan
        self.draws = draws
        self.backends = backends
        self.by_node: list[list[tuple[StreamPlan, int, Entry]]] = [[] for _ in plan.node_names]
        self._choosers: dict[tuple[object, ...], tuple[Chooser, list[int] | None]] = {}
        self._affinity: dict[tuple[str, str], Affinity] = {}

    def entries(self, sp: StreamPlan) -> tuple[Entry, ...]:
        """The stream's entries as of version 0, one per entry node, registered for their nodes' syncs."""
        entries = []
        for i, rp in enumerate(sp.routes[0]):
            e = Entry(rp.node_index)
            self.build(sp, i, e, 0)
            self.by_node[rp.node_index].append((sp, i, e))
            entries.append(e)
        return tuple(entries)

    def build(self, sp: StreamPlan, i: int, e: Entry, version: int) -> None:
        """(Re)build entry ``e`` (stream ``sp``'s ``i``-th) from the route its node's proxy has at ``version``."""
        rp = sp.routes[version][i]
        route = rp.route
        e.version = version
        e.preserved = int(route.source_preserved)
        e.drop = int(route.drop)
        e.fail_after = rp.fail_after_s
        e.targets, e.slot_of, e.choose, e.affinity = (), {}, None, None
        e.expire = frozenset(rp.pods) if route.expire_removed else None
        if not route.endpoints:
            return
        key = rp.proxy_key
        proxy = self._choosers.get(key)
        if proxy is None:
            load = [0] * len(route.endpoints) if route.picker.needs_load else None
            proxy = self._choosers[key] = (self.draws.chooser(rp, version, load or []), load)
        e.choose, load = proxy
        e.reads_flow = getattr(route.picker, "reads_flow", True)
        if rp.affinity_timeout_s is not None:
            table = self._affinity.setdefault(
                (rp.node, rp.proxy[1]), Affinity(rp.affinity_timeout_s, route.affinity_limit)
            )
            table.timeout_s = rp.affinity_timeout_s
            e.affinity = table
        e.slot_of = {pod: slot for slot, pod in enumerate(rp.pods)} if e.affinity is not None else {}
        paths = self.plan.path_classes(sp.origin, rp.node, rp.endpoint_nodes)
        e.targets = tuple(
            Target(self.backends[pod], pod, self.draws.path(out), self.draws.path(back), load, slot)
            for slot, (pod, (out, back)) in enumerate(zip(rp.pods, paths, strict=True))
        )

    def sync(self, ev: simpy.Event) -> None:
        """A node's proxy applies a control-plane version (after that node's sync lag)."""
        node, version = ev._value
        for sp, i, e in self.by_node[node]:
            if version > e.version:
                self.build(sp, i, e, version)
