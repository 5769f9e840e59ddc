"""The traffic of an emulation: a server in every backend pod, a client process per client, and their answers.

``server.py`` and ``client.py`` (stdlib only) run inside the namespaces; each client writes one JSON line per
stream when it is done and a progress line as it goes.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sim.emulate.kernel import SETUP_TIMEOUT_S, EmulationError
from sim.emulate.layout import Layout
from sim.emulate.names import Names
from sim.emulate.network import LB_TABLE_BASE
from sim.emulate.processes import Processes, lines, readline
from sim.scenario import Stream, Target, lb_nodes

_HERE = Path(__file__).resolve().parent
SERVER = _HERE / "server.py"
CLIENT = _HERE / "client.py"


@dataclass(frozen=True)
class ClientJob:
    """One client process running: its client's name, the process, and how long its answers may take (s)."""

    client: str
    proc: subprocess.Popen
    wait_s: float


def start_servers(procs: Processes, names: Names) -> None:
    """An HTTP server in every backend pod, on every port its endpoints name; each must say it is ready."""
    for pod, ports in names.layout.servers.items():
        node = names.layout.scenario.pod(pod).node
        proc = procs.start(names.pod_ns(pod), [sys.executable, "-I", str(SERVER), pod, node, *map(str, ports)])
        line = readline(proc, SETUP_TIMEOUT_S)
        if line.strip() != "ready":
            err = proc.stderr.read() if proc.poll() is not None and proc.stderr else ""
            raise EmulationError(f"server of pod {pod} did not start: {line.strip() or err.strip()}")


def start_clients(procs: Processes, names: Names, connect_timeout_s: float, read_timeout_s: float) -> list[ClientJob]:
    """One client process per client of the layout, all at once, each given its streams and timeouts (s)."""
    jobs = []
    for client in names.layout.clients:
        spec = client_spec(names.layout, client, connect_timeout_s, read_timeout_s)
        argv = [sys.executable, "-I", str(CLIENT), json.dumps(spec)]
        proc = procs.start(names.client_ns(client), argv, stdin=subprocess.DEVNULL)
        jobs.append(ClientJob(client, proc, float(spec["deadline_s"]) + 30))
    return jobs


def collect_answers(jobs: list[ClientJob], progress: Callable[[int], None] | None) -> dict[str, list[dict]]:
    """The clients' answers by Service (stream order), as their lines come; ``progress(n)`` told of every n more
    requests started; EmulationError if a client fails."""
    out: dict[str, list[dict]] = {}
    done = {job.client: 0 for job in jobs}
    for client, line in lines([(job.client, job.proc) for job in jobs], max(job.wait_s for job in jobs)):
        record = json.loads(line)
        if "service" in record:
            out.setdefault(record["service"], []).append({"client": client, **record})
        elif progress is not None:
            progress(int(record["done"]) - done[client])
            done[client] = int(record["done"])
    for job in jobs:
        assert job.proc.stderr is not None
        if job.proc.wait() != 0:
            raise EmulationError(f"client {job.client} failed: {job.proc.stderr.read().strip()[-500:]}")
    return out


def targets(layout: Layout, stream: Stream) -> list[tuple[str, int, int]]:
    """Where a stream's new connections go: (address, port, fwmark), one drawn uniformly per connection.

    ClusterIP: the Service's. NodePort: the stream's node. LoadBalancer: the Service's first LoadBalancer IP,
    from outside sent through one of the load balancer's nodes (the mark picks the routing table via that
    node), from a pod straight to it (its node's proxy captures it). The port is the stream's."""
    sc = layout.scenario
    svc = sc.service(stream.service).at_port(stream.port)
    index = {n.name: i for i, n in enumerate(layout.nodes)}
    if stream.target == Target.NODE_PORT:
        node = next(n for n in layout.nodes if n.name == stream.node)
        return [(node.ip, svc.node_port, 0)]
    if stream.target == Target.EXTERNAL_IP:  # a pod: its own node's proxy captures it
        return [(svc.external_ips[0], svc.port, 0)]
    if stream.target == Target.LOAD_BALANCER and not sc.is_external(stream.client):
        return [(svc.load_balancer_ips[0], svc.port, 0)]  # a pod: its own node's proxy captures the LB IP
    if stream.target == Target.LOAD_BALANCER:
        return [(svc.load_balancer_ips[0], svc.port, LB_TABLE_BASE + index[n]) for n in lb_nodes(sc, stream)]
    return [(layout.cluster_ips[stream.service], svc.port, 0)]


def client_spec(layout: Layout, client: str, connect_timeout_s: float, read_timeout_s: float) -> dict[str, Any]:
    """What ``client.py`` is given for one client: its streams (Service, targets, requests), the timeouts (s)
    and a deadline (s) for the whole run."""
    streams: list[dict[str, Any]] = [
        {
            "service": st.service,
            "targets": targets(layout, st),
            "requests": st.requests or 0,
            "max_requests": st.connections.max_requests,
        }
        for st in layout.scenario.streams
        if st.client == client
    ]
    budget = sum(int(s["requests"]) for s in streams) * (connect_timeout_s + read_timeout_s) + 10
    return {
        "streams": streams,
        "connect_timeout_s": connect_timeout_s,
        "read_timeout_s": read_timeout_s,
        "deadline_s": min(budget, 3600.0),
    }
