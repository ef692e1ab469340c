"""The work unit of a cluster run, and what a worker does with it: the in-process fan-out.

A shard carries everything its hosts need, resolved on the controller: the targets (the
inventory already read and merged there), the CLI's connection options, the job and its
deadline. The worker reads no inventory: what it reads is its own SSH material (ssh_config,
known_hosts, keys) at the paths the options name, as an OpenSSH client on that machine would.
It runs the shard with runner.Fleet, the same code as a run without --cluster: deadlines and
host-key checks as there, one shard at a time per worker thread; its connections are the
worker's kept ones (workerpool.py) unless the run's --persist is 0.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from ..jobs import Job
from ..results import HostResult, Result
from ..runner import Fleet
from ..ssh.settings import Secret
from ..target import FleetOptions, Target
from .policy import WORKER_LOST


@dataclass(frozen=True)
class Shard:
    """A few hosts and everything needed to ask them, as sent to one worker."""

    index: int
    targets: tuple[Target, ...]
    options: FleetOptions
    job: Job
    timeout: float               # each host's whole deadline, as in-process
    forks: int                   # hosts of this shard worked on at once
    become_password: Secret | None = None
    # For actions (policy FAIL): a dask Event the first attempt sets; a second attempt, made by
    # the scheduler after the first's worker died, finds it set and must not act again.
    claim: str | None = None
    # The run's --persist: the worker keeps the connections this long unused (workerpool.py); 0 ends
    # them with the shard.
    persist: float = 0.0

    def __repr__(self) -> str:  # what a worker's log may show of a task: no targets' details, no secret
        return f"Shard({self.index}, {self.job.kind.value}, {len(self.targets)} hosts)"


def worker_lost(targets: tuple[Target, ...] | list[Target]) -> list[HostResult]:
    return [HostResult(t.name, Result.FAILED, WORKER_LOST) for t in targets]


def run_shard(shard: Shard) -> list[HostResult]:
    """On a worker: runs the shard's job on its hosts; returns their results, each with "worker"."""
    from distributed import get_worker

    worker = get_worker().address
    if shard.claim is not None and not _first_attempt(shard.claim):
        return worker_lost(shard.targets)  # asked by the lost worker, not by this one: "worker" stays null
    password = shard.become_password.reveal() if shard.become_password else None
    if shard.persist > 0:
        from .workerpool import run_kept

        results = run_kept(shard.targets, shard.job, shard.options, forks=shard.forks, timeout=shard.timeout,
                           persist=shard.persist, password=password)
    else:
        from ..ssh import Connector

        with Fleet(Connector(shard.options), forks=max(1, min(shard.forks, len(shard.targets))),
                   timeout=shard.timeout, become_password=password, keep_sessions=False) as fleet:
            results = fleet.run(shard.targets, shard.job)
    return [replace(r, worker=worker, clustered=True) for r in results]


def _first_attempt(claim: str) -> bool:
    """Sets the shard's claim; False when an earlier attempt (on a worker since lost) had set it."""
    from distributed import Event

    event = Event(claim)
    if event.is_set():
        return False
    event.set()
    return True
