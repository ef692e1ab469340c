"""`start [ID]` and `stop [ID]`: everything, or one component (start ends a hold, stop holds it down)."""

from __future__ import annotations

from ..context import RunContext
from ..fanout import FanOut
from ..jobs import Kind, action_job
from .run import Outcome, execute


def start(ctx: RunContext, fanout: FanOut, component: str | None = None) -> Outcome:
    return execute(ctx, fanout, action_job(Kind.START, component))


def stop(ctx: RunContext, fanout: FanOut, component: str | None = None) -> Outcome:
    return execute(ctx, fanout, action_job(Kind.STOP, component))
