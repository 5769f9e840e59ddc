"""`sim routes`, `sim import` and `sim run FILE... --client --service`; the manifests demo against the TOML demo;
and the property that an imported scenario routes exactly as the objects it came from."""

from __future__ import annotations

import io
import json
import tempfile
import textwrap
from dataclasses import replace
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sim import run
from sim.cli import main
from sim.errors import SpecError
from sim.experiment.analysis import summarize
from sim.io import dumps_json, load_experiment, load_scenario
from sim.io.importer import scenario_text, topology_text
from sim.io.scenario import objects_table, parse_scenario
from sim.routes import routes
from sim.routing import DataplaneConfig

ROOT = Path(__file__).parent.parent
DATA = Path(__file__).parent / "data" / "k8s"
DEMO = ROOT / "experiments" / "k8s"


def cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_routes_json_shape(capsys):
    code, out, err = cli(capsys, "routes", str(DATA / "kind_dump.yaml"), "--json")
    assert code == 0
    table = json.loads(out)
    assert set(table["services"]) == {"shop/web", "kube-system/kube-dns"}
    web = table["services"]["shop/web"]
    assert set(web) >= {"from_nodes", "external_at_nodes"}
    assert set(web["from_nodes"]) == {"kind-control-plane", "kind-worker", "kind-worker2"}
    route = web["from_nodes"]["kind-worker2"]
    assert route["outcome"] == "routed" and route["hints"].startswith("none: ")
    assert route["endpoints"] == [
        {
            "address": "10.244.1.7",
            "port": 8080,
            "pod": "shop/web-7d4b9c-abcde",
            "node": "kind-worker",
            "zone": None,
            "share": 1.0,
        }
    ]
    assert web["external_at_nodes"]["kind-control-plane"]["outcome"] == "no_local_endpoints"  # eTP Local
    assert table["services"]["kube-system/kube-dns"]["external_at_nodes"] == {}  # ClusterIP only
    assert "skipped 1 object of kinds not simulated: 1 ConfigMap" in err


def test_routes_filters_dataplane_and_stdin(capsys, monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO((DATA / "kind_dump.yaml").read_text()))
    code, out, _ = cli(
        capsys,
        "routes",
        "-",
        "--service",
        "shop/web",
        "--node",
        "kind-control-plane",
        "--dataplane",
        "cilium",
        "--json",
    )
    table = json.loads(out)
    assert code == 0 and table["dataplane"] == "cilium" and list(table["services"]) == ["shop/web"]
    assert list(table["services"]["shop/web"]["from_nodes"]) == ["kind-control-plane"]
    # Cilium's --service-no-backend-response=reject: refused at once (docs/semantics.md, 5.3)
    outside = table["services"]["shop/web"]["external_at_nodes"]["kind-control-plane"]
    assert outside["outcome"] == "no_backend_rejected"


def test_routes_text_names_what_the_client_sees(capsys):
    code, out, _ = cli(capsys, "routes", str(DEMO / "demo.toml"), "--service", "default/echo-2")
    assert code == 0
    assert "from a pod on kind-worker: default/echo-2-kind-worker (kind-worker) 100.0%  [random]" in out
    assert "from a pod on kind-control-plane: no_backends: no backend on this node (Cilium socket-LB)" in out


