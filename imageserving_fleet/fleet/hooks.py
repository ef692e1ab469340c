"""`--before CMD` and `--after CMD`: the controller's own commands around each host's action.

They run on the controller with `/bin/sh -c CMD`, the host in the environment
(`IMAGESERVING_HOST` the inventory name, `IMAGESERVING_ADDRESS` what SSH connects to,
`IMAGESERVING_BATCH` the batch's number, from 1), stdin from /dev/null, stdout and stderr
together. Typical use: take the host out of a load balancer before its restart and put it back
once it is healthy. Exit 0 is success; another exit, a signal or running past the hook timeout
(`--hook-timeout`, default 60 s: the whole process group is killed) is a failure, whose reason
names the hook and ends with its last line of output. The hooks of a batch's hosts run at once
(at most --forks), each in its own process group so a timeout or Ctrl-C kills all it started.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from ..errors import UsageError
from .target import Target

log = logging.getLogger(__name__)

HOOK_TIMEOUT = 60.0      # seconds; a drain that takes longer is stuck, not slow
MAX_HOOK_OUTPUT = 2**20  # what is kept of a hook's output (the rest is read and dropped)

# (host, which hook, one line of its output) -> shown where the CLI decides (-v: stderr)
OutputSink = Callable[[str, str, str], None]


@dataclass(frozen=True)
class Hooks:
    """The hooks of a rolling run; either command may be None."""

    before: str | None = None
    after: str | None = None
    timeout: float = HOOK_TIMEOUT
    on_output: OutputSink | None = None  # default: the debug log (what -v prints)

    def __bool__(self) -> bool:
        return bool(self.before or self.after)


def check_hooks(before: str | None, after: str | None, timeout: float) -> None:
    """Refuses bad hook options before any host is contacted (UsageError, exit 5)."""
    for name, value in (("--before", before), ("--after", after)):
        if value is not None and not value.strip():
            raise UsageError(f"{name} needs a command, got an empty one")
    if not 0 < timeout <= 86_400:  # nan too
        raise UsageError(f"--hook-timeout must be a number of seconds above 0 (at most a day), got {timeout!r}")


def hook_environment(target: Target, batch: int) -> dict[str, str]:
    """The controller's environment plus the host's name, address and batch number."""
    return {**os.environ, "IMAGESERVING_HOST": target.name, "IMAGESERVING_ADDRESS": target.address,
            "IMAGESERVING_BATCH": str(batch)}


class HookRunner:
    """Runs hook commands; remembers the running ones so `kill_all` (Ctrl-C) ends them."""

    def __init__(self, hooks: Hooks, forks: int) -> None:
        self.hooks, self.forks = hooks, max(1, forks)
        self._lock = threading.Lock()
        self._running: set[subprocess.Popen[bytes]] = set()

    def run_many(self, which: str, targets: Sequence[Target], batch: int) -> dict[str, str | None]:
        """Runs the hook (`"before"` or `"after"`) for each target at once; host -> None or why it failed."""
        command = self.hooks.before if which == "before" else self.hooks.after
        if not command or not targets:
            return {t.name: None for t in targets}
        with ThreadPoolExecutor(max_workers=min(self.forks, len(targets)), thread_name_prefix=f"{which} hook") as pool:
            futures = {t.name: pool.submit(self.run_one, which, command, t, batch) for t in targets}
            return {name: future.result() for name, future in futures.items()}

    def run_one(self, which: str, command: str, target: Target, batch: int) -> str | None:
        """One hook for one host; returns None on success, else the reason the host fails."""
        label = f"--{which}"
        try:
            proc = subprocess.Popen(["/bin/sh", "-c", command], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, env=hook_environment(target, batch),
                                    start_new_session=True)
        except OSError as exc:
            return f"{label} could not run: {exc.strerror or exc}"
        with self._lock:
            self._running.add(proc)
        output = bytearray()
        reader = threading.Thread(target=_read_into, args=(proc, output), daemon=True, name=f"{label} output")
        reader.start()
        try:
            try:
                code = proc.wait(timeout=self.hooks.timeout)
                timed_out = False
            except subprocess.TimeoutExpired:
                _kill_group(proc)
                code = proc.wait()
                timed_out = True
            # the group is gone or done: what it left in the pipe ends soon (a daemonised grandchild
            # holding it open is not waited for past a moment)
            reader.join(timeout=2.0)
        finally:
            _kill_group(proc)  # whatever it left running in its group (and on Ctrl-C, the hook itself)
            with self._lock:
                self._running.discard(proc)
        lines = bytes(output).decode("utf-8", errors="replace").splitlines()
        for line in lines:  # by default into the debug log: `-v` shows them, by host, escaped
            (self.hooks.on_output or _debug)(target.name, which, line)
        last = next((ln.strip() for ln in reversed(lines) if ln.strip()), "")
        tail = f": {last[:200]}" if last else ""
        if timed_out:
            return f"{label} did not finish within --hook-timeout {self.hooks.timeout:g}s (killed){tail}"
        if code < 0:
            return f"{label} was killed by signal {-code}{tail}"
        if code != 0:
            return f"{label} exited {code}{tail}"
        return None

    def kill_all(self) -> None:
        with self._lock:
            running = list(self._running)
        for proc in running:
            _kill_group(proc)


def _debug(host: str, which: str, line: str) -> None:
    log.debug("%s | --%s: %s", host, which, line)


def _read_into(proc: subprocess.Popen[bytes], output: bytearray) -> None:
    assert proc.stdout is not None
    with proc.stdout:
        fd = proc.stdout.fileno()
        while chunk := os.read(fd, 65536):
            if len(output) < MAX_HOOK_OUTPUT:
                output.extend(chunk[:MAX_HOOK_OUTPUT - len(output)])


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
