"""Command line: ``sim run``, ``validate``, ``sweep``, ``plot``, ``report``, ``routes``, ``import``, ``emulate``.

Every problem with what the user gave (a file, a flag, a results directory, an output path) is a SpecError and
ends here as ``sim: error: FILE: FIELD: PROBLEM`` on stderr, exit 2, before anything is written. A closed pipe
(``sim run ... | head``) ends quietly, and Ctrl-C ends with one line and exit 130.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from sim.cli.emulate import _emulate
from sim.cli.objects import _import, _objects_run, _routes
from sim.cli.parsers import _parser
from sim.cli.run import _run, _run_objects
from sim.cli.sweep import _plot, _report, _sweep
from sim.cli.text import _VERBOSITY, EXIT_BAD_INPUT, EXIT_BROKEN_PIPE, EXIT_INTERRUPTED, _error, format_summary
from sim.errors import SpecError

__all__ = ["EXIT_BAD_INPUT", "format_summary", "main"]

# The commands are modules of this package: parsers (every argument parser), text (what is printed beside the
# results, and the one error line), run (run and validate), objects (Kubernetes objects: routes, import), sweep
# (sweep, plot, report) and emulate. The rest of sim is imported inside the functions that need it, so that
# `sim --help` and a bad flag answer without loading numpy's dependents, SimPy, scipy or pandas (cold start,
# tests/test_cold_start.py).


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``sim`` command; returns the exit code."""
    from sim import guards
    from sim.io.output import forget_reads

    verbosity = None
    try:
        try:
            args = _parser().parse_args(argv)
        except SystemExit as e:  # --help, --version and bad flags: argparse has printed what it had to say
            return e.code if isinstance(e.code, int) else EXIT_BAD_INPUT
        verbosity = _VERBOSITY.set(-1 if args.quiet else min(args.verbose or 0, 2))
        forget_reads()  # the files this command reads are the ones it may not write over
        commands = {
            "sweep": _sweep,
            "plot": _plot,
            "report": _report,
            "routes": _routes,
            "import": _import,
            "emulate": _emulate,
        }
        with guards.max_memory(getattr(args, "max_memory", None)):
            if args.command == "run" and _objects_run(args):
                code = _run_objects(args)
            else:
                code = commands.get(args.command, _run)(args)
        sys.stdout.flush()  # here, not at exit: a closed pipe is reported below, not as a traceback at shutdown
        return code
    except SpecError as e:
        return _error(e)
    except KeyboardInterrupt:
        print("sim: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        _stdout_to_devnull()
        return EXIT_BROKEN_PIPE
    except OSError as e:  # a path the kernel refuses (too long, a loop, no permission) met outside the readers
        return _error(SpecError(str(e.filename or ""), "", f"cannot be used: {e.strerror or e}"))
    finally:
        if verbosity is not None:
            _VERBOSITY.reset(verbosity)


def _stdout_to_devnull() -> None:
    """The reader of stdout went away: point stdout at /dev/null so that the flush at exit cannot fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # stdout is not a file descriptor (a test's capture): nothing to flush
        pass
