"""What a command reads, whatever it was given: a scenario file with its ``--set``s, one design point of an
experiment spec, or Kubernetes objects (with the streams a command's flags make, a problem in one put on its
flag). The commands (``sim run``, ``validate``, ``routes``) call these and only lay out what they return.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sim.errors import SpecError, shown
from sim.io.cluster.objects import OBJECT_SUFFIXES
from sim.io.experiment import is_experiment, load_experiment, load_scenario_set, parse_scenario_set, parse_set
from sim.io.scenario import load_scenario, objects_table, parse_scenario
from sim.scenario import Scenario

COMMAND_LINE = "(command line)"
"""The file name of a scenario made on the command line (Kubernetes objects with streams from flags)."""


def is_objects(files: Sequence[str]) -> bool:
    """Whether ``files`` are Kubernetes objects (stdin, a directory, a YAML or JSON file), not a scenario."""
    return any(f == "-" or Path(f).is_dir() or Path(f).suffix in OBJECT_SUFFIXES for f in files)


@dataclass(frozen=True)
class RunInput:
    """A scenario to run and its seed; ``note``: which design point of a spec it is (empty: a scenario file)."""

    scenario: Scenario
    seed: Any
    note: str = ""


def load_run_input(
    file: str, sets: Sequence[str] = (), overrides: Mapping[str, Any] | None = None, point: int | None = None
) -> RunInput:
    """The scenario ``sim run`` / ``validate`` acts on, and its seed: a scenario file with its ``--set``s
    (``sets``: PATH=VALUE texts) and ``overrides`` (seed, requests), or design point ``point`` (default 0) of a
    spec at replication 0."""
    given = dict(parse_set(text) for text in sets)
    overrides = dict(overrides or {})
    if not is_experiment(file):
        if point is not None:
            raise SpecError(file, "--point", "is for an experiment spec; this is a scenario file")
        scenario, seed = load_scenario_set(file, given, overrides) if given else load_scenario(file, overrides)
        return RunInput(scenario, seed)
    experiment = load_experiment(file, given)
    n = len(experiment.design_points)
    index = point if point is not None else 0
    if index >= n:
        raise SpecError(file, "--point", f"must be a design point from 0 to {n - 1}, got {index}")
    chosen = experiment.design_points[index]
    from sim.experiment.sweep import replication_seed

    overrides.setdefault("seed", replication_seed(experiment.root_seed, 0))
    scenario, seed = parse_scenario(chosen.table, chosen.anchor, overrides)
    at = ", ".join(f"{k}={v!r}" for k, v in chosen.factors.items()) or "no factors"
    note = f"experiment {experiment.name}: running design point {index} of {n} ({at}) at replication 0" + (
        f"; --point 0..{n - 1} picks another" if n > 1 else ""
    )
    return RunInput(scenario, seed, note)


def load_objects(
    files: Sequence[str],
    streams: list[dict[str, Any]],
    notes: list[str],
    need_streams: bool = True,
    sets: Sequence[str] = (),
    flags: Mapping[str, str] | None = None,
    capacity: str | None = None,
) -> tuple[Scenario, int]:
    """Kubernetes objects as a Scenario, through the scenario reader (``cluster = [...]``) on kube-proxy's default
    dataplane, with ``--set``s and ``--kind-node-capacity`` (``capacity``, "CPU,MEMORY") applied; a problem in a
    field that ``flags`` names (``streams[0].client`` -> ``--client``) is put on that flag."""
    table = {**objects_table(list(files)), "streams": streams}
    if capacity is not None:
        cpu, comma, memory = capacity.partition(",")
        if not comma or not cpu.strip() or not memory.strip():
            raise SpecError("--kind-node-capacity", "", f"must be CPU,MEMORY (e.g. 16,64Gi), got {shown(capacity)}")
        table["kind_node_capacity"] = {"cpu": cpu.strip(), "memory": memory.strip()}
        flags = {**(flags or {}), **{f"kind_node_capacity.{k}": "--kind-node-capacity" for k in ("cpu", "memory")}}
    where = Path(COMMAND_LINE)
    try:
        if sets:
            return parse_scenario_set(table, where, dict(parse_set(text) for text in sets), notes=notes)
        return parse_scenario(table, where, need_streams=need_streams, notes=notes)
    except SpecError as e:
        if e.path == COMMAND_LINE and e.field in (flags or {}):
            raise SpecError((flags or {})[e.field], "", e.problem) from None
        raise


def load_cluster(files: Sequence[str], notes: list[str], capacity: str | None = None) -> Scenario:
    """The cluster ``sim routes`` shows: a scenario file's, a spec's first design point's, or Kubernetes objects'
    (no streams needed; ``capacity``: ``--kind-node-capacity``, for objects only)."""
    if len(files) == 1 and not is_objects(files):
        no_capacity(capacity)
        if is_experiment(files[0]):
            first = load_experiment(files[0]).design_points[0]
            return parse_scenario(first.table, first.anchor, need_streams=False, notes=notes)[0]
        return load_scenario(files[0], need_streams=False, notes=notes)[0]
    return load_objects(files, [], notes, need_streams=False, capacity=capacity)[0]


def no_capacity(capacity: str | None) -> None:
    """``--kind-node-capacity`` is for Kubernetes objects; a scenario file says ``kind_node_capacity`` itself."""
    if capacity is not None:
        raise SpecError("--kind-node-capacity", "", "applies to Kubernetes objects; a scenario sets kind_node_capacity")
