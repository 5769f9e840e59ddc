"""The rules kube-proxy writes for one node, as the text it feeds its tool: pure functions, no I/O.

``common`` holds what both modes share (names, the proxy's configuration and local-traffic detector, the policy
decisions of ``syncProxyRules``), ``iptables`` the ``iptables-restore`` payloads, ``nftables`` the ``nft -f``
transaction; ``node_rules`` picks the mode's.
"""

from __future__ import annotations

from collections.abc import Sequence

from sim.emulate.layout import ServiceRules
from sim.emulate.rules.common import Proxy, detector, node_proxy
from sim.emulate.rules.iptables import iptables_jumps, iptables_restore
from sim.emulate.rules.nftables import nft_transaction

__all__ = ["Proxy", "detector", "node_proxy", "node_rules"]


def node_rules(services: Sequence[ServiceRules], mode: str, proxy: Proxy = Proxy()) -> dict[str, str]:
    """What kube-proxy ``mode`` writes on one node, by step: iptables ``jumps`` then ``restore``; nftables
    ``transaction``."""
    if mode == "iptables":
        return {"jumps": iptables_jumps(), "restore": iptables_restore(services, proxy)}
    return {"transaction": nft_transaction(services, proxy)}
