"""Experiment specs: a TOML file with an ``[experiment]`` table names a base scenario (a file or an inline
``[scenario]`` table), factors over its fields by dotted path (sim.experiment.spec), replications and a root seed.
Each design point's table goes through parse_scenario, so every scenario field is sweepable, and a problem is
reported against the factor or --set that caused it."""

from __future__ import annotations

import hashlib
import json
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sim import guards
from sim.errors import SpecError, shown
from sim.experiment.results import RESERVED_COLUMNS
from sim.experiment.spec import (
    ENGINES,
    DesignPoint,
    Experiment,
    Factor,
    PathError,
    level_choices,
    overlapping,
    parse_path,
    resolve,
)
from sim.io.cluster.objects import OBJECT_SUFFIXES
from sim.io.scenario import parse_scenario, with_cluster_names
from sim.io.typed import MAX_DEPTH, Table, depth, load_toml, type_name
from sim.scenario import Scenario


def is_experiment(path: str | Path) -> bool:
    """Whether a TOML file is an experiment spec (it has an ``[experiment]`` table) rather than a scenario."""
    return isinstance(load_toml(Path(path)).get("experiment"), dict)


def parse_set(text: str) -> tuple[str, Any]:
    """A ``PATH=VALUE`` override: the value is read as a TOML value, or taken as a string if it is not one.

    >>> parse_set("defaults.concurrency=4")
    ('defaults.concurrency', 4)
    >>> parse_set("services.api.internalTrafficPolicy=Local")
    ('services.api.internalTrafficPolicy', 'Local')
    """
    path, sep, value = text.partition("=")
    if not sep or not path.strip():
        raise SpecError("--set", text, "expected PATH=VALUE, e.g. defaults.concurrency=2")
    if "\n" in value or "\r" in value:
        raise SpecError("--set", path.strip(), "the value must be one line")
    if not text.isascii() and any("\ud800" <= ch <= "\udfff" for ch in text):
        raise SpecError("--set", path.strip(), "not UTF-8 text (bytes that decode to no character)")
    try:
        parsed = tomllib.loads(f"v = {value.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        parsed = value.strip()
    except RecursionError:
        raise SpecError("--set", path.strip(), f"the value nests arrays or tables more than {MAX_DEPTH} deep") from None
    except ValueError:  # int()'s limit of 4,300 digits
        raise SpecError("--set", path.strip(), "not a value: an integer of more than 4,300 digits") from None
    if depth(parsed) > MAX_DEPTH:
        raise SpecError("--set", path.strip(), f"the value nests arrays or tables more than {MAX_DEPTH} deep")
    return path.strip(), parsed


def set_text(path: str, value: Any) -> str:
    """The ``--set`` text that ``parse_set`` reads back as (``path``, ``value``).

    >>> set_text("services.echo-1.internalTrafficPolicy", "Local"), parse_set(set_text("a.b", [1, True]))
    ('services.echo-1.internalTrafficPolicy="Local"', ('a.b', [1, True]))
    """
    from sim.io.importer import value as toml_value

    return f"{path}={toml_value(value)}"


def sweep_command(info: Mapping[str, Any]) -> list[str]:
    """The ``sim sweep`` command that redoes a sweep, from its experiment description (``Experiment.describe``):
    the spec, every ``--set`` and the engine (where it runs the records and --out would hold them is not part
    of it)."""
    words = ["sim", "sweep", str(info.get("spec", ""))]
    for path, value in info.get("sets", {}).items():
        words += ["--set", set_text(path, value)]
    if info.get("engine", "des") != "des":
        words += ["--engine", str(info["engine"])]
    return words


SPEC_KEYS = ("replications", "root_seed")
"""``--set`` keys that set the spec's own ``[experiment]`` fields (also as ``experiment.KEY``), not the scenario's."""


def spec_key(path: str) -> str | None:
    """The ``[experiment]`` key a ``--set`` path sets, or None if it is a scenario path.

    >>> spec_key("replications"), spec_key("experiment.name"), spec_key("streams.0.requests")
    ('replications', 'name', None)
    """
    if path in SPEC_KEYS:
        return path
    head, dot, rest = path.partition(".")
    return rest if head == "experiment" and dot and rest else None


def load_experiment(path: str | Path, sets: Mapping[str, Any] | None = None, engine: str | None = None) -> Experiment:
    """Read an experiment spec; ``sets`` overrides base-scenario fields by dotted path (``--set``), or the spec's
    own ``replications`` and ``root_seed`` (and any ``experiment.KEY``); ``engine`` the spec's
    ``[experiment] engine`` (``--engine``)."""
    path = Path(path)
    return parse_experiment(load_toml(path), path, sets, engine)


def _quoted(name: str) -> str:
    return f'"{name}"' if "." in name else name


def _linked_factor(path: Path, name: str, where: str, raw: dict[str, Any]) -> Factor:
    """``[factors.NAME]``: ``levels`` (the values recorded) and paths, each with one value per level."""
    t = Table(path, where, raw)
    levels = t.take("levels", list)
    flat: dict[str, Any] = {}

    def flatten(prefix: str, table: Mapping[str, Any]) -> None:
        for key, value in table.items():
            full = f"{prefix}.{key}" if prefix else key
            if isinstance(value, dict):
                flatten(full, value)  # an unquoted dotted key: TOML made nested tables of it
            else:
                flat[full] = value

    flatten("", t.data)
    t.data.clear()
    if not flat:
        raise t.error("levels", "a linked factor also needs the paths it sets, each with one value per level")
    settings = []
    for p, values in flat.items():
        if not isinstance(values, list) or len(values) != len(levels):
            got = f"{len(values)} values" if isinstance(values, list) else f"{type_name(values)} {shown(values)}"
            raise t.error(_quoted(p), f"must be an array of {len(levels)} values, one per level; got {got}")
        settings.append((p, tuple(values)))
    return Factor(name, tuple(levels), tuple(settings))


def _factors(path: Path, raw: Mapping[str, Any]) -> list[Factor]:
    """[factors]: ``"dotted.path" = [levels]``, or a linked factor ``[factors.NAME]`` with ``levels`` and paths."""
    factors: list[Factor] = []

    def walk(prefix: str, table: Mapping[str, Any]) -> None:
        for key, value in table.items():
            name = f"{prefix}.{key}" if prefix else key
            where = f"factors.{_quoted(name)}"
            if isinstance(value, list):
                factors.append(Factor(name, tuple(value), ((name, tuple(value)),)))
            elif isinstance(value, dict) and "levels" in value:
                factors.append(_linked_factor(path, name, where, value))
            elif isinstance(value, dict):
                walk(name, value)  # an unquoted dotted key: TOML made nested tables of it
            else:
                raise SpecError(
                    str(path), where, f"must be an array of levels (or a table with levels); got {shown(value)}"
                )

    walk("", raw)
    for f in factors:
        where = f"factors.{_quoted(f.name)}"
        if not f.levels:
            raise SpecError(str(path), where, "needs at least one level")
        texts = [json.dumps(v, sort_keys=True, default=str) for v in f.levels]
        if len(set(texts)) < len(texts):
            raise SpecError(str(path), where, f"repeats a level: {list(f.levels)}")
        if f.name in RESERVED_COLUMNS:
            raise SpecError(
                str(path), where, f"{shown(f.name)} is a column of the results table; name the factor otherwise"
            )
        for p, _ in f.settings:
            try:
                segments = parse_path(p)
            except PathError as e:
                raise SpecError(str(path), where, str(e)) from None
            if segments == ("seed",):
                raise SpecError(str(path), where, "seeds come from [experiment] root_seed and the replication number")
    try:
        clash = overlapping(p for f in factors for p, _ in f.settings)
    except PathError as e:
        raise SpecError(str(path), "factors", str(e)) from None
    if clash:
        raise SpecError(
            str(path), "factors", f"two factors set the same field: {shown(clash[0])} and {shown(clash[1])}"
        )
    return factors


def _file_digests(table: Mapping[str, Any], anchor: Path, cache: dict[Path, str]) -> dict[str, str]:
    """sha256 of every file a scenario table names (``topology``, trace ``file``), by the name used in the table."""
    found: dict[str, str] = {}

    def walk(obj: object) -> None:
        if isinstance(obj, dict):
            for key, value in obj.items():
                if key == "cluster" and isinstance(value, (str, list)):
                    for name in [value] if isinstance(value, str) else value:
                        path = anchor.parent / name if isinstance(name, str) else None
                        if path is not None and path.exists():
                            if path not in cache:
                                cache[path] = _tree_digest(path)
                            found[name] = cache[path]
                elif key in ("topology", "file") and isinstance(value, str):
                    file = anchor.parent / value
                    if file.is_file():
                        if file not in cache:
                            cache[file] = hashlib.sha256(file.read_bytes()).hexdigest()
                        found[value] = cache[file]
                else:
                    walk(value)
        elif isinstance(obj, list):
            for value in obj:
                walk(value)

    walk(table)
    return found


def _engine(text: str) -> str:
    """An ``[experiment] engine`` value, one of ``ENGINES``."""
    if text not in ENGINES:
        raise ValueError(text)
    return text


def _tree_digest(path: Path) -> str:
    """sha256 of a file, or of a directory's object files (names and contents, in sorted order)."""
    if path.is_file():
        return hashlib.sha256(path.read_bytes()).hexdigest()
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in OBJECT_SUFFIXES):
        digest.update(str(file.relative_to(path)).encode() + b"\0" + file.read_bytes())
    return digest.hexdigest()


