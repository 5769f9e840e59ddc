"""``sessionAffinity: ClientIP`` as the proxies keep it: per proxy, per Service, keyed by client address.

iptables (``-m recent``, ``writeServiceToEndpointRules`` in ``pkg/proxy/iptables/proxier.go``) and nftables (a
timed set) remember, per endpoint, the client addresses that used it; the service chain checks them before the
random rules, and each new connection that reaches an endpoint restarts its timer. So a client sticks to the
endpoint it last reached for ``timeout_s`` since its *last* new connection, only among the endpoints of the chain in
use; if that endpoint is gone, the next connection draws afresh. xt_recent keeps at most ``ip_list_tot`` (100)
addresses per list (``net/netfilter/xt_recent.c``: ``recent_entry_init`` evicts the least recently seen one when
the list is full), so past that many clients per endpoint stickiness breaks. Cilium keys on the client's network
namespace (a pod), IPVS on a persistence template per client IP: for pod clients they behave like nftables here.
"""

from __future__ import annotations

from collections import OrderedDict


class Affinity:
    """One proxy's affinity table for one Service: client key -> (endpoint index, time of last new connection),
    with at most ``limit`` clients remembered per endpoint (0: no limit), the least recently seen evicted first."""

    __slots__ = ("_lists", "_table", "limit", "timeout_s")

    def __init__(self, timeout_s: float, limit: int = 0) -> None:
        self.timeout_s = timeout_s
        self.limit = limit
        self._table: dict[int, tuple[int, float]] = {}
        self._lists: dict[int, OrderedDict[int, None]] = {}  # per endpoint, its clients, least recent first

    def lookup(self, client: int, now: float) -> int:
        """The endpoint index ``client`` is still bound to at time ``now`` (s), or -1."""
        entry = self._table.get(client)
        if entry is None or now - entry[1] > self.timeout_s:
            return -1
        return entry[0]

    def record(self, client: int, endpoint: int, now: float) -> None:
        """A new connection from ``client`` reached ``endpoint`` at ``now`` (s): (re)start its timer."""
        old = self._table.get(client)
        self._table[client] = (endpoint, now)
        if not self.limit:
            return
        if old is not None and old[0] != endpoint:
            self._lists[old[0]].pop(client, None)
        clients = self._lists.setdefault(endpoint, OrderedDict())
        clients[client] = None
        clients.move_to_end(client)
        if len(clients) > self.limit:  # xt_recent recent_entry_init: the list is full, the oldest entry goes
            evicted, _ = clients.popitem(last=False)
            del self._table[evicted]
