"""`imageserving-fleet exporter`: the fleet as one Prometheus target, a live page, notifications.

A poller (poller.py) asks every matched host for its status every --interval over kept
connections; at the end of each round the exporter renders the last complete answer of every
host into a snapshot (the metrics in both encodings, the live page and its JSON, bytes ready to
send), and the HTTP thread serves only that: a scrape or a page never waits for a host. A host
that stops answering is `imageserving_host_up 0` with its result once its --timeout has passed,
and its component series are gone, never a stale RUNNING.

It logs one line per change of a host's result or of a component's state, never one per poll,
and with --notify POSTs each change (notify.py, flap-damped). Its own figures (how long a poll
takes, when the last one ended, hosts, errors, notifications, inventory re-reads) are metrics
too (`imageserving_exporter_*`), rendered at each scrape. SIGHUP re-reads the inventory; a bad
one is logged and the hosts polled stay as they were.

    /               the live page: the report's table of the last snapshot, refreshing itself
    /snapshot.json  the report document of the last snapshot, plus the page's rows (html)
    /metrics        every host's metrics and the exporter's own
    /healthz        200 while polls complete, 503 before the first one and when they stall
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, TextIO

from ..metrics import FORMATS, HostSample, fleet_families, render
from ..metrics_http import MetricsServer, Page
from ..timefmt import utc_stamp
from ..untrusted import escape
from .fanout import FanOut
from .notify import Change, Notifier, now_iso
from .poller import Poller, agent_status
from .results import HostResult, Result, summarize
from .target import Target

DEFAULT_INTERVAL = 15.0
_EOF = b"# EOF\n"


def state_key(result: HostResult) -> tuple[str, tuple[tuple[str, str], ...]]:
    """What a change is: the host's result, or a component's state."""
    status = agent_status(result.status)
    if status is None:
        return str(result.result), ()
    return str(result.result), (("supervisor", status.supervisor.state), *((c.id, c.state) for c in status.components))


def changes(before: HostResult | None, after: HostResult, at: str = "") -> list[Change]:
    """Takes a host's previous and new result; returns what changed: its result, then each component
    whose state moved (only when both answers had a status); [] when nothing did."""
    if before is not None and state_key(before) == state_key(after):
        return []
    out: list[Change] = []
    if before is None or before.result != after.result:
        out.append(Change(after.host, None, str(after.result), None if before is None else str(before.result),
                          after.reason, at))
    if before is not None and state_key(before)[1] and state_key(after)[1]:  # both answered
        old = dict(state_key(before)[1])
        out += [Change(after.host, cid, state, old.get(cid), after.reason, at)
                for cid, state in state_key(after)[1] if old.get(cid) != state]
    return out


def describe_change(before: HostResult | None, after: HostResult) -> str | None:
    """Takes a host's previous and new result; returns the log line, or None when nothing changed."""
    if before is not None and state_key(before) == state_key(after):
        return None
    if before is None or before.result == after.result:
        head = f"{after.host}: {after.result}"
    else:
        head = f"{after.host}: {before.result} -> {after.result}"
    moved = [f"{c.component} {c.previous} -> {c.state}" if c.previous else f"{c.component} {c.state}"
             for c in changes(before, after) if c.component]
    return head + ("; " + ", ".join(moved) if moved else "") + (f" ({after.reason})" if after.reason else "")


@dataclass
class Stats:
    """The exporter's own figures, served as imageserving_exporter_* metrics."""

    polls: int = 0                   # rounds completed
    poll_s: float = 0.0              # how long the last one took
    last_poll_wall: float = 0.0      # Unix time it ended
    last_poll_mono: float = 0.0
    errors: int = 0                  # host polls with no answer (unreachable, an internal error)
    reloads: int = 0
    reload_errors: int = 0


