"""Rolling restarts: batches, the health gate between them, and the stop rule. Batching is pure."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence

from ..errors import UsageError
from .results import HostResult, Result
from .runner import Fleet, Job
from .target import Target

HEALTH_POLL = 0.5  # seconds between status polls of a batch that is not all RUNNING yet


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


def rolling_restart(fleet: Fleet, targets: Sequence[Target], component: str | None, serial: str | None,
                    max_fail_percentage: float, on_batch: Callable[[int, int, list[str]], None] | None = None
                    ) -> list[HostResult]:
    """Restarts batch after batch; the next starts only when this one reports everything RUNNING."""
    by_name = {t.name: t for t in targets}
    plan = batches([t.name for t in targets], serial)
    args = ("restart", *([component] if component else []), "--json")
    results: dict[str, HostResult] = {}
    for index, names in enumerate(plan):
        if on_batch:
            on_batch(index + 1, len(plan), names)
        batch_targets = [by_name[n] for n in names]
        started = time.monotonic()
        batch = fleet.run(batch_targets, Job("restart", args))
        batch = _wait_healthy(fleet, batch_targets, batch, started)
        results.update((r.host, r) for r in batch)
        if too_many_failures(batch, max_fail_percentage):
            failed = sum(1 for r in batch if r.result != Result.OK)
            why = (f"not reached: batch {index + 1} had {failed} of {len(batch)} hosts fail "
                   f"(more than --max-fail-percentage {max_fail_percentage:g})")
            for later in plan[index + 1:]:
                results.update((n, HostResult(n, Result.SKIPPED, why)) for n in later)
            break
    return [results[t.name] for t in targets]


def _wait_healthy(fleet: Fleet, targets: Sequence[Target], batch: list[HostResult], started: float
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
        for res in fleet.run(waiting, Job("status", ("status", "--json")), timeout=max(1.0, left)):
            current[res.host] = res
    return [current[t.name] for t in targets]
