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
# # 04 - Topology-aware routing: PreferSameZone, PreferSameNode and Auto hints
#
# In a cloud, a cluster usually spans several **zones** (separate data centres of one region). Traffic
# between zones is slower, and providers often charge for it. `Cluster` routing ignores zones: with backends
# spread evenly over 3 zones, about 2 of every 3 requests cross a zone boundary.
#
# Kubernetes offers ways to keep traffic close:
#
# * `trafficDistribution: PreferSameZone` (formerly `PreferClose`): use the backends in the client's zone.
# * `trafficDistribution: PreferSameNode`: use a backend on the client's node if there is one, else fall back
#   to the zone.
# * The annotation `service.kubernetes.io/topology-mode: Auto`: a heuristic that can decide to do nothing.
#
# One detail matters throughout: **kube-proxy never reads these fields**. The EndpointSlice controller reads
# them and writes **hints** on each endpoint ("serve zone-a", "serve node zone-a-node-1"). kube-proxy only
# reads the hints. When the controller withholds hints, nothing happens, even though the annotation is set.
#
# This notebook runs `experiments/topology_aware.toml` and `experiments/topology_auto.toml` and measures how
# much traffic crosses zones.

# %%

import matplotlib.pyplot as plt
import networkx as nx
import numpy as np
import pandas as pd
from matplotlib.lines import Line2D

from sim import load_scenario, simulate, summarize
from sim.experiment.analysis import run_metrics, summarize_service
from sim.experiment.shares import route_shares
from sim.plots import node_heatmap
from sim.stats import mean_ci

# %% tags=["parameters"]
REQUESTS = 1_000  # requests per client stream (the scenario files say 1,000)
SEEDS = 5  # runs per scenario, for confidence intervals over runs


# %%
from nbsetup import EXPERIMENTS, ROOT, build, check, save, scenario_table  # noqa: E402, F401 - setup, exercises

# %% [markdown]
# ## 1. The multi-zone cluster
#
# `topologies/multizone.toml` has 3 zones of 3 nodes. Each zone has a top-of-rack switch, and the switches
# meet at a spine router. A node-to-switch link costs about 50 microseconds one way, and a switch-to-spine link
# about 500. So a trip to another node in the same zone costs about 0.1 ms, and a trip to another zone about
# 1.1 ms.
#
# The drawing shows the backend Pods of `topology_aware.toml` under their nodes. They are deliberately
# uneven: zone-c has both of its Pods on one node, and the clients' nodes (node-1 of each zone) have a backend
# only in zone-a.

# %%
aware, aware_seed = load_scenario(EXPERIMENTS / "topology_aware.toml", {"requests": REQUESTS})
topology = aware.topology
graph = topology.graph
zone_of = {n: labels.get("topology.kubernetes.io/zone", "") for n, labels in topology.nodes.items()}
zones = sorted(set(zone_of.values()))

# Layout: nodes on the bottom row grouped by zone, switches above them, routers on top.
pos = {}
for z, zone in enumerate(zones):
    members = sorted(n for n in topology.nodes if zone_of[n] == zone)
    for i, n in enumerate(members):
        pos[n] = (z * 5.6 + (i - (len(members) - 1) / 2) * 1.8, 0.0)
for kind, height in (("switch", 1.0), ("bridge", 1.0), ("router", 2.0)):
    for v, k in graph.nodes(data="kind"):
        if str(k) == kind:
            below = [pos[u] for u in graph.neighbors(v) if u in pos]
            pos[v] = (float(np.mean([x for x, _ in below])) if below else 5.6, height)

zone_colors = {zone: f"C{i}" for i, zone in enumerate(zones)}
fig, ax = plt.subplots(figsize=(15, 5.5))
nx.draw_networkx_edges(graph, pos, ax=ax, edge_color="grey", width=1.5)
kube_nodes = list(topology.nodes)
nx.draw_networkx_nodes(
    graph, pos, nodelist=kube_nodes, node_color=[zone_colors[zone_of[n]] for n in kube_nodes], node_size=500, ax=ax
)
others = [v for v in graph.nodes if v not in topology.nodes]
nx.draw_networkx_nodes(graph, pos, nodelist=others, node_color="lightgrey", node_shape="s", node_size=700, ax=ax)
nx.draw_networkx_labels(graph, {v: pos[v] for v in others}, {v: v for v in others}, font_size=8, ax=ax)
for n in kube_nodes:
    pods = [p.name for p in aware.pods if p.node == n]
    text = n + "".join(f"\n{p}" for p in pods)
    ax.text(pos[n][0], pos[n][1] - 0.12, text, ha="center", va="top", fontsize=7)
