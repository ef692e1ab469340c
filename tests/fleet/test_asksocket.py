"""Status over the socket, the pure parts: reply -> agent output, socket paths, the cache, the pool."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from imageserving_fleet.errors import Reason, UnreachableError
from imageserving_fleet.fleet.asksocket import (
    SocketAsker,
    SocketCache,
    cache_key,
    home_socket,
    reply_result,
    status_ids,
    usable_socket,
)
from imageserving_fleet.fleet.results import Result
from imageserving_fleet.fleet.ssh.pool import Pool, backoff_delay
from imageserving_fleet.fleet.target import FleetOptions, Target, make_target

DOC = {"schema": 1, "host": "h", "agent_version": "0.1.0", "time": "t",
       "supervisor": {"state": "RUNNING", "pid": 1, "socket": "/h/run/supervisor.sock"},
       "components": [{"id": "is", "state": "RUNNING"}, {"id": "ps", "state": "BACKOFF"}], "message": ""}
UP = {**DOC, "components": [{"id": "is", "state": "RUNNING"}]}


def _line(obj: Any) -> bytes:
    return json.dumps(obj).encode() + b"\n"


HELD = {**DOC, "components": [{"id": "is", "state": "RUNNING"}, {"id": "ps", "state": "STOPPED", "held": True}]}
UNREADABLE = "agent error (exit 4): unreadable reply from the Server Supervisor"


@pytest.mark.parametrize(("reply", "ids", "verdict", "reason"), [
    (_line({"status": "ok", "result": UP}), [], Result.OK, ""),
    (_line({"status": "ok", "result": DOC}), [], Result.DEGRADED, "not RUNNING: ps BACKOFF"),
    (_line({"status": "ok", "result": HELD}), [], Result.OK, "held down: ps"),
    (_line({"status": "ok", "result": HELD}), ["ps"], Result.OK, "held down: ps"),  # as the fleet judges exec
    (_line({"status": "error", "code": 2, "reason": "unknown component 'x'; valid ids: is"}), [],
     Result.FAILED, "agent error (exit 2): unknown component 'x'; valid ids: is"),
    (_line({"status": "error", "code": 4, "reason": "permission denied: not the supervisor's user"}), [],
     Result.FAILED, "agent error (exit 4): permission denied: not the supervisor's user"),
    (_line({"status": "error", "code": "x"}), [], Result.FAILED, UNREADABLE),
    (b"garbage\n", [], Result.FAILED, UNREADABLE),
    (_line([1]), [], Result.FAILED, UNREADABLE),
    (_line({"status": "ok", "result": {"components": 3}}), [], Result.FAILED,
     "bad status: unsupported status schema None (expected 1); output began '{\"components\": 3}'"),
])
def test_a_reply_gets_the_verdict_the_agent_would_lead_to(reply: bytes, ids: list[str], verdict: Result,
                                                         reason: str) -> None:
    res = reply_result("h", reply, ids, 0.0)
    assert (res.result, res.reason) == (verdict, reason)


@pytest.mark.parametrize(("result", "ids", "message"), [
    (DOC, [], "not RUNNING: ps"), (UP, [], ""), (HELD, [], ""), (HELD, ["ps"], "not RUNNING: ps"),
    ({**DOC, "message": "its own"}, [], "its own")])
def test_the_document_carries_the_message_like_the_agent(result: dict[str, Any], ids: list[str], message: str) -> None:
    res = reply_result("h", _line({"status": "ok", "result": result}), ids, 0.0)
    assert res.status is not None and res.status.message == message
    assert res.to_dict()["status"]["message"] == message


@pytest.mark.parametrize(("args", "ids"), [
    (("status", "--json"), []), (("status", "is", "--json"), ["is"]), (("status",), [])])
def test_status_ids(args: tuple[str, ...], ids: list[str]) -> None:
    assert status_ids(args) == ids


@pytest.mark.parametrize(("path", "ok"), [
    ("/a/run/supervisor.sock", True), ("rel/x.sock", False), ("/" + "x" * 200, False),
    ("/a\0b", False), (3, False), (None, False)])
def test_usable_socket(path: Any, ok: bool) -> None:
    assert (usable_socket(path) is not None) == ok


def _target(**hv: Any) -> Target:
    return make_target("w", {"ansible_host": "10.0.0.1", **hv}, FleetOptions())


@pytest.mark.parametrize(("hv", "expected"), [
    ({"imageserving_home": "/srv/is"}, "/srv/is/run/supervisor.sock"),
    ({"imageserving_home": "/srv/is/"}, "/srv/is/run/supervisor.sock"),
    ({"imageserving_home": "~/is"}, None),
    ({}, None),
])
def test_home_socket(hv: dict[str, Any], expected: str | None) -> None:
    assert home_socket(_target(**hv)) == expected


def test_become_and_local_targets_are_never_asked_over_the_socket(tmp_path: Path) -> None:
    asker = SocketAsker(SocketCache(str(tmp_path)))
    assert asker.socket_path(_target(imageserving_home="/srv/is")) is not None
    assert asker.socket_path(_target(imageserving_home="/srv/is", ansible_become=True)) is None
    assert asker.socket_path(_target(imageserving_home="/srv/is", ansible_connection="local")) is None


def test_cache_round_trip_keys_and_corruption(tmp_path: Path) -> None:
    a, b = _target(), _target(imageserving_home="~/other")
    assert cache_key(a) != cache_key(b)
    SocketCache(str(tmp_path / "c")).put(a, "/x/run/supervisor.sock")
    assert SocketCache(str(tmp_path / "c")).get(a) == "/x/run/supervisor.sock"
    assert SocketCache(str(tmp_path / "c")).get(b) is None
    assert [p.name for p in (tmp_path / "c").iterdir()] == [cache_key(a) + ".json"]  # no temp file left
    for junk in (b"\xff\xfe", b"[]", b'{"socket": "relative"}', b"{" * 5000):
        (tmp_path / "c" / (cache_key(a) + ".json")).write_bytes(junk)
        assert SocketCache(str(tmp_path / "c")).get(a) is None
    unwritable = tmp_path / "file"
    unwritable.write_text("")
    SocketCache(str(unwritable / "sub")).put(a, "/x.sock")  # ignored, never raised


# --------------------------------------------------------------------------- pool

@pytest.mark.parametrize(("failures", "delay"), [(0, 0), (1, 1), (2, 2), (3, 4), (6, 32), (7, 60), (50, 60)])
def test_backoff_is_exponential_and_capped(failures: int, delay: float) -> None:
    assert backoff_delay(failures) == delay


class FakeSession:
    def __init__(self) -> None:
        self.alive, self.closed = True, False

    def close(self) -> None:
        self.closed, self.alive = True, False

    def abort(self) -> None:
        self.close()


class FakeConnector:
    def __init__(self) -> None:
        self.calls, self.fail = 0, False

    def connect(self, target: Target, deadline: float) -> FakeSession:
        self.calls += 1
        if self.fail:
            raise UnreachableError(target.name, Reason.REFUSED, "connection refused")
        return FakeSession()


def test_pool_reuses_reconnects_backs_off_and_reaps() -> None:
    now = [100.0]
    connector = FakeConnector()
    pool = Pool(connector, idle_close=60, clock=lambda: now[0])
    t = _target()
    first = pool.get(t, 0)
    assert pool.get(t, 0) is first and connector.calls == 1
    first.alive = False  # found dead: replaced on the next poll
    second = pool.get(t, 0)
    assert second is not first and first.closed and connector.calls == 2
    pool.lost(t.name)
    connector.fail = True
    for expected_calls, wait in ((3, 1.0), (4, 2.0), (5, 4.0)):
        with pytest.raises(UnreachableError):
            pool.get(t, 0)
        assert connector.calls == expected_calls
        with pytest.raises(UnreachableError, match="next attempt in"):
            pool.get(t, 0)  # inside the backoff: no connect
        assert connector.calls == expected_calls
        now[0] += wait
    connector.fail = False
    third = pool.get(t, 0)
    assert connector.calls == 6 and pool.sessions() == 1
    now[0] += 61
    assert pool.reap() == 1 and third.closed and pool.sessions() == 0
    pool.close()
