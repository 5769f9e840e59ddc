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
# # 05 - The rules kube-proxy writes, and the real kernel beside the model
#
# The simulator routes every connection with kube-proxy's rules as a model. On a Linux node, kube-proxy turns
# the same decisions into kernel rules: iptables chains (`KUBE-SERVICES`, `KUBE-SVC-*`, `KUBE-SEP-*`) or one
# nftables table. `sim emulate SCENARIO --show-rules` prints, for every node of a scenario, the very text
# kube-proxy would feed `iptables-restore` or `nft -f`, computed from the same routing layer the simulator uses.
# It needs no root and runs nothing.
#
# As root, `sim emulate SCENARIO` goes further: it builds the nodes and pods as Linux network namespaces,
# loads those rules, sends real TCP connections, and compares where they went with the simulator.
#
# This notebook reads the rules of three situations:
#
# 1. the demo's `echo-1` (Cluster) and `echo-2` (Local): the random cascade and the Local chain;
# 2. the probabilities of the cascade, and why `1/(n-i)` makes a uniform split;
# 3. what happens without endpoints: DROP for "no local endpoints", REJECT for "no endpoints", and the
#    terminating endpoints kube-proxy keeps for later.

# %%
import subprocess
import sys
from dataclasses import replace

import matplotlib.pyplot as plt
import numpy as np

from sim import load_scenario
from sim.cluster import Pod
from sim.emulate import make_layout, show_rules
from sim.emulate.rules.iptables import iptables_restore, svc_chain
from sim.emulate.rules.nftables import nft_transaction

# %% tags=["parameters"]
N_ENDPOINTS = 5  # endpoints of the Service whose cascade is drawn in section 2
CONNECTIONS = 20_000  # simulated connections walked through the cascade
SEED = 5

# %%
from nbsetup import EXPERIMENTS, ROOT, save  # noqa: E402 - the repository root and figure saving

# %% [markdown]
# ## 1. The demo's rules on `kind-worker`
#
# The command line first, exactly as a reader would run it. The demo file says `dataplane = "cilium"`, which
# kube-proxy does not run, so `--mode iptables` puts its Services under kube-proxy's iptables mode.

# %%
command = [sys.executable, "-m", "sim", "emulate", str(EXPERIMENTS / "cilium_demo.toml"), "--mode", "iptables"]
done = subprocess.run([*command, "--show-rules"], capture_output=True, text=True, cwd=ROOT, check=True)  # noqa: S603
blocks = done.stdout.split("# ===== node ")
worker = next(b for b in blocks if b.startswith("kind-worker ("))
print("# ===== node " + worker.split("*nat")[0][:200] + "...\n")
print("*nat" + worker.split("*nat")[1])

# %% [markdown]
# How to read it, rule by rule (the client pod on `kind-worker` connects to `echo-1`'s ClusterIP 10.96.0.10):
#
# * `-A KUBE-SERVICES ... -d 10.96.0.10 --dport 80 -j KUBE-SVC-...`: the packet's destination is the
#   ClusterIP, so it jumps to the Service's chain. kube-proxy names chains by a hash of
#   `namespace/name:port` and the protocol (`portProtoHash`), because iptables allows only 28 characters.
# * `-A KUBE-SVC-... -m statistic --mode random --probability 0.5000000000 -j KUBE-SEP-...`: the first
#   endpoint takes the connection with probability 1/2; otherwise the next rule, with no condition, takes it.
# * `-A KUBE-SEP-... -j DNAT --to-destination 10.244.1.3:80`: the endpoint's chain rewrites the destination to
#   the pod. Only the first packet of a connection walks the chains; conntrack remembers the choice.
# * `echo-2` is `internalTrafficPolicy: Local`: its ClusterIP jumps to a `KUBE-SVL-...` chain holding only the
#   pod on this node, and no `KUBE-SVC` chain exists at all.
#
# The same in nftables mode: one table, a verdict map from (ClusterIP, protocol, port) to a per-service chain,
# and one `numgen random mod 2` rule where iptables needs a cascade.