edge_labels = {(a, b): f"{d['mean_s'] * 1e6:.0f}" for a, b, d in graph.edges(data=True)}
nx.draw_networkx_edge_labels(graph, pos, edge_labels, font_size=7, ax=ax)
ax.legend(
    handles=[
        Line2D([], [], marker="o", ls="", color=c, markersize=10, label=f"node in {z}") for z, c in zone_colors.items()
    ]
    + [Line2D([], [], marker="s", ls="", color="lightgrey", markersize=10, label="switch / router")],
    loc="upper right",
)
ax.set_title("multizone topology: 3 zones x 3 nodes, with the Pods of topology_aware.toml under their nodes")
ax.set_xlabel("edge labels: mean one-way link latency (microseconds)")
ax.set_xticks([])
ax.set_yticks([])
ax.set_ylim(-0.75, 2.3)
ax.set_xlim(min(x for x, _ in pos.values()) - 0.9, max(x for x, _ in pos.values()) + 0.9)
save(fig, "04_multizone_graph")
plt.show()

# %% [markdown]
# ## 2. PreferSameZone and PreferSameNode
#
# `topology_aware.toml` defines three Services over the same six Pods. One client Pod on node-1 of each zone
# calls all three:
#
# * `spread`: no `trafficDistribution`, so every ready endpoint is used.
# * `spread-same-zone`: `PreferSameZone`. The controller hints each endpoint for its own zone.
# * `spread-same-node`: `PreferSameNode`. Each endpoint is hinted for its own node *and* its zone.
#
# The hints the controller wrote, as the simulator computed them:

# %%
pd.DataFrame(
    [
        {
            "Service": name,
            "Pod": ep.pod,
            "node": ep.node_name,
            "zone hints": ", ".join(sorted(ep.zone_hints or [])) or "-",
            "node hints": ", ".join(sorted(ep.node_hints or [])) or "-",
        }
        for name in ("spread", "spread-same-zone", "spread-same-node")
        for ep in aware.control_plane.endpoints(name)
    ]
).set_index(["Service", "Pod"])

# %% [markdown]
# kube-proxy on each node then picks a *mode* (the rule in `docs/semantics.md`, section 3):
#
# 1. If every ready endpoint has a node hint and at least one is hinted for **this node**: use only those.
# 2. Else, if every ready endpoint has a zone hint and at least one is hinted for **this zone**: use only
#    those.
# 3. Else: use every ready endpoint.
#
# There is no per-endpoint fallback, only this per-node choice of mode. For `spread-same-node`, zone-a's
# client has a backend on its own node and stays there. The clients in zone-b and zone-c have none on their
# nodes, so they fall back to their zone.
#
# We run the scenario `SEEDS` times. `run_metrics` adds, for each Service, a table of requests by client
# node and serving node, which `sim.plots.node_heatmap` draws.

# %%
aware_runs = [simulate(aware, aware_seed + s, "des") for s in range(SEEDS)]
aware_records = [{"status": "ok", "metrics": run_metrics(r)} for r in aware_runs]

fig, axes = plt.subplots(1, 3, figsize=(18, 5.6), layout="constrained")
for ax, name in zip(axes, ("spread", "spread-same-zone", "spread-same-node"), strict=True):
    td = aware.service(name).traffic_distribution
    node_heatmap(aware_records, name, ax, title=f"{name}\n(trafficDistribution: {td or 'not set'})")
fig.suptitle(f"Where each client node's requests were served, % of all completed requests ({SEEDS} runs pooled)")
save(fig, "04_prefer_same_zone_node_heatmaps")
plt.show()

