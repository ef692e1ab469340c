"""Start-up of the Server Supervisor process: lock, stale files, leftovers of a crash, socket.

Run as `python -m imageserving_fleet.agent.daemon --home H --config C [--notify-fd N]`. It is a
module of its own, not a Typer command, so the long-lived daemon never carries the CLI's imports.
The notify fd (like sd_notify) tells the starter `READY <pid>`, `ALREADY <pid>` or `ERROR <text>`.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import socket
import sys
import time

from ..errors import ConfigError, UsageError
from ..home import MAX_SOCKET_PATH, Home
from . import adoption, ownership, statefile
from .config import AgentConfig, from_dict, load_config
from .logfiles import EventLog
from .states import Proc
from .supervisor import Supervisor

EXIT_CONFIG = 6


def _notify(fd: int | None, text: str) -> None:
    """The last word to the starter: READY, ALREADY or ERROR (then the pipe is closed)."""
    if fd is None:
        return
    try:
        os.write(fd, (text + "\n").encode())
        os.close(fd)
    except OSError:
        pass


def acquire_lock(home: Home) -> int | None:
    """Takes the home's lock for our lifetime; returns its fd, or None when another holds it."""
    fd = os.open(home.lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def take_over_leftovers(home: Home, config: AgentConfig, log: EventLog, notify_fd: int | None,
                        handover: bool) -> dict[str, tuple[ownership.Owned, Proc]]:
    """What a predecessor left running: adopted (a handover, or unchanged after a crash) or stopped
    first with each component's own stop_signal and stop_timeout, in reverse priority order, so no
    component runs twice. Returns what to adopt. The starter is told how long stopping may take."""
    todo = adoption.plan(statefile.State.load(home.children_file), config, home.log, handover)
    for cid, (owned, proc) in todo.adopt.items():
        if handover:
            log.line(f"{cid}: taken over ({proc.state}, pid {proc.pid or '-'}, {proc.restarts} restart(s))")
        else:
            log.line(f"{cid}: adopted pid {owned.pid} left running by a dead supervisor (configuration unchanged,"
                     f" output still reaching {home.log(cid)})")
    if todo.stop:
        why = {owned.id: reason for _, owned, _, reason in todo.stop}

        def say(cid: str, pids: list[int], signo: int, timeout: float) -> None:
            log.line(f"{cid}: stopping {len(pids)} process(es) left by a dead supervisor ({why[cid]}): pids "
                     f"{', '.join(map(str, pids))}; {signal.Signals(signo).name}, then SIGKILL after {timeout:g}s")
            _progress(notify_fd, f"WAIT {timeout + statefile.KILL_WAIT:g} stopping {cid} left by a dead supervisor")

        _, survivors = statefile.stop_leftovers([(r, o, p) for r, o, p, _ in todo.stop], say)
        for cid in survivors:
            log.line(f"{cid}: a process left by a dead supervisor survived SIGKILL")
    return todo.adopt


def _progress(fd: int | None, text: str) -> None:
    if fd is not None:
        try:
            os.write(fd, (text + "\n").encode())
        except OSError:
            pass


def listen(home: Home) -> socket.socket:
    """Binds the control socket 0600 inside the 0700 run directory, replacing a stale one."""
    path = home.socket
    if len(path.encode()) > MAX_SOCKET_PATH:
        raise OSError(f"socket path too long for a Unix socket ({len(path)} bytes): {path}")
    try:
        os.unlink(path)  # we hold the lock: any socket file here is stale
    except FileNotFoundError:
        pass
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)
    try:
        sock.bind(path)
    finally:
        os.umask(old)
    os.chmod(path, 0o600)
    sock.listen(128)
    return sock


