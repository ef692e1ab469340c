"""Rolling work (restart, reload, config push, restart supervisor): batches, hooks, the health gate.

Any per-host job runs batch after batch: the next batch starts only when this one's hosts report
every component RUNNING (held-down ones aside), and the run stops when a batch's failures exceed
--max-fail-percentage. `--serial` is a size or a list of sizes (`1,10%,50%`, Ansible's serial
list: the last size repeats). Around each host's action run the controller's hooks (hooks.py):
`--before` (a failure leaves the host untouched and failed), then the action, the health gate,
then `--after` (even when the action failed; its failure fails the host). With `confirm`, each
batch after the first waits for the operator's yes. Batching is pure; the fan-out is any
fanout.FanOut.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Annotated

from ..errors import UsageError
from .fanout import FanOut, Interrupted
from .hooks import HOOK_TIMEOUT, HookRunner, Hooks, check_hooks
from .httpgate import GateUrl, gate_step_for, parse_gate_url
from .jobs import STATUS, Job, Kind, gate_job
from .options import opt
from .results import HostResult, Result
from .target import Target

HEALTH_POLL = 0.5  # seconds between status polls of a batch that is not all RUNNING yet

# (batch number from 1, how many batches, the batch's hosts) -> go on?  (--confirm)
Confirm = Callable[[int, int, list[str]], bool]
# Told of each batch as it begins: (its number from 1, how many batches, its hosts)
OnBatch = Callable[[int, int, list[str]], None]
VERBS = {Kind.RESTART: "restart", Kind.RELOAD: "reload", Kind.CONFIG_PUSH: "config push"}


@dataclass(frozen=True)
class Rolling:
    """How a rolling run goes, checked (UsageError, exit 5) before any host is contacted: --serial,
    --max-fail-percentage, the hooks, --confirm's question (None: no question), --gate-http."""

    serial: str | None = None
    max_fail_percentage: float = 0.0
    hooks: Hooks = Hooks()
    confirm: Confirm | None = None
    gate: GateUrl | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.max_fail_percentage <= 100:
            raise UsageError("--max-fail-percentage must be between 0 and 100")
        if self.serial is not None:
            parse_serial(self.serial)
        check_hooks(self.hooks.before, self.hooks.after, self.hooks.timeout)

    def plan(self, hosts: Sequence[str]) -> list[list[str]]:
        """The batches of these hosts (--json's `"batches"`)."""
        return batches(hosts, self.serial)


@dataclass(frozen=True)
class RollingOptions:
    """The rolling options as written (restart, reload, config push), each declared once: the CLI
    builds its options from these fields (options.declared); `rolling()` checks them into a Rolling."""

    serial: Annotated[str | None, opt(
        "--serial", metavar="N|N%|LIST", help="Batches of N hosts (or N% of them), or a list such as 1,10%,50% (the "
                                              "last size repeats); the next batch starts when this one is all RUNNING.")
    ] = None
    max_fail_percentage: Annotated[float, opt(
        "--max-fail-percentage", metavar="P", help="Stop when more than P% of a batch fails (default 0: any failure).")
    ] = 0.0
    confirm: Annotated[bool, opt(
        "--confirm", help="Ask on the terminal before each batch after the first (a canary); refused without a TTY.")
    ] = False
    before: Annotated[str | None, opt(
        "--before", metavar="CMD", help="Run CMD on the controller (/bin/sh -c) before each host's action, with "
                                        "IMAGESERVING_HOST, IMAGESERVING_ADDRESS, IMAGESERVING_BATCH set (e.g. drain "
                                        "it); a failure leaves the host untouched and failed.")] = None
    after: Annotated[str | None, opt(
        "--after", metavar="CMD", help="Run CMD on the controller after each host's action and health gate, even when "
                                       "the action failed (e.g. put it back); a failure fails the host.")] = None
    hook_timeout: Annotated[float, opt(
        "--hook-timeout", metavar="S", help="Kill a --before/--after still running after S seconds (its host fails; "
                                            "default 60).")] = HOOK_TIMEOUT
    gate_http: Annotated[str | None, opt(
        "--gate-http", metavar="URL", help="Health gate: also wait until URL, as the host sees it (e.g. "
                                           "http://127.0.0.1:8080/healthz), answers 2xx, asked through the host's SSH "
                                           "connection.")] = None

    def rolling(self, ask: Callable[[], Confirm]) -> Rolling:
        """Every rolling option checked, before any host is contacted (UsageError, exit 5); `ask()`
        makes --confirm's question (it refuses where there is no terminal)."""
        gate = parse_gate_url(self.gate_http) if self.gate_http is not None else None
        return Rolling(self.serial, self.max_fail_percentage, Hooks(self.before, self.after, self.hook_timeout),
                       ask() if self.confirm else None, gate)


