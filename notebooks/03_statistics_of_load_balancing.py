# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 03 - The statistics of load balancing
#
# Notebook 01 introduced the chi-square test: it compares the requests each Pod received with what the
# routing rule predicts. A p-value answers one question: "could a fair picker have produced counts this
# uneven?". This notebook covers what that question leaves out, and the traps that come with it:
#
# 1. **Power**: how many requests do you need before the test notices a 55/45 split?
# 2. **Effect size vs p-value**: with enough requests, every tiny skew becomes "significant". How big the
#    skew is is a separate question.
# 3. **Too good to be true**: a round-robin picker passes the test *too* well, run after run.
# 4. **Keep-alive**: when requests share connections they are not independent draws, and testing requests
#    instead of connections gives nonsense.
# 5. **Many tests**: a sweep runs hundreds of tests, so some will "fail" by chance. False discovery control
#    takes care of that.

# %%
import tomllib

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from loky import get_reusable_executor
from scipy import stats

import sim
from sim import chi_square_gof, chi_square_power, load_scenario, simulate
from sim.experiment.analysis import summarize_service
from sim.experiment.executors import Processes, Serial
from sim.experiment.spec import resolve
from sim.experiment.sweep import sweep
from sim.experiment.tables import chi_square_by_design_point
from sim.io import parse_experiment, parse_scenario
from sim.scenario import stream_route
from sim.stats import cohens_w, sample_size, skew_sample_size

# %% tags=["parameters"]
ALPHA = 0.05  # significance level used throughout (the CLI's verdict uses 0.01)
MONTE_CARLO = 400  # simulated tests per point when checking the power formula
HUGE_REQUESTS = 100_000  # curls in one big run of the demo
SEEDS = 30  # seeds for the round-robin and keep-alive comparisons
SWEEP_REPLICATIONS = 100  # runs (seeds) of the demo in the many-tests sweep
SWEEP_REQUESTS = 1_000  # curls to echo-1 per run in the many-tests sweep
WORKERS = 1  # 1 runs the sweep in this process (fastest for runs this small); more: local processes


# %%
from nbsetup import EXPERIMENTS, ROOT, check, save  # noqa: E402, F401 - setup, exercises

rng = np.random.default_rng(20260501)  # for the Monte Carlo checks of the formulas (not for the simulator)

# %% [markdown]
# ## 1. How many requests to detect a 55/45 skew?
#
# Suppose a broken picker sends 55% of connections to one Pod and 45% to the other, when it should be 50/50.
# The **effect size** says how far the true shares are from the expected ones, independent of how many
# requests you send. For a chi-square test it is Cohen's w:
#
# w = sqrt( sum over Pods of (true share - expected share)^2 / expected share )
#
# For 55/45 against 50/50, w = 0.1. Cohen's rule of thumb calls 0.1 a small effect, 0.3 medium and 0.5 large.
#
# **Power** is the chance that the test notices a real skew, that is, gives p < alpha. It depends on w, on
# the number of requests n, on dof and on alpha. There is an exact formula: under the skew, the statistic
# follows a *non-central* chi-square distribution (`sim.stats.chi_square_power`). Power is usually asked
# to reach 80%.

# %%
w_55 = cohens_w([0.55, 0.45], [0.5, 0.5])
print(f"Cohen's w of 55/45 against 50/50: {w_55:.3f}")
rows = []
for alpha in (0.05, 0.01):
    for power in (0.8, 0.9, 0.95):
        rows.append(
            {
                "alpha": alpha,
                "power": power,
                "requests needed": skew_sample_size([0.55, 0.45], [0.5, 0.5], alpha=alpha, power=power),
            }
        )
pd.DataFrame(rows).pivot(index="power", columns="alpha", values="requests needed")

# %% [markdown]
# The curves show the power formula for three skews. The dots check it by brute force: for some values of n,
# we draw `MONTE_CARLO` sets of n connections from a 55/45 coin, test each set, and count how often the test
# rejects 50/50.

