"""Small process helpers of the supervisor: the subreaper, the environment tag, wait statuses.

Finding a component's processes is ownership.py's job (cgroup, else subreaper + sessions); the
OS calls of the executor go through processes.ProcessOps; memory figures are memory.py's. The environment tag set here is kept
for people's own scripts (and the tests' last-resort clean-up), never relied upon: nginx's
workers and many C daemons erase it.
"""

from __future__ import annotations

import ctypes
import os
import signal

import psutil

TAG = "IMAGESERVING_SUPERVISED"
PR_SET_CHILD_SUBREAPER = 36


def become_subreaper() -> bool:
    """Orphaned descendants are reparented to us (Linux ≥ 3.4), so we can find and reap them."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def tag_value(marker: str, cid: str) -> str:
    return f"{marker}#{cid}"


def tagged(marker: str, cid: str | None = None) -> list[psutil.Process]:
    """Every process still carrying this home's tag (for one component, or any of them)."""
    want = (tag_value(marker, cid) if cid else marker + "#").encode()
    prefix = TAG.encode() + b"=" + want
    me = os.getpid()
    found = []
    for pid in psutil.pids():
        if pid == me:
            continue
        try:
            with open(f"/proc/{pid}/environ", "rb") as fh:
                env = fh.read()
        except OSError:
            continue
        for entry in env.split(b"\0"):
            if entry.startswith(prefix) and (cid is None or entry == prefix):
                try:
                    found.append(psutil.Process(pid))
                except psutil.Error:
                    pass
                break
    return found


def describe_status(status: int) -> tuple[str, bool]:
    """Takes a waitpid status; returns (`exit 3` or `signal KILL`, clean exit?)."""
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        try:
            name = signal.Signals(sig).name.removeprefix("SIG")
        except ValueError:
            name = str(sig)
        return f"signal {name}", False
    code = os.WEXITSTATUS(status)
    return f"exit {code}", code == 0
