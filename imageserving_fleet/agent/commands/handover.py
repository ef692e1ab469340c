"""`handover`: `restart supervisor`; a new supervisor from the installed code takes over every component.

`python` is the interpreter of the `imageserving` command that asked: after a deploy switched the
venv, that is the new build's (our own sys.executable is the build we were started from).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ...protocol import BAD_ARGS, RequestError
from ..handover import hand_over

if TYPE_CHECKING:
    from ..server import Client
    from ..supervisor import Supervisor


def handle(sup: Supervisor, req: dict[str, Any], ids: list[str], client: Client) -> dict[str, Any]:
    python = req.get("python")
    if python is not None and not isinstance(python, str):
        raise RequestError(BAD_ARGS, "bad request: python must be the path of an interpreter")
    return hand_over(sup, python)