# %%
ns = np.unique(np.logspace(1.5, 4.5, 120).astype(int))
skews = {"52/48": 0.52, "55/45": 0.55, "60/40": 0.60}
fig, ax = plt.subplots(figsize=(8.5, 5))
for i, (label, p) in enumerate(skews.items()):
    w = cohens_w([p, 1 - p], [0.5, 0.5])
    ax.plot(ns, [chi_square_power(w, int(n), 1, ALPHA) for n in ns], color=f"C{i}", label=f"{label} (w = {w:.2f})")
    needed = sample_size(w, 1, alpha=ALPHA, power=0.8)
    ax.axvline(needed, color=f"C{i}", ls=":", lw=1)
    ax.annotate(
        f"80% at n = {needed}",
        (needed, 0.05 + 0.08 * i),
        xytext=(3, 0),
        textcoords="offset points",
        color=f"C{i}",
        fontsize="small",
    )
check_ns = np.array([100, 300, 785, 1500, 3000])
heads = rng.binomial(check_ns[:, None], 0.55, size=(check_ns.size, MONTE_CARLO))
observed = np.stack([heads, check_ns[:, None] - heads], axis=-1)
pvalues = stats.chisquare(observed, axis=-1).pvalue
ax.errorbar(
    check_ns,
    (pvalues < ALPHA).mean(axis=1),
    yerr=1.96 * np.sqrt((pvalues < ALPHA).mean(axis=1) * (1 - (pvalues < ALPHA).mean(axis=1)) / MONTE_CARLO),
    fmt="o",
    color="C1",
    capsize=3,
    label=f"55/45, Monte Carlo ({MONTE_CARLO} tests per dot, 95% CI)",
)
ax.axhline(0.8, color="grey", ls="--", lw=1, label="80% power")
ax.set_xscale("log")
ax.set_ylim(0, 1.02)
ax.set_xlabel("requests (new connections) tested, n (log scale)")
ax.set_ylabel("power: probability that p < alpha")
ax.set_title(f"Power of the chi-square test to detect a skew from 50/50 (dof 1, alpha = {ALPHA})")
ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0))
ax.grid(alpha=0.3, which="both")
save(fig, "03_power_curve")
plt.show()

# %% [markdown]
# (At small n the dots sit a little off the curve: the formula is an approximation for large counts.)
#
# Reading the figure: with 200 requests, a 55/45 picker passes the test most of the time, so "the test
# found nothing" says very little. You need about 785 requests for an 80% chance to catch it (at alpha =
# 0.05). A 52/48 skew needs about 5,000. Halving w quadruples the number of requests needed: n grows as
# 1 / w^2.
#
# ## 2. Effect size vs p-value at huge N
#
# The flip side: with enough requests **every** real difference, however small, gets a tiny p-value. Below
# are two pickers, a fair one and one that is off by half a percent (50.5/49.5, w = 0.01). For each n, we
# draw 50 runs of n connections from each and look at the median p-value and the median measured w.

# %%
huge_ns = np.logspace(2, 7, 11).astype(int)
pickers = {"fair 50/50": 0.5, "50.5/49.5 (w = 0.01)": 0.505}
summary = {}
for label, p in pickers.items():
    heads = rng.binomial(huge_ns[:, None], p, size=(huge_ns.size, 50))
    observed = np.stack([heads, huge_ns[:, None] - heads], axis=-1).astype(float)
    test = stats.chisquare(observed, axis=-1)
    summary[label] = (np.median(test.pvalue, axis=1), np.median(np.sqrt(test.statistic / huge_ns[:, None]), axis=1))

# %% [markdown]
# The simulator's own fair picker, for comparison: one large run of the demo (`HUGE_REQUESTS` curls to
# `echo-1`).

# %%
demo_path = EXPERIMENTS / "cilium_demo.toml"
with demo_path.open("rb") as f:
    demo_table = tomllib.load(f)


def demo_variant(requests: int, *changes: tuple[str, object]) -> sim.Scenario:
    """The demo scenario with echo-1 sent ``requests`` curls (echo-2 only a few), after setting each (dotted
    path, value) in ``changes`` on its table, as a sweep's factors would."""
    table, _ = resolve(demo_table, [("streams.0.requests", requests), ("streams.1.requests", 10), *changes])
    return parse_scenario(table, demo_path)[0]


scenario = demo_variant(HUGE_REQUESTS)
big = summarize_service(simulate(scenario, 1, "des"), "echo-1")
big_test = big.chi_square
print(f"{big_test.n} curls: split {big.routed_by_endpoint}, p = {big_test.pvalue:.3f}, w = {big_test.cohens_w:.4f}")

fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.6))
for i, (label, (p_med, w_med)) in enumerate(summary.items()):
    left.plot(huge_ns, p_med, marker="o", color=f"C{i}", label=label)
    right.plot(huge_ns, w_med, marker="o", color=f"C{i}", label=label)
for ax, value in ((left, big_test.pvalue), (right, big_test.cohens_w)):
    ax.scatter([big_test.n], [value], marker="*", s=200, color="black", zorder=3, label="the simulator's demo run")
left.axhline(ALPHA, color="crimson", ls="--", label=f"alpha = {ALPHA}")
left.set_yscale("log")
left.set_ylim(1e-12, 2)
left.set_title("The p-value shrinks with n when any skew exists")
left.set_ylabel("median p-value (probability, log scale)")
right.axhline(0.1, color="grey", ls=":", label="w = 0.1: Cohen's 'small'")
right.set_yscale("log")
right.set_title("The effect size w does not: it estimates the skew")
right.set_ylabel("median measured Cohen's w (dimensionless, log scale)")
for ax in (left, right):
    ax.set_xscale("log")
    ax.set_xlabel("requests (new connections) tested, n (log scale)")
    ax.legend(fontsize="small")
    ax.grid(alpha=0.3, which="both")
fig.suptitle("A half-percent skew is 'significant' at a million requests, and still irrelevant")
fig.tight_layout()
save(fig, "03_effect_size_vs_pvalue")
plt.show()

# %% [markdown]
# * For the skewed picker, the p-value collapses once n passes about 100,000, while w stays at 0.01. The
#   skew did not grow; the test just got better at seeing it.
# * For a fair picker, p-values stay spread between 0 and 1 (median about 0.5) at any n. The measured w
#   shrinks like 1 / sqrt(n) towards its true value, 0.
#
# So report both. The p-value says whether the data can tell the shares apart from the rule. The effect
# size (or simply the observed shares) says whether the difference matters.
#
# A real example: Cilium's Maglev hashing gives each backend a share of a lookup table of 16,381 slots.
# Those shares cannot all be exactly 1/5. How many connections would reveal the imbalance?

# %%
maglev, _ = load_scenario(EXPERIMENTS / "maglev_remap.toml")
endpoints = maglev.control_plane.endpoints("web")
table_shares = stream_route(maglev, maglev.streams[0], "kind-worker").picker.shares(endpoints)
uniform = np.full(len(endpoints), 1 / len(endpoints))
print("Maglev table shares:", dict(zip([ep.pod for ep in endpoints], table_shares.round(5), strict=True)))
print(f"Cohen's w against exactly 1/5 each: {cohens_w(table_shares, uniform):.6f}")
print(f"connections for 80% power: {skew_sample_size(table_shares, uniform):,}")

# %% [markdown]
# About 800 million connections to detect an imbalance of five thousandths of a percent. Significant, maybe;
# relevant, never.
#
# ## 3. Round-robin looks "too good"
#
# IPVS (kube-proxy's `ipvs` mode) defaults to the `rr` scheduler: **deterministic rotation**, not a random
# choice. With two Pods and curl in a loop, the connections alternate A, B, A, B... and the counts come out
# exactly equal. We rerun the demo with the dataplane switched to IPVS round-robin (`demo_variant` above sets
# the field through `resolve` from `sim.experiment.spec`, the way a sweep's factors do). Then we compare
# p-values over many seeds with those of iptables' random picker.

# %%
variants = {
    "iptables (random)": "iptables",
    "IPVS (round-robin)": {"name": "ipvs", "picker": "round-robin"},
}
pvalues_by = {}
for label, dataplane in variants.items():
    variant = demo_variant(1_000, ("dataplane", dataplane))
    tests = [summarize_service(simulate(variant, s, "des"), "echo-1").chi_square for s in range(SEEDS)]
    pvalues_by[label] = np.array([t.pvalue for t in tests])
    print(f"{label}: first run statistic {tests[0].statistic:.3f}; p-values {np.round(pvalues_by[label][:6], 3)} ...")

fig, ax = plt.subplots(figsize=(8, 4.4))
bins = np.linspace(0, 1, 21)
for i, (label, p) in enumerate(pvalues_by.items()):
    ax.hist(p, bins=bins, alpha=0.6, color=f"C{i}", edgecolor="white", label=f"{label}, {SEEDS} seeds")
