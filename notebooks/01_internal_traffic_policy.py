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
# # 01 - internalTrafficPolicy, step by step
#
# Cilium's documentation has a small demo: on a three-node kind cluster, a client Pod on `kind-worker` runs
# `curl` in a loop against two Services that look the same. Each one has a backend Pod on `kind-worker` and
# another on `kind-worker2`. The only difference is one field:
#
# * `echo-1` has `internalTrafficPolicy: Cluster` (the default): any ready Pod may answer.
# * `echo-2` has `internalTrafficPolicy: Local`: only a Pod on the **client's own node** may answer.
#
# This notebook runs that demo in the simulator (`experiments/cilium_demo.toml`) instead of on a real
# cluster. Then it asks two questions:
#
# 1. Is the split for `echo-1` really 50/50, or just close? The **chi-square test** answers this, and we go
#    through it one step at a time.
# 2. What does the client see when the local Pod of `echo-2` is gone? The answer depends on which proxy
#    (dataplane) the cluster runs.
#
# Nothing is simulated in this notebook itself. It reads scenario files, calls `sim.simulate`, and draws the
# results.

# %%

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from scipy import stats

from sim import DropReason, Outcome, chi_square_gof, load_scenario, simulate
from sim.experiment.analysis import summarize_service
from sim.experiment.rundoc import describe_cluster
from sim.plots import cluster_graph

# %% tags=["parameters"]
REQUESTS = 2_000  # curls per Service in the demo (the scenario file says 10,000)
SEEDS = 30  # how many times to repeat the demo, to see how the test behaves from run to run
GONE_REQUESTS = 40  # curls per dataplane once the local Pod is gone
ALPHA = 0.01  # the test's significance level (explained below)


# %%
from nbsetup import EXPERIMENTS, ROOT, build, check, save, scenario_table  # noqa: E402, F401 - setup, exercises

# %% [markdown]
# ## 1. The cluster
#
# A kind cluster is three Docker containers, each acting as one Kubernetes node, joined by one Docker
# bridge. The topology file `topologies/kind.toml` describes this as a graph. Each link has a one-way
# latency, drawn at random for every packet around a mean of 50 microseconds. Two Pods on the same node
# talk through a veth pair, which is faster (20 microseconds on average).
#
# We load the scenario and draw its graph. Each node shows the Pods that run on it.

# %%
scenario, seed = load_scenario(EXPERIMENTS / "cilium_demo.toml", {"requests": REQUESTS})

fig, ax = plt.subplots(figsize=(8, 6))
cluster_graph(describe_cluster(scenario), ax)  # sim.plots: nodes with their Pods, links with their mean latency
ax.set_title("The kind cluster of the demo: 3 nodes on one Docker bridge")
save(fig, "01_cluster_graph")
plt.show()

# %% [markdown]
# The scenario also lists the Services and who calls them. Each "stream" is one client calling one Service.
# `closed_loop` means curl in a loop: the next request leaves as soon as the previous reply arrives, and
# every request opens a new TCP connection.

# %%
pd.DataFrame(
    [
        {
            "Service": svc.name,
            "internalTrafficPolicy": str(svc.internal_traffic_policy),
            "selector": dict(svc.selector),
            "backend Pods": [ep.pod for ep in scenario.control_plane.endpoints(svc.name)],
        }
        for svc in scenario.services
    ]
)

# %% [markdown]
# ## 2. Run the demo
#
# `simulate(scenario, seed, "des")` simulates every request and returns a `RunResult`: one row per request (when
# it was sent, which Pod served it, when the reply came back, and so on). `result.to_frame()` shows those rows as a
# table with names: the Service, the Pod and the node that served it, and the outcome. Runs with the same seed
# give exactly the same results.

# %%
result = simulate(scenario, seed, "des")
print(f"{len(result)} requests, simulated time {result.end_s:.2f} s, dataplane {scenario.dataplane.name}")
requests = result.to_frame()
requests[["service", "endpoint", "endpoint_node", "t_sent", "t_returned", "outcome"]].head()

