"""Checks of a component: tcp connect, http GET or a command, for readiness and for liveness alike.

Every check goes through one interface, `Check`: it is started, polled with the monotonic time,
and ends with a Verdict, or a timeout once its deadline passes: a check that hangs costs its
timeout, never the supervisor's loop. tcp and http checks run in a short-lived daemon thread that
wakes the loop when done (`wake`); a command check is a child process in its own session that the
supervisor reaps (`reaped`) and that is SIGKILLed with its group at the deadline. The http check
speaks HTTP/1.0 over a plain socket: http.client would pull ssl and email into the long-lived
supervisor (3 MB of RSS) for one status line.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass

from .config import ReadyCheck
from .httpline import status_line, status_text, succeeded

PROBE_TIMEOUT = 2.0   # a readiness check's own timeout (it is repeated until ready_timeout)
INTERVAL = 0.1        # seconds between readiness checks of a starting component
COMMAND_TIMEOUT = 10.0


class _CheckFailed(Exception):
    """One check said no; str() is what an operator reads in last_health_error."""


@dataclass(frozen=True)
class Verdict:
    ok: bool
    error: str = ""


def probe_tcp(host: str, port: int, timeout: float = PROBE_TIMEOUT) -> None:
    """Connects once; raises _CheckFailed when the port does not accept."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return
    except TimeoutError:
        raise _CheckFailed(f"tcp {host}:{port}: no connection within {timeout:g}s") from None
    except OSError as exc:
        raise _CheckFailed(f"tcp {host}:{port}: {exc.strerror or exc}") from None


def probe_http(url: str, timeout: float = PROBE_TIMEOUT) -> None:
    """GETs the URL; a 2xx or 3xx answer passes, anything else raises _CheckFailed."""
    try:
        fields = status_line(url, "GET", timeout=timeout)
    except TimeoutError:
        raise _CheckFailed(f"http {url}: no answer within {timeout:g}s") from None
    except OSError as exc:
        raise _CheckFailed(f"http {url}: {exc.strerror or exc}") from None
    if not succeeded(fields, b"23"):
        raise _CheckFailed(f"http {url}: {status_text(fields)}")


class Check:
    """One run of a check, started at `now`; `poll()` returns its Verdict once it has one."""

    def __init__(self, spec: ReadyCheck, timeout: float, now: float, *, cwd: str | None = None,
                 wake: Callable[[], None] | None = None) -> None:
        self.spec, self.timeout, self.deadline = spec, timeout, now + timeout
        self.pid: int | None = None
        self._verdict: Verdict | None = None
        self._wake = wake
        if spec.kind == "command":
            try:
                proc = subprocess.Popen(list(spec.argv), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL, start_new_session=True, cwd=cwd or None)
                proc.returncode = 0  # reaped by the supervisor's waitpid(-1), not by Popen
                self.pid = proc.pid
            except OSError as exc:
                self._verdict = Verdict(False, f"command {spec.argv[0]}: {exc.strerror or exc}")
        else:
            threading.Thread(target=self._run, name=f"check {spec.describe()}", daemon=True).start()

    def _run(self) -> None:
        c = self.spec
        try:
            probe_tcp(c.host, c.port, self.timeout) if c.kind == "tcp" else probe_http(c.url, self.timeout)
            verdict = Verdict(True)
        except _CheckFailed as exc:
            verdict = Verdict(False, str(exc))
        self._verdict = verdict
        if self._wake is not None:
            self._wake()

    def reaped(self, status: int) -> None:
        """The supervisor collected our command's exit status."""
        self.pid = None
        if self._verdict is not None:
            return
        if os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0:
            self._verdict = Verdict(True)
        else:
            how = f"exit {os.WEXITSTATUS(status)}" if os.WIFEXITED(status) else f"signal {os.WTERMSIG(status)}"
            self._verdict = Verdict(False, f"command {' '.join(self.spec.argv)[:80]}: {how}")

    def poll(self, now: float) -> Verdict | None:
        """Takes the monotonic time; returns the verdict, a timeout past the deadline, or None (still out)."""
        if self._verdict is None and now >= self.deadline:
            self.cancel()
            self._verdict = Verdict(False, f"{self.spec.describe()}: no answer within {self.timeout:g}s")
        return self._verdict

    def cancel(self) -> None:
        """Kills a command check's whole group; a thread check ends by its socket timeout."""
        if self.pid is not None:
            try:
                os.killpg(self.pid, signal.SIGKILL)
            except OSError:
                pass


class Checks:
    """Every outstanding check of a supervisor, by (component, purpose), with the pid each is about.

    `purpose` is "ready" (while STARTING) or "health" (while RUNNING). A verdict about a process
    that is gone by the time it arrives is dropped by the caller (the pid differs).
    """

    def __init__(self, wake: Callable[[], None] | None = None) -> None:
        self.wake = wake
        self.out: dict[tuple[str, str], tuple[Check, int | None]] = {}
        self.next: dict[tuple[str, str], float] = {}

    def start_due(self, cid: str, purpose: str, spec: ReadyCheck, timeout: float, every: float, now: float,
                  pid: int | None, cwd: str | None) -> None:
        """Starts a check unless one is out or the last one began less than `every` ago."""
        key = (cid, purpose)
        if key in self.out or now < self.next.get(key, 0.0):
            return
        self.next[key] = now + every
        self.out[key] = (Check(spec, timeout, now, cwd=cwd, wake=self.wake), pid)

    def finished(self, now: float) -> list[tuple[str, str, int | None, Verdict]]:
        """Takes the monotonic time; returns (component, purpose, pid, verdict) of every check that ended."""
        done = []
        for key, (check, pid) in list(self.out.items()):
            verdict = check.poll(now)
            if verdict is not None:
                del self.out[key]
                done.append((key[0], key[1], pid, verdict))
        return done

    def reaped(self, pid: int, status: int) -> None:
        for check, _ in self.out.values():
            if check.pid == pid:
                check.reaped(status)

    def pids(self) -> set[int]:
        """Pids of the command checks out now (our children, none of them a component's)."""
        return {check.pid for check, _ in self.out.values() if check.pid is not None}

    def spawned(self, cid: str, now: float) -> None:
        """A new process: checks about the one before are cancelled; readiness now, liveness once RUNNING."""
        for key in [k for k in self.out if k[0] == cid]:
            self.out.pop(key)[0].cancel()
        self.next[(cid, "ready")] = now
        self.next.pop((cid, "health"), None)

    def forget(self, cid: str) -> None:
        for key in [k for k in self.next if k[0] == cid]:
            del self.next[key]

    def wakeups(self, running_with_health: list[str], now: float) -> list[float]:
        """When the loop must look again: check deadlines, and the next liveness check of each RUNNING one."""
        times = [check.deadline for check, _ in self.out.values()]
        times += [self.next.get((cid, "health"), now) for cid in running_with_health
                  if (cid, "health") not in self.out]
        return times