ax.axhline(SEEDS / (len(bins) - 1), color="black", ls=":", label="flat: what independent random draws give")
ax.set_xlabel("p-value of the chi-square test against 50/50 (probability)")
ax.set_ylabel("number of runs")
ax.set_title("Round-robin gives p = 1 every time: too good to be random")
ax.legend(fontsize="small", loc="upper center")
save(fig, "03_round_robin_too_good")
plt.show()

# %% [markdown]
# The chi-square test assumes each connection is an **independent** random draw. Then the counts should
# wobble, and p-values spread evenly between 0 and 1. Round-robin does not wobble at all: statistic 0,
# p-value 1, run after run. A p-value near 1 *repeated over seeds* is itself a sign that something is not
# random (the same reasoning once exposed data in Mendel's pea experiments that were too good to be true).
# The balance is real and good for load, but the test's assumption is broken, so its p-value means nothing.
# `summarize_service` knows which pickers are deterministic and says so instead of giving a verdict:

# %%
print(summarize_service(simulate(variant, 0, "des"), "echo-1").verdict)

# %% [markdown]
# ## 4. Keep-alive: count connections, not requests
#
# `experiments/keepalive_skew.toml`: one client sends 2,000 requests to each of two Services with the same two
# Pods, over iptables' random picker.
#
# * `echo-curl` opens a new connection for each request: 2,000 independent draws.
# * `echo-pool` is an HTTP client that keeps each connection open for 500 requests: only **4** draws. Every
#   request on a connection goes to the same Pod.
#
# The per-request split of `echo-pool` therefore moves in steps of 25%: 4 connections are 4 coin flips.

# %%
keepalive, _ = load_scenario(EXPERIMENTS / "keepalive_skew.toml")
rows = []
for s in range(SEEDS):
    result = simulate(keepalive, s, "des")
    for name in ("echo-curl", "echo-pool"):
        summary_ = summarize_service(result, name)
        requests = np.array([summary_.by_endpoint.get(p, 0) for p in ("echo-kind-worker", "echo-kind-worker2")])
        picks = np.array([summary_.routed_by_endpoint.get(p, 0) for p in ("echo-kind-worker", "echo-kind-worker2")])
        rows.append(
            {
                "seed": s,
                "Service": name,
                "share of requests on echo-kind-worker": requests[0] / requests.sum(),
                "connections": picks.sum(),
                "p, requests (chi-square)": chi_square_gof(requests, [0.5, 0.5]).pvalue,
                "p, connections (chi-square)": summary_.chi_square.pvalue,
                "p, connections (exact binomial)": stats.binomtest(int(picks[0]), int(picks.sum()), 0.5).pvalue,
            }
        )
keepalive_runs = pd.DataFrame(rows)
pvalue_columns = [c for c in keepalive_runs if c.startswith("p, ")]
print(f"share of the {SEEDS} runs where each test rejects 50/50 at alpha = {ALPHA}:")
(keepalive_runs.groupby("Service")[pvalue_columns].agg(lambda p: np.mean(p < ALPHA))).round(2)

# %%
fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.6))
bins = np.linspace(-0.025, 1.025, 22) * 100
for i, name in enumerate(("echo-curl", "echo-pool")):
    share = keepalive_runs.loc[keepalive_runs["Service"] == name, "share of requests on echo-kind-worker"]
    left.hist(share * 100, bins=bins, alpha=0.7, color=f"C{i}", label=f"{name}, {SEEDS} seeds")
expected_runs = stats.binom.pmf(np.arange(5), 4, 0.5) * SEEDS
left.hlines(
    expected_runs,
    np.arange(5) * 25 - 2.5,
    np.arange(5) * 25 + 2.5,
    color="crimson",
    lw=2.5,
    label="expected for 4 coin flips (echo-pool)",
)
left.set_xlabel("share of the run's requests served by echo-kind-worker (%)")
left.set_ylabel("number of runs")
left.set_title("Per-request split: curl vs a keep-alive pool")
left.legend(fontsize="small")

