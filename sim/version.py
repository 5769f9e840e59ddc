"""The simulator's version: one source, the installed package's metadata (``version`` in pyproject.toml).

Written into every JSON the tool writes and hashed into every sweep run key, so results of another version are
never mixed with these.
"""

from __future__ import annotations

from importlib import metadata

try:
    __version__ = metadata.version("k8s-service-sim")
except metadata.PackageNotFoundError:  # a source tree that was never installed (pip install -e . installs it)
    __version__ = "0+unknown"
