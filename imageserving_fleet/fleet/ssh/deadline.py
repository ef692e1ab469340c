"""Deadlines that hold: one watchdog thread closes whatever is still blocked when time is up.

paramiko's own timeouts cover only some waits (fabric#2330, paramiko#664); closing the socket or
channel under a blocked call makes it fail at once, and the caller turns that into "timeout".
"""

from __future__ import annotations

import heapq
import itertools
import socket
import threading
import time
from collections.abc import Callable
from typing import Any


class Alarm:
    """One scheduled callback; cancel() tells whether it was cancelled before it fired."""

    __slots__ = ("callback", "fired", "cancelled", "_owner")

    def __init__(self, owner: Watchdog, callback: Callable[[], None]) -> None:
        self._owner, self.callback, self.fired, self.cancelled = owner, callback, False, False

    def cancel(self) -> bool:
        with self._owner.cond:
            if self.fired:
                return False
            self.cancelled = True
            return True


class Watchdog:
    """One thread that runs callbacks at monotonic deadlines, so 500 hosts need not 500 timers.

    The callbacks close sockets and channels: whatever paramiko call was blocked on them (banner,
    key exchange, auth, exec) then fails at once, and the caller turns that into "timeout". Each
    fired callback gets a thread of its own, since closing a channel sends a message and that can
    block on a hung connection; alarms that are cancelled in time (nearly all) cost no thread.
    """

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self._heap: list[tuple[float, int, Alarm]] = []
        self._seq = itertools.count()
        self._thread: threading.Thread | None = None

    def at(self, when: float, callback: Callable[[], None]) -> Alarm:
        alarm = Alarm(self, callback)
        with self.cond:
            heapq.heappush(self._heap, (when, next(self._seq), alarm))
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="fleet-watchdog", daemon=True)
                self._thread.start()
            # The loop sleeps until the earliest alarm: it needs waking only when this one is now
            # the earliest. (Waking it for every alarm cost a thread switch per host and per step.)
            if self._heap[0][2] is alarm:
                self.cond.notify()
        return alarm

    def _loop(self) -> None:
        while True:
            with self.cond:
                alarm = None
                while alarm is None:
                    if not self._heap:
                        self.cond.wait()
                        continue
                    when, _, top = self._heap[0]
                    if top.cancelled:
                        heapq.heappop(self._heap)
                        continue
                    delay = when - time.monotonic()
                    if delay > 0:
                        self.cond.wait(delay)
                        continue
                    heapq.heappop(self._heap)
                    top.fired = True
                    alarm = top
            threading.Thread(target=_quietly, args=(alarm.callback,), name="fleet-deadline",
                             daemon=True).start()


def _quietly(callback: Callable[[], None]) -> None:
    try:
        callback()
    except Exception:  # noqa: BLE001 - closing something half-dead may fail; it is closed either way
        pass


WATCHDOG = Watchdog()


def hard_close(thing: Any) -> None:
    """Closes a socket, channel or transport so any thread blocked on it wakes up now."""
    if thing is None:
        return
    if isinstance(thing, socket.socket):
        try:
            # shutdown, unlike close, wakes a recv() blocked in another thread.
            thing.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
    try:
        thing.close()
    except Exception:  # noqa: BLE001 - it may be half-dead already; all we want is it closed
        pass


def close_all(things: list[Any]) -> None:
    for thing in things:
        hard_close(thing)



def remaining(deadline: float) -> float:
    """Seconds left until `deadline` (monotonic); never 0, since paramiko reads 0 as "forever"."""
    return max(deadline - time.monotonic(), 0.001)
