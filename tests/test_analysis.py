"""Analysis over replications and sweeps, against values computed by hand."""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any

import numpy as np
import pandas as pd
import pytest

from sim.cluster import TrafficPolicy
from sim.engine import run
from sim.experiment.analysis import (
    histogram_ecdf,
    latency_histogram,
    locality,
    pooled_histogram,
    run_metrics,
    summarize_service,
)
from sim.experiment.metrics import PickGroup, ServiceSummary, json_problem
from sim.experiment.rundoc import run_document
from sim.experiment.tables import chi_square_by_design_point, design_point_summary, paired_differences
from sim.outcomes import Outcome
from sim.stats import (
    chi_square_power,
    false_discovery,
    mean_ci,
    paired_difference,
    sample_size,
    skew_power,
    skew_sample_size,
)
from tests.conftest import two_node_scenario


def test_mean_ci_is_the_student_t_interval():
    # mean 3, sd sqrt(2.5), sem sqrt(0.5), t(0.975, 4) = 2.776445 -> half-width 1.963243
    ci = mean_ci([1, 2, 3, 4, 5])
    assert (ci.mean, ci.n) == (3.0, 5)
    assert ci.sd == pytest.approx(math.sqrt(2.5))
    assert (ci.low, ci.high) == pytest.approx((3 - 1.963243, 3 + 1.963243), abs=1e-6)
    # 90%: t(0.95, 4) = 2.131847 -> half-width 1.507443
    assert mean_ci([1, 2, 3, 4, 5], 0.90).high == pytest.approx(3 + 1.507443, abs=1e-6)
    assert mean_ci([2.0, np.nan, 4.0]).mean == 3.0  # NaN left out
    one = mean_ci([7.0])
    assert one.mean == 7.0 and math.isnan(one.low) and math.isnan(one.high)
    assert math.isnan(mean_ci([]).mean)


def test_paired_difference_uses_per_replication_differences():
    # d = [1, 2, 3]: mean 2, sd 1, t(0.975, 2) = 4.302653 -> half-width 2.484138; t = 2 / (1 / sqrt 3) = 3.4641
    d = paired_difference([2, 4, 6], [1, 2, 3])
    assert (d.mean, d.n, d.cohens_dz) == (2.0, 3, 2.0)
    assert (d.low, d.high) == pytest.approx((2 - 2.484138, 2 + 2.484138), abs=1e-6)
    assert d.statistic == pytest.approx(2 * math.sqrt(3))
    assert d.pvalue == pytest.approx(0.074180, abs=1e-6)  # two-sided, 2 dof
    # the pairing matters: the same numbers unpaired would hide a constant shift behind the spread
    shifted = paired_difference([10.5, 20.5, 30.5], [10, 20, 30])
    assert shifted.mean == 0.5 and shifted.low == shifted.high == 0.5 and shifted.pvalue == 0.0
    assert paired_difference([1, np.nan, 3], [0, 5, 1]).n == 2


def test_false_discovery_is_benjamini_hochberg():
    # sorted p = .01 .03 .04 .5 -> p*m/rank = .04 .06 .0533 .5 -> running minimum from the top
    q = false_discovery([0.01, 0.04, 0.03, 0.5])
    assert q == pytest.approx([0.04, 0.16 / 3, 0.16 / 3, 0.5])
    q = false_discovery([0.02, np.nan, 0.04])
    assert q[0] == pytest.approx(0.04) and math.isnan(q[1]) and q[2] == pytest.approx(0.04)


def test_sample_size_and_power_match_cohens_tables():
    # Cohen (1988), table 7.4.6, alpha 0.05, power 0.80: w=0.1 -> 785 (dof 1), w=0.3 -> 88 (dof 1), 133 (dof 4)
    assert sample_size(0.1, 1) == 785
    assert sample_size(0.3, 1) == 88
    assert sample_size(0.3, 4) == 133
    n = sample_size(0.2, 2, alpha=0.01, power=0.9)
    assert chi_square_power(0.2, n, 2, 0.01) >= 0.9 > chi_square_power(0.2, n - 1, 2, 0.01)
    # a 55/45 split against 50/50 is w = 0.1
    assert skew_sample_size([0.55, 0.45], [0.5, 0.5]) == 785
    assert skew_power([0.55, 0.45], [0.5, 0.5], 785) == pytest.approx(chi_square_power(0.1, 785, 1))
    # endpoints that should get nothing are left out, as in the test itself
    assert skew_sample_size([0.55, 0.45, 0.0], [0.5, 0.5, 0.0]) == 785
    with pytest.raises(ValueError):
        sample_size(0.0, 1)


