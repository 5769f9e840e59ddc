"""Build a Layout on the running kernel, run its clients, and remove it all: the emulation's steps, in order.

1. the network (``network.build_network``): a ``fabric`` namespace holding the bridges between nodes, one
   namespace per node, per pod, per router and per external client (``names``), linked by veths;
2. the rules (``install.install_rules``): each node's kube-proxy rules loaded into its namespace;
3. the servers (``traffic.start_servers``): an HTTP server in every backend pod;
4. the clients (``traffic.start_clients``) and their answers (``traffic.collect_answers``);
5. the teardown: processes first, by the ids this run started (``processes.Processes``), then the namespaces it
   made (``kernel.Namespaces``); on exit, on error, on Ctrl-C and on SIGTERM. Namespaces left by a run that was
   killed outright (SIGKILL) are removed by the next run, whose prefix check finds their process gone.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

from sim.emulate.install import install_rules
from sim.emulate.kernel import PREFIX, Namespaces, remove_stale
from sim.emulate.layout import Layout
from sim.emulate.names import Names
from sim.emulate.network import build_network
from sim.emulate.processes import Processes
from sim.emulate.traffic import collect_answers, start_clients, start_servers


@dataclass
class Emulation:
    """A Layout built on the kernel; use as a context manager, then ``run_clients()``."""

    layout: Layout
    connect_timeout_s: float = 1.0
    read_timeout_s: float = 5.0
    prefix: str = field(default_factory=lambda: f"{PREFIX}{os.getpid()}-")
    spaces: Namespaces = field(default_factory=Namespaces)
    procs: Processes = field(default_factory=Processes)
    _previous: dict[int, Any] = field(default_factory=dict, init=False, repr=False)

    @property
    def names(self) -> Names:
        """The names of this emulation's namespaces."""
        return Names(self.layout, self.prefix)

    def __enter__(self) -> Emulation:
        self._previous = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGHUP)}

        def on_signal(signum: int, frame: FrameType | None) -> None:
            raise KeyboardInterrupt(f"signal {signum}")

        for s in self._previous:
            signal.signal(s, on_signal)
        try:
            remove_stale()
            build_network(self.spaces, self.names)
            install_rules(self.names)
            start_servers(self.procs, self.names)
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop every process this run started, then delete every namespace it made (idempotent)."""
        self.procs.stop_all()
        self.spaces.delete_all()
        for s, handler in self._previous.items():
            signal.signal(s, handler)
        self._previous = {}

    def run_clients(self, progress: Callable[[int], None] | None = None) -> dict[str, list[dict]]:
        """One client process per client pod, all at once; each stream's answers, by Service (stream order).
        ``progress(n)`` is told of every n more requests the clients have started."""
        jobs = start_clients(self.procs, self.names, self.connect_timeout_s, self.read_timeout_s)
        return collect_answers(jobs, progress)


@contextlib.contextmanager
def emulated(layout: Layout, connect_timeout_s: float = 1.0) -> Iterator[Emulation]:
    """``with emulated(layout) as em: em.run_clients()``: everything removed afterwards, whatever happens."""
    em = Emulation(layout, connect_timeout_s=connect_timeout_s)
    with em:
        yield em
