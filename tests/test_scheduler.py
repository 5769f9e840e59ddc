"""kube-scheduler's placement (``sim.io.cluster.placement``, ``sim.io.cluster.scoring``): each score plugin against
the scores its upstream test expects, the filters, ``selectHost``'s seeded tie-break, and Online Boutique on a kind
cluster."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import numpy as np
import pytest

from sim.cli import main
from sim.io.cluster.kubernetes import read_objects
from sim.io.cluster.nodestate import Ledger
from sim.io.cluster.objects import (
    AntiAffinity,
    KNode,
    KPod,
    LabelSelector,
    Requirement,
    Scheduling,
    SpreadConstraint,
)
from sim.io.cluster.placement import _Incoming, interpod_affinity_scores, place
from sim.io.cluster.scoring import (
    SYSTEM_DEFAULT_CONSTRAINTS,
    WEIGHTS,
    balanced_allocation,
    default_normalize,
    least_allocated,
    select_host,
)
from sim.io.cluster.spread import spread_score

ROOT = Path(__file__).parent.parent
BOUTIQUE = ROOT / "experiments" / "apps" / "online-boutique" / "kubernetes-manifests.yaml"
HOST = "kubernetes.io/hostname"


def test_default_profile_weights():
    """``pkg/scheduler/apis/config/v1/default_plugins.go`` ``getDefaultPlugins``: the score weights."""
    assert WEIGHTS == {
        "TaintToleration": 3,
        "NodeAffinity": 2,
        "NodeResourcesFit": 1,
        "PodTopologySpread": 2,
        "InterPodAffinity": 2,
        "NodeResourcesBalancedAllocation": 1,
    }


@pytest.mark.parametrize(
    ("requested", "allocatable", "want"),
    [
        # noderesources/least_allocated_test.go TestLeastAllocatedScoringStrategy, case by case (node1, node2)
        ([(0, 0), (0, 0)], [(4000, 10000), (4000, 10000)], [100, 100]),  # nothing scheduled, nothing requested
        ([(3000, 5000), (3000, 5000)], [(4000, 10000), (6000, 10000)], [37, 50]),  # differently sized nodes
        ([(6000, 0), (6000, 5000)], [(10000, 20000), (10000, 20000)], [70, 57]),  # pods scheduled with resources
        ([(6000, 5000), (6000, 10000)], [(10000, 20000), (10000, 20000)], [57, 45]),  # requested, pods scheduled
        ([(6000, 5000), (6000, 10000)], [(10000, 20000), (10000, 50000)], [57, 60]),  # ... differently sized
        ([(6000, 0), (6000, 5000)], [(4000, 10000), (4000, 10000)], [50, 25]),  # requests exceed capacity
        ([(3000, 0), (3000, 5000)], [(0, 0), (0, 0)], [0, 0]),  # zero node resources
    ],
)
def test_least_allocated_scores_as_upstream(requested, allocatable, want):
    """NodeResourcesFit LeastAllocated, ``least_allocated.go`` ``leastResourceScorer``: node requests plus the
    pod's against allocatable, as ``TestLeastAllocatedScoringStrategy`` expects them."""
    assert least_allocated(np.array(requested), np.array(allocatable)).tolist() == want


@pytest.mark.parametrize(
    ("requested", "allocatable", "want"),
    [
        # noderesources/balanced_allocation_test.go TestNodeResourcesBalancedAllocation (node1, node2)
        ([(3000, 5000), (3000, 5000)], [(4000, 10000), (6000, 10000)], [87, 100]),
        ([(6000, 5000), (6000, 10000)], [(10000, 20000), (10000, 20000)], [82, 95]),
        ([(6000, 5000), (6000, 10000)], [(10000, 20000), (10000, 50000)], [82, 80]),
        ([(6000, 0), (6000, 5000)], [(6000, 10000), (6000, 10000)], [50, 75]),  # requested at node capacity
    ],
)
def test_balanced_allocation_scores_as_upstream(requested, allocatable, want):
    """NodeResourcesBalancedAllocation, ``balanced_allocation.go`` ``balancedResourceScorer``: ``(1 - std) x
    100`` of the CPU and memory fractions, as ``TestNodeResourcesBalancedAllocation`` expects them."""
    assert balanced_allocation(np.array(requested), np.array(allocatable)).tolist() == want


