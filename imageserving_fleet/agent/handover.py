"""`restart supervisor`, the old supervisor's half: hand every component over to a new supervisor
started from the code installed now, or keep running if it cannot start.

1. Refuse while an operation (start, stop, restart, reload) is in flight: its client would lose
   its answer.
2. Write the state file (every record: pid, start time, cgroup, restarts, held, health counters,
   monotonic times) and the configuration as JSON.
3. Start `python -m imageserving_fleet.agent.daemon` with our lock, control socket and metrics
   socket passed as file descriptors: the home is never unlocked and the socket never closed,
   so no client sees "not running" and no second supervisor can slip in.
4. Wait for its READY (our loop pauses meanwhile: nothing acts twice); then answer and exit
   without touching a component. On ERROR, on exit, or on no answer in time: kill it, write
   our state again, keep running, answer exit 1.

The components never notice: their output goes to their log files directly (no pipe whose
reader could die), and the new supervisor watches the main processes with pidfds.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from typing import TYPE_CHECKING, Any

from ..protocol import FAILED, RequestError, ok

if TYPE_CHECKING:
    from .supervisor import Supervisor

HANDOVER_TIMEOUT = 60.0   # seconds the new supervisor has to say READY


def successor_argv(sup: Supervisor, config_json: str, python: str) -> list[str]:
    argv = [python, "-P", "-m", "imageserving_fleet.agent.daemon", "--home", sup.home.root,
            "--config-json", config_json]
    for name, fd in sup.inheritable.items():
        argv += [f"--{name}-fd", str(fd)]
    return argv


def hand_over(sup: Supervisor, python: str | None = None) -> dict[str, Any]:
    """Starts the successor with `python` (default ours) and waits for it; returns the reply for the
    client (raises RequestError on failure)."""
    python = python or sys.executable
    if not os.path.isabs(python) or not os.access(python, os.X_OK):
        raise RequestError(FAILED, f"cannot start a new supervisor with {python!r}: not an executable absolute path")
    busy = [op.kind for op, _ in sup.operations] + (["reload"] if sup.reloads else [])
    if busy:
        raise RequestError(FAILED, f"an operation is in progress ({', '.join(busy)}); try again when it ends")
    if "lock" not in sup.inheritable:
        raise RequestError(FAILED, "this supervisor cannot hand over (started without its lock descriptor)")
    import json

    from .config import to_dict

    path = os.path.join(sup.home.run, "handover-config.json")
    with open(path + ".tmp", "w") as fh:
        json.dump(to_dict(sup.cfg), fh)
    os.replace(path + ".tmp", path)
    sup.save_state()
    read_fd, write_fd = os.pipe()
    argv = successor_argv(sup, path, python) + ["--notify-fd", str(write_fd)]
    sup.events.line(f"restart supervisor: starting a successor ({' '.join(argv[:3])})")
    started = time.monotonic()
    try:
        with open(sup.home.supervisor_log, "ab") as errlog:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=errlog,
                                    pass_fds=(write_fd, *sup.inheritable.values()), start_new_session=True)
    except OSError as exc:
        os.close(read_fd)
        raise RequestError(FAILED, f"cannot start a new supervisor: {exc}") from None
    finally:
        os.close(write_fd)
    proc.returncode = 0  # reaped by our waitpid(-1) should it die later
    answer = _read_answer(read_fd, HANDOVER_TIMEOUT)
    if answer.startswith("READY "):
        sup.events.line(f"restart supervisor: pid {answer[6:]} took over in {time.monotonic() - started:.2f}s; "
                        f"pid {os.getpid()} exits, no component touched")
        sup.handed_over = True
        return ok(pid=int(answer[6:]), previous=os.getpid())
    _stop(proc.pid)
    with open(sup.home.pidfile, "w") as fh:  # it may have written its own
        fh.write(f"{os.getpid()}\n")
    sup.save_state()
    why = answer.removeprefix("ERROR ") or "it exited without a word"
    sup.events.line(f"restart supervisor: the new supervisor failed ({why}); pid {os.getpid()} keeps running")
    raise RequestError(FAILED, f"the new Server Supervisor failed: {why}; see {sup.home.supervisor_log}; "
                               f"the running one (pid {os.getpid()}) keeps its components")


def _read_answer(fd: int, timeout: float) -> str:
    """The successor's last notify line (READY pid / ERROR text), "" on exit, a note on timeout."""
    data = b""
    end = time.monotonic() + timeout
    try:
        while True:
            lines = data.split(b"\n")
            for line in lines[:-1]:
                if line.startswith((b"READY ", b"ERROR ", b"ALREADY ")):
                    return line.decode(errors="replace")
            left = end - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                return f"ERROR no answer within {timeout:g}s"
            chunk = os.read(fd, 4096)
            if not chunk:
                return ""
            data += chunk
    finally:
        os.close(fd)


def _stop(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    except OSError:
        pass
