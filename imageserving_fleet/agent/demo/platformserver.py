"""The demo Platform Server ("ps"): the HTTP front door that forwards image requests to is and svg.

Endpoints, in the shape of Image Serving's URLs:

    GET /                           a small HTML page listing these endpoints
    GET /healthz                    200 "ok" when both backends answer PING, else 503 naming the failure
    GET /livez                      200 "ok" whenever this process answers (liveness, not the backends)
    GET /is/image/<name>?wid=W&hei=H   a PNG rendered by the Image Server
    GET /is/agm/<name>?wid=W&hei=H     an SVG rendered by the SVG server
    GET /is/content/<text>.svg?wid=W&hei=H   the same, addressed as static content

``wid`` and ``hei`` default to 400 (one defaults to the other when only one is given). A bad
parameter is a 400, a backend that is down or refuses is a 502 whose body says which and why.
HEAD is answered like GET, without the body. One log line per request goes to stderr.

Run it with ``python -m imageserving_fleet.agent.demo.platformserver [--port N]``; ports come from
``--port``/``--is-port``/``--svg-port``, else ``IMAGESERVING_PS_PORT`` (8080),
``IMAGESERVING_IS_PORT`` (27345) and ``IMAGESERVING_SVG_PORT`` (27346).
"""

from __future__ import annotations

import http.server
import socket
import socketserver
import sys
import time
from collections.abc import Sequence
from urllib.parse import parse_qs, unquote, urlsplit

from imageserving_fleet.agent.demo import imageserver, svgserver
from imageserving_fleet.agent.demo.lineserver import (
    HOST,
    MAX_LINE,
    DrainingTCPServer,
    block_stop_signals,
    listen_or_exit,
    log,
    make_parser,
    parse_render,
    port_number,
    resolve_port,
)

DEFAULT_PORT = 8080
PORT_ENV = "IMAGESERVING_PS_PORT"
LABEL = "Platform Server"
DEFAULT_SIDE = 400
PING_TIMEOUT = 2.0  # /healthz must answer well within a readiness probe's own timeout
RENDER_TIMEOUT = 15.0  # a 2000x2000 render plus compression, on a busy host

INDEX_HTML = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Image Serving demo</title></head>
<body>
<h1>Image Serving demo: Platform Server</h1>
<p>Forwards image requests to the Image Server (is) and the SVG server (svg).</p>
<ul>
<li><a href="/is/image/demo/sample?wid=320&amp;hei=200">/is/image/&lt;name&gt;?wid=W&amp;hei=H</a>
  &mdash; a PNG from the Image Server</li>
<li><a href="/is/agm/demo/logo?wid=320&amp;hei=120">/is/agm/&lt;name&gt;?wid=W&amp;hei=H</a>
  &mdash; an SVG from the SVG server</li>
<li><a href="/is/content/Hello%20Image%20Serving.svg">/is/content/&lt;text&gt;.svg</a>
  &mdash; the same, as static content</li>
<li><a href="/healthz">/healthz</a> &mdash; 200 when both backends answer, else 503</li>
<li><a href="/livez">/livez</a> &mdash; 200 whenever the Platform Server itself answers</li>
</ul>
</body></html>
"""


class _HttpError(Exception):
    """A request that ends in an error status; the message is the plain-text body."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class Backend:
    """One line-protocol backend (is or svg): where it listens and how to ask it for something."""

    def __init__(self, label: str, port: int) -> None:
        self.label = label
        self.port = port

    def __repr__(self) -> str:
        return f"{self.label} on {HOST}:{self.port}"

    def ping(self) -> None:
        """Return when the backend answers PING with PONG; raise _HttpError(502) otherwise."""
        self._ask("PING", PING_TIMEOUT)

    def render(self, width: int, height: int, text: str) -> bytes:
        """Return the body the backend renders for ``text``; raise _HttpError(502) on any failure."""
        return self._ask(f"RENDER {width} {height} {text}", RENDER_TIMEOUT)

    def _ask(self, request: str, timeout: float) -> bytes:
        # A fresh connection per request: loopback connects cost microseconds, and no pool means
        # nothing stale to detect after a backend restart.
        try:
            with socket.create_connection((HOST, self.port), timeout=timeout) as sock:
                sock.sendall(request.encode("utf-8") + b"\n")
                with sock.makefile("rb") as reply:
                    header = reply.readline(MAX_LINE)
                    word, _, rest = header.decode("utf-8", "replace").strip().partition(" ")
                    if word == "PONG":
                        return b""
                    if word == "ERR":
                        raise _HttpError(502, f"{self!r} refused the request: {rest}")
                    if word != "OK" or not rest.isdigit():
                        raise _HttpError(502, f"{self!r} sent an unexpected reply: {header[:80]!r}")
                    body = reply.read(int(rest))
        except OSError as exc:
            raise _HttpError(502, f"{self!r}: {exc.strerror or exc}") from None
        if len(body) != int(rest):
            raise _HttpError(502, f"{self!r} closed the connection after {len(body)} of {rest} bytes")
        return body


def _side(query: dict[str, list[str]], key: str, fallback: str) -> str:
    values = query.get(key)
    return values[0] if values else fallback


