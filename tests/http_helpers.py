"""Local stand-ins for the network in tests: a file server (Range requests, dropped and slow transfers), an
endpoint that accepts connections and never answers, and a closed port.

The lead's GUI tests use them too: point ``RAVEN_AVATAR_PYPI_URL`` at a slow :func:`serve_files` and
``HF_ENDPOINT`` at :func:`closed_port_url` or :func:`stalled_endpoint` to see a first start without network.
"""

from __future__ import annotations

import contextlib
import http.server
import socket
import threading
import time
from collections.abc import Iterator

_PIECE = 1 << 16


class FileHandler(http.server.BaseHTTPRequestHandler):
    """Serves ``server.files`` (looked up with, then without, the query string).

    Honours ``Range: bytes=N-`` unless ``server.ignore_range``; the first ``server.drops`` responses are cut after
    ``server.drop_after`` bytes; the first ``server.slow_bytes`` bytes of each response go out in 64 KiB pieces
    ``server.slow_delay`` seconds apart."""

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        srv = self.server
        srv.requests.append((self.path, self.headers.get("Range")))
        data = srv.files.get(self.path, srv.files.get(self.path.partition("?")[0]))
        if data is None:
            self.send_error(404, "Not Found")
            return
        start = 0
        rng = self.headers.get("Range")
        if rng and not srv.ignore_range:
            start = int(rng.removeprefix("bytes=").split("-")[0])
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if srv.drops > 0:
            srv.drops -= 1
            self.wfile.write(body[: srv.drop_after])
            self.close_connection = True
            return
        try:
            sent = 0
            while sent < min(srv.slow_bytes, len(body)):
                self.wfile.write(body[sent : sent + _PIECE])
                self.wfile.flush()
                sent += _PIECE
                time.sleep(srv.slow_delay)
            self.wfile.write(body[sent:])
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (a cancelled download)
            self.close_connection = True

    def log_message(self, *args) -> None:
        pass


@contextlib.contextmanager
def serve_files(files: dict[str, bytes] | None = None) -> Iterator[http.server.ThreadingHTTPServer]:
    """A local HTTP server for ``files`` (path -> bytes; add more through ``server.files``); ``server.url`` is its
    base URL, ``server.requests`` lists ``(path, Range header)`` of every request."""
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), FileHandler)
    srv.daemon_threads = True
    srv.files = dict(files or {})
    srv.requests = []
    srv.ignore_range = False
    srv.drops = 0
    srv.drop_after = 0
    srv.slow_bytes = 0
    srv.slow_delay = 0.0
    srv.url = f"http://127.0.0.1:{srv.server_address[1]}"
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()


@contextlib.contextmanager
def stalled_endpoint() -> Iterator[str]:
    """The URL of a server that accepts connections and never answers (a dead proxy, a captive firewall)."""
    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.05)
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                accepted.append(listener.accept()[0])

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        thread.join()
        for conn in accepted:
            conn.close()
        listener.close()


def closed_port_url() -> str:
    """The URL of a local port nobody listens on (connections are refused at once)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"
