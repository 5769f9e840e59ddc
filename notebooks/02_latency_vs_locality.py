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
# # 02 - Latency vs locality: when does keeping traffic local pay?
#
# `internalTrafficPolicy: Local` keeps every request on the client's own node. This saves a network trip, and
# it can seem like a free win. But it also means that each backend Pod serves only the clients on its node.
# If clients are not spread evenly (five client Pods land on one node, a common sight), one backend gets most
# of the work. Requests then wait in its queue, and waiting can cost far more than the hop that was saved.
# `Cluster` spends hops to spread the load.
#
# This notebook measures that trade-off in two steps:
#
# 1. One scenario (`experiments/skewed_clients.toml`): 4 of 5 clients on one node, where does the time go?
# 2. A sweep (`experiments/latency_locality_tradeoff.toml`): four routing policies x four client skews x three
#    load levels on a 3-zone cluster, each run several times. We draw the trade-off with confidence intervals
#    and work out when each policy wins.

# %%
import dataclasses

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from IPython.display import display
from loky import get_reusable_executor

from sim import Outcome, load_scenario, simulate
from sim.experiment.analysis import summarize_service
from sim.experiment.executors import Processes, Serial
from sim.experiment.shares import route_shares
from sim.experiment.sweep import sweep
from sim.experiment.tables import design_point_summary, paired_differences
from sim.io import load_experiment
from sim.plots import sweep_figures

# %% tags=["parameters"]
SKEWED_REQUESTS = 4_000  # requests per client stream in the skewed_clients scenario
SWEEP_DURATION_S = 2.5  # simulated seconds per sweep run (the spec file says 20)
REPLICATIONS = 4  # runs per design point (the spec file says 10)
WORKERS = 2  # local processes for the sweep; 1 runs it in this process


# %%
from nbsetup import EXPERIMENTS, ROOT, build, check, save, scenario_table  # noqa: E402, F401 - setup, exercises

# %% [markdown]
# ## 1. Skewed clients on the kind cluster
#
# Five client Pods call two Services at 22 requests/s each. Four of the clients run on `kind-worker` and one
# on `kind-worker2`. Each Service has one backend Pod per worker node. Each backend handles one request at
# a time, and a request takes 10 ms on average (exponentially distributed). So each backend can serve at most
# 100 requests/s.
#
# * `echo-cluster` (Cluster) spreads the 110 requests/s evenly: 55 per Pod, so each Pod is busy 55% of the
#   time.
# * `echo-local` (Local) keeps requests on the client's node: the `kind-worker` Pod gets 88 requests/s (busy
#   88% of the time) and the other gets 22.
#
# The scenario discards the first 10 simulated seconds (`warmup_s`), while the queues fill up from empty.

# %%
scenario, seed = load_scenario(EXPERIMENTS / "skewed_clients.toml", {"requests": SKEWED_REQUESTS})
result = simulate(scenario, seed, "des")
services = ("echo-cluster", "echo-local")
summaries = {name: summarize_service(result, name) for name in services}
pd.DataFrame(
    {
        name: {
            "completed": s.completed,
            "served on another node (%)": 100 * s.cross_node_fraction,
            "mean latency (ms)": 1e3 * s.latency_s.mean,
            "median latency (ms)": 1e3 * s.latency_s.p50,
            "p99 latency (ms)": 1e3 * s.latency_s.p99,
        }
        for name, s in summaries.items()
    }
).round(2)

# %% [markdown]
# Where does the time go? `latency_parts_s` splits each completed request's mean latency into its steps:
# the trip to the backend, waiting in its queue, being served, and the trip back. Utilisation is the share of
# time a backend's worker was busy. Next to the measured values, the bars show what the routing rules
# predict: each stream's rate times the share of its requests each Pod should get (from the routing layer,
# `route_shares`), times the mean service time.

# %%
offered = np.zeros(len(result.pod_names))
for k, stream in enumerate(scenario.streams):
    node = result.node_names.index(scenario.pod(stream.client).node)
    shares, _ = route_shares(result, k, node, 0)
    offered += stream.workload.rate_rps * shares
mean_service_s = np.array([scenario.pod(p).service_time.mean_s / scenario.pod(p).concurrency for p in result.pod_names])
predicted_utilisation = dict(zip(result.pod_names, offered * mean_service_s, strict=True))

