"""Tidy tables over a sweep's runs (pandas): per design point and Service, means over replications with t
intervals, paired differences between levels of a factor, and chi-square tests of picks pooled over replications
with false-discovery control. Reads the per-run metrics ``sim.experiment.analysis.run_metrics`` writes, typed
(``sim.experiment.metrics``)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from sim.experiment.metrics import record_services
from sim.stats import chi_square_power, false_discovery, grouped_gof, mean_ci, paired_difference

if TYPE_CHECKING:
    import pandas as pd


SUMMARY_METRICS = ("latency_mean_s", "latency_p99_s", "cross_node_fraction", "cross_zone_fraction")


def design_point_summary(
    frame: pd.DataFrame,
    factors: Sequence[str],
    metrics: Sequence[str] = SUMMARY_METRICS,
    confidence: float = 0.95,
) -> pd.DataFrame:
    """Per design point and Service: replications ``n`` and, per metric, the mean over replications with its t
    interval (``<metric>``, ``<metric>_low``, ``<metric>_high``; units of the metric). Failed runs are left out."""
    import pandas as pd  # here, not at the top: pandas costs ~0.5 s to import, and runs never need it

    ok = frame[frame["status"] == "ok"]
    keys = [*factors, "service"]
    rows = []
    for values, group in ok.groupby(keys, sort=False, dropna=False):
        row: dict[str, Any] = dict(zip(keys, values, strict=True))
        row["design_point"] = int(group["design_point"].iloc[0])
        row["n"] = len(group)
        for m in metrics:
            ci = mean_ci(group[m].to_numpy(dtype=float), confidence)
            row[m], row[f"{m}_low"], row[f"{m}_high"] = ci.mean, ci.low, ci.high
        rows.append(row)
    columns = ["design_point", *keys, "n", *(c for m in metrics for c in (m, f"{m}_low", f"{m}_high"))]
    return pd.DataFrame(rows, columns=columns)


def paired_differences(
    frame: pd.DataFrame,
    factors: Sequence[str],
    factor: str,
    baseline: Any,
    metric: str = "latency_mean_s",
    confidence: float = 0.95,
) -> pd.DataFrame:
    """For each level of ``factor`` against ``baseline``, at every combination of the other factors and Service:
    the mean paired difference of ``metric`` (level - baseline, paired by replication), its t interval, the paired
    t-test and Cohen's d_z. Units of the metric."""
    import pandas as pd  # here, not at the top: pandas costs ~0.5 s to import, and runs never need it

    ok = frame[frame["status"] == "ok"]
    others = [f for f in factors if f != factor] + ["service"]
    rows = []
    for values, group in ok.groupby(others, sort=False, dropna=False):
        wide = group.pivot_table(index="replication", columns=factor, values=metric, aggfunc="first", sort=False)
        if baseline not in wide.columns:
            continue
        for level in wide.columns:
            if level == baseline:
                continue
            d = paired_difference(wide[level].to_numpy(dtype=float), wide[baseline].to_numpy(dtype=float), confidence)
            rows.append(
                {
                    **dict(zip(others, values, strict=True)),
                    factor: level,
                    "baseline": baseline,
                    "metric": metric,
                    "n": d.n,
                    "difference": d.mean,
                    "low": d.low,
                    "high": d.high,
                    "t": d.statistic,
                    "pvalue": d.pvalue,
                    "cohens_dz": d.cohens_dz,
                }
            )
    columns = [*others, factor, "baseline", "metric", "n", "difference", "low", "high", "t", "pvalue", "cohens_dz"]
    return pd.DataFrame(rows, columns=columns)


PAIRED_METRICS = ("latency_mean_s", "latency_p99_s", "cross_node_fraction")
"""What the sweep report compares between levels of the line factor."""


def paired_difference_table(
    frame: pd.DataFrame,
    factors: Sequence[str],
    factor: str,
    baseline: Any,
    metrics: Sequence[str] = PAIRED_METRICS,
    confidence: float = 0.95,
) -> pd.DataFrame:
    """``paired_differences`` of each of ``metrics``, stacked, with Benjamini-Hochberg q-values (``qvalue``) over
    every comparison in the table: a sweep makes many, and some paired t-tests reject by chance."""
    import pandas as pd  # here, not at the top: pandas costs ~0.5 s to import, and runs never need it

    tables = [paired_differences(frame, factors, factor, baseline, m, confidence) for m in metrics]
    found = [t for t in tables if len(t)]
    table = pd.concat(found, ignore_index=True) if found else tables[0]
    table["qvalue"] = false_discovery(table["pvalue"].to_numpy(dtype=float)) if len(table) else []
    return table


