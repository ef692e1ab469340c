"""Multi-step control operations (ordered start, reverse stop, one restart) as pure progress checks.

An operation looks at the component states after every turn of the supervisor's loop and says
which events to send next and whether it is done; it touches nothing itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .states import Proc, State

S = State
SETTLED_DOWN = frozenset({S.STOPPED, S.EXITED, S.FATAL})


@dataclass
class Progress:
    """What an operation wants now: events to send, and whether (and how) it ended."""

    start: list[str] = field(default_factory=list)
    stop: list[str] = field(default_factory=list)
    restart: list[str] = field(default_factory=list)
    done: bool = False
    failed: list[str] = field(default_factory=list)
    not_started: list[str] = field(default_factory=list)


@dataclass
class Operation:
    """A start, stop or restart in progress; groups are component ids in the order to act on."""

    kind: str                      # "start" | "stop" | "restart"
    groups: list[list[str]]
    since: float                   # monotonic time of the request
    shutdown: bool = False         # stop: the supervisor exits afterwards
    reason: str = "operator"       # restart: the restart_reason the components get
    hold: bool = False             # stop: the operator's `stop ID` holds them down
    issued: bool = False
    failed: list[str] = field(default_factory=list)

    def advance(self, procs: dict[str, Proc]) -> Progress:
        """Takes the current records; returns what to do next (call again after acting)."""
        out = Progress()
        while self.groups:
            group = self.groups[0]
            if not self.issued:
                self.issued = True
                getattr(out, self.kind).extend(group)
                return out
            if self.kind == "stop":
                stuck = [c for c in group if procs[c].state == S.STOPPING and procs[c].killed
                         and procs[c].deadline is None]
                if any(procs[c].state not in SETTLED_DOWN for c in group if c not in stuck):
                    return out
                self.failed += stuck
            else:
                bad = [c for c in group if procs[c].state in SETTLED_DOWN]
                if bad:
                    out.failed = bad
                    out.not_started = [c for g in self.groups[1:] for c in g]
                    out.done = True
                    self.groups = []
                    return out
                if not all(self._up(procs[c]) for c in group):
                    return out
            self.groups.pop(0)
            self.issued = False
        out.done, out.failed = True, list(self.failed)
        return out

    def _up(self, p: Proc) -> bool:
        if p.state != S.RUNNING:
            return False
        # A restart is done when the new process is up, not while the old one still runs.
        return self.kind != "restart" or (p.running_since is not None and p.running_since >= self.since)
