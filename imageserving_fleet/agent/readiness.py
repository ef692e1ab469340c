"""Readiness probes: is a started component serving yet? (tcp connect, http GET, a command).

tcp and http probes each run in a short-lived thread so a slow one never blocks the supervisor's
loop; a command probe is a child process that the supervisor itself owns, reaps and kills on
timeout. The http probe speaks HTTP/1.0 over a plain socket: http.client would pull ssl and email
into the long-lived supervisor (3 MB of RSS) for one status line.
"""

from __future__ import annotations

import socket
import threading
from urllib.parse import urlsplit

from .config import ReadyCheck

PROBE_TIMEOUT = 2.0
INTERVAL = 0.1  # seconds between probes of a starting component


def probe_tcp(host: str, port: int, timeout: float = PROBE_TIMEOUT) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def probe_http(url: str, timeout: float = PROBE_TIMEOUT) -> bool:
    """A 2xx or 3xx answer means ready."""
    parts = urlsplit(url)
    host = parts.hostname or "127.0.0.1"
    port = parts.port or (443 if parts.scheme == "https" else 80)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    try:
        with socket.create_connection((host, port), timeout=timeout) as raw:
            sock = raw
            if parts.scheme == "https":
                import ssl  # only for the rare https probe

                sock = ssl.create_default_context().wrap_socket(raw, server_hostname=host)
            sock.sendall(f"GET {target} HTTP/1.0\r\nHost: {parts.netloc}\r\nConnection: close\r\n\r\n".encode())
            head = b""
            while b"\r\n" not in head and len(head) < 1024:
                chunk = sock.recv(1024)
                if not chunk:
                    break
                head += chunk
    except OSError:
        return False
    fields = head.split(b"\r\n", 1)[0].split()
    return len(fields) >= 2 and fields[0].startswith(b"HTTP/") and fields[1][:1] in (b"2", b"3")


class Probe:
    """One tcp or http probe running in its own daemon thread; `done` and `ok` when finished."""

    def __init__(self, check: ReadyCheck) -> None:
        if check.kind not in ("tcp", "http"):
            raise ValueError(f"{check.kind} probes are run by the supervisor, not in a thread")
        self.check, self.done, self.ok = check, False, False
        threading.Thread(target=self._run, name=f"probe {check.describe()}", daemon=True).start()

    def _run(self) -> None:
        c = self.check
        self.ok = probe_tcp(c.host, c.port) if c.kind == "tcp" else probe_http(c.url)
        self.done = True
