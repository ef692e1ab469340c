"""A component's states, and which components count as down: the one rule both programs apply.

    State                          supervisord's seven state names, in supervisord's order
    SEVERITY, TONE                 per state: how bad (a report sorts by it), how a table colours it
    is_down(state, held, named)    the rule: not RUNNING, and not held down unless the status named it
    is_held(state, held)           held down by the operator (`stop ID`) and not running
    down_message(ids)              what `imageserving status` says of them ("not RUNNING: is, svg")

The agent applies the rule to the documents its supervisor answers (control.status), the fleet to
the typed status (schema.AgentStatus.down, results.classify) whichever way it asked the host
(asksocket, or the agent's own output), so a host's verdict never depends on who judged it.
Stdlib only and no dataclasses: the agent's status path imports this.
"""

from __future__ import annotations

import enum


class State(enum.StrEnum):
    """supervisord's state names, which operators already know."""

    STOPPED = "STOPPED"
    STARTING = "STARTING"
    RUNNING = "RUNNING"
    BACKOFF = "BACKOFF"
    STOPPING = "STOPPING"
    EXITED = "EXITED"
    FATAL = "FATAL"


STATES: tuple[str, ...] = tuple(State)  # the names, for a membership test on a decoded document

# Keyed by State, which hashes as its name: SEVERITY.get("FATAL") works on a decoded document too.
# 0 (RUNNING) to 6 (FATAL): worst first when sorted descending.
SEVERITY: dict[str, int] = {State.RUNNING: 0, State.STARTING: 1, State.STOPPING: 2, State.BACKOFF: 3,
                            State.STOPPED: 4, State.EXITED: 5, State.FATAL: 6}
# What a renderer colours: "busy" is on its way somewhere, "off" stopped on purpose or not yet started.
TONE: dict[str, str] = {State.RUNNING: "ok", State.STARTING: "busy", State.BACKOFF: "busy",
                        State.STOPPING: "busy", State.STOPPED: "off", State.EXITED: "bad", State.FATAL: "fatal"}


def is_down(state: str, held: bool, named: bool = False) -> bool:
    """Does this component fail a status? When it is not RUNNING, unless the operator holds it down
    (`stop ID`) and the status did not name it (SPEC §2: a hold is no fault of the host)."""
    return state != State.RUNNING and (named or not held)


def is_held(state: str, held: bool) -> bool:
    """Held down by the operator and not running: what a table and a verdict note, not a fault."""
    return held and state != State.RUNNING


def down_message(ids: list[str]) -> str:
    """What the agent says when components are down; the fleet's socket path says the same."""
    return f"not RUNNING: {', '.join(ids)}"
