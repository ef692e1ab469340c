"""The connection holder's pure parts and the client's fallbacks, without SSH (SPEC §9).

A fake holder (a thread on a unix socket that says what the test tells it) stands for one that
dies mid-command; a recording stand-in stands for the direct fan-out.
"""

from __future__ import annotations

import os
import socket
import tempfile
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from imageserving_fleet.errors import HolderError, UsageError
from imageserving_fleet.fleet.jobs import RELOAD, STATUS, VERSION, Job, Kind, action_job, logs_job, push_job, step_job
from imageserving_fleet.fleet.persist import wire
from imageserving_fleet.fleet.persist.client import HOLDER_LOST, HolderFleet
from imageserving_fleet.fleet.persist.kept import Kept
from imageserving_fleet.fleet.persist.place import Place, check_private, persist_seconds
from imageserving_fleet.fleet.results import HostResult, Result, Via
from imageserving_fleet.fleet.target import FleetOptions, Target, make_target
from imageserving_fleet.schema import parse_status

STATUS_DOC = {"schema": 1, "host": "h", "agent_version": "0.1.0", "time": "2026-01-01T00:00:00Z",
              "supervisor": {"state": "RUNNING", "pid": 7, "socket": "/x/s.sock"},
              "components": [{"id": "ps", "state": "RUNNING", "pid": 8}], "future_field": [1, 2]}


# ------------------------------------------------------------------ --persist
@pytest.mark.parametrize(("option", "env", "expected"), [
    (None, {}, 60.0),
    (None, {"IMAGESERVING_PERSIST": "0"}, 0.0),
    (None, {"IMAGESERVING_PERSIST": " 2.5 "}, 2.5),
    (None, {"IMAGESERVING_PERSIST": ""}, 60.0),
    (0.0, {"IMAGESERVING_PERSIST": "30"}, 0.0),      # the option wins over the variable
    (15.0, {}, 15.0),
])
def test_persist_seconds(option: float | None, env: dict[str, str], expected: float) -> None:
    assert persist_seconds(option, env) == expected


@pytest.mark.parametrize(("option", "env", "names"), [
    (None, {"IMAGESERVING_PERSIST": "soon"}, "IMAGESERVING_PERSIST"),
    (None, {"IMAGESERVING_PERSIST": "-1"}, "IMAGESERVING_PERSIST"),
    (-1.0, {}, "--persist"),
    (float("nan"), {}, "--persist"),
    (float("inf"), {}, "--persist"),
])
def test_bad_persist_is_a_usage_error_naming_where(option: float | None, env: dict[str, str], names: str) -> None:
    with pytest.raises(UsageError, match=names):
        persist_seconds(option, env)


def test_a_holder_directory_open_to_others_or_a_symlink_is_refused(tmp_path: Path) -> None:
    open_dir = tmp_path / "open"
    open_dir.mkdir(mode=0o755)
    open_dir.chmod(0o755)
    with pytest.raises(HolderError, match="0700"):
        check_private(str(open_dir))
    link = tmp_path / "link"
    link.symlink_to(open_dir)
    with pytest.raises(HolderError, match="not a directory"):
        check_private(str(link))
    private = Place.of({"IMAGESERVING_PERSIST_DIR": str(tmp_path / "p"), "HOME": "/h"})
    assert os.stat(private.dir).st_mode & 0o777 == 0o700
    # Another HOME (another ~/.ssh) is another holder.
    assert Place.of({"IMAGESERVING_PERSIST_DIR": str(tmp_path / "p"), "HOME": "/other"}).socket != private.socket


# ------------------------------------------------------------------ wire
def _target(name: str, **hv: Any) -> Target:
    return make_target(name, {"ansible_host": "10.0.0.1", "ansible_port": 2222, "ansible_user": "u",
                              "ansible_ssh_common_args": "-o ProxyJump=bastion -i k2", "imageserving_home": "/h",
                              **hv}, FleetOptions())


