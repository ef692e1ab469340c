"""Write a file so that a reader (a web server, a browser, a supervisor, a mail script) never sees
half of it: reports, `imageserving metrics -o`, the config handed to the supervisor, the record
of its children, the fleet's socket cache."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


def _mode_for(path: Path) -> int:
    """Keep an existing file's mode; a new file gets what the umask allows (mkstemp alone gives 0600,
    which a web server running as another user could not read)."""
    try:
        return os.stat(path).st_mode & 0o7777
    except FileNotFoundError:
        return 0o666 & ~_umask()


def _umask() -> int:
    """The process umask, read without setting it (os.umask(0) would open a window for other threads)."""
    with contextlib.suppress(OSError, ValueError):
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    umask = os.umask(0o077)  # no /proc: the briefest, safest window
    os.umask(umask)
    return umask


def write_atomic(path: str | os.PathLike[str], data: str | bytes, *, durable: bool = True) -> None:
    """Writes data (text as UTF-8) to a temporary file in the target's directory, then renames it
    over the target (os.replace: atomic on POSIX). On any error the target is left as it was.

    The file keeps the target's mode, or gets what the umask allows when new. durable: sync the
    file and its directory first, so the new content survives a crash (a cache needs not)."""
    target = Path(path)
    directory = target.parent if str(target.parent) else Path(".")
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data.encode() if isinstance(data, str) else data)
            fh.flush()
            os.fchmod(fh.fileno(), _mode_for(target))
            if durable:
                os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    if durable:
        sync_dir(directory)


def sync_dir(directory: str | os.PathLike[str]) -> None:
    """A rename survives a crash only once its directory is synced too; best effort."""
    with contextlib.suppress(OSError):
        dfd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
