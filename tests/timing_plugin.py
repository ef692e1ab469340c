"""Where the suite's time goes: per test wall and CPU, enabled by IMAGESERVING_TEST_TIMING=PATH.

Each process (the xdist controller and every worker) appends one JSON line per test to PATH.<worker>:
wall seconds and the CPU (user+sys) of the pytest process plus its reaped children, as getrusage
deltas around the whole protocol (setup, call, teardown, so a module fixture's teardown is billed to
the module's last test). At the end the controller folds the lines into PATH: one row per file,
most CPU first.

Supervisors double-fork: their CPU would never reach RUSAGE_CHILDREN. While measuring, each process
makes itself a child subreaper (prctl PR_SET_CHILD_SUBREAPER) so orphaned descendants are reparented
to it, and a reaper thread reaps at once (as init would) the zombies that are NOT its own direct
children (those belong to subprocess.Popen / multiprocessing, which wait for them themselves:
reaping them here would hand their callers a lost exit status). At once matters: a killed orphan
left a zombie would still look alive to the very tests that check it is gone. Measuring only:
without the variable none of this is installed.

    IMAGESERVING_TEST_TIMING=/tmp/t python -m pytest -q -n 3 --dist loadfile; cat /tmp/t
"""

from __future__ import annotations

import ctypes
import json
import os
import resource
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

PR_SET_CHILD_SUBREAPER = 36
ENV = "IMAGESERVING_TEST_TIMING"


TICK = os.sysconf("SC_CLK_TCK")


def _cpu() -> float:
    """CPU seconds of this process, its reaped children, and every living descendant (with what each reaped).

    The living part matters: a session-scoped sshd reaps its per-connection children itself, so their
    CPU would otherwise reach this process only when the sshd exits at the very end of the session.
    """
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime + _living_descendants()


def _living_descendants() -> float:
    parent: dict[int, int] = {}
    ticks: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        f = stat[stat.rfind(")") + 2:].split()   # f[0] is field 3 (state); utime..cstime are fields 14-17
        parent[int(entry)] = int(f[1])
        ticks[int(entry)] = sum(int(x) for x in f[11:15])
    me, total = os.getpid(), 0
    for pid in parent:
        p, seen = parent[pid], 0
        while p > 1 and p != me and seen < 64:
            p, seen = parent.get(p, 0), seen + 1
        if p == me and pid != me:
            total += ticks[pid]
    return total / TICK


