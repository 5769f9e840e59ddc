"""The record columns: the derived ones (client, client's node, Service, endpoint's node) equal what the scenario
says, built here independently from names; only the others are stored (<= 64 bytes a request)."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from sim.engine import run
from sim.io import load_scenario
from sim.outcomes import DropReason, Outcome
from sim.records import (
    COLUMNS,
    DERIVED,
    PICK_AFFINITY,
    PICK_FRESH,
    PICK_REUSED,
    STORED,
    Columns,
    RunResult,
    flag_lookups,
    pack_flags,
)
from sim.solver import events_needed
from tests.conftest import DEMO, ROOT, solve_fast

FILES = [DEMO, ROOT / "experiments" / "etp_local_lb.toml"]  # pod clients on many nodes; external clients, drops


def _runs() -> list[tuple[str, RunResult]]:
    out = []
    for path in FILES:
        scenario, seed = load_scenario(path, {"requests": 400})
        out.append((f"{path.name} des", run(scenario, seed)))
        if events_needed(scenario) is None:
            out.append((f"{path.name} fast", solve_fast(scenario, seed)))
    return out


RUNS = _runs()


def _expected(result: RunResult) -> dict[str, np.ndarray]:
    """The derived columns from the scenario's names alone: stream k is ``scenario.streams[k]``, a client is a pod
    (on its node) or an external client (node -1), an endpoint is a pod (on its node), -1 none."""
    sc, c = result.scenario, result.columns
    node_of = {p.name: result.node_names.index(p.node) for p in sc.pods}
    streams = [sc.streams[k] for k in c["stream"].tolist()]
    return {
        "client": np.array([result.client_names.index(s.client) for s in streams], dtype=np.int32),
        "client_node": np.array([node_of.get(s.client, -1) for s in streams], dtype=np.int16),
        "service": np.array([result.service_names.index(s.service) for s in streams], dtype=np.int16),
        "endpoint_node": np.array(
            [-1 if e < 0 else node_of[result.pod_names[e]] for e in c["endpoint"].tolist()], dtype=np.int16
        ),
    }


@pytest.mark.parametrize(("name", "result"), RUNS, ids=[name for name, _ in RUNS])
def test_derived_columns_are_the_scenarios(name: str, result: RunResult) -> None:
    c = result.columns
    expected = _expected(result)
    for column, values in expected.items():
        assert c[column].dtype == COLUMNS[column], column
        np.testing.assert_array_equal(c[column], values, err_msg=f"{name}: {column}")


@pytest.mark.parametrize(("name", "result"), RUNS, ids=[name for name, _ in RUNS])
def test_the_tidy_frame_names_what_the_codes_index(name: str, result: RunResult) -> None:
    """``to_frame()``: each request's Service, client, pod and nodes by the scenario's names (none where the code
    is -1), the outcome and drop reason by their enum names, the times as they are."""
    frame, c, sc = result.to_frame(), result.columns, result.scenario
    streams = [sc.streams[k] for k in c["stream"].tolist()]
    assert frame["service"].tolist() == [s.service for s in streams]
    assert frame["client"].tolist() == [s.client for s in streams]
    pods = [None if e < 0 else result.pod_names[e] for e in c["endpoint"].tolist()]
    assert [None if isinstance(p, float) else p for p in frame["endpoint"].tolist()] == pods
    node_of = {p.name: p.node for p in sc.pods}
    nodes = frame["endpoint_node"].astype(object).where(frame["endpoint_node"].notna(), None).tolist()
    assert nodes == [None if p is None else node_of[p] for p in pods]
    assert frame["outcome"].tolist() == [Outcome(o).name.lower() for o in c["outcome"].tolist()]
    assert frame["reason"].tolist() == [DropReason(r).label for r in c["reason"].tolist()]
    np.testing.assert_array_equal(frame["latency_s"].to_numpy(), result.latency_s)
    assert len(frame) == len(result)


def test_the_runs_cover_external_clients_and_drops() -> None:
    columns = [r.columns for _, r in RUNS]
    assert any((c["client_node"] == -1).any() for c in columns)
    assert any((c["endpoint"] == -1).any() for c in columns)
    assert any(len(np.unique(c["service"])) > 1 for c in columns)


@pytest.mark.parametrize(("name", "result"), RUNS, ids=[name for name, _ in RUNS])
def test_only_the_underived_columns_are_stored(name: str, result: RunResult) -> None:
    c = result.columns
    assert list(c) == list(COLUMNS) and len(c) == len(COLUMNS)
    assert set(c.stored) == set(STORED) == (set(COLUMNS) - set(DERIVED)) | {"flags"}
    assert result.nbytes_per_request() == sum(d.itemsize for d in STORED.values()) == 60
    assert result.nbytes_per_request() + 4 <= 64  # a call graph's parent column too (issue 25, item 9)
    assert all(c.stored[k].dtype == STORED[k] for k in STORED)


def test_columns_read_like_a_dict() -> None:
    result = RUNS[0][1]
    c = result.columns
    assert "service" in c and "t_sent" in c and "nope" not in c
    with pytest.raises(KeyError, match="nope"):
        c["nope"]
    assert {k: v.dtype for k, v in c.items()} == COLUMNS
    again = pickle.loads(pickle.dumps(c))
    assert isinstance(again, Columns)
    for k in COLUMNS:
        np.testing.assert_array_equal(again[k], c[k])


def test_columns_refuse_a_wrong_table() -> None:
    c = RUNS[0][1].columns
    with pytest.raises(ValueError, match="client"):
        Columns(c.stored, {**c.lookups, "client": c.lookups["client"].astype(np.int64)})
    with pytest.raises(ValueError, match="expected STORED"):
        Columns({**c.stored, "service": c["service"]}, c.lookups)


@given(
    st.lists(
        st.tuples(
            st.sampled_from([PICK_REUSED, PICK_FRESH, PICK_AFFINITY]),
            st.integers(0, 1),
            st.sampled_from(list(DropReason)),
        ),
        max_size=50,
    )
)
def test_the_packed_flags_read_back_as_they_were_written(rows: list[tuple[int, int, int]]) -> None:
    """pick, source_preserved and reason share one stored byte (``FLAGS``); each reads back exactly, in its dtype.
    Fails on overlapping bit fields (a reason written over the pick)."""
    cols = {
        name: np.array([r[i] for r in rows], dtype=COLUMNS[name])
        for i, name in enumerate(("pick", "source_preserved", "reason"))
    }
    expected = {name: col.copy() for name, col in cols.items()}
    flags = pack_flags(cols)
    assert not cols and flags.dtype == STORED["flags"]
    for name, table in flag_lookups().items():
        assert table[flags].dtype == COLUMNS[name]
        np.testing.assert_array_equal(table[flags], expected[name])
