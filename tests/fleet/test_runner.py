"""The fan-out's logic (runner.Fleet) on a MockConnector: order, the forks bound, deadlines, Ctrl-C.

No sshd: every host is a handler function, so these run in milliseconds and time out in tenths.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time

import pytest

from imageserving_fleet.errors import Reason, UnreachableError
from imageserving_fleet.fleet.fanout import Interrupted
from imageserving_fleet.fleet.jobs import STATUS, step_job
from imageserving_fleet.fleet.results import Result
from imageserving_fleet.fleet.runner import Fleet
from imageserving_fleet.fleet.ssh import CommandResult
from imageserving_fleet.fleet.ssh.mock import MockConnector, MockRequest
from imageserving_fleet.fleet.target import FleetOptions, Target, make_target


def status_json(host: str, state: str = "RUNNING") -> bytes:
    return json.dumps({"schema": 1, "host": host, "agent_version": "1", "time": "t",
                       "supervisor": {"state": "RUNNING", "pid": 1},
                       "components": [{"id": "ps", "state": state}]}).encode()


def targets(*names: str) -> list[Target]:
    return [make_target(n, {}, FleetOptions()) for n in names]


def answer(request: MockRequest) -> CommandResult:
    return CommandResult(0, status_json(request.host), b"")


def wait_for(condition, what: str, limit: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    end = time.monotonic() + limit
    while not condition():
        assert time.monotonic() < end, f"gave up waiting for {what}"
        time.sleep(0.005)


def test_results_come_in_the_targets_order_whatever_order_hosts_finish() -> None:
    last_may_go = threading.Event()

    def handler(request: MockRequest) -> CommandResult:
        if request.host == "a":  # the first host answers last
            last_may_go.wait(30)
        return answer(request)

    seen: list[str] = []

    def heard(res):  # type: ignore[no-untyped-def]
        seen.append(res.host)
        if len(seen) == 2:
            last_may_go.set()

    with Fleet(MockConnector(handler), forks=3, timeout=60, on_result=heard) as fleet:
        results = fleet.run(targets("a", "b", "c"), STATUS)
    assert [r.host for r in results] == ["a", "b", "c"] and seen[-1] == "a"
    assert all(r.result == Result.OK for r in results)


def test_no_more_hosts_at_once_than_forks() -> None:
    forks = 3
    connector: MockConnector

    def handler(request: MockRequest) -> CommandResult:
        # Hold each host until `forks` of them run together (or every host has started): a 4th would show.
        end = time.monotonic() + 30
        while connector.running < forks and len(connector.requests) < 9 and time.monotonic() < end:
            time.sleep(0.002)
        return answer(request)

    connector = MockConnector(handler)
    with Fleet(connector, forks=forks, timeout=60) as fleet:
        results = fleet.run(targets(*(f"h{i}" for i in range(9))), STATUS)
    assert connector.most_running == forks
    assert [r.result for r in results] == [Result.OK] * 9


def test_a_hung_host_is_a_timeout_and_is_given_up_while_the_others_finish() -> None:
    def handler(request: MockRequest) -> CommandResult:
        if request.host == "hung":
            request.aborted.wait(30)  # released by the fan-out's abort, never by the clock
        return answer(request)

    connector = MockConnector(handler)
    with Fleet(connector, forks=5, timeout=0.3) as fleet:
        results = {r.host: r for r in fleet.run(targets("a", "hung", "b"), STATUS)}
    assert results["hung"].result == Result.UNREACHABLE
    assert results["hung"].reason.startswith("timeout"), results["hung"]
    assert results["a"].result == results["b"].result == Result.OK
    assert any(r.aborted.is_set() for r in connector.requests if r.host == "hung")


def test_ctrl_c_returns_partial_results_every_host_accounted_for() -> None:
    def handler(request: MockRequest) -> CommandResult:
        if request.host == "b":
            os.kill(os.getpid(), signal.SIGINT)  # KeyboardInterrupt in the main thread, inside run()
            request.aborted.wait(30)
        return answer(request)

    connector = MockConnector(handler)
    with Fleet(connector, forks=1, timeout=60) as fleet:
        with pytest.raises(Interrupted) as caught:
            fleet.run(targets("a", "b", "c"), STATUS)
    got = {r.host: (r.result, r.reason) for r in caught.value.results}
    assert got == {"a": (Result.OK, ""), "b": (Result.FAILED, "interrupted while running"),
                   "c": (Result.SKIPPED, "interrupted before it started")}
    wait_for(lambda: all(r.aborted.is_set() for r in connector.requests if r.host == "b"), "b aborted")


def test_failures_are_the_hosts_own_and_typed() -> None:
    def refuse(host: str) -> None:
        if host == "down":
            raise UnreachableError(host, Reason.REFUSED, "127.0.0.1:22: connection refused")

    def handler(request: MockRequest) -> CommandResult:
        if request.host == "flood":
            return CommandResult(0, b"x" * (17 * 2**20), b"")
        if request.host == "missing":
            return CommandResult(127, b"", b"sh: imageserving: not found")
        return answer(request)

    with Fleet(MockConnector(handler, on_connect=refuse), forks=4, timeout=60) as fleet:
        results = {r.host: r for r in fleet.run(targets("ok", "down", "flood", "missing"), STATUS)}
    assert results["ok"].result == Result.OK
    assert (results["down"].result, results["down"].reason) == (
        Result.UNREACHABLE, "refused: 127.0.0.1:22: connection refused")
    # A flood comes from a host that was reached: its agent failed, not the network.
    assert results["flood"].result == Result.FAILED and results["flood"].reason.startswith("output too large")
    assert results["missing"].result == Result.UNREACHABLE and results["missing"].reason.startswith("agent missing")


def test_kept_sessions_serve_later_runs_and_leaving_the_fleet_closes_everything() -> None:
    connector = MockConnector(answer)
    hosts = targets("a", "b")
    with Fleet(connector, forks=2, timeout=60, keep_sessions=True) as fleet:
        fleet.run(hosts, STATUS)
        fleet.run(hosts, STATUS)
        assert sorted(connector.connects) == ["a", "b"]  # one connection per host, reused
    assert connector.closed and all(s.closed for s in connector.sessions)


def test_one_job_commands_release_each_connection_when_done() -> None:
    connector = MockConnector(answer)
    with Fleet(connector, forks=2, timeout=60, keep_sessions=False) as fleet:
        fleet.run(targets("a", "b"), STATUS)
        wait_for(lambda: all(s.closed for s in connector.sessions), "sessions closed")
        fleet.run(targets("a", "b"), STATUS)
    assert sorted(connector.connects) == ["a", "a", "b", "b"]


def test_a_step_job_runs_a_function_per_host_with_the_become_password() -> None:
    seen: dict[str, bytes | None] = {}

    def step(target, session, deadline, stdin):  # type: ignore[no-untyped-def]
        seen[target.name] = stdin
        session.put("/x", "~/x")
        from imageserving_fleet.fleet.results import HostResult

        return HostResult(target.name, Result.OK, "stepped")

    hosts = [make_target("a", {"ansible_become": True}, FleetOptions()), make_target("b", {}, FleetOptions())]
    connector = MockConnector(answer)
    with Fleet(connector, forks=2, timeout=60, become_password="pw") as fleet:
        results = fleet.run(hosts, step_job(step))
    assert [r.reason for r in results] == ["stepped", "stepped"]
    assert seen == {"a": b"pw\n", "b": None} and len(connector.uploads) == 2
