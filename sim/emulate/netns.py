"""Build a Plan on the running kernel: namespaces, veths, a bridge, kube-proxy's rules, servers and clients.

Everything is made inside network namespaces named ``k8ssim-<pid>-...`` (this process's id): a ``fabric``
namespace holding the bridge, one per node, one per pod, one per external client. Links are created inside
those namespaces, never in the host's, and no namespace gets a default route, so no packet can reach the host's
network. ``Emulation`` removes it all on exit, on error, on Ctrl-C and on SIGTERM (processes first, by the ids
it started, then the namespaces); namespaces left by a run that was killed outright (SIGKILL) are removed by the
next run, whose prefix check finds their process gone.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from sim.cluster import Pod
from sim.emulate.plan import NODE_NET, POD_GATEWAY, SERVICE_NET, NodePlan, Plan
from sim.emulate.rules import node_proxy, node_rules
from sim.scenario import ExternalClient, Stream, Target, lb_nodes

PREFIX = "k8ssim-"
_HERE = Path(__file__).resolve().parent
SERVER = _HERE / "server.py"
CLIENT = _HERE / "client.py"
LB_TABLE_BASE = 100
"""An external client's routing table (and fwmark) for "the load balancer sent it via node i": 100 + i."""
SETUP_TIMEOUT_S = 30.0
"""Longest wait for one setup command or a server to say it is ready (s)."""


class EmulationError(RuntimeError):
    """The kernel refused a step (a command failed); the message names the command and its error."""


def missing_tools(mode: str) -> list[str]:
    """What this machine lacks to emulate ``mode``: root, Linux, ``ip``, the iptables or nft tools."""
    missing = []
    if sys.platform != "linux":
        missing.append("Linux")
    if os.geteuid() != 0:
        missing.append("root (CAP_NET_ADMIN, CAP_SYS_ADMIN)")
    tools = ["ip"] + (["iptables-restore", "iptables"] if mode == "iptables" else ["nft"])
    missing += [t for t in tools if shutil.which(t) is None]
    return missing


def tool_versions(mode: str) -> str:
    """The version line of the tool that loads the rules (iptables says legacy or nf_tables)."""
    cmd = ["iptables", "--version"] if mode == "iptables" else ["nft", "--version"]
    try:
        return subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=10).stdout.strip()  # noqa: S603
    except OSError:
        return "?"


def _run(cmd: list[str], stdin: str | None = None) -> str:
    done = subprocess.run(  # noqa: S603 - fixed argv of ip / iptables / nft, no shell
        cmd, input=stdin, capture_output=True, text=True, check=False, timeout=SETUP_TIMEOUT_S
    )
    if done.returncode != 0:
        raise EmulationError(f"{' '.join(cmd)}: {done.stderr.strip() or done.stdout.strip()}")
    return done.stdout


def _delete_netns(name: str) -> None:
    """``ip netns del name``, errors ignored (it may be gone already)."""
    subprocess.run(  # noqa: S603
        ["ip", "netns", "del", name],  # noqa: S607 - the system's ip, by name as a user runs it
        capture_output=True,
        check=False,
        timeout=SETUP_TIMEOUT_S,
    )


def namespaces() -> list[str]:
    """Every named network namespace on the machine."""
    out = _run(["ip", "netns", "list"])
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale() -> list[str]:
    """Delete namespaces of earlier runs whose process is gone; return their names."""
    gone = []
    for ns in namespaces():
        m = re.match(rf"{PREFIX}(\d+)-", ns)
        if m and int(m.group(1)) != os.getpid() and not _alive(int(m.group(1))):
            _delete_netns(ns)
            gone.append(ns)
    return gone


