"""The small serving shell the demo servers share (imageserver, svgserver, platformserver): port
selection, the line-protocol server with its access log, the RENDER/PING request line, and the
signal handling that turns SIGTERM into a clean exit 0. Only the standard library is imported, and
little of it, so a demo process listens within milliseconds.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import socketserver
import sys
import threading
import time
from collections.abc import Callable

HOST = "127.0.0.1"
MAX_SIDE = 2000  # the same default limit as Image Serving's attribute::MaxPix
MAX_LINE = 4096  # longer request lines are refused and the connection closed: no unbounded buffering

# Both mean "stop now, cleanly": SIGTERM from the supervisor, SIGINT from a person at a terminal.
STOP_SIGNALS = frozenset({signal.SIGTERM, signal.SIGINT})


class _BadRequest(ValueError):
    """A request the server refuses; its message goes back to the client after ``ERR``."""


def log(who: str, message: str) -> None:
    """Write one timestamped line to stderr, which the supervisor collects into the component's log."""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    print(f"{stamp} {who}: {message}", file=sys.stderr, flush=True)


def port_number(text: str) -> int:
    """Parse a TCP port (0 asks the kernel for a free one), or raise with a message for the user."""
    if not (text.isascii() and text.isdigit()) or not 0 <= int(text) <= 65535:
        # argparse shows an ArgumentTypeError's own message, where a ValueError gets a generic one.
        raise argparse.ArgumentTypeError(f"not a TCP port number: {text!r}")
    return int(text)


