"""`logs NAME -n N`: the last lines of one log from every host (each result's `lines`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from ...errors import UsageError
from ..context import RunContext
from ..fanout import FanOut
from ..jobs import logs_job
from ..logs import MAX_LINES
from ..options import opt
from ..remote import check_id
from .run import Outcome, execute


@dataclass(frozen=True)
class LogsOptions:
    """`logs`' options as written, each declared once (the CLI builds its options from them)."""

    lines: Annotated[int, opt("-n", "--lines", help="How many last lines per host.")] = 20
    raw: Annotated[bool, opt("--raw", help="Print the lines as the hosts sent them (default: control characters "
                                           "shown escaped, \\x1b, as journalctl does).")] = False


def log_name(name: str) -> str:
    """`supervisor` or a component id (lower-cased); raises UsageError."""
    return "supervisor" if name.lower() == "supervisor" else check_id(name)


def check_lines(lines: int) -> int:
    if not 0 < lines <= MAX_LINES:
        raise UsageError(f"-n must be between 1 and {MAX_LINES}")
    return lines


def logs(ctx: RunContext, fanout: FanOut, name: str, lines: int) -> Outcome:
    return execute(ctx, fanout, logs_job(log_name(name), check_lines(lines)))
