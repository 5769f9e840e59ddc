"""Issue 23: what real manifests and kind configs say, read as the cluster would hold them. Each test is a scenario
read from objects (``sim.io.objects_table`` + ``parse_scenario``, as ``sim routes`` / ``sim run`` read them) and
names the upstream file and function it follows."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from sim.cluster import ServiceType
from sim.errors import SpecError
from sim.guards import warnings
from sim.io.cluster.kubernetes import read_objects
from sim.io.scenario import objects_table, parse_scenario
from sim.routes import format_routes, routes


def write(tmp_path: Path, text: str, name: str = "objects.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def scenario_of(*files: Path, notes: list[str] | None = None):
    table = objects_table([str(f) for f in files])
    return parse_scenario(table, Path("(command line)"), need_streams=False, notes=notes)[0]


KIND_ZONES = """\
kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
nodes:
- role: control-plane
- role: worker
  kubeadmConfigPatches:
  - |
    kind: JoinConfiguration
    nodeRegistration:
      kubeletExtraArgs:
        node-labels: "topology.kubernetes.io/zone=zone-a,tier=web"
- role: worker
  kubeadmConfigPatches:
  - |
    kind: JoinConfiguration
    nodeRegistration:
      kubeletExtraArgs:
      - name: node-labels
        value: topology.kubernetes.io/zone=zone-b
"""

LINUX_DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      nodeSelector: {kubernetes.io/os: linux, kubernetes.io/arch: amd64}
      containers: [{name: web, image: nginx}]
"""


def test_kind_nodes_carry_kubelets_labels_and_node_labels(tmp_path):
    """kubernetes ``pkg/kubelet/kubelet_node_status.go`` ``initialNode``: kubelet registers hostname, os and arch;
    kind passes ``kubeletExtraArgs: node-labels`` to kubelet's ``--node-labels`` (``pkg/cluster/internal/kubeadm/
    config.go``). A Deployment selecting ``kubernetes.io/os: linux`` is placed (it stayed Pending), and the zones
    set through node-labels reach the nodes."""
    notes: list[str] = []
    sc = scenario_of(write(tmp_path, KIND_ZONES, "kind.yaml"), write(tmp_path, LINUX_DEPLOYMENT), notes=notes)
    assert {p.node for p in sc.pods} == {"kind-worker", "kind-worker2"}
    assert not [n for n in notes if "Pending" in n]
    assert sc.nodes["kind-worker"].zone == "zone-a" and sc.nodes["kind-worker2"].zone == "zone-b"
    assert sc.nodes["kind-worker"].labels["tier"] == "web"
    assert sc.nodes["kind-control-plane"].labels["kubernetes.io/os"] == "linux"
    assert dict(sc.topology.elements) == {"kind-bridge": "bridge"}  # zones or not, kind's nodes share one bridge


ENDPOINTS = """\
apiVersion: v1
kind: Service
metadata: {name: db, namespace: shop}
spec:
  ports: [{name: sql, port: 5432, targetPort: 5432}]
---
apiVersion: v1
kind: Endpoints
metadata: {name: db, namespace: shop}
subsets:
- addresses:
  - {ip: 10.244.1.9, nodeName: kind-worker}
  notReadyAddresses:
  - {ip: 10.244.2.9, nodeName: kind-worker2}
  ports: [{name: sql, port: 5432}]
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{port: 80}]
---
apiVersion: v1
kind: Endpoints
metadata: {name: web}
subsets:
- addresses: [{ip: 10.244.1.50, nodeName: kind-worker}]
  ports: [{port: 80}]
"""


def test_endpoints_of_a_selectorless_service_are_mirrored(tmp_path):
    """kubernetes ``pkg/controller/endpointslicemirroring/endpointslicemirroring_controller.go`` ``syncEndpoints``:
    only a selectorless Service's Endpoints are mirrored (``addressToEndpoint``: ``addresses`` ready,
    ``notReadyAddresses`` not); a Service with a selector gets its slices from the EndpointSlice controller, so its
    Endpoints object is not read."""
    kind = write(
        tmp_path,
        "kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nnodes: [{role: control-plane}, "
        "{role: worker}, {role: worker}]\n",
        "kind.yaml",
    )
    sc = scenario_of(kind, write(tmp_path, ENDPOINTS))
    db = sc.control_plane.endpoints("shop/db")
    assert [(e.address, e.ready, e.node_name) for e in db] == [
        ("10.244.1.9:5432", True, "kind-worker"),
        ("10.244.2.9:5432", False, "kind-worker2"),
    ]
    assert (
        sc.control_plane.endpoints("default/web") == ()
    )  # selects no pod; its Endpoints object is the controller's, not mirrored
    assert not [w for w in warnings(sc) if "shop/db" in w]