# %% [markdown]
# Each row is a client's node, and each column a node that served requests. With `spread`, every client
# reaches every backend, and zone-c-node-3 gets twice the share because it runs two Pods. With
# `spread-same-zone`, each row stays inside its zone's columns. With `spread-same-node`, zone-a's client sends
# everything to its own node, and the others behave as with same-zone.
#
# Staying close has a price: the zone-a-node-1 backend now serves zone-a's client alone, and zone-c's two
# Pods serve only zone-c. If clients are not spread evenly over zones, backends get uneven load (notebook 02
# shows what that does to latency).
#
# ## 3. `topology-mode: Auto`, and when it does nothing
#
# The older mechanism, the annotation `service.kubernetes.io/topology-mode: Auto`, is more careful. The
# controller gives each zone a number of endpoints in proportion to its share of allocatable CPU. It writes
# **no hints at all** if it cannot keep each zone's expected overload under 20%. `topology_auto.toml` has two
# Services with the annotation, on a cluster whose zones have equal CPU:
#
# * `auto-six`: 6 endpoints, 2 per zone. Each zone needs at least ceil(2 / 1.2) = 2, which works: hints are
#   written.
# * `auto-four`: 4 endpoints over 3 zones. Each zone would need at least ceil(1.33 / 1.2) = 2, which makes 6,
#   more than 4. **Hints are withheld**, and traffic crosses zones as if the annotation were not there: the
#   "Topology Aware Routing is not working" reports in the Kubernetes issue tracker.

# %%
auto, auto_seed = load_scenario(EXPERIMENTS / "topology_auto.toml", {"requests": REQUESTS})
for name in ("auto-six", "auto-four"):
    hints = auto.control_plane.hints(name)
    print(f"{name}: {'hints written' if not hints.withheld else 'NO hints: ' + hints.withheld}")
    for ep in hints.endpoints:
        print(f"    {ep.pod:22s} node {ep.node_name}  zone hints: {sorted(ep.zone_hints or []) or '-'}")
auto_runs = [simulate(auto, auto_seed + s, "des") for s in range(SEEDS)]

# %% [markdown]
# ## 4. Cross-zone traffic, all five Services
#
# For each Service: the share of completed requests served in another zone than the client's, and the mean
# latency. Both are averaged over the `SEEDS` runs, with 95% confidence intervals over runs. The red line is
# the expected cross-zone share, computed from the routing layer: each stream's route from its client's
# node (`route_shares`) gives the share of requests each Pod should get, and we add up those in other zones.


# %%
def expected_cross_zone(result, service: str) -> float:
    """The share of the Service's requests that its routes send to another zone (requests weighted per stream)."""
    scenario = result.scenario
    zone_of_pod = np.array([scenario.nodes[scenario.pod(p).node].zone for p in result.pod_names])
    total = crossing = 0.0
    for k, stream in enumerate(scenario.streams):
        if stream.service != service:
            continue
        node = scenario.pod(stream.client).node
        shares, _ = route_shares(result, k, result.node_names.index(node), 0)
        weight = np.count_nonzero(result.columns["stream"] == k)
        total += weight
        crossing += weight * shares[zone_of_pod != scenario.nodes[node].zone].sum()
    return crossing / total


services = {
    "spread": (aware_runs, "no topology"),
    "spread-same-zone": (aware_runs, "PreferSameZone"),
    "spread-same-node": (aware_runs, "PreferSameNode"),
    "auto-six": (auto_runs, "Auto, hints written"),
    "auto-four": (auto_runs, "Auto, hints withheld"),
}
rows = []
for name, (runs, what) in services.items():
    summaries = [summarize_service(r, name) for r in runs]
    cross = mean_ci([s.cross_zone_fraction for s in summaries])
    latency = mean_ci([s.latency_s.mean * 1e3 for s in summaries])
    rows.append(
        {
            "Service": name,
            "routing": what,
            "cross-zone share": cross.mean,
            "low": cross.low,
            "high": cross.high,
            "expected": expected_cross_zone(runs[0], name),
            "mean latency (ms)": latency.mean,
            "latency low": latency.low,
            "latency high": latency.high,
        }
    )