fig, axes = plt.subplots(1, 3, figsize=(15, 4.4))
ax = axes[0]
backends = [p for s in summaries.values() for p in s.pods]
measured = [summaries[svc].pods[p].utilization for svc in services for p in summaries[svc].pods]
ax.bar(
    range(len(backends)),
    np.array(measured) * 100,
    color=["tab:blue", "tab:blue", "tab:orange", "tab:orange"],
    label="measured",
)
predicted = np.array([predicted_utilisation[p] * 100 for p in backends])
xs = np.arange(len(backends))
ax.hlines(predicted, xs - 0.4, xs + 0.4, color="crimson", lw=2.5, zorder=3, label="predicted from the routing rules")
ax.axhline(100, color="black", lw=1, ls="--", label="capacity (always busy)")
ax.set_xticks(range(len(backends)), [p.replace("-kind-", "\nkind-") for p in backends], fontsize="small")
ax.set_ylim(0, 135)
ax.set_xlabel("backend Pod (Service / node)")
ax.set_ylabel("utilisation (% of time busy)")
ax.set_title("How busy each backend is")
ax.legend(fontsize="small", loc="upper left")

ax = axes[1]
parts = {
    "network_out": "trip out",
    "queue_wait": "waiting in queue",
    "service": "being served",
    "network_back": "trip back",
}
left = np.zeros(len(services))
for (key, label), color in zip(parts.items(), ["tab:gray", "crimson", "tab:green", "silver"], strict=True):
    widths = np.array([getattr(summaries[s].latency_parts_s, key) * 1e3 for s in services])
    ax.barh(services, widths, left=left, color=color, label=label)
    left += widths
for i, name in enumerate(services):
    trips_ms = 1e3 * (summaries[name].latency_parts_s.network_out + summaries[name].latency_parts_s.network_back)
    ax.annotate(
        f"network trips: {trips_ms:.2f} ms",
        (left[i], i),
        xytext=(4, 0),
        textcoords="offset points",
        va="center",
        fontsize="small",
    )
ax.set_xlim(0, left.max() * 1.45)
ax.set_xlabel("mean latency (ms), split into its steps")
ax.set_ylabel("Service")
ax.set_ylim(-0.6, 2.1)
ax.set_title("Where a request's time goes")
ax.legend(fontsize="small", loc="upper center", ncols=2)

ax = axes[2]
ok = result.outcome == Outcome.OK
after_warmup = result.columns["t_sent"] >= scenario.warmup_s
for name, color in zip(services, ["tab:blue", "tab:orange"], strict=True):
    mine = ok & after_warmup & (result.columns["service"] == result.service_names.index(name))
    latency_ms = np.sort(result.latency_s[mine]) * 1e3
    ax.plot(latency_ms, np.arange(1, latency_ms.size + 1) / latency_ms.size, color=color, label=name)
    p99 = summaries[name].latency_s.p99 * 1e3
    ax.axvline(p99, color=color, ls=":", label=f"{name} p99 = {p99:.0f} ms")
ax.axhline(0.99, color="grey", lw=0.8)
ax.set_xscale("log")
ax.set_xlabel("latency (ms, log scale)")
ax.set_ylabel("fraction of requests at or below")
ax.set_title("Latency distribution (ECDF)")
ax.legend(fontsize="small", loc="upper left")
fig.suptitle("skewed_clients: 4 of 5 clients on kind-worker, 110 requests/s per Service")
fig.tight_layout()
save(fig, "02_skewed_clients")
plt.show()

# %% [markdown]
# Local saves about 0.1 ms of network per request (two trips across the Docker bridge). But its busy
# backend makes requests wait several times longer than that: the red part of its bar. Queueing theory
# says the same. For one worker with random arrivals (an M/M/1 queue), the p99 is about ln(100) / (capacity -
# arrival rate). That is 4.6 / (100 - 88) = 0.38 s for Local's busy Pod against 4.6 / (100 - 55) = 0.10 s under
# Cluster. Those are the orders of magnitude we see (the theory value is for the busy Pod alone; Local's
# overall p99 also includes the quiet Pod).
#
# ## 2. The sweep: policies x skew x load
#
# On the 3-zone cluster (`topologies/multizone.toml`), a trip to another node of the same zone costs about
# 0.1 ms, but a trip to another zone costs about 1.1 ms. Service `api` has one backend on every node (a
# DaemonSet), with one worker and a 1 ms mean service time. Six client Pods send Poisson streams of equal
# rate. The experiment file varies three **factors**:
#
# * `policy`: Cluster, Local, PreferSameZone, PreferSameNode (the last two through `trafficDistribution`);
# * `hot_node_share`: the share of client Pods on one node, from even (1/3) to 5/6;
# * `load_rps`: the total request rate, 360, 720 or 1080 per second.
#
# Each combination is a **design point** (48 of them). Each is run `REPLICATIONS` times with different
# seeds. Replication r of every design point uses the same seed, so all policies see the same arrivals and
# service times. This is called *common random numbers*, and it makes policy comparisons much sharper,
# because the luck of the draw is the same on both sides.
#
# `load_experiment` reads the spec. Its second argument overrides fields of the base scenario, here the run
# length. `sweep` runs every (design point, replication) pair on an executor and returns the records plus a
# tidy summary table.

