"""Cilium's own load-balancer script tests (``pkg/loadbalancer/tests/testdata/*.txtar``, copied unchanged into
``tests/data/cilium/``), replayed through ``sim routes`` with the Cilium dataplane.

Each step of a script is one case: the Service and EndpointSlices the script has applied by then, from the local
node (``testnode``, with the zone ``test/set-node-labels`` gives it), compared with what the script expects: the
frontend's backends (``db/cmp frontends``) in the states its backends table gives (``db/cmp backends``). The
datapath uses the active ones, and the terminating ones only when none is active (the BPF reconciler puts
terminating backends after the ``COUNT`` active slots, maintenance ones nowhere: ``topology-aware-starting.txtar``
says so and asserts it on the map dump); that set is what a connection may reach, which is what ``sim routes``
prints.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from sim.cli import main
from sim.io import load_scenario
from sim.routing import Source
from sim.scenario import route_for

DATA = Path(__file__).parent / "data" / "cilium"
LOCAL_NODE = "testnode"


def sections(name: str) -> dict[str, str]:
    """A txtar archive's files by name."""
    parts = re.split(r"^-- (\S+) --$\n", (DATA / name).read_text(), flags=re.M)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def table(text: str) -> list[dict[str, str]]:
    """A ``db/cmp`` table: a header row and rows, columns at the header's offsets."""
    head, *rows = [line for line in text.splitlines() if line.strip()]
    starts = [m.start() for m in re.finditer(r"\S+", head)]
    bounds = list(zip(starts, [*starts[1:], None], strict=True))
    return [{head[a:b].strip(): row[a:b].strip() for a, b in bounds} for row in rows]


def expected(files: dict[str, str], frontends: str, backends: str | None) -> set[str]:
    """What the datapath may pick: the frontend's active backends, else its terminating ones."""
    listed = {be.removesuffix("/TCP") for be in table(files[frontends])[0]["Backends"].split(", ") if be}
    state = (
        {r["Address"].removesuffix("/TCP"): r.get("State", "active") for r in table(files[backends])}
        if backends
        else {}
    )
    active = {be for be in listed if state.get(be, "active") == "active"}
    return active or {be for be in listed if state.get(be) == "terminating"}


# (archive, step, the files applied by then, local node's zone, frontends table, backends table)
CASES = [
    (
        "prefer-same-node.txtar",
        "both slices",
        ["endpointslice.yaml", "endpointslice2.yaml"],
        None,
        "frontends-local.table",
        None,
    ),
    ("prefer-same-node.txtar", "local slice deleted", ["endpointslice2.yaml"], None, "frontends-remote.table", None),
    (
        "prefer-same-node.txtar",
        "local slice restored",
        ["endpointslice.yaml", "endpointslice2.yaml"],
        None,
        "frontends-local.table",
        None,
    ),
    (
        "prefer-same-node.txtar",
        "PreferSameNode removed",
        ["endpointslice.yaml", "endpointslice2.yaml", "-tD"],
        None,
        "frontends-all.table",
        None,
    ),
    (
        "topology-aware-starting.txtar",
        "both ready",
        ["endpointslice-ready.yaml", "endpointslice2.yaml"],
        None,
        "frontends-local.table",
        "backends-ready.table",
    ),
    (
        "topology-aware-starting.txtar",
        "local terminating",
        ["endpointslice-terminating.yaml", "endpointslice2.yaml"],
        None,
        "frontends-both.table",
        "backends-terminating.table",
    ),
    (
        "topology-aware-starting.txtar",
        "local starting",
        ["endpointslice-starting.yaml", "endpointslice2.yaml"],
        None,
        "frontends-both.table",
        "backends-starting.table",
    ),
    (
        "topology-aware-starting.txtar",
        "local ready again",
        ["endpointslice-ready.yaml", "endpointslice2.yaml"],
        None,
        "frontends-local.table",
        "backends-ready.table",
    ),
    (
        "topology-aware-terminating.txtar",
        "both active",
        ["endpointslice1.yaml", "endpointslice2.yaml"],
        "foo",
        "frontends-both.table",
        "backends-both-active.table",
    ),
    (
        "topology-aware-terminating.txtar",
        "one terminating without hints",
        ["endpointslice1.yaml", "endpointslice2.yaml:terminating"],
        "foo",
        "frontends-only-eps1.table",
        "backends-one-terminating.table",
    ),
    (
        "topology-aware-terminating.txtar",
        "both terminating",
        ["endpointslice1.yaml:terminating", "endpointslice2.yaml:terminating"],
        "foo",
        "frontends-both-terminating.table",
        "backends-both-terminating.table",
    ),
    (
        "prefer-same-zone-fallback.txtar",
        "zone backend on another port",
        ["endpointslice-wrong-port.yaml", "endpointslice-remote.yaml"],
        "foo",
        "frontends-remote.table",
        None,
    ),
]


