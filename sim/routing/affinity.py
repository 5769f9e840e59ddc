"""``sessionAffinity: ClientIP`` as the proxies keep it: per proxy, per Service, keyed by client address.

iptables (``-m recent``) and nftables (a timed set) remember, per endpoint, the client addresses that used it;
the service chain checks them before the random rules, and each new connection that reaches an endpoint
restarts its timer. So a client sticks to the endpoint it last reached for ``timeout_s`` since its *last* new
connection, only among the endpoints of the chain in use; if that endpoint is gone, the next connection draws
afresh. Cilium keys on the client's network namespace (a pod), IPVS on a persistence template per client IP:
for pod clients all three behave the same here.
"""

from __future__ import annotations


class Affinity:
    """One proxy's affinity table for one Service: client key -> (endpoint index, time of last new connection)."""

    __slots__ = ("_table", "timeout_s")

    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self._table: dict[int, tuple[int, float]] = {}

    def lookup(self, client: int, now: float) -> int:
        """The endpoint index ``client`` is still bound to at time ``now`` (s), or -1."""
        entry = self._table.get(client)
        if entry is None or now - entry[1] > self.timeout_s:
            return -1
        return entry[0]

    def record(self, client: int, endpoint: int, now: float) -> None:
        """A new connection from ``client`` reached ``endpoint`` at ``now`` (s): (re)start its timer."""
        self._table[client] = (endpoint, now)
