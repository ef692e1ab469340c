"""The connection holder: one user's background process that keeps SSH connections between commands (SPEC §9).

    serve(listener, place, idle)     accept, check the peer's uid, run each request; return when idle

A request is a whole fan-out: the client sends the job, the targets and their settings; the
holder runs runner.Fleet's own per-host work with sessions lent from its Kept store, and streams
each host's result back the moment it is known (so the client's progress bar and --timeout work
as without it). The rules it keeps:

- Only its own uid: SO_PEERCRED on every connection, besides the 0700 directory and 0600 socket.
- Host keys as a command checks them: before each request, ssh_config, known_hosts and keys are
  read afresh (Connector.refresh), and every new connection is checked against them. A session
  already kept was checked when it was opened, as with OpenSSH's ControlPersist.
- A connection is kept under every setting that made it: the run's SSH options and the host's
  resolved settings (address, port, user, keys, jump hosts, ProxyCommand, known_hosts files,
  ssh_config file, connect timeout); the environment's part is in the socket's name (place.py).
- Gone after `idle` seconds without a request (the last request's --persist), each connection
  closed after as long unused; `stop` ends it at once.
- The client going away (Ctrl-C) stops hosts not yet begun; those begun finish within their deadline.
"""

from __future__ import annotations

import fcntl
import os
import select
import socket
import sys
import threading
import time
from collections.abc import Callable, Hashable
from typing import Any

from ...errors import ImageServingError
from ..asksocket import SocketAsker
from ..fanout import NOT_BEGUN
from ..jobs import Job
from ..results import HostResult, Result
from ..runner import Fleet
from ..ssh import Connector
from ..target import FleetOptions, Target
from . import starter, wire
from .kept import Kept
from .place import Place

REQUEST_READ_TIMEOUT = 10.0   # a client that connects and says nothing is dropped after this
_local = threading.local()    # the request a worker thread serves (host-key warnings go back to it)


def note(message: str) -> None:
    """One line in the holder's log (its stderr)."""
    sys.stderr.write(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} holder {os.getpid()}: {message}\n")
    sys.stderr.flush()


def _warn(message: str) -> None:
    sink = getattr(_local, "warn", None)
    if sink is not None:
        sink(message)
    else:
        note(message)


class HeldFleet(Fleet):
    """One request's fan-out: runner.Fleet's per-host work, with sessions lent by the holder."""

    def __init__(self, kept: Kept, connector: Connector, conn_key: Hashable, *, forks: int, timeout: float,
                 on_result: Callable[[HostResult], None], started: Callable[[str], None],
                 warn: Callable[[str], None], stop: threading.Event, become_password: str | None = None) -> None:
        super().__init__(connector, forks=forks, timeout=timeout, on_result=on_result, keep_sessions=True,
                         asker=SocketAsker(), become_password=become_password)
        self.kept, self.conn_key, self.ssh = kept, conn_key, connector
        self._started, self._warn, self.stop = started, warn, stop
        self._lent: dict[str, tuple[Hashable, Any]] = {}
        self.reused = 0  # hosts served on a kept connection (the holder's log says it per request)
        self._lent_lock = threading.Lock()

    def key(self, target: Target) -> Hashable:
        if target.connection == "local":
            return (self.conn_key, target.destination)
        return (self.conn_key, self.ssh.settings(target))

    def session(self, target: Target, deadline: float) -> Any:
        key = self.key(target)
        session = self.kept.take(key)
        if session is not None:
            _local.reused = True
            with self._lent_lock:
                self.reused += 1
        else:
            session = self.connector.connect(target, deadline)
            self.kept.lend(session)
        with self._lent_lock:
            self._lent[target.name] = (key, session)
        return session

    def forget(self, name: str) -> None:  # a timeout or a lost connection: never kept
        with self._lent_lock:
            lent = self._lent.pop(name, None)
        if lent is not None:
            self.kept.discard(lent[1])

    def release(self, name: str) -> None:
        self.forget(name)

    def run_one(self, target: Target, job: Job, deadline: float) -> HostResult:
        if self.stop.is_set():
            return HostResult(target.name, Result.SKIPPED, NOT_BEGUN)
        self._started(target.name)
        _local.warn, _local.reused = self._warn, False
        try:
            res = super().run_one(target, job, deadline)
            if (res.result is Result.UNREACHABLE and _local.reused and time.monotonic() < deadline
                    and job.kind.read_only):
                # A kept connection that died unnoticed (its host rebooted, sshd restarted): a
                # read-only question is asked again on a new one, as a command would have.
                self.forget(target.name)
                res = super().run_one(target, job, deadline)
            return res
        finally:
            _local.warn, _local.reused = None, False
            with self._lent_lock:
                lent = self._lent.pop(target.name, None)
            if lent is not None:
                self.kept.give(*lent)

    def close(self) -> None:  # the connections and the connector are the holder's, not the request's
        pass


