"""Ask every host for its status again and again, over connections kept open between polls.

The watch view and the exporter both stand on this. Every `interval` a new round starts with the
hosts whose previous poll has ended; a host that hangs is still bounded by the per-host deadline
(`--timeout`) of the round it is in, and meanwhile the other hosts go on being polled: a slow
host holds up only itself. Each answer is handed on as soon as it arrives (`on_result`, with
the monotonic time it came), and each round's end too (`on_round`, and `on_round_s` with how long
the round took). `set_targets` swaps the hosts polled from the next round on (SIGHUP).

It runs on any fan-out (fanout.FanOut: the in-process Fleet or a cluster's).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from ..errors import UsageError
from ..schema import AgentStatus, SchemaError, parse_status
from .fanout import FanOut, Interrupted
from .jobs import STATUS, Job
from .results import HostResult, Result
from .target import Target

MAX_INTERVAL = 86400.0


def check_interval(value: float) -> float:
    """Takes --interval; returns it, or raises UsageError (exit 5) for 0, negative, nan or absurd values."""
    if not 0 < value <= MAX_INTERVAL:  # nan fails both comparisons
        raise UsageError(f"--interval must be a number of seconds above 0 (at most {MAX_INTERVAL:g}), got {value!r}")
    return value


def agent_status(status: Any) -> AgentStatus | None:
    """A host's status as AgentStatus, whether the fan-out hands a dict or one already typed."""
    if status is None or isinstance(status, AgentStatus):
        return status
    try:
        return parse_status(status)
    except SchemaError:
        return None


class Poller:
    """Polls `targets` every `interval` seconds from a thread of its own until stop()."""

    def __init__(self, fleet: FanOut, targets: Sequence[Target], interval: float, timeout: float,
                 on_result: Callable[[HostResult, float], None],
                 on_round: Callable[[list[HostResult]], None] | None = None, job: Job = STATUS,
                 on_round_s: Callable[[float], None] | None = None) -> None:
        self.fleet, self.targets, self.interval, self.timeout, self.job = fleet, list(targets), interval, timeout, job
        self._on_result, self._on_round, self._on_round_s = on_result, on_round, on_round_s
        self._outstanding: set[str] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._rounds: list[threading.Thread] = []
        self._thread = threading.Thread(target=self._loop, name="poller", daemon=True)
        fleet.on_result = self._answered

    @property
    def outstanding(self) -> frozenset[str]:
        """The hosts asked and not answered yet."""
        with self._lock:
            return frozenset(self._outstanding)

    def set_targets(self, targets: Sequence[Target]) -> None:
        """Polls these hosts from the next round on; a round in flight ends with the hosts it had."""
        with self._lock:
            self.targets = list(targets)

    def start(self) -> Poller:
        self._thread.start()
        return self

    def stop(self, wait: float = 0.0) -> None:
        """Stops starting rounds; with `wait`, gives the rounds in flight that long to end."""
        self._stop.set()
        end = time.monotonic() + wait
        for thread in [self._thread, *self._rounds]:
            thread.join(max(0.0, end - time.monotonic()))

    def _answered(self, result: HostResult) -> None:
        now = time.monotonic()
        with self._lock:
            self._outstanding.discard(result.host)
        self._on_result(result, now)

    def _loop(self) -> None:
        due = time.monotonic()
        while not self._stop.is_set():
            with self._lock:
                idle = [t for t in self.targets if t.name not in self._outstanding]
                self._outstanding.update(t.name for t in idle)
            if idle:
                thread = threading.Thread(target=self._round, args=(idle,), name="poll round", daemon=True)
                self._rounds = [t for t in self._rounds if t.is_alive()] + [thread]
                thread.start()
            due += self.interval
            now = time.monotonic()
            if due < now:  # a stall (suspend, an overloaded box): start again from now, do not catch up
                due = now + self.interval
            self._stop.wait(due - now)

    def _round(self, batch: list[Target]) -> None:
        started = time.monotonic()
        try:
            results = self.fleet.run(batch, self.job, timeout=self.timeout)
        except Interrupted as exc:
            results = exc.results
        except Exception as exc:  # a bug must cost one round, never the poller
            results = [HostResult(t.name, Result.FAILED, f"internal error: {type(exc).__name__}: {exc}")
                       for t in batch]
            for res in results:
                self._answered(res)
        finally:
            with self._lock:
                self._outstanding.difference_update(t.name for t in batch)
        if self._stop.is_set():
            return
        if self._on_round_s is not None:
            self._on_round_s(time.monotonic() - started)
        if self._on_round is not None:
            self._on_round(results)
