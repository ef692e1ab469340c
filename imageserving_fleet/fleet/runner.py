"""Fan one job out to many hosts at once, with a per-host deadline that always holds.

    with Fleet(connector, forks=, timeout=) as fleet:    owns the connector: closed on exit
        results = fleet.run(targets, job)                 one HostResult per target, in order

A bounded set of worker threads (--forks) each takes a host, connects (or reuses the host's
connection, ssh/pool.py), runs the job (the agent's output framed, framing.py; a status asked of
the supervisor over its socket where it can be, asksocket.py) and classifies what came back. Deadlines have one mechanism, the SSH
layer's watchdog (ssh/deadline.py): the connect and the command each close what they wait on
when the host's deadline passes, and one more alarm per host, a moment later, writes the host's
result as a timeout and frees its slot even if the worker thread is still stuck somewhere (a DNS
lookup cannot be interrupted). Nothing a host does can hold the report past --timeout.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from types import TracebackType

from ..errors import HostError, ImageServingError, OutputTooLargeError, UnreachableError
from . import framing, remote
from .asksocket import SocketAsker
from .fanout import cut_short
from .jobs import Job, Kind
from .logs import parse_logs
from .results import HostResult, Result, classify, version_result
from .ssh import MAX_OUTPUT, Connecting, Session
from .ssh.deadline import WATCHDOG, Alarm
from .ssh.pool import Pool
from .target import Target

# How long after a host's deadline its worker may still report before the fan-out writes the
# timeout itself: the worker's own message ("command did not finish within 5s") says more.
_GRACE = 0.05

def requested_by() -> str:
    """`user@controller`: who runs this fleet command, as each host's supervisor log names them."""
    import getpass
    import socket

    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    return f"{user}@{socket.gethostname()}"


class Fleet:
    """Runs jobs on targets in parallel (a fanout.FanOut); owns its connector and one connection per host.

    Use it as a context manager (or call close()): leaving it ends every connection it opened.
    """

    def __init__(self, connector: Connecting, *, forks: int, timeout: float,
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
        self.requested_by = requested_by()  # named in each host's supervisor log for a change

    def __enter__(self) -> Fleet:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    # -------------------------------------------------------------- one host
    def command_for(self, target: Target, job: Job) -> tuple[str, bytes | None]:
        asker = None if job.kind.read_only else self.requested_by
        if target.become and self.become_password is not None:  # sudo -S reads one line, the agent the rest
            return (remote.with_password(target, job.args, asker),
                    (self.become_password + "\n").encode() + (job.stdin or b""))
        return remote.agent_command(target, job.args, asker), job.stdin

    def session(self, target: Target, deadline: float) -> Session:
        return self.pool.get(target, deadline)  # type: ignore[no-any-return]

    def forget(self, name: str) -> None:
        """Drops a host's connection (after a timeout or a lost connection): the next job reconnects."""
        self.pool.lost(name)

    def release(self, name: str) -> None:
        """Ends a host's connection politely once its work is done (after its result is reported)."""
        self.pool.release(name)

    def run_one(self, target: Target, job: Job, deadline: float) -> HostResult:
        """The job on one host, by `deadline` (monotonic); every failure is the host's result."""
        started = time.monotonic()
        try:
            session = self.session(target, deadline)
            if job.kind is Kind.STATUS:
                asked = self.asker.ask(target, job.args, session, deadline, started)
                if asked is not None:
                    return asked
            if job.step is not None:
                stdin = (self.become_password + "\n").encode() if target.become and self.become_password else None
                res = job.step(target, session, deadline, stdin)
                return dataclasses.replace(res, elapsed_s=res.elapsed_s + time.monotonic() - started)
            command, stdin = self.command_for(target, job)
            out = framing.run(session, command, stdin=stdin, timeout=max(0.01, deadline - time.monotonic()),
                              max_output=MAX_OUTPUT)
        except (UnreachableError, OutputTooLargeError) as exc:
            self.forget(target.name)
            # A flood of output comes from a host we did reach: the agent there failed, not the network.
            verdict = Result.UNREACHABLE if isinstance(exc, UnreachableError) else Result.FAILED
            return HostResult(target.name, verdict, _reason(exc), elapsed_s=time.monotonic() - started)
        except HostError as exc:
            return HostResult(target.name, Result.FAILED, _reason(exc), elapsed_s=time.monotonic() - started)
        except ImageServingError as exc:
            return HostResult(target.name, Result.FAILED, str(exc), elapsed_s=time.monotonic() - started)
        elapsed = time.monotonic() - started
        if job.kind is Kind.LOGS:
            return parse_logs(target.name, out.exit_code, out.stdout, out.stderr, elapsed)
        if job.kind is Kind.VERSION:
            return version_result(target.name, out.exit_code, out.stdout, out.stderr, elapsed)
        res = classify(target.name, job.kind.verdict, out.exit_code, out.stdout, out.stderr, elapsed)
        return self.asker.learned(target, res, job.kind)

    # ---------------------------------------------------------------- many
    def run(self, targets: Sequence[Target], job: Job, timeout: float | None = None) -> list[HostResult]:
        """Runs the job on every target; returns results in the targets' order.

        At most `forks` hosts at once, each within `timeout` (default: the fleet's). Raises
        fanout.Interrupted (with the partial results) on Ctrl-C.
        """
        limit = self.timeout if timeout is None else timeout
        done: queue.SimpleQueue[tuple[str, HostResult]] = queue.SimpleQueue()
        pending = deque(targets)
        running: dict[str, Alarm] = {}  # host -> the alarm that writes its timeout
        results: dict[str, HostResult] = {}

        def work(target: Target, deadline: float) -> None:
            try:
                res = self.run_one(target, job, deadline)
            except Exception as exc:  # a bug must cost one host, not the run
                res = HostResult(target.name, Result.FAILED, f"internal error: {type(exc).__name__}: {exc}")
            done.put((target.name, res))
            if not self.keep_sessions:
                self.release(target.name)

        def expire(name: str) -> None:  # on the watchdog's thread: the worker is late or stuck
            self.forget(name)
            done.put((name, HostResult(name, Result.UNREACHABLE, f"timeout: no answer within --timeout {limit:g}s",
                                       elapsed_s=limit)))

        try:
            while pending or running:
                while pending and len(running) < self.forks:
                    target = pending.popleft()
                    deadline = time.monotonic() + limit
                    running[target.name] = WATCHDOG.at(deadline + _GRACE, functools.partial(expire, target.name))
                    threading.Thread(target=work, args=(target, deadline), daemon=True,
                                     name=f"host {target.name}").start()
                name, res = done.get()
                alarm = running.pop(name, None)
                if alarm is None:
                    continue  # the second of a late answer and its timeout
                alarm.cancel()
                results[name] = res
                if self.on_result:
                    self.on_result(res)
        except KeyboardInterrupt:
            for name, alarm in running.items():
                alarm.cancel()
                self.forget(name)

            def record(res: HostResult) -> None:
                results[res.host] = res
                if self.on_result and res.result is Result.FAILED:  # a host cut mid-job has ended
                    self.on_result(res)

            raise cut_short(targets, results, list(running), record) from None
        return [results[t.name] for t in targets]

    def close(self) -> None:
        """Ends every connection of this fleet, then its connector (and its jump hosts)."""
        self.pool.close()
        self.connector.close()


def _reason(exc: HostError) -> str:
    return str(exc.reason) + (f": {exc.detail}" if exc.detail else "")
