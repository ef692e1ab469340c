"""Every OS call on component processes: spawn, signal, find, measure. The state machine's hands.

Each component runs in its own session and process group and carries IMAGESERVING_SUPERVISED in
its environment. Descendants inherit that tag even when they leave the group (setsid, double
fork), so a stop, a crash clean-up or the next supervisor after a crash can find every one of them;
it is the poor man's cgroup. The supervisor is also a child subreaper, so such orphans are
reparented to it and reaped, not left as zombies.
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import signal
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import psutil

from ..atomic import write_atomic
from .config import ComponentConfig

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


@dataclass(frozen=True)
class Child:
    """A spawned component process: enough to find it again after our own crash."""

    id: str
    pid: int
    create_time: float
    output_fd: int   # read end of its stdout/stderr pipe


def spawn(cfg: ComponentConfig, marker: str) -> Child:
    """Starts the component in a new session with its output on a pipe; raises OSError on failure."""
    env = dict(os.environ)
    env.update(cfg.env)
    env[TAG] = tag_value(marker, cfg.id)
    read_fd, write_fd = os.pipe()
    kwargs: dict[str, Any] = {}
    if cfg.user and os.geteuid() == 0:
        kwargs.update(user=cfg.user, group=_primary_group(cfg.user), extra_groups=[])
    try:
        proc = subprocess.Popen(
            list(cfg.command), cwd=cfg.cwd or None, env=env, stdin=subprocess.DEVNULL,
            stdout=write_fd, stderr=write_fd, start_new_session=True, close_fds=True, **kwargs,
        )
    except BaseException:
        os.close(read_fd)
        raise
    finally:
        os.close(write_fd)
    # We reap children ourselves with waitpid(); keep Popen from waiting on this pid later.
    proc.returncode = 0
    os.set_blocking(read_fd, False)
    try:
        created = psutil.Process(proc.pid).create_time()
    except psutil.Error:
        created = 0.0
    return Child(cfg.id, proc.pid, created, read_fd)


def _primary_group(user: str) -> int:
    import pwd

    return pwd.getpwnam(user).pw_gid


def tagged(marker: str, cid: str | None = None) -> list[psutil.Process]:
    """Every process carrying this home's tag (for one component, or any of them)."""
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


def tree(pid: int | None, marker: str, cid: str) -> list[psutil.Process]:
    """The component's main process, its descendants and any tagged process that escaped them."""
    procs: dict[int, psutil.Process] = {}
    if pid is not None:
        try:
            main = psutil.Process(pid)
            procs[pid] = main
            procs.update((c.pid, c) for c in main.children(recursive=True))
        except psutil.Error:
            pass
    for p in tagged(marker, cid):
        procs.setdefault(p.pid, p)
    return [p for p in procs.values() if _alive(p)]


def _alive(p: psutil.Process) -> bool:
    try:
        return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def signal_all(procs: Iterable[psutil.Process], pgid: int | None, signo: int) -> None:
    """Sends signo to the process group and to each process (those that left the group too)."""
    if pgid is not None:
        try:
            os.killpg(pgid, signo)
        except OSError:
            pass
    for p in procs:
        try:
            p.send_signal(signo)
            if signo in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT):
                p.send_signal(signal.SIGCONT)  # a stopped process must wake to act on it
        except psutil.Error:
            pass


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except OSError as exc:
        return exc.errno == errno.EPERM


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


def save_children(path: str, children: Iterable[Child]) -> None:
    """Records pid and create time of each running component, atomically."""
    data = [{"id": c.id, "pid": c.pid, "create_time": c.create_time} for c in children]
    try:
        write_atomic(path, json.dumps(data), durable=False)  # each spawn writes it: no fsync in the loop
    except OSError:
        pass  # best effort: the environment tag finds them too


def leftovers(path: str, marker: str) -> list[psutil.Process]:
    """Processes a crashed supervisor of this home left behind: recorded pids (same create time) and tagged ones."""
    found: dict[int, psutil.Process] = {}
    try:
        with open(path) as fh:
            records = json.loads(fh.read())
    except (OSError, ValueError):
        records = []
    for rec in records if isinstance(records, list) else []:
        try:
            p = psutil.Process(int(rec["pid"]))
            if abs(p.create_time() - float(rec["create_time"])) < 0.01:
                found[p.pid] = p
                found.update((c.pid, c) for c in p.children(recursive=True))
        except (psutil.Error, KeyError, TypeError, ValueError):
            continue
    for p in tagged(marker):
        found.setdefault(p.pid, p)
    return [p for p in found.values() if _alive(p)]
