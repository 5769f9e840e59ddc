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
# # 06 - Locality along a call graph
#
# A page is rarely one request. The `web` Service calls `api`, and `api` calls `db`: three hops, and where each
# one lands decides the node the next one leaves from. `internalTrafficPolicy: Local` on one hop keeps it on its
# caller's node, so locality compounds along the chain. So do tails: a page that waits for N calls at once
# waits for the slowest of them.
#
# This notebook runs `experiments/apps/call_chain.toml` (a client, then `web`, `api` and `db` with one pod on
# each of the two kind worker nodes) in three steps:
#
# 1. `Local` on a chain: how many pages stay on the client's node, and what it saves.
# 2. Fan-out: the p99 of the slowest of N calls, against theory.
# 3. `Local` breaking a page when one callee has no pod on the caller's node.

# %%
import math

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from IPython.display import display

from sim import simulate
from sim.experiment.analysis import run_metrics
from sim.experiment.metrics import services_from_json
from sim.plots import page_latency_ecdf

# %% tags=["parameters"]
PAGES = 1_500  # pages per run (the file says 2000)
FAN_PAGES = 6_000  # pages per run in section 2, where a p99 is estimated
FAN_OUT = (1, 2, 4, 8, 16)  # calls at once per page in section 2


# %%
from nbsetup import build, check, save, scenario_table  # noqa: E402 - setup and exercises

NAME = "apps/call_chain.toml"


def run_pages(table: dict, pages: int = PAGES) -> dict:
    """Run a (changed) copy of the chain with ``pages`` pages and return its summary per Service (``summarize``
    plus the latency histograms that figures read)."""
    scenario, seed = build(table, NAME, {"requests": pages})
    return run_metrics(simulate(scenario, seed, "des"))["services"]


def with_policies(web: str, api: str, db: str) -> dict:
    """The chain's table with each Service's internalTrafficPolicy set."""
    table = scenario_table(NAME)
    for service, policy in zip(table["services"], (web, api, db), strict=True):
        service["internalTrafficPolicy"] = policy
    return table


# %% [markdown]
# ## 1. Local on a chain
#
# With `Cluster` on every hop, each Service's proxy spreads calls evenly over its two pods. A page stays on the
# client's node only if all three hops happen to pick the local pod: 1/2 x 1/2 x 1/2 = 1/8. With `Local` on
# every hop, every call is answered on its caller's node, so the whole page stays on `kind-worker`.
#
# `call_path` is the run's summary of each page along its critical path: the latency split into the pods' own
# work, the network legs and queueing (they add up to the mean), and the share of pages whose every hop was on
# the client's node.

# %%
rows, runs = {}, {}
for label, policies in {"Cluster everywhere": ("Cluster",) * 3, "Local everywhere": ("Local",) * 3}.items():
    runs[label] = run_pages(with_policies(*policies))
    path = runs[label]["web"]["call_path"]
    rows[label] = {
        "pages": path["requests"],
        "every hop on the client's node": path["same_node_fraction"],
        **{f"{k} (ms)": v * 1e3 for k, v in path["critical_path_s"].items()},
        "mean (ms)": path["latency_s"]["mean"] * 1e3,
    }
chain = pd.DataFrame(rows).T
display(chain.round(3))

fig, ax = plt.subplots(figsize=(7, 3.2))
left = np.zeros(len(chain))
for part, color in zip(("own_work", "network", "queueing"), ("tab:blue", "darkgrey", "tab:orange"), strict=True):
    values = chain[f"{part} (ms)"].to_numpy()
    ax.barh(chain.index, values, left=left, color=color, label=part.replace("_", " "))
    left += values
ax.set_xlabel("mean page latency along its critical path (ms)")
ax.set_title("A three-hop chain: Local saves the network legs, not the work")
ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")
save(fig, "06_chain_parts")
plt.show()

# %% [markdown]
# The means hide the shape. `sim.plots.page_latency_ecdf` draws the pages' end-to-end latency, one curve per
# policy (the same figure `sim plot` draws for a sweep over a policy, e.g.
# `experiments/apps/call_chain_policies.toml`): the whole distribution moves by the network legs saved.

# %%
fig, ax = plt.subplots(figsize=(7, 3.6))
page_latency_ecdf({label: [services_from_json({"services": s})] for label, s in runs.items()}, ax)
save(fig, "06_chain_page_latency")
plt.show()

