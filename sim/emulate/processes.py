"""The processes an emulation starts inside its namespaces: started by a fixed argv, read line by line with a
deadline, and stopped by the ids it started (never by name)."""

from __future__ import annotations

import contextlib
import selectors
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from sim.emulate.kernel import EmulationError


@dataclass
class Processes:
    """Every process one emulation started, stopped together at the end."""

    started: list[subprocess.Popen] = field(default_factory=list)

    def start(self, ns: str, argv: list[str], stdin: int = subprocess.PIPE) -> subprocess.Popen:
        """``ip netns exec ns argv...`` in a session of its own, its stdout and stderr piped (text)."""
        proc = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
            ["ip", "netns", "exec", ns, *argv],  # noqa: S607 - the system's ip, by name as a user runs it
            stdin=stdin,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        self.started.append(proc)
        return proc

    def stop_all(self) -> None:
        """Kill every process started, wait for each and close its pipes (idempotent)."""
        for proc in self.started:
            with contextlib.suppress(OSError):
                if proc.stdin:
                    proc.stdin.close()
            with contextlib.suppress(OSError):
                proc.kill()
        for proc in self.started:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)
            for pipe in (proc.stdout, proc.stderr):
                if pipe:
                    pipe.close()
        self.started.clear()


def lines(procs: list[tuple[str, subprocess.Popen]], wait_s: float) -> Iterator[tuple[str, str]]:
    """(name, line) of every stdout line of each (name, process), as they are written, until every process has
    closed its stdout; a process still writing after ``wait_s`` seconds is killed (EmulationError)."""
    end = time.monotonic() + wait_s
    with selectors.DefaultSelector() as sel:
        for name, proc in procs:
            assert proc.stdout is not None
            sel.register(proc.stdout, selectors.EVENT_READ, name)
        while sel.get_map():
            ready = sel.select(timeout=max(0.0, end - time.monotonic()))
            if not ready:
                late = [name for name, proc in procs if proc.poll() is None]
                for _, proc in procs:
                    proc.kill()
                raise EmulationError(f"client {', '.join(late) or '?'} did not finish within {wait_s:.0f} s")
            for key, _ in ready:
                line = key.fileobj.readline()  # type: ignore[union-attr]
                if line:
                    yield key.data, line
                else:  # the process closed its stdout: it is done
                    sel.unregister(key.fileobj)


def readline(proc: subprocess.Popen, timeout_s: float) -> str:
    """One line of ``proc``'s stdout, or "" after ``timeout_s`` seconds or at its exit."""
    assert proc.stdout is not None
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            if sel.select(timeout=max(0.0, end - time.monotonic())):
                return proc.stdout.readline()
            if proc.poll() is not None:
                return ""
    return ""
