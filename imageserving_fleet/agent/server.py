"""The control socket's server side: accept, read one request line, answer one reply line, close.

Non-blocking and driven by the supervisor's selector loop. Peers of another uid are refused (root
excepted). What a request means is not decided here: `handle` (the commands package) returns the
reply at once, or None when an operation will answer later through `drop`.
"""

from __future__ import annotations

import json
import os
import selectors
import socket
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..protocol import BAD_ARGS, MAX_REQUEST, NO_ANSWER, QUIET_REQUESTS, RequestError, error
from ..untrusted import escape
from .logfiles import EventLog

CLIENT_IDLE = 5.0  # seconds a control client may take to send its request
_SO_PEERCRED = getattr(socket, "SO_PEERCRED", 17)

Handler = Callable[[dict[str, Any], "Client"], "dict[str, Any] | None"]


@dataclass
class Client:
    """One control connection: a request line in, one reply line out, then closed."""

    sock: socket.socket
    deadline: float
    buf: bytearray = field(default_factory=bytearray)
    uid: int = -1           # the peer's uid (SO_PEERCRED)
    op: Any = None          # the operation that will answer, once the request is read
    waiting: bool = False   # queued behind another operation (a reload behind a reload)


class ControlServer:
    """Owns the listening socket and every connected client."""

    def __init__(self, listener: socket.socket, sel: selectors.BaseSelector, events: EventLog,
                 handle: Handler) -> None:
        self.listener, self.sel, self.events, self.handle = listener, sel, events, handle
        self.clients: dict[int, Client] = {}

    def register(self) -> None:
        self.listener.setblocking(False)
        self.sel.register(self.listener, selectors.EVENT_READ, "listen")

    def accept(self) -> None:
        while True:
            try:
                sock, _ = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return  # e.g. EMFILE: the client retries; we must not die
            creds = sock.getsockopt(socket.SOL_SOCKET, _SO_PEERCRED, struct.calcsize("3i"))
            _, uid, _ = struct.unpack("3i", creds)
            if uid not in (os.geteuid(), 0):
                self.events.line(f"refused a control connection from uid {uid}")
                send(sock, error(NO_ANSWER, "permission denied: not the supervisor's user"))
                sock.close()
                continue
            sock.setblocking(False)
            self.clients[sock.fileno()] = Client(sock, time.monotonic() + CLIENT_IDLE, uid=uid)
            self.sel.register(sock, selectors.EVENT_READ, ("client", sock.fileno()))

    def on_client(self, fd: int) -> None:
        client = self.clients.get(fd)
        if client is None:
            return
        try:
            data = client.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self.drop(fd, None)
            return
        if client.op is not None or client.waiting:
            return  # one request per connection: ignore anything after it
        client.buf += data
        if b"\n" not in client.buf:
            if len(client.buf) > MAX_REQUEST:
                self.drop(fd, error(BAD_ARGS, f"request larger than {MAX_REQUEST} bytes"))
            return
        line = bytes(client.buf.split(b"\n", 1)[0])
        try:
            req = json.loads(line)
            if not isinstance(req, dict):
                raise ValueError("not an object")
            self.log_request(req, client)
            reply = self.handle(req, client)
        except RequestError as exc:
            reply = error(exc.code, exc.reason)
        except (ValueError, TypeError, KeyError) as exc:
            reply = error(BAD_ARGS, f"bad request: {exc}")
        except RecursionError:  # `[[[[…` a few thousand deep: json.loads recurses per level
            reply = error(BAD_ARGS, "bad request: nested too deeply")
        if reply is not None:
            self.drop(fd, reply)

    def log_request(self, req: dict[str, Any], client: Client) -> None:
        """A change asked over the socket is logged with who asked (the client's `user`) and the peer uid."""
        cmd = req.get("cmd")
        if cmd in QUIET_REQUESTS or not isinstance(cmd, str):
            return
        raw_ids = req.get("ids")
        ids: list[Any] = raw_ids if isinstance(raw_ids, list) else []
        what = " ".join(escape(str(x), tabs=False) for x in [cmd, *ids][:20])
        user = escape(str(req.get("user") or "unknown"), tabs=False)[:100]
        self.events.line(f"{what}: asked by {user} (uid {client.uid})")

    def expire(self, now: float) -> None:
        """Drops clients that connected and never sent their request."""
        for fd, client in list(self.clients.items()):
            if client.op is None and not client.waiting and now > client.deadline:
                self.drop(fd, error(BAD_ARGS, "request not received in time"))

    def next_deadline(self) -> float | None:
        times = [c.deadline for c in self.clients.values() if c.op is None and not c.waiting]
        return min(times) if times else None

    def answer(self, client: Client, reply: dict[str, Any]) -> None:
        self.drop(client.sock.fileno(), reply)

    def drop(self, fd: int, reply: dict[str, Any] | None) -> None:
        client = self.clients.pop(fd, None)
        if client is None:
            return
        try:
            self.sel.unregister(client.sock)
        except (KeyError, ValueError):
            pass
        if reply is not None:
            send(client.sock, reply)
        client.sock.close()


def send(sock: socket.socket, reply: dict[str, Any]) -> None:
    try:
        sock.setblocking(True)
        sock.settimeout(1.0)  # a client that does not read its reply is not our problem
        sock.sendall(json.dumps(reply).encode() + b"\n")
    except OSError:
        pass
