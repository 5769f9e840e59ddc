"""kube-scheduler's placement (``sim.io.cluster.placement``, ``sim.io.cluster.scoring``): each score plugin against
the scores its upstream test expects, the filters, ``selectHost``'s seeded tie-break, and Online Boutique on a kind
cluster."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.cli import main
from sim.io.cluster.kubernetes import read_objects
from sim.io.cluster.nodestate import Ledger
from sim.io.cluster.objects import (
    AntiAffinity,
    KNode,
    KPod,
    KService,
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
    uniform_integers,
)
from sim.io.cluster.spread import default_selector, spread_filter, spread_score, system_defaults

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


def _spread_ledger(pods: list[tuple[str, str]]) -> Ledger:
    """``filtering_test.go``'s four nodes (node-a, node-b in zone1; node-x, node-y in zone2) and pods (namespace,
    node) labelled foo."""
    ledger = Ledger([KNode(n, {"zone": z, "node": n}) for n, z in
                     [("node-a", "zone1"), ("node-b", "zone1"), ("node-x", "zone2"), ("node-y", "zone2")]])  # fmt: skip
    for k, (ns, node) in enumerate(pods):
        ledger.add(KPod(f"{ns}/p{k}", node, {"foo": ""}))
    return ledger


@pytest.mark.parametrize(
    ("pods", "min_domains", "want"),
    [
        # TestSingleConstraint: pods of other namespaces do not count (ns1, ns2 on node-a): zone1 0, zone2 2
        ([("ns1", "node-a"), ("ns2", "node-a"), ("default", "node-x"), ("default", "node-y")], 1,
         [True, True, False, False]),
        # "pods spread across zones as 3/3, all nodes fit"
        ([("default", n) for n in ("node-a", "node-a", "node-b", "node-y", "node-y", "node-y")], 1, [True] * 4),
        # TestMinDomains-style: 3/3 but minDomains 3 > 2 domains: the global minimum is 0, so 3 + 1 - 0 > 1
        ([("default", n) for n in ("node-a", "node-a", "node-b", "node-y", "node-y", "node-y")], 3, [False] * 4),
    ],
)  # fmt: skip
def test_spread_filter_as_upstream(pods, min_domains, want):
    """PodTopologySpread's Filter (``podtopologyspread/filtering.go`` ``Filter``, ``calPreFilterState``,
    ``minMatchNum``): maxSkew 1 on zone, DoNotSchedule, selector foo exists: ``matching + self - min <= maxSkew``,
    as ``filtering_test.go`` ``TestSingleConstraint`` expects."""
    ledger = _spread_ledger(pods)
    c = SpreadConstraint(1, "zone", "DoNotSchedule", LabelSelector(expressions=(Requirement("foo", "Exists"),)),
                         min_domains)  # fmt: skip
    everywhere = np.ones(4, dtype=bool)
    assert spread_filter(ledger, [c], "default", {"foo": ""}, everywhere, everywhere).tolist() == want


SPREAD = """\
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 7
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      affinity:
        nodeAffinity:
          preferredDuringSchedulingIgnoredDuringExecution:
          - weight: 100
            preference: {matchExpressions: [{key: topology.kubernetes.io/zone, operator: In, values: [zone-a]}]}
      topologySpreadConstraints:
      - {maxSkew: 1, topologyKey: topology.kubernetes.io/zone, whenUnsatisfiable: DoNotSchedule,
         labelSelector: {matchLabels: {app: web}}}
      containers: [{name: c, resources: {requests: {cpu: 100m}}}]
