"""``sim run`` and ``sim validate``: the arguments handed to the library, what it says laid out. Loading (a
scenario, a spec's design point, Kubernetes objects with ``--client``/``--service``) is ``sim.io.inputs``; the
engine choice and the guards are ``sim.facade.checked_choice``."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sim.cli.text import _detail, _error, _note, _notes, _plural, _warn, format_summary
from sim.errors import one_line
from sim.version import __version__

if TYPE_CHECKING:
    from sim.scenario import Scenario


def _load(args: argparse.Namespace) -> tuple[Scenario, Any]:
    """The scenario ``sim run`` / ``validate`` acts on, and its seed (``sim.io.inputs.load_run_input``)."""
    from sim.io.inputs import load_run_input

    overrides = {key: value for key in ("seed", "requests") if (value := getattr(args, key, None)) is not None}
    loaded = load_run_input(args.file, args.set, overrides, getattr(args, "point", None))
    if loaded.note:
        _note(loaded.note)
    return loaded.scenario, loaded.seed


def _validate_experiment(args: argparse.Namespace) -> int:
    """``sim validate SPEC``: every design point checked, with the sweep's size and its largest run's estimate."""
    from sim import guards
    from sim.io import load_experiment, parse_set

    experiment = load_experiment(args.file, dict(parse_set(text) for text in args.set))
    n = len(experiment.design_points)
    estimates = [guards.estimate(p.scenario) for p in experiment.design_points]
    for est in estimates:
        guards.refuse(args.file, est)
    requests = sum(e.requests for e in estimates) * experiment.replications
    largest = max(e.memory_bytes for e in estimates)
    print(
        f"{one_line(args.file)}: ok (experiment {one_line(experiment.name)}: {_plural(n, 'design point')} x "
        f"{_plural(experiment.replications, 'replication')} = {_plural(n * experiment.replications, 'run')}; "
        f"~{requests:,.0f} requests in all, ~{guards.size_text(largest)} of memory for the largest run)"
    )
    return 0


def _run(args: argparse.Namespace) -> int:
    """``sim run`` and ``sim validate``."""
    from sim.io import is_experiment

    if args.command == "validate" and is_experiment(args.file):
        return _validate_experiment(args)
    scenario, seed = _load(args)
    return _execute(args, scenario, seed)


def _execute(args: argparse.Namespace, scenario: Scenario, seed: Any) -> int:
    """Check a loaded scenario against the guards and its output paths, then validate (print ok) or run it on the
    engine ``--engine`` asks for and print it (and ``--out``, ``--plot``)."""
    from sim import guards
    from sim.facade import checked_choice
    from sim.io import check_directory, check_file, dumps_json, write_file
    from sim.io.output import STDOUT

    choice, est = checked_choice(scenario, getattr(args, "engine", "des"), args.file)
    engine, problem = choice.engine, choice.events_needed
    inputs = [args.file, *getattr(args, "more", [])]
    if args.command == "run" and args.out is not None:
        check_file(args.out, "--out", inputs=inputs, stdout=True)
    if args.command == "run" and args.plot is not None:
        check_directory(args.plot, "--plot")
    for warning in guards.warnings(scenario):
        _warn(args.file, warning)
    if args.command == "validate":
        fast = "exact" if problem is None else f"no ({problem})"
        sizes = [_plural(len(scenario.pods), "pod"), _plural(len(scenario.services), "service")]
        sizes.append(_plural(len(scenario.streams), "stream"))
        print(f"{one_line(args.file)}: ok ({', '.join(sizes)}; fast path: {fast}; estimate: {est.describe()})")
        for line in scenario.call_graph.describe():
            print(one_line(line))
        return 0
    if args.engine == "auto":
        why = f"the fast path is not exact here: {problem}" if problem else "the fast path is exact here"
        _note(f"engine auto -> {engine}: {why}")
    _detail(f"estimate: {est.describe()}")
    from sim.experiment.rundoc import run_document

    started = time.perf_counter()
    result = choice.run(seed)
    _detail(f"simulated {len(result):,} requests in {time.perf_counter() - started:.2f} s")
    summary = {
        **run_document(result, alpha=args.alpha, command=_run_command(args)),
        "engine": engine,
        "version": __version__,
    }
    text = dumps_json(summary)
    as_json = args.json or args.out == STDOUT  # `--out -`: the JSON summary is what stdout holds
    if args.out is not None and args.out != STDOUT:
        write_file(args.out, text, "--out", inputs=inputs)
    print(text, end="") if as_json else print(format_summary(scenario, summary))
    if args.plot is not None:
        return _plot_run(summary, Path(args.plot), quiet=as_json)
    return 0


_STREAM_FLAGS = {
    "streams[0].client": "--client",
    "streams[0].service": "--service",
    "streams[0].workload.rate_rps": "--rate",
    "streams[0].port": "--port",
}
"""The flag that made each field of the stream ``sim run FILE... --client --service`` builds."""


def _run_objects(args: argparse.Namespace) -> int:
    """``sim run FILE... --client NS/POD --service NS/NAME``: one stream straight from Kubernetes objects."""
    from sim.io.inputs import is_objects, load_objects

    if not is_objects([args.file, *args.more]):
        flags = (("--client", args.client), ("--service", args.service), ("--rate", args.rate))
        given = [flag for flag, value in flags if value is not None]
        return _error(
            f"{args.file}: {', '.join(given) or 'more files'}: for Kubernetes objects (YAML/JSON); this scenario's "
            "[[streams]] say who calls which Service: drop the flag, or change a stream with --set, e.g. "
            "--set streams.0.service=NAME"
        )
    if not args.client or not args.service:
        return _error(f"{args.file}: Kubernetes objects: give --client NS/POD and --service NS/NAME to run them")
    workload = {"kind": "poisson", "rate_rps": args.rate} if args.rate is not None else {"kind": "closed_loop"}
    stream = {
        "client": args.client,
        "service": args.service,
        "requests": 1000 if args.requests is None else args.requests,
        "workload": workload,
        **({"port": args.port} if args.port else {}),
    }
    notes: list[str] = []
    scenario, seed = load_objects([args.file, *args.more], [stream], notes, sets=args.set, flags=_STREAM_FLAGS)
    _notes(notes)
    return _execute(args, scenario, args.seed if args.seed is not None else seed)


def _run_command(args: argparse.Namespace) -> list[str]:
    """The ``sim run`` command that redoes this run: the file and the flags that change its result (not where
    the output goes, so ``--json`` and ``--out`` write the same bytes)."""
    words = ["sim", "run", args.file, *getattr(args, "more", [])]
    for flag, value in (
        ("--client", getattr(args, "client", None)),
        ("--service", getattr(args, "service", None)),
        ("--port", getattr(args, "port", None)),
        ("--rate", getattr(args, "rate", None)),
        ("--point", getattr(args, "point", None)),
        ("--seed", args.seed),
        ("--requests", args.requests),
    ):
        if value is not None:
            words += [flag, str(value)]
    for text in args.set:
        words += ["--set", text]
    if args.alpha != 0.01:
        words += ["--alpha", str(args.alpha)]
    if args.engine != "des":
        words += ["--engine", args.engine]
    return words


def _plot_run(doc: dict[str, Any], out: Path, *, quiet: bool = False) -> int:
    """Write one run's figures (``sim plot RUN.json``, ``sim run --plot DIR``) and list them (on stderr if
    ``quiet``: after ``--json`` stdout holds exactly one JSON object)."""
    from sim import plots  # here: matplotlib takes a while to import, and only this command needs it

    for name, figure in plots.run_figures(doc).items():
        for path in _save_figure(plots.figure_files(figure), out / name):
            print(path, file=sys.stderr if quiet else sys.stdout)
    return 0


def _save_figure(files: dict[str, bytes], stem: Path) -> list[Path]:
    """Write one figure's files (``stem.png``, ``stem.svg``) through the one output writer; return their paths."""
    from sim.io import check_file, write_file

    paths = [stem.with_suffix(suffix) for suffix in files]
    for path in paths:  # all checked before any is written
        check_file(path, "figure")
    for path, data in zip(paths, files.values(), strict=True):
        write_file(path, data, "figure")
    return paths
