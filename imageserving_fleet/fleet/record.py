"""What a fleet run leaves behind for the operator: its audit line and its retry file.

    with recorded(command, argv, inventory, limit, audit_log) as entry:   opens the audit log first
        ...run...; entry.hosts = results; entry.exit = code              (None for read-only commands)
    with audited(run_ctx, argv, component) as note: note(outcome)         the same, for a run context
    leave_retry(command, results, warn)                                       the retry file and its hint

The CLI calls these around every command that contacts hosts; the logic is here so that it has
one home whatever shape the CLI takes.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from .audit import AuditEntry, AuditLog, redact
from .results import HostResult
from .retry import hint, write_retry

if TYPE_CHECKING:
    from .commands.run import Outcome
    from .context import RunContext


@contextlib.contextmanager
def recorded(command: str, argv: Sequence[str], inventory: Sequence[str], limit: str | None,
             audit_log: Path | None) -> Iterator[AuditEntry | None]:
    """For a change (`audit_log` given, RunContext.audit_log): opens the audit log (AuditLogError,
    exit 1, before any host when it cannot be written) and yields the entry to fill in, written on
    the way out whatever happens. For a read-only command: yields None and touches nothing."""
    if audit_log is None:
        yield None
        return
    log = AuditLog.open(audit_log)
    with _terminated_as_interrupted(), log.recording(AuditEntry(command=command, argv=redact(argv),
                                                                 inventory=list(inventory), limit=limit)) as entry:
        yield entry


@contextlib.contextmanager
def audited(ctx: RunContext, argv: Sequence[str], component: str | None = None
            ) -> Iterator[Callable[[Outcome], Outcome]]:
    """`recorded` for a run: the command and its component as the audit log names them (`stop is`),
    its inventory files; yields what notes the run's outcome in the entry (and hands it back)."""
    inventory = ctx.inventory_paths or ("(packaged localhost inventory)",)
    words = " ".join([ctx.command.value, *([component] if component else [])])
    with recorded(words, argv, inventory, ctx.options.limit, ctx.audit_log) as entry:
        def note(outcome: Outcome) -> Outcome:
            if entry is not None:
                entry.hosts, entry.exit = list(outcome.results), outcome.exit_code
            return outcome

        yield note


@contextlib.contextmanager
def _terminated_as_interrupted() -> Iterator[None]:
    """SIGTERM and SIGHUP (a closed terminal, a dropped SSH session) end a change as Ctrl-C does: the
    partial report, exit 99, and the audit line. Only the main thread can set handlers."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    saved = {sig: signal.signal(sig, signal.default_int_handler) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)


def retry_name(command: str) -> str:
    """`restart is` -> restart, `config push` -> config push: the retry file is the command's."""
    words = command.split()
    two = " ".join(words[:2])
    return two if two in ("config push", "restart supervisor") else (words[0] if words else "run")


def leave_retry(command: str, results: Sequence[HostResult], warn: Callable[[str], None]) -> None:
    """Writes the retry file of a run with hosts not ok, and says on stderr (`warn`) how to use it."""
    try:
        path = write_retry(retry_name(command), results)
    except OSError as exc:
        warn(f"cannot write the retry file: {exc.strerror or exc}")
        return
    if path is not None:
        warn(hint(path))
