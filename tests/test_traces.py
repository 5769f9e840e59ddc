"""Traces in: the Jaeger and OTLP readers, the call graph derived from spans (sim.traces), and `sim import` writing
it in the scenario contract's keys (issue 25: ``calls``, ``parallel``, ``count``, ``probability``, ``call_mode``).

The shipped exports (experiments/traces/, sources in its README) are checked against counts made by hand from
their spans, listed in each test: which spans are requests, which are calls, and the gaps the calls leave in a
request (its self time). docs/traces.md gives each rule.
"""

from __future__ import annotations

import base64
import json
import tomllib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sim.callgraph import Call, CallMode, Parallel
from sim.cli import main
from sim.errors import SpecError
from sim.io import load_scenario
from sim.io.tracefiles import read_spans, split_traces
from sim.traces import derive, self_time_ns

TRACES = Path(__file__).parent.parent / "experiments" / "traces"
HOTROD = TRACES / "hotrod-otlp.json"
HOTROD_SERIAL = TRACES / "hotrod-serial-otlp.json"
PETCLINIC = TRACES / "petclinic-jaeger.json"
CLUSTER = TRACES / "hotrod-cluster.yaml"


def graph_of(*files: Path):
    return derive(read_spans([str(f) for f in files]))


def cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


# --- the shipped exports against hand counts -------------------------------------------------------------------


def test_petclinic_jaeger_by_hand():
    """5 spans: api-gateway's server span (4902 us, the root) holds its client span (2499 us), whose child is
    customers-service's server span (1739 us); that one's two children are JDBC spans with no span.kind and no
    peer tag, so they are its own work. Self times: 4902 - 2499 = 2403 us and 1739 us."""
    g = graph_of(PETCLINIC)
    assert list(g.services) == ["api-gateway", "customers-service"]
    gateway, customers = g.services.values()
    assert gateway.self_times_s == (2403e-6,) and customers.self_times_s == (1739e-6,)
    assert g.graph.of("api-gateway").stages == (Call("customers-service"),)
    assert g.graph.of("customers-service").stages == ()
    assert (g.traces, g.spans) == (1, 5)


def test_hotrod_otlp_by_hand():
    """HotROD's /dispatch (Jaeger v3's OTLP, workers -W 3). frontend's server span [.630407050, 1.333015327] s
    (times after 1782036644 s) makes 12 client calls: customer [.636668325, .898226779], driver [.898589215,
    1.125442138], then 10 to route from 1.125551248 that overlap one another to 1.332902792 (a pool of 3). The
    gaps: 6261275 + 362436 + 109110 + 112535 ns = 6845356 ns. customer's GET /customer (258421463 ns) holds
    mysql's client span (257310354 ns; mysql has a span of its own, its parent in customer, so it is a request
    of mysql); driver's FindNearest holds 14 redis-manual spans one after another; route's 10 spans have no
    children."""
    g = graph_of(HOTROD)
    by = g.services
    assert list(by) == ["frontend", "customer", "driver", "route", "mysql", "redis-manual"]
    front = by["frontend"]
    assert front.requests == 1 and front.self_times_s == (6845356e-9,)
    assert g.graph.of("frontend").stages == (Call("customer"), Call("driver"), Parallel((Call("route", 10),)))
    assert by["customer"].self_times_s == ((258421463 - 257310354) / 1e9,)
    assert g.graph.of("customer").stages == (Call("mysql"),)
    assert by["mysql"].self_times_s == (257310354e-9,)
    assert g.graph.of("driver").stages == (Call("redis-manual", 14),)
    assert by["redis-manual"].requests == 14
    assert sorted(by["route"].self_times_s) == sorted(
        ns / 1e9
        for ns in (36402913, 46463284, 60534152, 58018834, 67893958, 57990249, 40308987, 49183191, 43142462, 60099363)
    )
    assert front.calls_per_request == {"customer": 1.0, "driver": 1.0, "route": 10.0}
    assert any("ran at most 3 at a time" in n for n in g.notes)


def test_hotrod_serial_otlp_by_hand():
    """The same request at -W 1 (jaeger's n_plus_one_full_serial fixture): the 10 route calls run one after
    another, so they are one sequential stage of count 10, not a parallel one. frontend's self time is the 13
    gaps of its server span [458639880223, 459756847510] ns (after 1787132000 s) around its 12 calls: 139892 +
    174050 + 130530 + 115969 + 92710 + 98740 + 85899 + 84219 + 85669 + 128910 + 202950 + 145410 + 183200 =
    1668148 ns."""
    g = graph_of(HOTROD_SERIAL)
    assert g.graph.of("frontend").stages == (Call("customer"), Call("driver"), Call("route", 10))
    assert g.service("frontend").self_times_s == (1668148e-9,)