@dataclass
class Emulation:
    """A Plan built on the kernel; use as a context manager, then ``run_clients()``."""

    plan: Plan
    connect_timeout_s: float = 1.0
    read_timeout_s: float = 5.0
    prefix: str = field(default_factory=lambda: f"{PREFIX}{os.getpid()}-")
    made: list[str] = field(default_factory=list)
    procs: list[subprocess.Popen] = field(default_factory=list)

    # --- names ----------------------------------------------------------------------------------------------
    def node_ns(self, node: str) -> str:
        """The namespace of node ``node``."""
        return f"{self.prefix}n{[n.name for n in self.plan.nodes].index(node)}"

    def pod_ns(self, pod: str) -> str:
        """The namespace of pod ``pod``."""
        return f"{self.prefix}p{[p.name for p in self.plan.scenario.pods].index(pod)}"

    def client_ns(self, client: str) -> str:
        """The namespace a client runs in: its pod's, or an external client's own."""
        if self.plan.scenario.is_external(client):
            return f"{self.prefix}x{[c.name for c in self.plan.scenario.external_clients].index(client)}"
        return self.pod_ns(client)

    @property
    def external_vips(self) -> list[str]:
        """Every LoadBalancer IP and external IP of the scenario's Services."""
        return [ip for svc in self.plan.scenario.services for ip in (*svc.load_balancer_ips, *svc.external_ips)]

    @property
    def fabric_ns(self) -> str:
        """The namespace holding the bridge between nodes."""
        return f"{self.prefix}fabric"

    # --- lifecycle ------------------------------------------------------------------------------------------
    def __enter__(self) -> Emulation:
        previous = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGHUP)}
        self._previous = previous

        def on_signal(signum: int, frame: FrameType | None) -> None:
            raise KeyboardInterrupt(f"signal {signum}")

        for s in previous:
            signal.signal(s, on_signal)
        try:
            remove_stale()
            self._build()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop every process this run started, then delete every namespace it made (idempotent)."""
        for proc in self.procs:
            with contextlib.suppress(OSError):
                if proc.stdin:
                    proc.stdin.close()
            with contextlib.suppress(OSError):
                proc.kill()
        for proc in self.procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)
            for pipe in (proc.stdout, proc.stderr):
                if pipe:
                    pipe.close()
        self.procs.clear()
        for ns in reversed(self.made):
            _delete_netns(ns)
        self.made.clear()
        for s, handler in getattr(self, "_previous", {}).items():
            signal.signal(s, handler)
        self._previous = {}

    def _netns(self, name: str) -> None:
        _run(["ip", "netns", "add", name])
        self.made.append(name)
        _run(["ip", "-n", name, "link", "set", "lo", "up"])

    def _batch(self, ns: str, commands: list[str]) -> None:
        if commands:
            _run(["ip", "-n", ns, "-batch", "-"], "\n".join(commands) + "\n")

    def _sysctl(self, ns: str, *settings: str) -> None:
        _run(["ip", "netns", "exec", ns, "sysctl", "-q", "-w", *settings])

    def route(self, frm: str, to: str, dest: str, dev: str = "eth0") -> str:
        """The ``ip route`` command sending ``dest`` from ``frm`` towards ``to`` (a node or a segment)."""
        _, gateway = self.plan.fabric.next_hop(frm, to)
        return f"route add {dest} via {gateway} dev {dev} onlink" if gateway else f"route add {dest} dev {dev}"

    def _build(self) -> None:
        """Make every namespace, link, address, route and rule of the plan, then start the servers."""
        plan = self.plan
        self._netns(self.fabric_ns)
        self._batch(
            self.fabric_ns,
            [
                c
                for k in range(len(plan.fabric.segments))
                for c in (f"link add br{k} type bridge", f"link set br{k} up")
            ],
        )
        for i, node in enumerate(plan.nodes):
            self._build_node(i, node)
        for r, (router, addresses) in enumerate(plan.fabric.routers.items()):
            self._build_router(r, router, addresses)
        for x, ext in enumerate(plan.scenario.external_clients):
            self._build_client(x, ext)
        for pod_name, ports in plan.servers.items():
            pod = plan.scenario.pod(pod_name)
            self._start_server(pod_name, pod.node, ports)

    def _uplink(self, ns: str, port: str, hub: str) -> None:
        """A veth from the fabric's bridge of segment ``hub`` (its end named ``port``) to ``eth0`` in ``ns``."""
        k = self.plan.fabric.segments.index(hub)
        self._batch(
            self.fabric_ns, [f"link add {port} type veth peer name eth0 netns {ns}", f"link set {port} master br{k}"]
        )
        self._batch(self.fabric_ns, [f"link set {port} up"])

    def _build_node(self, i: int, node: NodePlan) -> None:
        """Node ``i``: its namespace, its uplink on its segment's bridge (``n<i>``), its pods, routes and rules."""
        ns = self.node_ns(node.name)
        self._netns(ns)
        self._sysctl(
            ns,
            "net.ipv4.ip_forward=1",
            "net.ipv4.conf.all.rp_filter=0",
            "net.ipv4.conf.default.rp_filter=0",
            # every REJECT answers: Linux rate-limits ICMP errors per destination (a burst of 6, then one a
            # second), so a loop of connects to a Service without endpoints would see some SYNs unanswered
            # until their retransmission, 1 s later; the simulator's REJECT refuses every one at once
            "net.ipv4.icmp_ratemask=0",
        )
        self._uplink(ns, f"n{i}", self.plan.fabric.hub_of[node.name])
        for pod in node.pods:
            self._netns(self.pod_ns(pod.name))
        self._batch(ns, _node_commands(self, node))
        for pod in node.pods:
            self._batch(self.pod_ns(pod.name), _pod_commands(self, pod))
        self._load_rules(ns, node_rules(node.services, self.plan.mode, node_proxy(node)))

    def _build_router(self, r: int, router: str, addresses: Mapping[str, str]) -> None:
        """A router between segments: an address on each (``r<r>s<k>`` on bridge k), routes to every node, pod and
        external client."""
        fab = self.plan.fabric
        rns = f"{self.prefix}r{r}"
        self._netns(rns)
        self._sysctl(rns, "net.ipv4.ip_forward=1", "net.ipv4.conf.all.rp_filter=0", "net.ipv4.conf.default.rp_filter=0")
        cmds = []
        for hub, address in addresses.items():
            k = fab.segments.index(hub)
            self._batch(
                self.fabric_ns,
                [f"link add r{r}s{k} type veth peer name s{k} netns {rns}", f"link set r{r}s{k} master br{k}"],
            )
            self._batch(self.fabric_ns, [f"link set r{r}s{k} up"])
            cmds += [f"addr add {address}/24 dev s{k}", f"link set s{k} up"]
        for node in self.plan.nodes:
            out, gateway = fab.next_hop(router, node.name)
            dev = f"s{fab.segments.index(out)}"
            if gateway:
                cmds.append(f"route add {node.ip}/32 via {gateway} dev {dev} onlink")
            cmds += [f"route add {p.ip}/32 via {gateway or node.ip} dev {dev} onlink" for p in node.pods]
        for ext in self.plan.scenario.external_clients:
            out, gateway = fab.next_hop(router, fab.hub_of[ext.name])
            dev = f"s{fab.segments.index(out)}"
            via = f" via {gateway} dev {dev} onlink" if gateway else f" dev {dev}"
            cmds.append(f"route add {ext.ip}/32{via}")
        self._batch(rns, cmds)

    def _build_client(self, x: int, ext: ExternalClient) -> None:
        """External client ``x``: on its segment's bridge (``x<x>``), with a routing table per node for the load
        balancer."""
        xns = self.client_ns(ext.name)
        hub = self.plan.fabric.hub_of[ext.name]
        self._netns(xns)
        self._uplink(xns, f"x{x}", hub)
        cmds = [f"addr add {ext.ip}/32 dev eth0", "link set eth0 up"]
        cmds += [self.route(hub, node.name, f"{node.ip}/32") for node in self.plan.nodes]
        for i, node in enumerate(self.plan.nodes):
            if self.plan.fabric.hub_of[node.name] != hub:
                continue  # the load balancer's nodes are on the client's segment (the plan checks)
            table = LB_TABLE_BASE + i
            cmds += [f"route add {ip}/32 via {node.ip} dev eth0 onlink table {table}" for ip in self.external_vips]
            cmds.append(f"rule add fwmark {table} table {table}")
        self._batch(xns, cmds)

    def _load_rules(self, ns: str, rules: dict[str, str]) -> None:
        """Load the rules as kube-proxy does: the jumps, then ``iptables-restore --noflush``; or ``nft -f``."""
        exe = ["ip", "netns", "exec", ns]
        if self.plan.mode == "iptables":
            _run([*exe, "iptables-restore", "--noflush"], rules["jumps"])
            _run([*exe, "iptables-restore", "--noflush"], rules["restore"])
        else:
            _run([*exe, "nft", "-f", "-"], rules["transaction"])

    def _start_server(self, pod: str, node: str, ports: tuple[int, ...]) -> None:
        cmd = ["ip", "netns", "exec", self.pod_ns(pod), sys.executable, "-I", str(SERVER), pod, node]
        proc = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
            [*cmd, *map(str, ports)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        self.procs.append(proc)
        assert proc.stdout is not None
        line = _readline(proc, SETUP_TIMEOUT_S)
        if line.strip() != "ready":
            err = proc.stderr.read() if proc.poll() is not None and proc.stderr else ""
            raise EmulationError(f"server of pod {pod} did not start: {line.strip() or err.strip()}")

    # --- traffic ----------------------------------------------------------------------------------------------
    def run_clients(self, progress: Callable[[int], None] | None = None) -> dict[str, list[dict]]:
        """One client process per client pod, all at once; each stream's answers, by Service (stream order).
        ``progress(n)`` is told of every n more requests the clients have started."""
        jobs = []
        for client in self.plan.clients:
            spec = _client_spec(self, client)
            cmd = ["ip", "netns", "exec", self.client_ns(client), sys.executable, "-I", str(CLIENT), json.dumps(spec)]
            proc = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                start_new_session=True,
            )
            self.procs.append(proc)
            jobs.append((client, proc, float(spec["deadline_s"]) + 30))
        out = _answers(jobs, progress)
        for client, proc, _ in jobs:
            assert proc.stderr is not None
            if proc.wait() != 0:
                raise EmulationError(f"client {client} failed: {proc.stderr.read().strip()[-500:]}")
        return out