def image_request(path: str, prefix: str, query: dict[str, list[str]]) -> tuple[int, int, str]:
    """Take the name after ``prefix`` and the wid/hei parameters; validate them as the backend would.

    Validating here with the backend's own parser turns a bad URL into a 400 for the client rather
    than a backend ERR, which would be reported as a 502.
    """
    name = unquote(path[len(prefix) :], errors="strict")
    lowered = {key.lower(): values for key, values in query.items()}  # Image Serving's keys ignore case
    wid = _side(lowered, "wid", "")
    hei = _side(lowered, "hei", "")
    wid, hei = wid or hei or str(DEFAULT_SIDE), hei or wid or str(DEFAULT_SIDE)
    if not name.strip():
        raise _HttpError(404, "no image name in the URL")
    try:
        return parse_render(f"{wid} {hei} {name}", svgserver.MAX_TEXT)
    except ValueError as exc:  # parse_render refuses with a ValueError
        raise _HttpError(400, str(exc)) from None


class PlatformServer(DrainingTCPServer, http.server.HTTPServer):
    """The Platform Server: a threaded HTTP server that knows its two backends."""

    def __init__(self, address: tuple[str, int], image: Backend, svg: Backend) -> None:
        self.image = image
        self.svg = svg
        super().__init__(address, PlatformHandler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind() resolves the host with getfqdn(), a reverse DNS lookup that can
        # take seconds where DNS is broken; the demo only binds loopback and needs no name.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)


class PlatformHandler(http.server.BaseHTTPRequestHandler):
    """Route one HTTP request to the index, the health check or a backend."""

    server_version = "ImageServingDemo/0.1"
    timeout = 10  # a client that connects and says nothing must not hold a thread
    server: PlatformServer

    def do_GET(self) -> None:  # http.server dispatches on this name
        self._serve(send_body=True)

    def do_HEAD(self) -> None:
        self._serve(send_body=False)

    def _serve(self, send_body: bool) -> None:
        started = time.monotonic()
        try:
            status, content_type, body = self._route()
        except _HttpError as exc:
            status, content_type, body = exc.status, "text/plain; charset=utf-8", f"{exc}\n".encode()
        except UnicodeDecodeError:
            status, content_type, body = 400, "text/plain; charset=utf-8", b"URL is not UTF-8\n"
        self.send_response_only(status)
        self.send_header("Server", self.version_string())
        self.send_header("Date", self.date_time_string())
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        if status != 200 or self.path.startswith(("/healthz", "/livez")):
            self.send_header("Cache-Control", "no-store")
        self.end_headers()
        if send_body:
            self.wfile.write(body)
        elapsed_ms = (time.monotonic() - started) * 1000
        request = _printable(self.requestline)
        log(LABEL, f'{self.client_address[0]} "{request}" {status} {len(body)} {elapsed_ms:.1f}ms')

    def _route(self) -> tuple[int, str, bytes]:
        url = urlsplit(self.path)
        path, query = url.path, parse_qs(url.query)
        if path in ("/", "/index.html"):
            return 200, "text/html; charset=utf-8", INDEX_HTML.encode()
        if path == "/healthz":
            return self._health()
        if path == "/livez":  # a restart of ps cannot cure a backend: its liveness is its own
            return 200, "text/plain; charset=utf-8", b"ok\n"
        if path.startswith("/is/image/"):
            width, height, name = image_request(path, "/is/image/", query)
            return 200, "image/png", self.server.image.render(width, height, name)
        if path.startswith("/is/agm/"):
            width, height, name = image_request(path, "/is/agm/", query)
            return 200, "image/svg+xml", self.server.svg.render(width, height, name)
        if path.startswith("/is/content/") and path.endswith(".svg"):
            width, height, text = image_request(path[: -len(".svg")], "/is/content/", query)
            return 200, "image/svg+xml", self.server.svg.render(width, height, text)
        raise _HttpError(404, f"not found: {path} (see / for the endpoints)")

    def _health(self) -> tuple[int, str, bytes]:
        problems = []
        for backend in (self.server.image, self.server.svg):
            try:
                backend.ping()
            except _HttpError as exc:
                problems.append(str(exc))
        if problems:
            return 503, "text/plain; charset=utf-8", ("\n".join(problems) + "\n").encode()
        return 200, "text/plain; charset=utf-8", b"ok\n"

    def log_message(self, format: str, *args: object) -> None:
        # Only requests http.server answers by itself (malformed, unsupported method) come here.
        log(LABEL, f"{self.client_address[0]} {_printable(format % args)}")


def _printable(text: str) -> str:
    """Escape control characters so that a hostile request line cannot forge log lines."""
    return "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in text)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the Platform Server in the foreground until SIGTERM or SIGINT; return the exit status."""
    block_stop_signals()
    parser = make_parser(
        "Demo Platform Server: HTTP front end forwarding to the Image and SVG servers.",
        PORT_ENV,
        DEFAULT_PORT,
    )
    parser.add_argument(
        "--is-port",
        type=port_number,
        default=None,
        help=f"Image Server port (default: ${imageserver.PORT_ENV}, else {imageserver.DEFAULT_PORT})",
    )
    parser.add_argument(
        "--svg-port",
        type=port_number,
        default=None,
        help=f"SVG server port (default: ${svgserver.PORT_ENV}, else {svgserver.DEFAULT_PORT})",
    )
    args = parser.parse_args(argv)
    port = resolve_port(parser, args.port, PORT_ENV, DEFAULT_PORT)
    image = Backend(
        "Image Server", resolve_port(parser, args.is_port, imageserver.PORT_ENV, imageserver.DEFAULT_PORT)
    )
    svg = Backend(
        svgserver.LABEL, resolve_port(parser, args.svg_port, svgserver.PORT_ENV, svgserver.DEFAULT_PORT)
    )
    return listen_or_exit(LABEL, lambda: PlatformServer((HOST, port), image, svg), port)


if __name__ == "__main__":
    sys.exit(main())
