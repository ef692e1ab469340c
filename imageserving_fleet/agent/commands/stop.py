"""`stop`: some components (held down until started again), or all and then the supervisor (`shutdown`)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from ..operations import Operation

if TYPE_CHECKING:
    from ..server import Client
    from ..supervisor import Supervisor


def handle(sup: Supervisor, req: dict[str, Any], ids: list[str], client: Client) -> None:
    groups = [[c for c in g if not ids or c in ids] for g in reversed(sup.cfg.priorities())]
    hold = bool(ids) and req.get("hold", True) is not False  # `stop ID` holds it down (SPEC §2)
    sup.begin(Operation("stop", [g for g in groups if g], time.monotonic(), shutdown=bool(req.get("shutdown")),
                        hold=hold), client)
    return None
