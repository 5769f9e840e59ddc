"""Services that call Services: the calls a request makes after its pod's own work, and the graph they form.

A Service's calls are stages, run in order after the pod's own service time: one ``Call`` (its ``count`` calls one
after another) or a ``Parallel`` fan-out (every member's ``count`` calls at once, joined when all reply). The graph
is a property of the application, not of a Kubernetes object: ``Scenario.call_graph`` holds it by Service name.

The pure functions here read the graph's structure (topological order, cycles, depth, fan-out), the calls per
entry request (counts x probabilities, compounding along the graph), and the queueing results the engines' call
graphs are tested against (``fork_join_mean_s``, ``sync_call_mean_s``, ``thinned_rate_rps``). No SimPy.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from sim.rpc import LINUX_SYN_TIMEOUT_S, Retries


class CallMode(StrEnum):
    """How a pod's worker waits for its calls."""

    SYNC = "sync"
    """The worker stays busy while its calls run (a thread per request)."""
    ASYNC = "async"
    """The worker is freed after its own work; the reply leaves when the last call returns."""


class Connection(StrEnum):
    """Which connection a call rides, and so where the callee's proxy picks its endpoint."""

    PER_CALL = "per_call"
    """A new connection per call (HTTP/1.1 without keep-alive): every call is a fresh pick."""
    PER_POD = "per_pod"
    """One connection per calling pod and callee (and port), opened by the first call and kept: gRPC's channel,
    whose calls are streams multiplexed on one HTTP/2 connection, so kube-proxy or Cilium picks once per pod."""


@dataclass(frozen=True)
class Call:
    """``count`` calls to ``service``, made (all of them, or none) with ``probability`` per parent request.

    ``timeout_s``, ``connect_timeout_s`` and ``retries`` mean what they mean on a client stream; a failed call fails
    its parent request unless ``optional``. ``port`` names the Service port called (by name or number; ``""``: the
    first). In a sequential stage the ``count`` calls go one after another; inside ``Parallel`` at once.
    ``connection``: a new connection per call, or one per calling pod (``Connection``).
    """

    service: str
    count: int = 1
    probability: float = 1.0
    optional: bool = False
    timeout_s: float | None = None
    connect_timeout_s: float = LINUX_SYN_TIMEOUT_S
    retries: Retries = Retries()
    port: str = ""
    connection: Connection = Connection.PER_CALL

    @property
    def expected(self) -> float:
        """Calls made per parent request, on average: ``count`` x ``probability``."""
        return self.count * self.probability


@dataclass(frozen=True)
class Parallel:
    """A fan-out: every member's calls made at once; the stage ends when the last one replies."""

    calls: tuple[Call, ...]


CallStage = Call | Parallel
"""One stage of a Service's calls."""


def members(stage: CallStage) -> tuple[Call, ...]:
    """The calls of a stage: a fan-out's members, or the one ``Call``."""
    return stage.calls if isinstance(stage, Parallel) else (stage,)


@dataclass(frozen=True)
class ServiceCalls:
    """What a request to one Service does after its pod's own work: its stages, in order, and how it waits."""

    mode: CallMode = CallMode.SYNC
    stages: tuple[CallStage, ...] = ()

    def calls(self) -> Iterator[Call]:
        """Every ``Call`` of the stages, in order (the members of a fan-out in theirs)."""
        for stage in self.stages:
            yield from members(stage)

    @property
    def fan_out(self) -> int:
        """The most calls one request has in flight at once: a fan-out's counts summed; a sequential stage 1."""
        widths = [sum(c.count for c in s.calls) if isinstance(s, Parallel) else 1 for s in self.stages]
        return max(widths, default=0)


