"""`reload`: take a new, already validated configuration (JSON written by the CLI) and apply only what changed.

The CLI validated the YAML (a bad file never gets here: exit 6 there) and wrote it as JSON, so
the daemon never imports yaml. Reloads queue: one is applied after the other, never interleaved.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from ...protocol import BAD_ARGS, BAD_CONFIG, RequestError
from ..config import from_dict

if TYPE_CHECKING:
    from ..server import Client
    from ..supervisor import Supervisor


def handle(sup: Supervisor, req: dict[str, Any], ids: list[str], client: Client) -> None:
    path = req.get("config_json")
    if not isinstance(path, str) or not path:
        raise RequestError(BAD_ARGS, "bad request: reload needs config_json, the path of a validated configuration")
    try:
        with open(path) as fh:
            config = from_dict(json.load(fh))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise RequestError(BAD_CONFIG, f"cannot read the new configuration {path}: {exc}") from None
    sup.request_reload(config, client)
    return None
