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

from sim.errors import SpecError
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
from sim.io.scenario import parse_scenario, with_cluster_names
from sim.io.tables import Table, load_toml, type_name
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
    try:
        parsed = tomllib.loads(f"v = {value.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        parsed = value.strip()
    return path.strip(), parsed


def load_experiment(path: str | Path, sets: Mapping[str, Any] | None = None, engine: str | None = None) -> Experiment:
    """Read an experiment spec; ``sets`` overrides base-scenario fields by dotted path (``--set``), ``engine``
    the spec's ``[experiment] engine`` (``--engine``)."""
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
            got = f"{len(values)} values" if isinstance(values, list) else f"{type_name(values)} {values!r}"
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
                raise SpecError(str(path), where, f"must be an array of levels (or a table with levels); got {value!r}")

    walk("", raw)
    for f in factors:
        where = f"factors.{_quoted(f.name)}"
        if not f.levels:
            raise SpecError(str(path), where, "needs at least one level")
        texts = [json.dumps(v, sort_keys=True, default=str) for v in f.levels]
        if len(set(texts)) < len(texts):
            raise SpecError(str(path), where, f"repeats a level: {list(f.levels)}")
        if f.name in RESERVED_COLUMNS:
            raise SpecError(str(path), where, f"{f.name!r} is a column of the results table; name the factor otherwise")
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
        raise SpecError(str(path), "factors", f"two factors set the same field: {clash[0]!r} and {clash[1]!r}")
    return factors


def _file_digests(table: Mapping[str, Any], anchor: Path, cache: dict[Path, str]) -> dict[str, str]:
    """sha256 of every file a scenario table names (``topology``, trace ``file``), by the name used in the table."""
    found: dict[str, str] = {}

    def walk(obj: object) -> None:
        if isinstance(obj, dict):
            for key, value in obj.items():
                if key == "cluster" and isinstance(value, (str, list)):
                    for name in [value] if isinstance(value, str) else value:
                        if isinstance(name, str) and (anchor.parent / name).exists():
                            found[name] = _tree_digest(anchor.parent / name)
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
    for file in sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in (".yaml", ".yml", ".json")):
        digest.update(str(file.relative_to(path)).encode() + b"\0" + file.read_bytes())
    return digest.hexdigest()


def parse_experiment(
    raw: Mapping[str, Any], path: str | Path, sets: Mapping[str, Any] | None = None, engine: str | None = None
) -> Experiment:
    """Build an Experiment from a parsed spec table, checking the base scenario, every override, every factor
    level and every design point; ``path`` names the spec in errors and anchors relative file names."""
    path = Path(path)
    spec = str(path)
    top = Table(path, "", raw)
    head = Table(path, "experiment", top.take("experiment", dict))
    name = head.take("name", str, path.stem)
    scenario_file = head.take("scenario", str, None)
    replications = head.integer("replications", minimum=1)
    root_seed = head.integer("root_seed", 0, minimum=0)
    engine_field = head.choice("engine", _engine, list(ENGINES), "des")
    head.done()
    inline = top.take("scenario", dict, None)
    factors_raw = top.take("factors", dict, {})
    plot = Table(path, "plot", top.take("plot", dict, {}))
    top.done()
    if scenario_file is not None and inline is not None:
        raise head.error("scenario", "give a scenario file here or an inline [scenario] table, not both")
    if scenario_file is None:
        if inline is None:
            raise head.error("scenario", "is required: a scenario file, or an inline [scenario] table")
        anchor, base, prefix = path, dict(inline), "scenario."
    else:
        anchor, prefix = path.parent / scenario_file, ""
        if not anchor.is_file():
            raise head.error("scenario", f"no such file {str(anchor)!r}")
        base = load_toml(anchor)
    base.pop("seed", None)  # a sweep's seeds come from root_seed and the replication
    base = with_cluster_names(base, anchor)  # paths may name pods and Services read from cluster files

    def build(table: dict[str, Any], blame: str = "", fields: Mapping[str, str] | None = None) -> Scenario:
        """parse_scenario on a resolved table; a problem in it is put on the factor or --set that set it."""
        try:
            return parse_scenario(table, anchor)[0]
        except SpecError as e:
            if e.path != str(anchor):
                raise
            if not blame:
                raise SpecError(spec if prefix else e.path, prefix + e.field, e.problem) from None
            for p, fld in (fields or {}).items():
                inside = fld == e.field or fld.startswith((e.field + ".", e.field + "["))
                if inside and e.problem.startswith("unknown key"):
                    raise SpecError(spec, blame, f"unknown path {p!r}: the scenario has no field {e.field!r}") from None
            own = e.field in (fields or {}).values()
            raise SpecError(spec, blame, e.problem if own else f"{prefix}{e.field}: {e.problem}") from None

    def resolved(table: Mapping[str, Any], blame: str, assignments: list[tuple[str, Any]]) -> tuple[dict, dict]:
        try:
            return resolve(table, assignments)
        except PathError as e:
            words = str(e) if str(e).startswith("malformed") else f"unknown path: {e}"
            raise SpecError(spec, blame, words) from None

    build(base)
    for key, value in (sets or {}).items():
        blame = f"--set {key}"
        table, fields = resolved(base, blame, [(key, value)])
        if parse_path(key) == ("seed",):
            raise SpecError(spec, blame, "seeds come from [experiment] root_seed and the replication number")
        build(table, blame, fields)
    base, _ = resolve(base, list((sets or {}).items()))

    factors = _factors(path, factors_raw)
    for f in factors:
        for level in range(len(f.levels)):
            blame = f"factors.{_quoted(f.name)}"
            table, fields = resolved(base, blame, f.assignments(level))
            build(table, blame, fields)

    names = [f.name for f in factors]
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

    digests: dict[Path, str] = {}
    points: list[DesignPoint] = []
    seen: dict[str, int] = {}
    for index, choice in enumerate(level_choices(factors)):
        values = {f.name: f.levels[level] for f, level in zip(factors, choice, strict=True)}
        assignments = [a for f, level in zip(factors, choice, strict=True) for a in f.assignments(level)]
        at = ", ".join(f"{k}={v!r}" for k, v in values.items())
        table, fields = resolve(base, assignments)
        scenario = build(table, f"factors (design point {at})", fields)
        text = json.dumps(table, sort_keys=True, default=str)
        if text in seen:
            raise SpecError(spec, "factors", f"design points {seen[text]} and {index} ({at}) give the same scenario")
        seen[text] = index
        points.append(DesignPoint(index, values, table, scenario, str(anchor), _file_digests(table, anchor, digests)))
    chosen = engine if engine is not None else engine_field
    if chosen == "fast":  # refused up front, not run by run: name the first design point it cannot do exactly
        from sim.fastpath import fast_path_problem

        for point in points:
            problem = fast_path_problem(point.scenario)
            if problem is not None:
                where = ("--engine", "") if engine is not None else (spec, "experiment.engine")
                raise SpecError(*where, f"fast: the fast path is not exact for design point {point.index}: {problem}")
    return Experiment(
        name=name,
        path=spec,
        factors=tuple(factors),
        replications=replications,
        root_seed=root_seed,
        design_points=tuple(points),
        plot=roles,
        sets=dict(sets or {}),
        engine=chosen,
    )
