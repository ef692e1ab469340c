"""Talk to the Server Supervisor over its Unix socket: one JSON request, one JSON reply per line.

Stdlib only, and cheap to import: `imageserving status --json` goes through here and nothing else.
"""

from __future__ import annotations

import json
import socket

TYPE_CHECKING = False  # not `from typing`: importing typing costs the status path 8 ms

from ..errors import NoAnswerError, NotRunningError, SupervisorError
from ..home import MAX_SOCKET_PATH, Home
from ..protocol import ANSWER_TIMEOUT, MAX_REPLY, QUIET_REQUESTS

if TYPE_CHECKING:
    from typing import Any


def asking_user() -> str:
    """Who asks for a change: the fleet's `user@controller` when it ran us, else the local login name."""
    import os

    named = os.environ.get("IMAGESERVING_REQUESTED_BY")
    if named:
        return named[:100]
    import getpass

    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid {os.getuid()}"


def request(home: Home, payload: dict[str, Any], timeout: float | None = ANSWER_TIMEOUT) -> dict[str, Any]:
    """Takes a request; returns the supervisor's reply, or raises NotRunningError / NoAnswerError."""
    path = home.socket
    if len(path.encode()) > MAX_SOCKET_PATH:
        raise SupervisorError(f"socket path too long for a Unix socket ({len(path)} bytes): {path}; use a shorter --home")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(min(timeout, 5.0) if timeout else 5.0)
        try:
            sock.connect(path)
        except (FileNotFoundError, ConnectionRefusedError):
            raise NotRunningError("Server Supervisor is not running") from None
        except TimeoutError:
            raise NoAnswerError(f"no answer from the Server Supervisor at {path}") from None
        except PermissionError:
            raise SupervisorError(f"permission denied on {path}: run as the user that started it") from None
        sock.settimeout(timeout)
        if payload.get("cmd") not in QUIET_REQUESTS and "user" not in payload:
            payload = {**payload, "user": asking_user()}  # the supervisor's log names who asked
        sock.sendall(json.dumps(payload).encode() + b"\n")
        data = bytearray()
        while not data.endswith(b"\n"):
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                raise NoAnswerError(f"no answer from the Server Supervisor within {timeout:g}s") from None
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                if not data:
                    raise SupervisorError("the Server Supervisor closed the connection without answering")
                break
            data += chunk
            if len(data) > MAX_REPLY:
                raise SupervisorError("reply from the Server Supervisor too large")
    finally:
        sock.close()
    try:
        reply = json.loads(data)
    except ValueError:
        raise SupervisorError("unreadable reply from the Server Supervisor") from None
    if not isinstance(reply, dict):
        raise SupervisorError("unreadable reply from the Server Supervisor")
    return reply


def is_running(home: Home) -> bool:
    """True when a supervisor answers a ping on this home's socket."""
    try:
        return request(home, {"cmd": "ping"}, timeout=5.0).get("status") == "ok"
    except SupervisorError:
        return False
