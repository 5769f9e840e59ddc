"""``sim emulate`` on the real kernel: network namespaces, kube-proxy's rules, real TCP connections.

These tests need root, Linux, ``ip`` and the mode's tool (``iptables-restore`` or ``nft``); elsewhere they skip
with the reason. ``.ci/run`` installs iptables, nftables and iproute2 where it can.

The statistics: the kernel's ``statistic --mode random`` and ``numgen random`` draw from the kernel's own
generator, which no seed reaches, so every run is a fresh sample and the homogeneity p-value of a correct model
is uniform on (0, 1) (measured: README). The issue's bar (p > 0.01) would then fail 1% of runs of each test;
instead each test fails only below ``P_FAIL = 1e-4``, a false-failure rate of 1e-4 per tested Service, about
1e-3 for this file's dozen Services with more than one category (the others, all in one category, cannot fail by
chance). That this bound still catches a wrong model is shown below (``test_a_wrong_model_is_caught``): with the
same request counts a wrong routing model gives p < 1e-10. The issue's p > 0.01 is what ``sim emulate``
reports; the README quotes measured runs.
"""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

from sim.emulate import emulate, make_layout
from sim.emulate.compare import compare, sim_counts
from sim.emulate.kernel import PREFIX, missing_tools, namespaces, remove_stale
from sim.emulate.netns import emulated
from sim.io import load_scenario
from tests.conftest import DEMO, ROOT

P_FAIL = 1e-4
"""A homogeneity p-value below this fails a test (false-failure rate 1e-4 per Service; see the module docstring)."""
CONNECT_TIMEOUT_S = 0.25
"""The emulated clients' connect timeout: a DROP costs this per request."""
REQUESTS = 200
"""Requests per stream where the split is tested: about a second of traffic per run."""

MODES = [
    pytest.param(m, marks=pytest.mark.skipif(bool(missing_tools(m)), reason=f"needs {', '.join(missing_tools(m))}"))
    for m in ("iptables", "nftables")
]
EXPERIMENTS = ROOT / "experiments"
KIND = ROOT / "topologies" / "kind.toml"
KIND_EXTERNAL = ROOT / "topologies" / "kind-external.toml"


def write(tmp_path: Path, name: str, body: str, topology: Path = KIND) -> Path:
    """A scenario file on the kind topology."""
    path = tmp_path / f"{name}.toml"
    path.write_text(f'name = "{name}"\ntopology = "{topology}"\nseed = 3\n{body}')
    return path


NO_ENDPOINTS = """
[[pods]]
name = "client"
node = "kind-worker"
[[services]]
name = "nothing"
selector = { app = "nothing" }
[[streams]]
client = "client"
service = "nothing"
requests = 20
workload = { kind = "closed_loop" }
"""

ONE_TERMINATING = """
[[pods]]
name = "client"
node = "kind-worker"
[[pods]]
name = "api-1"
node = "kind-worker"
labels = { app = "api" }
[[pods]]
name = "api-2"
node = "kind-worker2"
labels = { app = "api" }
[[pods]]
name = "api-3"
node = "kind-worker2"
labels = { app = "api" }
terminating = true
[[services]]
name = "api"
selector = { app = "api" }
[[streams]]
client = "client"
service = "api"
requests = 200
workload = { kind = "closed_loop" }
"""


NODE_PORTS = """
[[pods]]
name = "web-1"
node = "kind-worker"
labels = { app = "web" }
[[pods]]
name = "web-2"
node = "kind-worker"
labels = { app = "web" }
[[services]]
name = "np-cluster"
selector = { app = "web" }
nodePort = 30080
[[services]]
name = "np-local"
selector = { app = "web" }
nodePort = 30081
externalTrafficPolicy = "Local"
[[external_clients]]
name = "users"
attach = "internet"
[[streams]]
client = "users"
service = "np-cluster"
target = "NodePort"
node = "kind-worker2"
requests = 100
workload = { kind = "closed_loop" }
[[streams]]
client = "users"
service = "np-local"
target = "NodePort"
node = "kind-worker2"
requests = 4
workload = { kind = "closed_loop" }
"""


def run_case(path: Path, mode: str, requests: int | None = None) -> dict:
    overrides = {"requests": requests} if requests is not None else {}
    scenario, seed = load_scenario(path, overrides)
    return emulate(make_layout(scenario, mode, str(path)), seed, connect_timeout_s=CONNECT_TIMEOUT_S)


def assert_agree(service: dict) -> None:
    assert service["failures_match"], (service["kernel"]["failures"], service["sim"]["failures"])
    assert service["homogeneity_p"] is not None and service["homogeneity_p"] > P_FAIL, service


def ours() -> list[str]:
    return [ns for ns in namespaces() if ns.startswith(f"{PREFIX}{os.getpid()}-")]


def host_links() -> list[str]:
    """The interfaces of the host's (this process's) network namespace."""
    out = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True, check=True).stdout
    return sorted(line.split(":")[1].strip().split("@")[0] for line in out.splitlines())


