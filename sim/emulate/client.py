"""A client pod's process (Python stdlib only, run inside the pod's network namespace).

Takes one JSON object as its argument: ``{"streams": [{"service", "targets", "requests", "max_requests"}],
"connect_timeout_s", "read_timeout_s", "deadline_s"}``, where ``targets`` lists ``[address, port, fwmark]``:
each new connection goes to one of them, drawn uniformly (an external client's load balancer: the fwmark picks
the routing table via one node; 0 for none). For each stream, in order, it sends ``requests`` HTTP
GETs, a new TCP connection per request (``max_requests`` 1, ``Connection: close``) or keep-alive for up to
``max_requests`` requests, and prints one JSON line per stream: ``{"service", "answers": [...], "new": [...]}``
(and, every ``PROGRESS_S`` seconds, ``{"done": N}``: the requests started so far, for a progress bar),
where an answer is the pod that replied or ``!kind`` for a failure, and ``new`` is 1 where the request opened a
connection.

Failure kinds: ``timeout`` (no answer to the SYN within ``connect_timeout_s``: a DROP), ``refused``
(``ECONNREFUSED``: a REJECT's ICMP port-unreachable, or a RST), ``unreachable`` (``EHOSTUNREACH`` /
``ENETUNREACH``), ``read_timeout`` (connected, no reply within ``read_timeout_s``), ``reset``, ``error``. Every
loop is bounded by the request count and by ``deadline_s`` (wall seconds); requests left at the deadline are
``!deadline``.
"""

from __future__ import annotations

import errno
import http.client
import json
import random
import socket
import sys
import time

_PICK = random.SystemRandom()  # the load balancer's choice of a node: unseeded, like the kernel's draws


class MarkedConnection(http.client.HTTPConnection):
    """An HTTP connection whose socket carries a fwmark (SO_MARK) before it connects, when ``mark`` is set."""

    def __init__(self, host: str, port: int, timeout: float, mark: int) -> None:
        super().__init__(host, port, timeout=timeout)
        self.mark = mark

    def connect(self) -> None:
        """socket.create_connection, with SO_MARK set between socket() and connect()."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            if self.mark:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_MARK, self.mark)
            sock.settimeout(self.timeout)
            sock.connect((self.host, self.port))
        except BaseException:
            sock.close()
            raise
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = sock


def failure(exc: BaseException) -> str:
    """The failure kind of an exception raised while connecting or talking to the Service."""
    if isinstance(exc, ConnectionRefusedError):
        return "refused"
    if isinstance(exc, ConnectionResetError | http.client.RemoteDisconnected | BrokenPipeError):
        return "reset"
    if isinstance(exc, OSError) and exc.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH):
        return "unreachable"
    return "error"


PROGRESS_S = 0.5
"""Seconds between the progress lines a client prints (``{"done": N}``: requests answered or failed so far)."""


class Progress:
    """Prints ``{"done": N}`` on stdout at most every ``PROGRESS_S`` seconds, for the parent's progress bar."""

    def __init__(self) -> None:
        self.done = 0
        self.said = time.monotonic()

    def tick(self) -> None:
        """One more request done; say so if it is time."""
        self.done += 1
        if time.monotonic() - self.said >= PROGRESS_S:
            print(json.dumps({"done": self.done}), flush=True)
            self.said = time.monotonic()


def run_stream(spec: dict, connect_timeout: float, read_timeout: float, deadline: float, progress: Progress) -> dict:
    """Send one stream's requests; return its answers and new-connection flags."""
    answers: list[str] = []
    new: list[int] = []
    keep = int(spec["max_requests"]) > 1
    conn: MarkedConnection | None = None
    targets = [(str(ip), int(port), int(mark)) for ip, port, mark in spec["targets"]]
    used = 0
    for _ in range(int(spec["requests"])):
        progress.tick()
        if time.monotonic() > deadline:
            answers.append("!deadline")
            new.append(0)
            continue
        opened = conn is None
        if conn is None:
            ip, port, mark = targets[_PICK.randrange(len(targets))] if len(targets) > 1 else targets[0]
            conn = MarkedConnection(ip, port, connect_timeout, mark)
            try:
                conn.connect()
            except TimeoutError:
                answers.append("!timeout")
                new.append(1)
                conn.close()
                conn = None
                continue
            except OSError as exc:
                answers.append("!" + failure(exc))
                new.append(1)
                conn.close()
                conn = None
                continue
            assert conn.sock is not None
            conn.sock.settimeout(read_timeout)
            used = 0
        new.append(1 if opened else 0)
        used += 1
        last = not keep or used >= int(spec["max_requests"])
        try:
            conn.request("GET", "/", headers={"Host": spec["service"], "Connection": "close" if last else "keep-alive"})
            body = conn.getresponse().read().decode()
            answers.append(body.split()[0] if body.strip() else "!error")
        except TimeoutError:
            answers.append("!read_timeout")
            last = True
        except OSError as exc:
            answers.append("!" + failure(exc))
            last = True
        except http.client.HTTPException:
            answers.append("!error")
            last = True
        if last:
            conn.close()
            conn = None
    if conn is not None:
        conn.close()
    return {"service": spec["service"], "answers": answers, "new": new}


def main() -> int:
    """Run every stream of this client, one after another, printing a JSON line each."""
    given = json.loads(sys.argv[1])  # traffic.client_spec's object
    deadline = time.monotonic() + float(given["deadline_s"])
    progress = Progress()
    for spec in given["streams"]:
        out = run_stream(spec, float(given["connect_timeout_s"]), float(given["read_timeout_s"]), deadline, progress)
        print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
