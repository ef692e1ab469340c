"""`restart`: some components, each stopped then started; the others keep their pids."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from ...protocol import BAD_ARGS, RequestError
from ..operations import Operation

if TYPE_CHECKING:
    from ..server import Client
    from ..supervisor import Supervisor


def handle(sup: Supervisor, req: dict[str, Any], ids: list[str], client: Client) -> None:
    if not ids:
        raise RequestError(BAD_ARGS, "bad request: restart needs component ids (a full restart replaces "
                                     "the supervisor)")
    sup.begin(Operation("restart", [ids], time.monotonic()), client)
    return None