pool = keepalive_runs[keepalive_runs["Service"] == "echo-pool"]
curl = keepalive_runs[keepalive_runs["Service"] == "echo-curl"]
columns = {
    "echo-curl\nrequests = connections\n(chi-square)": (curl["p, requests (chi-square)"], "C0"),
    "echo-pool\nrequests: wrong unit\n(chi-square)": (pool["p, requests (chi-square)"], "crimson"),
    "echo-pool\nconnections: right unit\n(exact binomial)": (pool["p, connections (exact binomial)"], "C1"),
}
floor = 1e-12  # p-values below this (down to 1e-300 and less) are drawn on the floor line
for i, (p, color) in enumerate(columns.values()):
    jitter = rng.uniform(-0.2, 0.2, len(p))
    right.scatter(i + jitter, np.clip(p, floor, None), s=14, alpha=0.7, color=color)
right.axhline(ALPHA, color="crimson", ls="--", label=f"alpha = {ALPHA}")
right.axhline(floor, color="grey", ls=":", label=f"floor: p < {floor:g} drawn here")
right.set_yscale("log")
right.set_ylim(floor / 10, 3)
right.set_xticks(range(len(columns)), list(columns), fontsize="small")
right.set_xlabel("what the test counts, and which test")
right.set_ylabel("p-value (probability, log scale)")
right.set_title("Testing requests from a pool 'rejects' a fair picker")
right.legend(fontsize="small", loc="center right")
fig.suptitle("keepalive_skew: 2,000 requests, a new connection each (curl) or 500 per connection (pool)")
fig.tight_layout()
save(fig, "03_keepalive_skew")
plt.show()

# %% [markdown]
# Testing the pool's 2,000 requests as if they were 2,000 independent draws gives absurdly small p-values
# whenever the 4 coin flips were not 2-2, which happens 10 times in 16. It "proves" a skew in a picker
# that is perfectly fair. The unit of the test must be the unit of the random choice: the **connection**.
# `summarize_service` does this: its chi-square counts only fresh picks (`picks.fresh`), and it reports
# requests per endpoint next to them.
#
# With only 4 connections there is a second catch. The chi-square p-value is an approximation that needs
# about 5 or more expected per Pod. With 2 expected per Pod, a 4-0 split gets p = 0.046, although a fair coin
# gives 4-0 or 0-4 one time in 8. The verdict warns about it, and an **exact** binomial test
# (`scipy.stats.binomtest`) gives the right answer, p = 0.125. Either way, 4 draws can reveal almost nothing
# about the picker.
#
# The load imbalance (1,500 vs 500 requests on one Pod in some runs) is real, and it matters for capacity.
# But it comes from having too few connections, not from a biased picker.

# %%
lopsided = pool.loc[pool["share of requests on echo-kind-worker"].isin([0.0, 1.0]), "seed"]
example = int(lopsided.iloc[0]) if len(lopsided) else 0  # a run whose 4 connections all went to one Pod
example_summary = summarize_service(simulate(keepalive, example, "des"), "echo-pool")
print(f"seed {example}: connections per Pod {example_summary.routed_by_endpoint}")
print(f"requests per Pod {example_summary.by_endpoint}")
print(f"verdict: {example_summary.verdict}")
print(f"exact binomial p-value: {stats.binomtest(4, 4, 0.5).pvalue:.3f}")

# %% [markdown]
# ## 5. Many tests in a sweep: false discovery control
#
# A sweep runs one test per run and Service. With alpha = 0.05, each test on a fair picker has a 5% chance to
# "reject". Over 100 tests, about 5 false alarms are expected even when nothing is wrong.
#
# Here is a small sweep, built in Python: the demo scenario run with `SWEEP_REPLICATIONS` different seeds.
# `parse_experiment` takes the same table as an experiment TOML file would hold. The path is used to find
# files relative to it and to name the spec in error messages. Its third argument sets fields of the base
# scenario (here: fewer requests). A sweep with factors works the same way. One caveat: its design points
# share random numbers replication by replication (common random numbers, notebook 02), so their tests are
# not independent of each other. Benjamini-Hochberg below still holds for such positively related tests.

