"""A small HTTP listener for `/metrics`, shared by the supervisor (`supervisor.metrics.listen`,
agent/metrics_listener.py) and the fleet exporter (which adds its own `pages`: the live page,
/snapshot.json, /healthz).

It runs in its own daemon thread and only ever serves what a `snapshot(fmt)` callable returns, so
a slow or silent scraper can hold up nothing but itself (each connection has a 5 s deadline).

Stdlib only at import time (agent/config/validate.py imports parse_listen); the metrics module, and with it
prometheus_client, is loaded only when a listener is started.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from .errors import UsageError

DEFAULT_LISTEN = "127.0.0.1:9464"
CLIENT_TIMEOUT = 5.0        # seconds a scraper may take to send its request and read the answer

Snapshot = Callable[[str], bytes]   # format name -> exposition text


@dataclass(frozen=True)
class Page:
    """Another path's answer (the fleet exporter's live page, /healthz): status, type, body, ETag."""

    status: int
    content_type: str
    body: bytes
    etag: str | None = None      # a quoted entity tag; If-None-Match with it gets a 304


Pages = Mapping[str, Callable[[], Page]]


def parse_listen(text: str) -> tuple[str, int]:
    """Takes `HOST:PORT`, `[V6]:PORT` or `:PORT` (every address); returns (host, port) or raises ValueError."""
    value = str(text).strip()
    host, sep, port = value.rpartition(":")
    if not sep or not (port.isascii() and port.isdigit()) or not 0 < int(port) < 65536:
        raise ValueError(f"expected HOST:PORT such as {DEFAULT_LISTEN}, got {text!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise ValueError(f"an IPv6 address needs brackets, as in [::1]:{port}; got {text!r}")
    return host or "0.0.0.0", int(port)


def bind(text: str) -> socket.socket:
    """Binds and listens on the address; raises UsageError saying why not (in use, not allowed...)."""
    try:
        host, port = parse_listen(text)
    except ValueError as exc:
        raise UsageError(f"--listen: {exc}") from None
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise UsageError(f"cannot listen on {text}: {exc.strerror}") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT after a restart is no owner
        sock.bind(address)
        sock.listen(64)
    except OSError as exc:
        sock.close()
        raise UsageError(f"cannot listen on {text}: {exc.strerror or exc}") from None
    return sock


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    timeout = CLIENT_TIMEOUT
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        self._answer(body=True)

    def do_HEAD(self) -> None:  # noqa: N802
        self._answer(body=False)

    def _answer(self, body: bool) -> None:
        path = self.path.split("?", 1)[0]
        if path in self.server.pages:
            self._page(self.server.pages[path], body)
            return
        if path == "/":
            self._send(200, "text/html; charset=utf-8",
                       b'<html><body><a href="/metrics">/metrics</a></body></html>\n', body)
            return
        if path != "/metrics":
            self._send(404, "text/plain; charset=utf-8", b"not found: try /metrics\n", body)
            return
        from .metrics import CONTENT_TYPES, negotiate

        fmt = negotiate(self.headers.get("Accept"))
        try:
            data = self.server.snapshot(fmt)
        except Exception as exc:  # the listener must outlive a failed snapshot
            self._send(503, "text/plain; charset=utf-8", f"no metrics: {exc}\n".encode(), body)
            return
        self._send(200, CONTENT_TYPES[fmt], data, body)

    def _page(self, make: Callable[[], Page], body: bool) -> None:
        try:
            page = make()
        except Exception as exc:  # the listener must outlive a failed page
            self._send(503, "text/plain; charset=utf-8", f"not available: {exc}\n".encode(), body)
            return
        if page.etag is not None and page.etag == self.headers.get("If-None-Match"):
            self._send(304, page.content_type, b"", False, {"ETag": page.etag})
            return
        extra = {"Cache-Control": "no-cache"} | ({"ETag": page.etag} if page.etag else {})
        self._send(page.status, page.content_type, page.body, body, extra)

    def _send(self, code: int, ctype: str, data: bytes, body: bool, headers: Mapping[str, str] | None = None) -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if body:
            self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:  # a scrape every 15 s is not news
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    snapshot: Snapshot
    pages: Pages

    def handle_error(self, request: Any, client_address: Any) -> None:  # a scraper that hung up
        pass


class MetricsServer:
    """Serves `snapshot(fmt)` at /metrics on an already bound socket, from a daemon thread.

    The thread sleeps in accept() (no polling: an idle supervisor stays at no CPU); each
    connection gets its own short-lived thread, so one silent scraper holds up no other.
    """

    def __init__(self, sock: socket.socket, snapshot: Snapshot, pages: Pages | None = None) -> None:
        self._server = _Server(sock.getsockname()[:2], _Handler, bind_and_activate=False)
        self._server.socket.close()
        self._server.socket = self._sock = sock
        self._server.snapshot = snapshot
        self._server.pages = pages or {}
        self._stopped = False
        self.address = sock.getsockname()[:2]
        self._thread = threading.Thread(target=self._accept, name="metrics http", daemon=True)

    @property
    def url(self) -> str:
        host, port = self.address
        return f"http://{f'[{host}]' if ':' in host else host}:{port}/metrics"

    def start(self) -> MetricsServer:
        self._thread.start()
        return self

    def _accept(self) -> None:
        while not self._stopped:
            try:
                conn, peer = self._sock.accept()
            except OSError:
                if self._stopped:
                    return
                continue  # EMFILE, ECONNABORTED: the scraper retries
            self._server.process_request(conn, peer)

    def stop(self) -> None:
        self._stopped = True
        try:
            self._sock.shutdown(socket.SHUT_RDWR)  # wakes the accept() (close alone does not)
        except OSError:
            pass
        self._thread.join(5)
        self._sock.close()
