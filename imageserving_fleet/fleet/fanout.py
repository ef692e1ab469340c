"""The one fan-out interface, and what Ctrl-C leaves of a run. No fan-out is imported here.

    FanOut       a Protocol: run(targets, job, timeout=None) -> one HostResult per target, in order;
                 `timeout` (each host's deadline), `on_result` (told of each host as it ends), close()
                 runner.Fleet (in-process threads) and cluster.fanout.ClusterFleet (dask workers)
                 both satisfy it; the rolling gate, the poller, the watch view and the exporter
                 are written against it.
    Interrupted  raised by run() on Ctrl-C, with every target's result (the partial ones marked)
    cut_short    the one place those marks are made
"""

from __future__ import annotations

from collections.abc import Callable, Collection, MutableMapping, Sequence
from types import TracebackType
from typing import Protocol

from ..errors import ImageServingError
from .jobs import Job
from .results import HostResult, Result
from .target import Target

RUNNING_CUT = "interrupted while running"
NOT_BEGUN = "interrupted before it started"


class FanOut(Protocol):
    """Runs one job on many hosts at once; each host within `timeout` seconds."""

    timeout: float
    on_result: Callable[[HostResult], None] | None

    def run(self, targets: Sequence[Target], job: Job, timeout: float | None = None) -> list[HostResult]: ...

    def close(self) -> None: ...

    def __enter__(self) -> FanOut: ...

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None: ...


class Interrupted(ImageServingError):
    """Ctrl-C during a run; carries every target's result (the unfinished ones marked), and which
    hosts were in the middle of their job (`running`): their work may be half done."""

    def __init__(self, results: list[HostResult], running: frozenset[str] = frozenset()) -> None:
        super().__init__("interrupted")
        self.results, self.running = results, running


def cut_short(targets: Sequence[Target], done: MutableMapping[str, HostResult], running: Collection[str],
              record: Callable[[HostResult], None]) -> Interrupted:
    """Ctrl-C: the hosts in `running` failed mid-job, the others not in `done` never began.

    `record` is told of each such host (the fan-out files it, and may tell its listener);
    returns the Interrupted to raise, with every target's result in the targets' order.
    """
    for name in running:
        if name not in done:
            record(HostResult(name, Result.FAILED, RUNNING_CUT))
    for target in targets:
        if target.name not in done:
            record(HostResult(target.name, Result.SKIPPED, NOT_BEGUN))
    return Interrupted([done[t.name] for t in targets], frozenset(running))
