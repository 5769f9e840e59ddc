"""The simulator's version: one source, the installed package's metadata (``version`` in pyproject.toml); and a
digest of the model's source, so that results of changed code are never taken for these.

``__version__`` is written into every JSON the tool writes; ``model_digest()`` goes with it into every sweep run
key and record: after an engine change a sweep into the same directory recomputes instead of mixing results,
even where the version number was not raised (an editable install between commits).
"""

from __future__ import annotations

import functools
import hashlib
from importlib import metadata
from pathlib import Path

try:
    __version__ = metadata.version("k8s-service-sim")
except metadata.PackageNotFoundError:  # a source tree that was never installed (pip install -e . installs it)
    __version__ = "0+unknown"

PRESENTATION = frozenset({"__main__.py", "cli", "plots", "report.py"})
"""Modules (and the ``cli`` and ``plots`` packages) that print or draw results but do not decide them: left out of
the digest."""


@functools.cache
def model_digest() -> str:
    """The first 12 hex digits of a sha256 over the source of every module of the package that decides a run's
    results (all but PRESENTATION), by relative path, in sorted order."""
    root = Path(__file__).resolve().parent
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        name = path.relative_to(root).as_posix()
        if name.split("/")[0] in PRESENTATION:  # a top-level module, or any file of a package
            continue
        digest.update(name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:12]
