"""An authenticated SSH connection to one host: commands (one channel each), SFTP and uploads.

Every wait is bounded by the deadline watchdog; every failure raises UnreachableError (or
HostError for an upload the server refused), never a paramiko exception.
"""

from __future__ import annotations

import os
import threading
import time
from typing import TYPE_CHECKING, Any

from imageserving_fleet.errors import HostError, OutputTooLargeError, Reason, UnreachableError

from .base import MAX_OUTPUT, CommandResult, load_paramiko
from .deadline import WATCHDOG, close_all, hard_close, remaining

if TYPE_CHECKING:
    import paramiko

# After a command's exit status arrives, how long to wait for its output to end. A background
# child that kept stdout open would otherwise hold the run forever (OpenSSH's ssh does hang).
EXIT_LINGER = 1.0
# How often a waiting run() looks at state that raises no wakeup of its own (the exit status).
POLL = 0.2
# How long closing a channel may take before the whole connection is given up as hung.
CLOSE_GRACE = 2.0


class _Wakeup:
    """An Event paramiko's stdout and stderr buffers both set, and only we clear.

    A buffer clears its event when *it* runs dry, which could swallow a wakeup meant for the other.
    """

    def __init__(self) -> None:
        self._event = threading.Event()

    def set(self) -> None:
        self._event.set()

    def clear(self) -> None:
        pass

    def reset(self) -> None:
        self._event.clear()

    def wait(self, timeout: float) -> bool:
        return self._event.wait(timeout)


