"""`status [ID]` and `ping`: one read-only job on every host."""

from __future__ import annotations

from ..context import RunContext
from ..fanout import FanOut
from ..jobs import VERSION, status_job
from .run import Outcome, execute


def status(ctx: RunContext, fanout: FanOut, component: str | None = None) -> Outcome:
    """Every host's status (of one component id, already checked by remote.check_id, or of all)."""
    return execute(ctx, fanout, status_job([component] if component else []))


def ping(ctx: RunContext, fanout: FanOut) -> Outcome:
    """Reachability and agent version of every host (`agent_version` on each ok result)."""
    return execute(ctx, fanout, VERSION)
