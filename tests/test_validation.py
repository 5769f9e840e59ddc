"""Statistics against theory, at fixed seeds. Each test states its level and the wrong model it must reject."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from typing import ClassVar

import numpy as np
import pytest

from sim.cluster import Endpoint, Pod, Service, TrafficPolicy
from sim.distributions import Constant
from sim.engine import run
from sim.errors import SpecError
from sim.experiment.analysis import summarize_service
from sim.io import load_scenario
from sim.rng import Streams
from sim.routing import DATAPLANES, PICKERS, DataplaneConfig, flow_key
from sim.scenario import Scenario, Stream
from sim.stats import chi_square_gof, chi_square_power, cohens_w
from sim.workload import ClosedLoop
from tests.conftest import DEMO, ROOT, star, two_node_scenario

pytestmark = pytest.mark.statistical

ALPHA = 0.01
N = 2000
ENDPOINTS = tuple(Endpoint(f"10.0.0.{i}:80", node_name="n", pod=f"p{i}") for i in range(2))
CLIENT_IPS = [f"10.1.{i // 200}.{i % 200 + 2}" for i in range(400)]


class Biased6040:
    """A wrong picker: claims uniform shares but sends 60% to the first endpoint."""

    name: ClassVar[str] = "biased-60-40"
    deterministic: ClassVar[bool] = False
    needs_load: ClassVar[bool] = False

    def shares(self, endpoints, client_ip=None):
        return np.full(len(endpoints), 1 / len(endpoints))

    def chooser(self, endpoints, rng, load):
        return lambda flow: 0 if rng.random() < 0.6 else 1


def connections(seed: int) -> list[tuple[str, int]]:
    """N new connections as the engine makes them: a client IP each, ports rising per client."""
    rng = Streams(seed).generator("clients")
    ports: dict[str, int] = {}
    out = []
    for c in rng.integers(0, len(CLIENT_IPS), N).tolist():
        ip = CLIENT_IPS[c]
        ports[ip] = ports.get(ip, 32767) + 1
        out.append((ip, ports[ip]))
    return out


def picker_test(picker, seed: int):
    choose = picker.chooser(ENDPOINTS, Streams(seed).generator("route"), [0] * len(ENDPOINTS))
    conns = connections(seed)
    counts = np.bincount([choose(flow_key(ip, port)) for ip, port in conns], minlength=len(ENDPOINTS))
    expected = np.sum([picker.shares(ENDPOINTS, ip) for ip, _ in conns], axis=0)
    return counts, expected


def test_sample_size_has_the_power_to_see_a_60_40_skew():
    # the wrong picker's test below is only meaningful if it would fail almost surely
    assert chi_square_power(cohens_w([0.6, 0.4], [0.5, 0.5]), N, dof=1, alpha=ALPHA) > 0.999


@pytest.mark.parametrize("name", sorted(n for n, p in PICKERS.items() if not p.deterministic))
def test_random_pickers_pass_chi_square(name):
    counts, expected = picker_test(PICKERS[name](), seed=1)
    assert chi_square_gof(counts, expected).pvalue > ALPHA


@pytest.mark.parametrize("name", sorted(n for n, p in PICKERS.items() if p.deterministic))
def test_deterministic_pickers_balance_exactly(name):
    counts, _ = picker_test(PICKERS[name](), seed=1)
    assert counts.max() - counts.min() <= 1


def test_biased_picker_fails_the_same_test():
    counts, expected = picker_test(Biased6040(), seed=1)
    assert chi_square_gof(counts, expected).pvalue < ALPHA


def spread_scenario(picker: str, policy: TrafficPolicy, requests: int) -> Scenario:
    """Three nodes, two backends and one closed-loop client on each; every request a new connection."""
    nodes = ["n0", "n1", "n2"]
    pods = [Pod(f"b-{n}-{k}", n, f"10.244.{i}.{k + 10}", {"app": "b"}) for i, n in enumerate(nodes) for k in range(2)]
    clients = [Pod(f"c-{n}", n, f"10.244.{i}.2", {"app": "c"}) for i, n in enumerate(nodes)]
    return Scenario(
        name="spread",
        topology=star(nodes),
        pods=tuple(pods + clients),
        services=(Service("b", {"app": "b"}, internal_traffic_policy=policy),),
        streams=tuple(Stream(c.name, "b", ClosedLoop(), requests) for c in clients),
        dataplane=DataplaneConfig(next(d for d in ("iptables", "ipvs") if DATAPLANES[d].offers(picker)), picker=picker),
    )


@pytest.mark.parametrize(("dataplane", "picker"), [("iptables", "least-connections"), ("nftables", "maglev"),
                                                     ("cilium", "round-robin"), ("ipvs", "random")])  # fmt: skip
def test_a_dataplane_refuses_a_picker_it_does_not_offer(dataplane, picker):
    """``Dataplane.pickers`` are its modes: iptables has no least-connections (only ``statistic --mode random``),
    IPVS no uniform random scheduler; a what-if picker that no dataplane has (power-of-two) goes everywhere."""
    sc = spread_scenario("random", TrafficPolicy.CLUSTER, 1)
    with pytest.raises(SpecError) as err:
        dataclasses.replace(sc, dataplane=DataplaneConfig(dataplane, picker=picker))
    assert err.value.field == "dataplane.picker" and picker in str(err.value) and dataplane in str(err.value)
    assert "\n" not in str(err.value)
    assert all(d.offers("power-of-two") for d in DATAPLANES.values())


@pytest.mark.parametrize("policy", list(TrafficPolicy))
@pytest.mark.parametrize("name", sorted(PICKERS))
def test_every_picker_and_policy_through_the_engine(name, policy):
    """Engine counts against the routing layer's expectation, for every registered picker and iTP policy."""
    result = run(spread_scenario(name, policy, 600), seed=2)
    s = summarize_service(result, "b")
    assert s.violations == 0
    assert s.sent == s.completed == 1800
    if PICKERS[name].deterministic:
        assert s.max_deviation <= 3  # one per proxy at most
    elif PICKERS[name].needs_load:  # power-of-two: picks by load, no p-value; the balance is reported instead
        assert np.isnan(s.chi_square.pvalue) and "adaptive picker" in s.verdict and s.balance.max_over_min < 2
    else:
        assert s.chi_square.pvalue > ALPHA
    if policy == TrafficPolicy.LOCAL:
        c = result.columns
        assert np.all(c["endpoint_node"] == c["client_node"])