@pytest.mark.parametrize("mode", MODES)
def test_demo_cluster_splits_and_local_stays(mode):
    """The demo (Cilium's) under kube-proxy: echo-1 Cluster over two nodes, echo-2 Local on the client's node.
    Afterwards no namespace of this run is left, and the host's own interfaces are as they were."""
    links = host_links()
    report = run_case(DEMO, mode, REQUESTS)
    one, two = report["services"]["echo-1"], report["services"]["echo-2"]
    assert_agree(one)
    assert_agree(two)
    assert set(one["kernel"]["by_endpoint"]) == {"echo-1-kind-worker", "echo-1-kind-worker2"}
    assert one["test"]["dof"] == 1
    assert two["kernel"]["by_endpoint"] == {"echo-2-kind-worker": REQUESTS}
    assert ours() == []
    assert host_links() == links


@pytest.mark.parametrize("mode", MODES)
def test_local_with_its_local_pod_gone_times_out(mode):
    """iTP=Local, no local endpoint: kube-proxy's DROP; the client's SYN is never answered."""
    report = run_case(EXPERIMENTS / "local_pod_gone_iptables.toml", mode, 6)
    s = report["services"]["echo-2"]
    assert s["kernel"]["failures"] == {"timeout": 6} and s["kernel"]["by_endpoint"] == {}
    assert s["sim"]["drops"] == {"no_local_endpoints": 6}
    assert_agree(s)


@pytest.mark.parametrize("mode", MODES)
def test_no_endpoints_is_refused(mode, tmp_path):
    """No endpoint anywhere: kube-proxy's REJECT; connection refused at once."""
    report = run_case(write(tmp_path, "no-endpoints", NO_ENDPOINTS), mode)
    s = report["services"]["nothing"]
    assert s["kernel"]["failures"] == {"refused": 20}
    assert s["sim"]["drops"] == {"no_endpoints": 20}
    assert_agree(s)


@pytest.mark.parametrize("mode", MODES)
def test_three_backends_one_terminating(mode, tmp_path):
    """Serving-but-terminating endpoints are used only when no endpoint is ready: api-3 gets nothing."""
    report = run_case(write(tmp_path, "terminating", ONE_TERMINATING), mode)
    s = report["services"]["api"]
    assert set(s["kernel"]["by_endpoint"]) == {"api-1", "api-2"}
    assert sum(s["kernel"]["by_endpoint"].values()) == 200
    assert_agree(s)


@pytest.mark.parametrize("mode", MODES)
def test_etp_local_behind_a_load_balancer(mode):
    """eTP=Local behind a load balancer spreading over both workers: without health checks the half sent to
    kind-worker2 hits its DROP in KUBE-EXTERNAL-SERVICES (timeouts); with them, every connection reaches the pod."""
    report = run_case(EXPERIMENTS / "etp_local_lb.toml", mode, 16)["services"]
    blind, checked = report["web-blind"], report["web-checked"]
    assert set(blind["kernel"]["failures"]) == {"timeout"} and set(blind["sim"]["drops"]) == {"no_local_endpoints"}
    assert_agree(blind)
    assert checked["kernel"]["by_endpoint"] == {"web-kind-worker": 16} and checked["kernel"]["failures"] == {}
    assert_agree(checked)


@pytest.mark.parametrize("mode", MODES[:1])
def test_node_ports_from_outside(mode, tmp_path):
    """An external client on kind-worker2's NodePort: eTP=Cluster is masqueraded to the pods on kind-worker;
    eTP=Local DROPs there (no local endpoint)."""
    report = run_case(write(tmp_path, "node-ports", NODE_PORTS, KIND_EXTERNAL), mode)["services"]
    cluster, local = report["np-cluster"], report["np-local"]
    assert set(cluster["kernel"]["by_endpoint"]) == {"web-1", "web-2"} and cluster["kernel"]["failures"] == {}
    assert_agree(cluster)
    assert local["kernel"]["failures"] == {"timeout": 4} and local["sim"]["drops"] == {"no_local_endpoints": 4}
    assert_agree(local)


@pytest.mark.parametrize("mode", MODES[:1])
def test_topology_hints_across_zones(mode):
    """The 3-zone cluster: nodes on three switches, a spine router between them. kube-proxy's rules follow the
    EndpointSlice hints per node (PreferSameZone, PreferSameNode); the spread Service crosses the spine."""
    report = run_case(EXPERIMENTS / "topology_aware.toml", mode, 60)["services"]
    assert len(report["spread"]["kernel"]["by_endpoint"]) == 6  # every backend, in every zone
    for s in report.values():
        assert_agree(s)
    same_node = report["spread-same-node"]["kernel"]["endpoints_per_client"]
    assert same_node["client-a"] == ["spread-zone-a-node-1-0"]  # the backend on client-a's own node