"""


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_topology_spread_constraints_place_as_kube_scheduler(tmp_path, seed):
    """A Deployment's own ``topologySpreadConstraints`` (``filtering.go`` ``Filter``): 7 replicas preferring
    zone-a (node affinity, weight 100), maxSkew 1 on zone, DoNotSchedule, over kind-3zones' six workers: the zones
    hold 3/2/2 whatever the seed. Without the filter (the model before this issue: its constraints ignored) the
    preference puts all 7 in zone-a."""
    path = tmp_path / "c.yaml"
    path.write_text((BOUTIQUE.parent / "kind-3zones.yaml").read_text() + SPREAD)
    _, pods, _ = place(read_objects([str(path)]), seed)
    zones: dict[str, int] = {}
    for p in pods:
        z = {"kind-worker": "a", "kind-worker2": "a", "kind-worker3": "b", "kind-worker4": "b"}.get(p.node or "", "c")
        zones[z] = zones.get(z, 0) + 1
    assert zones == {"a": 3, "b": 2, "c": 2}


def test_default_selector_spreads_pods_a_service_selects():
    """``helper/spread.go`` ``DefaultSelector``: a pod without an owner that a Service selects is spread by the
    system default constraints over the Service's selector, as ``scoring_test.go`` ``TestPodTopologySpreadScore``
    "system defaulting, nodes don't have zone, pods match service" expects (4/3/2/1 pods: 44, 66, 77, 100); a pod
    no Service, ReplicaSet or StatefulSet selects has no default constraints (the model before: counted by owner,
    so an ownerless pod was never spread)."""
    ledger = Ledger([KNode(n, {HOST: n}) for n in "abcd"])
    for node, n in zip("abcd", (4, 3, 2, 1), strict=True):
        for k in range(n):
            ledger.add(KPod(f"default/{node}{k}", node, {"foo": ""}))
    svc = KService("default/s", {"selector": {"foo": ""}})
    constraints = system_defaults(default_selector("default", {"foo": ""}, [svc], None))
    everywhere = np.ones(4, dtype=bool)
    got = spread_score(ledger, np.arange(4), constraints, "default", everywhere, everywhere, require_all=False)
    assert got.tolist() == [44, 66, 77, 100]
    assert default_selector("default", {"bar": ""}, [svc], None) is None
    assert default_selector("other", {"foo": ""}, [svc], None) is None  # a Service selects its namespace only


PRIORITY = """\
---
{apiVersion: v1, kind: Node, metadata: {name: only}, status: {allocatable: {cpu: '1', memory: 1Gi, pods: '110'}}}
---
{apiVersion: scheduling.k8s.io/v1, kind: PriorityClass, metadata: {name: high}, value: 1000}
---
{apiVersion: v1, kind: Pod, metadata: {name: low}, spec: {containers: [{name: c, resources: {requests: {cpu: 600m}}}]}}
---
apiVersion: v1
kind: Pod
metadata: {name: urgent}
spec: {priorityClassName: high, containers: [{name: c, resources: {requests: {cpu: 600m}}}]}
"""


def test_higher_priority_pods_are_scheduled_first(tmp_path):
    """``queuesort/priority_sort.go`` ``Less``: the queue pops the higher priority first (ties by timestamp, here
    input order). One 1-core node, two 600m pods: ``urgent`` (PriorityClass high, 1000), given second, gets the
    node; ``low`` stays Pending, with one line that kube-scheduler would preempt (``defaultpreemption``), which
    the model does not. In input order (the model before) ``low`` would have the node. Where ``low`` already runs
    there, ``urgent`` is Pending with the one-line preemption note."""
    path = tmp_path / "p.yaml"
    path.write_text(PRIORITY)
    _, pods, notes = place(read_objects([str(path)]))
    assert [p.name for p in pods] == ["default/urgent"]
    assert any(n.startswith("Pod default/low: Pending") for n in notes)
    path.write_text(PRIORITY.replace("low}, spec: {", "low}, spec: {nodeName: only, "))  # already running
    _, pods, notes = place(read_objects([str(path)]))
    assert [p.name for p in pods] == ["default/low"]
    assert any(n.startswith("default/urgent: Pending at priority 1000") and "preempt" in n for n in notes)


def test_kind_node_capacity_is_settable(tmp_path, capsys):
    """A kind node's allocatable is its host's (kubelet's ``pkg/kubelet/nodestatus/setters.go`` ``MachineInfo``
    reads the machine, and a kind node is a container on it): the model's 8 cores and 16 GiB are a default, set by
    ``--kind-node-capacity`` or the scenario's ``kind_node_capacity``. On 0.5-core workers Online Boutique's
    requests (100m-300m each, ``NodeResourcesFit`` ``fitsRequest``) no longer all fit; on the default all 12 do."""
    assert main(["routes", str(KIND3), str(BOUTIQUE), "--json"]) == 0
    assert "Pending" not in capsys.readouterr().err
    assert main(["routes", str(KIND3), str(BOUTIQUE), "--json", "--kind-node-capacity", "0.5,1Gi"]) == 0
    assert "replicas Pending: 0/4 nodes are available" in capsys.readouterr().err
    scenario = tmp_path / "s.toml"
    scenario.write_text(f'cluster = ["{KIND3}", "{BOUTIQUE}"]\nkind_node_capacity = {{cpu = "500m", memory = "1Gi"}}\n')
    assert main(["routes", str(scenario)]) == 0
    assert "replicas Pending" in capsys.readouterr().err
    for bad in ("1", "x,1Gi", "0,1Gi", "nan,1Gi"):
        assert main(["routes", str(KIND3), "--kind-node-capacity", bad]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("sim: error: --kind-node-capacity")


def test_kind_config_node_and_node_object_merge_as_objects_given_twice(tmp_path, capsys):
    """A kind config's node and a Node object of the same name follow the rule for an object given twice
    (``read_objects``): where the Node object agrees with the config (its labels, the architecture aside, and
    taints) it takes the node's place quietly, keeping the node's order, with its allocatable; where they differ,
    one line naming both files, exit 2. (The model before merged them silently, the later one winning.)"""
    node = tmp_path / "node.yaml"
    labels = "{kubernetes.io/hostname: kind-worker2, kubernetes.io/os: linux, kubernetes.io/arch: arm64}"
    node.write_text(
        f"{{apiVersion: v1, kind: Node, metadata: {{name: kind-worker2, labels: {labels}}}, "
        "status: {allocatable: {cpu: '2', memory: 4Gi}}}\n"
    )
    objects = read_objects([str(node), str(KIND3)])
    assert [n.name for n in objects.nodes] == ["kind-worker2", "kind-control-plane", "kind-worker", "kind-worker3"]
    assert objects.nodes[0].cpu == 2.0
    objects = read_objects([str(KIND3), str(node)])
    assert [n.name for n in objects.nodes][2] == "kind-worker2" and objects.nodes[2].cpu == 2.0
    node.write_text(node.read_text().replace("os: linux", "os: windows"))
    assert main(["routes", str(KIND3), str(node)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(KIND3) in err and str(node) in err and "kubernetes.io/os" in err


@settings(max_examples=200, deadline=None)
@given(
    highs=st.lists(st.integers(1, 5000) | st.sampled_from([1, 2, 3, 2**31, 2**32 - 1]), max_size=60),
    seed=st.integers(0, 2**32 - 1),
    odd=st.booleans(),
)
def test_uniform_integers_are_rng_integers_one_by_one(highs, seed, odd):
    """``scoring.uniform_integers`` (selectHost's tie draws at once) gives the numbers ``rng.integers(h)`` gives
    one call at a time (numpy's ``_bounded_integers.pyx`` Lemire draws on buffered 32-bit halves), and leaves the
    generator in the same state, whether or not a half word is buffered before (``odd``)."""
    one, many = np.random.default_rng(seed), np.random.default_rng(seed)
    if odd:
        one.integers(7), many.integers(7)
    assert uniform_integers(many, np.array(highs, dtype=np.int64)).tolist() == [int(one.integers(h)) for h in highs]
    assert many.bit_generator.state == one.bit_generator.state


@settings(max_examples=200, deadline=None)
@given(totals=st.lists(st.integers(0, 4), min_size=1, max_size=40), seed=st.integers(0, 2**32 - 1))
def test_select_host_is_the_reservoir_loop(totals, seed):
    """``schedule_one.go`` ``selectHost`` as written upstream (a loop: a higher score resets the count; an equal
    one draws ``rand.Intn(cntOfMaxScore)`` and takes the node on 0), against the vectorised ``select_host``: the
    same node, tie count and generator state."""
    loop_rng, rng = np.random.default_rng(seed), np.random.default_rng(seed)
    best, chosen, tied = totals[0], 0, 1
    for i, total in enumerate(totals[1:], start=1):
        if total > best:
            best, chosen, tied = total, i, 1
        elif total == best:
            tied += 1
            if int(loop_rng.integers(tied)) == 0:
                chosen = i
    assert select_host(np.array(totals), rng) == (chosen, tied)
    assert rng.bit_generator.state == loop_rng.bit_generator.state


def test_exabyte_nodes_are_scored_in_exact_integers(tmp_path):
    """``resource_allocation.go`` scores in int64 and float64 on real sizes; a node of 1 EiB (2**60 bytes) would
    overflow int64 in ``(capacity - requested) * 100``, so the ledger keeps Python integers there
    (``nodestate.EXACT_INT``): LeastAllocated and BalancedAllocation still prefer the emptier, bigger node, and
    nothing overflows (in int64, ``2**60 * 100`` wraps negative and the small node would win)."""
    path = tmp_path / "c.yaml"
    path.write_text(
        "---\n{apiVersion: v1, kind: Node, metadata: {name: small}, status: {allocatable: {cpu: '8', memory: 1Gi}}}\n"
        "---\n{apiVersion: v1, kind: Node, metadata: {name: huge}, status: {allocatable: {cpu: '8', memory: 1Ei}}}\n"
        + deployment("web", 1, "{cpu: 100m, memory: 512Mi}")
    )
    objects = read_objects([str(path)])
    assert not Ledger(objects.nodes).exact
    _, pods, _ = place(objects)
    assert [p.node for p in pods] == ["huge"]