def terminating(text: str) -> str:
    """The script's three ``sed`` lines: not ready, terminating, the ``foo`` hint gone."""
    return (
        text.replace("ready: true", "ready: false")
        .replace("terminating: false", "terminating: true")
        .replace("- name: foo", "")
    )


def objects(files: dict[str, str], applied: list[str], zone: str | None) -> list[dict]:
    """The Service, the slices applied (``:terminating`` after the script's seds; ``-tD`` drops
    trafficDistribution, which the script sets to ``Disabled``, a value the API refuses) and a Node for every node
    named, the local one with its zone label."""
    service = yaml.safe_load(files["service.yaml"])
    if "-tD" in applied:
        del service["spec"]["trafficDistribution"]
    slices = []
    for name in (a for a in applied if a != "-tD"):
        text = files[name.split(":")[0]]
        slices.append(yaml.safe_load(terminating(text) if name.endswith(":terminating") else text))
    nodes = {LOCAL_NODE} | {ep["nodeName"] for sl in slices for ep in sl["endpoints"]}
    labels = {LOCAL_NODE: {"topology.kubernetes.io/zone": zone} if zone else {}}
    node_objects = [
        {"apiVersion": "v1", "kind": "Node", "metadata": {"name": n, "labels": labels.get(n, {})}}
        for n in sorted(nodes)
    ]
    return [service, *slices, *node_objects]


def routed(
    tmp_path: Path,
    capsys,
    objs: list[dict],
    dataplane: str = "cilium",
    at: str = "from_nodes",
    options: str = "",
    service: str = "test/echo",
) -> set[str]:
    """``sim routes`` (``--enable-service-topology`` as the scripts start Cilium, and ``options``, more
    ``[dataplane]`` lines) from the local node: a pod's route (``from_nodes``) or an external client's arriving
    there (``external_at_nodes``)."""
    (tmp_path / "objects.yaml").write_text(yaml.safe_dump_all(objs))
    (tmp_path / "s.toml").write_text(
        f'name = "txtar"\ncluster = ["objects.yaml"]\n[dataplane]\nname = "{dataplane}"\n'
        + ("enable_service_topology = true\n" if dataplane == "cilium" else "")
        + options
    )
    assert main(["routes", str(tmp_path / "s.toml"), "--json", "--node", LOCAL_NODE]) == 0
    route = json.loads(capsys.readouterr().out)["services"][service][at][LOCAL_NODE]
    return {f"{ep['address']}:{ep['port']}" for ep in route["endpoints"]}


@pytest.mark.parametrize(("archive", "step", "applied", "zone", "frontends", "backends"), CASES)
def test_cilium_script_step(tmp_path, capsys, archive, step, applied, zone, frontends, backends):
    """Cilium ``pkg/loadbalancer/tests/testdata/<archive>``: the step's expected frontend backends, as the datapath
    uses them, equal what ``sim routes --dataplane cilium`` routes to from ``testnode``. Fails on the rules before
    this issue at ``topology-aware-starting`` 'local terminating' (PreferSameNode took the draining local pod
    alone). ('one terminating without hints' passed before too: the active backend wins over the terminating one
    either way; ``test_zone_safeguard_ignores_hintless_terminating_backends`` is where the old rule shows.)"""
    files = sections(archive)
    assert routed(tmp_path, capsys, objects(files, applied, zone)) == expected(files, frontends, backends)