def parse_experiment(
    raw: Mapping[str, Any], path: str | Path, sets: Mapping[str, Any] | None = None, engine: str | None = None
) -> Experiment:
    """Build an Experiment from a parsed spec table, checking the base scenario, every override, every factor
    level and every design point; ``path`` names the spec in errors and anchors relative file names."""
    if "experiment" not in raw and ("streams" in raw or "pods" in raw or "cluster" in raw):
        raise SpecError(
            str(path),
            "experiment",
            "this is a scenario file, not an experiment spec: `sim run` runs it; a sweep needs a spec with "
            "[experiment] and [factors] that names it (docs/experiments.md)",
        )
    spec = _Spec(Path(path), raw, sets or {})
    spec.apply_sets()
    factors = _factors(spec.path, spec.factors_raw)
    spec.check_size(factors)
    spec.check_levels(factors)
    roles = spec.plot_roles([f.name for f in factors])
    design = spec.design_points(factors)
    chosen = engine if engine is not None else spec.engine
    if chosen == "fast":
        spec.check_fast(design, from_flag=engine is not None)
    return Experiment(
        name=spec.name,
        path=spec.spec,
        factors=tuple(factors),
        replications=spec.replications,
        root_seed=spec.root_seed,
        design_points=tuple(design),
        plot=roles,
        sets={**spec.own, **spec.sets},
        engine=chosen,
    )