def test_latency_histogram_bins_and_pooling():
    h = latency_histogram(np.array([1e-3, 1e-3, 1.3e-3, np.nan, 1e-9]))
    # 1 ms is bin 60 (20 bins per decade above 1 us), 1.3 ms bin 62; 1 ns lands in bin 0
    assert h.first == 0 and h.counts[0] == 1 and h.counts[60] == 2 and h.counts[62] == 1
    assert sum(h.counts) == 4
    a, b = latency_histogram(np.array([1e-3])), latency_histogram(np.array([1e-2, 1e-2]))
    upper, counts = pooled_histogram([a, b, latency_histogram(np.array([]))])
    assert counts.sum() == 3 and counts[0] == 1 and counts[-1] == 2
    assert upper[0] == pytest.approx(1e-6 * 10 ** (61 / 20))
    edges, cdf = histogram_ecdf([a, b])
    assert len(edges) == len(cdf) == 21  # bins 60 (1 ms) to 80 (10 ms)
    assert cdf[0] == pytest.approx(1 / 3) and cdf[-1] == 1.0 and np.all(np.diff(cdf) >= 0)


def test_locality_counts_where_requests_were_served():
    local = run(two_node_scenario(TrafficPolicy.LOCAL, requests=300), 1)
    loc = locality(local, "svc")
    assert loc["by_client_node"] == {"a": {"a": 300}}
    assert summarize_service(local, "svc").cross_zone_fraction == 0.0  # star(): both nodes in zone "z"
    cluster = run(two_node_scenario(TrafficPolicy.CLUSTER, requests=300), 1)
    rows = locality(cluster, "svc")["by_client_node"]["a"]
    assert rows["a"] + rows["b"] == 300 and rows["b"] > 0
    metrics = run_metrics(cluster)["services"]["svc"]
    assert metrics["cross_node_fraction"] == pytest.approx(rows["b"] / 300)
    assert sum(metrics["latency_histogram"]["counts"]) == 300


def frame() -> pd.DataFrame:
    """Two policies x two loads x 3 replications of one Service; latency = a known function of the cell."""
    rows = []
    for point, (policy, load) in enumerate([("Cluster", 1), ("Cluster", 2), ("Local", 1), ("Local", 2)]):
        for r in range(3):
            latency = {"Cluster": 2.0, "Local": 1.0}[policy] * load + 0.1 * r
            rows.append(
                {
                    "design_point": point,
                    "replication": r,
                    "status": "ok",
                    "policy": policy,
                    "load": load,
                    "service": "api",
                    "latency_mean_s": latency,
                    "latency_p99_s": 3 * latency,
                    "cross_node_fraction": 0.5 if policy == "Cluster" else 0.0,
                    "cross_zone_fraction": np.nan,
                }
            )
    rows.append({**rows[0], "replication": 3, "status": "error", "latency_mean_s": np.nan})
    return pd.DataFrame(rows)


def test_design_point_summary_gives_t_intervals_per_design_point():
    table = design_point_summary(frame(), ["policy", "load"])
    assert list(table["design_point"]) == [0, 1, 2, 3]
    assert list(table["n"]) == [3, 3, 3, 3]  # the failed run is left out
    row = table[(table.policy == "Local") & (table.load == 2)].iloc[0]
    # values 2.0, 2.1, 2.2: mean 2.1, sd 0.1, t(0.975, 2) = 4.302653 -> half-width 0.248414
    assert row["latency_mean_s"] == pytest.approx(2.1)
    assert row["latency_mean_s_high"] - row["latency_mean_s"] == pytest.approx(0.248414, abs=1e-6)
    assert row["cross_node_fraction"] == 0.0 and math.isnan(row["cross_zone_fraction"])