class TimingPlugin:
    def __init__(self, path: str, worker: str) -> None:
        self.path = path
        self.worker = worker
        if worker == "main":    # a fresh measurement: drop the parts of an earlier run
            for stale in Path(path).parent.glob(Path(path).name + ".*"):
                stale.unlink()
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.out = open(f"{path}.{worker}", "a", buffering=1)  # noqa: SIM115 - lives as long as the session
        self.spawned: set[int] = set()
        self.failed: set[str] = set()
        self.orphans = 0
        self.spawn_lock = threading.Lock()
        self._track_own_children()
        self.subreaper = self._become_subreaper()
        if self.subreaper:
            threading.Thread(target=self._reaper, name="timing-reaper", daemon=True).start()

    @staticmethod
    def _become_subreaper() -> bool:
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            return libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
        except (OSError, AttributeError):
            return False

    def _track_own_children(self) -> None:
        """Remembers the pids this process starts itself (Popen, os.fork), which it must never reap."""
        spawned = self.spawned
        original_execute = subprocess.Popen._execute_child  # type: ignore[attr-defined]

        lock = self.spawn_lock

        def execute_child(popen: subprocess.Popen[Any], *args: Any, **kwargs: Any) -> None:
            with lock:   # the reaper decides only when no spawn is between fork and being recorded
                try:
                    original_execute(popen, *args, **kwargs)
                finally:
                    if getattr(popen, "pid", None):
                        spawned.add(popen.pid)

        subprocess.Popen._execute_child = execute_child  # type: ignore[attr-defined]
        original_fork, original_forkpty = os.fork, os.forkpty

        def fork() -> int:
            with lock:
                pid = original_fork()
                if pid:
                    spawned.add(pid)
            return pid

        def forkpty() -> tuple[int, int]:  # pty.fork(): a test's controller on a terminal (test_become -K)
            with lock:
                pid, fd = original_forkpty()
                if pid:
                    spawned.add(pid)
            return pid, fd

        os.fork, os.forkpty = fork, forkpty
        import multiprocessing.util as mp_util  # spawn/forkserver start their processes through this

        original_spawnv = mp_util.spawnv_passfds

        def spawnv_passfds(*args: Any, **kwargs: Any) -> int:
            with lock:
                pid = int(original_spawnv(*args, **kwargs))
                spawned.add(pid)
            return pid

        mp_util.spawnv_passfds = spawnv_passfds

    def _reaper(self) -> None:
        """Waits (without reaping) for any child to exit; reaps it if it is an adopted orphan."""
        while True:
            try:
                info = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOWAIT)
            except ChildProcessError:
                time.sleep(0.05)
                continue
            except InterruptedError:
                continue
            if info is None:
                continue
            pid = info.si_pid
            if pid in self.spawned:
                time.sleep(0.02)            # its owner reaps it; meanwhile look past it for orphans
                self.orphans += self._reap_orphans()
                continue
            with self.spawn_lock:           # a child that exited before its Popen recorded it is ours
                adopted = pid not in self.spawned
            if adopted:
                try:
                    if os.waitpid(pid, os.WNOHANG)[0]:
                        self.orphans += 1
                except ChildProcessError:
                    pass

    def _reap_orphans(self) -> int:
        """Reaps zombie children this process did not start (reparented orphans); returns how many."""
        if not self.subreaper:
            return 0
        me = os.getpid()
        reaped = 0
        for entry in os.listdir("/proc"):
            if not entry.isdigit() or int(entry) in self.spawned:
                continue
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            fields = stat[stat.rfind(")") + 2:].split()
            if fields[0] == "Z" and int(fields[1]) == me:
                try:
                    if os.waitpid(int(entry), os.WNOHANG)[0]:
                        reaped += 1
                except ChildProcessError:
                    pass
        return reaped

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.failed:
            self.failed.add(report.nodeid)

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_protocol(self, item: pytest.Item) -> Iterator[None]:
        wall0, cpu0, orphans0 = time.monotonic(), _cpu(), self.orphans
        yield
        self.orphans += self._reap_orphans()
        orphans = self.orphans - orphans0
        self.out.write(json.dumps({
            "file": item.location[0], "test": item.nodeid, "worker": self.worker,
            "wall": round(time.monotonic() - wall0, 3), "cpu": round(_cpu() - cpu0, 3), "orphans": orphans,
            "failed": item.nodeid in self.failed,
        }) + "\n")

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        self._reap_orphans()
        self.out.close()
        if self.worker == "main":   # the controller (or a run without xdist) writes the table
            Path(self.path).write_text(table(self.path))


def table(path: str) -> str:
    rows: dict[str, list[float]] = {}
    for part in Path(path).parent.glob(Path(path).name + ".*"):
        for line in part.read_text().splitlines():
            rec = json.loads(line)
            row = rows.setdefault(rec["file"], [0.0, 0.0, 0, 0])
            row[0] += rec["cpu"]
            row[1] += rec["wall"]
            row[2] += 1
            row[3] += rec.get("orphans", 0)
    lines = [f"{'cpu_s':>8} {'wall_s':>8} {'tests':>5} {'orph':>4}  file"]
    for name, (cpu, wall, n, orph) in sorted(rows.items(), key=lambda kv: -kv[1][0]):
        lines.append(f"{cpu:8.1f} {wall:8.1f} {n:5d} {orph:4d}  {name}")
    total = [sum(r[i] for r in rows.values()) for i in range(4)]
    lines.append(f"{total[0]:8.1f} {total[1]:8.1f} {int(total[2]):5d} {int(total[3]):4d}  TOTAL")
    return "\n".join(lines) + "\n"


def register(config: pytest.Config) -> None:
    """Called from conftest.py: installs the plugin when IMAGESERVING_TEST_TIMING names a file."""
    path = os.environ.get(ENV)
    if not path:
        return
    worker = getattr(config, "workerinput", {}).get("workerid", "main")
    config.pluginmanager.register(TimingPlugin(path, worker), "imageserving-timing")