# %% [markdown]
# Counting those rows by Service and node already tells the story that the rest of this notebook tests:

# %%
pd.crosstab(requests["service"], requests["endpoint_node"])

# %% [markdown]
# `summarize_service` turns those rows into counts for one Service. It also reports the **expected share**
# of each endpoint, as computed by the routing layer. Each curl opens a new connection, and Cilium's
# socket-LB picks a backend uniformly at random for each new connection. So for `echo-1` we expect half the
# requests on each Pod. For `echo-2` only the local Pod is allowed, so we expect all of them there.

# %%
summaries = {name: summarize_service(result, name, alpha=ALPHA) for name in ("echo-1", "echo-2")}
for name, s in summaries.items():
    print(f"{name}: sent {s.sent}, completed {s.completed}, replies by node {s.by_node}")
    print(f"   expected share per Pod {s.expected_share}, violations (requests where they may not go) {s.violations}")

# %% [markdown]
# The bars show replies per node. The red line on each bar is the expected count (expected share x
# replies). The grey band is how far a fair 50/50 picker would normally stray: 95% of fair runs of this size
# land inside it. That already hints at what the test below does in a more careful way.

# %%
nodes = ["kind-worker", "kind-worker2"]
fig, axes = plt.subplots(1, 2, figsize=(10, 4.2), sharey=True)
for ax, (name, s) in zip(axes, summaries.items(), strict=True):
    n = s.completed
    observed = np.array([s.by_node.get(node, 0) for node in nodes])
    share = np.array(
        [sum(v for pod, v in s.expected_share.items() if scenario.pod(pod).node == node) for node in nodes]
    )
    ax.bar(nodes, observed, color="tab:blue", alpha=0.8, label="observed replies")
    for i, p in enumerate(share):
        low, high = stats.binom.ppf([0.025, 0.975], n, p)
        ax.fill_between(
            [i - 0.4, i + 0.4],
            low,
            high,
            color="grey",
            alpha=0.35,
            label="95% range of a fair picker" if i == 0 else None,
        )
        ax.hlines(n * p, i - 0.4, i + 0.4, color="crimson", lw=2.5, label="expected count" if i == 0 else None)
        inside = observed[i] > 0.2 * n  # label inside tall bars, above short ones
        ax.text(
            i,
            observed[i] / 2 if inside else observed[i] + 0.03 * n,
            f"{observed[i]}\n({observed[i] / n:.1%})",
            ha="center",
            color="white" if inside else "black",
            fontsize=9,
        )
    policy = scenario.service(name).internal_traffic_policy
    ax.set_title(f"{name} (internalTrafficPolicy: {policy})")
    ax.set_xlabel("node of the Pod that replied")
    ax.set_ylabel("replies (count of requests)")
    ax.set_ylim(0, n * 1.25)
    ax.legend(loc="upper right", fontsize="small")
fig.suptitle(f"Replies per node, client on kind-worker, {n} curls per Service")
fig.tight_layout()
save(fig, "01_replies_per_node")
plt.show()

# %% [markdown]
# `echo-2` answered only from `kind-worker`, as `Local` promises. `echo-1` is close to 50/50 but not
# exactly. Is the gap just luck, or is the picker slightly unfair? This is the question the chi-square
# test answers.
#
# ## 3. The chi-square test, one step at a time
#
# **Observed** counts are what happened. **Expected** counts are what the rule predicts for this many
# requests: the expected share times the total.

# %%
s1 = summaries["echo-1"]
pods = list(s1.routed_by_endpoint)
observed = np.array([s1.routed_by_endpoint[p] for p in pods], dtype=float)
expected = np.array([s1.expected_share[p] for p in pods]) * observed.sum()
pd.DataFrame({"Pod": pods, "observed": observed, "expected": expected, "observed - expected": observed - expected})

