"""What `imageserving start|stop|restart|status` do, as library calls that return an Outcome.

The CLI only parses, calls one of these and prints; exit codes follow the LSB init-script rules.
Stdlib only at import time, so the status path stays light; config loading imports yaml lazily.
"""

from __future__ import annotations

import os
import sys
import time

TYPE_CHECKING = False  # not `from typing`: importing typing costs the status path 8 ms

from ..componentstate import State, down_message, is_down
from ..errors import ComponentError, NotRunningError, SupervisorError, UsageError
from ..home import Home

# The LSB exit codes live in protocol.py, shared with the control server (an error reply's code is one).
from ..protocol import ANSWER_TIMEOUT, BAD_ARGS, BAD_CONFIG, FAILED, NO_ANSWER, NOT_RUNNING, OK, SUPERVISOR_DOWN  # noqa: F401
from . import client

START_TIMEOUT = 30.0  # seconds for a new supervisor to say something (READY, or WAIT while it stops leftovers)


if TYPE_CHECKING:
    from typing import Any

    from .config import AgentConfig


class Outcome:
    """The result of one command: what to tell the user, the status document and the exit code.

    A plain class, not a dataclass: importing dataclasses costs the status path 6 ms.
    """

    __slots__ = ("code", "message", "status")

    def __init__(self, code: int, message: str, status: dict[str, Any] | None = None) -> None:
        self.code, self.message, self.status = code, message, status

    def __repr__(self) -> str:
        return f"Outcome({self.code}, {self.message!r})"


def down_status(message: str = "Server Supervisor is not running") -> dict[str, Any]:
    import socket

    from .. import __version__
    from ..timefmt import utc_stamp  # here: only a supervisor that is down needs a clock

    return {"schema": 1, "host": socket.gethostname(), "agent_version": __version__,
            "time": utc_stamp(),
            "supervisor": {"state": State.STOPPED.value}, "components": [], "message": message}


def normalize_ids(ids: list[str], valid: tuple[str, ...] | None) -> list[str]:
    """Component ids are case-insensitive; an unknown one is a usage error listing the valid ones."""
    out = [i.lower() for i in ids]
    if valid is not None:
        for i in out:
            if i not in valid:
                raise UsageError(f"unknown component {i!r}; valid ids: {', '.join(valid)}")
    return out


def status(home: Home, ids: list[str], timeout: float = ANSWER_TIMEOUT) -> Outcome:
    """Asks the supervisor for the status of some or all components; exit 0/1/3/4 as LSB says."""
    try:
        reply = client.request(home, {"cmd": "status", "ids": ids}, timeout=timeout)
    except NotRunningError as exc:
        return _down(home, str(exc))
    except SupervisorError as exc:  # NoAnswerError and its kin: it is there but says nothing useful
        return Outcome(NO_ANSWER, str(exc))
    if reply.get("status") != "ok":
        return Outcome(int(reply.get("code", BAD_ARGS)), str(reply.get("reason", "error")))
    doc = reply["result"]
    down = [c["id"] for c in doc["components"] if is_down(c["state"], bool(c.get("held")), bool(ids))]
    if down:
        return Outcome(FAILED, down_message(down), doc)
    return Outcome(OK, "", doc)


def _down(home: Home, message: str) -> Outcome:
    """No supervisor: exit 3, naming the components a dead one left running (SPEC §2)."""
    from .statefile import leftovers

    found = leftovers(home.children_file)
    doc = down_status(message)
    if found:
        doc["orphans"] = [{"id": owned.id, "pids": pids} for _, owned, pids in found]
        listed = "; ".join(f"{owned.id} (pids {', '.join(map(str, pids))})" for _, owned, pids in found)
        doc["message"] = message = (f"{message}; still running without it: {listed}"
                                    " (`imageserving stop` stops them, `imageserving start` adopts or replaces them)")
    return Outcome(NOT_RUNNING, message, doc)


def write_config_json(home: Home, config: AgentConfig, unique: bool = False) -> str:
    """Hands a validated config to the daemon as JSON (atomically), so it never imports yaml.

    unique: a file of this process's own (a reload), so two concurrent reloads never share one.
    """
    import json

    from ..atomic import write_atomic
    from .config import to_dict

    home.prepare()
    path = os.path.join(home.run, f"reload-{os.getpid()}.json" if unique else "config.json")
    write_atomic(path, json.dumps(to_dict(config)), durable=False)  # read back at once: no crash to outlive
    return path


def daemon_argv(home: Home, config_json: str) -> list[str]:
    return [sys.executable, "-P", "-m", "imageserving_fleet.agent.daemon", "--home", home.root,
            "--config-json", config_json]


