"""What `imageserving logs` shows: which file (a component's output, Supervisor.log, or a server's own
log named in its `logs:` key), its last lines through the --grep/--since filter, and following it.

A `logs:` value is a path or a glob, relative to <home>/logs unless absolute; for a glob the newest
match by mtime is read, which is how date-rotated names (`access-2026-12-07.log`,
`catalina.2026-12-07.log`, `localhost_access_log.2026-12-07.txt`) are found, and `-f` moves on to a
newer match when one appears (midnight).
"""

from __future__ import annotations

import glob
import os
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO

from ..errors import NoLogFileError, UsageError
from ..home import Home
from .config import ComponentConfig
from .logfilter import LineFilter, line_time

DEFAULT_LINES = 20
BISECT_SLACK = 300.0   # --since bisects for this much earlier: servers log a request when it ends, a little out of order
_BISECT_MIN = 64 * 1024
POLL = 0.25            # seconds between reads while following
_GLOB_CHARS = frozenset("*?[")


@dataclass(frozen=True)
class LogSource:
    """A log to show: what the operator called it and the path or glob where it is."""

    label: str          # "is", "supervisor", "is:access"
    pattern: str        # an absolute path or glob

    @property
    def is_glob(self) -> bool:
        return any(c in _GLOB_CHARS for c in self.pattern)


def own_log(home: Home, key: str) -> LogSource:
    """A component's stdout/stderr log, or Supervisor.log for `supervisor`."""
    return LogSource(key, home.supervisor_log if key == "supervisor" else home.log(key))


def server_log(home: Home, comp: ComponentConfig, name: str) -> LogSource:
    """Takes a component and a name from its `logs:` key; returns the source or raises UsageError listing the names."""
    target = comp.logs.get(name.lower())
    if target is None:
        known = ", ".join(sorted(comp.logs)) or "none: add a `logs:` key to the component's configuration"
        raise UsageError(f"{comp.id} has no log named {name!r} (its logs: {known})")
    return LogSource(f"{comp.id}:{name.lower()}", os.path.join(home.logs, os.path.expanduser(target)))


def resolve(source: LogSource) -> str:
    """Takes a source; returns the file to read (a glob's newest match by mtime) or raises NoLogFileError."""
    if not source.is_glob:
        if not os.path.isfile(source.pattern):
            raise NoLogFileError(f"no log file for {source.label}: {source.pattern} does not exist (yet)")
        return source.pattern
    newest: tuple[float, str] | None = None
    for path in glob.glob(source.pattern):
        try:
            st = os.stat(path)
        except OSError:
            continue
        if os.path.isfile(path) and (newest is None or (st.st_mtime, path) > newest):
            newest = (st.st_mtime, path)
    if newest is None:
        raise NoLogFileError(f"no log file for {source.label}: nothing matches {source.pattern}")
    return newest[1]


def last_lines(path: str, n: int | None, filt: LineFilter) -> list[str]:
    """The last n lines of the file that pass the filter (n None: every passing line)."""
    if not filt.active:
        return _tail(path, DEFAULT_LINES if n is None else n)
    kept: deque[str] = deque(maxlen=n)
    with open(path, "rb") as fh:
        if filt.since is not None:
            fh.seek(since_offset(fh, filt.since - BISECT_SLACK))
        for raw in fh:
            line = raw.decode(errors="replace")
            if filt.keep(line):
                kept.append(line)
    return list(kept)


def since_offset(fh: BinaryIO, since: float) -> int:
    """An offset at or before the first line timed `since` or later, found by bisection (a log is in time order).

    Lets `--since 10m` on a multi-gigabyte access log read the last minutes, not the whole file;
    where no timestamp can be found the search keeps the earlier half, so it errs towards reading more.
    """
    fh.seek(0, os.SEEK_END)
    lo, hi = 0, fh.tell()
    while hi - lo > _BISECT_MIN:
        mid = (lo + hi) // 2
        fh.seek(mid)
        fh.readline()                       # the rest of a line cut in the middle
        when = None
        while when is None and fh.tell() < hi:
            line = fh.readline(8192)
            if not line:
                break
            when = line_time(line.decode(errors="replace"))
        if when is not None and when < since:
            lo = mid
        else:
            hi = mid
    return lo


def _tail(path: str, n: int) -> list[str]:
    with open(path, "rb") as fh:
        fh.seek(0, os.SEEK_END)
        size = fh.tell()
        fh.seek(max(0, size - max(n, 1) * 400))
        data = fh.read().decode(errors="replace").splitlines(keepends=True)
    return data[-n:] if n > 0 else []


def follow(source: LogSource, path: str, filt: LineFilter, write: Callable[[str], None],
           poll: float = POLL, until: Callable[[], bool] = lambda: False, start: int | None = None) -> None:
    """Writes lines appended to the file after offset `start` (default: its end now); follows a rotation
    (new inode) or a newer glob match."""
    fh = open(path, "rb")
    fh.seek(start if start is not None else 0, os.SEEK_SET if start is not None else os.SEEK_END)
    inode = os.fstat(fh.fileno()).st_ino
    partial = b""
    try:
        while not until():
            chunk = fh.read()
            if chunk and not filt.active:
                write(chunk.decode(errors="replace"))   # as it comes, as `tail -f` does
                continue
            if chunk:
                data = partial + chunk
                lines = data.split(b"\n")
                partial = lines.pop()
                text = "".join(t for t in (line.decode(errors="replace") + "\n" for line in lines) if filt.keep(t))
                if text:
                    write(text)
                continue
            time.sleep(poll)
            newer = _newer(source, path, inode)
            if newer is not None:
                fh.close()
                path, fh, partial = newer, open(newer, "rb"), b""
                inode = os.fstat(fh.fileno()).st_ino
    finally:
        fh.close()


def _newer(source: LogSource, path: str, inode: int) -> str | None:
    """The file to switch to: a newer glob match, or the same name with a new inode (rotated); else None."""
    try:
        current = resolve(source) if source.is_glob else path
        return current if current != path or os.stat(current).st_ino != inode else None
    except (NoLogFileError, OSError):
        return None