# %%
experiment = load_experiment(EXPERIMENTS / "latency_locality_tradeoff.toml", {"duration_s": SWEEP_DURATION_S})
experiment = dataclasses.replace(experiment, replications=REPLICATIONS)
executor = Processes(WORKERS) if WORKERS > 1 else Serial()
swept = sweep(experiment, executor=executor, progress=False)
print(f"{len(experiment.design_points)} design points x {REPLICATIONS} replications: {swept.report()}")
swept.summary[
    ["policy", "hot_node_share", "load_rps", "replication", "latency_mean_s", "latency_p99_s", "cross_zone_fraction"]
].head()

# %% [markdown]
# The trade-off comes as two figures (`sim.plots.sweep_figures`), each with one panel per load level. The
# first shows latency (mean solid, p99 dashed). The second shows locality: the share of requests served on
# another node (dash-dot) or in another zone (dotted). Error bars are 95% confidence intervals over the
# replications. An interval is computed from one number per run, never from individual requests, because
# requests in one run share queues and are not independent.

# %%
figures = sweep_figures(experiment.describe(), swept.records)
save(figures["tradeoff_latency"], "02_tradeoff")
display(figures["tradeoff_latency"])

# %%
save(figures["tradeoff_locality"], "02_locality")
display(figures["tradeoff_locality"])

# %% [markdown]
# What the figure shows:
#
# * **Cluster** (blue) is flat. Its load is always spread over all nine backends, so skew does not matter.
#   But 8 of 9 requests leave the node and 6 of 9 leave the zone, so on average it pays about 1.5 ms of
#   round trips per request, more than the 1 ms of service itself.
# * **Local** (orange) is the fastest at low load or with even clients. As the skew and the load grow, the
#   hot node's single backend fills up and its p99 climbs past Cluster's.
# * **PreferSameNode** (red) matches Local exactly here, because every node has a backend, so "same node
#   if possible" always is possible. It differs from Local only when a node has no backend (see notebook 01,
#   where Local fails, and notebook 04).
# * **PreferSameZone** (green) takes the best of both: requests stay in the zone (no cross-zone trips),
#   but they are spread over the zone's three backends, so the hot node's queue is shared. Its cost is the
#   short hop to another node of the zone (about 0.2 ms there and back) for 2 of 3 requests.
#
# At the most extreme design point, the whole latency distribution tells the same story:

# %%
ecdf = figures["latency_ecdf"]
save(ecdf, "02_latency_ecdf")
display(ecdf)

# %% [markdown]
# ## 3. When does each policy win?
#
# "Local is faster" is a claim about a *difference*, so we measure the difference directly. Replication r of
# Local and of Cluster saw the same arrivals, so we take the difference of each pair of runs and average
# those differences. `paired_differences` returns that mean with a 95% confidence interval. Below zero, the
# policy beats Cluster. If the interval crosses zero, the data cannot tell the two apart.

# %%
factors = experiment.factor_names
metrics = {"latency_mean_s": "mean latency", "latency_p99_s": "p99 latency"}
loads = sorted(swept.summary["load_rps"].unique())
fig, axes = plt.subplots(2, len(loads), figsize=(5 * len(loads), 7.5), sharex=True, squeeze=False)
for row, (metric, what) in enumerate(metrics.items()):
    diffs = paired_differences(swept.summary, factors, "policy", "Cluster", metric=metric)
    for col, load in enumerate(loads):
        ax = axes[row][col]
        here = diffs[diffs["load_rps"] == load]
        for i, (policy, g) in enumerate(here.groupby("policy", sort=False)):
            g = g.sort_values("hot_node_share")
            x = g["hot_node_share"].to_numpy() + (i - 1) * 0.012  # nudge sideways so the bars do not overlap
            y = g["difference"].to_numpy() * 1e3
            err = np.vstack([y - g["low"].to_numpy() * 1e3, g["high"].to_numpy() * 1e3 - y])
            ax.errorbar(x, y, yerr=np.nan_to_num(err), marker="o", capsize=3, label=policy, color=f"C{i + 1}")
        ax.axhline(0, color="tab:blue", lw=1.5, label="Cluster (baseline)")
        ax.set_title(f"{what}, total load {load} requests/s")
        ax.set_ylabel(f"{what} minus Cluster's (ms)")
        ax.grid(alpha=0.3)
        if row == len(metrics) - 1:
            ax.set_xlabel("share of client Pods on the hot node")