def lbmaps(text: str) -> dict[str, set[str]]:
    """A ``lb/maps-dump``: each frontend (``ADDR``, ``/i`` for the internal scope) and the backends of its first
    ``COUNT`` slots, the ones the datapath picks from (terminating ones sit after them)."""
    backends = dict(re.findall(r"^BE: ID=(\d+) ADDR=(\S+)/TCP", text, flags=re.M))
    count: dict[str, int] = {}
    slots: dict[str, dict[int, str]] = {}
    for addr, slot, rest in re.findall(r"^SVC: ID=\d+ ADDR=(\S+) SLOT=(\d+) (.*)$", text, flags=re.M):
        if slot == "0":
            count[addr] = int(re.search(r"COUNT=(\d+)", rest).group(1))  # type: ignore[union-attr]
        else:
            slots.setdefault(addr, {})[int(slot)] = backends[re.search(r"BEID=(\d+)", rest).group(1)]  # type: ignore[union-attr]
    return {a: {slots[a][k] for k in range(1, n + 1)} for a, n in count.items() if not a.endswith(":0/ANY")}


@pytest.mark.parametrize(("service", "expected"), [("service_tp_local.yaml", "lbmaps.expected"),
                                                    ("service_tp_mixed.yaml", "lbmaps_tp_mixed.expected")])  # fmt: skip
def test_cilium_trafficpolicy_script(tmp_path, capsys, service, expected):
    """Cilium ``pkg/loadbalancer/tests/testdata/trafficpolicy.txtar``: the BPF maps on ``testnode`` for a
    LoadBalancer Service with both policies Local, then eTP=Cluster with iTP=Local (two scopes). The ClusterIP
    frontend is what ``sim routes`` routes a pod by, the LB IP's external scope an outside client, its internal
    scope (``/i``) a pod calling the LB IP (socket-LB's ``scope_switch``)."""
    files = sections("trafficpolicy.txtar")
    objs = [yaml.safe_load(files[service]), yaml.safe_load(files["endpointslice.yaml"])]
    objs += [{"apiVersion": "v1", "kind": "Node", "metadata": {"name": n}} for n in (LOCAL_NODE, "othernode")]
    want = lbmaps(files[expected])
    assert routed(tmp_path, capsys, objs) == want["10.96.50.104:80/TCP"]
    assert routed(tmp_path, capsys, objs, at="external_at_nodes") == want["1.1.1.1:80/TCP"]
    scenario = load_scenario(tmp_path / "s.toml", need_streams=False)[0]
    route = route_for(scenario, "test/echo", LOCAL_NODE, Source.POD_EXTERNAL)
    assert {ep.address for ep in route.endpoints} == want.get("1.1.1.1:80/TCP/i", want["1.1.1.1:80/TCP"])


GRACEFUL_STEPS = [
    ({"$TERM1": "false", "$READY1": "true", "$TERM2": "false", "$READY2": "true"}, "lbmaps-active.expected"),
    ({"$TERM1": "true", "$READY1": "false", "$TERM2": "false", "$READY2": "true"}, "lbmaps-terminating1.expected"),
    ({"$TERM1": "true", "$READY1": "false", "$TERM2": "true", "$READY2": "false"}, "frontends-terminating2.table"),
]


@pytest.mark.parametrize(("replace", "expect"), GRACEFUL_STEPS)
def test_cilium_graceful_termination_script(tmp_path, capsys, replace, expect):
    """Cilium ``pkg/loadbalancer/tests/testdata/graceful-termination.txtar``: two active backends; the first
    terminating (the map's ``COUNT`` slots hold the active one only); both terminating (then they serve). The
    slice's unnamed port serves the Service's unnamed port."""
    files = sections("graceful-termination.txtar")
    text = files["endpointslice.yaml.tmpl"]
    for old, new in replace.items():
        text = text.replace(old, new)
    objs = [yaml.safe_load(files["service.yaml"]), yaml.safe_load(text)]
    objs += [
        {"apiVersion": "v1", "kind": "Node", "metadata": {"name": n}}
        for n in (LOCAL_NODE, "graceful-term-control-plane")
    ]
    if expect.startswith("lbmaps"):
        want = lbmaps(files[expect])["10.96.116.33:8081/TCP"]
    else:
        want = expected(files, expect, None)
    assert routed(tmp_path, capsys, objs, service="test/graceful-term-svc") == want