# --- the rules, on small exports made for each ------------------------------------------------------------------


def otlp(*resources: tuple[str, list[dict[str, Any]]]) -> dict[str, Any]:
    return {
        "resourceSpans": [
            {
                "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": svc}}]},
                "scopeSpans": [{"scope": {"name": "t"}, "spans": spans}],
            }
            for svc, spans in resources
        ]
    }


def span(sid: str, parent: str | None, start_ms: int, end_ms: int, kind: Any = None, trace: str = "a" * 32, **extra):
    out: dict[str, Any] = {
        "traceId": trace,
        "spanId": sid * 16 if len(sid) == 1 else sid,
        "name": "op",
        "startTimeUnixNano": str(start_ms * 1_000_000),
        "endTimeUnixNano": str(end_ms * 1_000_000),
        **extra,
    }
    if parent is not None:
        out["parentSpanId"] = parent * 16 if len(parent) == 1 else parent
    if kind is not None:
        out["kind"] = kind
    return out


def write(tmp_path: Path, doc: Any, name: str = "t.json") -> Path:
    path = tmp_path / name
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    return path


def test_parallel_calls_count_once_and_a_skewed_child_is_clipped(tmp_path):
    """web [0, 100] ms calls a [10, 50] and b [30, 60] (overlapping: one parallel stage, covering 10..60), then c,
    whose server span claims [95, 120] with no client span (its clock runs ahead): clipped to 95..100. Self
    time 100 - 50 - 5 = 45 ms. Subtracting the calls' sum instead of their union gives 25 ms, and not clipping c
    25 ms too (the union 10..60 and 95..120 is 75 ms)."""
    doc = otlp(
        ("web", [span("1", None, 0, 100, 2), span("2", "1", 10, 50, 3), span("3", "1", 30, 60, 3)]),
        ("a", [span("4", "2", 11, 49, 2)]),
        ("b", [span("5", "3", 31, 59, 2)]),
        ("c", [span("6", "1", 95, 120, 2)]),
    )
    g = derive(read_spans([str(write(tmp_path, doc))]))
    assert g.service("web").self_times_s == (45e-3,)
    assert g.graph.of("web").stages == (Parallel((Call("a"), Call("b"))), Call("c"))


def test_ids_in_base64_kinds_by_name_and_json_lines(tmp_path):
    """The collector's file exporter writes one OTLP object a line; ids may be base64 (protobuf's JSON mapping)
    and kinds enum names: the same graph as hex ids and numbers."""
    b64 = lambda h: base64.b64encode(bytes.fromhex(h)).decode()  # noqa: E731
    tid = "0123456789abcdef0123456789abcdef"
    first = otlp(("web", [span(b64("11" * 8), None, 0, 10, "SPAN_KIND_SERVER", trace=b64(tid))]))
    first["resourceSpans"][0]["scopeSpans"][0]["spans"].append(
        span("22" * 8, "11" * 8, 2, 8, "SPAN_KIND_CLIENT", trace=tid)
    )
    second = otlp(("db", [span(b64("33" * 8), b64("22" * 8), 3, 7, 2, trace=b64(tid))]))
    path = write(tmp_path, json.dumps(first) + "\n" + json.dumps(second) + "\n")
    g = derive(read_spans([str(path)]))
    assert g.graph.of("web").stages == (Call("db"),)
    assert g.service("web").self_times_s == (4e-3,) and g.service("db").self_times_s == (4e-3,)


def test_a_database_seen_only_through_client_spans_is_a_service(tmp_path):
    """A client span with no child naming db.system (or peer.service, which wins) makes that database a callee,
    its self time the client span's duration; a client span naming nothing stays its caller's own work."""
    db = [{"key": "db.system", "value": {"stringValue": "postgresql"}}]
    peer = [*db, {"key": "peer.service", "value": {"stringValue": "orders-db"}}]
    doc = otlp(
        (
            "api",
            [
                span("1", None, 0, 100, 2),
                span("2", "1", 10, 20, 3, attributes=db),
                span("3", "1", 30, 50, 3, attributes=peer),
                span("4", "1", 60, 70, 3),
            ],
        )
    )
    g = derive(read_spans([str(write(tmp_path, doc))]))
    api = g.service("api")
    assert g.graph.of("api").stages == (Call("postgresql"), Call("orders-db"))
    assert api.self_times_s == (70e-3,)
    assert g.service("postgresql").self_times_s == (10e-3,) and g.service("orders-db").self_times_s == (20e-3,)
    assert any("1 client span of api names no callee" in n for n in g.notes)