@dataclass(frozen=True)
class BatchSize:
    """One size of a --serial list: a count of hosts, or a percentage of all the run's hosts."""

    number: int
    percent: bool = False

    def of(self, total: int) -> int:
        """Ansible's pct_to_int: a percentage of the whole run, rounded down, at least 1 host."""
        return max(1, math.floor(total * self.number / 100)) if self.percent else self.number


def parse_serial(text: str) -> tuple[BatchSize, ...]:
    """Takes `--serial` (`3`, `30%`, or a list `1,10%,50%`); returns its sizes or raises UsageError."""
    sizes = []
    for item in text.split(","):
        value = item.strip()
        percent = value.endswith("%")
        number = value[:-1] if percent else value
        if not number.isdigit() or int(number) <= 0 or (percent and int(number) > 100):
            raise UsageError(f"--serial must be a positive count, a percentage such as 25%, or a list of them "
                             f"such as 1,10%,50%; got {text!r}")
        sizes.append(BatchSize(int(number), percent))
    return tuple(sizes)


def batch_sizes(total: int, sizes: Sequence[BatchSize]) -> list[int]:
    """Takes the number of hosts and the --serial sizes; returns each batch's size (the last one repeats).

    As Ansible's _get_serialized_batches: percentages are of all the hosts, and a last batch takes
    what is left: `1,50%` on 4 hosts is 1, 2, 1.
    """
    out: list[int] = []
    left, item = total, 0
    while left > 0:
        size = min(sizes[item].of(total), left)
        out.append(size)
        left -= size
        item = min(item + 1, len(sizes) - 1)
    return out


def batches(hosts: Sequence[str], serial: str | None) -> list[list[str]]:
    """Takes host names and --serial; returns the batches in order (at least one host each)."""
    if not hosts:
        return []
    if serial is None:
        return [list(hosts)]
    plan, start = [], 0
    for size in batch_sizes(len(hosts), parse_serial(serial)):
        plan.append(list(hosts[start:start + size]))
        start += size
    return plan


def too_many_failures(batch: Sequence[HostResult], max_fail_percentage: float) -> bool:
    """The run stops when a batch's failures exceed (not equal) the allowed percentage."""
    failed = sum(1 for r in batch if r.result != Result.OK)
    return bool(batch) and failed * 100.0 / len(batch) > max_fail_percentage


