"""What an SSH transport runs over: a TCP socket, a channel through a jump host, or a ProxyCommand.

    Resolver         DNS: each (name, port) looked up once per run, in a thread, within a deadline
    TcpSocket        a TCP socket that acknowledges at once (TCP_QUICKACK)
    ChannelSocket    a paramiko channel dressed as a socket, for a Transport nested in a jump host
    ProxySocket      one end of a socketpair whose other end is a ProxyCommand
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import tempfile
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import IO, Any

from imageserving_fleet.errors import Reason, UnreachableError

from .deadline import remaining


class Resolver:
    """Host name lookups for one run: each name once, and a caller never waits past its deadline."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._dns: dict[tuple[str, int], Future[list[Any]]] = {}
        self._pool: ThreadPoolExecutor | None = None
        self._closed = False

    def addresses(self, name: str, hostname: str, port: int, deadline: float) -> list[Any]:
        """getaddrinfo()'s answer for a stream socket; raises UnreachableError("dns") for `name`."""
        try:  # an address literal needs no lookup (and no thread)
            return socket.getaddrinfo(hostname, port, type=socket.SOCK_STREAM, flags=socket.AI_NUMERICHOST)
        except socket.gaierror:
            pass
        key = (hostname, port)
        with self._lock:
            future = self._dns.get(key)
            if future is None:
                if self._closed:
                    raise UnreachableError(name, Reason.CONNECTION_LOST, "the run was aborted")
                if self._pool is None:
                    # getaddrinfo cannot be interrupted: a thread lets us stop waiting at the deadline.
                    self._pool = ThreadPoolExecutor(max_workers=16, thread_name_prefix="fleet-dns")
                future = self._dns[key] = self._pool.submit(
                    socket.getaddrinfo, hostname, port, type=socket.SOCK_STREAM)
        try:
            return future.result(timeout=remaining(deadline))
        except TimeoutError:
            raise UnreachableError(name, Reason.DNS, f"looking up {hostname} took too long") from None
        except socket.gaierror as exc:
            if exc.errno == socket.EAI_AGAIN:  # a transient failure: let the next host try again
                with self._lock:
                    self._dns.pop(key, None)
            raise UnreachableError(name, Reason.DNS, f"cannot resolve {hostname}: {exc.strerror}") from None

    def close(self) -> None:
        with self._lock:
            self._closed = True
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)


class ChannelSocket:
    """A channel through a jump host, dressed as the socket a nested Transport reads and writes.

    Closing a channel whose jump host is already gone raises EOFError; inside paramiko's reader
    thread that would print a traceback on the user's terminal, so close() here never raises.
    """

    def __init__(self, channel: Any) -> None:
        self.channel = channel

    def send(self, data: bytes) -> int:
        return int(self.channel.send(data))

    def recv(self, size: int) -> bytes:
        return bytes(self.channel.recv(size))

    def settimeout(self, timeout: float | None) -> None:
        self.channel.settimeout(timeout)

    @property
    def _closed(self) -> bool:  # read by Transport.stop_thread
        return bool(self.channel.closed)

    def close(self) -> None:
        try:
            self.channel.close()
        except Exception:  # noqa: BLE001 - the jump host is gone: the channel is closed anyway
            pass


class TcpSocket(socket.socket):
    """A TCP socket that acknowledges what it receives at once.

    Linux delays ACKs while sshd (Nagle on, for non-interactive sessions) holds its next small
    packet until the ACK comes: the first channel open stalled 40 ms per host. TCP_QUICKACK
    does not stick, hence once per recv (a cheap setsockopt); measured here: 75 -> 30 ms/host.
    """

    def recv(self, size: int, flags: int = 0) -> bytes:
        if _QUICKACK is not None:
            try:
                self.setsockopt(socket.IPPROTO_TCP, _QUICKACK, 1)
            except OSError:
                pass
        return super().recv(size, flags)


_QUICKACK: int | None = getattr(socket, "TCP_QUICKACK", None)


class ProxySocket(socket.socket):
    """One end of a socketpair whose other end is a ProxyCommand's stdin and stdout.

    paramiko's own ProxyCommand spins on EOF and never reads the command's stderr; a real socket
    gives timeouts, shutdown and EOF for free, which is also how OpenSSH runs a ProxyCommand.
    """

    process: subprocess.Popen[bytes] | None = None
    errors: IO[bytes] | None = None

    @classmethod
    def spawn(cls, command: str) -> ProxySocket:
        ours, theirs = socket.socketpair()
        sock = cls(ours.family, ours.type, ours.proto, fileno=ours.detach())
        sock.errors = tempfile.TemporaryFile()
        try:
            sock.process = subprocess.Popen(["/bin/sh", "-c", command], stdin=theirs.fileno(),
                                            stdout=theirs.fileno(), stderr=sock.errors,
                                            start_new_session=True)
        except OSError:
            sock.close()
            raise
        finally:
            theirs.close()
        return sock

    def error_text(self) -> str:
        """The last line the command wrote on stderr, to explain why it ended."""
        if self.errors is None or self.errors.closed:
            return ""
        self.errors.seek(0)
        lines = self.errors.read()[-2000:].decode(errors="replace").strip().splitlines()
        return lines[-1] if lines else ""

    def close(self) -> None:
        super().close()
        if self.process is not None and self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGTERM)
            except OSError:
                pass

