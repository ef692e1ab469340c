"""`start [ID]` and `stop [ID]`: everything, or one component (start ends a hold, stop holds it down)."""

from __future__ import annotations

from ..context import RunContext
from ..jobs import Kind, action_job
from .run import Outcome, Progress, execute


def start(ctx: RunContext, component: str | None = None, progress: Progress | None = None) -> Outcome:
    return execute(ctx, action_job(Kind.START, component), progress)


def stop(ctx: RunContext, component: str | None = None, progress: Progress | None = None) -> Outcome:
    return execute(ctx, action_job(Kind.STOP, component), progress)