def _nodes(*names: str, **labels: str) -> list[dict[str, str]]:
    return [{HOST: n, **labels} for n in names]


@pytest.mark.parametrize(
    ("candidates", "others", "constraints", "require_all", "want"),
    [
        # podtopologyspread/scoring_test.go TestPodTopologySpreadScore, by case name
        # "one constraint on node, all 4 nodes are candidates": spread 2/1/0/3
        ([(_nodes("a")[0], 2), (_nodes("b")[0], 1), (_nodes("c")[0], 0), (_nodes("d")[0], 3)], [], [(HOST, 1)], True,
         [20, 60, 100, 0]),
        # "..., maxSkew=2"
        ([(_nodes("a")[0], 2), (_nodes("b")[0], 1), (_nodes("c")[0], 0), (_nodes("d")[0], 3)], [], [(HOST, 2)], True,
         [33, 66, 100, 16]),
        # "..., maxSkew=3": spread 4/3/2/1
        ([(_nodes("a")[0], 4), (_nodes("b")[0], 3), (_nodes("c")[0], 2), (_nodes("d")[0], 1)], [], [(HOST, 3)], True,
         [44, 66, 77, 100]),
        # "system defaulting, nodes don't have zone, pods match service": the same 4/3/2/1, the default constraints
        ([(_nodes("a")[0], 4), (_nodes("b")[0], 3), (_nodes("c")[0], 2), (_nodes("d")[0], 1)], [],
         list(SYSTEM_DEFAULT_CONSTRAINTS), False, [44, 66, 77, 100]),
        # "one constraint on node, 3 out of 4 nodes are candidates": 4/2/1/~3~
        ([(_nodes("a")[0], 4), (_nodes("b")[0], 2), (_nodes("x")[0], 1)], [(_nodes("y")[0], 3)], [(HOST, 1)], True,
         [33, 83, 100]),
        # "..., one node doesn't match topology key": node-b lacks the constraint's key (here zone)
        ([({**_nodes("a")[0], "zone": "a"}, 4), ({"n": "node-b"}, 2), ({**_nodes("x")[0], "zone": "x"}, 1)],
         [({**_nodes("y")[0], "zone": "y"}, 3)], [("zone", 1)], True, [16, 0, 100]),
        # "one constraint on zone, 3 out of 4 nodes are candidates"
        ([({**_nodes("a")[0], "zone": "zone1"}, 4), ({**_nodes("b")[0], "zone": "zone1"}, 2),
          ({**_nodes("x")[0], "zone": "zone2"}, 1)], [({**_nodes("y")[0], "zone": "zone2"}, 3)], [("zone", 1)], True,
         [75, 75, 100]),
        # "two Constraints on zone and node, 2 out of 4 nodes are candidates": 2/~1~/2/~4~
        ([({**_nodes("a")[0], "zone": "zone1"}, 2), ({**_nodes("x")[0], "zone": "zone2"}, 2)],
         [({**_nodes("b")[0], "zone": "zone1"}, 1), ({**_nodes("y")[0], "zone": "zone2"}, 4)],
         [("zone", 1), (HOST, 1)], True, [100, 63]),
    ],
)  # fmt: skip
def test_pod_topology_spread_scores_as_upstream(candidates, others, constraints, require_all, want):
    """PodTopologySpread, ``podtopologyspread/scoring.go`` ``Score`` and ``NormalizeScore``: per constraint
    ``count x log(domains + 2) + maxSkew - 1``, then ``100 x (max + min - s) / max``; the counts come from every
    node, the domains from the candidates (``TestPodTopologySpreadScore``). The nodes are named by their hostname
    label (kubelet sets it; a node without one, the case "one node doesn't match topology key", takes its name
    where the key is the hostname: the model gives every node kubelet's label, so that case uses the zone key)."""
    nodes = candidates + others
    ledger = Ledger([KNode(labels.get(HOST, f"x{i}"), labels) for i, (labels, _) in enumerate(nodes)])
    for node, (_, n) in zip(ledger.nodes, nodes, strict=True):
        for k in range(n):
            ledger.add(KPod(f"default/{node.name}-{k}", node.name, {"foo": ""}))
    selector = LabelSelector({"foo": ""})
    spread = [SpreadConstraint(skew, key, "ScheduleAnyway", selector) for key, skew in constraints]
    everywhere = np.ones(len(nodes), dtype=bool)
    got = spread_score(ledger, np.arange(len(candidates)), spread, "default", everywhere, everywhere,
                       require_all=require_all)  # fmt: skip
    assert got.tolist() == want


