"""The one writer of every file a command writes (``--out``, ``-o``, ``--plot``, results directories, ``import``).

A target is checked before any work and again when written. It is refused, in one SpecError line, when it is
empty, a directory where a file is meant (or a file where a directory is), a device, a FIFO or a socket, a
symlink to anything but a regular file, a name the kernel cannot take (too long, a NUL byte), under a parent that
is a file, in a place nobody may write, or any file this command has read: its inputs, the scenario's topology,
the run or results it reports on (``sim.io.typed.read_bytes`` notes each file it reads, by device and inode, so
a second name for the same file is caught too). A symlink to a regular file is written through: the file it
names is replaced, never the link. ``-`` is stdout, where the command's format makes sense there.

Writes are atomic: a temporary file beside the real target, then a rename over it, so readers see the old file
or the whole new one. Nothing is ever renamed over a device, a FIFO or a directory.
"""

from __future__ import annotations

import os
import stat
import sys
import tempfile
from collections.abc import Iterable
from contextvars import ContextVar
from pathlib import Path

from sim.errors import SpecError

STDOUT = "-"
_READ: ContextVar[frozenset[tuple[int, int]]] = ContextVar("sim_files_read", default=frozenset())
"""(device, inode) of every file read in this context since ``forget_reads``: the files a command must not
overwrite (a context variable, so that a thread's reads are its own)."""


def note_read(info: os.stat_result) -> None:
    """Remember a file this command read (by its ``fstat``): it may not be written over."""
    _READ.set(_READ.get() | {(info.st_dev, info.st_ino)})


def forget_reads() -> None:
    """A new command begins: no file has been read yet."""
    _READ.set(frozenset())


def _umask() -> int:
    """The process's umask: from /proc/self/status where Linux shows it (reading it with ``os.umask`` means
    setting it, which another thread could see), else set and set straight back."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "a regular file"


def _lstat(path: Path, what: str) -> os.stat_result | None:
    try:
        return os.lstat(path)
    except FileNotFoundError:
        return None
    except NotADirectoryError:
        raise SpecError(str(path), what, "cannot be created: a parent on its path is a file") from None
    except OSError as e:
        raise SpecError(str(path), what, f"cannot be written: {e.strerror or e}") from None
    except ValueError as e:  # a NUL byte in the name
        raise SpecError(str(path), what, f"cannot be written: {e}") from None


def _resolved(path: Path, what: str) -> tuple[Path, os.stat_result | None]:
    """``path``, or for a symlink the regular file it names, and what is there now (None: nothing yet)."""
    info = _lstat(path, what)
    if info is None or not stat.S_ISLNK(info.st_mode):
        return path, info
    try:
        real = Path(os.path.realpath(path, strict=True))
        info = os.stat(real)
    except (OSError, ValueError):
        raise SpecError(str(path), what, "is a symlink to nothing that exists; give a file name") from None
    if not stat.S_ISREG(info.st_mode):
        raise SpecError(str(path), what, f"is a symlink to {_kind(info.st_mode)}; refusing to write there")
    return real, info


def _check_parent(path: Path, target: Path, what: str) -> None:
    """The nearest existing directory on the way to ``target`` is a directory we may write (probed with a
    temporary file, removed at once)."""
    folder = target.parent.absolute()
    try:
        while not folder.exists() and folder != folder.parent:
            folder = folder.parent
        if not folder.is_dir():
            raise SpecError(str(path), what, f"cannot be created: {folder} is a file")
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".sim-probe.", suffix=".tmp")
        os.close(fd)
        os.unlink(probe)
    except SpecError:
        raise
    except (OSError, ValueError) as e:
        problem = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
        raise SpecError(str(path), what, f"cannot be written: {problem}") from None


def _is_input(info: os.stat_result, inputs: Iterable[str | Path], rewrite: bool) -> bool:
    if not rewrite and (info.st_dev, info.st_ino) in _READ.get():
        return True
    for given in inputs:
        try:
            other = os.stat(given)
        except (OSError, ValueError):
            continue
        if (other.st_dev, other.st_ino) == (info.st_dev, info.st_ino):
            return True
    return False


def check_file(
    path: str | Path, what: str, *, inputs: Iterable[str | Path] = (), stdout: bool = False, rewrite: bool = False
) -> Path | None:
    """Where a file output goes: the path to write (a symlink's regular file), or None for stdout (``-``, where
    ``stdout`` allows it); any other target is a SpecError (see the module's docstring)."""
    text = str(path)
    if text == "":
        raise SpecError("''", what, "is empty; give a file name")
    if text == STDOUT:
        if stdout:
            return None
        raise SpecError(text, what, "stdout (-) cannot take this output; give a file name")
    if text.endswith(("/", os.sep)):
        raise SpecError(text, what, "names a directory; expected a file name")
    target, info = _resolved(Path(text), what)
    if info is not None:
        if not stat.S_ISREG(info.st_mode):
            raise SpecError(text, what, f"is {_kind(info.st_mode)}; expected a regular file name")
        if _is_input(info, inputs, rewrite):
            raise SpecError(text, what, "is a file this command reads; give another path")
    _check_parent(Path(text), target, what)
    return target


def check_directory(path: str | Path, what: str) -> Path:
    """Where a directory output goes (missing directories are made when files are written); a file, a device,
    an empty name or an unwritable place is a SpecError."""
    text = str(path)
    if text in ("", STDOUT):
        raise SpecError(text or "''", what, "is not a directory name; give one")
    target = Path(text)
    info = _lstat(target, what)
    if info is not None:
        try:
            mode = os.stat(target).st_mode
        except (OSError, ValueError):
            raise SpecError(text, what, "is a symlink to nothing that exists; give a directory name") from None
        if not stat.S_ISDIR(mode):
            raise SpecError(text, what, f"is {_kind(mode)}; expected a directory")
    _check_parent(target, target / "x", what)
    return target


def write_file(
    path: str | Path,
    data: str | bytes,
    what: str = "output",
    *,
    inputs: Iterable[str | Path] = (),
    stdout: bool = False,
    rewrite: bool = False,
) -> None:
    """Write ``data`` to ``path`` (checked as ``check_file``) so that readers see the old file or the whole new
    one, never a part. ``rewrite``: a file read before may be replaced (a results directory's own records, read to
    resume). The file gets the mode an ordinary ``open()`` would give it (0o666 less the umask), not mkstemp's
    0o600."""
    target = check_file(path, what, inputs=inputs, stdout=stdout, rewrite=rewrite)
    if target is None:
        _to_stdout(data)
        return
    payload = _encoded(str(path), what, data)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name[:200]}.", suffix=".tmp")
    except (OSError, ValueError) as e:
        raise SpecError(str(path), what, f"cannot be written: {getattr(e, 'strerror', None) or e}") from None
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except OSError as e:
        Path(tmp).unlink(missing_ok=True)
        raise SpecError(str(path), what, f"cannot be written: {e.strerror or e}") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _encoded(path: str, what: str, data: str | bytes) -> bytes:
    """``data`` as UTF-8; a name that came from a command line's undecodable bytes goes back to those bytes, and
    any other text that is not UTF-8 (a lone surrogate) is a SpecError, before the file is touched."""
    if isinstance(data, bytes):
        return data
    try:
        return data.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        raise SpecError(path, what, "the output holds text that is not UTF-8 (a lone surrogate)") from None


def _to_stdout(data: str | bytes) -> None:
    if isinstance(data, bytes):
        sys.stdout.flush()
        sys.stdout.buffer.write(data)
    else:
        sys.stdout.write(data)