def _targets(plan: Plan, stream: Stream) -> list[tuple[str, int, int]]:
    """Where a stream's new connections go: (address, port, fwmark), one drawn uniformly per connection.

    ClusterIP: the Service's. NodePort: the stream's node. LoadBalancer: the Service's first LoadBalancer IP,
    from outside sent through one of the load balancer's nodes (the mark picks the routing table via that
    node), from a pod straight to it (its node's proxy captures it). The port is the stream's."""
    sc = plan.scenario
    svc = sc.service(stream.service).at_port(stream.port)
    index = {n.name: i for i, n in enumerate(plan.nodes)}
    if stream.target == Target.NODE_PORT:
        node = next(n for n in plan.nodes if n.name == stream.node)
        return [(node.ip, svc.node_port, 0)]
    if stream.target == Target.EXTERNAL_IP:  # a pod: its own node's proxy captures it
        return [(svc.external_ips[0], svc.port, 0)]
    if stream.target == Target.LOAD_BALANCER and not sc.is_external(stream.client):
        return [(svc.load_balancer_ips[0], svc.port, 0)]  # a pod: its own node's proxy captures the LB IP
    if stream.target == Target.LOAD_BALANCER:
        return [(svc.load_balancer_ips[0], svc.port, LB_TABLE_BASE + index[n]) for n in lb_nodes(sc, stream)]
    return [(plan.cluster_ips[stream.service], svc.port, 0)]