# %%
scenario, seed = load_scenario(EXPERIMENTS / "cilium_demo.toml")
plan = make_layout(scenario, "nftables", "cilium_demo.toml")
node = next(n for n in plan.nodes if n.name == "kind-worker")
print("\n".join(line for line in nft_transaction(node.services).splitlines() if "echo" in line))

# %% [markdown]
# ## 2. Why `1/(n-i)` is uniform
#
# With `n` endpoints, rule `i` (counting from 0) matches with probability `1/(n-i)`, and the last rule always
# matches. A connection reaches rule `i` only if every earlier rule declined, so endpoint `i` gets
#
# $$\frac{1}{n-i}\prod_{j<i}\left(1-\frac{1}{n-j}\right) = \frac{1}{n-i}\cdot\frac{n-i}{n} = \frac{1}{n}.$$
#
# Below, the probabilities are read back from the rules kube-proxy would write for a Service of
# `N_ENDPOINTS` endpoints, and `CONNECTIONS` connections are walked through the cascade with a seeded random
# generator (the kernel's own generator plays this part on a node). The left panel shows each rule's own
# probability rising to 1; the right panel shows the share of connections each endpoint ends up with: flat.

# %%
# echo-1 with N_ENDPOINTS backends: the demo's two, and more pods with its label on kind-worker2
extra = tuple(
    Pod(f"echo-1-extra-{i}", "kind-worker2", f"10.244.2.{10 + i}", {"app": "echo-1"}) for i in range(N_ENDPOINTS - 2)
)
big = replace(scenario, pods=scenario.pods + extra, dataplane=replace(scenario.dataplane, name="iptables"))
big_node = next(n for n in make_layout(big, "iptables", "demo").nodes if n.name == "kind-worker")
echo1 = next(s for s in big_node.services if s.service.name == "echo-1")
rules = [line for line in iptables_restore([echo1]).splitlines() if line.startswith(f"-A {svc_chain(echo1.service)} ")]
probs = np.array([float(r.split("--probability ")[1].split()[0]) if "--probability" in r else 1.0 for r in rules])
for r in rules:
    print(r)

rng = np.random.default_rng(SEED)
u = rng.random((CONNECTIONS, len(probs)))
chosen = np.argmax(u < probs, axis=1)  # the first rule whose draw matches (the last always matches)
shares = np.bincount(chosen, minlength=len(probs)) / CONNECTIONS
se = np.sqrt(1 / len(probs) * (1 - 1 / len(probs)) / CONNECTIONS)

fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
x = np.arange(len(probs))
left.bar(x, probs, color="C0")
left.set_xticks(x, [f"rule {i}" for i in x])
left.set_ylabel("probability of the rule's match")
left.set_title("each KUBE-SVC rule: 1/(n-i)")
right.bar(x, shares, yerr=1.96 * se, capsize=4, color="C1")
right.axhline(1 / len(probs), color="k", ls="--", lw=1, label=f"1/n = {1 / len(probs):.3f}")
right.set_xticks(x, [f"endpoint {i}" for i in x])
right.set_ylabel(f"share of {CONNECTIONS:,} connections")
right.set_title("what each endpoint gets (95% intervals)")
right.set_ylim(0, 1.35 / len(probs))
right.legend(loc="upper right")
fig.tight_layout()
save(fig, "05_probability_cascade")
plt.show()

# %% [markdown]
# ## 3. No endpoints, no local endpoints, terminating endpoints
#
# `experiments/local_pod_gone_iptables.toml`: `echo-2` is Local and its only pod is on `kind-worker2`, while
# the client is on `kind-worker`. On `kind-worker`, kube-proxy writes no NAT rule for the ClusterIP at all, and
# a **DROP** in the filter table's `KUBE-SERVICES` chain: the client's SYN vanishes, and it waits for its
# connect timeout. A Service with no endpoint anywhere gets a **REJECT** instead: an ICMP port-unreachable
# comes back, and the client sees "connection refused" at once.

