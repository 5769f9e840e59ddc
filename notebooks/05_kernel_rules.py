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
from sim.emulate import make_plan, show_rules
from sim.emulate.rules import iptables_restore, nft_transaction, svc_chain

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
plan = make_plan(scenario, "nftables", "cilium_demo.toml")
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
big_node = next(n for n in make_plan(big, "iptables", "demo").nodes if n.name == "kind-worker")
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
for n in make_plan(gone, None, "local_pod_gone_iptables.toml").nodes:
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
t_node = next(n for n in make_plan(terminating, "iptables", "demo").nodes if n.name == "kind-worker")
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
gone_nft = show_rules(make_plan(gone, "nftables", "local_pod_gone_iptables.toml"))
print("\n".join(line for line in gone_nft.splitlines() if "no-endpoint-services" in line or "=====" in line))
