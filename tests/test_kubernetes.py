"""Reading Kubernetes objects: each kind, each defaulting rule, each placement rule, each bad object, and the real
objects in tests/data/k8s (copied from public repositories; each file's source is in its .source.txt)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from sim.cluster import SessionAffinity, TrafficDistribution, TrafficPolicy
from sim.errors import SpecError
from sim.io.cluster.builders import conditions
from sim.io.cluster.kind import kind_nodes
from sim.io.cluster.kubernetes import cpu_cores, read_objects
from sim.io.cluster.placement import place
from sim.io.scenario import objects_table, parse_scenario
from sim.routing import Source
from sim.scenario import route_for

DATA = Path(__file__).parent / "data" / "k8s"


def write(tmp_path: Path, text: str, name: str = "objects.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def scenario_of(*files: Path | str, notes: list[str] | None = None):
    table = objects_table([str(f) for f in files])
    return parse_scenario(table, Path("(command line)"), need_streams=False, notes=notes)[0]


KIND3 = """\
kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
nodes:
- role: control-plane
- role: worker
- role: worker
"""


# --- each kind ---------------------------------------------------------------------------------------------------


def test_node_fields(tmp_path):
    path = write(
        tmp_path,
        """\
        apiVersion: v1
        kind: Node
        metadata:
          name: n1
          labels: {topology.kubernetes.io/zone: z1, node-role.kubernetes.io/worker: ""}
        spec:
          taints: [{key: dedicated, value: db, effect: NoSchedule}]
        status:
          allocatable: {cpu: 3500m}
          conditions: [{type: Ready, status: "False"}]
        """,
    )
    (node,) = read_objects([path]).nodes
    assert (node.name, node.cpu, node.ready) == ("n1", 3.5, False)
    assert node.labels["topology.kubernetes.io/zone"] == "z1"
    assert node.taints[0].key == "dedicated" and node.taints[0].effect == "NoSchedule"
    sc = scenario_of(path)
    assert sc.nodes["n1"].zone == "z1" and not sc.nodes["n1"].ready and sc.nodes["n1"].allocatable_cpu == 3.5


def test_deprecated_zone_label_alone_gives_no_zone(tmp_path):
    path = write(
        tmp_path,
        """\
        {"apiVersion": "v1", "kind": "Node",
         "metadata": {"name": "old", "labels": {"failure-domain.beta.kubernetes.io/zone": "z1"}}}
        """,
        "node.json",
    )
    notes: list[str] = []
    sc = scenario_of(path, notes=notes)
    assert sc.nodes["old"].zone == ""
    assert any("deprecated failure-domain.beta.kubernetes.io/zone" in n for n in notes)


def test_cpu_quantities():
    assert [cpu_cores(x) for x in ("3500m", "4", "0.5", "1k", 2, "x", True)] == [3.5, 4.0, 0.5, 1000.0, 2.0, None, None]


def test_pod_fields_and_namespace_default(tmp_path):
    path = write(
        tmp_path,
        """\
        apiVersion: v1
        kind: Pod
        metadata: {name: p, labels: {app: a}, deletionTimestamp: "2026-01-01T00:00:00Z"}
        spec: {nodeName: n1}
        status:
          phase: Running
          podIP: 10.1.2.3
          conditions: [{type: Ready, status: "True"}]
        ---
        apiVersion: v1
        kind: Pod
        metadata: {name: q, namespace: other}
        spec: {nodeName: n1}
        status: {phase: Running, conditions: [{type: Ready, status: "False"}]}
        """,
    )
    p, q = read_objects([path]).pods
    assert (p.name, p.node, p.ip, p.ready, p.terminating) == ("default/p", "n1", "10.1.2.3", True, True)
    assert (q.name, q.ready, q.terminating) == ("other/q", False, False)


def test_service_fields(tmp_path):
    write(
        tmp_path,
        """\
        apiVersion: v1
        kind: Service
        metadata:
          name: s
          namespace: ns
          annotations: {service.kubernetes.io/topology-mode: Auto}
        spec:
          type: LoadBalancer
          selector: {app: a}
          ports: [{name: http, port: 80, nodePort: 30080}]
          externalIPs: [192.0.2.1]
          internalTrafficPolicy: Local
          externalTrafficPolicy: Local
          trafficDistribution: PreferSameZone
          sessionAffinity: ClientIP
          sessionAffinityConfig: {clientIP: {timeoutSeconds: 600}}
        status:
          loadBalancer: {ingress: [{ip: 198.51.100.7}, {hostname: lb.example.com}]}
        """,
    )
    write(tmp_path, "{apiVersion: v1, kind: Node, metadata: {name: n1}}", "node.yaml")
    (svc,) = scenario_of(tmp_path).services
    assert svc.name == "ns/s" and svc.port == 80 and svc.target_port == 0  # targetPort defaults to port
    assert svc.node_port == 30080 and svc.load_balancer_ips == ("198.51.100.7",)
    assert svc.external_ips == ("192.0.2.1",)
    assert svc.internal_traffic_policy == TrafficPolicy.LOCAL == svc.external_traffic_policy
    assert svc.traffic_distribution == TrafficDistribution.PREFER_SAME_ZONE
    assert svc.session_affinity == SessionAffinity.CLIENT_IP and svc.session_affinity_timeout_s == 600
    assert svc.annotations["service.kubernetes.io/topology-mode"] == "Auto"


def test_service_defaults(tmp_path):
    path = write(
        tmp_path,
        """\
        apiVersion: v1
        kind: Service
        metadata: {name: s}
        spec: {type: NodePort, selector: {app: a}, ports: [{port: 8080, targetPort: 9090}]}
        ---
        {apiVersion: v1, kind: Node, metadata: {name: n1}}
        """,
    )
    notes: list[str] = []
    (svc,) = scenario_of(path, notes=notes).services
    assert svc.internal_traffic_policy == TrafficPolicy.CLUSTER == svc.external_traffic_policy
    assert svc.session_affinity == SessionAffinity.NONE and svc.session_affinity_timeout_s == 10800
    assert svc.target_port == 9090 and svc.node_port == 30000  # allocated: noted
    assert any("no nodePort given" in n for n in notes)


def test_named_target_port_resolves_on_the_pods(tmp_path):
    write(tmp_path, KIND3, "kind.yaml")
    write(
        tmp_path,
        """\
        apiVersion: apps/v1
        kind: Deployment
        metadata: {name: web}
        spec:
          replicas: 2
          selector: {matchLabels: {app: web}}
          template:
            metadata: {labels: {app: web}}
            spec: {containers: [{name: c, ports: [{name: http, containerPort: 8080}]}]}
        ---
        apiVersion: v1
        kind: Service
        metadata: {name: web}
        spec: {selector: {app: web}, ports: [{port: 80, targetPort: http}]}
        """,
    )
    sc = scenario_of(tmp_path)
    assert sc.service("default/web").target_port == 8080
    assert all(ep.address.endswith(":8080") for ep in sc.control_plane.endpoints("default/web"))


def test_headless_and_externalname_are_skipped(tmp_path):
    path = write(
        tmp_path,
        """\
        {apiVersion: v1, kind: Node, metadata: {name: n1}}
        ---
        {apiVersion: v1, kind: Service, metadata: {name: h}, spec: {clusterIP: None, ports: [{port: 80}]}}
        ---
        {apiVersion: v1, kind: Service, metadata: {name: e}, spec: {type: ExternalName, externalName: x.example}}
        """,
    )
    notes: list[str] = []
    assert scenario_of(path, notes=notes).services == ()
    assert sum("skipped, as kube-proxy skips it" in n for n in notes) == 2


def test_unknown_kinds_one_summary_line(tmp_path):
    path = write(
        tmp_path,
        """\
        {apiVersion: v1, kind: Node, metadata: {name: n1}}
        ---
        {apiVersion: v1, kind: ConfigMap, metadata: {name: a}}
        ---
        {apiVersion: v1, kind: ConfigMap, metadata: {name: b}}
        ---
        {apiVersion: networking.k8s.io/v1, kind: Ingress, metadata: {name: c}}
        """,
    )
    notes: list[str] = []
    scenario_of(path, notes=notes)
    assert [n for n in notes if n.startswith("skipped")] == [
        "skipped 3 objects of kinds not simulated: 2 ConfigMap, 1 Ingress"
    ]


# --- EndpointSlices: the API's defaults, and given slices win --------------------------------------------------


@pytest.mark.parametrize(
    ("ready", "serving", "terminating", "expected"),
    [
        (None, None, None, (True, True, False)),  # ready unknown -> ready; serving defers to ready
        (False, None, None, (False, False, False)),  # serving defers to ready
        (False, True, True, (False, True, True)),
        (True, None, None, (True, True, False)),
        (None, False, None, (True, False, False)),
    ],
)
def test_endpoint_condition_defaults(ready, serving, terminating, expected):
    assert conditions(ready, serving, terminating) == expected


SLICE_CLUSTER = """\
apiVersion: v1
kind: Node
metadata: {name: n1, labels: {topology.kubernetes.io/zone: a}}
---
apiVersion: v1
kind: Node
metadata: {name: n2, labels: {topology.kubernetes.io/zone: b}}
---
apiVersion: v1
kind: Pod
metadata: {name: p1, labels: {app: a}}
spec: {nodeName: n1}
status: {phase: Running, podIP: 10.0.1.1, conditions: [{type: Ready, status: "True"}]}
---
apiVersion: v1
kind: Pod
metadata: {name: p2, labels: {app: a}}
spec: {nodeName: n2}
status: {phase: Running, podIP: 10.0.2.1, conditions: [{type: Ready, status: "True"}]}
---
apiVersion: v1
kind: Service
metadata: {name: s}
spec: {selector: {app: a}, ports: [{name: web, port: 80, targetPort: 8080}]}
"""


def test_given_slices_win_over_the_pods(tmp_path):
    """The slice says p2 is not ready (the pods say ready) and hints p1 for zone b: kube-proxy reads the slice."""
    path = write(
        tmp_path,
        SLICE_CLUSTER
        + """\
        ---
        apiVersion: discovery.k8s.io/v1
        kind: EndpointSlice
        metadata: {name: s-1, labels: {kubernetes.io/service-name: s}}
        addressType: IPv4
        ports: [{name: web, port: 8080}]
        endpoints:
        - addresses: [10.0.1.1]
          nodeName: n1
          zone: a
          hints: {forZones: [{name: b}]}
          targetRef: {kind: Pod, name: p1}
        - addresses: [10.0.2.1]
          conditions: {ready: false}
          nodeName: n2
          zone: b
          targetRef: {kind: Pod, name: p2}
        """.replace("        ", ""),
    )
    sc = scenario_of(path)
    eps = sc.control_plane.endpoints("default/s")
    assert [(e.address, e.ready, e.serving, e.zone_hints) for e in eps] == [
        ("10.0.1.1:8080", True, True, frozenset({"b"})),
        ("10.0.2.1:8080", False, False, None),
    ]
    route = route_for(sc, "default/s", "n2", Source.POD)
    assert [e.pod for e in route.endpoints] == ["default/p1"]
    assert sc.control_plane.hints("default/s").withheld == ""


def test_slice_port_is_found_by_the_service_port_name(tmp_path):
    path = write(
        tmp_path,
        SLICE_CLUSTER
        + textwrap.dedent("""\
        ---
        apiVersion: discovery.k8s.io/v1
        kind: EndpointSlice
        metadata: {name: s-1, labels: {kubernetes.io/service-name: s}}
        addressType: IPv4
        ports: [{name: metrics, port: 9100}]
        endpoints: [{addresses: [10.0.1.1], nodeName: n1, targetRef: {kind: Pod, name: p1}}]
        """),
    )
    assert scenario_of(path).control_plane.endpoints("default/s") == ()  # no port named "web": no endpoints for it


def test_without_slices_endpoints_are_derived(tmp_path):
    path = write(tmp_path, SLICE_CLUSTER)
    sc = scenario_of(path)
    assert [(e.address, e.node_name, e.zone) for e in sc.control_plane.endpoints("default/s")] == [
        ("10.0.1.1:8080", "n1", "a"),
        ("10.0.2.1:8080", "n2", "b"),
    ]


def test_selector_only_in_its_namespace(tmp_path):
    path = write(
        tmp_path,
        """\
        {apiVersion: v1, kind: Pod, metadata: {name: p, namespace: x, labels: {app: a}}, spec: {nodeName: n1}}
        ---
        {apiVersion: v1, kind: Pod, metadata: {name: p, namespace: y, labels: {app: a}}, spec: {nodeName: n1}}
        ---
        apiVersion: v1
        kind: Service
        metadata: {name: s, namespace: x}
        spec: {selector: {app: a}, ports: [{port: 80}]}
        """,
    )
    notes: list[str] = []
    sc = scenario_of(path, notes=notes)
    assert [e.pod for e in sc.control_plane.endpoints("x/s")] == ["x/p"]
    assert any("node n1: named by a pod" in n for n in notes)  # a bare node
    assert sc.nodes["n1"].zone == "" and sc.nodes["n1"].allocatable_cpu == 0


def test_pending_and_finished_pods_are_left_out(tmp_path):
    path = write(
        tmp_path,
        """\
        {apiVersion: v1, kind: Node, metadata: {name: n1}}
        ---
        {apiVersion: v1, kind: Pod, metadata: {name: a}, status: {phase: Pending}}
        ---
        {apiVersion: v1, kind: Pod, metadata: {name: b}, spec: {nodeName: n1}, status: {phase: Succeeded}}
        """,
    )
    notes: list[str] = []
    assert scenario_of(path, notes=notes).pods == ()
    assert any("default/a: Pending" in n for n in notes) and any("default/b: phase Succeeded" in n for n in notes)


# --- kind ----------------------------------------------------------------------------------------------------------


def test_kind_node_names_labels_and_taints():
    nodes = kind_nodes(
        "k.yaml",
        {
            "apiVersion": "kind.x-k8s.io/v1alpha4",
            "kind": "Cluster",
            "nodes": [
                {"role": "control-plane"},
                {"role": "worker"},
                {"role": "worker", "labels": {"tier": "db"}},
                {"role": "worker"},
            ],
        },
    )
    assert [n.name for n in nodes] == ["kind-control-plane", "kind-worker", "kind-worker2", "kind-worker3"]
    assert [t.key for t in nodes[0].taints] == ["node-role.kubernetes.io/control-plane"]
    assert "node.kubernetes.io/exclude-from-external-load-balancers" in nodes[0].labels
    assert nodes[2].labels == {
        "kubernetes.io/hostname": "kind-worker2",
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        "tier": "db",
    }
    assert all(not n.taints for n in nodes[1:])


def test_kind_single_node_untainted_and_patched_taints():
    (solo,) = kind_nodes("k.yaml", {"apiVersion": "kind.x-k8s.io/v1alpha4", "name": "dev"})
    assert solo.name == "dev-control-plane" and solo.taints == ()
    patch = "kind: InitConfiguration\nnodeRegistration:\n  taints: []\n"
    nodes = kind_nodes(
        "k.yaml",
        {
            "apiVersion": "kind.x-k8s.io/v1alpha4",
            "nodes": [{"role": "control-plane", "kubeadmConfigPatches": [patch]}, {"role": "worker"}],
        },
    )
    assert nodes[0].taints == ()


def test_kind_cluster_gets_one_bridge(tmp_path):
    sc = scenario_of(write(tmp_path, KIND3, "kind.yaml"))
    assert dict(sc.topology.elements) == {"kind-bridge": "bridge"}
    assert sc.topology.hops("kind-worker", "kind-worker2") == 2


def test_zones_get_a_switch_each_and_a_spine():
    sc = scenario_of(DATA / "openshift_gcp_nodes_3zones.json")
    elements = dict(sc.topology.elements)
    assert elements == {
        "switch-us-east1-b": "switch",
        "switch-us-east1-c": "switch",
        "switch-us-east1-d": "switch",
        "spine": "router",
    }
    names = list(sc.topology.nodes)
    same_zone = [n for n in names if sc.nodes[n].zone == sc.nodes[names[0]].zone and n != names[0]]
    other_zone = next(n for n in names if sc.nodes[n].zone != sc.nodes[names[0]].zone)
    assert sc.topology.hops(names[0], same_zone[0]) == 2 and sc.topology.hops(names[0], other_zone) == 4


# --- placement ---------------------------------------------------------------------------------------------------


def deployment(name: str, replicas: int, spec: str = "{}", labels: str = "") -> str:
    return textwrap.dedent(f"""\
    ---
    apiVersion: apps/v1
    kind: Deployment
    metadata: {{name: {name}}}
    spec:
      replicas: {replicas}
      selector: {{matchLabels: {{app: {name}}}}}
      template:
        metadata: {{labels: {{app: {name}{labels}}}}}
        spec: {spec}
    """)


ZONED = "".join(
    f"---\n{{apiVersion: v1, kind: Node, metadata: {{name: {n}, labels: {{topology.kubernetes.io/zone: {z}, "
    f"kubernetes.io/hostname: {n}, disk: {d}}}}}}}\n"
    for n, z, d in [("a1", "a", "ssd"), ("a2", "a", "hdd"), ("b1", "b", "ssd"), ("b2", "b", "hdd")]
)


def placed(tmp_path, text: str, seed: int = 0):
    """Where each pod went, and the notes other than the placements."""
    objects = read_objects([write(tmp_path, text)])
    _, pods, notes = place(objects, seed)
    return {p.name: p.node for p in pods}, [n for n in notes if not n.startswith("placed ")]


def test_replicas_spread_over_nodes_then_zones(tmp_path):
    pods, _ = placed(tmp_path, ZONED + deployment("web", 4))
    assert sorted(pods.values()) == ["a1", "a2", "b1", "b2"]
    pods, _ = placed(tmp_path, ZONED + deployment("web", 2))
    assert sorted(pods.values()) == ["a1", "b1"]  # the second replica goes to the other zone
    pods, _ = placed(tmp_path, ZONED + deployment("web", 5))
    assert sum(name.endswith("-2") for name in pods) == 1  # a second pod on one node: a tie of four, drawn


def test_node_selector(tmp_path):
    pods, _ = placed(tmp_path, ZONED + deployment("web", 2, "{nodeSelector: {disk: ssd}}"))
    assert sorted(pods.values()) == ["a1", "b1"]


@pytest.mark.parametrize(
    ("expression", "nodes"),
    [
        ("{key: disk, operator: In, values: [hdd]}", ["a2", "b2"]),
        ("{key: topology.kubernetes.io/zone, operator: NotIn, values: [a]}", ["b1", "b2"]),
        ("{key: disk, operator: Exists}", ["a1", "a2", "b1", "b2"]),
        ("{key: gpu, operator: DoesNotExist}", ["a1", "a2", "b1", "b2"]),
    ],
)
def test_required_node_affinity(tmp_path, expression, nodes):
    spec = (
        "{affinity: {nodeAffinity: {requiredDuringSchedulingIgnoredDuringExecution: "
        f"{{nodeSelectorTerms: [{{matchExpressions: [{expression}]}}]}}}}}}}}"
    )
    pods, _ = placed(tmp_path, ZONED + deployment("web", 4, spec))
    assert sorted(set(pods.values())) == nodes


def test_taints_and_tolerations(tmp_path):
    text = textwrap.dedent("""\
    apiVersion: v1
    kind: Node
    metadata: {name: cp}
    spec: {taints: [{key: node-role.kubernetes.io/control-plane, effect: NoSchedule}]}
    ---
    apiVersion: v1
    kind: Node
    metadata: {name: w1}
    spec: {taints: [{key: dedicated, value: db, effect: NoExecute}]}
    ---
    {apiVersion: v1, kind: Node, metadata: {name: w2}, spec: {taints: [{key: soft, effect: PreferNoSchedule}]}}
    """)
    pods, _ = placed(tmp_path, text + deployment("plain", 3))
    assert set(pods.values()) == {"w2"}  # PreferNoSchedule does not keep pods off
    tolerate_db = "{tolerations: [{key: dedicated, operator: Equal, value: db}]}"
    pods, _ = placed(tmp_path, text + deployment("db", 2, tolerate_db))
    assert sorted(pods.values()) == ["w1", "w1"]  # w2's soft taint costs 3 x 100 (TaintToleration), spreading 2 x 34
    everything = "{tolerations: [{operator: Exists}]}"
    pods, _ = placed(tmp_path, text + deployment("all", 3, everything))
    assert sorted(pods.values()) == ["cp", "w1", "w2"]


def test_pod_anti_affinity_on_hostname_and_zone(tmp_path):
    def anti(key: str) -> str:
        return (
            "{affinity: {podAntiAffinity: {requiredDuringSchedulingIgnoredDuringExecution: "
            f"[{{labelSelector: {{matchLabels: {{app: web}}}}, topologyKey: {key}}}]}}}}}}"
        )

    pods, notes = placed(tmp_path, ZONED + deployment("web", 5, anti("kubernetes.io/hostname")))
    assert sorted(pods.values()) == ["a1", "a2", "b1", "b2"]
    assert notes == [
        "Deployment default/web: 1 of 5 replicas Pending: 0/4 nodes are available: 4 excluded by pod affinity or "
        "anti-affinity"
    ]
    pods, notes = placed(tmp_path, ZONED + deployment("web", 3, anti("topology.kubernetes.io/zone")))
    assert sorted(pods.values()) == ["a1", "b1"] and "1 of 3 replicas Pending" in notes[0]


def test_unplaceable_is_pending(tmp_path):
    pods, notes = placed(tmp_path, ZONED + deployment("web", 2, "{nodeSelector: {disk: nvme}}"))
    assert pods == {}
    assert notes == [
        "Deployment default/web: 2 of 2 replicas Pending: 0/4 nodes are available: 4 not matching the "
        "node selector/affinity"
    ]


def test_daemonset_skips_the_control_plane_statefulset_ordinals(tmp_path):
    sc = scenario_of(
        write(tmp_path, KIND3, "kind.yaml"),
        write(
            tmp_path,
            textwrap.dedent("""\
    apiVersion: apps/v1
    kind: DaemonSet
    metadata: {name: agent, namespace: mon}
    spec:
      selector: {matchLabels: {app: agent}}
      template: {metadata: {labels: {app: agent}}, spec: {}}
    ---
    apiVersion: apps/v1
    kind: StatefulSet
    metadata: {name: db}
    spec:
      replicas: 3
      selector: {matchLabels: {app: db}}
      template: {metadata: {labels: {app: db}}, spec: {}}
    """),
        ),
    )
    names = {p.name: p.node for p in sc.pods}
    assert names == {
        "mon/agent-kind-worker": "kind-worker",
        "mon/agent-kind-worker2": "kind-worker2",
        "default/db-0": "kind-worker",
        "default/db-1": "kind-worker2",
        "default/db-2": "kind-worker",
    }
    assert all(p.ready and not p.terminating for p in sc.pods)  # placed pods: Running and Ready


def test_workloads_whose_pods_are_in_the_dump_are_not_expanded(tmp_path):
    text = (
        ZONED
        + "---\n{apiVersion: v1, kind: Pod, metadata: {name: web-x, labels: {app: web}}, spec: {nodeName: a1}}\n"
        + deployment("web", 3)
        + textwrap.dedent("""\
        ---
        apiVersion: apps/v1
        kind: ReplicaSet
        metadata: {name: web-123, ownerReferences: [{kind: Deployment, name: web}]}
        spec:
          replicas: 3
          selector: {matchLabels: {app: web, pod-template-hash: "123"}}
          template: {metadata: {labels: {app: web, pod-template-hash: "123"}}, spec: {}}
        """)
    )
    pods, _ = placed(tmp_path, text)
    assert pods == {"default/web-x": "a1"}


def test_manifest_pod_without_node_is_scheduled(tmp_path):
    pods, _ = placed(
        tmp_path, ZONED + "---\n{apiVersion: v1, kind: Pod, metadata: {name: c}, spec: {nodeSelector: {disk: hdd}}}\n"
    )
    assert pods == {"default/c": "a2"}


# --- bad objects: one error naming file, Kind namespace/name, field, problem --------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "{apiVersion: v1, kind: Service, metadata: {name: s, namespace: n}, spec: {ports: [{port: 0}]}}",
            "Service n/s: spec.ports[0].port: is required: an integer 1-65535, got 0",
        ),
        (
            "{apiVersion: v1, kind: Service, metadata: {name: s}, spec: {internalTrafficPolicy: local, "
            "ports: [{port: 80}]}}",
            "Service default/s: spec.internalTrafficPolicy: unknown value 'local'; expected one of "
            "['Cluster', 'Local']",
        ),
        (
            "{apiVersion: v1, kind: Service, metadata: {name: s}, spec: {}}",
            "Service default/s: spec.ports: is required: at least one port",
        ),
        (
            "{apiVersion: v1, kind: Pod, metadata: {name: p, labels: {app: 1}}}",
            "Pod default/p: metadata.labels.app: must be a string, got an integer 1",
        ),
        ("{apiVersion: v1, kind: Pod, metadata: {labels: {}}}", "Pod default/: metadata.name: is required"),
        (
            "{apiVersion: v1, kind: Node, metadata: {name: n}, status: {allocatable: {cpu: lots}}}",
            "Node default/n: status.allocatable.cpu: not a CPU quantity: 'lots' (e.g. '3500m' or '4')",
        ),
        (
            "{apiVersion: v1, kind: Node, metadata: {name: n}, spec: {taints: [{key: k, effect: Never}]}}",
            "Node default/n: spec.taints[0].effect: unknown value 'Never'; expected one of "
            "['NoSchedule', 'PreferNoSchedule', 'NoExecute']",
        ),
        (
            "{apiVersion: discovery.k8s.io/v1beta1, kind: EndpointSlice, metadata: {name: e}}",
            "EndpointSlice default/e: apiVersion: must be 'discovery.k8s.io/v1', got 'discovery.k8s.io/v1beta1'",
        ),
        (
            "{apiVersion: discovery.k8s.io/v1, kind: EndpointSlice, metadata: {name: e, labels: "
            "{kubernetes.io/service-name: s}}, endpoints: [{addresses: []}]}",
            "EndpointSlice default/e: endpoints[0].addresses: must be a list of at least one address",
        ),
        (
            "{apiVersion: discovery.k8s.io/v1, kind: EndpointSlice, metadata: {name: e, labels: "
            "{kubernetes.io/service-name: s}}, endpoints: [{addresses: [1.2.3.4], conditions: {ready: 'yes'}}]}",
            "EndpointSlice default/e: endpoints[0].conditions.ready: must be a boolean, got a string 'yes'",
        ),
        (
            "{apiVersion: apps/v1, kind: Deployment, metadata: {name: d}, spec: {replicas: -1, template: {}}}",
            "Deployment default/d: spec.replicas: must be 0-150,000 (Kubernetes' pods in a cluster), got -1",
        ),
        (
            "{apiVersion: apps/v1, kind: Deployment, metadata: {name: d}, spec: {template: {spec: {affinity: "
            "{nodeAffinity: {requiredDuringSchedulingIgnoredDuringExecution: {nodeSelectorTerms: [{matchExpressions: "
            "[{key: k, operator: Near}]}]}}}}}}}",
            "Deployment default/d: spec.template.spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuring"
            "Execution.nodeSelectorTerms[0].matchExpressions[0].operator: unknown value 'Near'; expected one of "
            "['In', 'NotIn', 'Exists', 'DoesNotExist', 'Gt', 'Lt']",
        ),
        (
            "{kind: Cluster, apiVersion: kind.x-k8s.io/v1alpha4, nodes: [{role: master}]}",
            "Cluster kind: nodes[0].role: unknown value 'master'; expected one of ['control-plane', 'worker']",
        ),
        (
            "{apiVersion: v1, kind: Service, metadata: {name: s}, spec: {ports: [{port: 80, targetPort: [1]}]}}",
            "Service default/s: spec.ports[0].targetPort: must be an integer or a string, got an array [1]",
        ),
        (
            "{apiVersion: v1, kind: Pod, metadata: {name: p}, spec: {nodeName: 5}}",
            "Pod default/p: spec.nodeName: must be a string, got an integer 5",
        ),
        (
            "{apiVersion: v1, kind: Pod, metadata: {name: p}, spec: {tolerations: [{key: k, effect: Always}]}}",
            "Pod default/p: spec.tolerations[0].effect: unknown value 'Always'",
        ),
        (  # validation.ValidateClientIPAffinityConfig: 0 < timeoutSeconds <= MaxClientIPServiceAffinitySeconds
            "{apiVersion: v1, kind: Service, metadata: {name: s}, spec: {ports: [{port: 80}], sessionAffinity: "
            "ClientIP, sessionAffinityConfig: {clientIP: {timeoutSeconds: 86401}}}}",
            "Service default/s: spec.sessionAffinityConfig.clientIP.timeoutSeconds: must be 1-86400, got 86401",
        ),
        ("[1, 2]", "document 1: must be a Kubernetes object (a mapping), got an array"),
        ("a: [unclosed", "malformed YAML"),
    ],
)
def test_bad_object_is_one_error(tmp_path, text, message):
    path = write(tmp_path, text + "\n")
    with pytest.raises(SpecError) as e:
        read_objects([path])
    assert str(e.value).startswith(f"{path}: ")
    assert message in str(e.value)
    assert "\n" not in str(e.value)


def test_missing_file_and_empty_directory(tmp_path):
    with pytest.raises(SpecError, match="no such file"):
        read_objects([tmp_path / "nope.yaml"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(SpecError, match=r"a directory with no \.yaml"):
        read_objects([tmp_path / "empty"])


def test_hostile_bytes(tmp_path):
    path = tmp_path / "x.yaml"
    path.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(SpecError, match="not UTF-8"):
        read_objects([path])
    path.write_text("!!python/object/apply:os.system ['echo hacked']\n")
    with pytest.raises(SpecError, match="malformed YAML"):  # the safe loader refuses Python tags
        read_objects([path])


# --- the real samples ----------------------------------------------------------------------------------------------


def test_openshift_gcp_nodes():
    objects = read_objects([DATA / "openshift_gcp_nodes_3zones.json"])
    assert len(objects.nodes) == 6
    assert {n.cpu for n in objects.nodes} == {3.5}
    masters = [n for n in objects.nodes if "master" in n.name]
    assert len(masters) == 3 and all(any(t.key == "node-role.kubernetes.io/master" for t in n.taints) for n in masters)
    assert {n.labels["topology.kubernetes.io/zone"] for n in objects.nodes} == {
        "us-east1-b",
        "us-east1-c",
        "us-east1-d",
    }
    assert all(
        n.labels["node-role.kubernetes.io/master" if n in masters else "node-role.kubernetes.io/worker"] == ""
        for n in objects.nodes
    )


def test_daemonset_itp_local_on_the_gcp_nodes():
    """The node agent runs on the 3 workers only (the masters' NoSchedule taint is not tolerated); a pod on each
    worker reaches its own node's agent, and a pod on a master is dropped (no local endpoint)."""
    sc = scenario_of(DATA / "openshift_gcp_nodes_3zones.json", DATA / "kia_node_agent_daemonset_itp_local.yaml")
    agents = {p.node for p in sc.pods}
    assert len(agents) == 3 and all("worker" in n for n in agents)
    svc = sc.service("default/node-agent")
    assert svc.internal_traffic_policy == TrafficPolicy.LOCAL and svc.target_port == 0 and svc.port == 80
    for node in sc.topology.nodes:
        route = route_for(sc, "default/node-agent", node, Source.POD)
        if node in agents:
            assert [ep.node_name for ep in route.endpoints] == [node]
        else:
            assert route.endpoints == () and route.drop.label == "no_local_endpoints"


def test_topology_auto_on_the_gcp_nodes(tmp_path):
    """topology-mode Auto over 3 zones of equal CPU (masters left out, as the controller does): hints written."""
    path = write(
        tmp_path,
        deployment("web", 6).lstrip("-\n")
        + textwrap.dedent("""\
    ---
    apiVersion: v1
    kind: Service
    metadata: {name: web, annotations: {service.kubernetes.io/topology-mode: Auto}}
    spec: {selector: {app: web}, ports: [{port: 80}]}
    """),
    )
    sc = scenario_of(DATA / "openshift_gcp_nodes_3zones.json", path)
    assert sc.control_plane.hints("default/web").withheld == ""
    assert all(ep.zone_hints == frozenset({ep.zone}) for ep in sc.control_plane.endpoints("default/web"))


def test_onprem_nodes_without_zones():
    sc = scenario_of(DATA / "openshift_onprem_nodes_no_zone.json", DATA / "kia_node_agent_daemonset_itp_local.yaml")
    assert dict(sc.topology.elements) == {"switch-none": "switch"}
    assert all(node.zone == "" for node in sc.nodes.values())
    assert [p.node for p in sc.pods] == [n for n in sc.topology.nodes if "worker" in n]


def test_kind_dump():
    notes: list[str] = []
    sc = scenario_of(DATA / "kind_dump.yaml", notes=notes)
    assert dict(sc.topology.elements) == {"kind-bridge": "bridge"}  # providerID kind://
    assert {s.name for s in sc.services} == {"shop/web", "kube-system/kube-dns"}
    web = {ep.pod: (ep.ready, ep.serving, ep.terminating) for ep in sc.control_plane.endpoints("shop/web")}
    assert web == {
        "shop/web-7d4b9c-abcde": (True, True, False),  # conditions absent: the API's defaults
        "shop/web-7d4b9c-fghij": (False, True, True),
        "shop/web-7d4b9c-klmno": (False, False, False),
    }
    assert sc.service("shop/web").target_port == 8080
    assert "skipped 1 object of kinds not simulated: 1 ConfigMap" in notes
    outside = route_for(sc, "shop/web", "kind-worker2", Source.EXTERNAL)  # eTP Local: the local terminating one
    assert [ep.pod for ep in outside.endpoints] == ["shop/web-7d4b9c-fghij"] and outside.source_preserved


def test_endpoint_without_a_given_pod_gets_a_bare_one(tmp_path):
    """A slice endpoint whose pod is not in the input (a dump of Services and slices only) is still routed to;
    the simulation serves it with a bare pod on the endpoint's node, and says so."""
    path = write(
        tmp_path,
        """\
        {apiVersion: v1, kind: Service, metadata: {name: s}, spec: {ports: [{port: 80}]}}
        ---
        apiVersion: discovery.k8s.io/v1
        kind: EndpointSlice
        metadata: {name: s-1, labels: {kubernetes.io/service-name: s}}
        ports: [{port: 80}]
        endpoints: [{addresses: [10.1.1.1], nodeName: n1}]
        """,
    )
    notes: list[str] = []
    sc = scenario_of(path, notes=notes)
    (ep,) = sc.control_plane.endpoints("default/s")
    assert (ep.address, ep.pod, ep.node_name) == ("10.1.1.1:80", "default/endpoint-10.1.1.1", "n1")
    assert sc.pod("default/endpoint-10.1.1.1").ip == "10.1.1.1"
    assert any("simulated as a bare pod on node n1" in n for n in notes)
    assert [e.pod for e in route_for(sc, "default/s", "n1", Source.POD).endpoints] == ["default/endpoint-10.1.1.1"]