# %%
gone, _ = load_scenario(EXPERIMENTS / "local_pod_gone_iptables.toml")
for n in make_layout(gone, None, "local_pod_gone_iptables.toml").nodes:
    text = iptables_restore(n.services)
    marks = [line for line in text.splitlines() if "echo-2" in line and ("DROP" in line or "DNAT" in line)]
    print(f"{n.name}:")
    for line in marks or ["  (nothing for echo-2)"]:
        print("  " + line)

# %% [markdown]
# Terminating endpoints: a pod being deleted stays `serving` while its readiness probe passes, but is no longer
# `ready`. kube-proxy's `CategorizeEndpoints` uses such endpoints only when no endpoint is ready, so that
# connections keep working during a rollout that has stopped every old pod at once. With one of three
# backends terminating, the chain holds two endpoints; with every backend terminating, it holds them all.

# %%
terminating = replace(
    big,
    pods=tuple(replace(p, terminating=p.name == "echo-1-kind-worker2") for p in big.pods),
)
t_node = next(n for n in make_layout(terminating, "iptables", "demo").nodes if n.name == "kind-worker")
t_echo1 = next(s for s in t_node.services if s.service.name == "echo-1")
print("all ready, KUBE-SVC holds:      ", [ep.pod for ep in echo1.cluster or ()])
print("one terminating, KUBE-SVC holds:", [ep.pod for ep in t_echo1.cluster or ()])
print(iptables_restore([t_echo1]).count("--probability 0.2500000000"), "rule with probability 1/4 (four endpoints)")

# %% [markdown]
# ## 4. On the real kernel
#
# As root on Linux (with `iproute2`, `iptables` and `nftables` installed), the same scenarios run for real:
#
# ```bash
# sudo .venv/bin/sim emulate experiments/cilium_demo.toml --mode iptables --requests 2000
# sudo .venv/bin/sim emulate experiments/local_pod_gone_iptables.toml --requests 10 --connect-timeout 0.25
# ```
#
# Each prints, per Service, the kernel's new connections per pod and failures beside the simulator's, and a
# chi-square test of homogeneity (are both samples from one distribution?). Latency is not emulated: the
# kernel routes, and the comparison is of where connections went and how they failed. In nftables mode, the
# DROP and the REJECT of section 3 are entries of one verdict map, checked in the `filter-forward` chain:

# %%
gone_nft = show_rules(make_layout(gone, "nftables", "local_pod_gone_iptables.toml"))
print("\n".join(line for line in gone_nft.splitlines() if "no-endpoint-services" in line or "=====" in line))

# %% [markdown]
# ## Exercises
#
# Each exercise asks you to **predict** first, then **change** a parameter and run, and a **check** cell says
# whether your prediction holds. Write your prediction into the `PREDICTION_...` variable before you run the
# cell (leave it `None` and the check only asks for one). The answers are folded away under each exercise.
#
# ### Exercise 1: the cascade's third rule
#
# **Predict.** A Service has `N_1 = 4` ready endpoints. What `--probability` does kube-proxy write on the
# third rule of its `KUBE-SVC` chain (rule index 2)? Write a number between 0 and 1 into `PREDICTION_1`.
#
# **Change and run.** Try `N_1 = 4`, then 6, and predict again each time.

# %%
from nbsetup import check  # noqa: E402 - says whether a prediction holds

PREDICTION_1 = None  # your prediction: the probability on rule index 2
N_1 = 4  # ready endpoints of echo-1

pods_1 = tuple(Pod(f"echo-1-ex1-{i}", "kind-worker2", f"10.244.2.{50 + i}", {"app": "echo-1"}) for i in range(N_1 - 2))
sc_1 = replace(scenario, pods=scenario.pods + pods_1, dataplane=replace(scenario.dataplane, name="iptables"))
svc_1 = next(
    s
    for s in next(n for n in make_layout(sc_1, "iptables", "ex1").nodes if n.name == "kind-worker").services
    if s.service.name == "echo-1"
)
rules_1 = [r for r in iptables_restore([svc_1]).splitlines() if r.startswith(f"-A {svc_chain(svc_1.service)} ")]
third_1 = rules_1[2]
measured_1 = float(third_1.split("--probability ")[1].split()[0]) if "--probability" in third_1 else 1.0
print(third_1)