# %%
spec = {
    "experiment": {
        "name": "demo-replications",
        "scenario": "cilium_demo.toml",
        "replications": SWEEP_REPLICATIONS,
        "root_seed": 7,
    },
}
experiment = parse_experiment(
    spec, EXPERIMENTS / "notebook_demo_sweep.toml", {"streams.0.requests": SWEEP_REQUESTS, "streams.1.requests": 10}
)
executor = Processes(WORKERS) if WORKERS > 1 else Serial()
swept = sweep(experiment, executor=executor, progress=False)
tests = swept.summary[swept.summary["chi_square_dof"] > 0]  # echo-2 (Local) has one Pod: nothing to test
p = tests["chi_square_pvalue"].to_numpy(dtype=float)
q = stats.false_discovery_control(p, method="bh")
print(f"{swept.report()}; {len(p)} tests of echo-1 against 50/50")
print(f"raw p < {ALPHA}: {np.sum(p < ALPHA)} 'discoveries' (about {ALPHA * len(p):.1f} expected by chance alone)")
print(f"Benjamini-Hochberg q < {ALPHA}: {np.sum(q < ALPHA)} discoveries")

# %% [markdown]
# **Benjamini-Hochberg** sorts the m p-values from smallest to largest and compares the k-th smallest with
# k x alpha / m instead of alpha. It finds the largest k whose p-value is under its line and declares the
# k smallest tests discoveries. This keeps the expected share of false discoveries *among the discoveries*
# at or below alpha (the false discovery rate). The adjusted p-values it returns are called q-values
# (`scipy.stats.false_discovery_control`; `sim.stats.false_discovery` wraps it). A real
# skew, with p-values like 1e-6, would still pass: the line rises with k, and only the luck-sized p-values
# fall away.

# %%
order = np.argsort(p)
k = np.arange(1, len(p) + 1)
fig, ax = plt.subplots(figsize=(8.5, 5))
ax.plot(k, p[order], "o", ms=4, color="C0", label="sorted p-values of the sweep's tests")
ax.plot(k, ALPHA * k / len(p), color="C2", label="Benjamini-Hochberg line: k x alpha / m")
ax.axhline(ALPHA, color="crimson", ls="--", label=f"no correction: alpha = {ALPHA}")
ax.set_xscale("log")
ax.set_yscale("log")
ax.set_xlabel(f"rank k of the p-value (1 = smallest; m = {len(p)} tests, log scale)")
ax.set_ylabel("p-value (probability, log scale)")
ax.set_title(f"{len(p)} tests of fair pickers: {np.sum(p < ALPHA)} false alarms raw, {np.sum(q < ALPHA)} after BH")
ax.legend(fontsize="small", loc="lower right")
ax.grid(alpha=0.3, which="both")
save(fig, "03_false_discovery")
plt.show()

# %% [markdown]
# Picks are independent draws, so a sweep can also pool each design point's replications into one bigger
# test per design point (here there is one design point). `chi_square_by_design_point` does that and adds
# BH q-values across the sweep. It also reports the power to detect a small skew (w = 0.1) with the pooled
# requests, so a "no rejection" can be read for what it is worth.

# %%
chi_square_by_design_point(swept.records, experiment.factor_names, alpha=ALPHA)[
    ["service", "runs", "n", "dof", "statistic", "pvalue", "cohens_w", "power", "qvalue", "reject"]
]

# %% [markdown]
# ## Summary
#
# * Before trusting "the test found nothing", check the **power**: 55/45 needs about 800 connections to be
#   caught reliably, 52/48 about 5,000.
# * A tiny p-value at huge n can come from a skew too small to matter. Report the **effect size** (or the
#   observed shares) beside the p-value.
# * p-values that sit near 1 run after run mean the draws are not independent random choices, as with
#   round-robin. The test's assumptions do not hold.
# * Test the unit that is actually drawn at random: **connections**, not requests, when clients keep
#   connections alive.
# * When a sweep runs many tests, control the **false discovery rate** (Benjamini-Hochberg) rather than
#   reading each p-value alone.

# %% [markdown]
# ## Exercises
#
# Predict first, then change the parameter and run; the check cell says whether your prediction holds (leave
# `PREDICTION_...` as `None` and it only asks for one). The answers are folded away under each exercise.
#
# ### Exercise 1: a bigger skew is cheaper to catch
#
# **Predict.** 55/45 needs about 800 connections for 80% power at alpha = 0.05. How many does a 60/40 picker
# need? Write a number into `PREDICTION_1`.
#
# **Change and run.** `SKEW_1` is the broken picker's share for the first Pod. The cell computes the exact
# number and checks it by brute force: `MONTE_CARLO` sets of that many draws, tested one by one.

