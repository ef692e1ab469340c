"""Notifications as pure pieces: which events a state change is, flap damping, the JSON document.

`EventTracker.events()` takes one state-machine step (the record before and after, the event that
caused it) and names the notification events it amounts to; `Damper` lets at most one
notification per component and event through every `min_interval` and counts the rest, so the
next one carries `"suppressed": N`. Neither touches a clock, a process or a socket: the sending is
notifier.py's.

    crash       the main process ended on its own while STARTING or RUNNING
    fatal       FATAL reached (gave up after start_retries)
    unhealthy   stopped for failing its liveness checks (restarted by the health rules)
    recovered   RUNNING again after a crash, fatal or unhealthy
    start       RUNNING reached            stop   STOPPED after a stop
    held        held down by `stop ID`     reload the supervisor applied a new configuration
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass

from ..damping import Gate, offer
from .states import Event, Exited, HealthFailed, Proc, State, Stop

TROUBLE = frozenset({"crash", "fatal", "unhealthy"})


@dataclass(frozen=True)
class Notification:
    """One event as sent: SPEC §2's fields, in this order."""

    host: str
    component: str
    event: str
    state: str
    previous_state: str
    time: str                   # UTC, ISO 8601, as the status document's
    message: str
    restarts: int
    suppressed: int = 0         # events of this component and kind left out by damping since the last one

    def to_json(self) -> bytes:
        return json.dumps(asdict(self)).encode() + b"\n"


class EventTracker:
    """Names the events of each state change; remembers which components are in trouble (for `recovered`)."""

    def __init__(self) -> None:
        self.troubled: set[str] = set()

    def events(self, cid: str, old: Proc, new: Proc, ev: Event) -> list[str]:
        """Takes a component's record before and after one event; returns the notification events, in order."""
        out = []
        if isinstance(ev, Exited) and ev.pid == old.pid and old.state in (State.STARTING, State.RUNNING):
            out.append("crash")
        if isinstance(ev, HealthFailed) and old.state == State.RUNNING and new.state == State.STOPPING:
            out.append("unhealthy")
        if new.state == State.FATAL and old.state != State.FATAL:
            out.append("fatal")
        if isinstance(ev, Stop) and new.held and not old.held:
            out.append("held")
        if new.state == State.STOPPED and old.state == State.STOPPING and not new.then_start:
            out.append("stop")
        if new.state == State.RUNNING and old.state != State.RUNNING:
            if cid in self.troubled:
                out.append("recovered")
            out.append("start")
        if TROUBLE & set(out):
            self.troubled.add(cid)
        elif "recovered" in out:
            self.troubled.discard(cid)
        return out

    def forget(self, cid: str) -> None:
        self.troubled.discard(cid)


def message_of(new: Proc) -> str:
    """The notification's `message`: what the record says, else the new pid of a running one, else how it ended."""
    if new.message:
        return new.message
    if new.state == State.RUNNING and new.pid is not None:
        return f"running, pid {new.pid}"
    return new.last_exit or ""


class Damper:
    """At most one notification per (component, event) every `min_interval` seconds of the injected clock.

    The rule is damping.offer's, shared with the fleet exporter's --notify; the agent sends no
    held-back event later (it never calls damping.due): the next one admitted carries the count.
    """

    def __init__(self, min_interval: float, clock: Callable[[], float]) -> None:
        self.min_interval, self.clock = min_interval, clock
        self._gates: dict[tuple[str, str], Gate[str]] = {}

    def admit(self, component: str, event: str) -> int | None:
        """Returns None when this one is suppressed, else how many were suppressed before it (then reset)."""
        key = (component, event)
        self._gates[key], send = offer(self._gates.get(key, Gate()), event, self.clock(), self.min_interval)
        return None if send is None else send.suppressed
