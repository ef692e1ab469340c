"""`status [ID]` and `ping`: one read-only job on every host."""

from __future__ import annotations

from ..context import RunContext
from ..jobs import VERSION, status_job
from .run import Outcome, Progress, execute


def status(ctx: RunContext, component: str | None = None, progress: Progress | None = None) -> Outcome:
    """Every host's status (of one component id, already checked by remote.check_id, or of all)."""
    return execute(ctx, status_job([component] if component else []), progress)


def ping(ctx: RunContext, progress: Progress | None = None) -> Outcome:
    """Reachability and agent version of every host (`agent_version` on each ok result)."""
    return execute(ctx, VERSION, progress)
