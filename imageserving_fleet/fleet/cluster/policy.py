"""What a lost worker means for its hosts, per command: ask them again, or report them failed. Pure.

A read-only question (status, a version, logs) can be asked twice without harm, so its shard goes
to another worker. An action may have half happened on a worker that died mid-shard: doing it
again could restart a host twice or push a file over a newer one, so those hosts are reported
`failed` with the reason below, and the operator looks at them.
"""

from __future__ import annotations

import enum

from ..jobs import Kind

WORKER_LOST = "worker lost; state unknown"
ASK_AGAIN_LIMIT = 3  # shards of a read-only command are asked at most this many times in all


class OnLostWorker(enum.Enum):
    ASK_AGAIN = "ask again elsewhere"
    FAIL = "fail: worker lost; state unknown"


# Every kind of job, by what the agent is asked.
POLICY: dict[Kind, OnLostWorker] = {
    Kind.STATUS: OnLostWorker.ASK_AGAIN,     # status, report, the health gate of a rolling restart
    Kind.VERSION: OnLostWorker.ASK_AGAIN,    # ping
    Kind.LOGS: OnLostWorker.ASK_AGAIN,
    Kind.HTTP_GATE: OnLostWorker.ASK_AGAIN,  # a GET of the host's own URL (refused with --cluster today)
    Kind.START: OnLostWorker.FAIL,
    Kind.STOP: OnLostWorker.FAIL,
    Kind.RESTART: OnLostWorker.FAIL,
    Kind.RELOAD: OnLostWorker.FAIL,
    Kind.CONFIG_PUSH: OnLostWorker.FAIL,
    Kind.DEPLOY: OnLostWorker.FAIL,          # never through a cluster (connect.py), listed for completeness
}


def on_lost_worker(kind: Kind) -> OnLostWorker:
    """Takes a job's kind; returns what to do with its hosts when their worker dies."""
    return POLICY[kind]