def rolling(fleet: FanOut, targets: Sequence[Target], job: Job, how: Rolling,
            on_batch: OnBatch | None = None) -> list[HostResult]:
    """Runs `job` batch after batch; the next starts only when this one reports everything RUNNING.

    Per batch: `confirm` (batches after the first; a no skips the rest), `--before` of each host,
    the job on the hosts whose --before passed, the health gate (every component RUNNING, then
    `gate`'s URL answering 2xx when given), `--after` of each of them.
    On Ctrl-C raises Interrupted with every host accounted for: earlier batches as they ended, the
    batch in flight done / interrupted mid-job / not begun, later batches skipped; the job's verb
    ("restart", "reload", "config push") names it in those reasons.
    """
    verb = VERBS[job.kind]
    max_fail_percentage, confirm, gate = how.max_fail_percentage, how.confirm, how.gate
    by_name = {t.name: t for t in targets}
    plan = how.plan([t.name for t in targets])
    runner = HookRunner(how.hooks, getattr(fleet, "forks", 1))
    results: dict[str, HostResult] = {}
    current: list[str] = []
    restarted: dict[str, HostResult] = {}  # the batch in flight, once its restart command returned
    try:
        for index, names in enumerate(plan):
            current, restarted = names, {}
            if index and confirm is not None and not confirm(index + 1, len(plan), names):
                why = f"not reached: batch {index + 1} of {len(plan)} was not confirmed"
                for later in plan[index:]:
                    results.update((n, HostResult(n, Result.SKIPPED, why)) for n in later)
                break
            if on_batch:
                on_batch(index + 1, len(plan), names)
            batch = _one_batch(fleet, [by_name[n] for n in names], job, runner, index + 1, restarted, gate)
            results.update((r.host, r) for r in batch)
            if too_many_failures(batch, max_fail_percentage):
                failed = sum(1 for r in batch if r.result != Result.OK)
                why = (f"not reached: batch {index + 1} had {failed} of {len(batch)} hosts fail "
                       f"(more than --max-fail-percentage {max_fail_percentage:g})")
                for later in plan[index + 1:]:
                    results.update((n, HostResult(n, Result.SKIPPED, why)) for n in later)
                break
    except (Interrupted, KeyboardInterrupt) as exc:
        runner.kill_all()
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


def _one_batch(fleet: FanOut, batch_targets: list[Target], job: Job, runner: HookRunner, number: int,
               restarted: dict[str, HostResult], gate: GateUrl | None = None) -> list[HostResult]:
    """--before, the job, the health gate, --after, for one batch; `restarted` is filled as the job returns."""
    refused = {name: why for name, why in runner.run_many("before", batch_targets, number).items() if why}
    go = [t for t in batch_targets if t.name not in refused]
    current = {name: HostResult(name, Result.FAILED, f"{why}; left untouched") for name, why in refused.items()}
    if go:
        started = time.monotonic()
        done = fleet.run(go, job)
        restarted.update((r.host, r) for r in done)
        current.update((r.host, r) for r in _wait_healthy(fleet, go, done, started))
        if gate is not None:
            current.update(_wait_serving(fleet, [t for t in go if current[t.name].result == Result.OK], current,
                                         gate, started))
        for name, why in runner.run_many("after", go, number).items():
            if why:
                before = current[name]
                current[name] = dataclasses.replace(before, result=Result.FAILED,
                                                    reason=why + (f"; {before.reason}" if before.reason else ""))
    return [current[t.name] for t in batch_targets]


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


def _wait_serving(fleet: FanOut, targets: Sequence[Target], current: dict[str, HostResult], gate: GateUrl,
                  started: float) -> dict[str, HostResult]:
    """Asks `gate` on each host (through its connection) until it answers 2xx or --timeout; returns
    the hosts that never did, failed with what their last try said (httpgate.py)."""
    job = gate_job(gate_step_for(gate))
    deadline = started + fleet.timeout
    waiting, why = list(targets), {}
    while waiting:
        counted, fleet.on_result = fleet.on_result, None  # gate tries are not hosts done
        try:
            tried = fleet.run(waiting, job, timeout=max(1.0, deadline - time.monotonic()))
        finally:
            fleet.on_result = counted
        why = {r.host: r.reason for r in tried if r.result != Result.OK}
        waiting = [t for t in waiting if t.name in why]
        left = deadline - time.monotonic()
        if not waiting or left <= 0:
            break
        time.sleep(min(HEALTH_POLL, left))
    out = {}
    for t in waiting:
        before = current[t.name]
        out[t.name] = dataclasses.replace(before, result=Result.FAILED, reason=why[t.name])
    return out
