"""The warm-command starter: a process with the controller already imported that forks one child per command.

    start(place) -> Started | None    in the holder, before it starts any thread: forks the starter
    ended(started, place) -> str|None in the holder: how the starter ended, None while it runs
    serve(listener, lifeline, ...)    the starter's loop (until the holder's end of `lifeline` closes)

A `status` inside the --persist window is a few milliseconds of work for the holder and a few
hundred of starting for the command (the interpreter, then YAML, the inventory code, rich, the
fan-out). The starter pays that once. The command's client (thin.py) connects to place.starter,
hands over its argv, working directory, environment, umask and standard streams (SCM_RIGHTS),
and the child forked for it becomes that command: same directory, environment and umask, the
client's streams as its own 0, 1 and 2 (so a terminal is a terminal: width, colour, the progress
bar), then the very code the command would run itself (quick.run), which asks the holder like any
command. The client gets the child's pid first (it passes Ctrl-C on), then its exit code.

Rules:
- Only this uid (SO_PEERCRED), on a 0600 socket in the holder's 0700 directory: a child runs
  with the environment it is given, which only the same user may give.
- The starter is forked before the holder's first thread (a fork copies only the calling thread,
  and any lock another thread held), and forks its children from its own single thread.
- Every child is a new fork: nothing one command changes (environment, directory, options,
  consoles) is seen by the next.
- It ends when the holder does (EOF on the lifeline pipe); commands under way finish on their own
  (a child whose holder is gone connects directly, as any command would). A starter that dies
  first is seen at once by the holder (EOF on `gone`), reaped and logged, and its socket name
  taken away: commands start cold.
- One request at a time: reading one is a frame sent right after connect (REQUEST_TIMEOUT bounds
  a client that connected and stalled); the command itself runs in the child.
- The child's command is named (ENTRY), not imported by this module, as an entry point is: the
  commands sit above the holder in the import graph (tests/test_imports.py).
"""

from __future__ import annotations

import contextlib
import importlib
import os
import select
import signal
import socket
import sys
import threading
import time
import traceback
from dataclasses import dataclass
from typing import Any

from . import thin
from .place import Place

REQUEST_TIMEOUT = 5.0       # a client that connects and sends nothing is dropped after this (it sends at once)
REAP_EVERY = 1.0            # seconds between looks for ended children when nothing arrives
# The command a child runs: its run(argv) -> exit code, or None for "not the plain form" (main.py's quick path).
ENTRY = "imageserving_fleet.fleet.quick"
RENDER = "imageserving_fleet.fleet.render"   # its reset_consoles(): stdout's and stderr's, made again
# What a status or ping imports (quick.run and what it calls), imported once by the starter.
PRELOAD = (ENTRY, "imageserving_fleet.fleet.commands.status",
           "imageserving_fleet.fleet.commands.run", "imageserving_fleet.fleet.context",
           "imageserving_fleet.fleet.record", RENDER,
           "imageserving_fleet.fleet.persist.client", "imageserving_fleet.fleet.runner",
           "imageserving_fleet.fleet.ssh", "imageserving_fleet.argv", "json")


@dataclass(frozen=True)
class Started:
    """The holder's hold on its starter: its pid, and a pipe's read end that reads EOF once it is gone."""

    pid: int
    gone: int


def start(place: Place) -> Started | None:
    """Binds place.starter and forks the starter off this (single-threaded) process; None if it
    could not listen. Never raises.

    Two pipes tie their lives: the holder keeps `lifeline`'s write end for its whole life (when
    the holder exits, however it exits, the starter reads EOF and goes), and the starter keeps
    `gone`'s (when the starter dies, the holder's select() sees it at once).
    """
    try:
        listener = _listen(place.starter)
    except OSError as exc:
        sys.stderr.write(f"starter: cannot listen on {place.starter}: {exc.strerror or exc}; commands start cold\n")
        return None
    lifeline, keep = os.pipe()
    gone, holds = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(keep)
            os.close(gone)
            serve(listener, lifeline, place, holds)
        except BaseException as exc:  # noqa: BLE001 - never return into the holder's code
            with contextlib.suppress(Exception):
                sys.stderr.write(f"starter: {type(exc).__name__}: {exc}\n")
        finally:
            os._exit(0)
    listener.close()
    os.close(lifeline)
    os.close(holds)
    for fd in (keep, gone):  # the holder's own children (ProxyCommand, ...) must not hold them
        os.set_inheritable(fd, False)
    return Started(pid, gone)


