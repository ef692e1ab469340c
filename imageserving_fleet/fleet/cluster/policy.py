"""What a lost worker means for its hosts, per command: ask them again, or report them failed. Pure.

A read-only question (status, a version, logs) can be asked twice without harm, so its shard goes
to another worker. An action may have half happened on a worker that died mid-shard: doing it
again could restart a host twice or push a file over a newer one, so those hosts are reported
`failed` with the reason below, and the operator looks at them.
"""

from __future__ import annotations

import enum

WORKER_LOST = "worker lost; state unknown"
ASK_AGAIN_LIMIT = 3  # shards of a read-only command are asked at most this many times in all


class OnLostWorker(enum.Enum):
    ASK_AGAIN = "ask again elsewhere"
    FAIL = "fail: worker lost; state unknown"


# Keyed by Job.command (what the agent is asked). Anything not listed is an action: FAIL.
POLICY: dict[str, OnLostWorker] = {
    "status": OnLostWorker.ASK_AGAIN,    # status, report, the health gate of a rolling restart
    "version": OnLostWorker.ASK_AGAIN,   # ping
    "logs": OnLostWorker.ASK_AGAIN,
    "start": OnLostWorker.FAIL,
    "stop": OnLostWorker.FAIL,
    "restart": OnLostWorker.FAIL,
    "reload": OnLostWorker.FAIL,
    "config": OnLostWorker.FAIL,         # config push
}


def on_lost_worker(command: str) -> OnLostWorker:
    """Takes a job's command; returns what to do with its hosts when their worker dies."""
    return POLICY.get(command, OnLostWorker.FAIL)