def test_taint_toleration_and_node_affinity_normalize_as_upstream():
    """``helper.DefaultNormalizeScore``: TaintToleration (reversed) in ``taint_toleration_test.go`` "the more
    intolerable taints a node has, the lower score it gets" (0, 1, 2 taints: 100, 50, 0); NodeAffinity in
    ``node_affinity_test.go`` ``TestNodeAffinityPriority`` "all nodes matches ... different priorities" (matched
    weights 2, 11, 4: 18, 100, 36)."""
    assert default_normalize(np.array([0, 1, 2]), reverse=True).tolist() == [100, 50, 0]
    assert default_normalize(np.array([0, 0, 0]), reverse=True).tolist() == [100, 100, 100]
    assert default_normalize(np.array([2, 11, 4])).tolist() == [18, 100, 36]
    assert default_normalize(np.array([0, 0, 0])).tolist() == [0, 0, 0]


def test_inter_pod_affinity_scores_as_upstream():
    """InterPodAffinity, ``interpodaffinity/scoring_test.go`` ``TestPreferredAffinity`` "Affinity: pod that matches
    topology key & pods in nodes will get high score ...": preferred affinity (weight 5) to security=S1 pods by
    region; S1 pods on node1 (China) and node3 (no region), an S2 pod on node2 (India): 100, 0, 0."""
    ledger = Ledger([KNode("node1", {"region": "China"}), KNode("node2", {"region": "India"}),
                     KNode("node3", {"az": "az1"})])  # fmt: skip
    term = AntiAffinity(LabelSelector(expressions=(Requirement("security", "In", ("S1",)),)), "region", ("default",))
    pod = _Incoming({"security": "S1"}, "default", Scheduling(preferred_pods=((5, term),)), ())
    for i, (n, s) in enumerate([("node1", "S1"), ("node2", "S2"), ("node3", "S1")]):
        ledger.add(KPod(f"default/p{i}", n, {"security": s}))
    assert interpod_affinity_scores(ledger, np.arange(3), pod).tolist() == [100, 0, 0]


def test_select_host_draws_ties_from_the_seed():
    """``schedule_one.go`` ``selectHost``: the best total wins; among equal ones reservoir sampling makes each
    equally likely (one draw per tied node). 3 tied nodes, 3000 seeds: each about 1000 (binomial sd 26)."""
    assert select_host([5, 9, 7], np.random.default_rng(0)) == (1, 1)
    counts = [0, 0, 0]
    for seed in range(3000):
        chosen, tied = select_host([9, 9, 9, 1], np.random.default_rng(seed))
        counts[chosen] += 1
        assert tied == 3
    assert all(abs(c - 1000) < 4 * 26 for c in counts)


KIND3 = BOUTIQUE.parent / "kind-3-workers.yaml"