def _launch(home: Home, config: AgentConfig) -> str:
    """Starts a detached supervisor; returns its notify line (`READY pid`, `ALREADY pid`)."""
    import subprocess

    read_fd, write_fd = os.pipe()
    argv = daemon_argv(home, write_config_json(home, config)) + ["--notify-fd", str(write_fd)]
    with open(home.supervisor_log, "ab") as errlog:
        subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=errlog,
                         pass_fds=(write_fd,), start_new_session=True, close_fds=True)
    os.close(write_fd)
    text = _follow_launch(home, read_fd)
    if not text:
        raise ComponentError(f"the Server Supervisor exited at start; see {home.supervisor_log}")
    if text.startswith("ERROR "):
        raise ComponentError(f"the Server Supervisor could not start: {text[6:]}")
    return text


def _follow_launch(home: Home, read_fd: int) -> str:
    """Reads the new supervisor's notify lines until its last word. `WAIT S what` (it is stopping
    what a dead supervisor left, with that component's stop_timeout) moves the deadline: the wait
    follows its progress, not a fixed time."""
    import select

    data = b""
    end = time.monotonic() + START_TIMEOUT
    try:
        while True:
            *lines, data = data.split(b"\n")
            for raw in lines:
                line = raw.decode(errors="replace").strip()
                if line.startswith("WAIT "):
                    seconds = line.split()[1]
                    end = max(end, time.monotonic() + float(seconds) + START_TIMEOUT)
                elif line:
                    return line
            left = end - time.monotonic()
            if left <= 0 or not select.select([read_fd], [], [], left)[0]:
                raise ComponentError(f"the Server Supervisor said nothing for {START_TIMEOUT:g}s;"
                                     f" see {home.supervisor_log}")
            chunk = os.read(read_fd, 4096)
            if not chunk:
                return data.decode(errors="replace").strip()
            data += chunk
    finally:
        os.close(read_fd)


def _wait_reply(home: Home, payload: dict[str, Any]) -> Outcome:
    reply = client.request(home, payload, timeout=None)
    doc = reply.get("result")
    if reply.get("status") != "ok":
        return Outcome(int(reply.get("code", FAILED)), str(reply.get("reason", "failed")), doc)
    return Outcome(OK, "", doc)


def start(home: Home, config: AgentConfig | None, ids: list[str] | None = None) -> Outcome:
    """Starts the supervisor when needed, then (all or some) components in start order.

    With ids (`start ID`, which also ends a hold) the supervisor must already run: exit 7 if not.
    """
    import fcntl

    if ids:
        return _on_components(home, "start", ids, "started")
    if config is None:
        raise UsageError("a whole start needs the configuration")
    home.prepare()
    with open(home.start_lock, "a") as lock:  # concurrent starters queue here: one supervisor
        fcntl.flock(lock, fcntl.LOCK_EX)
        was_running = client.is_running(home)
        if not was_running:
            _launch(home, config)
    before = status(home, ids or [])
    held = [c["id"] for c in (before.status or {}).get("components", []) if c.get("held")]
    if was_running and before.code == OK and not held:  # a whole start also ends every hold
        return Outcome(OK, "already running", before.status)
    # after_launch: the supervisor we launched started everything itself; its answer is that start's
    out = _wait_reply(home, {"cmd": "start", "ids": ids or [], "after_launch": not was_running})
    if out.code == OK:
        names = ", ".join(c["id"] for c in (out.status or {}).get("components", []))
        out.message = f"started: {names}" if was_running else f"Server Supervisor started; {names} RUNNING"
    return out


def stop(home: Home, ids: list[str] | None = None) -> Outcome:
    """Stops components in reverse order; without ids, the supervisor too (and waits for it to exit)."""
    try:
        pid = int(client.request(home, {"cmd": "ping"}, timeout=ANSWER_TIMEOUT)["pid"])
    except NotRunningError:
        if ids:
            return Outcome(OK, "already stopped: Server Supervisor is not running", down_status())
        return _stop_leftovers(home)
    out = _wait_reply(home, {"cmd": "stop", "ids": ids or [], "shutdown": not ids})
    if not ids:
        _wait_gone(pid)
        if out.code == OK:
            out.status, out.message = down_status("stopped"), "stopped"
    elif out.code == OK:
        out.message = f"stopped: {', '.join(ids)} (held down until `imageserving start {' '.join(ids)}`)"
    return out


