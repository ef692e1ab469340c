"""`imageserving-fleet exporter`: the fleet as one Prometheus target.

A poller (poller.py) asks every matched host for its status every --interval over kept
connections; at the end of each round the exporter renders the last complete answer of every
host into a snapshot (both encodings, bytes ready to send), and the HTTP thread serves only that:
a scrape never waits for a host. A host that stops answering is `imageserving_host_up 0` with its
result once its --timeout has passed, and its component series are gone, never a stale RUNNING.
It logs one line per change of a host's result or of a component's state, never one per poll.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, TextIO

from ..metrics import FORMATS, HostSample, fleet_families, render
from ..metrics_http import MetricsServer
from ..timefmt import utc_stamp
from ..untrusted import escape
from .fanout import FanOut
from .poller import Poller, agent_status
from .results import HostResult, summarize
from .target import Target

DEFAULT_INTERVAL = 15.0


def state_key(result: HostResult) -> tuple[str, tuple[tuple[str, str], ...]]:
    """What a change is: the host's result, or a component's state."""
    status = agent_status(result.status)
    if status is None:
        return str(result.result), ()
    return str(result.result), (("supervisor", status.supervisor.state), *((c.id, c.state) for c in status.components))


def describe_change(before: HostResult | None, after: HostResult) -> str | None:
    """Takes a host's previous and new result; returns the log line, or None when nothing changed."""
    if before is not None and state_key(before) == state_key(after):
        return None
    moved: list[str] = []
    if before is None or before.result == after.result:
        head = f"{after.host}: {after.result}"
    else:
        head = f"{after.host}: {before.result} -> {after.result}"
    if before is not None and state_key(before)[1] and state_key(after)[1]:  # both answered
        old = dict(state_key(before)[1])
        moved = [f"{cid} {old[cid]} -> {state}" if cid in old else f"{cid} {state}"
                 for cid, state in state_key(after)[1] if old.get(cid) != state]
    return head + ("; " + ", ".join(moved) if moved else "") + (f" ({after.reason})" if after.reason else "")


class Exporter:
    """The latest answer of every host and the snapshot rendered from them."""

    def __init__(self, targets: Sequence[Target], log: Callable[[str], None]) -> None:
        self.names = [t.name for t in targets]
        self.log = log
        self.latest: dict[str, HostResult] = {}
        self.rounds = 0
        self._lock = threading.Lock()
        self._snapshot: dict[str, bytes] = {fmt: render([], fmt) for fmt in FORMATS}
        self.render_s = 0.0                      # the last snapshot's rendering time (bench)

    def on_result(self, result: HostResult, _at: float) -> None:
        with self._lock:
            before = self.latest.get(result.host)
            self.latest[result.host] = result
        line = describe_change(before, result)
        if line and (before is not None or result.result != "ok"):  # the first round: only what is wrong
            self.log(line)

    def on_round(self, _results: list[HostResult]) -> None:
        started = time.perf_counter()
        with self._lock:
            latest = [self.latest[n] for n in self.names if n in self.latest]
        samples = [HostSample(r.host, str(r.result), agent_status(r.status)) for r in latest]
        families = fleet_families(samples, time.time())
        rendered = {fmt: render(families, fmt) for fmt in FORMATS}
        with self._lock:
            self._snapshot = rendered
            self.rounds += 1
            first = self.rounds == 1
        self.render_s = time.perf_counter() - started
        if first:
            self.log(f"first poll done: {summarize(latest).line()}")

    def snapshot(self, fmt: str) -> bytes:
        with self._lock:
            return self._snapshot[fmt]


def make_log(stream: TextIO = sys.stderr) -> Callable[[str], None]:
    """One line per event; timestamps unless journald (which adds its own) is the reader."""
    journald = "JOURNAL_STREAM" in os.environ

    def log(line: str) -> None:
        stamp = "" if journald else utc_stamp() + " "
        stream.write(f"{stamp}{escape(line)}\n")  # a change line carries a host's reason: untrusted
        stream.flush()

    return log


def serve(fleet: FanOut, targets: Sequence[Target], sock: socket.socket, interval: float, timeout: float,
          log: Callable[[str], None] | None = None) -> int:
    """Runs the exporter until SIGTERM or SIGINT; returns the exit code (0)."""
    log = log or make_log()
    exporter = Exporter(targets, log)
    server = MetricsServer(sock, exporter.snapshot).start()
    poller = Poller(fleet, targets, interval, timeout, exporter.on_result, exporter.on_round).start()
    log(f"serving {server.url}; polling {len(targets)} host(s) every {interval:g}s (--timeout {timeout:g}s)")

    def stop(signo: int, _frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        log("stopping")
    finally:
        signal.signal(signal.SIGTERM, previous)
        poller.stop()
        server.stop()
    return 0
