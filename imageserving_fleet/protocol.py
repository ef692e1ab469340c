"""The control socket's wire protocol: one JSON request line, one JSON reply line, one envelope.

    request   {"cmd": "status", "ids": ["is"], ...}
    reply     {"status": "ok", "result": <status document>, ...}
              {"status": "error", "reason": "what went wrong", "code": <exit code>}

An error's `code` is the exit code the `imageserving` command ends with (LSB init-script rules),
named here once for both ends: the agent's server, client and control.py, and the fleet, which
asks the same socket over SSH (fleet/asksocket.py). Stdlib only and no dataclasses: the status
client imports this.
"""

from __future__ import annotations

from .errors import ImageServingError

TYPE_CHECKING = False  # not `from typing`: importing typing costs the status path 8 ms

if TYPE_CHECKING:
    from typing import Any

# Exit codes (SPEC §2), also the `code` of an error reply.
OK = 0
FAILED = 1              # a component failed to start or stop
BAD_ARGS = 2            # unknown command or component, malformed request
NOT_RUNNING = 3         # status: no supervisor
NO_ANSWER = 4           # status: no answer in time; also a peer of another uid
BAD_CONFIG = 6          # invalid configuration (config check, start, reload)
SUPERVISOR_DOWN = 7     # restart ID, start ID: no supervisor to ask

# Requests that change nothing: the client sends no asker for them, the server logs none.
QUIET_REQUESTS = ("status", "ping")
MAX_REQUEST = 64 * 1024   # one request line; more is refused (and the peer dropped)
# One reply line at most; a status document is a few kB. The one home of this bound: it is also
# what the fleet lets a command on a host write (fleet/ssh/base.py), as the agent prints a reply.
MAX_REPLY = 16 * 2**20
ANSWER_TIMEOUT = 10.0     # seconds a client waits for the supervisor's answer to a quick request (status, ping)


class RequestError(ImageServingError):
    """A request that cannot be served; becomes an error reply with this code."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code, self.reason = code, reason


def ok(result: Any = None, **fields: Any) -> dict[str, Any]:
    reply: dict[str, Any] = {"status": "ok"}
    if result is not None:
        reply["result"] = result
    reply.update(fields)
    return reply


def error(code: int, reason: str, **fields: Any) -> dict[str, Any]:
    return {"status": "error", "reason": reason, "code": code, **fields}