table = pd.DataFrame(rows)
table.round(4)

# %%
fig, (left, right) = plt.subplots(1, 2, figsize=(14, 5.2), layout="constrained")
x = np.arange(len(table))
labels = [f"{s}\n({w})" for s, w in zip(table["Service"], table["routing"], strict=True)]
share = table["cross-zone share"].to_numpy() * 100
err = np.nan_to_num(np.vstack([share - table["low"] * 100, table["high"] * 100 - share]))
left.bar(x, share, yerr=err, capsize=4, color="tab:blue", alpha=0.85, label=f"measured, mean of {SEEDS} runs (95% CI)")
left.hlines(table["expected"] * 100, x - 0.4, x + 0.4, color="crimson", lw=2.5, label="expected from the routing rules")
for xi, value in zip(x, share, strict=True):
    left.text(xi, value + 2.5, f"{value:.1f}%", ha="center", fontsize="small")
left.set_xticks(x, labels, fontsize="small", rotation=25, ha="right")
left.set_ylim(0, 100)
left.set_xlabel("Service (how it routes)")
left.set_ylabel("requests served in another zone (%)")
left.set_title("Cross-zone traffic")
left.legend(fontsize="small", loc="upper center")

lat = table["mean latency (ms)"].to_numpy()
err = np.nan_to_num(np.vstack([lat - table["latency low"], table["latency high"] - lat]))
right.bar(x, lat, yerr=err, capsize=4, color="tab:purple", alpha=0.8, label=f"mean of {SEEDS} runs (95% CI)")
for xi, value in zip(x, lat, strict=True):
    right.text(xi, value / 2, f"{value:.2f} ms", ha="center", color="white", fontsize="small")
right.set_xticks(x, labels, fontsize="small", rotation=25, ha="right")
right.set_ylim(0, lat.max() * 1.25)
right.set_xlabel("Service (how it routes)")
right.set_ylabel("mean request latency (ms)")
right.set_title("What crossing zones costs")
right.legend(fontsize="small", loc="upper center")
fig.suptitle("Topology-aware routing on the 3-zone cluster: clients on node-1 of each zone")
save(fig, "04_cross_zone_fractions")
plt.show()

# %% [markdown]
# ## What we learned
#
# * Without topology, about two thirds of requests cross zones when backends are spread evenly over 3 zones,
#   and crossing zones costs over a millisecond each way.
# * `PreferSameZone` and `PreferSameNode` bring cross-zone traffic to zero as long as every zone (or node)
#   that has clients also has a ready backend. `PreferSameNode` falls back to the zone, not to failure,
#   unlike `internalTrafficPolicy: Local` (notebook 01).
# * `topology-mode: Auto` is all-or-nothing per Service. With too few endpoints per zone (here 4 over 3
#   zones), the controller writes no hints, and the Service behaves exactly as if the annotation were not
#   there. The simulator reports why (`Scenario.control_plane.hints(service).withheld`). A real cluster only shows the
#   missing hints in the EndpointSlice.
# * Keeping traffic close ties each zone's load to its own clients. Check that each zone has enough backends
#   for its clients, or local queues will cost more than the saved hop.
#
# To scale up, raise `REQUESTS` and `SEEDS` in the parameters cell.

# %% [markdown]
# ## Exercises
#
# Predict first, then change the parameter and run; the check cell says whether your prediction holds (leave
# `PREDICTION_...` as `None` and it only asks for one). The answers are folded away under each exercise.
# Each exercise changes `topology_aware.toml`: three clients (one on node 1 of each zone, 200 requests/s each)
# call three Services that select the same six backend Pods.
#
# ### Exercise 1: a zone without endpoints
#
# **Predict.** Delete the Pods of zone c (`ZONE_C_PODS_1 = 0` keeps none of its two). What fraction of
# `spread-same-zone`'s (PreferSameZone) requests will cross a zone? Write a fraction into `PREDICTION_1`.
#
# **Change and run.** Then keep one (`ZONE_C_PODS_1 = 1`).