@dataclass(frozen=True)
class CallGraph:
    """The calls of every Service that makes any (or names a mode), by Service name, in the scenario's order."""

    services: Mapping[str, ServiceCalls] = field(default_factory=dict, hash=False, compare=False)

    def __bool__(self) -> bool:
        """Whether any Service makes a call."""
        return any(s.stages for s in self.services.values())

    def of(self, service: str) -> ServiceCalls:
        """The calls of ``service`` (none, sync, for a Service the graph does not name)."""
        return self.services.get(service, _NONE)

    def callees(self, service: str) -> tuple[str, ...]:
        """The Services ``service`` calls, each once, in the order its stages first name them."""
        return tuple(dict.fromkeys(c.service for c in self.of(service).calls()))

    def names(self) -> tuple[str, ...]:
        """Every Service in the graph: the callers in order, then callees not yet named, as first named."""
        seen = dict.fromkeys(self.services)
        for caller in self.services:
            seen.update(dict.fromkeys(self.callees(caller)))
        return tuple(seen)

    def edges(self) -> tuple[tuple[str, str], ...]:
        """Every (caller, callee) pair, each once."""
        return tuple((a, b) for a in self.services for b in self.callees(a))

    def find_cycle(self) -> tuple[str, ...] | None:
        """A cycle as the Services along it, the first repeated at the end (``frontend, cart, frontend``); None for
        an acyclic graph. Depth-first from each Service in ``names()`` order, so the same graph names the same cycle."""
        state: dict[str, int] = {}  # 1: on the current path, 2: done
        for root in self.names():
            if root in state:
                continue
            path, stack = [root], [iter(self.callees(root))]
            state[root] = 1
            while stack:
                nxt = next(stack[-1], None)
                if nxt is None:
                    state[path.pop()] = 2
                    stack.pop()
                elif state.get(nxt) == 1:
                    return (*path[path.index(nxt) :], nxt)
                elif nxt not in state:
                    state[nxt] = 1
                    path.append(nxt)
                    stack.append(iter(self.callees(nxt)))
        return None

    def topological_order(self) -> tuple[str, ...]:
        """Every Service of the graph, each caller before its callees (Kahn's algorithm, ties in ``names()``
        order); a ValueError names the cycle of a cyclic graph."""
        names = self.names()
        waiting = dict.fromkeys(names, 0)
        for _, callee in self.edges():
            waiting[callee] += 1
        ready = deque(n for n in names if waiting[n] == 0)
        order: list[str] = []
        while ready:
            name = ready.popleft()
            order.append(name)
            for callee in self.callees(name):
                waiting[callee] -= 1
                if waiting[callee] == 0:
                    ready.append(callee)
        if len(order) < len(names):
            raise ValueError(f"a cycle: {' -> '.join(self.find_cycle() or ())}")
        return tuple(order)

    def calls_per_request(self, caller: str) -> dict[str, float]:
        """Calls one request of ``caller`` makes to each Service it calls directly, on average (count x
        probability, summed over its stages)."""
        out: dict[str, float] = {}
        for call in self.of(caller).calls():
            out[call.service] = out.get(call.service, 0.0) + call.expected
        return out

    def expected_calls(self, entry: str, *, with_retries: bool = False) -> dict[str, float]:
        """Requests each Service receives per request into ``entry`` (``entry`` itself: 1), on average: calls per
        request compounding along every path (first attempts: no retries, no failures); a Service reached only
        through calls of probability 0 receives 0. ``with_retries``: as if every attempt of every call failed
        but the last (each call x (1 + attempts)), the most a request can make."""
        order = self.topological_order()
        received = {entry: 1.0}
        for caller in order[order.index(entry) :] if entry in order else (entry,):
            if caller not in received:
                continue  # not reached from entry
            n = received[caller]
            for call in self.of(caller).calls():
                tries = 1 + call.retries.attempts if with_retries else 1
                received[call.service] = received.get(call.service, 0.0) + n * call.expected * tries
        return received

    def depth(self, entry: str) -> int:
        """The most calls one after another below a request into ``entry``: the longest chain of callers and
        callees from it, in hops (a Service that calls nobody: 0)."""
        longest: dict[str, int] = {}
        for name in reversed(self.topological_order()):
            longest[name] = max((1 + longest[c] for c in self.callees(name)), default=0)
        return longest.get(entry, 0)

    def reachable(self, entry: str) -> tuple[str, ...]:
        """``entry`` and every Service a request into it may reach, in topological order."""
        seen = {entry}
        todo = [entry]
        while todo:
            for callee in self.callees(todo.pop()):
                if callee not in seen:
                    seen.add(callee)
                    todo.append(callee)
        return tuple(n for n in self.topological_order() if n in seen) or (entry,)

    def max_fan_out(self, entry: str) -> int:
        """The widest fan-out of any Service a request into ``entry`` may reach (``ServiceCalls.fan_out``)."""
        return max(self.of(name).fan_out for name in self.reachable(entry))

    def entries(self) -> tuple[str, ...]:
        """The Services that make calls and that no Service calls: where a call graph starts."""
        called = {b for _, b in self.edges()}
        return tuple(n for n, s in self.services.items() if s.stages and n not in called)

    def describe(self) -> list[str]:
        """The graph as ``sim validate`` prints it: each caller -> callee with its calls per request, then per
        entry Service its depth, widest fan-out and the requests each Service receives per entry request."""
        if not self:
            return []
        edges = self.edges()
        lines = [f"call graph: {len(self.names())} services, {len(edges)} caller -> callee pairs"]
        for caller in self.services:
            mode = self.of(caller).mode.value
            for callee, per in self.calls_per_request(caller).items():
                lines.append(f"  {caller} ({mode}) -> {callee}: {per:g} per request")
        for entry in self.entries():
            received = ", ".join(f"{n} {v:g}" for n, v in self.expected_calls(entry).items() if n != entry)
            lines.append(
                f"  a request into {entry}: depth {self.depth(entry)}, widest fan-out {self.max_fan_out(entry)}; "
                f"requests each Service receives: {received}"
            )
        return lines