# %% [markdown]
# **The statistic** measures how far observed is from expected, in one number. For each Pod we take the gap,
# square it (so that too many and too few both count), and divide by the expected count (a gap of 30 means
# more when 100 were expected than when 10,000 were). Then we add these up:
#
# statistic = sum over Pods of (observed - expected)^2 / expected
#
# **Degrees of freedom (dof)** count how many of the counts are free to vary. Once you know how many
# requests went to one Pod, the other count follows from the total. So two Pods give dof = 1, and in
# general dof = Pods - 1.

# %%
statistic = float(np.sum((observed - expected) ** 2 / expected))
dof = len(pods) - 1
print(f"statistic = {statistic:.3f}, dof = {dof}")

# %% [markdown]
# **The p-value.** Suppose the picker really is fair. Then run after run, the statistic would still bounce
# around, because chance alone makes gaps. Mathematicians worked out how it bounces: it follows the
# *chi-square distribution* with `dof` degrees of freedom. The p-value is the share of those fair runs that
# would give a statistic **at least as large** as ours. A small p-value means "a fair picker rarely looks
# this lopsided", which is a reason to doubt it is fair.
#
# We decide in advance how rare is "too rare". That threshold is the significance level alpha, here 0.01.
# A p-value below alpha means we reject the 50/50 rule.

# %%
pvalue = float(stats.chi2.sf(statistic, dof))
print(f"by hand:        statistic {statistic:.3f}, dof {dof}, p-value {pvalue:.4f}")
test = chi_square_gof(observed, expected / expected.sum())
print(f"sim.stats:      statistic {test.statistic:.3f}, dof {test.dof}, p-value {test.pvalue:.4f}")
print(f"verdict at alpha={ALPHA}: {s1.verdict}")

# %% [markdown]
# We do not have to take the chi-square distribution on trust: we can check it. Below, the demo runs again
# with `SEEDS` different seeds, so each run is a different "parallel universe" of the same fair picker. On
# the left, the histogram of the statistics from those runs sits on the chi-square curve, and our run's
# statistic is marked. The shaded area to its right is the p-value. On the right are the p-values of all
# those runs. When the rule is true, p-values are spread **evenly** between 0 and 1, so about 1 run in 100
# falls below 0.01 even though nothing is wrong.

# %%
repeats = [summarize_service(simulate(scenario, s, "des"), "echo-1", alpha=ALPHA).chi_square for s in range(SEEDS)]
stats_seen = np.array([r.statistic for r in repeats])
pvalues_seen = np.array([r.pvalue for r in repeats])

fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
x = np.linspace(0.02, max(8.0, stats_seen.max() * 1.1), 400)
left.hist(
    stats_seen,
    bins=np.arange(0, x.max() + 0.5, 0.5),
    density=True,
    color="tab:blue",
    alpha=0.5,
    label=f"{SEEDS} simulated fair runs",
)
left.plot(x, stats.chi2.pdf(x, dof), color="black", label=f"chi-square distribution, dof={dof}")
tail = x >= statistic
left.fill_between(x[tail], stats.chi2.pdf(x[tail], dof), color="crimson", alpha=0.4, label=f"p-value = {pvalue:.3f}")
left.axvline(statistic, color="crimson", ls="--", label=f"our statistic = {statistic:.2f}")
left.set_ylim(0, 1.0)
left.set_xlabel("chi-square statistic (dimensionless)")
left.set_ylabel("probability density (1 / statistic unit)")
left.set_title("How big the statistic gets by chance alone")
left.legend(fontsize="small")

right.hist(
    pvalues_seen,
    bins=np.linspace(0, 1, 11),
    color="tab:green",
    alpha=0.7,
    edgecolor="white",
    label=f"p-values of {SEEDS} fair runs",
)
right.axhline(SEEDS / 10, color="black", ls=":", label="flat: what a fair picker gives")
right.axvline(ALPHA, color="crimson", ls="--", label=f"alpha = {ALPHA}")
right.set_xlabel("p-value (probability, 0 to 1)")
right.set_ylabel("number of runs")
right.set_title("p-values are spread evenly when the rule holds")
right.legend(fontsize="small")
fig.suptitle(f"echo-1 (Cluster): chi-square test of {REQUESTS} curls against 50/50")
fig.tight_layout()
save(fig, "01_chi_square_explained")
plt.show()
print(f"{np.sum(pvalues_seen < ALPHA)} of {SEEDS} fair runs had p < {ALPHA}")

