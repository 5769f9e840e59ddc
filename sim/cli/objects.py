"""``sim routes`` and ``sim import``, and whether ``sim run`` was given Kubernetes objects; what they read is
``sim.io.inputs`` (``load_cluster``) and ``sim.io.importer`` (``read_sources``)."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from sim.cli.text import _note, _notes
from sim.errors import SpecError


def _objects_run(args: argparse.Namespace) -> bool:
    """Whether ``sim run`` was given Kubernetes objects (then --client and --service say what to run)."""
    from sim.io.inputs import is_objects

    return bool(
        args.more or args.client or args.service or args.port or args.rate is not None or is_objects([args.file])
    )


def _routes(args: argparse.Namespace) -> int:
    """``sim routes``: what each node's proxy programs for each Service (human table or --json)."""
    from sim.io import dumps_json
    from sim.io.inputs import load_cluster
    from sim.routes import format_routes, routes

    notes: list[str] = []
    scenario = load_cluster(args.files, notes, args.kind_node_capacity)
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
    from sim.io.importer import callees, default_streams, read_sources, scenario_text, topology_text

    notes: list[str] = []
    out = check_file(args.out, "-o", inputs=args.files) or Path(args.out)
    topology_file = out.with_name(f"{out.stem}-topology.toml")
    scenario, extra, traced, client = read_sources(args.files, out.stem, notes, args.kind_node_capacity)
    streams = default_streams(scenario, skip=sorted(callees(extra)), client=client)
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