def test_a_repeated_span_is_dropped_and_a_reused_id_refused(tmp_path):
    """Exports repeat spans (jaeger's otlp2jaeger fixture holds one span twice): the copy is dropped with a note;
    one id for two different spans is an error naming both."""
    doc = otlp(("web", [span("1", None, 0, 10, 2), span("2", "1", 2, 4, 3, attributes=_peer("db"))] * 2))
    spans = doc["resourceSpans"][0]["scopeSpans"][0]["spans"]
    spans[2:] = [dict(s) for s in spans[2:]]
    g = derive(read_spans([str(write(tmp_path, doc))]))
    assert g.service("web").self_times_s == (8e-3,) and g.spans == 2
    assert "2 duplicate spans dropped (same trace, id and times)" in g.notes
    spans[3]["endTimeUnixNano"] = "5000000"
    with pytest.raises(SpecError, match="span id 2222222222222222 is used twice"):
        derive(read_spans([str(write(tmp_path, doc))]))


def test_probability_and_mean_count_over_requests(tmp_path):
    """Four requests of web: each calls auth once; two of them also call cache, three times in a row. cache is
    written as count 3 with probability 0.5: 1.5 calls per request."""
    spans = []
    for r in range(4):
        t0 = 1000 * r
        spans.append(span(f"{r}a" * 8, None, t0, t0 + 100, 2, trace=f"{r}" * 32))
        spans.append(span(f"{r}b" * 8, f"{r}a" * 8, t0 + 1, t0 + 2, 3, trace=f"{r}" * 32, attributes=_peer("auth")))
        for k in range(3 if r % 2 else 0):
            s = span(f"{r}c{k}".ljust(16, "0"), f"{r}a" * 8, t0 + 10 + 5 * k, t0 + 12 + 5 * k, 3, trace=f"{r}" * 32)
            s["attributes"] = _peer("cache")
            spans.append(s)
    g = derive(read_spans([str(write(tmp_path, otlp(("web", spans))))]))
    web = g.service("web")
    assert web.requests == 4
    assert g.graph.of("web").stages == (Call("auth"), Call("cache", 3, 0.5))
    assert web.calls_per_request == {"auth": 1.0, "cache": 1.5}


def _peer(name: str) -> list[dict[str, Any]]:
    return [{"key": "peer.service", "value": {"stringValue": name}}]


def jaeger(spans: list[dict[str, Any]], processes: dict[str, str]) -> dict[str, Any]:
    return {
        "data": [
            {
                "traceID": "t1",
                "spans": spans,
                "processes": {p: {"serviceName": s, "tags": []} for p, s in processes.items()},
            }
        ]
    }


def jspan(sid: str, pid: str, start_us: int, dur_us: int, parent: str | None = None, kind=None, ref="CHILD_OF"):
    out: dict[str, Any] = {
        "traceID": "t1",
        "spanID": sid,
        "operationName": "op",
        "references": [{"refType": ref, "traceID": "t1", "spanID": parent}] if parent else [],
        "startTime": start_us,
        "duration": dur_us,
        "tags": [{"key": "span.kind", "type": "string", "value": kind}] if kind else [],
        "processID": pid,
    }
    return out


def test_jaeger_producer_consumer_is_async_and_kindless_spans_read(tmp_path):
    """orders' server span has a producer child; the consumer in billing FOLLOWS_FROM it and runs after the request
    ends: billing is a callee, the call asynchronous, so orders' call_mode is async. A span with no span.kind whose
    child is in another service is a call too (many Jaeger clients tag only servers)."""
    doc = jaeger(
        [
            jspan("r", "p1", 0, 100, kind="server"),
            jspan("p", "p1", 10, 5, "r", kind="producer"),
            jspan("c", "p2", 200, 50, "p", kind="consumer", ref="FOLLOWS_FROM"),
            jspan("k", "p1", 20, 30, "r"),
            jspan("s", "p3", 25, 20, "k"),
        ],
        {"p1": "orders", "p2": "billing", "p3": "stock"},
    )
    g = derive(read_spans([str(write(tmp_path, doc))]))
    orders = g.graph.of("orders")
    assert orders.stages == (Call("billing"), Call("stock"))
    assert orders.mode is CallMode.SYNC  # one async call of two: the majority rule keeps sync, and notes it
    assert any("1 of 2 calls asynchronous" in n for n in g.notes)
    assert g.service("orders").self_times_s == (65e-6,)
    doc["data"][0]["spans"] = doc["data"][0]["spans"][:3]
    assert derive(read_spans([str(write(tmp_path, doc))])).graph.of("orders").mode is CallMode.ASYNC