def make_parser(description: str, env_name: str, default_port: int) -> argparse.ArgumentParser:
    """Build the command line every demo service shares: ``--port`` over an environment variable."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--port",
        type=port_number,
        default=None,
        help=f"TCP port on {HOST} (default: ${env_name}, else {default_port}; 0 picks a free port)",
    )
    return parser


def resolve_port(parser: argparse.ArgumentParser, cli_port: int | None, env_name: str, default: int) -> int:
    """Choose a port: the command line wins, then the environment, then the built-in default."""
    if cli_port is not None:
        return cli_port
    raw = os.environ.get(env_name, "").strip()
    if not raw:
        return default
    try:
        return port_number(raw)
    except argparse.ArgumentTypeError as exc:
        parser.error(f"{env_name}: {exc}")  # exits 2, like any other usage error


def block_stop_signals() -> None:
    """Route SIGTERM/SIGINT to :func:`serve`'s ``sigwait`` instead of asynchronous handlers.

    Call it first thing in ``main``, before any thread exists, so every thread inherits the mask.
    A Python signal handler could fire in the middle of the accept loop or a lock; waiting for
    the signal synchronously in the main thread has no such race.
    """
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)


def serve(server: socketserver.TCPServer, label: str) -> int:
    """Serve until SIGTERM or SIGINT, then stop accepting, finish in-flight requests and return 0."""
    host, port = server.socket.getsockname()[:2]  # the real port, also when 0 was asked for
    # The accept loop wakes every poll_interval to notice shutdown(): 0.1 s keeps SIGTERM prompt
    # while costing nothing measurable when idle.
    acceptor = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.1}, name="accept", daemon=True
    )
    acceptor.start()
    # Supervisors and tests wait for this exact line: it is printed only once the socket listens.
    print(f"{label} listening on {host}:{port}", flush=True)
    signum = signal.sigwait(STOP_SIGNALS)
    log(label, f"{signal.Signals(signum).name} received, shutting down")
    server.shutdown()
    acceptor.join()
    server.server_close()
    log(label, "stopped")
    sys.stdout.flush()
    sys.stderr.flush()
    return 0


def listen_or_exit(label: str, factory: Callable[[], socketserver.TCPServer], port: int) -> int:
    """Create the server and serve it; a port that cannot be bound is a clear message and exit 1."""
    try:
        server = factory()
    except OSError as exc:
        log(label, f"cannot listen on {HOST}:{port}: {exc.strerror or exc}")
        return 1
    return serve(server, label)


class DrainingTCPServer(socketserver.ThreadingMixIn, socketserver.TCPServer):
    """A thread-per-connection TCP server whose close lets in-flight replies finish, then returns.

    Every demo server derives from it: closing stops listening, ends the read side of each open
    connection (so a client that keeps an idle connection open cannot hold the shutdown until its
    read timeout), and joins the handler threads, which still finish the reply they are writing.
    """

    allow_reuse_address = True  # a restarted server must rebind while old connections are in TIME_WAIT
    daemon_threads = False  # so server_close() joins the handler threads instead of abandoning them
    block_on_close = True

    def __init__(self, address: tuple[str, int], handler: type[socketserver.BaseRequestHandler]) -> None:
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, handler)

    def process_request(self, request: socket.socket, client_address: tuple[str, int]) -> None:  # type: ignore[override]
        # Called by the accept loop, which shutdown() has stopped before server_close() runs,
        # so no connection can slip in after server_close() took its snapshot.
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: socket.socket) -> None:  # type: ignore[override]
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def server_close(self) -> None:
        # Wake idle readers first: ThreadingMixIn.server_close() joins the handler threads.
        with self._connections_lock:
            connections = list(self._connections)
        for conn in connections:
            try:
                conn.shutdown(socket.SHUT_RD)
            except OSError:
                pass  # the peer closed it already: nothing left to wake
        super().server_close()


class LineServer(DrainingTCPServer):
    """A server for one-line requests: ``answer`` turns a request line into the full reply bytes."""

    def __init__(self, address: tuple[str, int], answer: Callable[[bytes], bytes], label: str) -> None:
        self.answer = answer
        self.label = label
        super().__init__(address, LineHandler)

    def served(self, client: tuple[str, int], request: bytes, reply: bytes) -> None:
        """Called after each reply (the Image Server writes its access log here)."""


class AccessLog:
    """One Apache common-format line per request, in <directory>/access-YYYY-MM-DD.log (local date)."""

    def __init__(self, directory: str) -> None:
        self.directory = directory
        self._lock = threading.Lock()

    @classmethod
    def from_environment(cls) -> AccessLog | None:
        home = os.environ.get("IMAGESERVING_HOME")
        return cls(os.path.join(home, "logs", "is")) if home else None

    def write(self, client: tuple[str, int], request: bytes, reply: bytes) -> None:
        now = time.localtime()
        first = request.decode("utf-8", "replace").strip().replace('"', "'")[:200]
        status = 400 if reply.startswith(b"ERR") else 200
        line = (f'{client[0]} - - [{time.strftime("%d/%b/%Y:%H:%M:%S %z", now)}] "{first}" {status} '
                f"{len(reply)}\n")
        path = os.path.join(self.directory, f"access-{time.strftime('%Y-%m-%d', now)}.log")
        with self._lock:
            try:
                os.makedirs(self.directory, exist_ok=True)
                with open(path, "a", encoding="utf-8") as fh:  # opened per line: follows the date and logrotate
                    fh.write(line)
            except OSError as exc:
                log("Image Server", f"access log {path}: {exc.strerror}")


class LineHandler(socketserver.StreamRequestHandler):
    """Read request lines from one client and write each reply in a single send."""

    timeout = 30  # a silent client must not hold a thread forever
    server: LineServer

    def handle(self) -> None:
        try:
            while True:
                line = self.rfile.readline(MAX_LINE + 1)
                if not line:
                    return
                if len(line) > MAX_LINE:
                    # The rest of the line is still in flight; we cannot find the next request.
                    self.wfile.write(b"ERR request line longer than %d bytes\n" % MAX_LINE)
                    return
                reply = self.server.answer(line)
                self.wfile.write(reply)
                self.server.served(self.client_address, line, reply)
        except OSError:
            return  # timeout, reset or broken pipe: the client is gone, nothing to answer


def parse_render(rest: str, max_text: int, noun: str = "name") -> tuple[int, int, str]:
    """Parse ``<width> <height> <text...>`` (the text may contain spaces) or raise ValueError (a private _BadRequest)."""
    parts = rest.split(maxsplit=2)
    if len(parts) < 3:
        raise _BadRequest(f"usage: RENDER <width> <height> <{noun}>")
    sides = []
    for label, value in zip(("width", "height"), parts[:2], strict=True):
        if not (value.isascii() and value.isdigit()) or not 1 <= int(value) <= MAX_SIDE:
            raise _BadRequest(f"{label} must be an integer from 1 to {MAX_SIDE}, not {value[:16]!r}")
        sides.append(int(value))
    text = parts[2].strip()
    if len(text) > max_text:
        raise _BadRequest(f"{noun} longer than {max_text} characters")
    if not text.isprintable():
        raise _BadRequest(f"{noun} contains control characters")
    return sides[0], sides[1], text


def answer_line(
    line: bytes, render: Callable[[int, int, str], bytes], max_text: int, noun: str = "name"
) -> bytes:
    """Turn one request line into the full reply: PONG, OK plus body, or ERR with a reason."""
    try:
        text = line.decode("utf-8").rstrip("\r\n")
    except UnicodeDecodeError:
        return b"ERR request is not UTF-8\n"
    word, _, rest = text.strip().partition(" ")
    command = word.upper()
    if command == "PING" and not rest.strip():
        return b"PONG\n"
    if command == "RENDER":
        try:
            width, height, name = parse_render(rest, max_text, noun)
            body = render(width, height, name)
        except _BadRequest as exc:
            return f"ERR {exc}\n".encode()
        return b"OK %d\n" % len(body) + body
    if not word:
        return b"ERR empty request (expected PING or RENDER)\n"
    return f"ERR unknown request {word[:32]!r} (expected PING or RENDER)\n".encode()


