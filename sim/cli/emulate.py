"""``sim emulate``: the rules only, or the kernel run and its comparison with the simulator."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from sim.cli.text import _VERBOSITY, EXIT_INTERRUPTED, _error
from sim.errors import SpecError


def _emulate(args: argparse.Namespace) -> int:
    """``sim emulate``: rules only, or the kernel run and its comparison with the simulator."""
    from sim import emulate  # here: only this command needs it
    from sim.io import dumps_json, is_experiment, load_scenario

    overrides: dict[str, Any] = {}
    if args.seed is not None:
        overrides["seed"] = args.seed
    if args.requests is not None:
        overrides["requests"] = args.requests
    if is_experiment(args.file):
        raise SpecError(args.file, "experiment", "an experiment spec: sim emulate takes a scenario file")
    scenario, seed = load_scenario(args.file, overrides)
    layout = emulate.make_layout(scenario, args.mode, args.file)
    if not 0 < args.connect_timeout <= 60:
        raise SpecError(args.file, "--connect-timeout", f"must be in (0, 60] seconds, got {args.connect_timeout}")
    if args.show_rules:
        print(emulate.show_rules(layout), end="")
        return 0
    from sim.emulate.kernel import EmulationError, missing_tools

    missing = missing_tools(layout.mode)
    if missing:
        return _error(f"{args.file}: emulate needs {', '.join(missing)} (--show-rules needs none)")
    try:
        report = emulate.emulate(
            layout, seed, connect_timeout_s=args.connect_timeout, progress=False if _VERBOSITY.get() < 0 else None
        )
    except KeyboardInterrupt:
        print("sim: interrupted; everything the emulation made is removed", file=sys.stderr)
        return EXIT_INTERRUPTED
    except EmulationError as e:
        print(f"sim: error: {args.file}: the kernel refused a step: {e}", file=sys.stderr)
        return 1
    print(dumps_json(report), end="") if args.json else print(emulate.format_report(report, args.alpha))
    return 0