TOPOLOGY_AWARE_STEPS = [
    ("foo", [], "frontends.table"),
    ("baz", [], "frontends-no-backends.table"),
    ("bar", [], "frontends.table"),
    ("bar", [("topology-mode", "topology-nope")], "frontends-no-topo.table"),
    ("bar", [("topology-mode", "topology-nope"), ("#trafficD", "trafficD")], "frontends.table"),
]


@pytest.mark.parametrize(("zone", "seds", "frontends"), TOPOLOGY_AWARE_STEPS)
def test_cilium_topology_aware_script_older_writer(tmp_path, capsys, zone, seds, frontends):
    """Cilium ``pkg/loadbalancer/tests/testdata/topology-aware.txtar`` at 15a7434666a5, the writer before the
    topology safeguards (cilium/cilium#41024): replayed with ``cilium_topology_safeguards = false``, step by step
    (the node's zone, the script's seds of ``service.yaml``): a zone no backend is hinted for gets none. The
    current writer keeps every backend there instead (the safeguard's fallback)."""
    files = sections("topology-aware.txtar")
    text = files["service.yaml"]
    for old, new in seds:
        text = text.replace(old, new)
    files["service.yaml"] = text
    objs = objects(files, ["endpointslice.yaml", "endpointslice2.yaml"], zone)
    safeguards_off = "cilium_topology_safeguards = false\n"
    assert routed(tmp_path, capsys, objs, options=safeguards_off) == expected(files, frontends, None)
    if zone == "baz":
        assert routed(tmp_path, capsys, objs) == {"10.244.1.1:80", "10.244.2.1:80"}


# --- The differences no script above shows, each from the upstream line it follows -------------------------------


def service(**spec) -> dict:
    """The scripts' ``test/echo`` Service with ``spec`` on top."""
    base = {"ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 80}], "selector": {"name": "echo"}}
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "echo", "namespace": "test"},
        "spec": {**base, **spec},
    }


def endpoint(addresses, node, *, zone=None, hints=None, ready=True) -> dict:
    out = {
        "addresses": addresses,
        "nodeName": node,
        "conditions": {"ready": ready, "serving": True, "terminating": not ready},
    }
    if zone:
        out["zone"] = zone
    if hints is not None:
        out["hints"] = {"forZones": [{"name": h} for h in hints]}
    return out


def eps(*endpoints: dict, port_name: str = "http") -> dict:
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "addressType": "IPv4",
        "metadata": {
            "name": f"echo-{port_name or 'unnamed'}",
            "namespace": "test",
            "labels": {"kubernetes.io/service-name": "echo"},
        },
        "endpoints": list(endpoints),
        "ports": [{"name": port_name, "port": 80, "protocol": "TCP"}],
    }


def nodes(zones: dict[str, str]) -> list[dict]:
    return [
        {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": n, "labels": {"topology.kubernetes.io/zone": z} if z else {}},
        }
        for n, z in zones.items()
    ]


TOPOLOGY_AWARE = {"metadata": {"annotations": {"service.kubernetes.io/topology-mode": "Auto"}}}


def aware(svc: dict) -> dict:
    svc["metadata"]["annotations"] = TOPOLOGY_AWARE["metadata"]["annotations"]
    return svc


def test_every_address_of_an_endpoint_is_a_cilium_backend(tmp_path, capsys):
    """Cilium ``pkg/k8s/endpoints.go`` ``ParseEndpointSliceV1``: "Add reference to the backend configuration for
    each of the addresses", one backend per address; kube-proxy ``pkg/proxy/endpointslicecache.go``
    ``addEndpoints`` uses ``endpoint.Addresses[0]`` only."""
    objs = [service(), eps(endpoint(["10.244.1.1", "10.244.1.2"], LOCAL_NODE)), *nodes({LOCAL_NODE: ""})]
    assert routed(tmp_path, capsys, objs) == {"10.244.1.1:80", "10.244.1.2:80"}
    assert routed(tmp_path, capsys, objs, "iptables") == {"10.244.1.1:80"}


