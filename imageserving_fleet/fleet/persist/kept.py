"""The holder's kept connections: lent to one host's work at a time, closed after their idle time.

    kept = Kept(idle=60)
    kept.take(key) -> session | None     an idle, live session for exactly these settings, now lent
    kept.give(key, session)              back after the work; a second one for the key is closed
    kept.reap() -> int                   closes those unused for `idle` seconds
    kept.close()                         all of them, lent ones too (persist stop, the holder's exit)

Unlike ssh/pool.Pool (one session per inventory name, shared by the polls of one process), a
session here is lent exclusively: two commands that reach the same host at once use two
connections, so neither's timeout can abort the other's work. The key is every setting that
made the connection (persist/holder.py: options, resolved ssh settings), never just a name.
No backoff either: each command tries a host afresh, as it would without a holder.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from typing import Any

from ..ssh.pool import quiet


class Kept:
    """Idle sessions by connection key, plus those lent out (so close() reaches them too)."""

    def __init__(self, idle: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.idle = idle
        self._clock = clock
        self._lock = threading.Lock()
        self._idle: dict[Hashable, tuple[Any, float]] = {}   # key -> (session, last used)
        self._lent: dict[int, Any] = {}                      # id(session) -> session

    def take(self, key: Hashable) -> Any:
        with self._lock:
            found = self._idle.pop(key, None)
            if found is None:
                return None
            session = found[0]
            if not getattr(session, "alive", True):
                dead = session
                session = None
            else:
                self._lent[id(session)] = session
                return session
        _drop(dead, polite=False)
        return None

    def lend(self, session: Any) -> None:
        """Counts a new session as lent (for close()), before it is given back."""
        with self._lock:
            self._lent[id(session)] = session

    def give(self, key: Hashable, session: Any) -> None:
        """Takes a session back after its host's work; keeps it if alive and none is kept for `key`."""
        with self._lock:
            self._lent.pop(id(session), None)
            keep = getattr(session, "alive", True) and key not in self._idle
            if keep:
                quiet(session)
                self._idle[key] = (session, self._clock())
        if not keep:
            _drop(session, polite=True)

    def discard(self, session: Any) -> None:
        """A lent session that failed or timed out: closed now, never kept."""
        with self._lock:
            self._lent.pop(id(session), None)
        _drop(session, polite=False)

    def reap(self) -> int:
        cutoff = self._clock() - self.idle
        with self._lock:
            old = [key for key, (_, used) in self._idle.items() if used <= cutoff]
            sessions = [self._idle.pop(key)[0] for key in old]
        for session in sessions:
            _drop(session, polite=True)
        return len(sessions)

    def count(self) -> tuple[int, int]:
        """(idle, lent) sessions."""
        with self._lock:
            return len(self._idle), len(self._lent)

    def close(self) -> None:
        with self._lock:
            sessions = [s for s, _ in self._idle.values()] + list(self._lent.values())
            self._idle.clear()
            self._lent.clear()
        for session in sessions:
            _drop(session, polite=False)


def _drop(session: Any, *, polite: bool) -> None:
    try:
        session.close() if polite else session.abort()
    except Exception:  # noqa: BLE001 - half-dead already; closed either way
        pass
