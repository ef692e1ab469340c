"""The audit log: who changed what, when, on which hosts, with what result (one JSON line per run).

    log = AuditLog.open(audit_path(option))         before any host: unwritable -> AuditLogError (exit 1)
    with log.recording(entry) as record:            the line is written on the way out, whatever happens
        record.hosts = results; record.exit = code  (Ctrl-C: what is known by then, exit 99)

Every command that changes something (start, stop, restart, reload, config push, deploy, start/stop
ID, restart supervisor) appends one line; read-only commands write nothing and do not open it.
The file is the controller user's own (mode 0600 when created, its directory 0700). Concurrent runs
never interleave a line: the file is opened O_APPEND, the line is written under an exclusive flock,
with one write() unless the kernel takes less. Secrets never reach it: argv is redacted (`redact`).
"""

from __future__ import annotations

import contextlib
import fcntl
import getpass
import json
import os
import re
import socket
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ImageServingError
from ..timefmt import utc_stamp
from .controller_home import controller_home, make_private_dir
from .results import EXIT_INTERRUPTED, HostResult

AUDIT_ENV = "IMAGESERVING_AUDIT_LOG"
AUDIT_FILE = "audit.jsonl"
REDACTED = "<redacted>"

# Options whose value is a secret (`--opt VALUE` or `--opt=VALUE`), by name: anything naming a
# password, passphrase, secret or token. The flags that only ask for one take no value.
_SECRET_OPTION = re.compile(r"^--?[\w-]*(pass|secret|token)[\w-]*$", re.IGNORECASE)
_VALUELESS = frozenset({"-k", "-K", "--ask-pass", "--ask-become-pass"})
# user:password@ in a URL (a --cluster or --notify address with credentials)
_URL_PASSWORD = re.compile(r"(?P<head>[a-z][a-z0-9+.-]*://[^/\s:@]*:)[^/\s@]*(?=@)", re.IGNORECASE)


class AuditLogError(ImageServingError):
    """The audit log cannot be written: the change is not made (fleet exit 1). Names the path."""


def audit_path(option: str | None, environ: dict[str, str] | None = None) -> Path:
    """--audit-log, else IMAGESERVING_AUDIT_LOG, else ~/.imageserving-fleet/audit.jsonl."""
    env = os.environ if environ is None else environ
    chosen = option or env.get(AUDIT_ENV)
    return Path(os.path.expanduser(chosen)) if chosen else controller_home() / AUDIT_FILE


def redact(argv: Sequence[str]) -> list[str]:
    """Takes the command line; returns it with every secret replaced by `<redacted>`.

    `--become-password X`, `--become-password=X`, `--vault-pass X`, `--token=X` (any option naming
    a password, passphrase, secret or token) and the password of a `scheme://user:password@host`.
    """
    out: list[str] = []
    hide_next = False
    for arg in argv:
        if hide_next:
            out.append(REDACTED)
            hide_next = False
            continue
        name, eq, _value = arg.partition("=")
        if arg.startswith("-") and _SECRET_OPTION.match(name) and name not in _VALUELESS:
            if eq:
                out.append(f"{name}={REDACTED}")
            else:
                out.append(arg)
                hide_next = True
            continue
        out.append(_URL_PASSWORD.sub(rf"\g<head>{REDACTED}", arg))
    return out


def current_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # a uid with no passwd entry (a container)
        return str(os.getuid())


@dataclass
class AuditEntry:
    """One run, as its line says it. `hosts` and `exit` are filled in as the run ends."""

    command: str                      # the command words: "restart", "stop is", "config push"
    argv: list[str]                   # redacted
    inventory: list[str]
    limit: str | None
    user: str = field(default_factory=current_user)
    controller: str = field(default_factory=socket.gethostname)
    time: str = field(default_factory=utc_stamp)  # the one format a person reads (timefmt)
    hosts: list[HostResult] = field(default_factory=list)
    exit: int | None = None

    def document(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "time": self.time, "user": self.user, "controller": self.controller, "argv": self.argv,
            "inventory": self.inventory, "limit": self.limit, "command": self.command,
            "hosts": [{"host": r.host, "result": str(r.result), "reason": r.reason} for r in self.hosts],
            "exit": self.exit}
        sudo_user = os.environ.get("SUDO_USER")
        if sudo_user:  # who ran `sudo imageserving-fleet ...`
            doc["sudo_user"] = sudo_user
        return doc

    def line(self) -> bytes:
        """The JSON line; a lone surrogate from a host is written as its \\u escape, never a crash."""
        return (json.dumps(self.document(), ensure_ascii=True, separators=(",", ":")) + "\n").encode("ascii")


class AuditLog:
    """An open audit log (append only). Use `open()`; `close()` when done."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path, self._fd = path, fd

    @classmethod
    def open(cls, path: Path) -> AuditLog:
        """Opens (creates, 0600) the log for appending; raises AuditLogError naming the path."""
        try:
            make_private_dir(path.parent)
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise AuditLogError(f"cannot write the audit log {path}: {exc.strerror or exc}; "
                                "nothing was changed (--audit-log or IMAGESERVING_AUDIT_LOG choose another file)"
                                ) from None
        return cls(path, fd)

    def append(self, entry: AuditEntry) -> None:
        """Appends the entry's line whole: locked, O_APPEND, no other writer's line inside it."""
        data = entry.line()
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(self._fd, view):]
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    @contextlib.contextmanager
    def recording(self, entry: AuditEntry) -> Iterator[AuditEntry]:
        """Yields the entry to fill in; writes it on the way out, even on Ctrl-C or an error.

        An exit code not set by then is the one the way out implies: 99 for Ctrl-C, 1 for an error.
        """
        try:
            yield entry
        except KeyboardInterrupt:
            entry.exit = EXIT_INTERRUPTED
            raise
        except SystemExit as exc:
            if entry.exit is None:
                entry.exit = exc.code if isinstance(exc.code, int) else 1
            raise
        except BaseException as exc:
            if entry.exit is None:
                entry.exit = getattr(exc, "exit_code", 1)
            raise
        finally:
            try:
                self.append(entry)
            finally:
                self.close()