def test_a_named_service_port_takes_an_unnamed_slice_port_in_cilium_only(tmp_path, capsys):
    """Cilium ``writer.go`` ``matchesFrontend``: ``fe.PortName != "" && len(be.PortNames) > 0`` is the only port
    name test, and ``conversions.go`` ``convertEndpoints`` drops the unnamed name ("Filter out the unnamed port"),
    so an unnamed slice port serves the Service's ``http`` port; kube-proxy joins a slice port to the Service port
    of the same name (``endpointslicecache.go``), so it has no endpoint."""
    objs = [service(), eps(endpoint(["10.244.1.1"], LOCAL_NODE), port_name=""), *nodes({LOCAL_NODE: ""})]
    assert routed(tmp_path, capsys, objs) == {"10.244.1.1:80"}
    assert routed(tmp_path, capsys, objs, "iptables") == set()


def test_zone_safeguard_ignores_hintless_terminating_backends(tmp_path, capsys):
    """Cilium ``writer.go`` ``DefaultSelectBackends`` with ``topologyPreferenceCandidate`` (cilium/cilium#45947,
    ``topology-aware-terminating.txtar``): a terminating backend, never hinted by the EndpointSlice controller,
    does not turn the zone filter off, so from zone foo only the foo backend is used. The rule before it made the
    missing hint fall back to every zone."""
    objs = [
        aware(service()),
        eps(
            endpoint(["10.244.1.1"], LOCAL_NODE, zone="foo", hints=["foo"]),
            endpoint(["10.244.2.1"], "other-node", zone="bar", hints=["bar"]),
            endpoint(["10.244.2.2"], "other-node", zone="bar", ready=False),
        ),
        *nodes({LOCAL_NODE: "foo", "other-node": "bar"}),
    ]
    assert routed(tmp_path, capsys, objs) == {"10.244.1.1:80"}


def test_with_etp_local_the_zone_safeguard_looks_at_local_backends_only(tmp_path, capsys):
    """Cilium ``writer.go`` ``DefaultSelectBackends``: the safeguard loop skips what ``onlyLocal`` skips (``if
    onlyLocal { if len(be.NodeName) != 0 && be.NodeName != w.nodeName { continue } }``), so a remote backend
    without hints does not turn the filter off for an eTP=Local frontend: an external client at ``testnode`` (zone
    foo) reaches only its local backend hinted for foo."""
    objs = [
        aware(service(type="NodePort", externalTrafficPolicy="Local")),
        eps(
            endpoint(["10.244.1.1"], LOCAL_NODE, zone="foo", hints=["foo"]),
            endpoint(["10.244.1.2"], LOCAL_NODE, zone="foo", hints=["bar"]),
            endpoint(["10.244.2.1"], "other-node", zone="bar"),
        ),
        *nodes({LOCAL_NODE: "foo", "other-node": "bar"}),
    ]
    objs[0]["spec"]["ports"][0]["nodePort"] = 30080
    assert routed(tmp_path, capsys, objs, at="external_at_nodes") == {"10.244.1.1:80"}


def test_hints_of_an_endpoint_without_a_zone_are_dropped_by_cilium(tmp_path, capsys):
    """Cilium ``reflectors/conversions.go`` ``convertEndpoints``: ``if be.Zone != ""`` sets ``BackendParams.Zone``
    and with it ``ForZones``; an endpoint with hints but no zone has none, so the safeguard sees a missing hint and
    uses every zone. kube-proxy reads ``hints.forZones`` whatever the zone (``endpointslicecache.go``), so it keeps
    the zone filter."""
    objs = [
        aware(service()),
        eps(
            endpoint(["10.244.1.1"], LOCAL_NODE, zone="foo", hints=["foo"]),
            endpoint(["10.244.2.1"], "other-node", hints=["foo"]),
            endpoint(["10.244.3.1"], "third-node", zone="bar", hints=["bar"]),
        ),
        *nodes({LOCAL_NODE: "foo", "other-node": "", "third-node": "bar"}),
    ]
    assert routed(tmp_path, capsys, objs) == {"10.244.1.1:80", "10.244.2.1:80", "10.244.3.1:80"}
    assert routed(tmp_path, capsys, objs, "iptables") == {"10.244.1.1:80", "10.244.2.1:80"}
