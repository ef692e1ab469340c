"""The command's side of the connection holder: HolderFleet, runner.Fleet's run() through the holder.

    with HolderFleet(options, forks=, timeout=, persist=, direct=) as fleet:
        fleet.run(targets, job) -> list[HostResult]       through the holder, else direct
    stop_holder() -> int | None                          `persist stop`: the pid it ended, None if none ran

The first command finds no holder and starts one: under a lock (two commands at once start one
holder), it binds the socket itself, then forks twice; the grandchild, detached (its own session,
stdio on /dev/null and its log), serves on that socket while the command goes on as a client of
it. The command then asks, as every later one does, and reads each host's result as it comes.

Never a wrong answer: whatever goes wrong with the holder costs the command a direct run.
- No holder, one that cannot start, a request it refuses: the whole job runs direct.
- It dies or stalls mid-run (no frame within --timeout and a margin: every host answers within
  its deadline): hosts not begun run direct; hosts begun are asked again direct for read-only
  jobs (status, ping, logs) within what is left of their own deadline, and for actions reported
  failed "connection holder lost mid-command; state unknown" (the cluster's rule for a lost
  worker: Kind.read_only), never done twice.
- Ctrl-C: the socket closes, the holder begins no more hosts, Interrupted as in runner.Fleet.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from types import TracebackType
from typing import Any, Protocol

from ...errors import HolderError
from ..fanout import cut_short
from ..jobs import Job
from ..results import HostResult, Result
from ..target import FleetOptions, Target
from . import wire
from .place import Place

log = logging.getLogger(__name__)

STALL_MARGIN = 5.0          # seconds past --timeout without a frame before the holder counts as lost
CONNECT_TIMEOUT = 2.0       # to reach (or hear from) a holder that is there at all
HOLDER_LOST = "connection holder lost mid-command; state unknown"
MIN_LEFT = 0.05             # seconds of a host's deadline worth a direct try after the holder lost it


class Runs(Protocol):
    """What HolderFleet falls back to: runner.Fleet (made only when needed)."""

    on_result: Callable[[HostResult], None] | None

    def run(self, targets: Sequence[Target], job: Job, timeout: float | None = None) -> list[HostResult]: ...
    def close(self) -> None: ...


class HolderFleet:
    """Runs jobs through the user's connection holder; same run(), on_result, timeout and close() as runner.Fleet."""

    def __init__(self, options: FleetOptions, *, forks: int, timeout: float, persist: float,
                 direct: Callable[[], Runs], on_result: Callable[[HostResult], None] | None = None,
                 place: Place | None = None) -> None:
        self.options, self.forks, self.timeout, self.persist = options, max(1, forks), timeout, persist
        self.on_result = on_result
        self._make_direct = direct
        self._direct: Runs | None = None
        self._place = place
        self._ready: socket.socket | None = None  # connected on entry, for the first run
        self._unusable = False
        self.through_holder = 0   # hosts answered by the holder (tests and -v read it)

    def __enter__(self) -> HolderFleet:
        # Reach (or start) the holder now, before the command starts any thread (a progress bar's):
        # a process without other threads can fork the holder off itself, already imported.
        try:
            self._ready = self._connect()
        except HolderError as exc:
            log.debug("no connection holder: %s; connecting directly", exc)
            self._unusable = True
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        if self._ready is not None:
            self._ready.close()
            self._ready = None
        if self._direct is not None:
            self._direct.close()

    def direct(self) -> Runs:
        if self._direct is None:
            self._direct = self._make_direct()
        return self._direct

    # ---------------------------------------------------------------- one run
    def run(self, targets: Sequence[Target], job: Job, timeout: float | None = None) -> list[HostResult]:
        limit = self.timeout if timeout is None else timeout
        if not targets:
            return []
        if not wire.sendable(job) or self._unusable:
            return self._run_direct(targets, job, limit)
        sock, self._ready = self._ready, None
        if sock is None:
            try:
                sock = self._connect()
            except HolderError as exc:
                log.debug("no connection holder: %s; connecting directly", exc)
                self._unusable = True
                return self._run_direct(targets, job, limit)
        with sock:
            got, started, complete = self._ask(sock, targets, job, limit)
        log.debug("%d of %d host(s) answered by the connection holder (%s)", len(got), len(targets),
                  self.place().socket)
        if complete:
            return [got[t.name] for t in targets]
        return self._recover(targets, job, limit, got, started)

    def _ask(self, sock: socket.socket, targets: Sequence[Target], job: Job, limit: float
             ) -> tuple[dict[str, HostResult], dict[str, float], bool]:
        """Sends the request and reads results as they come: (results, begun hosts -> when, all answered)."""
        got: dict[str, HostResult] = {}
        started: dict[str, float] = {}
        wanted = {t.name for t in targets}
        request = {"v": wire.VERSION, "op": "run", "persist": self.persist, "options": wire.options_doc(self.options),
                   "forks": self.forks, "timeout": limit, "job": wire.job_doc(job),
                   "targets": [wire.target_doc(t) for t in targets]}
        try:
            sock.settimeout(limit + STALL_MARGIN)
            wire.send(sock, request)
            while True:
                msg = wire.receive(sock)
                if "result" in msg:
                    res = wire.result_from(msg["result"])
                    if res.host in wanted and res.host not in got:
                        got[res.host] = res
                        self.through_holder += 1
                        if self.on_result:
                            self.on_result(res)
                elif "started" in msg:
                    started.setdefault(str(msg["started"]), time.monotonic())
                elif "warn" in msg:
                    sys.stderr.write(str(msg["warn"]) + "\n")
                elif "done" in msg:
                    return got, started, len(got) == len(wanted)
                elif "error" in msg:
                    log.debug("the connection holder refused the request: %s", msg["error"])
                    return got, started, False
        except KeyboardInterrupt:
            sock.close()  # the holder sees it and begins no more hosts

            def record(res: HostResult) -> None:
                got[res.host] = res
                if self.on_result:
                    self.on_result(res)

            raise cut_short(targets, got, [name for name in started if name not in got], record) from None
        except (OSError, EOFError, HolderError) as exc:
            log.debug("the connection holder went away mid-command (%s: %s)", type(exc).__name__, exc)
            return got, started, False

    def _recover(self, targets: Sequence[Target], job: Job, limit: float, got: dict[str, HostResult],
                 started: dict[str, float]) -> list[HostResult]:
        """The holder answered only some hosts: the rest direct, or failed where asking twice could act twice."""
        results = dict(got)
        fresh = [t for t in targets if t.name not in got and t.name not in started]
        begun = [t for t in targets if t.name not in got and t.name in started]
        retry: list[Target] = []
        for t in begun:
            if not job.kind.read_only:
                results[t.name] = HostResult(t.name, Result.FAILED, HOLDER_LOST)
            elif limit - (time.monotonic() - started[t.name]) > MIN_LEFT:
                retry.append(t)
            else:  # its deadline passed while the holder had it: what a direct run would have said
                results[t.name] = HostResult(t.name, Result.UNREACHABLE, f"timeout: no answer within --timeout "
                                             f"{limit:g}s", elapsed_s=limit)
            if t.name in results and self.on_result:
                self.on_result(results[t.name])
        if fresh:
            for res in self._run_direct(fresh, job, limit):
                results[res.host] = res
        if retry:  # a host begun in the holder keeps its deadline: what is left of it
            left = min(limit - (time.monotonic() - started[t.name]) for t in retry)
            for res in self._run_direct(retry, job, max(MIN_LEFT, left)):
                results[res.host] = res
        return [results[t.name] for t in targets]

    def _run_direct(self, targets: Sequence[Target], job: Job, limit: float) -> list[HostResult]:
        fleet = self.direct()
        fleet.on_result = self.on_result
        return fleet.run(targets, job, limit)

    # ---------------------------------------------------------------- reaching the holder
    def place(self) -> Place:
        if self._place is None:
            self._place = Place.of()
        return self._place

    def _connect(self) -> socket.socket:
        """A connection to this user's holder, started if none runs; raises HolderError."""
        place = self.place()
        try:
            return connect(place)
        except HolderError:
            pass
        with _locked(place.lock) as lock_fd:
            try:
                return connect(place)  # another command started it meanwhile
            except HolderError:
                pass
            listener = listen(place)
            try:
                start(listener, place, self.persist, inherited=(lock_fd,))
            finally:
                listener.close()
        return connect(place)


