"""`logs ID[:NAME] -n N [--grep RE] [--since D]`: the last lines of one log from every host (each
result's `lines`), filtered on the hosts; the checks are logs.logs_request's (exit 5 before any host)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from ..context import RunContext
from ..fanout import FanOut
from ..jobs import logs_job
from ..logs import LogsRequest, check_log_name, logs_request
from ..options import opt
from .run import Outcome, execute


@dataclass(frozen=True)
class LogsOptions:
    """`logs`' options as written, each declared once (the CLI builds its options from them)."""

    lines: Annotated[int, opt("-n", "--lines", help="How many last lines per host.")] = 20
    grep: Annotated[str | None, opt("--grep", metavar="RE", help="Only lines matching this regular expression "
                                                                 "(Python's), filtered on the host.")] = None
    since: Annotated[str | None, opt("--since", metavar="D", help="Only lines of the last D (90s, 10m, 2h, 1d), "
                                                                  "filtered on the host.")] = None
    group: Annotated[bool, opt("--group", help="Each distinct output once, under the hosts that gave it "
                                               "(is[01-03,07]), as clush -b does.")] = False
    raw: Annotated[bool, opt("--raw", help="Print the lines as the hosts sent them (default: control characters "
                                           "shown escaped, \\x1b, as journalctl does).")] = False


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
