"""`ping`: is the supervisor there, which pid, version and configuration file."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from ... import __version__
from ...protocol import ok

if TYPE_CHECKING:
    from ..server import Client
    from ..supervisor import Supervisor


def handle(sup: Supervisor, req: dict[str, Any], ids: list[str], client: Client) -> dict[str, Any]:
    return ok(pid=os.getpid(), version=__version__, config=sup.cfg.path)
