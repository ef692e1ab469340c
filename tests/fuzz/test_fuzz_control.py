"""Fuzz the control-socket requests the Server Supervisor reads (server.ControlServer.on_client, commands).

A real Supervisor object (not started: no component is spawned) gets each request through a real
socketpair, exactly as accept() would register a client. Property: the supervisor never raises,
always answers one JSON line with a status of ok or error (bad input: code 2), and operations that
would start or stop something are only begun for well-formed requests.
"""

from __future__ import annotations

import json
import selectors
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from imageserving_fleet.agent.config import parse_config
from imageserving_fleet.agent.server import Client
from imageserving_fleet.agent.supervisor import Supervisor
from imageserving_fleet.home import Home
from imageserving_fleet.protocol import MAX_REQUEST

from .strategies import DEEP, FAST, TEXT, json_values, nested

CONFIG = "components:\n" + "".join(f"  {c}:\n    command: [/bin/true]\n" for c in ("is", "svg", "ps"))


class Harness:
    def __init__(self, root: Path) -> None:
        home = Home(str(root / "h"))
        home.prepare()
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sup = Supervisor(parse_config(CONFIG, "fuzz.yaml"), home, self.listener)
        self.begun: list[Any] = []
        self.sup.begin = lambda op, client: self.begun.append((op.kind, op.groups, op.shutdown))  # type: ignore[method-assign]
        self.sup.request_reload = lambda cfg, client: self.begun.append(("reload", cfg))  # type: ignore[method-assign]
        self.server = self.sup.server

    def ask(self, data: bytes) -> dict[str, Any] | None:
        """Sends raw bytes as one client; returns the reply (None: the operation answers later)."""
        ours, theirs = socket.socketpair()
        try:
            theirs.setblocking(False)
            client = Client(theirs, time.monotonic() + 5)
            self.server.clients[theirs.fileno()] = client
            self.server.sel.register(theirs, selectors.EVENT_READ, ("client", theirs.fileno()))
            ours.settimeout(5)
            sent = 0
            while sent < len(data) and theirs.fileno() in self.server.clients:
                chunk = data[sent:sent + 65536]
                ours.sendall(chunk)
                sent += len(chunk)
                self.server.on_client(theirs.fileno())
            if theirs.fileno() in self.server.clients:  # waiting for more, or an operation in flight
                fd = theirs.fileno()
                self.server.drop(fd, None)
                return None
            reply = b""
            while not reply.endswith(b"\n"):
                chunk = ours.recv(65536)
                if not chunk:
                    break
                reply += chunk
            return json.loads(reply)
        finally:
            ours.close()
            theirs.close()


@pytest.fixture(scope="module")
def harness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    h = Harness(tmp_path_factory.mktemp("ctl"))
    yield h
    h.sup.sel.close()
    h.listener.close()


def _check(h: Harness, data: bytes) -> None:
    before = len(h.begun)
    reply = h.ask(data)
    if reply is None:  # no reply yet: an operation was begun, or the line is not complete
        assert len(h.begun) == before + 1 or b"\n" not in data
        return
    assert reply["status"] in ("ok", "error"), reply
    if reply["status"] == "error":
        assert reply.get("code") == 2 and reply.get("reason"), reply


REQUESTS = st.fixed_dictionaries({}, optional={
    "cmd": st.one_of(st.sampled_from(["ping", "status", "start", "stop", "restart", "reload", "PING", "shutdown",
                                      ""]),
                     json_values(4)),
    "ids": st.one_of(st.lists(st.sampled_from(["is", "svg", "ps", "IS", "is;reboot", "", "../x"]), max_size=3),
                     json_values(4)),
    "shutdown": json_values(2),
}).flatmap(lambda d: st.dictionaries(TEXT, json_values(3), max_size=2).map(lambda extra: {**extra, **d}))


@settings(FAST, max_examples=100)
@given(REQUESTS)
def test_json_requests(harness: Harness, req: dict[str, Any]) -> None:
    _check(harness, json.dumps(req).encode() + b"\n")


@FAST
@given(json_values(10))
def test_any_json_value(harness: Harness, value: Any) -> None:
    _check(harness, json.dumps(value).encode() + b"\n")


@FAST
@given(st.binary(max_size=300))
def test_raw_bytes(harness: Harness, data: bytes) -> None:
    _check(harness, data + b"\n")


@pytest.mark.parametrize("data", [
    nested(30_000).encode() + b"\n",                 # used to raise RecursionError out of the event loop
    nested(30_000, '{"a":', "}").encode() + b"\n",
    b'{"cmd": "status", "ids": ["' + b"i" * 60_000 + b'"]}\n',
    b"\xff" * 1000 + b"\n",
    b'{"cmd": "status"}\n{"cmd": "stop"}\n',         # one request per connection: the second is ignored
    b'{"cmd": "ping", "n": ' + b"9" * 50_000 + b"}\n",
])
def test_hostile_requests(harness: Harness, data: bytes) -> None:
    _check(harness, data)


def test_ten_megabytes_without_a_newline_is_refused(harness: Harness) -> None:
    ours, theirs = socket.socketpair()
    with ours, theirs:
        theirs.setblocking(False)
        harness.server.clients[theirs.fileno()] = Client(theirs, time.monotonic() + 5)
        harness.server.sel.register(theirs, selectors.EVENT_READ, ("client", theirs.fileno()))
        ours.setblocking(False)
        sent = 0
        while theirs.fileno() in harness.server.clients and sent < 10 * 2**20:
            try:
                sent += ours.send(b"x" * 65536)
            except BlockingIOError:
                pass
            harness.server.on_client(theirs.fileno())
        assert theirs.fileno() not in harness.server.clients
        assert sent <= MAX_REQUEST + 4 * 65536 + 2**20  # read no more than the limit and what was in flight
        ours.setblocking(True)
        ours.settimeout(5)
        reply = b""
        while not reply.endswith(b"\n"):
            try:
                chunk = ours.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            reply += chunk
        if reply:
            doc = json.loads(reply.splitlines()[-1])
            assert doc["code"] == 2 and "larger than" in doc["reason"]


@pytest.mark.slow
@DEEP
@given(REQUESTS)
def test_json_requests_deep(harness: Harness, req: dict[str, Any]) -> None:
    _check(harness, json.dumps(req).encode() + b"\n")
