"""Commands on the controller itself (ansible_connection=local), with SSH's semantics.

`/bin/sh -c` in the home directory, in its own process group so a timeout or an abort kills the
command's children too; the same deadline, output bound and exit codes as an SshSession.
"""

from __future__ import annotations

import os
import selectors
import shutil
import signal
import subprocess
import threading
import time
from typing import TYPE_CHECKING

from imageserving_fleet.errors import HostError, OutputTooLargeError, Reason, UnreachableError, UsageError

from .base import MAX_OUTPUT, CommandResult
from .deadline import remaining
from .session import EXIT_LINGER, POLL

if TYPE_CHECKING:
    import paramiko


class LocalSession:
    """Runs commands on the controller itself (ansible_connection=local), like SSH would remotely."""

    def __init__(self, host: str) -> None:
        self.host = host
        self._lock = threading.Lock()
        self._running: set[subprocess.Popen[bytes]] = set()
        self._aborted = False

    def run(self, command: str, *, stdin: bytes | None = None, timeout: float,
            max_output: int = MAX_OUTPUT) -> CommandResult:
        """Runs `/bin/sh -c command` in the home directory, in its own process group."""
        deadline = time.monotonic() + timeout
        if self._aborted:
            raise UnreachableError(self.host, Reason.CONNECTION_LOST, "aborted")
        process = subprocess.Popen(
            ["/bin/sh", "-c", command], stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=os.path.expanduser("~"),
            # its own group, so a timeout kills the command's children too, not only the shell
            start_new_session=True)
        with self._lock:
            self._running.add(process)
        try:
            out, err = self._pump(process, stdin, deadline, timeout, max_output)
            code = process.wait(timeout=remaining(deadline))
        except subprocess.TimeoutExpired:
            raise UnreachableError(self.host, Reason.TIMEOUT, f"command did not finish within {timeout:g}s"
                                   ) from None
        finally:
            with self._lock:
                self._running.discard(process)
            for pipe in (process.stdin, process.stdout, process.stderr):
                if pipe is not None:
                    pipe.close()
            if process.poll() is None:
                _killpg(process)
                process.wait()
        if self._aborted:
            raise UnreachableError(self.host, Reason.CONNECTION_LOST, "aborted")
        # A signal death reads -N from Popen: report it as a shell would, 128+N.
        return CommandResult(code if code >= 0 else 128 - code, out, err)

    def _pump(self, process: subprocess.Popen[bytes], stdin: bytes | None, deadline: float,
              timeout: float, max_output: int) -> tuple[bytes, bytes]:
        assert process.stdout is not None and process.stderr is not None
        chunks: dict[int, bytearray] = {process.stdout.fileno(): bytearray(),
                                         process.stderr.fileno(): bytearray()}
        pending = memoryview(stdin) if stdin else None
        total = 0
        exited_at: float | None = None
        with selectors.DefaultSelector() as selector:
            for fd in chunks:
                selector.register(fd, selectors.EVENT_READ)
            if pending is not None and process.stdin is not None:
                os.set_blocking(process.stdin.fileno(), False)
                selector.register(process.stdin.fileno(), selectors.EVENT_WRITE)
            while any(fd in chunks for fd in selector.get_map()):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise subprocess.TimeoutExpired(process.args, timeout)
                for key, _ in selector.select(min(remaining, POLL)):
                    if key.fd in chunks:
                        data = os.read(key.fd, 65536)
                        if not data:
                            selector.unregister(key.fd)
                            continue
                        chunks[key.fd] += data
                        total += len(data)
                        if total > max_output:
                            raise OutputTooLargeError(self.host, max_output)
                    elif pending is not None:
                        try:
                            written = os.write(key.fd, pending[:65536])
                        except BrokenPipeError:
                            written = len(pending)  # it stopped reading: fine, as with a pipe
                        pending = pending[written:] if written < len(pending) else None
                        if pending is None:
                            selector.unregister(key.fd)
                            assert process.stdin is not None
                            process.stdin.close()
                if process.poll() is not None:
                    # Exited, but a background child may hold the pipes: wait a moment, not forever.
                    exited_at = exited_at or time.monotonic()
                    if time.monotonic() - exited_at >= EXIT_LINGER:
                        break
        return bytes(chunks[process.stdout.fileno()]), bytes(chunks[process.stderr.fileno()])

    def sftp(self) -> paramiko.SFTPClient:
        raise UsageError(f"host {self.host} uses a local connection: there is no SFTP; use put()")

    def put(self, local: str, remote: str, *, timeout: float | None = None) -> None:
        """Copies the file, keeping its permission bits; a relative or `~/` path is under home."""
        target = os.path.join(os.path.expanduser("~"), os.path.expanduser(remote))
        try:
            shutil.copyfile(local, target)
            shutil.copymode(local, target)
        except OSError as exc:
            raise HostError(self.host, "upload failed", f"{remote}: {exc.strerror or exc}") from None

    def close(self) -> None:
        pass

    def abort(self) -> None:
        self._aborted = True
        with self._lock:
            running = list(self._running)
        for process in running:
            _killpg(process)


def _killpg(process: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except OSError:
        pass
