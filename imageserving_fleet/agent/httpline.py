"""One HTTP/1.0 request with one deadline, read up to the status line: the supervisor's HTTP client.

    status_line(url, method, body, headers, timeout) -> [b"HTTP/1.0", b"200", b"OK"] (split fields)

A plain socket, as the health checks and notifications need no more: http.client would pull ssl
and email into the long-lived supervisor for one status line, and its timeout is per read, so a
server dripping one byte a second could hold a check forever. Raises TimeoutError when the whole
exchange outlasts `timeout`, OSError for the rest (refused, reset, DNS).
"""

from __future__ import annotations

import socket
import time
from urllib.parse import urlsplit


def status_line(url: str, method: str = "GET", body: bytes = b"", headers: str = "",
                timeout: float = 2.0) -> list[bytes]:
    parts = urlsplit(url)
    host = parts.hostname or "127.0.0.1"
    port = parts.port or (443 if parts.scheme == "https" else 80)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    end = time.monotonic() + timeout  # one deadline for the whole exchange
    head = f"{method} {target} HTTP/1.0\r\nHost: {parts.netloc}\r\n{headers}Connection: close\r\n\r\n"
    with socket.create_connection((host, port), timeout=timeout) as raw:
        sock = raw
        if parts.scheme == "https":
            import ssl  # only for the rare https URL

            sock = ssl.create_default_context().wrap_socket(raw, server_hostname=host)
        sock.sendall(head.encode() + body)
        answer = b""
        while b"\r\n" not in answer and len(answer) < 1024:
            left = end - time.monotonic()
            if left <= 0:
                raise TimeoutError
            sock.settimeout(left)
            chunk = sock.recv(1024)
            if not chunk:
                break
            answer += chunk
    return answer.split(b"\r\n", 1)[0].split()


def status_text(fields: list[bytes]) -> str:
    """What a refusal says of an answer: "503 Service Unavailable", or that there was no status line."""
    return b" ".join(fields[1:3]).decode(errors="replace") if fields else "no status line"


def succeeded(fields: list[bytes], classes: bytes = b"2") -> bool:
    """An HTTP answer whose status code starts with one of `classes` (b"2", or b"23" for a probe)."""
    return len(fields) >= 2 and fields[0].startswith(b"HTTP/") and fields[1][:1] in [bytes([c]) for c in classes]