# %% [markdown]
# The share of pages that stay on the node is 1/8 with `Cluster` (up to sampling noise) and 1 with `Local`.
# The saving is the network part only; the pods' own work is the same. On a real cluster, where a hop across
# nodes costs more than in this kind model, the network part grows and so does the saving.
#
# ## 2. How tails add up under fan-out
#
# Now `web` calls `api` N times at once and waits for all of them. Make the network nearly free (`Local`
# everywhere), `web`'s own work zero and `api`'s an exponential of mean 1 ms with workers to spare, so that a
# page takes the slowest of N independent exponential times. The slowest of N has CDF F(t)^N, so its p99 is
# the t where (1 - e^(-t/m))^N = 0.99:
#
# t99 = -m ln(1 - 0.99^(1/N)).
#
# It grows like m ln(N): each doubling of the fan-out adds about m ln 2 = 0.7 ms to the p99, even though each
# call's own p99 stays at m ln 100 = 4.6 ms.


# %%
def fan_out(n: int) -> dict:
    """The chain with `web` calling `api` n times at once, `api` calling nothing, and no queueing."""
    table = with_policies("Local", "Local", "Local")
    table["defaults"]["concurrency"] = 1000
    table["services"][0]["calls"] = [{"parallel": [{"service": "api", "count": n}]}]
    table["services"][1]["calls"] = []
    for pod in table["pods"]:
        if pod["name"].startswith("web"):
            pod["service_time"] = {"dist": "constant", "value_s": 0.0}
    return table


MEAN_S = 0.001
measured = {n: run_pages(fan_out(n), FAN_PAGES)["web"]["call_path"]["latency_s"]["p99"] for n in FAN_OUT}
theory = {n: -MEAN_S * math.log(1 - 0.99 ** (1 / n)) for n in FAN_OUT}
tails = pd.DataFrame({"measured p99 (ms)": measured, "theory: slowest of N (ms)": theory}) * 1e3
display(tails.round(3))

fig, ax = plt.subplots(figsize=(6, 3.6))
ax.plot(FAN_OUT, tails["measured p99 (ms)"], "o-", label="measured p99 of a page")
ax.plot(FAN_OUT, tails["theory: slowest of N (ms)"], "k--", label="theory: -m ln(1 - 0.99^(1/N))")
ax.set_xscale("log", base=2)
ax.set_xticks(FAN_OUT, [str(n) for n in FAN_OUT])
ax.set_xlabel("calls at once per page (N)")
ax.set_ylabel("p99 page latency (ms)")
ax.set_title("The slowest of N: the p99 grows like ln N")
ax.legend(fontsize="small")
save(fig, "06_fanout_p99")
plt.show()

# %% [markdown]
# The measured p99 follows the formula. What remains is the network legs (about 0.08 ms here, `critical_path_s`
# says) and the noise of a p99 estimated from a few thousand pages: its standard error is
# sqrt(0.99 x 0.01 / n) / f(t99), about 0.15 ms for n = 5,000 pages at N = 8 (f is the density of the slowest
# of N at its p99). With 20,000 pages the N = 8 and N = 16 points land within 0.1 ms of the formula.
#
# ## 3. Local breaking a page
#
# Delete `db`'s pod on `kind-worker`. With `Cluster`, `api` on `kind-worker` calls `db-2` across nodes and the
# page works. With `Local` on `db`, `api-1`'s node has no `db` endpoint: kube-proxy drops the call (no local
# endpoint), and a failed call fails its page. With `Local` on `web` and `api` too, every page goes through
# `api-1`, so every page fails.


# %%
def db_gone(db_policy: str, optional: bool = False) -> dict:
    """The chain, Local on web and api, db's policy given, and db's pod on kind-worker gone."""
    table = with_policies("Local", "Local", db_policy)
    table["pods"] = [p for p in table["pods"] if p["name"] != "db-1"]
    table["services"][1]["calls"] = [{"service": "db", "optional": optional}]
    return table


broken = {}
for label, table in {"db Cluster": db_gone("Cluster"), "db Local": db_gone("Local")}.items():
    web = run_pages(table)["web"]
    broken[label] = {"completed": web["completed"], "failed": web["dropped"], "drops": web["drops"]}
