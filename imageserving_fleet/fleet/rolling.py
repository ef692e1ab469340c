"""Rolling work (restart, reload, config push): batches, the health gate between them, the stop rule.

Any per-host job runs batch after batch: the next batch starts only when this one's hosts report
every component RUNNING (held-down ones aside), and the run stops when a batch's failures exceed
--max-fail-percentage. Batching is pure; the fan-out is any fanout.FanOut.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ..errors import UsageError
from .fanout import FanOut, Interrupted
from .jobs import STATUS, Job, Kind
from .results import HostResult, Result
from .target import Target

HEALTH_POLL = 0.5  # seconds between status polls of a batch that is not all RUNNING yet


# Told of each batch as it begins: (its number from 1, how many batches, its hosts)
OnBatch = Callable[[int, int, list[str]], None]
VERBS = {Kind.RESTART: "restart", Kind.RELOAD: "reload", Kind.CONFIG_PUSH: "config push"}


@dataclass(frozen=True)
class Rolling:
    """--serial and --max-fail-percentage, checked (UsageError, exit 5) before any host is contacted."""

    serial: str | None = None
    max_fail_percentage: float = 0.0

    def __post_init__(self) -> None:
        if not 0 <= self.max_fail_percentage <= 100:
            raise UsageError("--max-fail-percentage must be between 0 and 100")
        if self.serial is not None:
            parse_serial(self.serial)


def parse_serial(text: str) -> tuple[int, bool]:
    """Takes `--serial` (`3` or `30%`); returns (number, is_percent) or raises UsageError."""
    value = text.strip()
    percent = value.endswith("%")
    number = value[:-1] if percent else value
    if not number.isdigit() or int(number) <= 0 or (percent and int(number) > 100):
        raise UsageError(f"--serial must be a positive count or a percentage such as 25%, got {text!r}")
    return int(number), percent


def batches(hosts: Sequence[str], serial: str | None) -> list[list[str]]:
    """Takes host names and --serial; returns the batches in order (at least one host each)."""
    if not hosts:
        return []
    if serial is None:
        return [list(hosts)]
    number, percent = parse_serial(serial)
    size = max(1, math.floor(len(hosts) * number / 100)) if percent else number
    return [list(hosts[i:i + size]) for i in range(0, len(hosts), size)]


def too_many_failures(batch: Sequence[HostResult], max_fail_percentage: float) -> bool:
    """The run stops when a batch's failures exceed (not equal) the allowed percentage."""
    failed = sum(1 for r in batch if r.result != Result.OK)
    return bool(batch) and failed * 100.0 / len(batch) > max_fail_percentage


def rolling(fleet: FanOut, targets: Sequence[Target], job: Job, how: Rolling,
            on_batch: OnBatch | None = None) -> list[HostResult]:
    """Runs `job` batch after batch; the next starts only when this one reports everything RUNNING.

    On Ctrl-C raises Interrupted with every host accounted for: earlier batches as they ended, the
    batch in flight done / interrupted mid-job / not begun, later batches skipped; the job's verb
    ("restart", "reload", "config push") names it in those reasons.
    """
    verb = VERBS[job.kind]
    max_fail_percentage = how.max_fail_percentage
    by_name = {t.name: t for t in targets}
    plan = batches([t.name for t in targets], how.serial)
    results: dict[str, HostResult] = {}
    current: list[str] = []
    restarted: dict[str, HostResult] = {}  # the batch in flight, once its restart command returned
    try:
        for index, names in enumerate(plan):
            current, restarted = names, {}
            if on_batch:
                on_batch(index + 1, len(plan), names)
            batch_targets = [by_name[n] for n in names]
            started = time.monotonic()
            batch = fleet.run(batch_targets, job)
            restarted = {r.host: r for r in batch}
            batch = _wait_healthy(fleet, batch_targets, batch, started)
            results.update((r.host, r) for r in batch)
            if too_many_failures(batch, max_fail_percentage):
                failed = sum(1 for r in batch if r.result != Result.OK)
                why = (f"not reached: batch {index + 1} had {failed} of {len(batch)} hosts fail "
                       f"(more than --max-fail-percentage {max_fail_percentage:g})")
                for later in plan[index + 1:]:
                    results.update((n, HostResult(n, Result.SKIPPED, why)) for n in later)
                break
    except (Interrupted, KeyboardInterrupt) as exc:
        partial = {r.host: r for r in exc.results} if isinstance(exc, Interrupted) else {}
        cut = exc.running if isinstance(exc, Interrupted) else frozenset()
        for name in current:
            if name not in results:
                results[name] = _interrupted(name, restarted.get(name), partial.get(name), name in cut, verb)
        for name in by_name:
            never = "not restarted" if verb == "restart" else f"no {verb}"
            results.setdefault(name, HostResult(name, Result.SKIPPED, f"{never}: interrupted before its batch"))
        raise Interrupted([results[t.name] for t in targets]) from None
    return [results[t.name] for t in targets]


def _interrupted(name: str, restart: HostResult | None, partial: HostResult | None, cut: bool,
                 verb: str = "restart") -> HostResult:
    """What Ctrl-C left of one host of the batch in flight, said plainly; `cut`: it was mid-job."""
    if restart is None:  # interrupted during the job itself
        if partial is None or partial.result == Result.SKIPPED:
            if verb == "restart":
                return HostResult(name, Result.SKIPPED, "not restarted: interrupted before its restart began")
            return HostResult(name, Result.SKIPPED, f"no {verb}: interrupted before its {verb} began")
        if cut:
            half = "half-restarted" if verb == "restart" else f"half-way through its {verb}"
            return HostResult(name, Result.FAILED, f"interrupted during its {verb}: it may be {half}; "
                                                   "check with `status`", elapsed_s=partial.elapsed_s)
        return partial  # its job had finished: ok or failed, as the agent said
    if partial is not None and partial.result in (Result.OK, Result.DEGRADED):
        return partial  # a fresh status from the health wait
    if restart.result == Result.DEGRADED:
        done = "restarted" if verb == "restart" else f"{verb} done"
        return HostResult(name, Result.DEGRADED, f"{done}; interrupted while waiting for every component to be "
                                                 f"RUNNING ({restart.reason})", restart.status, restart.elapsed_s)
    return restart


def _wait_healthy(fleet: FanOut, targets: Sequence[Target], batch: list[HostResult], started: float
                  ) -> list[HostResult]:
    """Polls the batch's degraded hosts over their open connections until RUNNING or --timeout."""
    current = {r.host: r for r in batch}
    deadline = started + fleet.timeout
    while True:
        waiting = [t for t in targets if current[t.name].result == Result.DEGRADED]
        left = deadline - time.monotonic()
        if not waiting or left <= 0:
            break
        time.sleep(min(HEALTH_POLL, left))
        counted, fleet.on_result = fleet.on_result, None  # polls are not hosts done: keep the bar's count
        try:
            polled = fleet.run(waiting, STATUS, timeout=max(1.0, left))
        finally:
            fleet.on_result = counted
        for res in polled:
            current[res.host] = res
    return [current[t.name] for t in targets]
