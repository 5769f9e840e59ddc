"""What a caller does around one request, client streams and the calls of a call graph alike: how long it waits
for a connection and what it retries."""

from __future__ import annotations

from dataclasses import dataclass

LINUX_SYN_TIMEOUT_S = 127.0
"""Linux gives up a TCP connect after 6 SYN retries: 1+2+4+8+16+32+64 s (``net.ipv4.tcp_syn_retries=6``)."""


@dataclass(frozen=True)
class Retries:
    """Client retries: up to ``attempts`` more tries of a failed or timed-out request, each after a full-jitter
    exponential backoff, uniform on [0, min(max_s, base_s * 2**k)] before retry k (Envoy's defaults: 25 ms, 250 ms)."""

    attempts: int = 0
    base_s: float = 0.025
    max_s: float = 0.25
