"""`handover`: `restart supervisor`; a new supervisor from the installed code takes over every component."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..handover import hand_over

if TYPE_CHECKING:
    from ..server import Client
    from ..supervisor import Supervisor


def handle(sup: Supervisor, req: dict[str, Any], ids: list[str], client: Client) -> dict[str, Any]:
    return hand_over(sup)
