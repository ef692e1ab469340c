"""`imageserving reload` as pure pieces: what changed between two configurations, and in what order to act.

`diff()` compares the effective configuration of each component (every setting the process runs
with, after ${VAR} expansion; not `logs:`, which only `imageserving logs` reads); `Reload` is an
operation like a start or a stop: removed components are stopped (reverse priority), changed ones
restarted, added ones started (priority order), and the others never touched, so they keep their pids.
Held-down components are updated but not started.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from .config import AgentConfig, ComponentConfig
from .operations import Operation, Progress
from .states import Proc


@dataclass(frozen=True)
class ConfigDiff:
    """Component ids by what a reload does to them, each list in the new (or old) start order."""

    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()
    unchanged: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, list[str]]:
        return {"added": list(self.added), "removed": list(self.removed), "changed": list(self.changed),
                "unchanged": list(self.unchanged)}


def diff(old: AgentConfig, new: AgentConfig) -> ConfigDiff:
    """Takes the running and the new configuration; returns which components were added, removed, changed."""
    before = {c.id: _runtime(c) for c in old.components}
    after = {c.id: _runtime(c) for c in new.components}
    order = [c for g in new.priorities() for c in g]
    return ConfigDiff(
        added=tuple(c for c in order if c not in before),
        removed=tuple(c for g in reversed(old.priorities()) for c in g if c not in after),
        changed=tuple(c for c in order if c in before and before[c] != after[c]),
        unchanged=tuple(c for c in order if c in before and before[c] == after[c]),
    )


def _runtime(comp: ComponentConfig) -> ComponentConfig:
    """What the running process depends on: a new log name or glob restarts nothing."""
    return replace(comp, logs={}) if comp.logs else comp


def _groups(ids: tuple[str, ...], priorities: list[list[str]]) -> list[list[str]]:
    return [g for g in ([c for c in level if c in ids] for level in priorities) if g]


@dataclass
class Reload:
    """The steps of one reload, run one after another by the supervisor like any operation."""

    changes: ConfigDiff
    steps: list[Operation] = field(default_factory=list)
    kind: str = "reload"
    shutdown: bool = False
    reason: str = "reload"
    failed: list[str] = field(default_factory=list)

    @classmethod
    def plan(cls, changes: ConfigDiff, old: AgentConfig, new: AgentConfig, held: set[str], now: float) -> Reload:
        """Stop removed (reverse priority), restart changed, start added (priority order); skip held ones."""
        steps = []
        if changes.removed:
            steps.append(Operation("stop", _groups(changes.removed, list(reversed(old.priorities()))), now))
        restart = tuple(c for c in changes.changed if c not in held)
        if restart:
            steps.append(Operation("restart", _groups(restart, new.priorities()), now, reason="reload"))
        if changes.added:
            steps.append(Operation("start", _groups(changes.added, new.priorities()), now))
        return cls(changes, steps)

    def advance(self, procs: dict[str, Proc]) -> Progress:
        while self.steps:
            prog = self.steps[0].advance(procs)
            if not prog.done:
                return prog
            self.steps.pop(0)
            self.failed += prog.failed
            if prog.start or prog.stop or prog.restart:
                return Progress(start=prog.start, stop=prog.stop, restart=prog.restart)
        return Progress(done=True, failed=list(self.failed))

    def reply_fields(self) -> dict[str, Any]:
        return {"reload": self.changes.to_dict()}