def connect(place: Place, timeout: float = CONNECT_TIMEOUT) -> socket.socket:
    """A connection to the holder at `place`, checked to be this user's own; raises HolderError."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        sock.connect(place.socket)
        if wire.peer_uid(sock) != os.geteuid():
            raise HolderError(f"{place.socket} is served by another user")
        return sock
    except OSError as exc:
        sock.close()
        raise HolderError(f"{place.socket}: {exc.strerror or exc}") from None
    except HolderError:
        sock.close()
        raise


def listen(place: Place) -> socket.socket:
    """The holder's socket, bound 0600 at the place's path (a stale one, whose holder is gone, replaced)."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(place.socket)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)
    try:
        sock.bind(place.socket)
        os.chmod(place.socket, 0o600)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise HolderError(f"cannot listen on {place.socket}: {exc.strerror or exc}") from None
    finally:
        os.umask(old)
    return sock


def start(listener: socket.socket, place: Place, idle: float, inherited: Sequence[int] = ()) -> None:
    """Starts the holder on `listener`, detached: forked twice (or a new program if threads run here).

    `inherited`: this process's descriptors the holder must not keep (the start lock: a flock
    lives as long as any copy of its descriptor).
    """
    log_fd = os.open(place.log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        if threading.active_count() > 1:  # forking a threaded process copies locks held by others
            _spawn(listener, idle, log_fd)
            return
        pid = os.fork()
        if pid == 0:  # the first child: a new session, then the holder as its child, then gone
            try:
                os.setsid()
                if os.fork() == 0:
                    for fd in inherited:
                        os.close(fd)
                    _become_holder(listener, place, idle, log_fd)
            finally:
                os._exit(0)
        os.waitpid(pid, 0)
    finally:
        os.close(log_fd)


def _become_holder(listener: socket.socket, place: Place, idle: float, log_fd: int) -> None:
    """In the grandchild: stdio away from the command's terminal and pipes, then serve. Never returns."""
    try:
        null = os.open(os.devnull, os.O_RDWR)
        os.dup2(null, 0)
        os.dup2(null, 1)
        os.dup2(log_fd, 2)
        os.close(null)
        os.close(log_fd)
        import signal

        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        logging.getLogger("imageserving_fleet").handlers.clear()
        from .holder import serve

        serve(listener, place, idle)
    except BaseException as exc:  # noqa: BLE001 - whatever happens here must not return into the command
        with contextlib.suppress(Exception):
            sys.stderr.write(f"holder: {type(exc).__name__}: {exc}\n")
    finally:
        os._exit(0)


def _spawn(listener: socket.socket, idle: float, log_fd: int) -> None:
    import subprocess

    subprocess.Popen([sys.executable, "-m", "imageserving_fleet.fleet.persist.holder", str(listener.fileno()),
                      repr(idle)], pass_fds=(listener.fileno(),), stdin=subprocess.DEVNULL,
                     stdout=subprocess.DEVNULL, stderr=log_fd, start_new_session=True)


@contextlib.contextmanager
def _locked(path: str) -> Iterator[int]:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield fd
    finally:
        os.close(fd)


def stop_holder(place: Place | None = None) -> int | None:
    """Ends this user's holder now; returns its pid, or None when none was running."""
    place = place or Place.of()
    try:
        sock = connect(place)
    except HolderError:
        return None
    with sock:
        try:
            wire.send(sock, {"v": wire.VERSION, "op": "stop"})
            answer: dict[str, Any] = wire.receive(sock)
        except (OSError, EOFError, HolderError):
            return None
    pid = answer.get("pid")
    return int(pid) if isinstance(pid, int) else None