def _client_spec(em: Emulation, client: str) -> dict[str, Any]:
    """What ``client.py`` is given for one client pod: its streams (Service, targets, requests), the timeouts (s)
    and a deadline (s) for the whole run."""
    streams: list[dict[str, Any]] = [
        {
            "service": st.service,
            "targets": _targets(em.plan, st),
            "requests": st.requests or 0,
            "max_requests": st.connections.max_requests,
        }
        for st in em.plan.scenario.streams
        if st.client == client
    ]
    budget = sum(int(s["requests"]) for s in streams) * (em.connect_timeout_s + em.read_timeout_s) + 10
    return {
        "streams": streams,
        "connect_timeout_s": em.connect_timeout_s,
        "read_timeout_s": em.read_timeout_s,
        "deadline_s": min(budget, 3600.0),
    }


def _answers(
    jobs: list[tuple[str, subprocess.Popen, float]], progress: Callable[[int], None] | None
) -> dict[str, list[dict]]:
    """The clients' answers by Service, as their lines come; ``progress(n)`` told of every n more requests."""
    out: dict[str, list[dict]] = {}
    done = {client: 0 for client, _, _ in jobs}
    for client, line in _lines([(client, proc) for client, proc, _ in jobs], max(w for *_, w in jobs)):
        record = json.loads(line)
        if "service" in record:
            out.setdefault(record["service"], []).append({"client": client, **record})
        elif progress is not None:
            progress(int(record["done"]) - done[client])
            done[client] = int(record["done"])
    return out