def test_a_selectorless_service_without_endpoints_is_named_as_the_input_says(tmp_path):
    """The warning names the Service and what it lacks, not a ``services[i].selector`` path the input lacks."""
    objects = "apiVersion: v1\nkind: Service\nmetadata: {name: ext}\nspec: {ports: [{port: 80}]}\n"
    sc = scenario_of(
        write(tmp_path, "apiVersion: v1\nkind: Node\nmetadata: {name: n1}\n", "n.yaml"), write(tmp_path, objects)
    )
    (warning,) = warnings(sc)
    assert warning == "Service 'default/ext' has no selector and no EndpointSlice or Endpoints names it: no endpoints"


def test_running_pod_without_ready_condition_is_not_ready(tmp_path):
    """kubernetes ``pkg/api/v1/pod/util.go`` ``IsPodReady``: ready only with a Ready condition that is True; a
    Running pod whose status has no conditions is not ready (its endpoint is not ready), with a note."""
    objects = """\
    apiVersion: v1
    kind: Node
    metadata: {name: n1}
    ---
    apiVersion: v1
    kind: Pod
    metadata: {name: p, labels: {app: a}}
    spec: {nodeName: n1}
    status: {phase: Running, podIP: 10.244.0.5}
    ---
    apiVersion: v1
    kind: Service
    metadata: {name: a}
    spec: {selector: {app: a}, ports: [{port: 80}]}
    """
    notes: list[str] = []
    sc = scenario_of(write(tmp_path, objects), notes=notes)
    assert [e.ready for e in sc.control_plane.endpoints("default/a")] == [False]
    assert any("Running with no Ready condition: not ready (IsPodReady" in n for n in notes)


def test_load_balancer_without_ingress_is_shown_as_load_balancer(tmp_path):
    """``spec.type: LoadBalancer`` before the cloud gives it an ingress IP: still a LoadBalancer (it has a
    nodePort), not a NodePort, in ``sim routes``."""
    objects = """\
    apiVersion: v1
    kind: Node
    metadata: {name: n1}
    ---
    apiVersion: v1
    kind: Service
    metadata: {name: lb}
    spec: {type: LoadBalancer, selector: {app: a}, ports: [{port: 80, nodePort: 30080}]}
    """
    sc = scenario_of(write(tmp_path, objects))
    assert sc.service("default/lb").kind == ServiceType.LOAD_BALANCER
    assert "Service default/lb  LoadBalancer" in format_routes(sc, routes(sc))


def test_an_object_given_twice_merges_when_identical_and_fails_when_not(tmp_path):
    """The API server holds one object per kind and ``namespace/name``: identical copies (a Node in a dump and
    in a manifest) are read once; different ones are one error naming both files."""
    node = "apiVersion: v1\nkind: Node\nmetadata: {name: n1, labels: {topology.kubernetes.io/zone: a}}\n"
    a, b = write(tmp_path, node, "a.yaml"), write(tmp_path, node, "b.yaml")
    assert [n.name for n in read_objects([a, b]).nodes] == ["n1"]
    c = write(tmp_path, node.replace("zone: a", "zone: b"), "c.yaml")
    with pytest.raises(SpecError) as e:
        read_objects([a, c])
    assert str(e.value) == f"{c}: Node default/n1: given twice with different content: also in {a}"


HOST_NETWORK = """\
apiVersion: v1
kind: Node
metadata: {name: n1}
---
apiVersion: v1
kind: Pod
metadata: {name: agent}
spec: {nodeName: n1, hostNetwork: true}
status: {phase: Running, podIP: 10.244.0.5, conditions: [{type: Ready, status: "True"}]}
---
apiVersion: v1
kind: Pod
metadata: {name: app}
spec: {nodeName: n1}
status: {phase: Running, podIP: 10.244.0.6, conditions: [{type: Ready, status: "True"}]}
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: exporter}
spec:
  selector: {matchLabels: {app: exporter}}
  template:
    metadata: {labels: {app: exporter}}
    spec: {hostNetwork: true, containers: [{name: e, image: e}]}
"""


def test_host_network_pods_are_read_and_written(tmp_path):
    """``spec.hostNetwork`` (k8s.io/api/core/v1 ``PodSpec.HostNetwork``) on a Pod and on a DaemonSet's template:
    the pods are ``host_network`` (their calls are the node's own traffic: kube-proxy's ``--src-type LOCAL``), a pod
    without it is not, and ``sim import`` writes ``host_network = true``, which reads back the same."""
    from sim.cli import main
    from sim.io import load_scenario

    expected = {"default/agent": True, "default/app": False, "default/exporter-n1": True}
    objects = write(tmp_path, HOST_NETWORK)
    assert {p.name: p.host_network for p in scenario_of(objects).pods} == expected
    out = tmp_path / "imported.toml"
    assert main(["-q", "import", str(objects), "-o", str(out)]) == 0
    assert out.read_text().count("host_network = true") == 2
    assert {p.name: p.host_network for p in load_scenario(out, need_streams=False)[0].pods} == expected