axes[0][0].legend(fontsize="small")
fig.suptitle(
    f"Paired difference from Cluster, mean of {REPLICATIONS} replications with 95% CI (below 0: faster than Cluster)"
)
fig.tight_layout()
save(fig, "02_paired_differences")
plt.show()

# %% [markdown]
# The table lists, for each load and skew, the policy with the lowest mean latency and the one with the
# lowest p99 (means over replications, from `design_point_summary`).

# %%
table = design_point_summary(swept.summary, factors)
rows = []


def best(group: pd.DataFrame, metric: str) -> str:
    """The policy (or tied policies: Local and PreferSameNode often tie exactly) with the lowest ``metric``."""
    lowest = group[metric].min()
    return f"{' = '.join(group.loc[group[metric] == lowest, 'policy'])} ({lowest * 1e3:.2f} ms)"


for (load, share), g in table.groupby(["load_rps", "hot_node_share"]):
    cluster = g[g["policy"] == "Cluster"].iloc[0]
    rows.append(
        {
            "load (requests/s)": load,
            "hot node share": share,
            "best mean": best(g, "latency_mean_s"),
            "best p99": best(g, "latency_p99_s"),
            "Cluster mean / p99 (ms)": f"{cluster['latency_mean_s'] * 1e3:.2f} / {cluster['latency_p99_s'] * 1e3:.1f}",
        }
    )
pd.DataFrame(rows)

# %% [markdown]
# ## When each policy wins
#
# * **Local / PreferSameNode** win when the hop they save is large compared with the queueing they add, that
#   is, at low load or when clients are spread evenly over the nodes that run backends. They lose, and their
#   tail (p99) loses first, when clients crowd onto a few nodes and those nodes' backends get busy.
#   PreferSameNode has the same performance as Local but keeps working when a node has no backend.
# * **PreferSameZone** is the robust middle ground on a multi-zone cluster: it avoids the expensive
#   cross-zone trip but still spreads load over a zone's backends. Here it is first, or within a hair of
#   first, at every design point.
# * **Cluster** never suffers from skew, but always pays for the round trips. In this sweep it never comes
#   first: crossing a zone costs more than the service time. It wins when hops are cheap compared with
#   service and queueing, or when one zone's clients alone would saturate that zone's backends.
#
# These runs are short (`SWEEP_DURATION_S` simulated seconds, `REPLICATIONS` replications) so that the
# notebook runs quickly. Raise both in the parameters cell (20 s and 10 replications are the spec's values,
# about a minute on 2 cores) to narrow the intervals. The CLI runs the same sweep:
# `sim sweep experiments/latency_locality_tradeoff.toml`.

# %% [markdown]
# ## Exercises
#
# Predict first, then change the parameter and run; the check cell says whether your prediction holds (leave
# `PREDICTION_...` as `None` and it only asks for one). The answers are folded away under each exercise.
#
# ### Exercise 1: one client moves away
#
# **Predict.** In `skewed_clients.toml`, 4 of the 5 clients sit on `kind-worker`, each sending 22 requests/s
# to `echo-local`, whose Pod there serves one request at a time in 10 ms on average. Move `client-3` to
# `kind-worker2`: what will the utilisation (0 to 1) of `echo-local-kind-worker` be? Write it into
# `PREDICTION_1`.
#
# **Change and run.** `MOVED_1` lists the clients moved to `kind-worker2`. Then move two.

# %%
PREDICTION_1 = None  # your prediction: utilisation (0 to 1) of echo-local-kind-worker
MOVED_1 = ["client-3"]  # clients moved from kind-worker to kind-worker2

table_1 = scenario_table("skewed_clients.toml")
for pod in table_1["pods"]:
    if pod["name"] in MOVED_1:
        pod["node"] = "kind-worker2"
