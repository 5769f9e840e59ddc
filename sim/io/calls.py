"""A ``[[services]]`` entry's calls: ``call_mode`` and ``calls = [...]``, read into ``sim.callgraph`` objects
(``service_calls``) and written from them (``calls_entry``, which ``sim import`` writes a traced graph with).

```toml
call_mode = "sync"                      # or "async"
calls = [
  { service = "cart" },                 # one call
  { service = "currency", count = 3 },  # three, one after another
  { parallel = [ { service = "ads", probability = 0.5 }, { service = "catalog" } ] },  # at once, joined
]
```
A call also takes ``optional``, ``timeout_s``, ``connect_timeout_s`` and ``retries`` (as a stream spells them; the
timeouts default to ``[defaults]``), ``port`` (a name or a number) and ``connection`` (``per_call``, the default: a
new connection per call; ``per_pod``: one per calling pod and callee, as a gRPC channel keeps). Whether the
callee exists, its port, and whether the calls form a cycle are the Scenario's checks: they need every Service.
"""

from __future__ import annotations

from typing import Any

from sim.callgraph import Call, CallMode, CallStage, Connection, Parallel, ServiceCalls
from sim.io.cluster.builders import Defaults
from sim.io.typed import Table
from sim.rpc import Retries

_MODES = [m.value for m in CallMode]
_CONNECTIONS = [c.value for c in Connection]


def service_calls(t: Table, defaults: Defaults, base: ServiceCalls | None) -> ServiceCalls | None:
    """Take ``call_mode`` and ``calls`` from a ``[[services]]`` entry; what it leaves out keeps ``base``'s (an entry
    changing a Service read before). None when neither the entry nor ``base`` has any."""
    if "call_mode" not in t.data and "calls" not in t.data:
        t.known.update(("call_mode", "calls"))
        return base
    b = base or ServiceCalls()
    mode = t.choice("call_mode", CallMode, _MODES, b.mode)
    stages = b.stages
    if "calls" in t.data:
        raw = t.take("calls", list)
        stages = tuple(_stage(t, f"calls[{i}]", item, defaults) for i, item in enumerate(raw))
    return ServiceCalls(mode, stages)


def calls_entry(calls: ServiceCalls, defaults: Defaults) -> dict[str, Any]:
    """The keys of a ``[[services]]`` entry that ``service_calls`` reads back into ``calls``: ``call_mode`` unless
    sync, ``calls`` unless none; a call's keys only where they differ from a call's defaults (``defaults``: the
    file's ``[defaults]``; a ValueError for a call without a timeout where ``[defaults]`` gives one: no key says
    so)."""
    out: dict[str, Any] = {}
    if calls.mode is not CallMode.SYNC:
        out["call_mode"] = calls.mode.value
    if calls.stages:
        out["calls"] = [
            {"parallel": [_call_entry(c, defaults) for c in s.calls]}
            if isinstance(s, Parallel)
            else _call_entry(s, defaults)
            for s in calls.stages
        ]
    return out


def _call_entry(call: Call, defaults: Defaults) -> dict[str, Any]:
    """One call table: ``service``, then each key whose value is not what ``_call`` takes when it is left out."""
    out: dict[str, Any] = {"service": call.service}
    if call.count != 1:
        out["count"] = call.count
    if call.probability != 1:
        out["probability"] = call.probability
    if call.optional:
        out["optional"] = True
    if call.timeout_s != defaults.timeout_s:
        if call.timeout_s is None:
            raise ValueError(f"a call to {call.service} has no timeout, but [defaults] gives {defaults.timeout_s} s")
        out["timeout_s"] = call.timeout_s
    if call.connect_timeout_s != defaults.connect_timeout_s:
        out["connect_timeout_s"] = call.connect_timeout_s
    if call.retries != Retries():
        out["retries"] = {"attempts": call.retries.attempts, "base_s": call.retries.base_s, "max_s": call.retries.max_s}
    if call.port:
        out["port"] = call.port
    if call.connection is not Connection.PER_CALL:
        out["connection"] = call.connection.value
    return out


def _stage(parent: Table, key: str, raw: object, defaults: Defaults) -> CallStage:
    """One stage: a call table, or ``{ parallel = [calls] }``."""
    t = Table(parent.path, parent.field(key), raw)
    if "parallel" not in t.data:
        return _call(t, defaults)
    members = t.take("parallel", list)
    t.done()
    if not members:
        raise t.error("parallel", "must list at least one call")
    calls = []
    for j, item in enumerate(members):
        m = Table(t.path, t.field(f"parallel[{j}]"), item)
        if "parallel" in m.data:
            raise m.error("parallel", "a fan-out holds calls, not another fan-out: give its calls here")
        calls.append(_call(m, defaults))
    return Parallel(tuple(calls))


def _call(t: Table, defaults: Defaults) -> Call:
    """One call table; every key read, the rest refused."""
    port = t.take("port", (str, int), "")
    if isinstance(port, int) and not 1 <= port <= 65535:
        raise t.error("port", f"must be a port name or 1-65535, got {port}")
    call = Call(
        service=t.take("service", str),
        count=t.integer("count", 1, minimum=1),
        probability=_probability(t),
        optional=t.take("optional", bool, False),
        timeout_s=t.number("timeout_s", defaults.timeout_s, minimum=0, strict=True),
        connect_timeout_s=t.number("connect_timeout_s", defaults.connect_timeout_s, minimum=0),
        retries=retries(t),
        port=str(port),
        connection=t.choice("connection", Connection, _CONNECTIONS, Connection.PER_CALL),
    )
    t.done()
    return call


def _probability(t: Table) -> float:
    """``probability``: a number from 0 to 1 (default 1)."""
    p = float(t.number("probability", 1.0, minimum=0))
    if p > 1:
        raise t.error("probability", f"must be <= 1, got {p:g}")
    return p


def retries(owner: Table) -> Retries:
    """``retries = { attempts = 2, base_s = 0.025, max_s = 0.25 }`` of a stream or a call."""
    if "retries" not in owner.data:
        owner.known.add("retries")
        return Retries()
    t = Table(owner.path, owner.field("retries"), owner.take("retries", dict))
    out = Retries(
        t.integer("attempts", 0, minimum=0), t.number("base_s", 0.025, minimum=0), t.number("max_s", 0.25, minimum=0)
    )
    t.done()
    return out