def ended(started: Started, place: Place) -> str | None:
    """In the holder, once `started.gone` reads EOF (or to look): how its starter ended, then its
    socket name is taken away (commands start cold at once); None while it runs."""
    try:
        done, status = os.waitpid(started.pid, os.WNOHANG)
        if done == 0:
            if select.select([started.gone], [], [], 0)[0]:  # its pipe closed: it is exiting now
                done, status = os.waitpid(started.pid, 0)
            else:
                return None
    except ChildProcessError:
        status = 0
    os.close(started.gone)
    with contextlib.suppress(OSError):
        os.unlink(place.starter)
    return f"signal {os.WTERMSIG(status)}" if os.WIFSIGNALED(status) else f"exit {os.waitstatus_to_exitcode(status)}"


def _listen(path: str) -> socket.socket:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)
    try:
        sock.bind(path)
        os.chmod(path, 0o600)
        sock.listen(64)
    except OSError:
        sock.close()
        raise
    finally:
        os.umask(old)
    return sock


def serve(listener: socket.socket, lifeline: int, place: Place, holds: int) -> None:
    """The starter: imports, then accepts until the lifeline closes; its socket name goes with it.
    `holds` is the write end of the holder's `gone` pipe: kept open, never written."""
    name_process(b"isf-starter")
    for name in PRELOAD:
        importlib.import_module(name)
    from ..options import declared

    declared()  # worked out once here, not in every command (it is cached)
    inode = os.stat(place.starter).st_ino
    _note(f"listening on {place.starter}")
    while True:
        ready, _, _ = select.select([listener.fileno(), lifeline], [], [], REAP_EVERY)
        if lifeline in ready:
            break
        if listener.fileno() in ready:
            with contextlib.suppress(BlockingIOError, InterruptedError):
                conn, _ = listener.accept()
                _accept(conn, listener, (lifeline, holds))
        _reap()
    with contextlib.suppress(OSError):
        if os.stat(place.starter).st_ino == inode:
            os.unlink(place.starter)
    listener.close()


def _accept(conn: socket.socket, listener: socket.socket, pipes: tuple[int, int]) -> None:
    """Reads one request and forks its child; a request that is not one is dropped with a line in the log."""
    fds: list[int] = []
    try:
        uid = thin.peer_uid(conn)
        if uid != os.geteuid():  # the 0700 directory should have stopped it already
            _note(f"refused a connection from uid {uid}")
            return
        conn.settimeout(REQUEST_TIMEOUT)
        request, fds = _receive_with_fds(conn)
        if request.get("v") != thin.VERSION or len(fds) != 3:
            conn.sendall(thin.pack({"declined": True}))
            return
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                listener.close()
                for fd in pipes:  # a command under way neither keeps the starter's ties nor needs them
                    os.close(fd)
                code = _become_command(conn, request, fds)
            finally:
                os._exit(code)
    except (*thin.FRAME_ERRORS, ValueError) as exc:
        _note(f"request dropped: {type(exc).__name__}: {exc}")
    finally:
        for fd in fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        conn.close()


def _receive_with_fds(conn: socket.socket) -> tuple[dict[str, Any], list[int]]:
    """The request frame and the descriptors that came with its first bytes."""
    head, fds, _, _ = socket.recv_fds(conn, 4, 3)
    try:
        if not head:
            raise EOFError("closed before a request")
        return thin.read(conn, head), list(fds)
    except BaseException:
        for fd in fds:
            os.close(fd)
        raise


