"""The exporter's `--notify URL`: a JSON POST for each change it logs, flap-damped, off the poll loop.

Each change (a host's result, a component's state: exporter.changes) becomes one document:

    {"source": "imageserving-fleet exporter", "host": "is07", "component": null | "ps",
     "event": "result" | "state", "state": "failed", "previous_state": "ok", "message": "...",
     "time": "2026-12-07T04:00:00Z", "suppressed": 0, "text": "is07: ok -> failed (...)"}

`text` is what Slack's (and Mattermost's, Rocket.Chat's) incoming webhooks show, so the URL of
one works as it is. Flap damping is damping.py's, per host and subject (`--notify-interval`):
a receiver never gets more than one document per subject per interval, and the one it gets says
how many it did not. The poll loop only puts changes on a bounded queue (never waits: a full
queue drops and counts); one thread sends, with a deadline per POST, and tries a failed POST once
more, as the agent's notify does.
"""

from __future__ import annotations

import json
import queue
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from .. import __version__
from ..damping import Gate, Send, due, next_due, offer
from ..errors import UsageError
from ..timefmt import utc_stamp
from ..untrusted import escape

DEFAULT_MIN_INTERVAL = 300.0   # seconds: as the agent's notify.min_interval
POST_TIMEOUT = 10.0
RETRY_AFTER = 2.0
QUEUE_SIZE = 1000
SOURCE = "imageserving-fleet exporter"


@dataclass(frozen=True)
class Change:
    """One thing the exporter logs as changed: a host's result, or one component's state on it."""

    host: str
    component: str | None      # None: the host's result
    state: str
    previous: str | None       # None: first seen
    message: str = ""          # the host's reason
    time: str = ""             # when the exporter saw it (ISO-8601 UTC)

    @property
    def key(self) -> tuple[str, str]:
        return self.host, self.component or ""

    def summary(self) -> str:
        what = f"{self.host}: " + (f"{self.component} " if self.component else "")
        moved = f"{self.previous} -> {self.state}" if self.previous else self.state
        return what + moved + (f" ({self.message})" if self.message else "")


def check_url(url: str) -> str:
    """Takes --notify; returns it, or raises UsageError unless it is an http(s) URL with a host."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(f"--notify: expected an http:// or https:// URL, got {url!r}")
    return url


def _slack(text: str) -> str:
    """What Slack's markup would act on escaped: `<` (links, @-mentions) and `&` (entities); `>` only
    quotes at the start of a line, which `text` never has, so "ok -> failed" stays readable
    for the receivers that are not Slack. Control characters as the terminal shows them."""
    return escape(text, tabs=False).replace("&", "&amp;").replace("<", "&lt;")


def document(send: Send[Change]) -> dict[str, Any]:
    """Takes a change to send; returns its JSON document (Slack-compatible `text` included)."""
    c, n = send.event, send.suppressed
    text = f"{SOURCE}: {c.summary()}" + (f" [{n} earlier change{'s' if n > 1 else ''} held back]" if n else "")
    return {"source": SOURCE, "host": c.host, "component": c.component,
            "event": "state" if c.component else "result", "state": c.state, "previous_state": c.previous,
            "message": c.message, "time": c.time, "suppressed": n, "text": _slack(text)}


def post_json(url: str, doc: dict[str, Any], timeout: float = POST_TIMEOUT) -> None:
    """POSTs one document; raises OSError (URLError, HTTPError, timeouts) when it did not go."""
    data = json.dumps(doc).encode()
    req = urllib.request.Request(url, data=data, method="POST", headers={
        "Content-Type": "application/json", "User-Agent": f"imageserving-fleet/{__version__}"})
    with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 (the operator's URL, http(s) checked)
        resp.read(65536)


@dataclass
class NotifyCounts:
    sent: int = 0
    suppressed: int = 0     # held back by the damping (some are sent later, counted there too)
    failed: int = 0         # POSTs that failed twice
    dropped: int = 0        # the queue was full


class Notifier:
    """Sends changes to a URL from a thread of its own; `submit` never blocks."""

    def __init__(self, url: str, min_interval: float, log: Callable[[str], None],
                 post: Callable[[str, dict[str, Any]], None] = post_json,
                 clock: Callable[[], float] = time.monotonic, retry_after: float = RETRY_AFTER) -> None:
        self.url, self.min_interval, self.log, self._post, self._clock = url, min_interval, log, post, clock
        self.retry_after = retry_after
        self._stopping = threading.Event()
        self.counts = NotifyCounts()
        self._queue: queue.Queue[Change | None] = queue.Queue(QUEUE_SIZE)
        self._gates: dict[tuple[str, str], Gate[Change]] = {}
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._loop, name="notify", daemon=True)

    def start(self) -> Notifier:
        self._thread.start()
        return self

    def stop(self, wait: float = 5.0) -> None:
        """Ends the thread after the POST in flight (held-back changes are not sent)."""
        self._stopping.set()
        try:
            self._queue.put_nowait(None)
        except queue.Full:
            pass
        self._thread.join(wait)

    def submit(self, change: Change) -> None:
        try:
            self._queue.put_nowait(change)
        except queue.Full:
            with self._lock:
                self.counts.dropped += 1
            self.log(f"notify: queue full ({QUEUE_SIZE}), dropped: {change.summary()}")

    def _loop(self) -> None:
        while True:
            wake = min((t for g in self._gates.values() if (t := next_due(g, self.min_interval)) is not None),
                       default=None)
            try:
                item = self._queue.get(timeout=None if wake is None else max(0.0, wake - self._clock()))
            except queue.Empty:
                item = None  # woken to send a held-back change that is due
            if self._stopping.is_set():
                return
            now = self._clock()
            sends: list[Send[Change]] = []
            if item is not None:
                gate, send = offer(self._gates.get(item.key, Gate()), item, now, self.min_interval)
                self._gates[item.key] = gate
                if send is None:
                    with self._lock:
                        self.counts.suppressed += 1
                else:
                    sends.append(send)
            for key, gate in list(self._gates.items()):
                self._gates[key], send = due(gate, now, self.min_interval)
                if send is not None:
                    sends.append(send)
            for send in sends:
                self._send(document(send))

    def _send(self, doc: dict[str, Any]) -> None:
        for attempt in (1, 2):
            try:
                self._post(self.url, doc)
            except (OSError, ValueError) as exc:
                if attempt == 2:
                    with self._lock:
                        self.counts.failed += 1
                    self.log(f"notify: POST {self.url} failed twice, not sent: {exc}: {doc['text']}")
                    return
                time.sleep(self.retry_after)
            else:
                with self._lock:
                    self.counts.sent += 1
                return


def now_iso() -> str:
    return utc_stamp()
