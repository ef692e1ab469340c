"""The HTTP health gate: a host goes back (its `--after`, the next batch) only once it serves.

`--gate-http URL` (e.g. `http://127.0.0.1:8080/healthz`) names a URL as the host itself sees it.
After a batch's hosts report every component RUNNING, the controller asks that URL on each of
them through the host's own SSH connection: a `direct-tcpip` channel from the host's sshd to the
URL's address (so nothing needs a route to the host's port, and a server bound to loopback
counts), then one `GET` over it. A 2xx answer is serving; anything else (a refused channel,
another status, no answer) is asked again every HEALTH_POLL until the host's --timeout, after
which the host is `failed` with what the last try said. A `local` host is asked directly.
Default off: the status gate (every component RUNNING, the ps readiness check included) holds.
"""

from __future__ import annotations

import functools
import socket
import time
import urllib.parse
from dataclasses import dataclass
from typing import Any

from ..errors import UsageError
from .results import HostResult, Result
from .target import Target

MAX_HEAD = 65536     # bytes read of the answer before its status line must have come
TRY_TIMEOUT = 5.0    # one GET: a server that has not answered by then is asked again


@dataclass(frozen=True)
class GateUrl:
    """An http:// URL split for one GET: where to connect (as the host sees it) and what to ask."""

    text: str
    host: str
    port: int
    target: str    # path and query, e.g. /healthz

    @property
    def host_header(self) -> str:
        return self.host if self.port == 80 else f"{self.host}:{self.port}"


def parse_gate_url(text: str) -> GateUrl:
    """Takes `--gate-http`; returns it split, or raises UsageError (exit 5) saying what is wrong."""
    try:
        parts = urllib.parse.urlsplit(text.strip())
        port = parts.port or 80
    except ValueError as exc:
        raise UsageError(f"--gate-http: not a URL: {text!r} ({exc})") from None
    if parts.scheme != "http" or not parts.hostname:
        raise UsageError(f"--gate-http must be an http:// URL such as http://127.0.0.1:8080/healthz, got {text!r}")
    path = parts.path or "/"
    return GateUrl(text.strip(), parts.hostname, port, path + (f"?{parts.query}" if parts.query else ""))


def request_bytes(url: GateUrl) -> bytes:
    return (f"GET {url.target} HTTP/1.0\r\nHost: {url.host_header}\r\nUser-Agent: imageserving-fleet\r\n"
            "Connection: close\r\n\r\n").encode("ascii", errors="replace")


def parse_status_line(head: bytes) -> int:
    """Takes the first bytes of an answer; returns its HTTP status, or raises ValueError."""
    line = head.split(b"\r\n", 1)[0].split(b"\n", 1)[0].decode("latin-1")
    version, _, rest = line.partition(" ")
    code = rest[:3]
    if not version.startswith("HTTP/") or not code.isdigit():
        raise ValueError(f"not an HTTP answer: {line[:60]!r}")
    return int(code)


def open_stream(session: Any, url: GateUrl, timeout: float) -> Any:
    """A byte stream to the URL's address as the host sees it: a direct-tcpip channel, or a socket."""
    transport = getattr(session, "transport", None)
    if transport is None:  # a local host: this machine is the host
        return socket.create_connection((url.host, url.port), timeout=timeout)
    chan = transport.open_channel("direct-tcpip", (url.host, url.port), ("127.0.0.1", 0), timeout=timeout)
    chan.settimeout(timeout)
    return chan


def ask_once(session: Any, url: GateUrl, timeout: float) -> str | None:
    """One GET; returns None when it answered 2xx, else what went wrong (said plainly)."""
    try:
        stream = open_stream(session, url, timeout)
    except Exception as exc:  # paramiko ChannelException (connect failed), SSHException, OSError
        return f"GET {url.text}: cannot connect from the host ({_what(exc)})"
    try:
        stream.sendall(request_bytes(url))
        head = b""
        while b"\n" not in head and len(head) < MAX_HEAD:
            chunk = stream.recv(4096)
            if not chunk:
                break
            head += chunk
        status = parse_status_line(head)
    except (OSError, ValueError, EOFError) as exc:
        return f"GET {url.text}: {_what(exc)}"
    finally:
        try:
            stream.close()
        except Exception:  # closing a channel of a transport that just went away
            pass
    return None if 200 <= status < 300 else f"GET {url.text} answered {status}"


def _what(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError | socket.timeout):
        return "no answer in time"
    text = getattr(exc, "text", None) or str(exc) or type(exc).__name__  # a ChannelException's text
    return str(text)


def gate_step(url: GateUrl, target: Target, session: Any, deadline: float, _stdin: bytes | None) -> HostResult:
    """One host's gate: one GET over its connection; ok when it serves, failed with why otherwise."""
    started = time.monotonic()
    why = ask_once(session, url, max(0.1, min(TRY_TIMEOUT, deadline - started)))
    elapsed = time.monotonic() - started
    if why is None:
        return HostResult(target.name, Result.OK, "", elapsed_s=elapsed)
    return HostResult(target.name, Result.FAILED, f"not serving: {why}", elapsed_s=elapsed)


def gate_step_for(url: GateUrl) -> functools.partial[HostResult]:
    """The per-host step (a module-level function and its URL: it pickles, as a cluster needs)."""
    return functools.partial(gate_step, url)