def _stop_leftovers(home: Home) -> Outcome:
    """No supervisor: stop what a dead one left, each component with its own stop_signal and
    stop_timeout, in reverse priority order; exit 0, or 1 when a process survives SIGKILL."""
    import fcntl

    from .statefile import leftovers, stop_leftovers

    home.prepare()
    with open(home.start_lock, "a") as lock:  # no `start` adopts them meanwhile
        fcntl.flock(lock, fcntl.LOCK_EX)
        if client.is_running(home):
            return stop(home)
        found = leftovers(home.children_file)
        if not found:
            return Outcome(OK, "already stopped: Server Supervisor is not running", down_status())
        count, survivors = stop_leftovers(found)
    if survivors:
        return Outcome(FAILED, f"stopped {count} processes left by a dead supervisor, but some of {', '.join(survivors)}"
                               f" survived SIGKILL", down_status())
    try:
        os.unlink(home.children_file)
    except OSError:
        pass
    return Outcome(OK, f"stopped {count} processes left by a dead supervisor "
                       f"({', '.join(o.id for _, o, _ in found)})", down_status("stopped"))


def restart_supervisor(home: Home) -> Outcome:
    """`restart supervisor`: a new supervisor from the installed code takes over; no component stops."""
    try:
        # Our interpreter: the build this command comes from (after a deploy, the new one).
        reply = client.request(home, {"cmd": "handover", "python": sys.executable}, timeout=None)
    except NotRunningError:
        return Outcome(SUPERVISOR_DOWN, "Server Supervisor is not running; use `imageserving start`")
    if reply.get("status") != "ok":
        return Outcome(int(reply.get("code", FAILED)), str(reply.get("reason", "failed")))
    old, new = int(reply["previous"]), int(reply["pid"])
    _wait_gone(old)
    out = status(home, [])
    kept = ", ".join(f"{c['id']} {c['pid']}" for c in (out.status or {}).get("components", []) if c.get("pid"))
    return Outcome(OK, f"Server Supervisor restarted: pid {old} -> {new}; components kept their pids"
                       f"{': ' + kept if kept else ''}", out.status)


def running_config(home: Home) -> str | None:
    """The configuration file the running supervisor was started (or last reloaded) with, if it runs."""
    try:
        reply = client.request(home, {"cmd": "ping"}, timeout=ANSWER_TIMEOUT)
    except NotRunningError:
        return None
    path = reply.get("config")
    return path if isinstance(path, str) and path else None


def reload(home: Home, config: AgentConfig) -> Outcome:
    """Hands an already validated configuration to the running supervisor; it applies only what changed.

    The reply's `reload` names added, removed, changed and unchanged components; it is merged into
    the status document (so `--json` carries it) and summed up in the message.
    """
    path = write_config_json(home, config, unique=True)
    try:
        reply = client.request(home, {"cmd": "reload", "config_json": path}, timeout=None)
    except NotRunningError:
        return Outcome(SUPERVISOR_DOWN, "Server Supervisor is not running; use `imageserving start`")
    finally:
        try:
            os.unlink(path)
        except OSError:
            pass
    doc = reply.get("result")
    changes = reply.get("reload") or {}
    if isinstance(doc, dict) and changes:
        doc = {**doc, "reload": changes}
    summary = "; ".join(f"{k}: {', '.join(v) if v else '-'}" for k, v in changes.items()
                        if k != "unchanged") + (f"; unchanged: {len(changes.get('unchanged', []))}" if changes else "")
    if reply.get("status") != "ok":
        return Outcome(int(reply.get("code", FAILED)), str(reply.get("reason", "reload failed")), doc)
    return Outcome(OK, f"reloaded {config.path}: {summary}", doc)


def _on_components(home: Home, cmd: str, ids: list[str], done: str) -> Outcome:
    """`start ID` / `restart ID`: a request to a supervisor that must already run (exit 7 if not)."""
    try:
        out = _wait_reply(home, {"cmd": cmd, "ids": ids})
    except NotRunningError:
        return Outcome(SUPERVISOR_DOWN, "Server Supervisor is not running; use `imageserving start`")
    if out.code == OK:
        out.message = f"{done}: {', '.join(ids)}"
    return out


def restart(home: Home, config: AgentConfig, ids: list[str] | None = None) -> Outcome:
    """One component: stop then start it, the others untouched; none: a whole new supervisor."""
    if ids:
        return _on_components(home, "restart", ids, "restarted")
    stopped = stop(home)
    if stopped.code != OK:
        return stopped
    out = start(home, config)
    if out.code == OK:
        out.message = out.message.replace("Server Supervisor started;", "Server Supervisor restarted;", 1)
    return out


def _wait_gone(pid: int, timeout: float = 10.0) -> None:
    """Until the process is gone; a zombie (its parent, often init, not reaping yet) counts as gone."""
    from .ownership import stat

    end = time.monotonic() + timeout
    while time.monotonic() < end and stat(pid) is not None:
        time.sleep(0.02)
