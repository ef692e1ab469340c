"""A connector that contacts nothing, for tests of the fan-out's logic (as httpx's MockTransport).

    MockConnector(handler)             every command any session runs goes to handler(request)
      handler(MockRequest) -> CommandResult, or raises UnreachableError like a real session

A handler may block (to play a hung host): `request.aborted` is set when the fan-out gives the
host up, so a test never leaves a thread behind. The connector counts what the fan-out did:
connections opened, commands running at once (the --forks bound), and whether it was closed.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from imageserving_fleet.errors import OutputTooLargeError, Reason, UnreachableError

from .base import MAX_OUTPUT, CommandResult
from .settings import destination_of


@dataclass
class MockRequest:
    """One command as a session was asked to run it."""

    host: str
    command: str
    stdin: bytes | None
    timeout: float
    aborted: threading.Event = field(default_factory=threading.Event)


Handler = Callable[[MockRequest], CommandResult]


class MockSession:
    """A Session whose commands the connector's handler answers."""

    def __init__(self, host: str, owner: MockConnector) -> None:
        self.host, self._owner = host, owner
        self.aborted = threading.Event()
        self.closed = False

    def run(self, command: str, *, stdin: bytes | None = None, timeout: float,
            max_output: int = MAX_OUTPUT) -> CommandResult:
        if self.aborted.is_set():
            raise UnreachableError(self.host, Reason.CONNECTION_LOST, "aborted")
        request = MockRequest(self.host, command, stdin, timeout, self.aborted)
        with self._owner.lock:
            self._owner.requests.append(request)
            self._owner.running += 1
            self._owner.most_running = max(self._owner.most_running, self._owner.running)
        try:
            result = self._owner.handler(request)
        finally:
            with self._owner.lock:
                self._owner.running -= 1
        if self.aborted.is_set():
            raise UnreachableError(self.host, Reason.CONNECTION_LOST, "aborted")
        if len(result.stdout) + len(result.stderr) > max_output:
            raise OutputTooLargeError(self.host, max_output)
        return result

    def sftp(self) -> Any:
        raise NotImplementedError("MockSession has no SFTP")

    def put(self, local: str, remote: str, *, timeout: float | None = None) -> None:
        with self._owner.lock:
            self._owner.uploads.append((self.host, local, remote))

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.aborted.set()


class MockConnector:
    """Stands in for Connector: sessions whose commands `handler` answers; `on_connect(host)`,
    when given, runs first and may raise UnreachableError (a host that cannot be reached)."""

    def __init__(self, handler: Handler, on_connect: Callable[[str], None] | None = None) -> None:
        self.handler, self.on_connect = handler, on_connect
        self.lock = threading.Lock()
        self.requests: list[MockRequest] = []
        self.uploads: list[tuple[str, str, str]] = []
        self.connects: list[str] = []
        self.sessions: list[MockSession] = []
        self.running = self.most_running = 0
        self.closed = False

    def connect(self, where: Any, deadline: float) -> MockSession:
        name = destination_of(where).name
        if self.closed:
            raise UnreachableError(name, Reason.CONNECTION_LOST, "the run was aborted")
        with self.lock:
            self.connects.append(name)
        if self.on_connect is not None:
            self.on_connect(name)
        session = MockSession(name, self)
        with self.lock:
            self.sessions.append(session)
        return session

    def close(self) -> None:
        self.closed = True
        with self.lock:
            sessions = list(self.sessions)
        for session in sessions:
            session.abort()
