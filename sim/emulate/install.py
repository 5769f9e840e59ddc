"""Each node's rules loaded as its kube-proxy loads them (the text is ``sim.emulate.rules``')."""

from __future__ import annotations

from sim.emulate.kernel import run_command
from sim.emulate.names import Names
from sim.emulate.rules import node_proxy, node_rules


def install_rules(names: Names) -> None:
    """Load every node's rules into its namespace: in iptables mode the jumps, then ``iptables-restore --noflush``;
    in nftables mode one ``nft -f`` transaction."""
    layout = names.layout
    for node in layout.nodes:
        rules = node_rules(node.services, layout.mode, node_proxy(node))
        exe = ["ip", "netns", "exec", names.node_ns(node.name)]
        if layout.mode == "iptables":
            run_command([*exe, "iptables-restore", "--noflush"], rules["jumps"])
            run_command([*exe, "iptables-restore", "--noflush"], rules["restore"])
        else:
            run_command([*exe, "nft", "-f", "-"], rules["transaction"])
