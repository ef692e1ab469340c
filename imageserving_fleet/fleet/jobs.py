"""What a fan-out runs on each host: a Job of one Kind, with the agent's argv built here and only here.

    status_job(ids)          `imageserving status [ID...] --json` (the socket is tried first)
    action_job(kind, cid)    start / stop / restart [ID] --json
    RELOAD, push_job(data)   reload; config install from stdin (then reload)
    VERSION                  `imageserving --version` (ping)
    logs_job(name, lines, grep, since)   `imageserving logs NAME -n N [--grep RE] [--since D]` (plain lines)
    step_job(step)           a deploy phase: a function over the host's session, not an agent command
    gate_job(step)           --gate-http: one GET through the host's connection (httpgate.py)

The runner dispatches on `Job.kind` (an enum), never on a string, and so does the cluster's
lost-worker policy. Pure.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .results import HostResult
    from .ssh import Session
    from .target import Target


class Kind(enum.Enum):
    """What the agent is asked; the value names it in task keys and logs."""

    STATUS = "status"
    VERSION = "version"
    LOGS = "logs"
    START = "start"
    STOP = "stop"
    RESTART = "restart"
    RELOAD = "reload"
    CONFIG_PUSH = "config-push"
    DEPLOY = "deploy"
    HTTP_GATE = "http-gate"

    @property
    def runs_a_step(self) -> bool:
        """Its work is a function over the host's session, not an agent command."""
        return self in (Kind.DEPLOY, Kind.HTTP_GATE)

    @property
    def read_only(self) -> bool:
        """Asking twice does no harm (the cluster asks such a shard again on another worker)."""
        return self in (Kind.STATUS, Kind.VERSION, Kind.LOGS, Kind.HTTP_GATE)

    @property
    def verdict(self) -> str:
        """The command results.classify() judges the agent's status document as."""
        return "reload" if self is Kind.CONFIG_PUSH else self.value  # config install ends in a reload


# Per-host work other than an agent command (a deploy phase): (target, session, deadline, stdin
# with the become password or None) -> the host's result. It raises HostError for a failure.
Step = Callable[["Target", "Session", float, "bytes | None"], "HostResult"]


@dataclass(frozen=True)
class Job:
    """One kind of work, the agent arguments it runs, what it feeds the agent, or the step instead."""

    kind: Kind
    args: tuple[str, ...] = ()    # agent arguments, e.g. ("restart", "is", "--json")
    stdin: bytes | None = None    # fed to the agent (config push sends the file this way)
    step: Step | None = None      # Kind.DEPLOY and Kind.HTTP_GATE only: the host's work is this function

    def __post_init__(self) -> None:
        if (self.step is not None) != self.kind.runs_a_step:
            raise ValueError("a step is the work of a deploy or gate job, and only of those")


def status_job(ids: Sequence[str] = ()) -> Job:
    return Job(Kind.STATUS, ("status", *ids, "--json"))


STATUS = status_job()
VERSION = Job(Kind.VERSION, ("--version",))
RELOAD = Job(Kind.RELOAD, ("reload", "--json"))
_ACTIONS = (Kind.START, Kind.STOP, Kind.RESTART)


def action_job(kind: Kind, component: str | None = None) -> Job:
    """start / stop / restart, of everything or of one (already checked) component id."""
    if kind not in _ACTIONS:
        raise ValueError(f"not an action: {kind}")
    return Job(kind, (kind.value, *([component] if component else []), "--json"))


def push_job(data: bytes) -> Job:
    """What every host runs for `config push`: install from stdin, then reload."""
    return Job(Kind.CONFIG_PUSH, ("config", "install", "--json"), stdin=data)


def logs_job(name: str, lines: int, grep: str | None = None, since: str | None = None) -> Job:
    """`imageserving logs NAME -n N [--grep RE] [--since D]` (values checked by logs.logs_request)."""
    args: tuple[str, ...] = ("logs", name, "-n", str(lines))
    if grep is not None:
        args += ("--grep", grep)
    if since is not None:
        args += ("--since", since)
    return Job(Kind.LOGS, args)


def step_job(step: Step) -> Job:
    return Job(Kind.DEPLOY, step=step)


def gate_job(step: Step) -> Job:
    return Job(Kind.HTTP_GATE, step=step)
