"""The commands an emulation runs on the kernel, and the namespaces it makes: what it owns is their names.

Every namespace is named ``k8ssim-<pid>-...`` (this process's id). ``Namespaces`` makes them, runs ``ip``
batches and ``sysctl`` inside them, and deletes every one it made; ``remove_stale`` deletes those of an earlier
run whose process is gone (one killed outright, by SIGKILL). Nothing here touches the host's own namespace.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field

PREFIX = "k8ssim-"
SETUP_TIMEOUT_S = 30.0
"""Longest wait for one setup command or a server to say it is ready (s)."""


class EmulationError(RuntimeError):
    """The kernel refused a step (a command failed); the message names the command and its error."""


def missing_tools(mode: str) -> list[str]:
    """What this machine lacks to emulate ``mode``: root, Linux, ``ip``, the iptables or nft tools."""
    missing = []
    if sys.platform != "linux":
        missing.append("Linux")
    if os.geteuid() != 0:
        missing.append("root (CAP_NET_ADMIN, CAP_SYS_ADMIN)")
    tools = ["ip"] + (["iptables-restore", "iptables"] if mode == "iptables" else ["nft"])
    missing += [t for t in tools if shutil.which(t) is None]
    return missing


def tool_versions(mode: str) -> str:
    """The version line of the tool that loads the rules (iptables says legacy or nf_tables)."""
    cmd = ["iptables", "--version"] if mode == "iptables" else ["nft", "--version"]
    try:
        return subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=10).stdout.strip()  # noqa: S603
    except OSError:
        return "?"


def run_command(cmd: list[str], stdin: str | None = None) -> str:
    """Run ``cmd`` (a fixed argv, no shell) and return its stdout; EmulationError naming it if it fails."""
    done = subprocess.run(  # noqa: S603 - fixed argv of ip / iptables / nft, no shell
        cmd, input=stdin, capture_output=True, text=True, check=False, timeout=SETUP_TIMEOUT_S
    )
    if done.returncode != 0:
        raise EmulationError(f"{' '.join(cmd)}: {done.stderr.strip() or done.stdout.strip()}")
    return done.stdout


def _delete_netns(name: str) -> None:
    """``ip netns del name``, errors ignored (it may be gone already)."""
    subprocess.run(  # noqa: S603
        ["ip", "netns", "del", name],  # noqa: S607 - the system's ip, by name as a user runs it
        capture_output=True,
        check=False,
        timeout=SETUP_TIMEOUT_S,
    )


def namespaces() -> list[str]:
    """Every named network namespace on the machine."""
    out = run_command(["ip", "netns", "list"])
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale() -> list[str]:
    """Delete namespaces of earlier runs whose process is gone; return their names."""
    gone = []
    for ns in namespaces():
        m = re.match(rf"{PREFIX}(\d+)-", ns)
        if m and int(m.group(1)) != os.getpid() and not _alive(int(m.group(1))):
            _delete_netns(ns)
            gone.append(ns)
    return gone


@dataclass
class Namespaces:
    """The namespaces one emulation made, in order: commands run inside them, and all deleted at the end."""

    made: list[str] = field(default_factory=list)

    def add(self, name: str) -> None:
        """Make namespace ``name`` with its loopback up."""
        run_command(["ip", "netns", "add", name])
        self.made.append(name)
        run_command(["ip", "-n", name, "link", "set", "lo", "up"])

    def batch(self, ns: str, commands: list[str]) -> None:
        """``ip -n ns -batch``: the ``ip`` commands (``link add ...``, ``route add ...``) in one go."""
        if commands:
            run_command(["ip", "-n", ns, "-batch", "-"], "\n".join(commands) + "\n")

    def sysctl(self, ns: str, *settings: str) -> None:
        """``sysctl -w`` each ``key=value`` inside ``ns``."""
        run_command(["ip", "netns", "exec", ns, "sysctl", "-q", "-w", *settings])

    def delete_all(self) -> None:
        """Delete every namespace made, last first (idempotent)."""
        for ns in reversed(self.made):
            _delete_netns(ns)
        self.made.clear()