_NONE = ServiceCalls()


def fork_join_mean_s(arrival_rps: float, service_rps: float) -> float:
    """Mean response time (s) of a two-way fork-join of M/M/1 queues, each of rate ``service_rps`` fed every
    arrival of a Poisson stream of ``arrival_rps``: (12 - rho)/8 x 1/(mu - lambda) (Nelson & Tantawi 1988,
    exact for two queues; Flatto & Hahn 1984)."""
    rho = _load(arrival_rps, service_rps)
    return (12 - rho) / 8 / (service_rps - arrival_rps)


def sync_call_mean_s(front_mean_s: float, arrival_rps: float, service_rps: float) -> float:
    """Mean response time (s) of a synchronous call into an M/M/1 queue of rate ``service_rps``, made by a front
    pod that never queues (as many workers as requests) after its own work of mean ``front_mean_s``:
    E[S1] + 1/(mu - lambda). The front pod's independent delays keep the callee's arrivals Poisson."""
    _load(arrival_rps, service_rps)
    return front_mean_s + 1 / (service_rps - arrival_rps)


def thinned_rate_rps(rate_rps: float, probability: float) -> float:
    """The rate (requests/s) of a call made with ``probability`` per request of a Poisson stream of ``rate_rps``:
    a Bernoulli-thinned Poisson stream, itself Poisson with rate p x lambda."""
    if not 0 <= probability <= 1 or rate_rps < 0:
        raise ValueError(f"need 0 <= p <= 1 and a rate >= 0, got p={probability}, rate={rate_rps}")
    return probability * rate_rps


def _load(arrival_rps: float, service_rps: float) -> float:
    """rho = lambda/mu of a stable queue; a ValueError for one that is not (rho >= 1) or makes no sense."""
    if not (arrival_rps >= 0 and service_rps > 0 and arrival_rps < service_rps):
        raise ValueError(f"need 0 <= lambda < mu, got lambda={arrival_rps}, mu={service_rps}")
    return arrival_rps / service_rps
