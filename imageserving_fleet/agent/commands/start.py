"""`start`: all components in priority order, or some; clears a hold and a FATAL state."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from ..operations import Operation

if TYPE_CHECKING:
    from ..server import Client
    from ..supervisor import Supervisor


def handle(sup: Supervisor, req: dict[str, Any], ids: list[str], client: Client) -> None:
    for i, (op, owner) in enumerate(sup.operations):
        if not ids and op.kind == "start" and owner is None:
            # `imageserving start` launches us (we start everything at once) and then asks for a
            # start: answer it when that first start ends instead of starting twice, which would
            # reset a BACKOFF component's retries and skip its backoff.
            client.op, sup.operations[i] = op, (op, client)
            return None
    if not ids and req.get("after_launch") and sup.launch_reply is not None:
        # That first start already ended (FATAL included): its outcome is this start's answer.
        # Starting again would clear a FATAL and restart the backoff the operator just saw run out.
        reply, sup.launch_reply = sup.launch_reply, None
        sup.server.answer(client, {**reply, "result": sup.status_doc(None)})
        return None
    groups = [[c for c in g if not ids or c in ids] for g in sup.cfg.priorities()]
    sup.begin(Operation("start", [g for g in groups if g], time.monotonic()), client)
    return None