def test_targets_options_jobs_and_results_cross_the_wire_unchanged() -> None:
    t = _target("web1", imageserving_worker="dc-a", ansible_become=True)
    assert wire.target_from(wire.target_doc(t)) == t
    options = FleetOptions(user="x", private_key=None, ssh_config="/c", host_key_policy="accept-new",
                           connect_timeout=3.5)
    assert wire.options_from(wire.options_doc(options)) == options
    for job in (STATUS, VERSION, RELOAD, logs_job("is", 5), action_job(Kind.RESTART, "ps"), push_job(b"\x00conf")):
        assert wire.job_from(wire.job_doc(job)) == job
    res = HostResult("web1", Result.DEGRADED, "not RUNNING", parse_status(STATUS_DOC), 0.1234567, via=Via.SOCKET)
    back = wire.result_from(wire.result_doc(res))
    assert back == res
    assert back.status is not None and back.status.document()["future_field"] == [1, 2]
    for other in (HostResult("w", Result.OK, agent_version="0.1.0"), HostResult("w", Result.OK, lines=("a", "b"))):
        assert wire.result_from(wire.result_doc(other)) == other


def test_a_deploy_step_never_goes_to_the_holder() -> None:
    assert not wire.sendable(step_job(lambda *a: None))  # type: ignore[arg-type,return-value]
    assert wire.sendable(logs_job("is", 5))
    for bad in ({"kind": "deploy", "args": [], "stdin": None}, {"kind": "rm -rf", "args": [], "stdin": None},
                {"kind": "status", "args": [], "stdin": "not base64!"}):
        with pytest.raises(wire.WireError):
            wire.job_from(bad)


def test_frames_refuse_what_is_not_one() -> None:
    a, b = socket.socketpair()
    with a, b:
        a.sendall(b"\x00\x00\x00\x03abc")
        with pytest.raises(wire.WireError, match="not JSON"):
            wire.receive(b)
        a.sendall(b"\xff\xff\xff\xff")
        with pytest.raises(wire.WireError, match="announced"):
            wire.receive(b)
        a.sendall(wire.frame({"ok": True})[:5])
        a.close()
        with pytest.raises(EOFError):
            wire.receive(b)


# ------------------------------------------------------------------ kept sessions
class FakeSession:
    def __init__(self) -> None:
        self.alive, self.closed, self.aborted = True, False, False

    def close(self) -> None:
        self.closed, self.alive = True, False

    def abort(self) -> None:
        self.aborted, self.alive = True, False


def test_kept_sessions_are_lent_to_one_user_at_a_time_and_closed_when_idle() -> None:
    now = [0.0]
    kept = Kept(idle=10, clock=lambda: now[0])
    a, b = FakeSession(), FakeSession()
    assert kept.take("k") is None
    kept.lend(a)
    kept.lend(b)                      # two commands reached the same host at once: two connections
    kept.give("k", a)
    kept.give("k", b)                 # one is kept, the second closed
    assert b.closed and not a.closed
    assert kept.take("k") is a        # lent: nobody else gets it meanwhile
    assert kept.take("k") is None
    kept.give("k", a)
    now[0] = 9.0
    assert kept.reap() == 0
    now[0] = 10.0
    assert kept.reap() == 1 and a.closed
    dead = FakeSession()
    kept.lend(dead)
    kept.give("k", dead)
    dead.alive = False                # died while kept (sshd restarted): never handed out
    assert kept.take("k") is None and dead.aborted
    lent = FakeSession()
    kept.lend(lent)
    kept.close()                      # persist stop: lent ones end too
    assert lent.aborted


# ------------------------------------------------------------------ the client when the holder fails
class Recording:
    """Stands for the direct fan-out: answers ok, records what it was asked."""

    def __init__(self) -> None:
        self.asked: list[tuple[list[str], float]] = []
        self.on_result: Callable[[HostResult], None] | None = None

    def run(self, targets: Sequence[Target], job: Job, timeout: float | None = None) -> list[HostResult]:
        self.asked.append(([t.name for t in targets], float(timeout or 0)))
        results = [HostResult(t.name, Result.OK, "direct") for t in targets]
        for res in results:
            if self.on_result:
                self.on_result(res)
        return results

    def close(self) -> None:
        pass