# %%
check("Exercise 1", PREDICTION_1, measured_1, within=1e-9)

# %% [markdown]
# <details><summary>Answer</summary>
#
# `1/(n-i)` with `n = 4` and `i = 2`: 1/2, printed `0.5000000000` (kube-proxy formats probabilities with ten
# decimals). With 6 endpoints: 1/4. The last rule of the chain has no `--probability` at all: whatever reaches
# it matches.
#
# </details>
#
# ### Exercise 2: how many endpoints when some are terminating?
#
# **Predict.** echo-1 has the 5 endpoints of section 2. `TERMINATING_2` of them are being deleted
# (terminating, still serving). How many endpoints does the `KUBE-SVC` chain on `kind-worker` hold? Write a
# whole number into `PREDICTION_2`.
#
# **Change and run.** Try `TERMINATING_2 = 2`, then 5 (every backend terminating).

# %%
PREDICTION_2 = None  # your prediction: endpoints in the KUBE-SVC chain
TERMINATING_2 = 2  # how many of echo-1's 5 endpoints are terminating

names_2 = sorted(p.name for p in big.pods if p.labels.get("app") == "echo-1")[:TERMINATING_2]
sc_2 = replace(big, pods=tuple(replace(p, terminating=p.name in names_2) for p in big.pods))
svc_2 = next(
    s
    for s in next(n for n in make_layout(sc_2, "iptables", "ex2").nodes if n.name == "kind-worker").services
    if s.service.name == "echo-1"
)
measured_2 = len(svc_2.cluster or ())
print("terminating:", names_2, "-> KUBE-SVC holds", [ep.pod for ep in svc_2.cluster or ()])

# %%
check("Exercise 2", PREDICTION_2, measured_2)

# %% [markdown]
# <details><summary>Answer</summary>
#
# `5 - TERMINATING_2` while at least one endpoint is ready: 3 for `TERMINATING_2 = 2`. kube-proxy's
# `CategorizeEndpoints` takes the ready endpoints; only when none is ready does it fall back to the serving
# terminating ones, so with all 5 terminating the chain holds all 5 again, and connections keep working
# through the end of a rollout.
#
# </details>
#
# ### Exercise 3: DROP or REJECT?
#
# **Predict.** In `local_pod_gone_iptables.toml` the client's node has no `echo-2` pod, and kube-proxy writes a
# DROP there. If `REMOVE_ALL_3 = True` also deletes echo-2's pod on `kind-worker2`, so the Service has no
# endpoint anywhere, which verdict does `kind-worker`'s filter table give echo-2's ClusterIP? Write `"DROP"` or
# `"REJECT"` into `PREDICTION_3`.
#
# **Change and run.** Try `REMOVE_ALL_3 = True`, then `False`.

# %%
PREDICTION_3 = None  # your prediction: "DROP" or "REJECT"
REMOVE_ALL_3 = True  # also delete echo-2's remote pod

pods_3 = tuple(p for p in gone.pods if not (REMOVE_ALL_3 and p.labels.get("app") == "echo-2"))
node_3 = next(n for n in make_layout(replace(gone, pods=pods_3), None, "ex3").nodes if n.name == "kind-worker")
lines_3 = [line for line in iptables_restore(node_3.services).splitlines() if "echo-2" in line]
measured_3 = next((v for v in ("REJECT", "DROP") if any(f"-j {v}" in line for line in lines_3)), "neither")
print("\n".join(line for line in lines_3 if "-j DROP" in line or "-j REJECT" in line))

# %%
check("Exercise 3", PREDICTION_3, measured_3)

# %% [markdown]
# <details><summary>Answer</summary>
#
# `"REJECT"`. A Service with no endpoint at all gets a REJECT in `KUBE-SERVICES` (filter table): an ICMP port
# unreachable comes back and the client sees "connection refused" at once. With the remote pod kept, the
# Service has endpoints but none local, and kube-proxy writes a DROP ("has no local endpoints"): the SYN
# vanishes, and the client waits for its connect timeout. `sim emulate` on the kernel shows both failure kinds.
#
# </details>
