"""Size-rotated log files that never take the supervisor down (full disk, unwritable directory)."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime

RETRY_AFTER = 5.0  # seconds before trying again to open a log that failed


class LogFile:
    """An append-only file rotated at max_bytes into .1 … .backups; write errors drop data, not us."""

    def __init__(self, path: str, max_bytes: int, backups: int) -> None:
        self.path, self.max_bytes, self.backups = path, max_bytes, backups
        self.fd: int | None = None
        self.size = 0
        self.dropped = 0                 # bytes lost to write errors since the last good write
        self.error: str | None = None
        self._retry_at = 0.0

    def _open(self) -> bool:
        if self.fd is not None:
            return True
        now = time.monotonic()
        if now < self._retry_at:
            return False
        try:
            self.fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
            self.size = os.fstat(self.fd).st_size
            return True
        except OSError as exc:
            self.error, self._retry_at = f"{self.path}: {exc.strerror}", now + RETRY_AFTER
            return False

    def write(self, data: bytes) -> None:
        if not data:
            return
        if not self._open():
            self.dropped += len(data)
            return
        if self.size + len(data) > self.max_bytes and self.size > 0:
            self._rotate()
            if not self._open():
                self.dropped += len(data)
                return
        if self.dropped:
            note = f"[{self.dropped} bytes of log lost: {self.error}]\n".encode()
            self.dropped = 0
            data = note + data
        try:
            assert self.fd is not None
            os.write(self.fd, data)
            self.size += len(data)
            self.error = None
        except OSError as exc:
            self.error = f"{self.path}: {exc.strerror}"
            self.dropped += len(data)
            self.close()
            self._retry_at = time.monotonic() + RETRY_AFTER

    def _rotate(self) -> None:
        self.close()
        try:
            if self.backups <= 0:
                os.truncate(self.path, 0)
                return
            for i in range(self.backups - 1, 0, -1):
                if os.path.exists(f"{self.path}.{i}"):
                    os.replace(f"{self.path}.{i}", f"{self.path}.{i + 1}")
            os.replace(self.path, f"{self.path}.1")
        except OSError as exc:
            self.error = f"{self.path}: rotation failed: {exc.strerror}"
            try:
                os.truncate(self.path, 0)  # bounded size matters more than the old lines
            except OSError:
                pass

    def reopen(self) -> None:
        """After SIGHUP (an external logrotate moved the file): start a new file."""
        self.close()
        self._retry_at = 0.0

    def close(self) -> None:
        if self.fd is not None:
            try:
                os.close(self.fd)
            except OSError:
                pass
            self.fd = None


def stamp() -> str:
    """ISO-8601 local time with offset and milliseconds, for lines a person reads."""
    return datetime.now(UTC).astimezone().isoformat(timespec="milliseconds")


class EventLog(LogFile):
    """Supervisor.log: one timestamped line per state change."""

    def line(self, text: str) -> None:
        self.write(f"{stamp()} {text}\n".encode(errors="replace"))