@pytest.fixture
def fake_holder() -> Iterator[Callable[[Callable[[socket.socket, dict[str, Any]], None]], Place]]:
    """A holder that reads the request and then does what the test says (then closes)."""
    made: list[tuple[socket.socket, str]] = []

    def start(behave: Callable[[socket.socket, dict[str, Any]], None]) -> Place:
        directory = tempfile.mkdtemp(prefix="isp-")
        place = Place(directory, os.path.join(directory, "h.sock"), os.path.join(directory, "h.lock"),
                      os.path.join(directory, "h.log"), os.path.join(directory, "h.start"))
        listener = socket.socket(socket.AF_UNIX)
        listener.bind(place.socket)
        listener.listen(4)
        made.append((listener, directory))

        def serve() -> None:
            conn, _ = listener.accept()
            with conn:
                behave(conn, wire.receive(conn))

        threading.Thread(target=serve, daemon=True).start()
        return place

    yield start
    for listener, directory in made:
        listener.close()
        for name in os.listdir(directory):
            os.unlink(os.path.join(directory, name))
        os.rmdir(directory)


TARGETS = [_target(f"h{i}") for i in range(4)]


def _client(place: Place, direct: Recording, seen: list[str]) -> HolderFleet:
    return HolderFleet(FleetOptions(), forks=5, timeout=30, persist=60, direct=lambda: direct,
                       on_result=lambda r: seen.append(r.host), place=place)


def _dies_after_h0(conn: socket.socket, request: dict[str, Any]) -> None:
    assert [t["name"] for t in request["targets"]] == ["h0", "h1", "h2", "h3"]
    wire.send(conn, {"started": "h0"})
    wire.send(conn, {"started": "h1"})
    wire.send(conn, {"result": wire.result_doc(HostResult("h0", Result.OK, "held"))})
    # ...and the holder is gone: h1 had begun, h2 and h3 had not


def test_a_holder_lost_mid_status_costs_a_direct_run_of_the_rest(fake_holder: Any) -> None:
    direct, seen = Recording(), []
    results = _client(fake_holder(_dies_after_h0), direct, seen).run(TARGETS, STATUS)
    assert [(r.host, r.reason) for r in results] == [("h0", "held"), ("h1", "direct"), ("h2", "direct"),
                                                      ("h3", "direct")]
    # h2 and h3 had not begun: their whole deadline; h1 had: what was left of its own
    assert [names for names, _ in direct.asked] == [["h2", "h3"], ["h1"]]
    assert direct.asked[0][1] == 30 and 0 < direct.asked[1][1] <= 30
    assert sorted(seen) == ["h0", "h1", "h2", "h3"]


def test_a_holder_lost_mid_restart_never_acts_twice(fake_holder: Any) -> None:
    direct, seen = Recording(), []
    results = _client(fake_holder(_dies_after_h0), direct, seen).run(TARGETS, action_job(Kind.RESTART))
    by = {r.host: r for r in results}
    assert by["h1"].result is Result.FAILED and by["h1"].reason == HOLDER_LOST
    assert [names for names, _ in direct.asked] == [["h2", "h3"]]
    assert by["h0"].reason == "held" and by["h2"].reason == "direct"


def test_a_refused_request_or_no_holder_runs_direct(fake_holder: Any, tmp_path: Path) -> None:
    direct, seen = Recording(), []
    place = fake_holder(lambda conn, req: wire.send(conn, {"error": "bad request: no"}))
    assert [r.reason for r in _client(place, direct, seen).run(TARGETS[:2], STATUS)] == ["direct"] * 2
    # A deploy step never goes to a holder at all.
    direct2 = Recording()
    deploy = step_job(lambda *a: None)  # type: ignore[arg-type,return-value]
    assert [r.reason for r in _client(place, direct2, []).run(TARGETS[:1], deploy)] == ["direct"]