def test_paired_differences_between_policies_at_each_design_point():
    diffs = paired_differences(frame(), ["policy", "load"], "policy", "Cluster")
    assert list(diffs["load"]) == [1, 2]
    # Local - Cluster = -load in every replication: the difference is exact
    assert list(diffs["difference"]) == pytest.approx([-1.0, -2.0])
    assert list(diffs["low"]) == pytest.approx([-1.0, -2.0]) and list(diffs["n"]) == [3, 3]
    assert set(diffs["policy"]) == {"Local"} and set(diffs["baseline"]) == {"Cluster"}


@functools.cache
def _a_summary() -> ServiceSummary:
    """A real run's summary, for records whose picks the tests below set."""
    return summarize_service(run(two_node_scenario(TrafficPolicy.CLUSTER, requests=20), 1), "svc")


def service_metrics(routed: dict[str, int], expected: dict[str, float], **changes: Any) -> dict:
    """A sweep record's metrics of one Service with these fresh picks and expected shares (no violations)."""
    changes = {"groups": [], **changes}
    s = dataclasses.replace(_a_summary(), routed_by_endpoint=routed, expected_share=expected, violations=0, **changes)
    return s.to_json()


def record(point: int, rep: int, routed: dict[str, int], expected: dict[str, float]) -> dict:
    service = service_metrics(routed, expected)
    return {"design_point": point, "replication": rep, "status": "ok", "factors": {"p": point},
            "metrics": {"services": {"api": service}}}  # fmt: skip


def test_chi_square_per_design_point_pools_replications_and_controls_false_discoveries():
    records = [
        record(0, 0, {"x": 30, "y": 20}, {"x": 0.5, "y": 0.5}),
        record(0, 1, {"x": 30, "y": 20}, {"x": 0.5, "y": 0.5}),  # pooled 60/40 of 100: chi2 4.0, p 0.0455
        record(1, 0, {"x": 50, "y": 50}, {"x": 0.5, "y": 0.5}),  # chi2 0, p 1
        record(2, 0, {"x": 10}, {"x": 1.0}),  # one endpoint: nothing to test
        {"design_point": 3, "replication": 0, "status": "error", "factors": {"p": 3}, "metrics": None},
    ]
    table = chi_square_by_design_point(records, ["p"], alpha=0.05)
    assert list(table["design_point"]) == [0, 1, 2]
    first = table.iloc[0]
    assert (first["runs"], first["n"], first["dof"]) == (2, 100, 1)
    assert first["statistic"] == pytest.approx(4.0) and first["pvalue"] == pytest.approx(0.0455, abs=1e-4)
    assert first["cohens_w"] == pytest.approx(0.2)
    assert first["power"] == pytest.approx(chi_square_power(0.1, 100, 1, 0.05))
    # BH over the two testable design points: q = (0.0455 * 2 / 1, 1.0)
    assert table["qvalue"].iloc[0] == pytest.approx(2 * first["pvalue"])
    assert not table["reject"].iloc[0]  # 0.091 > 0.05: not a discovery once the sweep is accounted for
    assert math.isnan(table["pvalue"].iloc[2]) and not table["reject"].iloc[2]


def test_sweep_tests_pool_each_group_over_replications():
    """Runs with per-group results: each group pooled with itself across replications, statistics summed."""

    def grouped(rep: int) -> dict:
        groups = [
            PickGroup([], {"x": 10}, {"x": 1.0}, 0.0, 0, 10, math.nan, "chi-square"),  # one endpoint: 0 dof
            PickGroup([], {"y": 30, "z": 20}, {"y": 0.5, "z": 0.5}, 2.0, 1, 50, 0.16, "chi-square"),
        ]
        routed, expected = {"x": 10, "y": 30, "z": 20}, {"x": 1 / 6, "y": 5 / 12, "z": 5 / 12}
        service = service_metrics(routed, expected, groups=groups)
        return {"design_point": 0, "replication": rep, "status": "ok", "factors": {"p": 0},
                "metrics": {"services": {"api": service}}}  # fmt: skip

    row = chi_square_by_design_point([grouped(0), grouped(1)], ["p"], alpha=0.05).iloc[0]
    # y/z pooled: 60/40 of 100 -> X2 4.0 with 1 dof (the pooled-over-groups test would have said 2 dof)
    assert (row["n"], row["dof"], row["runs"]) == (120, 1, 2)
    assert row["statistic"] == pytest.approx(4.0) and row["pvalue"] == pytest.approx(0.0455, abs=1e-4)