class Exporter:
    """The latest answer of every host and the snapshot rendered from them."""

    def __init__(self, targets: Sequence[Target], log: Callable[[str], None], *, interval: float = DEFAULT_INTERVAL,
                 timeout: float = 30.0, notifier: Notifier | None = None) -> None:
        self.names = [t.name for t in targets]
        self.log, self.interval, self.timeout, self.notifier = log, interval, timeout, notifier
        self.latest: dict[str, HostResult] = {}
        self.rounds = 0
        self.stats = Stats()
        self._lock = threading.Lock()
        self._snapshot: dict[str, bytes] = {fmt: render([], fmt).removesuffix(_EOF) for fmt in FORMATS}
        self._hosts: list[HostResult] = []       # the last round's answers, for the live page
        self._round_wall = time.time()
        self._live: tuple[int, bytes, bytes] | None = None   # (round, page, JSON), rendered when first asked
        self._live_lock = threading.Lock()
        self.render_s = 0.0                      # the last snapshot's rendering time (bench)

    def on_result(self, result: HostResult, _at: float) -> None:
        with self._lock:
            before = self.latest.get(result.host)
            if result.host not in self.names:      # a round begun before a SIGHUP dropped the host
                return
            self.latest[result.host] = result
            if result.result == Result.UNREACHABLE or result.reason.startswith("internal error"):
                self.stats.errors += 1
        line = describe_change(before, result)
        if line and (before is not None or result.result != "ok"):  # the first round: only what is wrong
            self.log(line)  # it holds a host's reason: make_log escapes what it writes
            if self.notifier is not None:
                for change in changes(before, result, now_iso()):
                    self.notifier.submit(change)

    def on_round_s(self, seconds: float) -> None:
        with self._lock:
            self.stats.poll_s = seconds

    def on_round(self, _results: list[HostResult]) -> None:
        started = time.perf_counter()
        with self._lock:
            latest = [self.latest[n] for n in self.names if n in self.latest]
        wall = time.time()
        samples = [HostSample(r.host, str(r.result), agent_status(r.status)) for r in latest]
        families = fleet_families(samples, wall)
        rendered = {fmt: render(families, fmt).removesuffix(_EOF) for fmt in FORMATS}
        with self._lock:
            self._snapshot = rendered
            self.rounds += 1
            self.stats.polls += 1
            self.stats.last_poll_wall, self.stats.last_poll_mono = wall, time.monotonic()
            self._hosts, self._round_wall = latest, wall
            first = self.rounds == 1
        self.render_s = time.perf_counter() - started
        if first:
            self.log(f"first poll done: {summarize(latest).line()}")

    def _rendered_live(self) -> tuple[int, bytes, bytes]:
        """The live page and its JSON for the last round, rendered by the first request that asks for
        them (nobody looking costs nothing; several looking cost one rendering per round)."""
        from .reports.html import Live, fragments, render_html
        from .reports.model import build_report, to_document

        with self._live_lock:
            with self._lock:
                latest, wall, rounds = self._hosts, self._round_wall, self.rounds
                if self._live is not None and self._live[0] == rounds:
                    return self._live
            # the fan-out may hand a status as the host sent it (agent_status types it)
            typed = [replace(r, status=agent_status(r.status)) if isinstance(r.status, dict) else r for r in latest]
            report = build_report(typed, utc_stamp(wall))
            live = Live(interval=self.interval, hosts=len(self.names), round=rounds)
            page = render_html(report, live).encode()
            doc = to_document(report) | {"command": "exporter", "round": rounds, "interval": self.interval,
                                         "html": fragments(report)}
            self._live = (rounds, page, json.dumps(doc).encode())
            return self._live

    def count_reload(self, ok: bool) -> None:
        with self._lock:
            if ok:
                self.stats.reloads += 1
            else:
                self.stats.reload_errors += 1

    def set_targets(self, targets: Sequence[Target]) -> None:
        """Serves these hosts: one no longer in the inventory leaves every output when the next round ends."""
        with self._lock:
            self.names = [t.name for t in targets]
            self.latest = {n: r for n, r in self.latest.items() if n in self.names}

    # ------------------------------------------------------------ what the HTTP thread serves
    def snapshot(self, fmt: str) -> bytes:
        with self._lock:
            hosts = self._snapshot[fmt]
            stats = Stats(**vars(self.stats))
            names = len(self.names)
        counts = self.notifier.counts if self.notifier else None
        own = render(exporter_families(stats, names, counts), fmt)
        return hosts + own  # the hosts' part without its # EOF: one document

    def page(self) -> Page:
        rounds, page, _ = self._rendered_live()
        return Page(200, "text/html; charset=utf-8", page, etag=f'"p{rounds}"')

    def snapshot_json(self) -> Page:
        rounds, _, doc = self._rendered_live()
        return Page(200, "application/json", doc, etag=f'"{rounds}"')

    def healthz(self) -> Page:
        """200 while rounds complete; 503 before the first and when the last is too old (a stalled poller)."""
        with self._lock:
            polls, last = self.stats.polls, self.stats.last_poll_mono
        limit = 2 * self.interval + self.timeout
        age = time.monotonic() - last
        if not polls:
            code, text = 503, "starting: no poll has completed yet"
        elif age > limit:
            code, text = 503, f"stalled: the last poll ended {age:.0f}s ago (more than {limit:g}s)"
        else:
            code, text = 200, f"ok: last poll ended {age:.1f}s ago, {len(self.names)} hosts"
        return Page(code, "text/plain; charset=utf-8", (text + "\n").encode())

    def pages(self) -> dict[str, Callable[[], Page]]:
        return {"/": self.page, "/snapshot.json": self.snapshot_json, "/healthz": self.healthz}