def test_demo_echo1_is_uniform_and_echo2_stays_local():
    scenario, seed = load_scenario(DEMO)
    result = run(scenario, seed)
    echo1 = summarize_service(result, "echo-1")
    assert echo1.chi_square.pvalue > ALPHA
    assert echo1.violations == 0
    assert set(echo1.by_node) == {"kind-worker", "kind-worker2"}
    echo2 = summarize_service(result, "echo-2")
    assert echo2.by_node == {"kind-worker": 10000}
    assert echo2.violations == 0


def test_constant_network_delays_add_up():
    sc = two_node_scenario(requests=50, service_time=Constant(0.001), local_backend=False)
    lat = run(sc, 1).latency_s
    assert np.allclose(lat, 4 * 0.0001 + 0.001)  # two hops out, two back, 1 ms service


def test_a_scenario_file_asking_iptables_for_least_connections_is_one_line(tmp_path):
    bad = tmp_path / "bad.toml"
    text = DEMO.read_text().replace("../topologies", str(ROOT / "topologies"))
    bad.write_text(
        text.replace('dataplane = "cilium" ', 'dataplane = { name = "iptables", picker = "least-connections" }', 1)
    )
    done = subprocess.run([sys.executable, "-m", "sim", "validate", str(bad)], capture_output=True, text=True)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and str(bad) in done.stderr and "least-connections" in done.stderr