def boutique(seed: int) -> dict[str, list[KPod]]:
    _, pods, _ = place(read_objects([str(KIND3), str(BOUTIQUE)]), seed)
    by_node: dict[str, list[KPod]] = {}
    for p in pods:
        by_node.setdefault(p.node or "", []).append(p)
    return by_node


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_online_boutique_spreads_over_three_kind_workers(seed):
    """Online Boutique's release manifests (12 single-replica Deployments) on kind with three equal workers, as
    ``schedule_one.go`` ``schedulePod`` scores them: every worker gets pods and none the control plane (its
    NoSchedule taint); each pod goes where LeastAllocated sees the most room left, so the CPU requested on the
    workers differs by at most one pod's request (the largest, loadgenerator's 300m). The model before this
    issue put all 12 on kind-worker (the first node, each Deployment's own pod count being 0 everywhere)."""
    by_node = boutique(seed)
    assert set(by_node) == {"kind-worker", "kind-worker2", "kind-worker3"}
    assert sum(len(v) for v in by_node.values()) == 12
    cpu = [sum(p.scheduling.requests[0] for p in pods) for pods in by_node.values()]
    assert max(cpu) - min(cpu) <= 300


def test_online_boutique_placement_is_the_seeds():
    """The same seed places every pod on the same node; ties among equal nodes follow the seed (selectHost)."""
    first = {p.name for p in boutique(7)["kind-worker"]}
    assert first == {p.name for p in boutique(7)["kind-worker"]}
    assert any({p.name for p in boutique(s)["kind-worker"]} != first for s in range(8, 12))


def test_routes_and_import_print_where_each_pod_went(tmp_path, capsys):
    """``sim routes`` and ``sim import`` print one line per placed pod: its node, its score, the runners-up and
    why (the plugins it led on, or a tie the seed broke)."""
    assert main(["routes", str(KIND3), str(BOUTIQUE), "--json"]) == 0
    out, err = capsys.readouterr()
    lines = [line for line in err.splitlines() if line.startswith("sim: note: placed ")]
    assert len(lines) == 12 and all(" of 3 nodes (next: " in line for line in lines)
    assert any("ahead on NodeResourcesFit" in line for line in lines)
    routes = json.loads(out)["services"]["default/frontend"]["from_nodes"]["kind-worker"]
    assert routes["outcome"] == "routed"
    assert main(["import", str(KIND3), str(BOUTIQUE), "-o", str(tmp_path / "ob.toml")]) == 0
    assert sum(line.startswith("sim: note: placed ") for line in capsys.readouterr().err.splitlines()) == 12


NODES = "".join(
    f"---\n{{apiVersion: v1, kind: Node, metadata: {{name: {n}}}, status: {{allocatable: {{cpu: '{c}', "
    f"memory: {m}, pods: '{p}'}}}}}}\n"
    for n, c, m, p in [("small", "1", "1Gi", 110), ("big", "4", "8Gi", 110), ("full", "8", "8Gi", 1)]
)


def deployment(name: str, replicas: int, requests: str) -> str:
    return textwrap.dedent(f"""\
    ---
    apiVersion: apps/v1
    kind: Deployment
    metadata: {{name: {name}}}
    spec:
      replicas: {replicas}
      selector: {{matchLabels: {{app: {name}}}}}
      template:
        metadata: {{labels: {{app: {name}}}}}
        spec: {{containers: [{{name: c, resources: {{requests: {requests}}}}}]}}
    """)


def test_requests_must_fit_allocatable(tmp_path):
    """NodeResourcesFit's Filter (``fit.go`` ``fitsRequest``): CPU and memory requests within what the node's
    allocatable leaves, the pod count within ``allocatable.pods``; what fits nowhere is Pending."""
    path = tmp_path / "c.yaml"
    path.write_text(NODES + "---\n{apiVersion: v1, kind: Pod, metadata: {name: hog}, spec: {nodeName: full}}\n"
                    + deployment("web", 3, "{cpu: 1500m, memory: 1Gi}"))  # fmt: skip
    _, pods, notes = place(read_objects([str(path)]))
    web = [p.node for p in pods if p.name.startswith("default/web")]
    assert web == ["big", "big"]  # small has 1 core; full has room for one pod and holds one
    assert any("1 of 3 replicas Pending" in n and "with too little CPU, memory or pod room left" in n for n in notes)
