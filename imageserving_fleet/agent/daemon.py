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
from collections import defaultdict

import psutil

from ..errors import ConfigError, UsageError
from ..home import MAX_SOCKET_PATH, Home
from . import procs
from .config import AgentConfig, from_dict, load_config
from .logfiles import EventLog
from .supervisor import Supervisor

EXIT_CONFIG = 6


def _notify(fd: int | None, text: str) -> None:
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


def stop_leftovers(home: Home, config: AgentConfig, log: EventLog) -> None:
    """Stops what a supervisor killed with SIGKILL left running, so no component runs twice."""
    found = procs.leftovers(home.children_file, home.marker)
    if not found:
        return
    by_comp: dict[str, list[psutil.Process]] = defaultdict(list)
    for p in found:
        by_comp[_component_of(p, home.marker)].append(p)
    for cid, group in by_comp.items():
        try:
            comp = config.component(cid)
            signo, timeout = comp.stop_signal, comp.stop_timeout
        except KeyError:
            signo, timeout = signal.SIGTERM, 10.0
        log.line(f"stopping {len(group)} leftover process(es) of {cid or 'a component'} from a crashed "
                 f"supervisor: pids {', '.join(str(p.pid) for p in group)}")
        procs.signal_all(group, None, signo)
        _, alive = psutil.wait_procs(group, timeout=timeout)
        if alive:
            procs.signal_all(alive, None, signal.SIGKILL)
            psutil.wait_procs(alive, timeout=5)


def _component_of(p: psutil.Process, marker: str) -> str:
    try:
        value = p.environ().get(procs.TAG, "")
    except psutil.Error:
        return ""
    return value.rpartition("#")[2] if value.startswith(marker + "#") else ""


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


def serve(home: Home, config_path: str, notify_fd: int | None = None, as_json: bool = False) -> int:
    """The whole life of a supervisor; returns its exit status.

    With as_json, config_path is a JSON file of an already validated configuration (see
    config.to_dict), written by the starter: the daemon then never imports yaml.
    """
    home.prepare()
    lock = acquire_lock(home)
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
        stop_leftovers(home, config, log)
        listener = listen(home)
        metrics = _metrics_socket(config)
        with open(home.pidfile, "w") as fh:
            fh.write(f"{os.getpid()}\n")
    except (OSError, UsageError) as exc:
        _notify(notify_fd, f"ERROR {exc}")
        return 1
    supervisor = Supervisor(config, home, listener)
    if metrics is not None:  # its own thread, asking the control socket as any client: never blocks the loop
        from .metrics_listener import serve_supervisor

        serve_supervisor(metrics, home)
        log.line(f"serving metrics on http://{config.metrics_listen}/metrics")
    _notify(notify_fd, f"READY {os.getpid()}")
    try:
        supervisor.run()
    except BaseException as exc:  # a crash must at least say why, where the operator looks
        import traceback

        log.line("supervisor crashed: " + "".join(traceback.format_exception(exc)))
        raise
    finally:
        for path in (home.socket, home.pidfile, home.children_file):
            try:
                os.unlink(path)
            except OSError:
                pass
        os.close(lock)
    return 0


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


USAGE = "usage: python -m imageserving_fleet.agent.daemon --home DIR (--config YAML | --config-json JSON) [--notify-fd N]"


def main(argv: list[str] | None = None) -> int:
    """Parses the few options by hand: argparse alone would add 0.5 MB to a daemon that runs for months."""
    args = sys.argv[1:] if argv is None else argv
    opts: dict[str, str] = {}
    for name, value in zip(args[::2], args[1::2], strict=False):
        if name not in ("--home", "--config", "--config-json", "--notify-fd"):
            sys.stderr.write(USAGE + "\n")
            return 2
        opts[name] = value
    if len(args) % 2 or "--home" not in opts or ("--config" in opts) == ("--config-json" in opts):
        sys.stderr.write(USAGE + "\n")
        return 2
    fd = int(opts["--notify-fd"]) if "--notify-fd" in opts else None
    path = opts.get("--config-json") or opts["--config"]
    return serve(Home.resolve(opts["--home"]), path, fd, as_json="--config-json" in opts)


if __name__ == "__main__":
    sys.exit(main())