# %%
PREDICTION_1 = None  # your prediction: spread-same-zone's cross-zone fraction (0 to 1)
ZONE_C_PODS_1 = 0  # how many of zone c's two backend Pods stay


def topology_aware_variant(change) -> dict:
    """The summary per Service of one run of topology_aware.toml after ``change(table)``."""
    table = scenario_table("topology_aware.toml")
    change(table)
    scenario, seed = build(table, "topology_aware.toml", {"requests": REQUESTS})
    return summarize(simulate(scenario, seed, "des"))["services"]


def keep_zone_c(table: dict) -> None:
    zone_c = [p for p in table["pods"] if p["name"].startswith("spread-zone-c")]
    table["pods"] = [p for p in table["pods"] if p not in zone_c[ZONE_C_PODS_1:]]


measured_1 = topology_aware_variant(keep_zone_c)["spread-same-zone"]["cross_zone_fraction"]

# %%
check("Exercise 1", PREDICTION_1, measured_1, within=0.03)

# %% [markdown]
# <details><summary>Answer</summary>
#
# 1/3. The controller hints each endpoint for its own zone, and zone c gets none. kube-proxy filters by hints
# only for a zone some endpoint is hinted for, so zone c's client falls back to every endpoint, all of them in
# zones a and b: 100% of its requests cross a zone, while the other two clients stay home. With one Pod left
# in zone c, nobody crosses: 0.
#
# </details>
#
# ### Exercise 2: move one backend
#
# **Predict.** `spread` (no trafficDistribution) sends about 2/3 of requests across zones: each client has 2
# of the 6 endpoints in its zone. Move `spread-zone-b-node-2-0` to `zone-a-node-3`, so zones a, b, c have 3,
# 1, 2 endpoints. What is `spread`'s cross-zone fraction now? Write it into `PREDICTION_2`.
#
# **Change and run.** `TARGET_NODE_2` is where the Pod goes.

# %%
PREDICTION_2 = None  # your prediction: spread's cross-zone fraction (0 to 1)
TARGET_NODE_2 = "zone-a-node-3"


def move_backend(table: dict) -> None:
    for pod in table["pods"]:
        if pod["name"] == "spread-zone-b-node-2-0":
            pod["node"] = TARGET_NODE_2


measured_2 = topology_aware_variant(move_backend)["spread"]["cross_zone_fraction"]

# %%
check("Exercise 2", PREDICTION_2, measured_2, within=0.03)

# %% [markdown]
# <details><summary>Answer</summary>
#
# Still 2/3. Client a now crosses for 3 of 6 endpoints, client b for 5 of 6, client c for 4 of 6; with equal
# rates the average is (3 + 5 + 4) / 18 = 2/3. Each endpoint is in the zone of exactly one of the three
# clients, wherever it is, so with one client per zone and a uniform picker the total never changes. What
# changes is who pays: zone b's client now crosses 5 times in 6.
#
# </details>
#
# ### Exercise 3: PreferSameNode finds a node
#
# **Predict.** For `spread-same-node` (PreferSameNode), only client a has a backend on its own node, so about
# 2/3 of requests leave the node. Move `client-b` to `zone-b-node-2`, which runs a backend. What fraction of
# `spread-same-node`'s requests are served on another node now? Write it into `PREDICTION_3`.
#
# **Change and run.** `CLIENT_B_NODE_3` is where `client-b` runs.

# %%
PREDICTION_3 = None  # your prediction: spread-same-node's cross-node fraction (0 to 1)
CLIENT_B_NODE_3 = "zone-b-node-2"


def move_client_b(table: dict) -> None:
    for pod in table["pods"]:
        if pod["name"] == "client-b":
            pod["node"] = CLIENT_B_NODE_3


measured_3 = topology_aware_variant(move_client_b)["spread-same-node"]["cross_node_fraction"]

# %%
check("Exercise 3", PREDICTION_3, measured_3, within=0.03)

# %% [markdown]
# <details><summary>Answer</summary>
#
# 1/3. Clients a and b now each have a backend on their node and stay there; only client c, on a node
# without one, falls back to its zone's backends, on another node. Each client sends the same rate, so 1 of 3
# requests leaves its node.
#
# </details>