def _node_commands(em: Emulation, node: NodePlan) -> list[str]:
    """A node's address and routes: ClusterIPs and external IPs out of its uplink, other segments' nodes and
    external clients through the routers on the topology's path, its pods on their veths (``v<j>``), other
    nodes' pods via the next hop."""
    plan, fab = em.plan, em.plan.fabric
    cmds = [f"addr add {node.ip}/24 dev eth0", "link set eth0 up"]
    # ClusterIPs route towards the uplink, as a node's default route would take them (nothing answers
    # there: packets the rules neither DNAT nor drop go nowhere)
    cmds.append(f"route add {SERVICE_NET} dev eth0")
    cmds += [f"route add {ip}/32 dev eth0" for ip in em.external_vips]  # LB and external IPs: likewise
    for other in plan.nodes:  # nodes on other segments, through the routers the topology's path crosses
        if other.name != node.name and fab.hub_of[other.name] != fab.hub_of[node.name]:
            cmds.append(em.route(node.name, other.name, f"{other.ip}/32"))
    for ext in plan.scenario.external_clients:
        cmds.append(em.route(node.name, fab.hub_of[ext.name], f"{ext.ip}/32"))
    for j, pod in enumerate(node.pods):
        cmds += [
            f"link add v{j} type veth peer name eth0 netns {em.pod_ns(pod.name)}",
            f"addr add {POD_GATEWAY}/32 dev v{j}",
            f"link set v{j} up",
            f"route add {pod.ip}/32 dev v{j}",
        ]
    for there in plan.nodes:
        if there.name != node.name:
            _, gateway = fab.next_hop(node.name, there.name)
            cmds += [f"route add {peer.ip}/32 via {gateway or there.ip} dev eth0 onlink" for peer in there.pods]
    return cmds


def _pod_commands(em: Emulation, pod: Pod) -> list[str]:
    """A pod's address and routes: everything through its node's gateway address."""
    cmds = [
        f"addr add {pod.ip}/32 dev eth0",
        "link set eth0 up",
        f"route add {POD_GATEWAY} dev eth0 scope link",
        f"route add {SERVICE_NET} via {POD_GATEWAY} dev eth0",
    ]
    cmds += [
        f"route add {o.ip}/32 via {POD_GATEWAY} dev eth0" for n in em.plan.nodes for o in n.pods if o.name != pod.name
    ]
    # replies to external clients, and to nodes (masqueraded external traffic comes from a node's IP)
    cmds += [f"route add {ext.ip}/32 via {POD_GATEWAY} dev eth0" for ext in em.plan.scenario.external_clients]
    cmds.append(f"route add {NODE_NET} via {POD_GATEWAY} dev eth0")
    # pods calling a LoadBalancer IP or an external IP: out through their node, whose proxy captures it
    cmds += [f"route add {ip}/32 via {POD_GATEWAY} dev eth0" for ip in em.external_vips]
    return cmds


def _lines(procs: list[tuple[str, subprocess.Popen]], wait_s: float) -> Iterator[tuple[str, str]]:
    """(name, line) of every stdout line of each (name, process), as they are written, until every process has
    closed its stdout; a process still writing after ``wait_s`` seconds is killed (EmulationError)."""
    import selectors

    end = time.monotonic() + wait_s
    with selectors.DefaultSelector() as sel:
        for name, proc in procs:
            assert proc.stdout is not None
            sel.register(proc.stdout, selectors.EVENT_READ, name)
        while sel.get_map():
            ready = sel.select(timeout=max(0.0, end - time.monotonic()))
            if not ready:
                late = [name for name, proc in procs if proc.poll() is None]
                for _, proc in procs:
                    proc.kill()
                raise EmulationError(f"client {', '.join(late) or '?'} did not finish within {wait_s:.0f} s")
            for key, _ in ready:
                line = key.fileobj.readline()  # type: ignore[union-attr]
                if line:
                    yield key.data, line
                else:  # the process closed its stdout: it is done
                    sel.unregister(key.fileobj)


def _readline(proc: subprocess.Popen, timeout_s: float) -> str:
    """One line of ``proc``'s stdout, or "" after ``timeout_s`` seconds or at its exit."""
    import selectors

    assert proc.stdout is not None
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            if sel.select(timeout=max(0.0, end - time.monotonic())):
                return proc.stdout.readline()
            if proc.poll() is not None:
                return ""
    return ""


@contextlib.contextmanager
def emulated(plan: Plan, connect_timeout_s: float = 1.0) -> Iterator[Emulation]:
    """``with emulated(plan) as em: em.run_clients()``: everything removed afterwards, whatever happens."""
    em = Emulation(plan, connect_timeout_s=connect_timeout_s)
    with em:
        yield em
