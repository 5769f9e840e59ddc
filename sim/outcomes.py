"""How a request ended: the Outcome of each record and, for failures, the DropReason."""

from __future__ import annotations

from enum import IntEnum


class Outcome(IntEnum):
    """A request's fate; every request sent is exactly one of these at the end of a run (TIMEOUT: the client gave
    up at its request timeout; the backend may still have done the work)."""

    IN_FLIGHT = 0
    OK = 1
    DROPPED = 2
    TIMEOUT = 3


class DropReason(IntEnum):
    """Why a request failed, with what the client saw; ``NONE`` for requests that did not fail."""

    NONE = 0
    NO_ENDPOINTS = 1
    NO_LOCAL_ENDPOINTS = 2
    NO_BACKENDS = 3
    NO_REAL_SERVERS = 4
    NO_SERVICE_BACKEND = 5
    QUEUE_FULL = 6
    BACKEND_GONE = 7
    NODE_FAILED = 8
    STALE_ENDPOINT = 9
    NO_BACKEND_REJECTED = 10
    REAL_SERVER_DELETED = 11
    SOURCE_RANGE_DENIED = 12

    @property
    def label(self) -> str:
        """A short snake_case name for tables and JSON."""
        return self.name.lower()

    @property
    def client_waits(self) -> bool:
        """True where the dataplane drops silently, so the client learns only at its connect timeout."""
        return self in (
            DropReason.NO_LOCAL_ENDPOINTS,
            DropReason.NO_SERVICE_BACKEND,
            DropReason.STALE_ENDPOINT,
            DropReason.SOURCE_RANGE_DENIED,
        )

    @property
    def description(self) -> str:
        """What happened in the dataplane and what the client saw, in words."""
        return _DESCRIPTIONS[self]


_DESCRIPTIONS = {
    DropReason.NONE: "not dropped",
    DropReason.NO_ENDPOINTS: "Service has no endpoints: REJECT, the client sees 'connection refused' at once",
    DropReason.NO_LOCAL_ENDPOINTS: "no local endpoints: DROP, the client waits for its connect timeout",
    DropReason.NO_BACKENDS: "no backend on this node (Cilium socket-LB): connect() fails at once, EHOSTUNREACH",
    DropReason.NO_REAL_SERVERS: (
        "IPVS virtual server with no real servers: ip_vs_leave answers ICMP port unreachable, "
        "'connection refused' at once"
    ),
    DropReason.NO_SERVICE_BACKEND: (
        "Cilium tc path, --service-no-backend-response=drop: DROP_NO_SERVICE (reason 158), client connect timeout"
    ),
    DropReason.QUEUE_FULL: "the backend pod's queue was full: refused at once (a 503 back to the client)",
    DropReason.BACKEND_GONE: "the pod was killed while serving the request: the client gets a reset",
    DropReason.NODE_FAILED: "the node died with the request on it: the client waits (TCP retries, ~15 min)",
    DropReason.STALE_ENDPOINT: "a proxy not yet synced sent the connection to a pod that is gone: connect timeout",
    DropReason.NO_BACKEND_REJECTED: (
        "Cilium tc path, no backend: --service-no-backend-response=reject answers ICMP port unreachable, "
        "refused at once"
    ),
    DropReason.REAL_SERVER_DELETED: (
        "IPVS without graceful termination: the open connection's real server was deleted; expire_nodest_conn drops "
        "its next packet and the client gets a reset"
    ),
    DropReason.SOURCE_RANGE_DENIED: (
        "the client's address is in no loadBalancerSourceRanges range: kube-proxy's firewall (KUBE-PROXY-FIREWALL / "
        "the firewall-* chain) DROPs it, the client waits for its connect timeout"
    ),
}
