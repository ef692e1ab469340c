"""The supervisor's hands on processes, behind one small interface (supervisord's `options` object).

`ProcessOps` is everything the executor does to the operating system: spawn a component, find its
processes, signal them, reap children, watch a process that is not our child, measure memory.
`OsProcesses` does it for real (cgroups where the host allows, else the subreaper's view: see
ownership.py); tests of the executor's logic pass a fake instead.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterable
from typing import Any, Protocol

from . import ownership
from .config import ComponentConfig
from .memory import Memory, measure
from .ownership import Owned

LogSpec = tuple[str, int, int]    # path, max bytes, backups


class ProcessOps(Protocol):
    """What the supervisor asks of the operating system (every method is cheap and never blocks)."""

    cgroups: bool  # True: ownership by cgroup, False: by the subreaper's view and sessions

    def spawn(self, cfg: ComponentConfig, log: LogSpec, env: dict[str, str]) -> Owned:
        """Starts the component in a new session, its stdout and stderr through a log relay; raises OSError."""

    def members(self, owned: Owned) -> list[int]:
        """Every live process of the component (the one set stop, clean-up and memory use)."""

    def signal(self, owned: Owned, signo: int) -> None:
        """signo to the component's group and every member (SIGKILL: the whole cgroup at once)."""

    def reap(self) -> list[tuple[int, int]]:
        """(pid, wait status) of every child that ended since the last call."""

    def watch(self, pid: int) -> int | None:
        """A file descriptor readable once `pid` (not our child) ends; None when it is already gone."""

    def measure(self, owned: Owned) -> Memory | None:
        """RSS, PSS and USS summed over all the component's processes (None: no process)."""

    def claim_orphans(self, owned: Iterable[Owned], known: set[int]) -> list[Owned]:
        """Records our children that are no component's main process nor in `known` (orphans
        reparented to the subreaper) as members of the component they came from; returns the changed."""

    def release(self, owned: Owned) -> None:
        """The component has no process left: drop what was made for it (its cgroup)."""


class OsProcesses:
    """ProcessOps on Linux: cgroups when the host lets us create one, else subreaper + sessions."""

    def __init__(self, home_root: str) -> None:
        self.base = ownership.cgroup_base(home_root)
        self.cgroups = self.base is not None
        self.own_cgroup = ownership.cgroup_of_self(self.base) if self.base else None

    def describe(self) -> str:
        if self.base:
            return f"cgroup {self.base}"
        return "no cgroup (subreaper and sessions)"

    def spawn(self, cfg: ComponentConfig, log: LogSpec, env: dict[str, str]) -> Owned:
        cgroup = self._cgroup_for(cfg.id)
        out, relay = _start_relay(log)
        kwargs: dict[str, Any] = {}
        if cfg.user and os.geteuid() == 0:
            import pwd

            kwargs.update(user=cfg.user, group=pwd.getpwnam(cfg.user).pw_gid, extra_groups=[])
        moved = False
        try:
            if cgroup is not None:
                # The child must be in its cgroup before it can fork: we step in, fork, step back
                # (the supervisor's loop is the only thread that forks).
                try:
                    ownership.enter(cgroup)
                    moved = True
                except OSError:
                    cgroup = None
            proc = subprocess.Popen(
                list(cfg.command), cwd=cfg.cwd or None, env=env, stdin=subprocess.DEVNULL,
                stdout=out, stderr=out, start_new_session=True, close_fds=True, **kwargs,
            )
        finally:
            if moved and self.own_cgroup:
                try:
                    ownership.enter(self.own_cgroup)
                except OSError:
                    pass
            os.close(out)  # the relay sees end of file once every process of the component is gone
        proc.returncode = 0  # we reap with waitpid(-1); keep Popen from waiting on this pid later
        return Owned(cfg.id, proc.pid, ownership.start_of(proc.pid), cgroup, relay=relay[:2], pipe=relay[2],
                     child=True)

    def _cgroup_for(self, cid: str) -> str | None:
        if self.base is None:
            return None
        path = os.path.join(self.base, cid)
        try:
            os.makedirs(path, exist_ok=True)
            return path
        except OSError:
            return None

    def members(self, owned: Owned) -> list[int]:
        return ownership.members(owned)

    def signal(self, owned: Owned, signo: int) -> None:
        ownership.signal_members(owned, signo)

    def reap(self) -> list[tuple[int, int]]:
        out: list[tuple[int, int]] = []
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return out
            if pid == 0:
                return out
            out.append((pid, status))

    def watch(self, pid: int) -> int | None:
        try:
            return os.pidfd_open(pid)
        except OSError:
            return None

    def measure(self, owned: Owned) -> Memory | None:
        pids = ownership.members(owned)
        return measure(pids) if pids else None

    def claim_orphans(self, owned: Iterable[Owned], known: set[int]) -> list[Owned]:
        if self.cgroups:
            return []  # the cgroup already holds them
        comps = [o for o in owned if o.start is not None]
        changed = []
        for pid in ownership.children_of(os.getpid()):
            if pid in known or any(pid == o.pid or pid in o.seen for o in comps):
                continue
            row = ownership.stat(pid)
            if row is None:
                continue
            # Reparented to us: it came from the component whose session it is in, else from the
            # latest one started before it (a daemon detaches while it starts).
            owner = next((o for o in comps if row[2] == o.pid), None) or max(
                (o for o in comps if (o.start or 0) <= row[3]), key=lambda o: o.start or 0, default=None)
            if owner is not None:
                owner.seen[pid] = row[3]
                changed.append(owner)
        return changed

    def release(self, owned: Owned) -> None:
        ownership.remove_cgroup(owned.cgroup)

    def close(self) -> None:
        """At exit, when nothing runs: removes this home's (empty) cgroup directory."""
        ownership.remove_cgroup(self.base)


def _start_relay(log: LogSpec) -> tuple[int, tuple[int, int, int]]:
    """Starts the component's log relay (relay.py) on a new pipe; returns the pipe's write end for
    the component and (relay pid, its start ticks, pipe inode). Nothing of the pipe stays with us,
    so a supervisor that dies or hands over is never the reader whose loss means EPIPE."""
    read_fd, write_fd = os.pipe2(os.O_CLOEXEC)
    try:
        proc = subprocess.Popen([sys.executable, "-P", "-m", "imageserving_fleet.agent.relay", *map(str, log)],
                                stdin=read_fd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True, close_fds=True)
    except BaseException:
        os.close(write_fd)
        raise
    finally:
        os.close(read_fd)
    proc.returncode = 0  # reaped by our waitpid(-1) when it ends
    return write_fd, (proc.pid, ownership.start_of(proc.pid) or 0, os.fstat(write_fd).st_ino)