def test_an_adaptive_picker_reports_balance_and_no_pvalue():
    """power-of-two at rho 0.8 over 4 single-worker pods: its picks follow load, so no p-value is given (its
    statistic runs below the chi-square law: the p-values would look too good); the balance is reported."""
    import json

    from sim.cli import format_summary
    from sim.cluster import Pod, Service
    from sim.distributions import Exponential
    from sim.experiment.analysis import summarize
    from sim.io import dumps_json
    from sim.routing import DataplaneConfig
    from sim.scenario import Scenario, Stream
    from sim.workload import Poisson
    from tests.conftest import star

    web = [Pod(f"web-{i}", "ab"[i % 2], f"10.244.{i % 2}.{10 + i}", {"app": "web"}, service_time=Exponential(0.01))
           for i in range(4)]  # fmt: skip
    pods = (Pod("client", "a", "10.244.0.2", {"app": "c"}), *web)
    stream = Stream("client", "web", Poisson(320.0), 4000)  # rho 0.8 at each pod if spread evenly
    sc = Scenario("p2c", star(["a", "b"]), pods, (Service("web", {"app": "web"}),), (stream,),
                  dataplane=DataplaneConfig(picker="power-of-two"))  # fmt: skip
    result = run(sc, 1)
    s = summarize_service(result, "web")
    assert s.adaptive and math.isnan(s.chi_square.pvalue) and "adaptive picker (power-of-two)" in s.verdict
    assert "no p-value" in s.verdict and s.chi_square.dof == 3
    ratios = np.array(list(s.routed_by_endpoint.values())) / 1000
    assert s.balance.min_ratio == pytest.approx(ratios.min()) and s.balance.max_ratio == pytest.approx(ratios.max())
    assert s.balance.cv == pytest.approx(ratios.std() / ratios.mean())
    summary = json.loads(dumps_json(summarize(result)))
    cs = summary["services"]["web"]["chi_square"]
    assert cs["pvalue"] is None and cs["adaptive_picker"] and cs["groups"][0]["pvalue"] is None
    assert "p-value -" in format_summary(sc, summary)
    # a random picker on the same cluster keeps its p-value
    random = summarize_service(run(dataclasses.replace(sc, dataplane=DataplaneConfig(picker="random")), 1), "web")
    assert not random.adaptive and 0 <= random.chi_square.pvalue <= 1


def test_grouped_traffic_is_tested_per_group_in_the_summary():
    """Two streams entering at different nodes of a Local Service: each group has one endpoint, and the Cluster
    stream's group two; the summary keeps each group's test and combines them."""
    from sim.cluster import Pod, Service
    from sim.scenario import Scenario, Stream
    from sim.workload import Poisson
    from tests.conftest import star

    pods = (
        Pod("client-a", "a", "10.244.0.2", {"app": "c"}),
        Pod("client-b", "b", "10.244.1.2", {"app": "c"}),
        Pod("web-a", "a", "10.244.0.10", {"app": "web"}),
        Pod("web-b", "b", "10.244.1.10", {"app": "web"}),
    )
    services = (Service("local", {"app": "web"}, internal_traffic_policy=TrafficPolicy.LOCAL),)
    streams = (Stream("client-a", "local", Poisson(100.0), 300), Stream("client-b", "local", Poisson(100.0), 500))
    s = summarize_service(run(Scenario("g", star(["a", "b"]), pods, services, streams), 1), "local")
    assert [g.dof for g in s.groups] == [0, 0] and s.chi_square.dof == 0
    assert [g.members[0].client for g in s.groups] == ["client-a", "client-b"]
    assert [g.picked for g in s.groups] == [{"web-a": 300}, {"web-b": 500}]
    assert "nothing to test" in s.verdict  # pooled, this was 2 cells with 1 dof: a test of nothing