@given(
    st.integers(0, 50),
    st.integers(0, 50),
    st.lists(st.tuples(st.integers(-20, 120), st.integers(0, 40)), max_size=8),
)
def test_self_time_is_the_duration_less_the_covered_instants(start, length, calls):
    """Against counting the covered integer instants one by one: 0 <= self <= duration, parallel calls once."""
    end = start + length
    intervals = [(a, a + d) for a, d in calls]
    covered = {t for a, b in intervals for t in range(max(a, start), min(b, end))}
    assert self_time_ns(start, end, intervals) == length - len(covered)


# --- bad traces: one line each, exit 2, nothing written -----------------------------------------------------------


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        (jaeger([jspan("a", "p9", 0, 10)], {"p1": "x"}), "processID: broken reference: 'p9' is not one of"),
        (
            jaeger([jspan("a", "p1", 0, 10, "b"), jspan("b", "p1", 0, 10, "a")], {"p1": "x"}),
            "spans a -> b -> a are each other's parents",
        ),
        (
            otlp(
                ("x", [span("1", None, 0, 10, 2), span("2", "1", 1, 2, 3)]),
                ("y", [span("3", "2", 1, 2, 2), span("4", "3", 1, 2, 3)]),
                ("x", [span("5", "4", 1, 2, 2)]),
            ),
            "the traced calls form a cycle x -> y -> x",
        ),
        ({"data": []}, "Jaeger JSON with no spans"),
        ({"resourceSpans": []}, "OTLP JSON with no spans"),
        ('{"data": [{"traceID": "t1", "spans": [', "line 1: malformed JSON"),
        ({"resourceSpans": [{"scopeSpans": [{"spans": [span("1", None, 5, 1)]}]}]}, "ends before the span starts"),
        ({"resourceSpans": [{"scopeSpans": [{"spans": [{**span("1", None, 0, 1), "spanId": "xyz"}]}]}]}, "16 hex"),
        ({"traceID": "t", "resourceSpans": 3}, "resourceSpans: must be an array"),
    ],
    ids=[
        "broken-ref",
        "parent-cycle",
        "call-cycle",
        "empty-jaeger",
        "empty-otlp",
        "non-json",
        "negative",
        "id",
        "type",
    ],
)
def test_bad_traces_one_line_exit_2(capsys, tmp_path, doc, message):
    bad = write(tmp_path, doc)
    out = tmp_path / "x.toml"
    code, _, err = cli(capsys, "import", str(bad), "-o", str(out))
    assert code == 2 and err.count("\n") == 1 and message in err and str(bad) in err, err
    assert not out.exists() and not (tmp_path / "x-topology.toml").exists()


def test_a_huge_trace_is_refused_before_it_is_read(capsys, tmp_path, monkeypatch):
    monkeypatch.setattr("sim.io.tracefiles.MAX_TRACE_BYTES", 1000)
    bad = write(tmp_path, otlp(("x", [span(f"{i:016x}", None, 0, 1, 2) for i in range(40)])))
    code, _, err = cli(capsys, "import", str(bad), "-o", str(tmp_path / "x.toml"))
    assert code == 2 and "a trace file may have at most 1,000" in err and err.count("\n") == 1


def test_traces_are_told_from_kubernetes_objects_by_content(tmp_path):
    objects = write(tmp_path, {"apiVersion": "v1", "kind": "List", "items": []}, "objs.json")
    assert split_traces([str(HOTROD), str(objects), str(PETCLINIC), "-"]) == (
        [str(HOTROD), str(PETCLINIC)],
        [str(objects), "-"],
    )


# --- sim import: the contract written -------------------------------------------------------------------------