class SshSession:
    """An authenticated SSH connection to one host; run() opens one channel per command on it."""

    def __init__(self, host: str, transport: Any, sock: Any) -> None:
        self.host, self.transport, self._sock = host, transport, sock
        self._aborted = False

    @property
    def alive(self) -> bool:
        return bool(self.transport.is_active()) and not self._aborted

    def run(self, command: str, *, stdin: bytes | None = None, timeout: float,
            max_output: int = MAX_OUTPUT) -> CommandResult:
        """Runs the command with the user's shell on the host; UnreachableError if it cannot finish."""
        deadline = time.monotonic() + timeout
        channel: list[Any] = []
        alarm = WATCHDOG.at(deadline, lambda: close_all(channel))
        try:
            if not self.alive:
                raise self._lost("the connection is closed")
            chan = self.transport.open_session(timeout=remaining(deadline))
            channel.append(chan)
            wake = _Wakeup()
            chan.in_buffer.set_event(wake)
            chan.in_stderr_buffer.set_event(wake)
            chan.exec_command(command)  # waits for sshd's answer: the alarm bounds that wait
            return self._pump(chan, wake, stdin, deadline, timeout, max_output)
        except HostError:  # UnreachableError, OutputTooLargeError: already said
            raise
        except Exception as exc:
            if alarm.fired or time.monotonic() >= deadline:
                raise UnreachableError(self.host, Reason.TIMEOUT, f"command did not finish within {timeout:g}s"
                                       ) from None
            if self._aborted or not self.transport.is_active():
                raise self._lost(f"{type(exc).__name__}: {exc}") from None
            raise UnreachableError(self.host, Reason.SSH_ERROR, f"{type(exc).__name__}: {exc}") from None
        finally:
            alarm.cancel()
            for chan in channel:
                self._close_channel(chan)

    def _pump(self, chan: Any, wake: _Wakeup, stdin: bytes | None, deadline: float, timeout: float,
              max_output: int) -> CommandResult:
        """Feeds stdin and collects stdout and stderr until the command ends or time runs out."""
        out, err = bytearray(), bytearray()
        pending = memoryview(stdin) if stdin else None
        if pending is None:
            chan.shutdown_write()  # stdin at EOF at once, as `ssh -n` does: no command waits for it
        chan.settimeout(0.0)
        exited_at: float | None = None
        while True:
            wake.reset()
            while chan.recv_ready() or chan.recv_stderr_ready():
                if chan.recv_ready():
                    out += chan.recv(65536)
                if chan.recv_stderr_ready():
                    err += chan.recv_stderr(65536)
                if len(out) + len(err) > max_output:  # checked per read: a flood must not fill memory
                    raise OutputTooLargeError(self.host, max_output)
            while pending is not None and chan.send_ready():
                try:
                    sent = chan.send(pending[:32768])
                except OSError:
                    pending = None  # the command closed its stdin: fine, as with a pipe
                    break
                pending = pending[sent:] if sent < len(pending) else None
                if pending is None:
                    chan.shutdown_write()
            # Not exit_status_ready(): it is also true of a channel merely closed (by an abort...).
            if chan.exit_status != -1:
                if chan.eof_received or chan.closed:
                    if not (chan.recv_ready() or chan.recv_stderr_ready()):
                        break
                    continue
                now = time.monotonic()
                exited_at = exited_at or now
                if now - exited_at >= EXIT_LINGER:
                    break
            elif chan.closed:
                if time.monotonic() >= deadline:  # the watchdog closed it
                    raise UnreachableError(self.host, Reason.TIMEOUT,
                                           f"command did not finish within {timeout:g}s")
                if self._aborted or not self.transport.is_active():
                    raise self._lost("closed during the command")
                if not (chan.recv_ready() or chan.recv_stderr_ready()):
                    break
                continue
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise UnreachableError(self.host, Reason.TIMEOUT, f"command did not finish within {timeout:g}s")
            wait = min(remaining, POLL)
            if pending is not None and not chan.send_ready():
                wait = min(wait, 0.01)  # no wakeup when the remote window reopens
            wake.wait(wait)
        status = chan.exit_status
        # -1: no exit-status (the command died of a signal): report 255, as the ssh client does.
        return CommandResult(status if status >= 0 else 255, bytes(out), bytes(err))

    def open_streamlocal(self, path: str, *, timeout: float) -> Any:
        """A channel to a Unix socket on the host (direct-streamlocal@openssh.com; streamlocal.py)."""
        from .streamlocal import open_streamlocal

        return open_streamlocal(self.transport, path, timeout=timeout)

    def _close_channel(self, chan: Any) -> None:
        # Closing sends a message, which blocks on a hung connection: give it a moment, then abort.
        guard = WATCHDOG.at(time.monotonic() + CLOSE_GRACE, self.abort)
        hard_close(chan)
        guard.cancel()

    def _lost(self, detail: str) -> UnreachableError:
        return UnreachableError(self.host, Reason.CONNECTION_LOST, "aborted" if self._aborted else detail)

    def sftp(self, *, timeout: float = 30.0) -> paramiko.SFTPClient:
        """An SFTP client on this connection; `timeout` bounds the opening and each later request."""
        deadline = time.monotonic() + timeout
        opened: list[Any] = []
        alarm = WATCHDOG.at(deadline, lambda: close_all(opened))
        try:
            chan = self.transport.open_session(timeout=remaining(deadline))
            opened.append(chan)
            chan.invoke_subsystem("sftp")
            client = load_paramiko().SFTPClient(chan)
            chan.settimeout(timeout)
        except Exception as exc:
            for chan in opened:
                hard_close(chan)
            if alarm.fired:
                raise UnreachableError(self.host, Reason.TIMEOUT, f"no SFTP session within {timeout:g}s") from None
            if not self.alive:
                raise self._lost(str(exc)) from None
            raise UnreachableError(self.host, Reason.SSH_ERROR, f"SFTP: {exc}") from None
        finally:
            alarm.cancel()
        return client

    def put(self, local: str, remote: str, *, timeout: float | None = None) -> None:
        """Uploads a file over SFTP, keeping its permission bits; relative paths are under home."""
        remote = remote.removeprefix("~/")  # SFTP paths are already relative to the home directory
        client = self.sftp(timeout=min(timeout, 30.0) if timeout else 30.0)
        chan = client.get_channel()
        alarm = WATCHDOG.at(time.monotonic() + timeout, lambda: hard_close(chan)) if timeout else None
        try:
            client.put(local, remote, confirm=True)
            client.chmod(remote, os.stat(local).st_mode & 0o7777)
        except Exception as exc:
            if alarm is not None and alarm.fired:
                raise UnreachableError(self.host, Reason.TIMEOUT, f"upload of {local} took more than {timeout:g}s"
                                       ) from None
            if not self.alive:
                raise self._lost(f"during the upload of {local}") from None
            if isinstance(exc, OSError) and exc.errno is not None:  # the server's answer: no such dir...
                raise HostError(self.host, "upload failed", f"{remote}: {exc.strerror or exc}") from None
            raise UnreachableError(self.host, Reason.SSH_ERROR, f"upload of {local}: {type(exc).__name__}: {exc}"
                                   ) from None
        finally:
            if alarm is not None:
                alarm.cancel()
            self._close_channel(chan)

    def close(self) -> None:
        self.transport.close()
        hard_close(self._sock)

    def abort(self) -> None:
        self._aborted = True
        hard_close(self._sock)  # wakes paramiko's reader thread, which ends the transport
        self.transport.close()

