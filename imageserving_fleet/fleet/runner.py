"""Fan one agent command out to many hosts at once, with a per-host deadline that always holds.

A bounded set of worker threads (--forks) each takes a host, connects (or reuses the host's
connection, ssh/pool.py), runs the agent (its output framed, framing.py) or, for a status, asks
the supervisor over its socket (asksocket.py), and classifies what it said. The scheduler, not the worker, owns the
clock: when a host's deadline passes, its result is written as a timeout, its connection is
aborted, and its slot goes to the next host even if the worker thread is still stuck somewhere
(a DNS lookup cannot be interrupted). Nothing a host does can hold the report past --timeout.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ..errors import UnreachableError
from . import framing, remote
from .asksocket import SocketAsker
from .results import HostResult, Result, classify
from .ssh.pool import Pool
from .target import Target
from .transport import Connector, Session

MAX_OUTPUT = 16 * 2**20  # a status document is a few kB; more is a lying host


@dataclass(frozen=True)
class Job:
    """What to run: the agent arguments and the name of the command for classification."""

    command: str               # "status", "start", "stop", "restart", "version"
    args: tuple[str, ...]      # agent arguments, e.g. ("restart", "is", "--json")


class Interrupted(Exception):
    """Ctrl-C during a run; carries the results gathered so far (the others marked)."""

    def __init__(self, results: list[HostResult]) -> None:
        super().__init__("interrupted")
        self.results = results


class Fleet:
    """Runs jobs on targets in parallel; keeps one connection per host for the whole run."""

    def __init__(self, connector: Connector, *, forks: int, timeout: float,
                 become_password: str | None = None,
                 on_result: Callable[[HostResult], None] | None = None,
                 keep_sessions: bool = True, asker: SocketAsker | None = None) -> None:
        self.connector, self.forks, self.timeout = connector, max(1, forks), timeout
        self.asker = asker if asker is not None else SocketAsker()  # status over the socket
        self.become_password = become_password
        self.on_result = on_result
        # False for one-job commands (status, ping...): a host's connection ends with its job, so a
        # 500-host run holds --forks connections, not 500 (fds, remote sshd processes, and paramiko
        # transport threads that each wake 10 times a second while idle).
        self.keep_sessions = keep_sessions
        self.pool = Pool(connector)  # kept connections: reconnect with backoff, idle close, quiet

    # -------------------------------------------------------------- one host
    def command_for(self, target: Target, job: Job) -> tuple[str, bytes | None]:
        if target.become and self.become_password is not None:
            return remote.with_password(target, job.args), (self.become_password + "\n").encode()
        return remote.agent_command(target, job.args), None

    def session(self, target: Target, deadline: float) -> Session:
        return self.pool.get(target, deadline)  # type: ignore[no-any-return]

    def forget(self, name: str) -> None:
        """Drops a host's connection (after a timeout or a lost connection): the next job reconnects."""
        self.pool.lost(name)

    def release(self, name: str) -> None:
        """Ends a host's connection politely once its work is done (after its result is reported)."""
        self.pool.release(name)

    def run_one(self, target: Target, job: Job, deadline: float) -> HostResult:
        started = time.monotonic()
        try:
            session = self.session(target, deadline)
            if job.command == "status":
                asked = self.asker.ask(target, job.args, session, deadline, started)
                if asked is not None:
                    return asked
            command, stdin = self.command_for(target, job)
            out = framing.run(session, command, stdin=stdin, timeout=max(0.01, deadline - time.monotonic()),
                              max_output=MAX_OUTPUT)
        except UnreachableError as exc:
            self.forget(target.name)
            reason = exc.reason + (f": {exc.detail}" if exc.detail else "")
            # A flood of output comes from a host we did reach: the agent there failed, not the network.
            verdict = Result.FAILED if exc.reason == "output too large" else Result.UNREACHABLE
            return HostResult(target.name, verdict, reason, elapsed_s=time.monotonic() - started)
        if job.command == "version":
            return _version_result(target.name, out.exit_code, out.stdout, out.stderr, time.monotonic() - started)
        res = classify(target.name, job.command, out.exit_code, out.stdout, out.stderr, time.monotonic() - started)
        return self.asker.learned(target, res, job.command)

    # ---------------------------------------------------------------- many
    def run(self, targets: Sequence[Target], job: Job, timeout: float | None = None) -> list[HostResult]:
        """Runs the job on every target; returns results in the targets' order.

        Raises Interrupted (with the partial results) on Ctrl-C.
        """
        limit = self.timeout if timeout is None else timeout
        done: queue.SimpleQueue[tuple[str, HostResult]] = queue.SimpleQueue()
        pending = deque(targets)
        running: dict[str, float] = {}  # host -> deadline
        results: dict[str, HostResult] = {}

        def work(target: Target, deadline: float) -> None:
            try:
                res = self.run_one(target, job, deadline)
            except Exception as exc:  # a bug must cost one host, not the run
                res = HostResult(target.name, Result.FAILED, f"internal error: {type(exc).__name__}: {exc}")
            done.put((target.name, res))
            if not self.keep_sessions:
                self.release(target.name)

        def finish(name: str, res: HostResult) -> None:
            if name in results:
                return  # a late answer after its deadline was already reported
            running.pop(name, None)
            results[name] = res
            if self.on_result:
                self.on_result(res)

        try:
            while pending or running:
                while pending and len(running) < self.forks:
                    target = pending.popleft()
                    deadline = time.monotonic() + limit
                    running[target.name] = deadline
                    threading.Thread(target=work, args=(target, deadline), daemon=True,
                                     name=f"host {target.name}").start()
                wait = max(0.0, min(running.values()) - time.monotonic()) if running else 0.0
                try:
                    name, res = done.get(timeout=wait + 0.05)
                    if name in running:
                        finish(name, res)
                except queue.Empty:
                    pass
                now = time.monotonic()
                for name, deadline in list(running.items()):
                    if now >= deadline + 0.05:
                        self.forget(name)
                        finish(name, HostResult(name, Result.UNREACHABLE,
                                                f"timeout: no answer within --timeout {limit:g}s", elapsed_s=limit))
        except KeyboardInterrupt:
            for name in list(running):
                self.forget(name)
                finish(name, HostResult(name, Result.FAILED, "interrupted while running"))
            for target in pending:
                results[target.name] = HostResult(target.name, Result.SKIPPED, "interrupted before it started")
            raise Interrupted([results[t.name] for t in targets]) from None
        return [results[t.name] for t in targets]

    def close(self) -> None:
        self.pool.close()


def _version_result(host: str, code: int, stdout: bytes, stderr: bytes, elapsed: float) -> HostResult:
    if code == remote.AGENT_MISSING_EXIT:
        return HostResult(host, Result.UNREACHABLE, "agent missing: imageserving not found", elapsed_s=elapsed)
    text = stdout.decode(errors="replace").strip()
    if code != 0 or not text.startswith("imageserving "):
        err = stderr.decode(errors="replace").strip().splitlines()
        return HostResult(host, Result.FAILED, f"agent error (exit {code})" + (f": {err[-1][:200]}" if err else ""),
                          elapsed_s=elapsed)
    version = text.split()[1]
    return HostResult(host, Result.OK, "", elapsed_s=elapsed, extra={"agent_version": version})