class Holder:
    """The accept loop and the state shared by requests: kept sessions and one Connector per SSH option set."""

    def __init__(self, listener: socket.socket, place: Place, idle: float,
                 started: starter.Started | None = None) -> None:
        self.listener, self.place, self.idle = listener, place, idle
        self.starter = started  # the warm-command starter this holder forked (starter.py)
        self.kept = Kept(idle)
        self._connectors: dict[Hashable, Connector] = {}
        self._lock = threading.Lock()
        self._active = 0
        self._last = time.monotonic()
        self._inode = os.stat(place.socket).st_ino
        self.served = 0

    # ---------------------------------------------------------------- the loop
    def serve(self) -> None:
        note(f"listening on {self.place.socket}, idle {self.idle:g}s")
        self.listener.setblocking(False)
        while True:
            with self._lock:
                quiet_for = time.monotonic() - self._last
                if self._active == 0 and quiet_for >= self.idle:
                    break
                wait = max(0.05, min(self.idle - quiet_for if self._active == 0 else self.idle, 5.0))
            watched = [self.listener.fileno()] + ([self.starter.gone] if self.starter is not None else [])
            ready, _, _ = select.select(watched, [], [], wait)
            if self.listener.fileno() in ready:
                try:
                    conn, _ = self.listener.accept()
                except (BlockingIOError, InterruptedError):
                    continue
                conn.setblocking(True)
                threading.Thread(target=self._handle, args=(conn,), name="holder-request", daemon=True).start()
            self.kept.reap()
            if self.starter is not None and self.starter.gone in ready:
                how = starter.ended(self.starter, self.place)
                note(f"starter {self.starter.pid} ended ({how}): commands start cold until this holder ends")
                self.starter = None
        note(f"idle for {self.idle:g}s after {self.served} request(s): exiting")
        self.shutdown()

    def shutdown(self) -> None:
        """Takes the socket name away (if still ours), then ends every connection."""
        try:
            with open(self.place.lock, "a") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)
                try:
                    if os.stat(self.place.socket).st_ino == self._inode:
                        os.unlink(self.place.socket)
                except OSError:
                    pass
        except OSError:
            pass
        self.listener.close()
        self.kept.close()
        with self._lock:
            connectors = list(self._connectors.values())
        for connector in connectors:
            connector.close()

    # ---------------------------------------------------------------- one client
    def _handle(self, conn: socket.socket) -> None:
        try:
            uid = wire.peer_uid(conn)
            if uid != os.geteuid():  # the directory and the socket's mode should have stopped it already
                note(f"refused a connection from uid {uid}")
                return
            conn.settimeout(REQUEST_READ_TIMEOUT)
            request = wire.receive(conn)
            conn.settimeout(None)
            op = request.get("op")
            if request.get("v") != wire.VERSION:
                wire.send(conn, {"error": f"protocol version {request.get('v')!r}, holder speaks {wire.VERSION}"})
            elif op == "ping":
                wire.send(conn, {"ok": True, "pid": os.getpid()})
            elif op == "stop":
                note("stop requested")
                wire.send(conn, {"ok": True, "pid": os.getpid()})
                self.shutdown()
                os._exit(0)
            elif op == "run":
                self._run(conn, request)
            else:
                wire.send(conn, {"error": f"unknown op {op!r}"})
        except (OSError, EOFError, ImageServingError) as exc:
            note(f"request dropped: {type(exc).__name__}: {exc}")
        finally:
            conn.close()

    def connector_for(self, options: FleetOptions) -> tuple[Hashable, Connector]:
        """The Connector of these SSH options, its files read afresh for this request."""
        key = (options.private_key, options.ssh_config, options.host_key_policy, options.connect_timeout)
        with self._lock:
            connector = self._connectors.get(key)
            if connector is None:
                connector = self._connectors[key] = Connector(options, warn=_warn)
                return key, connector
        connector.refresh()
        return key, connector

    def _run(self, conn: socket.socket, request: dict[str, Any]) -> None:
        with self._lock:
            self._active += 1
        try:
            self._run_request(conn, request)
        finally:
            with self._lock:
                self._active -= 1
                self._last = time.monotonic()
                self.served += 1

    def _run_request(self, conn: socket.socket, request: dict[str, Any]) -> None:
        try:
            options = wire.options_from(request.get("options"))
            job = wire.job_from(request.get("job"))
            targets = [wire.target_from(t) for t in request.get("targets") or []]
            forks, timeout = int(request["forks"]), float(request["timeout"])
            persist = float(request["persist"])
        except (KeyError, TypeError, ValueError, ImageServingError) as exc:
            wire.send(conn, {"error": f"bad request: {exc}"})
            return
        if persist > 0:
            with self._lock:
                self.idle = self.kept.idle = persist  # the latest command's --persist counts
        stop = threading.Event()
        send_lock = threading.Lock()

        def send(obj: dict[str, Any]) -> None:
            if stop.is_set():
                return
            try:
                with send_lock:
                    wire.send(conn, obj)
            except OSError:
                stop.set()  # the client is gone: begin no more hosts

        def watch_client() -> None:  # EOF from the client (Ctrl-C, killed) stops hosts not yet begun
            try:
                conn.recv(1)
            except OSError:
                pass
            stop.set()

        threading.Thread(target=watch_client, name="holder-client", daemon=True).start()
        try:
            conn_key, connector = self.connector_for(options)
        except ImageServingError as exc:  # e.g. --private-key names no file: as a command would say
            send({"error": str(exc)})
            return
        fleet = HeldFleet(self.kept, connector, conn_key, forks=forks, timeout=timeout,
                          on_result=lambda res: send({"result": wire.result_doc(res)}),
                          started=lambda name: send({"started": name}),
                          warn=lambda text: send({"warn": text}), stop=stop)
        began = time.monotonic()
        results = fleet.run(targets, job)
        send({"done": True})
        ok = sum(1 for r in results if r.result is Result.OK)
        note(f"{job.kind.value} on {len(targets)} host(s) in {time.monotonic() - began:.3f}s: {ok} ok, "
             f"{fleet.reused} on kept connections")


def serve(listener: socket.socket, place: Place, idle: float) -> None:
    """The holder's life: its starter forked (before any thread), named for `ps`/`top`, its fd limit raised
    (a connection is several fds), then serving."""
    started = starter.start(place)
    starter.name_process(b"isf-holder")
    from ..fdlimit import raise_fd_limit

    raise_fd_limit()
    Holder(listener, place, idle, started).serve()


def main(argv: list[str]) -> None:
    """`python -m imageserving_fleet.fleet.persist.holder FD IDLE`: the holder started as a new program
    (when the command could not fork itself), on the listening socket it inherited."""
    fd, idle = int(argv[0]), float(argv[1])
    listener = socket.socket(fileno=fd)
    place = Place.of()
    try:  # started with a session of its own (client._spawn); this is for anyone starting it by hand
        os.setsid()
    except OSError:
        pass
    try:
        serve(listener, place, idle)
    finally:
        os._exit(0)


if __name__ == "__main__":
    main(sys.argv[1:])
