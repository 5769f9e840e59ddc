"""The field tables: a Service's (``sim.io.cluster.schema.SERVICE_FIELDS``): what ``sim import`` writes, the
scenario reader reads back, and a Kubernetes object gives the same value at the field's path; and each
distribution kind's (``sim.io.durations.DISTRIBUTIONS``); an EndpointSlice endpoint's
(``ENDPOINT_FIELDS``)."""

from __future__ import annotations

import json
import tomllib
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from sim.cluster import Endpoint, Service, ServiceType, SessionAffinity, TrafficDistribution, TrafficPolicy
from sim.distributions import Constant, Empirical, Exponential, Gamma, LogNormal, Uniform
from sim.errors import SpecError
from sim.io.cluster import builders
from sim.io.cluster.kubernetes import read_objects
from sim.io.cluster.schema import ENDPOINT_FIELDS, SELECTOR, SERVICE_FIELDS, from_table, to_toml
from sim.io.durations import DISTRIBUTIONS, duration, duration_value
from sim.io.importer import _service as service_entry
from sim.io.importer import _table, value
from sim.io.scenario import _service as read_service
from sim.io.typed import Table

SAMPLE: dict[str, Any] = {
    "type": ServiceType.LOAD_BALANCER,
    "internal_traffic_policy": TrafficPolicy.LOCAL,
    "external_traffic_policy": TrafficPolicy.LOCAL,
    "health_check_node_port": 30100,
    "load_balancer_source_ranges": ("10.0.0.0/8",),
    "load_balancer_ips": ("203.0.113.7",),
    "external_ips": ("198.51.100.9",),
    "traffic_distribution": TrafficDistribution.PREFER_SAME_NODE,
    "session_affinity": SessionAffinity.CLIENT_IP,
    "session_affinity_timeout_s": 60.0,
    "annotations": {"example.com/owner": "team-a"},
}
"""A value other than the default for every field of the table: a field added without one fails here."""


def _sampled() -> Service:
    return replace(Service(name="default/web", selector={"app": "web"}), **SAMPLE)


def test_every_field_of_the_table_has_a_sample_that_is_not_its_default() -> None:
    assert set(SAMPLE) == {f.attr for f in SERVICE_FIELDS}
    default = Service(name="")
    assert [f.attr for f in SERVICE_FIELDS if getattr(default, f.attr) == SAMPLE[f.attr]] == []


def test_what_sim_import_writes_the_scenario_reader_reads_back() -> None:
    """Every field written (none left at its default), and read back equal (a writer and a reader of one kind
    that disagree, e.g. a CIDR list written as a string, fail here)."""
    service = _sampled()
    entry = service_entry(service)
    text = "\n".join(_table("services", entry))
    table = Table(Path("s.toml"), "services[0]", tomllib.loads(text)["services"][0])
    back = read_service(table)
    assert back == service
    assert (dict(back.selector), dict(back.annotations)) == (dict(service.selector), dict(service.annotations))
    written = set(entry) - {"name", "port", SELECTOR.key}
    assert written == {f.key.split(".")[0] for f in SERVICE_FIELDS}


def test_a_kubernetes_service_gives_each_field_at_its_path(tmp_path: Path) -> None:
    """A LoadBalancer Service with every field's path set reads as the sample (the load balancer's IPs from its
    ingress, as the reader derives them)."""
    spec: dict[str, Any] = {"type": "LoadBalancer", "selector": {"app": "web"}, "ports": [{"port": 80}]}
    obj: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web"},
        "spec": spec,
        "status": {"loadBalancer": {"ingress": [{"ip": "203.0.113.7"}]}},
    }
    for f in SERVICE_FIELDS:
        if not f.path:
            continue
        value = SAMPLE[f.attr]
        raw: Any = value.value if f.enum else list(value) if isinstance(value, tuple) else value
        *outer, last = f.path.split(".")
        into = obj
        for k in outer:
            into = into.setdefault(k, {})
        into[last] = int(raw) if f.attr == "session_affinity_timeout_s" else raw
    path = tmp_path / "svc.json"
    path.write_text(json.dumps(obj))
    (ks,) = read_objects([path]).services
    assert {attr: ks.fields[attr] for attr in SAMPLE} == SAMPLE


@pytest.mark.parametrize(
    ("key", "given", "problem"),
    [
        ("loadBalancerSourceRanges", ["nope"], "services[0].loadBalancerSourceRanges: 'nope' is not a CIDR"),
        ("sessionAffinityConfig", {}, "services[0].sessionAffinityConfig.clientIP: is required"),
        ("sessionAffinity", "Sticky", "services[0].sessionAffinity: unknown value 'Sticky'"),
    ],
)
def test_a_bad_field_names_its_key(key: str, given: Any, problem: str) -> None:
    table = Table(Path("s.toml"), "services[0]", {"name": "web", key: given})
    with pytest.raises(SpecError, match=problem.replace(".", r"\.").replace("[", r"\[")):
        read_service(table)


DIST_SAMPLES = {
    "constant": Constant(0.25),
    "exponential": Exponential(0.002),
    "lognormal": LogNormal(0.003, 0.5),
    "uniform": Uniform(0.001, 0.004),
    "gamma": Gamma(0.002, 2.5),
    "empirical": Empirical((0.001, 0.002, 0.0035)),
}
"""One of each distribution kind: a kind added to the table without one fails here."""


@pytest.mark.parametrize("name", sorted(DISTRIBUTIONS))
def test_each_distribution_written_by_its_field_table_reads_back_equal(name: str) -> None:
    """``duration_value`` writes a distribution's fields as ``DISTRIBUTIONS`` names them and ``duration`` reads
    them back to an equal one (a field left out of the table, or written under another key, fails here)."""
    assert set(DIST_SAMPLES) == set(DISTRIBUTIONS)
    d = DIST_SAMPLES[name]
    text = f"x = {value(duration_value(d))}"
    back = duration(Table(Path("s.toml"), "", tomllib.loads(text)), "x")
    assert back == d


def test_an_endpoint_written_by_its_field_table_reads_back_equal() -> None:
    """Every field of ``ENDPOINT_FIELDS`` set away from its default is written and read back into an equal
    endpoint; the conditions are always written (an endpoint not ready must not read back as the API's default)."""
    ep = Endpoint(
        "10.244.1.5:8080",
        ready=False,
        serving=True,
        terminating=True,
        node_name="kind-worker",
        zone="a",
        zone_hints=frozenset({"b", "a"}),
        node_hints=frozenset({"kind-worker"}),
        pod="shop/api-1",
        cilium_only=True,
        ports=(("grpc", 9090), ("http", 8080)),
    )
    entry = to_toml(ENDPOINT_FIELDS, ep, Endpoint(""))
    assert list(entry) == [f.key for f in ENDPOINT_FIELDS]
    assert entry["forZones"] == ["a", "b"]
    text = "\n".join(_table("endpoints", entry))
    table = Table(Path("s.toml"), "endpoints[0]", tomllib.loads(text)["endpoints"][0])
    assert builders.endpoint(**from_table(table, ENDPOINT_FIELDS)) == ep
    bare = to_toml(ENDPOINT_FIELDS, Endpoint("10.0.0.1:80"), Endpoint(""))
    assert bare == {"address": "10.0.0.1:80", "ready": True, "serving": True, "terminating": False}
