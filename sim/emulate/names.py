"""The names of one emulation's namespaces: ``<prefix>`` then a letter and an index, never a user's name.

``fabric`` holds the bridges between nodes, ``n<i>`` is node i, ``p<i>`` pod i (in the scenario's order), ``r<i>``
router i, ``x<i>`` external client i.
"""

from __future__ import annotations

from dataclasses import dataclass

from sim.emulate.layout import Layout


@dataclass(frozen=True)
class Names:
    """The namespace of each node, pod, router and client of ``layout``, under ``prefix``."""

    layout: Layout
    prefix: str

    def node_ns(self, node: str) -> str:
        """The namespace of node ``node``."""
        return f"{self.prefix}n{[n.name for n in self.layout.nodes].index(node)}"

    def pod_ns(self, pod: str) -> str:
        """The namespace of pod ``pod``."""
        return f"{self.prefix}p{[p.name for p in self.layout.scenario.pods].index(pod)}"

    def client_ns(self, client: str) -> str:
        """The namespace a client runs in: its pod's, its node's for a hostNetwork pod, or an external client's
        own."""
        sc = self.layout.scenario
        if sc.is_external(client):
            return f"{self.prefix}x{[c.name for c in sc.external_clients].index(client)}"
        if sc.pod(client).host_network:
            return self.node_ns(sc.pod(client).node)
        return self.pod_ns(client)

    def router_ns(self, index: int) -> str:
        """The namespace of the ``index``-th router between segments."""
        return f"{self.prefix}r{index}"

    @property
    def fabric_ns(self) -> str:
        """The namespace holding the bridge of every segment between nodes."""
        return f"{self.prefix}fabric"