def serve(home: Home, config_path: str, notify_fd: int | None = None, as_json: bool = False,
          inherited: dict[str, int] | None = None) -> int:
    """The whole life of a supervisor; returns its exit status.

    With as_json, config_path is a JSON file of an already validated configuration (see
    config.to_dict), written by the starter: the daemon then never imports yaml. `inherited`
    holds the descriptors a predecessor hands over (`restart supervisor`): its lock, control
    socket and metrics socket; this supervisor then takes over its components, starting nothing.
    """
    inherited = inherited or {}
    handover = "lock" in inherited
    home.prepare()
    lock = inherited["lock"] if handover else acquire_lock(home)
    if lock is None:
        _notify(notify_fd, f"ALREADY {_read_pid(home)}")
        return 0
    try:
        if as_json:
            with open(config_path) as fh:
                config = from_dict(json.load(fh))
        else:
            config = load_config(config_path)
    except (ConfigError, OSError, ValueError, KeyError, TypeError) as exc:
        _notify(notify_fd, f"ERROR {exc}")
        return EXIT_CONFIG
    log = EventLog(home.supervisor_log, config.log_max_bytes, config.log_backups)
    try:
        adopted = take_over_leftovers(home, config, log, notify_fd, handover)
        listener = (socket.socket(fileno=inherited["listen"]) if "listen" in inherited else listen(home))
        metrics = (socket.socket(fileno=inherited["metrics"]) if "metrics" in inherited
                   else _metrics_socket(config))
        with open(home.pidfile, "w") as fh:
            fh.write(f"{os.getpid()}\n")
        supervisor = Supervisor(config, home, listener, adopted=adopted)
        supervisor.inheritable = {"lock": lock, "listen": listener.fileno(),
                                  **({"metrics": metrics.fileno()} if metrics is not None else {})}
    except (OSError, UsageError) as exc:
        _notify(notify_fd, f"ERROR {exc}")
        return 1
    if metrics is not None:  # its own thread, asking the control socket as any client: never blocks the loop
        from .metrics_listener import serve_supervisor

        serve_supervisor(metrics, home)
        log.line(f"serving metrics on http://{config.metrics_listen}/metrics")
    _notify(notify_fd, f"READY {os.getpid()}")
    try:
        supervisor.run(autostart=not handover)
    except BaseException as exc:  # a crash must at least say why, where the operator looks
        import traceback

        log.line("supervisor crashed: " + "".join(traceback.format_exception(exc)))
        raise
    finally:
        if not supervisor.handed_over:  # else the successor owns all of it now
            _clean_up(home, supervisor)
            os.close(lock)
    return 0


def _clean_up(home: Home, supervisor: Supervisor) -> None:
    """At exit: our socket and pid file go; the state file stays while anything of ours still runs."""
    gone = [home.socket, home.pidfile]
    if not any(supervisor.ops.members(o) for o in supervisor.owned.values()):
        gone.append(home.children_file)
        for owned in supervisor.owned.values():
            supervisor.ops.release(owned)
        close = getattr(supervisor.ops, "close", None)
        if close is not None:
            close()
    for path in gone:
        try:
            os.unlink(path)
        except OSError:
            pass


def _metrics_socket(config: AgentConfig) -> socket.socket | None:
    """The bound /metrics socket when supervisor.metrics.listen is set: taken before READY, so a
    port in use fails the start with a clear message instead of a supervisor without its metrics."""
    if not config.metrics_listen:
        return None
    from ..metrics_http import bind

    try:
        return bind(config.metrics_listen)
    except UsageError as exc:
        raise UsageError(f"supervisor.metrics.listen: {str(exc).removeprefix('--listen: ')}") from None


def _read_pid(home: Home) -> str:
    for _ in range(50):  # the winner writes its pid right after taking the lock
        try:
            with open(home.pidfile) as fh:
                return fh.read().strip()
        except OSError:
            time.sleep(0.02)
    return "?"


USAGE = ("usage: python -m imageserving_fleet.agent.daemon --home DIR (--config YAML | --config-json JSON) "
         "[--notify-fd N] [--lock-fd N --listen-fd N [--metrics-fd N]]")
INHERITED = {"--lock-fd": "lock", "--listen-fd": "listen", "--metrics-fd": "metrics"}


def main(argv: list[str] | None = None) -> int:
    """Parses the few options by hand: argparse alone would add 0.5 MB to a daemon that runs for months."""
    args = sys.argv[1:] if argv is None else argv
    opts: dict[str, str] = {}
    for name, value in zip(args[::2], args[1::2], strict=False):
        if name not in ("--home", "--config", "--config-json", "--notify-fd", *INHERITED):
            sys.stderr.write(USAGE + "\n")
            return 2
        opts[name] = value
    if len(args) % 2 or "--home" not in opts or ("--config" in opts) == ("--config-json" in opts):
        sys.stderr.write(USAGE + "\n")
        return 2
    fd = int(opts["--notify-fd"]) if "--notify-fd" in opts else None
    path = opts.get("--config-json") or opts["--config"]
    inherited = {INHERITED[k]: int(v) for k, v in opts.items() if k in INHERITED}
    if inherited and not {"lock", "listen"} <= set(inherited):
        sys.stderr.write(USAGE + "\n")
        return 2
    return serve(Home.resolve(opts["--home"]), path, fd, as_json="--config-json" in opts, inherited=inherited)


if __name__ == "__main__":
    sys.exit(main())