def chi_square_by_design_point(
    records: Sequence[Mapping[str, Any]],
    factors: Sequence[str],
    *,
    alpha: float = 0.01,
    effect_w: float = 0.1,
) -> pd.DataFrame:
    """Per design point and Service, one goodness-of-fit test of fresh picks per endpoint pooled over
    replications against the routing layer's expected shares, with Benjamini-Hochberg q-values across the sweep.

    Picks are independent draws, so pooling requests is sound here (unlike latencies): each run's groups of
    equal expected shares are pooled with the same groups of the other replications and tested as in a run
    (``sim.stats.grouped_gof``: statistics and dof summed over groups). Pickers that are deterministic or choose
    by load get no p-value (NaN). ``reject`` is q < alpha; ``power`` is the chance to detect a skew of Cohen's
    w = ``effect_w`` with the pooled number of requests.
    """
    import pandas as pd  # here, not at the top: pandas costs ~0.5 s to import, and runs never need it

    pooled = _pool_picks(records)
    rows = []
    for (point, name), cell in pooled.items():
        pods = sorted({pod for shares in cell["groups"] for pod, _ in shares})
        index = {pod: i for i, pod in enumerate(pods)}
        groups = []
        for shares, counts in cell["groups"].items():
            if not shares or not any(counts.get(pod, 0) for pod, _ in shares):
                continue
            expected, observed = np.zeros(len(pods)), np.zeros(len(pods))
            for pod, share in shares:
                expected[index[pod]] = share
                observed[index[pod]] = counts.get(pod, 0)
            groups.append((observed, expected))
        test = grouped_gof(groups) if groups else None
        valid = test is not None and test.dof > 0 and not cell["no_pvalue"]
        rows.append(
            {
                "design_point": point,
                **{f: cell["factors"].get(f) for f in factors},
                "service": name,
                "runs": cell["n_runs"],
                "n": test.n if test else 0,
                "dof": test.dof if test else 0,
                "statistic": test.statistic if test else math.nan,
                "pvalue": test.pvalue if valid and test else math.nan,
                "cohens_w": test.cohens_w if test else math.nan,
                "violations": cell["violations"],
                "power": chi_square_power(effect_w, test.n, test.dof, alpha) if valid and test else math.nan,
            }
        )
    table = pd.DataFrame(
        rows,
        columns=[
            "design_point",
            *factors,
            "service",
            "runs",
            "n",
            "dof",
            "statistic",
            "pvalue",
            "cohens_w",
            "violations",
            "power",
        ],
    )
    table["qvalue"] = false_discovery(table["pvalue"].to_numpy(dtype=float))
    table["reject"] = table["qvalue"] < alpha
    return table


def _pool_picks(records: Sequence[Mapping[str, Any]]) -> dict[tuple[int, str], dict[str, Any]]:
    """Per (design point, Service) of the runs that finished: their factors, fresh picks per group of equal
    expected shares summed over replications, violations, runs, and whether any run's picker gets no p-value."""
    pooled: dict[tuple[int, str], dict[str, Any]] = {}
    for rec in records:
        for name, s in record_services(rec).items():
            cell = pooled.setdefault(
                (rec["design_point"], name),
                {"factors": rec["factors"], "groups": {}, "violations": 0, "n_runs": 0, "no_pvalue": False},
            )
            cell["no_pvalue"] |= s.adaptive or s.deterministic
            # a run's groups of equal expected shares, pooled with the same groups of the other replications
            groups = [(g.picked, g.expected_share) for g in s.groups] or [(s.routed_by_endpoint, s.expected_share)]
            for picked, expected_share in groups:
                shares = tuple(sorted((pod, share) for pod, share in expected_share.items() if share > 0))
                counts = cell["groups"].setdefault(shares, {})
                for pod, n in picked.items():
                    counts[pod] = counts.get(pod, 0) + n
            cell["violations"] += s.violations
            cell["n_runs"] += 1
    return pooled