def test_import_a_trace_alone(capsys, tmp_path):
    out = tmp_path / "hotrod.toml"
    code, stdout, err = cli(capsys, "import", str(HOTROD), "-o", str(out))
    assert code == 0, err
    doc = tomllib.loads(out.read_text())
    services = {s["name"]: s for s in doc["services"]}
    assert services["frontend"]["calls"] == [
        {"service": "customer"},
        {"service": "driver"},
        {"parallel": [{"service": "route", "count": 10}]},
    ]
    assert services["driver"]["calls"] == [{"service": "redis-manual", "count": 14}]
    assert "calls" not in services["route"] and "call_mode" not in services["frontend"]
    pods = {p["name"]: p for p in doc["pods"]}
    assert pods["frontend-0"]["service_time"] == {"dist": "empirical", "samples_s": [0.006845356]}
    assert len(pods["route-0"]["service_time"]["samples_s"]) == 10 and "service_time" not in pods["client"]
    assert doc["streams"] == [
        {"client": "client", "service": "frontend", "requests": 1000, "workload": {"kind": "closed_loop"}}
    ]
    assert "frontend -> route  10 per request, in parallel" in stdout
    assert "frontend: 1 request, self time median 6.845 ms" in stdout
    assert "one pod per traced service (frontend-0, customer-0, driver-0" in err


def test_import_traces_with_the_cluster_they_ran_on(capsys, tmp_path):
    """Traced names map to the Services of that name in any namespace (hotrod/frontend); mysql and redis-manual
    have none, which is a note, and the calls to them are left out; the self times go on every pod a Service
    selects; only the entry Service gets a stream."""
    out = tmp_path / "app.toml"
    code, _, err = cli(capsys, "import", str(CLUSTER), str(HOTROD), "-o", str(out))
    assert code == 0, err
    doc = tomllib.loads(out.read_text())
    services = {s["name"]: s for s in doc["services"]}
    assert services["hotrod/frontend"]["calls"][2] == {"parallel": [{"service": "hotrod/route", "count": 10}]}
    assert "calls" not in services["hotrod/customer"] and "calls" not in services["hotrod/driver"]
    route_pods = [p for p in doc["pods"] if p["labels"] == {"app": "route"}]
    assert len(route_pods) == 3 and all(len(p["service_time"]["samples_s"]) == 10 for p in route_pods)
    assert [s["service"] for s in doc["streams"]] == ["hotrod/frontend"]
    assert "service_time" not in next(p for p in doc["pods"] if p["name"] == "hotrod/client")
    assert "traced service 'mysql' has no Service of that name: calls to it (from customer)" in err


def test_the_written_scenario_runs_its_traced_call_graph(capsys, tmp_path):
    """`sim run` simulates what `sim import` wrote from the HotROD trace, calls included: per frontend request one
    call to customer and to driver, ten to route, fourteen from driver to redis-manual, one from customer to mysql
    (the hand count of the trace); the pods' service times are the traced self times."""
    out = tmp_path / "hotrod.toml"
    assert cli(capsys, "import", str(HOTROD), "-o", str(out))[0] == 0
    scenario = load_scenario(out)[0]
    frontend = next(p for p in scenario.pods if p.name == "frontend-0")
    assert frontend.service_time.samples_s == (0.006845356,)
    code, stdout, err = cli(capsys, "run", str(out), "--requests", "20", "--json")
    assert code == 0, err
    sent = {name: s["sent"] for name, s in json.loads(stdout)["services"].items()}
    assert sent == {"frontend": 20, "customer": 20, "driver": 20, "route": 200, "mysql": 20, "redis-manual": 280}


@pytest.mark.parametrize("trace", [HOTROD, HOTROD_SERIAL, PETCLINIC])
def test_the_written_scenario_reads_back_whole(capsys, tmp_path, trace):
    out = tmp_path / "app.toml"
    assert cli(capsys, "import", str(trace), "-o", str(out))[0] == 0
    load_scenario(out)


_KEYS = [
    "resource", "attributes", "key", "value", "stringValue", "scopeSpans", "spans", "traceId", "spanId",
    "parentSpanId", "kind", "startTimeUnixNano", "endTimeUnixNano", "traceID", "spanID", "processID", "processes",
    "serviceName", "references", "refType", "startTime", "duration", "tags", "process",
]  # fmt: skip
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**64), 2**64) | st.sampled_from(["", "0", "a" * 16, "1" * 32, "p1"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(_KEYS), inner, max_size=5),
    max_leaves=25,
)


@given(_JSON)
def test_hostile_documents_are_refused_by_name_or_read(doc):
    """Any JSON under a trace's opening key is read or refused with a SpecError, never another exception."""
    from sim.io.jaeger import jaeger_spans
    from sim.io.otlp import otlp_spans

    for reader, wrapped in ((otlp_spans, {"resourceSpans": doc}), (jaeger_spans, {"data": doc})):
        try:
            spans = reader(Path("t.json"), wrapped)
            if spans:
                derive(spans)
        except SpecError as e:
            assert e.path == "t.json" and "\n" not in str(e)