display(pd.DataFrame(broken).T)

fig, ax = plt.subplots(figsize=(6, 3))
frame = pd.DataFrame(broken).T
ax.barh(frame.index, frame["completed"].astype(int), color="tab:green", label="completed pages")
ax.barh(
    frame.index, frame["failed"].astype(int), left=frame["completed"].astype(int), color="tab:red", label="failed pages"
)
ax.set_xlabel("pages")
ax.set_title("db has no pod on kind-worker: Local on db fails every page")
ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0))
save(fig, "06_local_breaks_a_page")
plt.show()

# %% [markdown]
# The failure reason is the callee's: the page inherits `api`'s failed call to `db`, a drop for "no local
# endpoint" on `api-1`'s node. One Local hop with a missing pod breaks every page that passes through that node,
# however healthy the rest of the graph is.
#
# ## Exercises
#
# Each exercise asks you to **predict** first, then **change** a parameter and run, and a **check** cell says
# whether your prediction holds. Write your prediction into the `PREDICTION_...` variable before you run the
# cell (leave it `None` and the check only asks for one). The answers are folded away under each exercise.
#
# ### Exercise 1: one Local hop in the middle
#
# **Predict.** `web` and `db` are `Cluster`, only `api` is `Local`. What share of pages has every hop on the
# client's node? Write a number between 0 and 1 into `PREDICTION_1`.
#
# **Change and run.** Try `POLICIES_1 = ("Cluster", "Local", "Cluster")`, then `("Local", "Cluster", "Local")`.

# %%
PREDICTION_1 = None  # your prediction: the share of pages that never leave kind-worker
POLICIES_1 = ("Cluster", "Local", "Cluster")  # web, api, db

measured_1 = run_pages(with_policies(*POLICIES_1))["web"]["call_path"]["same_node_fraction"]
check("Exercise 1", PREDICTION_1, measured_1, within=0.05)

# %% [markdown]
# <details><summary>Answer</summary>
#
# 1/4: `web` lands on `kind-worker` half the time; `api` then stays there (Local); `db` lands there half the
# time. With `("Local", "Cluster", "Local")`: `web` stays, `api` half the time, `db` follows `api`: 1/2. Each
# Cluster hop with two equal pods halves the share; a Local hop keeps what the hop before it decided.
#
# </details>
#
# ### Exercise 2: a wider fan-out
#
# **Predict.** With `N_2 = 32` calls at once, each exponential with mean 1 ms, what is the p99 of a page, in ms?
# Write a number into `PREDICTION_2`.
#
# **Change and run.** Try `N_2 = 32`, then 64.

# %%
PREDICTION_2 = None  # your prediction: p99 page latency (ms)
N_2 = 32  # calls at once per page

measured_2 = run_pages(fan_out(N_2))["web"]["call_path"]["latency_s"]["p99"] * 1e3
check("Exercise 2", PREDICTION_2, measured_2, within=0.6, unit=" ms")

# %% [markdown]
# <details><summary>Answer</summary>
#
# -ln(1 - 0.99^(1/32)) ms = 8.05 ms (64: 8.74 ms). Each doubling adds ln 2 = 0.69 ms. The tolerance is wide
# because a p99 from 1,500 pages is itself noisy (about 15 pages lie beyond it).
#
# </details>
#
# ### Exercise 3: an optional call
#
# **Predict.** Make `api`'s call to `db` optional (`OPTIONAL_3 = True`) with `db` Local and its `kind-worker`
# pod gone. What share of pages completes? Write a number between 0 and 1 into `PREDICTION_3`.
#
# **Change and run.** Try `OPTIONAL_3 = True`, then `False`.

# %%
PREDICTION_3 = None  # your prediction: the share of pages completed
OPTIONAL_3 = True  # whether api's call to db is optional

web_3 = run_pages(db_gone("Local", optional=OPTIONAL_3))["web"]
measured_3 = web_3["completed"] / web_3["sent"]
check("Exercise 3", PREDICTION_3, measured_3, within=0.01)

# %% [markdown]
# <details><summary>Answer</summary>
#
# 1: an optional call's failure does not fail its parent (as gRPC code that logs the error and goes on), so
# every page completes, without `db`'s answer. With `False`, none does. Whether a call is optional is part of
# what locality can cost.
#
# </details>
