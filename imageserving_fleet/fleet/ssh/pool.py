"""Kept connections: one per host, reused across the polls of one long-lived process.

    pool = Pool(connector)
    pool.get(target, deadline) -> Session      the kept one if alive, else a new one
    pool.lost(name)                            after a timeout or a lost connection: dropped now
    pool.release(name)                         polite close (a one-job command is done)
    pool.reap()  / pool.close()

A rolling restart's health polls, the watch view and the exporter poll the same hosts again and
again: the handshake is paid once. What keeping them costs and how it is bounded:

- SSH keepalives every 30 s (set by the Connector on every session) keep NATs from forgetting.
- A connection found dead is replaced on the next poll. A host that cannot be reached is tried
  again only after a capped exponential backoff (1, 2, 4... 60 s, with jitter): its polls in
  between are `unreachable` at once, with the last reason, instead of a connect each time.
- Every reconnect is a full Connector.connect: the host key is checked against known_hosts again.
- Connections unused for `idle_close` seconds are closed (by one reaper thread per pool).
- paramiko's reader thread wakes every 0.1 s per connection (its socket timeout), which at 500
  idle connections is 5,000 wakeups a second, a good part of a core. A kept connection's socket
  gets IDLE_SOCKET_TIMEOUT instead: the reader still wakes at once for data, and keepalives
  (checked on those wakeups) still go out on time.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ...errors import Reason, UnreachableError
from ..target import Target

IDLE_SOCKET_TIMEOUT = 5.0   # seconds between paramiko reader wakeups on a quiet connection
IDLE_CLOSE = 600.0          # a kept connection unused this long is closed
BACKOFF_BASE, BACKOFF_CAP = 1.0, 60.0


def backoff_delay(failures: int, *, base: float = BACKOFF_BASE, cap: float = BACKOFF_CAP,
                  jitter: float = 0.0) -> float:
    """Seconds to wait after `failures` failed connects in a row: 0, then base * 2**(n-1), capped.

    `jitter` (0..1) takes up to that fraction off, so hosts that failed together retry apart.
    """
    if failures <= 0:
        return 0.0
    delay = min(cap, base * 2.0 ** (failures - 1))
    return delay * (1.0 - jitter)


def quiet(session: Any, timeout: float = IDLE_SOCKET_TIMEOUT) -> None:
    """Makes paramiko's reader thread of a kept session wake every `timeout` s, not every 0.1 s."""
    transport = getattr(session, "transport", None)
    sock = getattr(transport, "sock", None)
    if sock is not None:
        try:
            sock.settimeout(timeout)
        except OSError:
            pass


@dataclass
class _Entry:
    session: Any = None
    last_used: float = 0.0
    failures: int = 0
    retry_at: float = 0.0
    reason: Reason = Reason.CONNECTION_LOST
    detail: str = ""


class Pool:
    """One kept session per host name; thread-safe; a host is worked on by one thread at a time."""

    def __init__(self, connector: Any, *, idle_close: float = IDLE_CLOSE,
                 idle_socket_timeout: float = IDLE_SOCKET_TIMEOUT,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.connector, self.idle_close, self.idle_socket_timeout = connector, idle_close, idle_socket_timeout
        self._clock = clock
        self._entries: dict[str, _Entry] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._reaper: threading.Thread | None = None

    def get(self, target: Target, deadline: float) -> Any:
        """The host's session: kept and alive, or newly connected; raises UnreachableError."""
        now = self._clock()
        with self._lock:
            entry = self._entries.setdefault(target.name, _Entry())
            session, entry.session = entry.session, None
            if session is not None and getattr(session, "alive", True):
                entry.session, entry.last_used = session, now
                return session
            waiting = entry.retry_at - now
        if session is not None:  # found dead (keepalive failed, sshd restarted...)
            _drop(session, polite=False)
        if waiting > 0:
            raise UnreachableError(target.name, entry.reason,
                                   f"{entry.detail}; next attempt in {waiting:.0f}s")
        try:
            session = self.connector.connect(target, deadline)
        except UnreachableError as exc:
            with self._lock:
                entry.failures += 1
                entry.reason, entry.detail = exc.reason, exc.detail
                entry.retry_at = self._clock() + backoff_delay(entry.failures, jitter=random.uniform(0, 0.25))
            raise
        quiet(session, self.idle_socket_timeout)
        with self._lock:
            entry.session, entry.last_used, entry.failures, entry.retry_at = session, self._clock(), 0, 0.0
            self._start_reaper()
        return session

    def lost(self, name: str) -> None:
        """Drops a host's session now, from any thread; the next get() reconnects (no backoff yet)."""
        self._take(name, polite=False)

    def release(self, name: str) -> None:
        """Ends a host's session politely and forgets the host."""
        self._take(name, polite=True, forget=True)

    def reap(self) -> int:
        """Closes sessions unused for idle_close seconds; returns how many."""
        cutoff = self._clock() - self.idle_close
        with self._lock:
            idle = [(n, e.session) for n, e in self._entries.items() if e.session is not None and e.last_used < cutoff]
            for name, _ in idle:
                self._entries[name].session = None
        for _, session in idle:
            _drop(session, polite=True)
        return len(idle)

    def sessions(self) -> int:
        with self._lock:
            return sum(1 for e in self._entries.values() if e.session is not None)

    def close(self) -> None:
        self._stop.set()
        with self._lock:
            sessions = [e.session for e in self._entries.values() if e.session is not None]
            self._entries.clear()
        for session in sessions:
            _drop(session, polite=True)

    def _take(self, name: str, *, polite: bool, forget: bool = False) -> None:
        with self._lock:
            entry = self._entries.pop(name, None) if forget else self._entries.get(name)
            session = entry.session if entry else None
            if entry is not None:
                entry.session = None
        if session is not None:
            _drop(session, polite=polite)

    def _start_reaper(self) -> None:
        if self._reaper is None and self.idle_close > 0:
            self._reaper = threading.Thread(target=self._reap_loop, name="fleet-pool-reaper", daemon=True)
            self._reaper.start()

    def _reap_loop(self) -> None:
        while not self._stop.wait(max(1.0, self.idle_close / 4)):
            self.reap()


def _drop(session: Any, *, polite: bool) -> None:
    try:
        session.close() if polite else session.abort()
    except Exception:  # noqa: BLE001 - half-dead already; closed either way
        pass