scenario_1, seed_1 = build(table_1, "skewed_clients.toml", {"requests": SKEWED_REQUESTS // 2})
summary_1 = summarize_service(simulate(scenario_1, seed_1, "des"), "echo-local")
measured_1 = summary_1.pods["echo-local-kind-worker"].utilization

# %%
check("Exercise 1", PREDICTION_1, measured_1, within=0.05)

# %% [markdown]
# <details><summary>Answer</summary>
#
# 0.66: utilisation is arrival rate times mean service time. `Local` keeps every client on its own node, so
# three clients at 22 requests/s each bring 66 requests/s, and 66 x 0.010 s = 0.66 (before: 88 x 0.010 =
# 0.88). Moving two clients gives 0.44. The measured value wobbles by a few hundredths: it is a time average
# over one run.
#
# </details>
#
# ### Exercise 2: a third Cluster backend
#
# **Predict.** Give `echo-cluster` a third Pod, on `kind-control-plane`. What fraction of its requests will
# be served on a node other than the client's? Write a fraction into `PREDICTION_2`.
#
# **Change and run.** `EXTRA_NODE_2` places the Pod. Then try `kind-worker`.

# %%
PREDICTION_2 = None  # your prediction: echo-cluster's cross-node fraction (0 to 1)
EXTRA_NODE_2 = "kind-control-plane"  # where echo-cluster's third Pod runs

table_2 = scenario_table("skewed_clients.toml")
table_2["pods"].append({"name": "echo-cluster-extra", "node": EXTRA_NODE_2, "labels": {"app": "echo-cluster"}})
scenario_2, seed_2 = build(table_2, "skewed_clients.toml", {"requests": SKEWED_REQUESTS // 2})
measured_2 = summarize_service(simulate(scenario_2, seed_2, "des"), "echo-cluster").cross_node_fraction

# %%
check("Exercise 2", PREDICTION_2, measured_2, within=0.03)

# %% [markdown]
# <details><summary>Answer</summary>
#
# 2/3. Each client picks one of three Pods uniformly, and only one of them is on its own node (every client
# sits on a node with one echo-cluster Pod), so 2 of 3 requests leave the node, whichever node the client is
# on. With the extra Pod on `kind-worker`, the four clients there keep 2 of 3 on their node and the one on
# `kind-worker2` keeps 1 of 3: (4 x 1/3 + 1 x 2/3) / 5 = 0.4.
#
# </details>
#
# ### Exercise 3: which policy is fastest?
#
# **Predict.** At `LOAD_3 = 1080` requests/s with 5 of 6 clients on the hot node (`SHARE_3 = 0.833`), which
# policy has the lowest mean latency in the sweep above: Cluster, Local, PreferSameZone or PreferSameNode?
# Write its name into `PREDICTION_3`.
#
# **Change and run.** Then try `LOAD_3 = 360` with `SHARE_3 = 0.333` (even clients, light load).

# %%
PREDICTION_3 = None  # your prediction: "Cluster", "Local", "PreferSameZone" or "PreferSameNode"
LOAD_3 = 1080  # requests/s: 360, 720 or 1080
SHARE_3 = 0.833  # share of clients on the hot node: 0.333, 0.5, 0.667 or 0.833

point_3 = table[(table["load_rps"] == LOAD_3) & (table["hot_node_share"] == SHARE_3)]
fastest_3 = point_3.loc[point_3["latency_mean_s"] == point_3["latency_mean_s"].min(), "policy"]
measured_3 = set(fastest_3)  # Local and PreferSameNode can tie exactly: naming either one holds
print({row.policy: f"{row.latency_mean_s * 1e3:.2f} ms" for row in point_3.itertuples()})

# %%
check("Exercise 3", PREDICTION_3, measured_3)

# %% [markdown]
# <details><summary>Answer</summary>
#
# PreferSameZone. With 5 of 6 clients on one node, Local (and PreferSameNode, identical here since every node
# has a backend) piles 900 requests/s onto that node's one backend, which queues; Cluster never queues but
# crosses a zone on 2 of 3 requests. PreferSameZone stays in the zone and shares the load over the zone's
# three backends. With even clients at light load, Local and PreferSameNode win (exactly tied), PreferSameZone
# a hair behind: the hop to another node of the zone costs more than the little queueing Local adds.
#
# </details>

# %%
if isinstance(executor, Processes):  # the sweep's worker processes wait for another sweep; this one is done
    get_reusable_executor(max_workers=executor.workers).shutdown(wait=True)