def test_bad_input_one_line_exit_2(capsys, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec: {ports: [{port: 99999}]}\n")
    for argv in (
        ["routes", str(bad)],
        ["routes", str(DATA / "kind_dump.yaml"), "--service", "nope"],
        ["run", str(DATA / "kind_dump.yaml"), "--client", "default/nobody", "--service", "shop/web"],
        ["run", str(DATA / "kind_dump.yaml")],
        ["import", str(bad), "-o", str(tmp_path / "x.toml")],
    ):
        code, out, err = cli(capsys, *argv)
        assert code == 2 and out == "" and err.count("\n") == 1 and err.startswith("sim: error: "), (argv, err)
    assert not (tmp_path / "x.toml").exists() and not (tmp_path / "x-topology.toml").exists()
    _, _, err = cli(capsys, "routes", str(bad))
    assert f"{bad}: Service default/s: spec.ports[0].port: is required: an integer 1-65535, got 99999" in err
    _, _, err = cli(capsys, "run", str(DATA / "kind_dump.yaml"), "--client", "default/nobody", "--service", "shop/web")
    assert "--client: no pod or external client named 'default/nobody'" in err


def test_import_then_run_and_routes(capsys, tmp_path):
    out_file = tmp_path / "dump.toml"
    code, out, _ = cli(capsys, "import", str(DATA / "kind_dump.yaml"), "-o", str(out_file))
    assert code == 0 and "wrote" in out and (tmp_path / "dump-topology.toml").is_file()
    _, direct, _ = cli(capsys, "routes", str(DATA / "kind_dump.yaml"), "--json")
    _, imported, _ = cli(capsys, "routes", str(out_file), "--json")
    assert direct == imported
    code, out, _ = cli(capsys, "run", str(out_file), "--requests", "50", "--json")
    summary = json.loads(out)
    assert code == 0 and summary["services"]["shop/web"]["sent"] == 50


def test_import_writes_slices_the_pods_do_not_imply(capsys, tmp_path):
    objects = tmp_path / "objs.yaml"
    objects.write_text(
        textwrap.dedent("""\
    {apiVersion: v1, kind: Node, metadata: {name: n1}}
    ---
    apiVersion: v1
    kind: Pod
    metadata: {name: p, labels: {app: a}}
    spec: {nodeName: n1}
    status: {phase: Running, podIP: 10.0.0.1, conditions: [{type: Ready, status: "True"}]}
    ---
    {apiVersion: v1, kind: Service, metadata: {name: s}, spec: {selector: {app: a}, ports: [{port: 80}]}}
    ---
    apiVersion: discovery.k8s.io/v1
    kind: EndpointSlice
    metadata: {name: s-1, labels: {kubernetes.io/service-name: s}}
    ports: [{port: 80}]
    endpoints:
    - addresses: [10.0.0.1]
      conditions: {ready: false, serving: true, terminating: true}
      nodeName: n1
      targetRef: {name: p}
    """)
    )
    code, _, _ = cli(capsys, "import", str(objects), "-o", str(tmp_path / "s.toml"))
    text = (tmp_path / "s.toml").read_text()
    assert code == 0 and "[[endpoint_slices]]" in text and "terminating = true" in text
    _, a, _ = cli(capsys, "routes", str(objects), "--json")
    _, b, _ = cli(capsys, "routes", str(tmp_path / "s.toml"), "--json")
    assert a == b


def test_run_straight_from_objects(capsys):
    code, out, _ = cli(
        capsys,
        "run",
        str(DEMO / "kind-cluster.yaml"),
        str(DEMO / "manifests.yaml"),
        "--client",
        "default/client",
        "--service",
        "default/echo-2",
        "--requests",
        "300",
        "--rate",
        "100",
        "--json",
    )
    s = json.loads(out)["services"]["default/echo-2"]
    assert code == 0 and s["sent"] == 300 and s["by_node"] == {"kind-worker": 300}


def _bare(scenario):
    """The demo's objects named as experiments/cilium_demo.toml names them (without the default namespace)."""

    def strip(name: str) -> str:
        return name.removeprefix("default/")

    return replace(
        scenario,
        name="cilium-demo",
        pods=tuple(replace(p, name=strip(p.name)) for p in scenario.pods),
        services=tuple(replace(s, name=strip(s.name)) for s in scenario.services),
        streams=tuple(replace(s, client=strip(s.client), service=strip(s.service)) for s in scenario.streams),
    )


def test_manifests_demo_equals_the_toml_demo():
    """Same nodes, pods, addresses, Services, network and seed, and ``default/x`` draws as ``x`` (sim.rng): the
    JSON is byte for byte that of experiments/cilium_demo.toml but for the names, which carry their namespace."""
    toml_demo, seed = load_scenario(ROOT / "experiments" / "cilium_demo.toml", {"requests": 3000})
    k8s_demo, k8s_seed = load_scenario(DEMO / "demo.toml", {"requests": 3000})
    assert seed == k8s_seed
    expected = dumps_json(summarize(run(toml_demo, seed)))
    got = dumps_json(summarize(run(k8s_demo, k8s_seed)))
    assert "default/echo-1" in got and got != expected
    assert got.replace("default/", "").replace("cilium-demo-k8s", "cilium-demo") == expected
    assert [(p.name, p.node, p.ip) for p in _bare(k8s_demo).pods] == [(p.name, p.node, p.ip) for p in toml_demo.pods]


def test_sweep_over_a_service_read_from_manifests(tmp_path):
    spec = tmp_path / "spec.toml"
    spec.write_text(
        textwrap.dedent(f"""\
    [experiment]
    name = "k8s"
    scenario = "{DEMO / "demo.toml"}"
    replications = 1
    [factors]
    'services."default/echo-2".internalTrafficPolicy' = ["Cluster", "Local"]
    'pods."default/echo-2-kind-worker".concurrency' = [1, 2]
    """)
    )
    exp = load_experiment(spec)
    assert len(exp.design_points) == 4
    policies = {p.scenario.service("default/echo-2").internal_traffic_policy.value for p in exp.design_points}
    assert policies == {"Cluster", "Local"}
    assert {p.scenario.pod("default/echo-2-kind-worker").concurrency for p in exp.design_points} == {1, 2}
    assert any(name.endswith("manifests.yaml") for name in exp.design_points[0].files)


def test_scenario_adds_to_and_changes_cluster_state(tmp_path):
    scenario = tmp_path / "s.toml"
    scenario.write_text(
        textwrap.dedent(f"""\
    cluster = ["{DEMO / "kind-cluster.yaml"}", "{DEMO / "manifests.yaml"}"]
    [network]
    same_zone_s = 0.001
    [[pods]]
    name = "default/echo-2-kind-worker"
    ready = false
    [[pods]]
    name = "default/extra"
    node = "kind-worker2"
    labels = {{ app = "echo-1" }}
    [[services]]
    name = "default/echo-1"
    internalTrafficPolicy = "Local"
    [[streams]]
    client = "default/client"
    service = "default/echo-2"
    requests = 10
    workload = {{ kind = "closed_loop" }}
    """)
    )
    sc, _ = load_scenario(scenario)
    assert not sc.pod("default/echo-2-kind-worker").ready
    assert sc.pod("default/extra").ip == "10.244.2.4"  # after the cluster's pods on kind-worker2
    assert sc.service("default/echo-1").internal_traffic_policy.value == "Local"
    assert sc.topology.path("kind-worker", "kind-worker2").mean_s == 0.002
    assert [ep.pod for ep in sc.control_plane.endpoints("default/echo-1")] == [
        "default/echo-1-kind-worker",
        "default/echo-1-kind-worker2",
        "default/extra",
    ]


# --- the property: import, then routes == routes on the objects ----------------------------------------------------

ZONES = st.sampled_from([None, "a", "b"])
CONDITION = st.sampled_from([None, True, False])


@st.composite
def clusters(draw):
    """Kubernetes objects: nodes with or without zones and CPU, pods with any conditions, Services of every type
    and policy, and for some Services EndpointSlices that disagree with the pods."""
    n_nodes = draw(st.integers(1, 4))
    docs = []
    nodes = [f"n{i}" for i in range(n_nodes)]
    for node in nodes:
        labels = {"kubernetes.io/hostname": node}
        zone = draw(ZONES)
        if zone:
            labels["topology.kubernetes.io/zone"] = zone
        doc = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": node, "labels": labels}}
        if draw(st.booleans()):
            doc["status"] = {"allocatable": {"cpu": draw(st.sampled_from(["2", "1500m", "4"]))}}
        docs.append(doc)
    pods = []
    for i in range(draw(st.integers(0, 6))):
        name = f"p{i}"
        node = draw(st.sampled_from(nodes))
        app = draw(st.sampled_from(["x", "y"]))
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "labels": {"app": app}},
            "spec": {"nodeName": node},
        }
        if draw(st.booleans()):
            ready = draw(st.booleans())
            pod["status"] = {
                "phase": "Running",
                "podIP": f"10.9.{i}.1",
                "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
            }
        if draw(st.booleans()):
            pod["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
        docs.append(pod)
        pods.append((name, node, app))
    for app in ("x", "y"):
        kind = draw(st.sampled_from(["ClusterIP", "NodePort", "LoadBalancer"]))
        spec = {
            "type": kind,
            "selector": {"app": app},
            "ports": [{"name": "web", "port": 80, "targetPort": 8080}],
            "internalTrafficPolicy": draw(st.sampled_from(["Cluster", "Local"])),
            "externalTrafficPolicy": draw(st.sampled_from(["Cluster", "Local"])),
        }
        td = draw(st.sampled_from([None, "PreferSameZone", "PreferSameNode"]))
        if td:
            spec["trafficDistribution"] = td
        meta = {"name": f"svc-{app}"}
        if draw(st.booleans()):
            meta["annotations"] = {"service.kubernetes.io/topology-mode": "Auto"}
        svc = {"apiVersion": "v1", "kind": "Service", "metadata": meta, "spec": spec}
        if kind == "LoadBalancer":
            svc["status"] = {"loadBalancer": {"ingress": [{"ip": f"198.51.100.{len(docs)}"}]}}
        docs.append(svc)
        if draw(st.booleans()):
            endpoints = []
            for name, node, pod_app in pods:
                if pod_app != app or not draw(st.booleans()):
                    continue
                ep = {"addresses": [f"10.9.{name[1:]}.1"], "nodeName": node, "targetRef": {"kind": "Pod", "name": name}}
                conds = {k: v for k in ("ready", "serving", "terminating") if (v := draw(CONDITION)) is not None}
                if conds:
                    ep["conditions"] = conds
                if draw(st.booleans()):
                    ep["hints"] = {"forZones": [{"name": draw(st.sampled_from(["a", "b"]))}]}
                endpoints.append(ep)
            docs.append(
                {
                    "apiVersion": "discovery.k8s.io/v1",
                    "kind": "EndpointSlice",
                    "metadata": {"name": f"svc-{app}-1", "labels": {"kubernetes.io/service-name": f"svc-{app}"}},
                    "addressType": "IPv4",
                    "ports": [{"name": "web", "port": 8080}],
                    "endpoints": endpoints,
                }
            )
    return docs


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(clusters(), st.sampled_from(["iptables", "ipvs", "cilium"]))
def test_import_routes_exactly_as_the_objects(docs, dataplane):
    with tempfile.TemporaryDirectory() as tmp:
        objects = Path(tmp) / "cluster.yaml"
        objects.write_text(yaml.safe_dump_all(docs))
        direct = parse_scenario(objects_table([str(objects)], dataplane), Path(tmp) / "x", need_streams=False)[0]
        out = Path(tmp) / "imported.toml"
        (Path(tmp) / "imported-topology.toml").write_text(topology_text(direct.topology))
        out.write_text(scenario_text(direct, "imported-topology.toml", [str(objects)], []))
        imported, _ = load_scenario(out, need_streams=False)
        assert imported.dataplane == DataplaneConfig(name=dataplane)
        assert dumps_json(routes(imported)) == dumps_json(routes(direct))


def test_explicit_topology_takes_the_cluster_nodes_labels(tmp_path):
    """`topology = ...` beside `cluster = [...]`: the network as written, the nodes' labels from the Node objects;
    a node the topology lacks is an error naming it."""
    nodes = tmp_path / "nodes.yaml"
    nodes.write_text(
        "{apiVersion: v1, kind: Node, metadata: {name: kind-worker, labels: {topology.kubernetes.io/zone: z}},"
        " status: {allocatable: {cpu: '2'}}}\n"
    )
    scenario = tmp_path / "s.toml"
    scenario.write_text(f'cluster = ["nodes.yaml"]\ntopology = "{ROOT / "topologies" / "kind.toml"}"\n')
    sc, _ = load_scenario(scenario, need_streams=False)
    assert sc.nodes["kind-worker"].zone == "z" and sc.nodes["kind-worker"].allocatable_cpu == 2
    assert "kind-bridge" in sc.topology.elements and len(sc.topology.nodes) == 3
    nodes.write_text("{apiVersion: v1, kind: Node, metadata: {name: elsewhere}}\n")
    with pytest.raises(SpecError) as e:
        load_scenario(scenario, need_streams=False)
    assert str(e.value) == f"{scenario}: cluster: node 'elsewhere' is not in topology 'kind'"


def test_timeline_over_given_endpoint_slices(tmp_path):
    """A pod behind a given EndpointSlice terminated by the timeline: the slice follows it (terminating, then
    gone), while the other endpoint keeps what its slice says (here: not ready although its pod is)."""
    (tmp_path / "c.yaml").write_text(
        textwrap.dedent("""\
    {apiVersion: v1, kind: Node, metadata: {name: n1}}
    ---
    {apiVersion: v1, kind: Node, metadata: {name: n2}}
    ---
    {apiVersion: v1, kind: Pod, metadata: {name: a, labels: {app: s}}, spec: {nodeName: n1}}
    ---
    {apiVersion: v1, kind: Pod, metadata: {name: b, labels: {app: s}}, spec: {nodeName: n2}}
    ---
    {apiVersion: v1, kind: Service, metadata: {name: s}, spec: {selector: {app: s}, ports: [{port: 80}]}}
    ---
    apiVersion: discovery.k8s.io/v1
    kind: EndpointSlice
    metadata: {name: s-1, labels: {kubernetes.io/service-name: s}}
    ports: [{port: 80}]
    endpoints:
    - {addresses: [10.244.0.2], nodeName: n1, targetRef: {name: a}}
    - {addresses: [10.244.1.2], nodeName: n2, targetRef: {name: b}, conditions: {ready: false}}
    """)
    )
    (tmp_path / "s.toml").write_text(
        textwrap.dedent("""\
    cluster = ["c.yaml"]
    duration_s = 10
    [[streams]]
    client = "default/b"
    service = "default/s"
    workload = { kind = "poisson", rate_rps = 10 }
    [[timeline]]
    at_s = 1
    action = "terminate"
    pod = "default/a"
    grace_s = 2
    """)
    )
    sc, _ = load_scenario(tmp_path / "s.toml")
    states = [
        [(ep.pod, ep.ready, ep.serving, ep.terminating) for ep in sc.control_plane.endpoints("default/s", v)]
        for v in range(len(sc.control_plane.versions))
    ]
    assert states == [
        [("default/a", True, True, False), ("default/b", False, False, False)],
        [("default/a", False, True, True), ("default/b", False, False, False)],
        [("default/b", False, False, False)],
    ]


def test_a_policy_change_on_a_dump_is_one_command(capsys):
    """``sim run DUMP --client --service --set services."NS/NAME".FIELD=VALUE``: the set reaches the Service read
    from the objects (it is not silently ignored), and a bad value is the one error naming the --set."""
    base = ["run", str(DATA / "kind_dump.yaml"), "--client", "default/client", "--service", "shop/web"]
    code, out, _ = cli(capsys, *base, "--requests", "50", "--json")
    assert code == 0 and _service(out, "shop/web")["externalTrafficPolicy"] == "Local"
    field = 'services."shop/web".externalTrafficPolicy'
    code, out, _ = cli(capsys, *base, "--requests", "50", "--json", "--set", f"{field}=Cluster")
    assert code == 0 and _service(out, "shop/web")["externalTrafficPolicy"] == "Cluster"
    code, _, err = cli(capsys, *base, "--set", f"{field}=Clustr")
    assert code == 2 and err.count("\n") == 1 and f"--set {field}: unknown value 'Clustr'" in err


def test_set_reaches_objects_named_by_a_scenario_file(capsys):
    """The same through a scenario file naming cluster state (``cluster = [...]``)."""
    demo = str(DEMO / "demo.toml")
    field = 'services."default/echo-2".internalTrafficPolicy'
    code, out, _ = cli(capsys, "run", demo, "--requests", "50", "--json", "--set", f"{field}=Cluster")
    assert code == 0 and _service(out, "default/echo-2")["internalTrafficPolicy"] == "Cluster"


def _service(run_json: str, name: str) -> dict:
    """The Service ``name`` as a run's JSON describes its cluster (``cluster.services``)."""
    return next(s for s in json.loads(run_json)["cluster"]["services"] if s["name"] == name)