@pytest.mark.parametrize("mode", MODES[:1])
def test_a_wrong_model_is_caught(mode, tmp_path):
    """The kernel's counts against a simulator that (wrongly) treats the terminating pod as ready: p < 1e-10.

    Kernel: 0 of 200 connections on api-3; the wrong model expects about 67, so the test cannot miss it."""
    path = write(tmp_path, "terminating", ONE_TERMINATING)
    scenario, seed = load_scenario(path)
    layout = make_layout(scenario, mode, str(path))
    with emulated(layout, connect_timeout_s=CONNECT_TIMEOUT_S) as em:
        kernel = em.run_clients()
    wrong = replace(scenario, pods=tuple(replace(p, terminating=False) for p in scenario.pods))
    bad = compare(scenario, kernel, sim_counts(wrong, seed))["services"]["api"]
    assert bad["homogeneity_p"] < 1e-10
    good = compare(scenario, kernel, sim_counts(scenario, seed))["services"]["api"]
    assert good["homogeneity_p"] > P_FAIL


@pytest.mark.parametrize("mode", MODES[:1])
def test_a_long_run_reports_its_progress_as_it_goes(mode):
    """A DROP case (each request waits out the connect timeout): the clients report the requests they have
    started while they run, every ``client.PROGRESS_S`` seconds, adding up to the requests sent; the bar of
    ``sim emulate`` is fed from this."""
    from sim.emulate.client import PROGRESS_S

    requests = 12  # 12 x 0.25 s of connect timeouts: 3 s, about 6 progress lines
    scenario, _ = load_scenario(EXPERIMENTS / "local_pod_gone_iptables.toml", {"requests": requests})
    layout = make_layout(scenario, mode, "local_pod_gone_iptables.toml")
    told: list[tuple[float, int]] = []
    with emulated(layout, connect_timeout_s=CONNECT_TIMEOUT_S) as em:
        started = time.monotonic()
        kernel = em.run_clients(lambda n: told.append((time.monotonic() - started, n)))
        took = time.monotonic() - started
    total = sum(st.requests or 0 for st in scenario.streams)
    assert sum(n for _, n in told) <= total and sum(len(r["answers"]) for rs in kernel.values() for r in rs) == total
    assert len(told) >= 3, told
    assert told[0][0] < took / 2, f"the first report came at {told[0][0]:.1f} s of {took:.1f} s"
    gaps = [b - a for (a, _), (b, _) in itertools.pairwise(told)]
    assert max(gaps) < PROGRESS_S * 4, gaps


@pytest.mark.parametrize("mode", MODES[1:])
def test_keep_alive_connections(mode):
    """Keep-alive: requests ride few connections, and the connections are what is counted and tested."""
    keep = run_case(EXPERIMENTS / "keepalive_skew.toml", mode, 1000)["services"]
    pool, curl = keep["echo-pool"], keep["echo-curl"]
    assert sum(pool["kernel"]["connections_by_endpoint"].values()) == 2  # 1000 requests, 500 per connection
    assert sum(pool["kernel"]["by_endpoint"].values()) == 1000
    assert sum(curl["kernel"]["connections_by_endpoint"].values()) == 1000
    assert_agree(curl)
    assert pool["failures_match"] and pool["homogeneity_p"] > P_FAIL


@pytest.mark.parametrize("mode", MODES)
def test_client_ip_affinity_pins_the_client(mode, tmp_path):
    """ClientIP affinity (iptables ``-m recent``, nftables timed sets): every request of the client lands on one
    endpoint, in the kernel as in the simulator."""
    sticky = ONE_TERMINATING.replace(
        'selector = { app = "api" }', 'selector = { app = "api" }\nsessionAffinity = "ClientIP"'
    )
    s = run_case(write(tmp_path, "sticky", sticky), mode, 50)["services"]["api"]
    assert s["homogeneity_p"] is None and s["test"]["pinned"]
    assert len(s["kernel"]["by_endpoint"]) == 1 and sum(s["kernel"]["by_endpoint"].values()) == 50


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
@pytest.mark.parametrize("mode", MODES[:1])
def test_a_signal_removes_everything(mode, sig):
    """A run stopped by SIGTERM or Ctrl-C mid-traffic (a DROP scenario that would take 200 s) leaves nothing."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "sim", "emulate", str(EXPERIMENTS / "local_pod_gone_iptables.toml"), "--mode", mode],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    prefix = f"{PREFIX}{proc.pid}-"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not any(ns.startswith(prefix) for ns in namespaces()):
            time.sleep(0.1)
        assert any(ns.startswith(prefix) for ns in namespaces()), "the run never made its namespaces"
        time.sleep(1.0)  # let the servers and the client start
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert not [ns for ns in namespaces() if ns.startswith(prefix)]
    assert "removed" in err


@pytest.mark.parametrize("mode", MODES[:1])
def test_namespaces_of_a_killed_run_are_removed_by_the_next(mode):
    """A run killed outright (SIGKILL) cannot clean up; the next run removes namespaces whose process is gone."""
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale = f"{PREFIX}{dead.pid}-n0"
    subprocess.run(["ip", "netns", "add", stale], check=True)
    try:
        assert remove_stale() == [stale]
        assert stale not in namespaces()
    finally:
        subprocess.run(["ip", "netns", "del", stale], capture_output=True, check=False)


@pytest.mark.slow
@pytest.mark.parametrize("mode", MODES)
def test_demo_at_the_issue_scale(mode):
    """2,000 requests per stream, as in the issue."""
    report = run_case(DEMO, mode, 2000)
    for s in report["services"].values():
        assert_agree(s)