def exporter_families(stats: Stats, hosts: int, counts: Any = None) -> list[Any]:
    """The exporter's own metrics (SPEC §7): poll duration and time, hosts, errors, notifications, re-reads."""
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

    out: list[Any] = [
        GaugeMetricFamily("imageserving_exporter_poll_duration_seconds",
                          "How long the last completed poll of the hosts took.", value=stats.poll_s),
        GaugeMetricFamily("imageserving_exporter_last_poll_timestamp_seconds",
                          "When the last poll completed (Unix time; 0 before the first).", value=stats.last_poll_wall),
        GaugeMetricFamily("imageserving_exporter_hosts", "Hosts the exporter polls (its inventory and --limit).",
                          value=hosts),
        CounterMetricFamily("imageserving_exporter_polls", "Polls of the hosts completed.", value=stats.polls),
        CounterMetricFamily("imageserving_exporter_poll_errors",
                            "Host polls that got no answer (unreachable, timeout, internal error).",
                            value=stats.errors),
    ]
    reloads = CounterMetricFamily("imageserving_exporter_inventory_reloads",
                                  "Inventory re-reads on SIGHUP, by outcome.", labels=["outcome"])
    reloads.add_metric(["ok"], stats.reloads)
    reloads.add_metric(["error"], stats.reload_errors)
    out.append(reloads)
    if counts is not None:
        notes = CounterMetricFamily("imageserving_exporter_notifications",
                                    "--notify documents, by outcome (suppressed: held back by flap damping).",
                                    labels=["outcome"])
        for outcome in ("sent", "suppressed", "failed", "dropped"):
            notes.add_metric([outcome], getattr(counts, outcome))
        out.append(notes)
    return out


def make_log(stream: TextIO = sys.stderr) -> Callable[[str], None]:
    """One line per event; timestamps unless journald (which adds its own) is the reader."""
    journald = "JOURNAL_STREAM" in os.environ

    def log(line: str) -> None:
        stamp = "" if journald else utc_stamp() + " "
        stream.write(f"{stamp}{escape(line)}\n")  # a change line carries a host's reason: untrusted
        stream.flush()

    return log


def reread(exporter: Exporter, poller: Poller, fleet: FanOut, reload: Callable[[], Sequence[Target]],
           current: Sequence[Target], log: Callable[[str], None]) -> Sequence[Target]:
    """SIGHUP: re-reads the inventory; returns the targets now polled (the old ones when it fails)."""
    try:
        targets = list(reload())
    except Exception as exc:  # noqa: BLE001 - whatever it is, the exporter keeps polling what it had
        exporter.count_reload(ok=False)
        log(f"SIGHUP: inventory not re-read, still polling the same {len(current)} host(s): {exc}")
        return current
    old = {t.name: t for t in current}
    new = {t.name: t for t in targets}
    pool = getattr(fleet, "pool", None)
    for name, target in old.items():  # gone, or reached another way now: its kept connection goes
        if pool is not None and new.get(name) != target:
            pool.release(name)
    exporter.set_targets(targets)
    poller.set_targets(targets)
    exporter.count_reload(ok=True)
    added, removed = [n for n in new if n not in old], [n for n in old if n not in new]
    log(f"SIGHUP: inventory re-read: {len(targets)} host(s)"
        + (f", added {', '.join(added)}" if added else "") + (f", removed {', '.join(removed)}" if removed else ""))
    return targets


def serve(fleet: FanOut, targets: Sequence[Target], sock: socket.socket, interval: float, timeout: float,
          log: Callable[[str], None] | None = None, *, reload: Callable[[], Sequence[Target]] | None = None,
          notify: str | None = None, notify_interval: float = 300.0) -> int:
    """Runs the exporter until SIGTERM or SIGINT (SIGHUP: `reload` the targets); returns the exit code (0)."""
    log = log or make_log()
    notifier = Notifier(notify, notify_interval, log).start() if notify else None
    exporter = Exporter(targets, log, interval=interval, timeout=timeout, notifier=notifier)
    server = MetricsServer(sock, exporter.snapshot, pages=exporter.pages()).start()
    poller = Poller(fleet, targets, interval, timeout, exporter.on_result, exporter.on_round,
                    on_round_s=exporter.on_round_s).start()
    log(f"serving {server.url} and the live page at {server.url.removesuffix('metrics')}; polling {len(targets)} "
        f"host(s) every {interval:g}s (--timeout {timeout:g}s)" + (f"; notifying {notify}" if notify else ""))
    # Signals wake the main thread through a socket (set_wakeup_fd): no race between a check and a sleep.
    wake_r, wake_w = socket.socketpair()
    wake_w.setblocking(False)
    previous_fd = signal.set_wakeup_fd(wake_w.fileno())
    handlers = {s: signal.signal(s, lambda *_: None) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        while True:
            signals = wake_r.recv(64)
            if signal.SIGTERM in signals:
                break
            if signal.SIGHUP in signals:
                targets = reread(exporter, poller, fleet, reload, targets, log) if reload else targets
    except KeyboardInterrupt:
        pass
    finally:
        log("stopping")
        signal.set_wakeup_fd(previous_fd)
        for signo, handler in handlers.items():
            signal.signal(signo, handler)
        wake_r.close()
        wake_w.close()
        poller.stop()
        server.stop()
        if notifier is not None:
            notifier.stop()
    return 0
