"""One handler per control request, as circus's commands/ does: `ping`, `status`, `start`, `stop`,
`restart`, `reload`, `handover` (`restart supervisor`).

A handler takes the supervisor, the decoded request (ids already checked) and the client; it
returns the reply at once, or None when the operation it began answers later. Errors are raised
as protocol.RequestError, which the server turns into the one error envelope.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ...protocol import BAD_ARGS, RequestError
from . import handover, ping, reload, restart, start, status, stop

if TYPE_CHECKING:
    from ..server import Client
    from ..supervisor import Supervisor

Handler = Callable[["Supervisor", dict[str, Any], list[str], "Client"], "dict[str, Any] | None"]

HANDLERS: dict[str, Handler] = {
    "ping": ping.handle, "status": status.handle, "start": start.handle, "stop": stop.handle,
    "restart": restart.handle, "reload": reload.handle, "handover": handover.handle,
}


def dispatch(sup: Supervisor, req: dict[str, Any], client: Client) -> dict[str, Any] | None:
    """Checks what every request shares (cmd, ids), then hands it to its command's handler."""
    cmd = req.get("cmd")
    ids = req.get("ids") or []
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise RequestError(BAD_ARGS, "bad request: ids must be a list of component ids")
    unknown = [i for i in ids if i not in sup.procs]
    if unknown:
        raise RequestError(BAD_ARGS, f"unknown component {unknown[0]!r}; valid ids: {', '.join(sup.procs)}")
    handler = HANDLERS.get(cmd) if isinstance(cmd, str) else None
    if handler is None:
        raise RequestError(BAD_ARGS, f"bad request: unknown command {cmd!r}")
    return handler(sup, req, ids, client)