@pytest.mark.parametrize("policy", [TrafficPolicy.CLUSTER, TrafficPolicy.LOCAL])
def test_replies_by_node_add_up_to_the_completed_requests_and_the_expected_shares(policy):
    """Each node's replies add up to the completed requests, and the nodes' expected shares to 1: Cluster spreads
    over nodes a and b (half each, random picker), Local keeps to the client's node a."""
    s = summarize_service(run(two_node_scenario(policy, requests=300), 1), "svc")
    nodes = s.replies_by_node
    assert nodes is not None and sum(r.replies for r in nodes.values()) == s.completed == 300
    assert sum(r.expected_share for r in nodes.values()) == pytest.approx(1.0)
    assert all(r.share == r.replies / s.completed for r in nodes.values())
    want = {"a": 0.5, "b": 0.5} if policy == TrafficPolicy.CLUSTER else {"a": 1.0}
    assert {n: r.expected_share for n, r in nodes.items()} == pytest.approx(want)


def test_service_summary_reads_back_from_its_json_as_written():
    """The typed metrics and their JSON are one structure: to_json, through a file (NaN as null), from_json and
    to_json again give the same text, for a run with drops, keep-alive and several Services."""
    import json

    from sim.experiment.analysis import ServiceSummary
    from sim.io import dumps_json, load_scenario
    from tests.conftest import ROOT

    for name in ("local_pod_dies", "keepalive_skew"):
        sc, seed = load_scenario(ROOT / "experiments" / f"{name}.toml", {"requests": 200})
        result = run(sc, seed)
        for service in result.service_names:
            text = dumps_json(summarize_service(result, service).to_json())
            back = ServiceSummary.from_json(service, json.loads(text))
            assert back.name == service and dumps_json(back.to_json()) == text
        # a run document's (sim run --out): with locality, latency histograms and windows, typed as well
        for service, raw in run_document(result)["services"].items():
            text = dumps_json(raw)
            back = ServiceSummary.from_json(service, json.loads(text))
            assert back.windows is not None and back.latency_histogram is not None and back.by_client_node is not None
            assert all(isinstance(g, PickGroup) for g in back.groups)
            assert dumps_json(back.to_json()) == text
            assert json_problem(json.loads(text)) is None


def test_a_damaged_service_metrics_json_names_its_field():
    """The readers of files ask ``json_problem`` first: a missing or unreadable field is named, not a traceback."""
    raw = _a_summary().to_json()
    assert json_problem(raw) is None
    assert json_problem({k: v for k, v in raw.items() if k != "hints"}) == ("hints", "is missing")
    assert json_problem({**raw, "chi_square": {**raw["chi_square"], "dof": None}})[0] == ""
    assert json_problem({k: v for k, v in raw.items() if k != "chi_square"})[0] == "chi_square"
    assert json_problem([1]) == ("", "must be an object")


def test_services_grouped_once_summarise_as_one_mask_per_service():
    """``service_rows`` (one stable sort, then slices) selects exactly each Service's rows in record order, as a
    boolean mask over every row would; the run's summaries and sweep metrics built from it are those of each
    Service summarised from its own mask, byte for byte (a run with several Services whose requests interleave)."""
    from sim.experiment.analysis import service_rows, summarize
    from sim.io import dumps_json, load_scenario
    from tests.conftest import ROOT

    sc, seed = load_scenario(ROOT / "experiments" / "skewed_clients.toml", {"requests": 300})
    result = run(sc, seed)
    service = result.columns["service"]
    rows = service_rows(result)
    assert len(rows) == len(result.service_names) >= 2
    assert len(set(service[:50].tolist())) > 1  # the Services' requests interleave: grouping has work to do
    for i, mine in enumerate(rows):
        assert mine.tolist() == np.flatnonzero(service == i).tolist()
    whole = summarize(result)["services"]
    metrics = run_metrics(result)["services"]
    assert (
        list(whole)
        == list(metrics)
        == [n for n in result.service_names if (service == result.service_names.index(n)).any()]
    )
    for i, name in enumerate(result.service_names):
        by_mask = np.flatnonzero(service == i)
        assert dumps_json(whole[name]) == dumps_json(summarize_service(result, name, rows=by_mask).to_json())
        assert metrics[name]["by_client_node"] == locality(result, name, by_mask)["by_client_node"]
        ok = by_mask[(result.outcome[by_mask] == Outcome.OK) & (result.columns["t_sent"][by_mask] >= sc.warmup_s)]
        assert metrics[name]["latency_histogram"] == latency_histogram(result.latency_s[ok]).to_json()
