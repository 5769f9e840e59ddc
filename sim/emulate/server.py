"""A backend pod's HTTP server (Python stdlib only, run inside the pod's network namespace).

``python server.py POD NODE PORT [PORT...]`` answers every GET with ``POD NODE``, HTTP/1.1 (keep-alive when the
client asks), prints ``ready`` once every port listens, and exits when its stdin closes (the parent is gone) or
after ``MAX_LIFETIME_S``.
"""

from __future__ import annotations

import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MAX_LIFETIME_S = 3600.0
"""A server never outlives this, whatever happens to its parent (s)."""


def handler(pod: str, node: str) -> type[BaseHTTPRequestHandler]:
    """A request handler answering ``pod node``."""
    body = f"{pod} {node}\n".encode()

    class Echo(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body are two writes: no 40 ms delayed-ACK stall between

        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:  # quiet: one line per request is noise
            return

    return Echo


def main(argv: list[str]) -> int:
    """Serve until stdin closes or the lifetime ends."""
    pod, node, *ports = argv
    servers = []
    for port in ports:
        server = ThreadingHTTPServer(("0.0.0.0", int(port)), handler(pod, node))  # noqa: S104 - the pod's own netns
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
    print("ready", flush=True)
    done = threading.Event()

    def watch_stdin() -> None:
        sys.stdin.read()
        done.set()

    threading.Thread(target=watch_stdin, daemon=True).start()
    done.wait(MAX_LIFETIME_S)
    for server in servers:
        server.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
