"""Retry files: the hosts a run did not finish, for `--limit @FILE` (Ansible's `.retry` files).

A run that leaves hosts not ok (failed, unreachable, degraded, or skipped because a rolling run
stopped before them) writes their names, one per line in inventory order, to
`~/.imageserving-fleet/retry/<command>.retry` (atomically: a temporary file, then a rename) and
says on stderr how to run them again. A run where every host is ok leaves an earlier file as it is,
as Ansible does. Skipped hosts are in it because the job was never done there: `--limit @FILE`
finishes the work, not only the part that failed.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from collections.abc import Sequence
from pathlib import Path

from .controller_home import controller_home, make_private_dir
from .results import HostResult, Result

RETRY_DIR = "retry"
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def retry_path(command: str, home: Path | None = None) -> Path:
    """`config push` -> ~/.imageserving-fleet/retry/config-push.retry."""
    name = _UNSAFE.sub("-", command.strip()).strip("-.") or "run"
    return (home or controller_home()) / RETRY_DIR / f"{name}.retry"


def to_retry(results: Sequence[HostResult]) -> list[str]:
    """Takes a run's results; returns the hosts to run again, in the run's (inventory) order."""
    return [r.host for r in results if r.result != Result.OK]


def write_retry(command: str, results: Sequence[HostResult], home: Path | None = None) -> Path | None:
    """Writes the retry file when some host is not ok; returns its path, or None when all were ok.

    Raises OSError when it cannot be written (the caller warns: the run itself is done).
    """
    names = to_retry(results)
    if not names:
        return None
    path = retry_path(command, home)
    make_private_dir(path.parent)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write("".join(f"{name}\n" for name in names))
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return path


def hint(path: Path) -> str:
    """The stderr line that says how to run those hosts again."""
    return f"to retry the hosts that are not ok: --limit @{path}"