# %% [markdown]
# ### What a p-value is NOT
#
# * It is **not** the probability that the picker is fair. A p-value of 0.3 does not mean "30% chance of
#   50/50". It is a statement about the data *assuming* the picker is fair.
# * It is **not** a measure of how unfair the picker is. With a million requests, a split of 50.2/49.8 gives
#   a tiny p-value, yet nobody would care about it. The size of the skew is measured by the **effect size**
#   (Cohen's w, reported as `cohens_w`). Notebook 03 goes into this.
# * A large p-value is **not** proof of a perfect 50/50. It only says that these data do not contradict
#   50/50. With few requests, even a 55/45 picker usually passes (notebook 03 computes how many requests you
#   need to catch it).
# * Crossing alpha is **not** a discovery by itself. If you run 100 tests on a fair picker, about one will
#   fall below 0.01, as the right panel shows.
#
# And `echo-2`? It has a single allowed Pod, so dof = 0 and there is nothing to test. What matters there is
# the `violations` count: requests that went somewhere the policy forbids. It is 0.

# %%
print(f"echo-2: {summaries['echo-2'].verdict}; violations {summaries['echo-2'].violations}")

# %% [markdown]
# ## 4. The local Pod dies
#
# Now take `echo-2`'s Pod on `kind-worker` away. Its Pod on `kind-worker2` is still ready. With
# `internalTrafficPolicy: Local` the client's node has **no local endpoint**. What happens next is not
# decided by Kubernetes but by the proxy that programs the node:
#
# * **kube-proxy, iptables mode** (the most common setup) installs a DROP rule ("has no local endpoints").
#   The connection attempt vanishes. curl waits for its connect timeout (5 s in these files; without one,
#   Linux retries a SYN for about 2 minutes), then fails.
# * **Cilium socket-LB** finds zero backends at `connect()` time and fails at once with "No route to host".
# * **kube-proxy, IPVS mode**, when the Service also has a NodePort, falls back to the cluster endpoints.
#   The request silently crosses to `kind-worker2` and succeeds: Local quietly behaves like Cluster.
#
# The three scenario files are the same except for the dataplane (and the NodePort that IPVS needs).

# %%
gone = {}
for dataplane in ("iptables", "cilium", "ipvs"):
    sc, sd = load_scenario(EXPERIMENTS / f"local_pod_gone_{dataplane}.toml", {"requests": GONE_REQUESTS})
    res = simulate(sc, sd, "des")
    gone[dataplane] = (res, summarize_service(res, "echo-2", alpha=ALPHA))

rows = []
for dataplane, (res, s) in gone.items():
    reasons = "; ".join(DropReason[label.upper()].description for label in s.drops) or "-"
    rows.append(
        {
            "dataplane": dataplane,
            "sent": s.sent,
            "completed": s.completed,
            "failed": s.dropped,
            "served on": ", ".join(s.by_node) or "-",
            "client waited per failure (s)": s.failed_after_s,
            f"time for {s.sent} curls (s)": res.end_s,
            "what happened": reasons,
        }
    )
pd.set_option("display.max_colwidth", 90)
pd.DataFrame(rows)

# %% [markdown]
# The figure shows every request of the three runs. Each dot is one curl: how long the client waited before
# it knew the outcome, coloured by what it learned. The time axis is linear below 1 ms and logarithmic above,
# so "at once" (0 ms), half a millisecond and 5 seconds all fit.

# %%
colors_of = {
    "reply from another node": "tab:orange",
    "failed at once": "tab:purple",
    "failed after connect timeout": "crimson",
}
classified = {}  # dataplane -> {kind of outcome: boolean mask over its requests}
for dataplane, (res, _) in gone.items():
    failed = res.outcome == Outcome.DROPPED
    waits = np.array([DropReason(r).client_waits for r in res.columns["reason"]], dtype=bool)
    classified[dataplane] = {
        "reply from another node": res.outcome == Outcome.OK,
        "failed at once": failed & ~waits,
        "failed after connect timeout": failed & waits,
    }

fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.6), gridspec_kw={"width_ratios": [1, 1.5]})
names = list(gone)
rng = np.random.default_rng(0)  # only to jitter the dots sideways so that they do not hide each other
bottom = np.zeros(len(names))
for kind, color in colors_of.items():
    counts = np.array([classified[d][kind].sum() for d in names])
    left.bar(names, counts, bottom=bottom, color=color, label=kind)
    bottom += counts
    for i, dataplane in enumerate(names):
        mask = classified[dataplane][kind]
        wait_ms = gone[dataplane][0].latency_s[mask] * 1e3
        jitter = rng.uniform(-0.25, 0.25, mask.sum())
        right.scatter(i + jitter, wait_ms, s=12, color=color, alpha=0.7, label=kind if i == 0 else None)
for i, dataplane in enumerate(names):
    res, s = gone[dataplane]
    wait = np.nanmedian(res.latency_s) * 1e3
    right.annotate(
        f"median {wait:,.0f} ms" if wait >= 10 else f"median {wait:.2g} ms",
        (i, wait),
        xytext=(0, 12),
        textcoords="offset points",
        ha="center",
    )
left.set_ylim(0, GONE_REQUESTS * 1.5)
left.set_xlabel("dataplane")
left.set_ylabel("requests (count)")
left.set_title(f"Outcome of {GONE_REQUESTS} curls")
left.legend(fontsize="small", loc="upper left", ncols=1)
right.set_yscale("symlog", linthresh=1.0)
right.set_ylim(-0.1, 1e5)
right.set_xticks(range(len(names)), names)
right.set_xlabel("dataplane")
right.set_ylabel("client wait until outcome (ms, log above 1 ms)")
right.set_title("How long each curl waited")
right.legend(fontsize="small", loc="upper right")
fig.suptitle("echo-2 (internalTrafficPolicy: Local) after its Pod on the client's node is gone")
fig.tight_layout()
save(fig, "01_local_pod_gone")
plt.show()

# %% [markdown]
# ## What we learned
#
# * `Cluster` spreads new connections over every ready Pod. In the demo, replies were close to 50/50, and
#   the chi-square test found no reason to doubt a fair coin per connection.
# * `Local` keeps traffic on the client's node: 100% of replies came from the local Pod, with no
#   violations.
# * The chi-square test compares observed with expected counts. Its p-value is how often a fair picker
#   would look at least this lopsided. It is not the probability that the picker is fair, and not the size
#   of the skew.
# * When the local Pod is gone, `Local` does not fall back on iptables or Cilium. iptables makes clients
#   hang until their connect timeout, and Cilium fails them at once. IPVS with a NodePort silently sends
#   them to another node. If you want "local when possible, elsewhere otherwise", look at
#   `trafficDistribution: PreferSameNode` (notebook 04).
#
# To scale up, raise `REQUESTS`, `SEEDS` and `GONE_REQUESTS` in the parameters cell.

# %% [markdown]
# ## Exercises
#
# Each exercise asks you to **predict** first, then **change** a parameter and run, and a **check** cell says
# whether your prediction holds. Write your prediction into the `PREDICTION_...` variable before you run the
# cell (leave it `None` and the check only asks for one). The answers are folded away under each exercise.
#
# ### Exercise 1: a third backend
#
# **Predict.** Give `echo-1` (`Cluster`) a third ready Pod, on `kind-control-plane`. What share of echo-1's
# replies will come from `kind-worker` now? Write a fraction between 0 and 1 into `PREDICTION_1`.
#
# **Change and run.** `EXTRA_NODE_1` says where the new Pod goes. Run the cell, then the check. Then put the
# Pod on `kind-worker` instead and predict again.

