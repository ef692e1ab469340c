"""`status`: the status document of some or all components, answered at once from recent samples."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ...protocol import ok

if TYPE_CHECKING:
    from ..server import Client
    from ..supervisor import Supervisor


def handle(sup: Supervisor, req: dict[str, Any], ids: list[str], client: Client) -> dict[str, Any]:
    return ok(sup.status_doc(ids))