class _Spec:
    """An experiment spec being read: its ``[experiment]`` head (with the spec's own ``--set``s), its base scenario
    (a file or an inline table, with the scenario ``--set``s once applied), and the tables still to read."""

    def __init__(self, path: Path, raw: Mapping[str, Any], sets: Mapping[str, Any]) -> None:
        self.path = path
        self.spec = str(path)
        top = Table(path, "", raw)
        head = Table(path, "experiment", top.take("experiment", dict))
        self.own = {k: v for k, v in sets.items() if spec_key(k) is not None}
        self.sets = {k: v for k, v in sets.items() if spec_key(k) is None}
        head.data.update({spec_key(k): v for k, v in self.own.items()})
        try:
            self.name = head.take("name", str, path.stem)
            scenario_file = head.take("scenario", str, None)
            self.replications = head.integer("replications", minimum=1, maximum=guards.MAX_RUNS)
            self.root_seed = head.integer("root_seed", 0, minimum=0)
            self.engine = head.choice("engine", _engine, list(ENGINES), "des")
            head.done()
        except SpecError as e:
            blamed = [k for k in self.own if head.field(str(spec_key(k))) == e.field]
            if blamed:
                raise SpecError(self.spec, f"--set {blamed[0]}", e.problem) from None
            raise
        inline = top.take("scenario", dict, None)
        self.factors_raw = top.take("factors", dict, {})
        self.plot = Table(path, "plot", top.take("plot", dict, {}))
        top.done()
        if scenario_file is not None and inline is not None:
            raise head.error("scenario", "give a scenario file here or an inline [scenario] table, not both")
        if scenario_file is None:
            if inline is None:
                raise head.error("scenario", "is required: a scenario file, or an inline [scenario] table")
            self.anchor, base, self.prefix = path, dict(inline), "scenario."
        else:
            self.anchor, self.prefix = path.parent / scenario_file, ""
            if not self.anchor.is_file():
                raise head.error("scenario", f"no such file {shown(str(self.anchor))}")
            base = load_toml(self.anchor)
        base.pop("seed", None)  # a sweep's seeds come from root_seed and the replication
        self.base = with_cluster_names(base, self.anchor)  # paths may name pods and Services from cluster files
        self.build(self.base)

    def build(self, table: dict[str, Any], blame: str = "", fields: Mapping[str, str] | None = None) -> Scenario:
        """parse_scenario on a resolved table; a problem in it is put on the factor or --set that set it."""
        try:
            return parse_scenario(table, self.anchor)[0]
        except SpecError as e:
            if e.path != str(self.anchor):
                raise
            if not blame:
                raise SpecError(self.spec if self.prefix else e.path, self.prefix + e.field, e.problem) from None
            for p, fld in (fields or {}).items():
                inside = fld == e.field or fld.startswith((e.field + ".", e.field + "["))
                if inside and e.problem.startswith("unknown key"):
                    raise SpecError(self.spec, blame, _unknown_path(p, e)) from None
            own = e.field in (fields or {}).values()
            raise SpecError(self.spec, blame, e.problem if own else f"{self.prefix}{e.field}: {e.problem}") from None

    def resolved(self, blame: str, assignments: list[tuple[str, Any]]) -> tuple[dict, dict]:
        """The base table with ``assignments`` made; a path that leads nowhere is put on ``blame``."""
        try:
            return resolve(self.base, assignments)
        except PathError as e:
            words = str(e) if str(e).startswith("malformed") else f"unknown path: {e}"
            raise SpecError(self.spec, blame, words) from None

    def apply_sets(self) -> None:
        """The scenario ``--set``s: each path checked on its own first (a path that leads nowhere names its
        ``--set``), then all of them together, so that fields checked against each other may change together."""
        for key, value in self.sets.items():
            blame = f"--set {key}"
            self.resolved(blame, [(key, value)])
            if parse_path(key) == ("seed",):
                raise SpecError(self.spec, blame, "seeds come from [experiment] root_seed and the replication number")
        if not self.sets:
            return
        table, fields = self.resolved("--set", list(self.sets.items()))
        if len(fields) == 1:
            self.build(table, f"--set {next(iter(fields))}", fields)
        else:
            try:
                parse_scenario(table, self.anchor)
            except SpecError as e:
                if e.path != str(self.anchor):
                    raise
                raise _blame_set(e, self.spec, self.prefix, fields) from None
        self.base = table

    def check_size(self, factors: list[Factor]) -> None:
        """Refuse, before expanding anything, a sweep of more design points or runs than a sweep may have."""
        points = guards.design_points(len(f.levels) for f in factors)
        if points > guards.MAX_DESIGN_POINTS or points * self.replications > guards.MAX_RUNS:
            sizes = " x ".join(str(len(f.levels)) for f in factors) or "1"
            raise SpecError(
                self.spec,
                "factors",
                f"{sizes} levels give {points:,} design points x {self.replications:,} replications = "
                f"{points * self.replications:,} runs; a sweep may have at most {guards.MAX_DESIGN_POINTS:,} "
                f"design points and {guards.MAX_RUNS:,} runs (split it into several specs)",
            )

    def check_levels(self, factors: list[Factor]) -> None:
        """Every level of every factor on the base scenario, alone: a bad level names its factor."""
        for f in factors:
            for level in range(len(f.levels)):
                blame = f"factors.{_quoted(f.name)}"
                table, fields = self.resolved(blame, f.assignments(level))
                self.build(table, blame, fields)

    def plot_roles(self, names: list[str]) -> dict[str, Any]:
        """``[plot]``: the factors of the x axis and of the lines, and axis labels, each naming a factor."""
        plot = self.plot
        roles: dict[str, Any] = {}
        for role in ("x", "line"):
            chosen = plot.take(role, str, None)
            if chosen is not None and chosen not in names:
                raise plot.error(role, f"names no factor; the factors are {names}")
            if chosen is not None:
                roles[role] = chosen
        labels = plot.strings("labels")
        for factor in labels:
            if factor not in names:
                raise plot.error(f"labels.{_quoted(factor)}", f"names no factor; the factors are {names}")
        if labels:
            roles["labels"] = labels
        plot.done()
        return roles

    def design_points(self, factors: list[Factor]) -> list[DesignPoint]:
        """Every combination of levels, built and checked; two that give the same scenario are an error."""
        digests: dict[Path, str] = {}
        design: list[DesignPoint] = []
        seen: dict[str, int] = {}
        for index, choice in enumerate(level_choices(factors)):
            values = {f.name: f.levels[level] for f, level in zip(factors, choice, strict=True)}
            assignments = [a for f, level in zip(factors, choice, strict=True) for a in f.assignments(level)]
            at = ", ".join(f"{k}={shown(v)}" for k, v in values.items())
            table, fields = resolve(self.base, assignments)
            scenario = self.build(table, f"factors (design point {at})", fields)
            text = json.dumps(table, sort_keys=True, default=str)
            if text in seen:
                raise SpecError(
                    self.spec, "factors", f"design points {seen[text]} and {index} ({at}) give the same scenario"
                )
            seen[text] = index
            files = _file_digests(table, self.anchor, digests)
            design.append(DesignPoint(index, values, table, scenario, str(self.anchor), files))
        return design

    def check_fast(self, design: list[DesignPoint], *, from_flag: bool) -> None:
        """``engine = "fast"`` is refused up front, not run by run: name the first design point it cannot do
        exactly (on ``--engine`` when the flag asked for it)."""
        from sim.facade import EventsNeeded, choose

        for point in design:
            try:
                choose(point.scenario, "fast")
            except EventsNeeded as e:
                where = ("--engine", "") if from_flag else (self.spec, "experiment.engine")
                raise SpecError(
                    *where, f"fast: the fast path is not exact for design point {point.index}: {e.reason}"
                ) from None


