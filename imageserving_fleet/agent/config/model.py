"""The agent's configuration as typed, frozen dataclasses: what a validated file means.

Stdlib only, and nothing here reads files or YAML: the supervisor rebuilds these from JSON
(wire.from_dict) and never pays for the loader.
"""

from __future__ import annotations

import signal
from collections.abc import Mapping
from dataclasses import dataclass, field

RESTART_POLICIES = ("always", "on-failure", "never")
NOTIFY_EVENTS = ("crash", "fatal", "unhealthy", "recovered", "start", "stop", "held", "reload")
NOTIFY_DEFAULT = ("crash", "fatal", "unhealthy", "recovered")


@dataclass(frozen=True)
class ReadyCheck:
    """How to tell that a started component is serving: tcp, http or command."""

    kind: str                      # "tcp" | "http" | "command"
    host: str = ""
    port: int = 0
    url: str = ""
    argv: tuple[str, ...] = ()

    def describe(self) -> str:
        if self.kind == "tcp":
            return f"tcp {self.host}:{self.port}"
        if self.kind == "http":
            return f"http {self.url}"
        return "command " + " ".join(self.argv)


@dataclass(frozen=True)
class HealthCheck:
    """Liveness of a RUNNING component: the check, how often, and how many failures in a row restart it."""

    check: ReadyCheck
    interval: float = 10.0
    timeout: float = 2.0
    failures: int = 3              # consecutive counted failures before a restart
    start_period: float = 60.0     # failures this soon after RUNNING do not count


@dataclass(frozen=True)
class Backoff:
    """Capped exponential delay between restarts of a component that keeps failing."""

    initial: float = 1.0
    max: float = 60.0
    reset_after: float = 60.0

    def delay(self, level: int) -> float:
        """Takes the number of quick failures so far; returns seconds to wait (0 for the first)."""
        return 0.0 if level <= 0 else min(self.initial * 2 ** (level - 1), self.max)


@dataclass(frozen=True)
class ComponentConfig:
    """One supervised program."""

    id: str
    command: tuple[str, ...]
    description: str = ""
    cwd: str | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    user: str | None = None
    start_priority: int = 1
    ready: ReadyCheck | None = None
    start_delay: float = 5.0
    ready_timeout: float = 60.0
    stop_signal: int = signal.SIGTERM
    stop_timeout: float = 60.0
    restart: str = "on-failure"
    start_retries: int = 5
    backoff: Backoff = Backoff()
    max_memory: int | None = None
    health: HealthCheck | None = None
    # The server's own log files by name: a path or a glob (the newest match by mtime is read);
    # relative to <home>/logs. Read by `imageserving logs ID:NAME`; the supervisor never opens them.
    logs: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class NotifyConfig:
    """supervisor.notify: where state changes are sent, which ones, and how often at most."""

    command: tuple[str, ...] = ()     # gets one JSON event on stdin
    url: str | None = None            # gets the same JSON POSTed
    on: tuple[str, ...] = NOTIFY_DEFAULT
    min_interval: float = 300.0       # per component and event (flap damping)


@dataclass(frozen=True)
class AgentConfig:
    """A whole validated configuration file."""

    path: str
    components: tuple[ComponentConfig, ...]
    log_max_bytes: int = 10 * 2**20
    log_backups: int = 5
    metrics_listen: str | None = None   # supervisor.metrics.listen: serve /metrics there (SPEC §7)
    notify: NotifyConfig | None = None  # supervisor.notify (SPEC §2)

    def component(self, cid: str) -> ComponentConfig:
        for comp in self.components:
            if comp.id == cid:
                return comp
        raise KeyError(cid)

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(c.id for c in self.components)

    def priorities(self) -> list[list[str]]:
        """Component ids grouped by start_priority, lowest first (the start order)."""
        levels = sorted({c.start_priority for c in self.components})
        return [[c.id for c in self.components if c.start_priority == p] for p in levels]
