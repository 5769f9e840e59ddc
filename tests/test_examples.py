"""Every shipped experiment through the CLI, as a user runs it; bad input exits 2 with one line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import DEMO, ROOT

EXPERIMENTS = sorted((ROOT / "experiments").glob("*.toml"))


def sim(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sim", *args], capture_output=True, text=True, cwd=cwd, check=False)


@pytest.mark.parametrize("path", EXPERIMENTS, ids=[p.stem for p in EXPERIMENTS])
def test_every_experiment_validates_and_runs(path):
    assert sim("validate", str(path)).returncode == 0
    done = sim("run", str(path), "--requests", "200", "--json")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    for service in summary["services"].values():
        assert service["sent"] == service["completed"] + service["dropped"] + service["in_flight"]


def test_demo_table_and_json_shape():
    table = sim("run", str(DEMO), "--requests", "2000")
    assert table.returncode == 0
    assert "Service echo-1" in table.stdout and "chi-square" in table.stdout and "verdict" in table.stdout
    out = json.loads(sim("run", str(DEMO), "--requests", "2000", "--json").stdout)
    echo1, echo2 = out["services"]["echo-1"], out["services"]["echo-2"]
    for key in ("sent", "completed", "dropped", "violations", "by_node", "by_endpoint", "chi_square", "latency_s"):
        assert key in echo1
    assert set(echo1["chi_square"]) >= {"statistic", "pvalue", "dof"}
    assert set(echo1["latency_s"]) == {"mean", "p50", "p99"}
    assert echo2["by_node"] == {"kind-worker": 2000} and echo2["violations"] == 0


def test_same_seed_byte_identical_json_other_seed_differs(tmp_path):
    a = sim("run", str(DEMO), "--requests", "3000", "--json", "--seed", "5").stdout
    b = sim("run", str(DEMO), "--requests", "3000", "--json", "--seed", "5").stdout
    c = sim("run", str(DEMO), "--requests", "3000", "--json", "--seed", "6").stdout
    assert a == b
    assert json.loads(a)["services"]["echo-1"]["by_node"] != json.loads(c)["services"]["echo-1"]["by_node"]
    out = tmp_path / "r.json"
    assert sim("run", str(DEMO), "--requests", "3000", "--seed", "5", "--out", str(out)).returncode == 0
    assert out.read_text() == a


def test_bad_file_exits_2_with_one_line_and_writes_nothing(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text(DEMO.read_text().replace('"Local"', '"Nearby"').replace("../topologies", str(ROOT / "topologies")))
    out = tmp_path / "r.json"
    done = sim("run", str(bad), "--out", str(out))
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.count("\n") == 1
    assert str(bad) in done.stderr and "internalTrafficPolicy" in done.stderr and "Nearby" in done.stderr
    assert "Traceback" not in done.stderr
    assert not out.exists()


def test_help():
    done = sim("--help")
    assert done.returncode == 0 and "run" in done.stdout
    assert "--requests" in sim("run", "--help").stdout


# --- each shipped experiment's outcome, asserted ---------------------------------------------------------------

import numpy as np  # noqa: E402

from sim import load_scenario, run, summarize_service  # noqa: E402
from sim.outcomes import DropReason  # noqa: E402
from sim.scenario import stream_route  # noqa: E402


def experiment(name: str, **overrides):
    scenario, seed = load_scenario(ROOT / "experiments" / f"{name}.toml", overrides)
    return run(scenario, seed)


def test_local_pod_gone_iptables_times_out():
    s = summarize_service(experiment("local_pod_gone_iptables"), "echo-2")
    assert s.dropped == s.sent and s.drops == {DropReason.NO_LOCAL_ENDPOINTS.label: s.sent}
    assert s.failed_after_s == 5.0  # the client's connect timeout


def test_local_pod_gone_cilium_fails_at_once():
    s = summarize_service(experiment("local_pod_gone_cilium"), "echo-2")
    assert s.dropped == s.sent and s.drops == {DropReason.NO_BACKENDS.label: s.sent}
    assert s.failed_after_s == 0.0


def test_local_pod_gone_ipvs_with_node_port_silently_crosses_nodes():
    s = summarize_service(experiment("local_pod_gone_ipvs"), "echo-2")
    assert s.completed == s.sent and s.by_node == {"kind-worker2": s.sent}
    assert s.cross_node_fraction == 1.0


def test_topology_aware_keeps_traffic_in_zone_or_on_node():
    r = experiment("topology_aware")
    plain, zone, node = (summarize_service(r, n) for n in ("spread", "spread-same-zone", "spread-same-node"))
    assert plain.cross_zone_fraction > 0.5
    assert zone.cross_zone_fraction == 0.0 and zone.hints == "written"
    assert node.cross_zone_fraction == 0.0
    c = r.columns
    same_node = r.service_names.index("spread-same-node")
    zone_a = (c["service"] == same_node) & (c["client_node"] == r.node_names.index("zone-a-node-1"))
    assert np.all(c["endpoint_node"][zone_a] == c["client_node"][zone_a])  # its node has an endpoint
    assert node.chi_square.pvalue > 0.01 and zone.chi_square.pvalue > 0.01  # uniform within the filtered sets


def test_topology_auto_withholds_hints_when_a_zone_is_short():
    r = experiment("topology_auto")
    six, four = summarize_service(r, "auto-six"), summarize_service(r, "auto-four")
    assert six.hints == "written" and six.cross_zone_fraction == 0.0
    assert "overload threshold" in four.hints and four.cross_zone_fraction > 0.4


def test_etp_local_behind_a_load_balancer():
    r = experiment("etp_local_lb")
    blind, checked = summarize_service(r, "web-blind"), summarize_service(r, "web-checked")
    # the LB picks one of two workers per connection: Binomial(2000, 1/2) drops, within 4 SE
    assert abs(blind.dropped / blind.sent - 0.5) < 4 * (0.25 / blind.sent) ** 0.5
    assert set(blind.drops) == {DropReason.NO_LOCAL_ENDPOINTS.label}
    assert checked.dropped == 0
    assert blind.source_preserved_fraction == checked.source_preserved_fraction == 1.0


def test_maglev_moves_only_the_leaving_backends_flows():
    from sim.rng import Streams
    from sim.routing import ip_key
    from sim.routing.ports import first_ports

    r = experiment("maglev_remap")
    sc, c = r.scenario, r.columns
    # the flows of the "web" stream: the users' address and the source ports Linux drew for its connections
    web = c["endpoint"][c["service"] == r.service_names.index("web")]
    ports = first_ports(Streams(r.seed).generator("ports", "users", "web", 0), len(web))
    flows = [(ip_key(sc.client_ip("users")) << 16) | p for p in ports.tolist()]

    def picks(service: str) -> np.ndarray:
        spec = next(s for s in sc.streams if s.service == service)
        route = stream_route(sc, spec, "kind-worker")
        choose = route.picker.chooser(route.endpoints, np.random.default_rng(0), [])
        return np.array([r.pod_names.index(route.endpoints[choose(f)].pod) for f in flows])

    full, less = picks("web"), picks("web-minus-one")
    assert np.array_equal(full, web)  # the run picked by Maglev over these flows
    moved = full != less
    gone = full == r.pod_names.index("web-0")
    assert np.all(moved[gone])  # web-0's flows had to move
    # flows of surviving backends almost never move; Maglev's bound is small, random choice would move ~4/5
    assert moved[~gone].mean() < 0.05
    for name in ("web", "web-minus-one"):
        assert summarize_service(r, name).chi_square.pvalue > 0.01


def test_keep_alive_skews_requests_but_not_connections():
    r = experiment("keepalive_skew")
    curl, pool = summarize_service(r, "echo-curl"), summarize_service(r, "echo-pool")
    assert curl.chi_square.n == 2000 and curl.chi_square.pvalue > 0.01
    assert pool.chi_square.n == 4  # the connections are the draws
    assert sum(pool.by_endpoint.values()) == 2000
    assert all(n % 500 == 0 for n in pool.by_endpoint.values())


def test_local_pod_dies():
    r = experiment("local_pod_dies")
    cluster, local = summarize_service(r, "echo-cluster"), summarize_service(r, "echo-local")
    assert cluster.dropped == cluster.timed_out == 0  # the 1 s sync lag is inside the 5 s grace
    c = r.columns
    mine = c["service"] == r.service_names.index("echo-local")
    ok = c["outcome"] == 1
    # served (by the terminating pod) until it is gone; a request in service at 15 s is reset (backend_gone)
    assert np.all(ok[mine & (c["t_sent"] < 14.9)])
    assert not np.any(ok[mine & (c["t_sent"] > 15.0)])  # then nothing: Local fails from the moment it is gone
    assert local.dropped > 0 and DropReason.NO_LOCAL_ENDPOINTS.label in local.drops


def test_skewed_clients_local_tail_explodes():
    r = experiment("skewed_clients")
    cluster, local = summarize_service(r, "echo-cluster"), summarize_service(r, "echo-local")
    assert local.cross_node_fraction == 0.0 and cluster.cross_node_fraction > 0.4
    assert local.latency_s.p99 > 2 * cluster.latency_s.p99
    assert local.pods["echo-local-kind-worker"].utilization > 0.8 > cluster.pods["echo-cluster-kind-worker"].utilization


def test_engine_choice():
    path = str(ROOT / "experiments" / "skewed_clients.toml")
    auto = sim("run", path, "--engine", "auto", "--requests", "500", "--json")
    assert auto.returncode == 0 and "engine auto -> fast" in auto.stderr
    assert json.loads(auto.stdout)["engine"] == "fast"
    refused = sim("run", str(DEMO), "--engine", "fast")
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1 and "closed loop" in refused.stderr
    fallback = sim("run", str(DEMO), "--engine", "auto", "--requests", "100", "--json")
    assert fallback.returncode == 0 and json.loads(fallback.stdout)["engine"] == "des"


def test_cross_node_fraction_per_entry_node():
    s = summarize_service(experiment("skewed_clients", requests=300), "echo-cluster")
    assert set(s.cross_node_by_entry_node) == {"kind-worker", "kind-worker2"}
    # two pods, uniform: 1/2 each; each node sends >= 300 requests, so 0.2 is over 6 binomial standard errors
    assert all(0.3 < f < 0.7 for f in s.cross_node_by_entry_node.values())
    local = summarize_service(experiment("skewed_clients", requests=300), "echo-local")
    assert set(local.cross_node_by_entry_node.values()) == {0.0}


def test_scenario_reference_example_has_duration_and_warmup_at_the_top_level(tmp_path):
    """The scenario reference's example (docs/scenarios.md) with its [dataplane] table, duration_s and warmup_s
    uncommented where it shows them parses and stops at 60 s (they are top-level keys: placed after the [dataplane]
    header they would be that table's, and an error naming the field)."""
    readme = (ROOT / "docs" / "scenarios.md").read_text()
    start = readme.index('```toml\nname = "my-scenario"') + len("```toml\n")
    text = readme[start : readme.index("```", start)].replace("../topologies/", f"{ROOT / 'topologies'}/")
    for line in ("# duration_s = 60", "# warmup_s = 10", "# [dataplane]", '# name = "cilium"'):
        assert line in text
        text = text.replace(line, line[2:])
    good = tmp_path / "mine.toml"
    good.write_text(text.replace('dataplane = "iptables"', ""))
    assert sim("validate", str(good)).returncode == 0, sim("validate", str(good)).stderr
    assert json.loads(sim("run", str(good), "--json").stdout)["end_s"] == 60.0
    bad = tmp_path / "bad.toml"
    bad.write_text(
        text.replace('dataplane = "iptables"', "").replace('name = "cilium"', 'name = "cilium"\nwarmup_s = 1')
    )
    done = sim("validate", str(bad))
    assert done.returncode == 2 and "dataplane.warmup_s: unknown key" in done.stderr