def _unknown_path(path: str, e: SpecError) -> str:
    """The problem of a path to a field the scenario does not have, with the scenario's suggestion if it made one."""
    hint = e.problem[len("unknown key") :]
    return f"unknown path {shown(path)}: the scenario has no field {shown(e.field)}{hint}"


def _blame_set(e: SpecError, spec: str, prefix: str, fields: Mapping[str, str]) -> SpecError:
    """A problem found with every ``--set`` applied, put on the ``--set`` whose field it is (else on them all)."""
    for p, fld in fields.items():
        inside = fld == e.field or fld.startswith((e.field + ".", e.field + "["))
        if inside and e.problem.startswith("unknown key"):
            return SpecError(spec, f"--set {p}", _unknown_path(p, e))
    for p, fld in fields.items():
        if fld == e.field:
            return SpecError(spec, f"--set {p}", e.problem)
    return SpecError(spec, "--set", f"{prefix}{e.field}: {e.problem}")


def load_scenario_set(
    path: str | Path, sets: Mapping[str, Any], overrides: Mapping[str, Any] | None = None
) -> tuple[Scenario, int]:
    """A scenario file with ``--set`` overrides (dotted paths, as a spec's factors take them) applied together
    before it is validated; a problem in a set field is put on its ``--set``."""
    path = Path(path)
    return parse_scenario_set(load_toml(path), path, sets, overrides)


def parse_scenario_set(
    raw: Mapping[str, Any],
    path: str | Path,
    sets: Mapping[str, Any],
    overrides: Mapping[str, Any] | None = None,
    *,
    notes: list[str] | None = None,
) -> tuple[Scenario, int]:
    """``parse_scenario`` on a scenario table with ``--set`` overrides applied together first; paths reach pods and
    Services read from cluster files too (``services."shop/web".externalTrafficPolicy``)."""
    path = Path(path)
    raw = with_cluster_names(raw, path)
    for key, value in sets.items():
        try:
            resolve(raw, [(key, value)])
        except PathError as e:
            words = str(e) if str(e).startswith("malformed") else f"unknown path: {e}"
            raise SpecError(str(path), f"--set {key}", words) from None
    table, fields = resolve(raw, list(sets.items()))
    try:
        return parse_scenario(table, path, overrides, notes=notes)
    except SpecError as e:
        if e.path != str(path):
            raise
        raise _blame_set(e, str(path), "", fields) from None