# %%
PREDICTION_1 = None  # your prediction: connections needed for 80% power
SKEW_1 = 0.60  # the first Pod's true share (the rule says 0.5)

measured_1 = skew_sample_size([SKEW_1, 1 - SKEW_1], [0.5, 0.5], alpha=ALPHA, power=0.8)
draws_1 = np.random.default_rng(1).binomial(measured_1, SKEW_1, size=MONTE_CARLO)
rejected_1 = [chi_square_gof([k, measured_1 - k], [measured_1 / 2] * 2).pvalue < ALPHA for k in draws_1]
print(f"brute force at n = {measured_1}: the test caught the skew in {np.mean(rejected_1):.0%} of {MONTE_CARLO} sets")

# %%
check("Exercise 1", PREDICTION_1, measured_1, within=0.15 * measured_1, unit=" connections")

# %% [markdown]
# <details><summary>Answer</summary>
#
# About 200 (the check accepts 15% either way). Cohen's w doubles from 0.1 to 0.2, and the number of draws
# needed goes with 1 / w^2: a quarter of 800. Half the skew needs four times the data, which is why small
# skews hide so well.
#
# </details>
#
# ### Exercise 2: many fair tests, corrected
#
# **Predict.** The sweep above ran `SWEEP_REPLICATIONS` tests of a fair picker. At `ALPHA_2 = 0.1`, how many
# of them will Benjamini-Hochberg call discoveries (q < 0.1)? Write a number into `PREDICTION_2`.
#
# **Change and run.** Try 0.1, then 0.2. The cell also prints the uncorrected count.

# %%
PREDICTION_2 = None  # your prediction: number of BH discoveries among the fair tests
ALPHA_2 = 0.1  # the false discovery rate to control

measured_2 = int(np.sum(stats.false_discovery_control(p, method="bh") < ALPHA_2))
print(f"uncorrected: {np.sum(p < ALPHA_2)} of {len(p)} tests have p < {ALPHA_2}")

# %%
check("Exercise 2", PREDICTION_2, measured_2)

# %% [markdown]
# <details><summary>Answer</summary>
#
# Almost always 0. Every test here is of a fair picker, so every "discovery" would be false; when all the
# nulls are true, Benjamini-Hochberg keeps the chance of even one discovery at or below alpha. The
# uncorrected count, by contrast, is about `ALPHA_2 x SWEEP_REPLICATIONS` (10 at 0.1).
#
# </details>
#
# ### Exercise 3: round-robin over three Pods
#
# **Predict.** With IPVS round-robin and a third `echo-1` Pod, 999 curls rotate A, B, C, A, B, C... What
# chi-square statistic does the test of echo-1 against the expected 1/3 each give? Write it into
# `PREDICTION_3`.
#
# **Change and run.** `CURLS_3` is the number of curls. Try 999, then 1000.

# %%
PREDICTION_3 = None  # your prediction: the chi-square statistic
CURLS_3 = 999  # curls to echo-1

third = {"name": "echo-1-kind-control-plane", "node": "kind-control-plane", "labels": {"app": "echo-1"}}
variant_3 = demo_variant(
    CURLS_3, ("dataplane", {"name": "ipvs", "picker": "round-robin"}), ("pods", [*demo_table["pods"], third])
)
measured_3 = summarize_service(simulate(variant_3, 0, "des"), "echo-1").chi_square.statistic

# %%
check("Exercise 3", PREDICTION_3, measured_3, within=0.01)

# %% [markdown]
# <details><summary>Answer</summary>
#
# 0: 333 each, exactly what is expected, so the statistic is 0 and the p-value 1. With 1000 curls one Pod
# gets 334: (334 - 333.3)^2 / 333.3 + 2 x (333 - 333.3)^2 / 333.3 = 0.002. A random picker would give about
# dof = 2 on average; a statistic stuck near 0 run after run is the "too good" sign of section 3.
#
# </details>

# %%
if isinstance(executor, Processes):  # the sweep's worker processes wait for another sweep; this one is done
    get_reusable_executor(max_workers=executor.workers).shutdown(wait=True)