def _become_command(conn: socket.socket, request: dict[str, Any], fds: list[int]) -> int:
    """In the child: the client's world, then the command; returns what os._exit gets (0: the client has the code)."""
    began = time.monotonic()
    log = os.dup(2)  # the holder's log, for this command's one line
    name_process(b"isf-command")  # in `ps`/`top`: a command under way, not the starter
    signal.signal(signal.SIGINT, signal.default_int_handler)
    for sig in (signal.SIGHUP, signal.SIGTERM):
        signal.signal(sig, signal.SIG_DFL)
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
        os.close(fd)
    fds.clear()
    os.chdir(str(request["cwd"]))
    os.umask(int(request["umask"]))
    os.environ.clear()
    os.environ.update({str(k): str(v) for k, v in dict(request["env"]).items()})
    time.tzset()
    _standard_streams(request.get("streams"))
    argv = [str(a) for a in request["argv"]]
    sys.argv = [str(request.get("argv0") or "imageserving-fleet"), *argv]
    # The consoles were made for the starter's /dev/null: made again for this terminal (named, as ENTRY).
    importlib.import_module(RENDER).reset_consoles()
    conn.settimeout(None)
    conn.sendall(thin.pack({"pid": os.getpid()}))
    done = threading.Event()
    threading.Thread(target=_interrupt_when_gone, args=(conn, done), name="client-watch", daemon=True).start()
    code = _run(argv)
    done.set()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a late Ctrl-C must not cut the answer short
    with contextlib.suppress(Exception):
        sys.stdout.flush()
        sys.stderr.flush()
    conn.sendall(thin.pack({"declined": True} if code is None else {"exit": code}))
    os.write(log, _line(f"command {os.getpid()}: {'declined' if code is None else f'exit {code}'} after "
                        f"{time.monotonic() - began:.3f}s"))
    return 0


def _run(argv: list[str]) -> int | None:
    """What main() does with a command line it keeps in process: global options hoisted, then quick.run."""
    from ...argv import hoist
    from ..options import hoisted

    run = importlib.import_module(ENTRY).run  # named, as an entry point is: the commands sit above this
    try:
        return run(hoist(argv, *hoisted()))
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:  # noqa: BLE001 - what a crash prints, then its exit status
        traceback.print_exc()
        return 1


def _standard_streams(streams: Any) -> None:
    """sys.stdin/stdout/stderr over descriptors 0, 1, 2 with the client's encodings; stdout line-buffered on a terminal."""
    specs = streams if isinstance(streams, list) and len(streams) == 3 else [["utf-8", "strict"]] * 3
    (in_enc, in_err), (out_enc, out_err), (err_enc, err_err) = [(str(e), str(h)) for e, h in specs]
    sys.stdin = open(0, encoding=in_enc, errors=in_err, closefd=False)  # noqa: SIM115 - lives as long as the child
    sys.stdout = open(1, "w", encoding=out_enc, errors=out_err, closefd=False,  # noqa: SIM115
                      buffering=1 if os.isatty(1) else -1)
    sys.stderr = open(2, "w", encoding=err_enc, errors=err_err, closefd=False, buffering=1)  # noqa: SIM115


def _interrupt_when_gone(conn: socket.socket, done: threading.Event) -> None:
    """The client went away (killed, its terminal closed): the command stops as on Ctrl-C."""
    try:
        while conn.recv(1):
            pass
    except OSError:
        pass
    if not done.is_set():
        os.kill(os.getpid(), signal.SIGINT)


def _note(message: str) -> None:
    """One line in the holder's log (the starter's stderr)."""
    os.write(2, _line(message))


def _line(message: str) -> bytes:
    return f"{time.strftime('%Y-%m-%dT%H:%M:%S')} starter {os.getpid()}: {message}\n".encode(errors="replace")


def _reap() -> None:
    """Waits for the commands that ended; a line each in the log (its pid, how long, how it ended)."""
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        if os.WIFSIGNALED(status):  # a command that ended normally said so itself (_become_command)
            _note(f"command {pid}: killed by signal {os.WTERMSIG(status)}")


def name_process(name: bytes) -> None:
    """The process's short name (what `ps -o comm` and `top` show): not the command that started it."""
    try:
        import ctypes

        ctypes.CDLL(None).prctl(15, name, 0, 0, 0)  # PR_SET_NAME
    except (OSError, AttributeError):
        pass
