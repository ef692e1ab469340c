"""`logs ID[:NAME] -n N [--grep RE] [--since D]`: the last lines of one log from every host (each
result's `lines`), filtered on the hosts; the checks are logs.logs_request's (exit 5 before any host)."""

from __future__ import annotations

from ..context import RunContext
from ..fanout import FanOut
from ..jobs import logs_job
from ..logs import LogsRequest, check_log_name, logs_request
from .run import Outcome, execute


def log_name(name: str) -> str:
    """`supervisor`, a component id or `ID:NAME` (lower-cased); raises UsageError."""
    return check_log_name(name)


def check_lines(lines: int) -> int:
    return logs_request("supervisor", lines).lines


def request(name: str, lines: int, grep: str | None = None, since: str | None = None) -> LogsRequest:
    """The command line's values, checked (UsageError: exit 5)."""
    return logs_request(name, lines, grep, since)


def logs(ctx: RunContext, fanout: FanOut, name: str, lines: int, grep: str | None = None,
         since: str | None = None) -> Outcome:
    r = request(name, lines, grep, since)
    return execute(ctx, fanout, logs_job(r.name, r.lines, r.grep, r.since))