# ------------------------------------------------------------------ which runs go through the holder
@pytest.mark.parametrize(("command", "persist", "password", "through"), [
    ("STATUS", 60.0, None, True),
    ("RESTART", 60.0, None, True),
    ("LOGS", 60.0, None, True),
    ("STATUS", 0.0, None, False),          # --persist 0: nothing outlives the command
    ("DEPLOY", 60.0, None, False),         # files from this machine
    ("EXPORTER", 60.0, None, False),       # long-lived: keeps its own connections
    ("WATCH", 60.0, None, False),
    ("STATUS", 60.0, "secret", False),     # a become password stays in the command that asked for it
])
def test_which_runs_go_through_the_holder(command: str, persist: float, password: str | None, through: bool,
                                          tmp_path: Path) -> None:
    import dataclasses

    from imageserving_fleet.fleet.commands.run import open_fanout
    from imageserving_fleet.fleet.context import Command, resolve
    from imageserving_fleet.fleet.options import Options

    inventory = tmp_path / "hosts.yml"
    inventory.write_text("all:\n  hosts:\n    h1: {ansible_host: 10.0.0.1, ansible_become: true}\n")
    env = {"IMAGESERVING_PERSIST": f"{persist:g}", **({"IMAGESERVING_BECOME_PASS": password} if password else {})}
    ctx = resolve(Options(inventory=(str(inventory),)), env, Command[command])
    assert ctx.persist == persist and ctx.become_password == password
    fleet = open_fanout(dataclasses.replace(ctx))  # not entered: entering reaches the holder
    try:
        assert isinstance(fleet, HolderFleet) is through
    finally:
        fleet.close()


def test_a_holder_that_stalls_costs_the_deadline_and_a_direct_run_never_a_hang(
        fake_holder: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from imageserving_fleet.fleet.persist import client

    monkeypatch.setattr(client, "STALL_MARGIN", 0.2)
    release = threading.Event()
    place = fake_holder(lambda conn, req: (wire.send(conn, {"started": "h0"}), release.wait(30)))
    direct, seen = Recording(), []
    fleet = HolderFleet(FleetOptions(), forks=5, timeout=0.5, persist=60, direct=lambda: direct,
                        on_result=lambda r: seen.append(r.host), place=place)
    try:
        results = fleet.run(TARGETS[:2], STATUS)
    finally:
        release.set()
    # h1 had not begun: asked direct; h0 had, and its 0.5 s passed while the holder sat on it
    assert [(r.host, r.result, r.reason[:8]) for r in results] == [("h0", Result.UNREACHABLE, "timeout:"),
                                                                   ("h1", Result.OK, "direct")]
    assert direct.asked == [(["h1"], 0.5)]


def test_ctrl_c_closes_the_request_and_marks_the_hosts_as_a_direct_run_would(fake_holder: Any) -> None:
    from imageserving_fleet.fleet.fanout import NOT_BEGUN, RUNNING_CUT, Interrupted

    saw_close = threading.Event()

    def holder(conn: socket.socket, request: dict[str, Any]) -> None:
        wire.send(conn, {"started": "h0"})
        wire.send(conn, {"started": "h1"})
        wire.send(conn, {"result": wire.result_doc(HostResult("h1", Result.OK))})
        conn.settimeout(30)
        if conn.recv(1) == b"":  # the holder's watcher sees the command go: it begins no more hosts
            saw_close.set()

    def interrupt(res: HostResult) -> None:
        if res.host == "h1":
            raise KeyboardInterrupt

    fleet = HolderFleet(FleetOptions(), forks=5, timeout=30, persist=60, direct=Recording,
                        on_result=interrupt, place=fake_holder(holder))
    with pytest.raises(Interrupted) as caught:
        fleet.run(TARGETS[:3], STATUS)
    assert [(r.host, r.result, r.reason) for r in caught.value.results] == [
        ("h0", Result.FAILED, RUNNING_CUT), ("h1", Result.OK, ""), ("h2", Result.SKIPPED, NOT_BEGUN)]
    assert caught.value.running == frozenset({"h0"})
    assert saw_close.wait(30)
