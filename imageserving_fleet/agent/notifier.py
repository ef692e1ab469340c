"""Sends notifications (supervisor.notify) from a worker thread, so the supervisor's loop never waits on them.

The loop hands each state change to `Notifier.submit()`, which decides (damping, the `on:` list)
and puts the JSON on a bounded queue; one daemon thread pipes it to the command's stdin and/or
POSTs it to the URL, each with a timeout, and retries a failed delivery once after RETRY_AFTER.
What went wrong is queued as text for Supervisor.log, which only the loop writes (`drain()`), and
the loop is woken to write it.

The supervisor reaps every child with waitpid(-1), the notify command included: `reaped()` hands
such a status over, and the thread reaps the command itself when the loop has not.
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable

from ..timefmt import utc_stamp
from .config import NotifyConfig
from .httpline import status_line, status_text, succeeded
from .notify import Damper, Notification

QUEUE_MAX = 256          # notifications waiting to be sent; past it they are dropped and logged
SEND_TIMEOUT = 10.0      # seconds a command may run, or a URL take to answer
RETRY_AFTER = 2.0        # seconds before the one retry of a failed delivery
_REAPED_MAX = 256        # statuses of children the loop reaped for us, kept until claimed


class _DeliveryFailed(Exception):
    """A command or URL did not take a notification; str() is what Supervisor.log says."""


def post_json(url: str, body: bytes, timeout: float = SEND_TIMEOUT) -> None:
    """POSTs body to url (HTTP/1.0, one deadline); a 2xx answer passes, anything else raises _DeliveryFailed."""
    headers = (f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
               "User-Agent: imageserving-notify\r\n")
    try:
        fields = status_line(url, "POST", body, headers, timeout)
    except TimeoutError:
        raise _DeliveryFailed(f"url {url}: no answer within {timeout:g}s") from None
    except OSError as exc:
        raise _DeliveryFailed(f"url {url}: {exc.strerror or exc}") from None
    if not succeeded(fields):
        raise _DeliveryFailed(f"url {url}: {status_text(fields)}")


class Notifier:
    """Decides in the loop's thread, sends in its own; `drain()` gives the loop what to log."""

    def __init__(self, config: NotifyConfig | None, host: str, wake: Callable[[], None] = lambda: None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.host, self.wake, self.clock = host, wake, clock
        self.config = config
        self.damper = Damper(config.min_interval if config else 0.0, clock)
        self._queue: queue.Queue[tuple[NotifyConfig, Notification]] = queue.Queue(QUEUE_MAX)
        self._lines: deque[str] = deque(maxlen=1000)
        self._reaped: dict[int, int] = {}
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._busy = 0
        self.retry_after = RETRY_AFTER

    def configure(self, config: NotifyConfig | None) -> None:
        """A reload: new settings at once; the damping history stays unless the interval changed."""
        if config is None or self.config is None or config.min_interval != self.config.min_interval:
            self.damper = Damper(config.min_interval if config else 0.0, self.clock)
        self.config = config

    # ------------------------------------------------------------- the loop's side
    def submit(self, component: str, event: str, state: str, previous: str, message: str, restarts: int) -> None:
        """Queues the event when configured for it and not damped; never blocks."""
        cfg = self.config
        if cfg is None or event not in cfg.on:
            return
        suppressed = self.damper.admit(component, event)
        if suppressed is None:
            return
        note = Notification(host=self.host, component=component, event=event, state=state, previous_state=previous,
                            time=utc_stamp(), message=message,
                            restarts=restarts, suppressed=suppressed)
        try:
            self._queue.put_nowait((cfg, note))
        except queue.Full:
            self._log(f"notify: queue full ({QUEUE_MAX}), dropped {event} of {component}")
            return
        with self._cond:
            self._busy += 1
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="notify", daemon=True)
            self._thread.start()

    def drain(self) -> list[str]:
        """Lines for Supervisor.log, written by the loop (the only writer of that file)."""
        out = []
        while self._lines:
            out.append(self._lines.popleft())
        return out

    def reaped(self, pid: int, status: int) -> None:
        """The loop reaped a child it does not know: perhaps our command; keep its status for the thread."""
        with self._cond:
            if self._busy == 0:
                return
            self._reaped[pid] = status
            while len(self._reaped) > _REAPED_MAX:
                self._reaped.pop(next(iter(self._reaped)))
            self._cond.notify_all()

    def idle(self, timeout: float) -> bool:
        """Waits until every queued notification was handled (or timeout); returns whether it was."""
        end = time.monotonic() + timeout
        with self._cond:
            while self._busy:
                left = end - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 0.05))
        return True

    # ---------------------------------------------------------- the thread's side
    def _log(self, line: str) -> None:
        self._lines.append(line)
        self.wake()

    def _run(self) -> None:
        while True:
            cfg, note = self._queue.get()
            try:
                self._deliver(cfg, note)
            finally:
                with self._cond:
                    self._busy -= 1
                    self._cond.notify_all()

    def _deliver(self, cfg: NotifyConfig, note: Notification) -> None:
        body = note.to_json()
        targets: list[tuple[str, Callable[[], None]]] = []
        if cfg.command:
            targets.append((f"command {cfg.command[0]}", lambda: self._run_command(cfg.command, body)))
        if cfg.url:
            url = cfg.url
            targets.append((f"url {url}", lambda: post_json(url, body)))
        what = f"{note.event} of {note.component}"
        for name, send in targets:
            try:
                send()
                continue
            except _DeliveryFailed as exc:
                self._log(f"notify: {what} to {name} failed ({exc}); retrying once in {self.retry_after:g}s")
            time.sleep(self.retry_after)
            try:
                send()
                self._log(f"notify: {what} to {name} sent on the retry")
            except _DeliveryFailed as exc:
                self._log(f"notify: {what} to {name} failed again ({exc}); dropped")

    def _run_command(self, argv: tuple[str, ...], body: bytes) -> None:
        try:
            proc = subprocess.Popen(list(argv), stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL, start_new_session=True, close_fds=True)
        except OSError as exc:
            raise _DeliveryFailed(f"command {argv[0]}: {exc.strerror or exc}") from None
        proc.returncode = 0  # waited for here or reaped by the supervisor's loop, never by Popen
        assert proc.stdin is not None
        try:
            proc.stdin.write(body)   # one event is far below a pipe's buffer
            proc.stdin.close()
        except OSError:
            pass                     # it did not read: its exit status says whether that was fine
        status = self._wait(proc.pid, time.monotonic() + SEND_TIMEOUT)
        if status is None:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except OSError:
                pass
            self._wait(proc.pid, time.monotonic() + 5.0)
            raise _DeliveryFailed(f"command {argv[0]}: still running after {SEND_TIMEOUT:g}s, killed")
        if os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0:
            return
        how = f"exit {os.WEXITSTATUS(status)}" if os.WIFEXITED(status) else f"signal {os.WTERMSIG(status)}"
        raise _DeliveryFailed(f"command {argv[0]}: {how}")

    def _wait(self, pid: int, deadline: float) -> int | None:
        """The command's wait status, reaped here or handed over by the loop; None at the deadline."""
        while True:
            try:
                got, status = os.waitpid(pid, os.WNOHANG)
                if got == pid:
                    return status
            except ChildProcessError:
                pass                 # the loop reaped it: its status arrives through reaped()
            with self._cond:
                if pid in self._reaped:
                    return self._reaped.pop(pid)
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._cond.wait(min(left, 0.05))