# %%
PREDICTION_1 = None  # your prediction: the share (0 to 1) of echo-1's replies from kind-worker
EXTRA_NODE_1 = "kind-control-plane"  # where echo-1's third Pod runs

table_1 = scenario_table("cilium_demo.toml")
table_1["pods"].append({"name": f"echo-1-extra-{EXTRA_NODE_1}", "node": EXTRA_NODE_1, "labels": {"app": "echo-1"}})
scenario_1, seed_1 = build(table_1, "cilium_demo.toml", {"requests": REQUESTS})
summary_1 = summarize_service(simulate(scenario_1, seed_1, "des"), "echo-1", alpha=ALPHA)
measured_1 = summary_1.by_node.get("kind-worker", 0) / summary_1.completed

# %%
check("Exercise 1", PREDICTION_1, measured_1, within=0.04)

# %% [markdown]
# <details><summary>Answer</summary>
#
# About 1/3. `Cluster` uses every ready endpoint, and iptables picks one uniformly at random per new
# connection, so each of the three Pods gets a third (the check allows 0.04 around the measured share: with
# 2,000 curls the share wobbles by about 0.01). With the extra Pod on `kind-worker`, that node has two of the
# three Pods: 2/3.
#
# </details>
#
# ### Exercise 2: how often does a fair picker fail the test?
#
# **Predict.** Above, `SEEDS` runs of the fair demo each gave a p-value. If the significance level were
# `ALPHA_2 = 0.1`, how many of those runs would you expect to "fail" the test (p < 0.1)? Write a number
# into `PREDICTION_2`.
#
# **Change and run.** Try `ALPHA_2 = 0.1`, then 0.5.

# %%
PREDICTION_2 = None  # your prediction: how many of the SEEDS fair runs have p < ALPHA_2
ALPHA_2 = 0.1  # the significance level to try

expected_2 = SEEDS * ALPHA_2  # what the theory says: p-values of a true rule are uniform on 0..1
print(f"this time {np.sum(pvalues_seen < ALPHA_2)} of {SEEDS} runs had p < {ALPHA_2}")

# %%
check("Exercise 2", PREDICTION_2, expected_2, within=1)

# %% [markdown]
# <details><summary>Answer</summary>
#
# `SEEDS x ALPHA_2`: 3 of 30 at 0.1, 15 of 30 at 0.5. When the rule holds, a p-value is equally likely to
# be anywhere between 0 and 1, so a fraction alpha of fair runs falls below alpha. That is what alpha *is*:
# the false-alarm rate you accept. The count in one set of runs scatters around that number (the line
# printed above the check).
#
# </details>
#
# ### Exercise 3: how long does a client hang?
#
# **Predict.** On iptables, with `echo-2`'s local Pod gone, each curl waits for its connect timeout. If the
# timeout is `CONNECT_TIMEOUT_S_3 = 2` seconds instead of 5, how long (in seconds) does a failed curl wait on
# average? Write it into `PREDICTION_3`.
#
# **Change and run.** Try 2, then 0.5.

# %%
PREDICTION_3 = None  # your prediction: seconds a failed curl waits
CONNECT_TIMEOUT_S_3 = 2.0  # the client's connect timeout (s)

table_3 = scenario_table("local_pod_gone_iptables.toml")
table_3["defaults"]["connect_timeout_s"] = CONNECT_TIMEOUT_S_3
scenario_3, seed_3 = build(table_3, "local_pod_gone_iptables.toml", {"requests": GONE_REQUESTS})
measured_3 = summarize_service(simulate(scenario_3, seed_3, "des"), "echo-2", alpha=ALPHA).failed_after_s

# %%
check("Exercise 3", PREDICTION_3, measured_3, within=0.05, unit=" s")

# %% [markdown]
# <details><summary>Answer</summary>
#
# Exactly the connect timeout: 2 s (then 0.5 s). iptables DROPs the SYN ("has no local endpoints"), so
# nothing ever answers; the client gives up when its own timer runs out. On Cilium the same curl fails at
# once (0 s), and with IPVS and a NodePort it does not fail at all.
#
# </details>
