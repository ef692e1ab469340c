"""The rolling family: `restart [ID]`, `reload`, `config push FILE`, batch by batch (fleet/rolling.py).

`config push`: each host gets the file on the agent's stdin and runs `imageserving config install`
there: its own agent validates it (as `config check` does), installs it atomically as the host's
imageserving_config (default /etc/imageserving/agent.yaml) keeping the previous file as `.prev`,
then reloads. A host that refuses the file keeps its old one and is `failed` with the agent's
own message. With --serial the next batch waits until this one is healthy.
"""

from __future__ import annotations

import dataclasses

from ...errors import ImageServingError, UsageError
from ..context import RunContext
from ..fanout import FanOut
from ..jobs import RELOAD, Job, Kind, action_job, push_job
from ..rolling import OnBatch, Rolling, rolling
from .run import Outcome, execute

MAX_PUSH_BYTES = 4 * 2**20  # the agent refuses larger configurations anyway


def read_config_file(path: str) -> bytes:
    """The file to push, read on the controller; raises ImageServingError (exit 1: nothing contacted yet)."""
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_PUSH_BYTES + 1)
    except OSError as exc:
        raise ImageServingError(f"cannot read {path}: {exc.strerror or exc}") from None
    if len(data) > MAX_PUSH_BYTES:
        raise ImageServingError(f"{path}: larger than {MAX_PUSH_BYTES // 2**20} MiB: not an agent configuration")
    return data


def roll(ctx: RunContext, fanout: FanOut, job: Job, how: Rolling, on_batch: OnBatch | None = None) -> Outcome:
    if how.gate is not None and ctx.cluster is not None:  # before any host
        raise UsageError("--gate-http asks each host through the controller's own connections: not with --cluster")
    outcome = execute(ctx, fanout, lambda fleet, targets: rolling(fleet, targets, job, how, on_batch))
    plan = how.plan([t.name for t in ctx.targets])
    return dataclasses.replace(outcome, batches=tuple(tuple(b) for b in plan))


def restart(ctx: RunContext, fanout: FanOut, component: str | None, how: Rolling, on_batch: OnBatch | None = None) -> Outcome:
    return roll(ctx, fanout, action_job(Kind.RESTART, component), how, on_batch)


def reload(ctx: RunContext, fanout: FanOut, how: Rolling, on_batch: OnBatch | None = None) -> Outcome:
    return roll(ctx, fanout, RELOAD, how, on_batch)


def config_push(ctx: RunContext, fanout: FanOut, data: bytes, how: Rolling, on_batch: OnBatch | None = None) -> Outcome:
    return roll(ctx, fanout, push_job(data), how, on_batch)
