"""Kubernetes objects on the command line: telling them from a scenario file, loading them (``--client``,
``--service``, ``--rate`` put on the stream), ``sim routes`` and ``sim import``."""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sim.cli.text import _note, _notes
from sim.errors import SpecError

if TYPE_CHECKING:
    from sim.scenario import Scenario


def _is_objects(files: Sequence[str]) -> bool:
    from sim.io.cluster.objects import OBJECT_SUFFIXES

    return any(f == "-" or Path(f).is_dir() or Path(f).suffix in OBJECT_SUFFIXES for f in files)


def _objects_run(args: argparse.Namespace) -> bool:
    """Whether ``sim run`` was given Kubernetes objects (then --client and --service say what to run)."""
    return bool(
        args.more or args.client or args.service or args.port or args.rate is not None or _is_objects([args.file])
    )


def _load_objects(
    files: Sequence[str],
    streams: list[dict[str, Any]],
    notes: list[str],
    need_streams: bool = True,
    sets: Sequence[str] = (),
    capacity: str | None = None,
) -> tuple[Scenario, int]:
    """Kubernetes objects as a Scenario, through the scenario reader (``cluster = [...]``) on kube-proxy's default
    dataplane, with ``--set``s and ``--kind-node-capacity`` applied; a problem in a stream built from flags is
    put on the flag."""
    from sim.io import parse_scenario, parse_set
    from sim.io.experiment import parse_scenario_set
    from sim.io.scenario import objects_table

    table = {**objects_table(list(files)), "streams": streams}
    if capacity is not None:
        cpu, comma, memory = capacity.partition(",")
        if not comma or not cpu.strip() or not memory.strip():
            raise SpecError("--kind-node-capacity", "", f"must be CPU,MEMORY (e.g. 16,64Gi), got {capacity!r}")
        table["kind_node_capacity"] = {"cpu": cpu.strip(), "memory": memory.strip()}
    where = Path("(command line)")
    try:
        if sets:
            return parse_scenario_set(table, where, dict(parse_set(text) for text in sets), notes=notes)
        return parse_scenario(table, where, need_streams=need_streams, notes=notes)
    except SpecError as e:
        flags = {
            "streams[0].client": "--client",
            "streams[0].service": "--service",
            "streams[0].workload.rate_rps": "--rate",
            "streams[0].port": "--port",
            "kind_node_capacity.cpu": "--kind-node-capacity",
            "kind_node_capacity.memory": "--kind-node-capacity",
        }
        if e.path == "(command line)" and e.field in flags:
            raise SpecError(flags[e.field], "", e.problem) from None
        raise


def _routes(args: argparse.Namespace) -> int:
    """``sim routes``: what each node's proxy programs for each Service (human table or --json)."""
    from sim.io import dumps_json, is_experiment, load_experiment, load_scenario, parse_scenario
    from sim.routes import format_routes, routes

    notes: list[str] = []
    if len(args.files) == 1 and not _is_objects(args.files):
        _no_capacity(args)
        if is_experiment(args.files[0]):
            point = load_experiment(args.files[0]).design_points[0]
            scenario = parse_scenario(point.table, point.anchor, need_streams=False, notes=notes)[0]
        else:
            scenario = load_scenario(args.files[0], need_streams=False, notes=notes)[0]
    else:
        scenario = _load_objects(args.files, [], notes, need_streams=False, capacity=args.kind_node_capacity)[0]
    if args.dataplane:
        # the scenario's proxy options (its local-traffic detector...) stay; only its picker is the new one's
        dataplane = dataclasses.replace(scenario.dataplane, name=args.dataplane, picker="")
        scenario = dataclasses.replace(scenario, dataplane=dataplane)
    if args.service is not None and args.service not in {s.name for s in scenario.services}:
        raise SpecError(
            "--service", "", f"no Service {args.service!r}; the Services are {[s.name for s in scenario.services]}"
        )
    if args.node is not None and args.node not in scenario.topology.nodes:
        raise SpecError("--node", "", f"no node {args.node!r}; the nodes are {list(scenario.topology.nodes)}")
    _notes(notes)
    table = routes(scenario, args.service, args.node)
    print(dumps_json(table), end="") if args.json else print(format_routes(scenario, table))
    return 0


def _import(args: argparse.Namespace) -> int:
    """``sim import``: Kubernetes objects and/or trace exports -> an editable scenario file and its topology file."""
    from sim.io import check_file, write_file
    from sim.io.importer import default_streams, scenario_text, topology_text

    notes: list[str] = []
    out = check_file(args.out, "-o", inputs=args.files) or Path(args.out)
    topology_file = out.with_name(f"{out.stem}-topology.toml")
    scenario, extra, traced, client = _imported(args.files, out.stem, notes, args.kind_node_capacity)
    streams = default_streams(scenario, skip=sorted(_callees(extra)), client=client)
    scenario = dataclasses.replace(scenario, name=out.stem)
    texts = {
        topology_file: topology_text(scenario.topology),
        out: scenario_text(scenario, topology_file.name, args.files, streams, extra),
    }
    for path in texts:  # both, before either is written
        check_file(path, "-o", inputs=args.files)
    for path, text in texts.items():
        write_file(path, text, "-o", inputs=args.files)
    _notes(notes)
    if not streams:
        _note("note: no pods to send from: add [[streams]] before `sim run`")
    print(
        f"wrote {out} ({len(scenario.pods)} pods, {len(scenario.services)} services, {len(streams)} streams) "
        f"and {topology_file}"
    )
    if traced is not None:
        from sim.traces import describe

        print("\n".join(describe(traced)))
    return 0


def _no_capacity(args: argparse.Namespace) -> None:
    """``--kind-node-capacity`` is for Kubernetes objects; a scenario file says ``kind_node_capacity`` itself."""
    if args.kind_node_capacity is not None:
        raise SpecError("--kind-node-capacity", "", "applies to Kubernetes objects; a scenario sets kind_node_capacity")


def _imported(
    files: Sequence[str], name: str, notes: list[str], capacity: str | None = None
) -> tuple[Scenario, dict[str, Any], Any, str | None]:
    """What ``sim import`` reads: the cluster (Kubernetes objects, or one made for traces given alone, with the
    pod to send from), and the call graph the traces show mapped onto its Services (their keys by Service)."""
    from sim.io.importer import traced_cluster, with_traces
    from sim.io.tracefiles import read_spans, split_traces
    from sim.traces import derive

    traces, objects = split_traces(files)
    traced = derive(read_spans(traces)) if traces else None
    client = None
    if objects or traced is None:
        scenario = _load_objects(objects, [], notes, need_streams=False, capacity=capacity)[0]
    else:
        scenario = traced_cluster(traced, name)
        notes.append(
            f"no Kubernetes objects: a cluster of one node {scenario.pods[0].node!r} with one pod per traced service "
            f"({', '.join(p.name for p in scenario.pods[:-1])}) and a client pod {scenario.pods[-1].name!r}"
        )
        client = scenario.pods[-1].name
    if traced is None:
        return scenario, {}, None, client
    notes.extend(traced.notes)
    scenario, extra, more = with_traces(scenario, traced)
    notes.extend(more)
    return scenario, extra, traced, client


def _callees(extra: dict[str, Any]) -> set[str]:
    """The Services some ``calls`` entry names (directly or in a ``parallel`` stage)."""
    out: set[str] = set()
    for entries in extra.values():
        for call in entries.get("calls", []):
            out.update(c["service"] for c in call.get("parallel", [call]))
    return out
