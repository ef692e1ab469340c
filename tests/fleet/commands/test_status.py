"""`status` and `ping` (commands/status.py) on hosts played by MockConnector; their --json entries."""

from __future__ import annotations

import json
from pathlib import Path

from imageserving_fleet.fleet.commands import status
from imageserving_fleet.fleet.context import Command
from imageserving_fleet.fleet.results import Result, Via, fleet_document

from .fakehosts import FakeHosts


def test_status_of_every_host_in_inventory_order_degraded_where_a_component_is_down(tmp_path: Path) -> None:
    hosts = FakeHosts(["b", "a", "c"])
    hosts.states["a"]["svg"] = "EXITED"
    ctx = hosts.context(tmp_path, Command.STATUS)
    with hosts.fleet() as fleet:
        outcome = status.status(ctx, fleet)
    assert [(r.host, r.result) for r in outcome.results] == [("b", Result.OK), ("a", Result.DEGRADED),
                                                             ("c", Result.OK)]
    assert outcome.results[1].reason == "not RUNNING: svg EXITED" and outcome.exit_code == 2
    assert {r.via for r in outcome.results} == {Via.EXEC}  # no socket on a mock: the agent was run
    assert [argv for _, argv in hosts.calls] == [["status", "--json"]] * 3


def test_status_of_one_component(tmp_path: Path) -> None:
    hosts = FakeHosts(["a"])
    ctx = hosts.context(tmp_path, Command.STATUS)
    with hosts.fleet() as fleet:
        outcome = status.status(ctx, fleet, "ps")
    assert hosts.calls == [("a", ["status", "ps", "--json"])]
    assert [c.id for c in outcome.results[0].components] == ["ps"]


def test_the_status_document_keeps_its_keys_and_their_order(tmp_path: Path) -> None:
    hosts = FakeHosts(["a"])
    ctx = hosts.context(tmp_path, Command.STATUS)
    with hosts.fleet() as fleet:
        doc = fleet_document("status", status.status(ctx, fleet).results)
    entry = doc["hosts"][0]
    assert list(doc) == ["schema", "command", "summary", "hosts"]
    assert list(entry) == ["host", "result", "reason", "status", "elapsed_s", "via"] and entry["via"] == "exec"
    assert json.loads(json.dumps(doc)) == doc


def test_ping_says_each_agent_version_or_why_not(tmp_path: Path) -> None:
    hosts = FakeHosts(["a", "gone"])
    real = hosts.answer

    def answer(request):  # type: ignore[no-untyped-def]
        if request.host == "gone":
            from imageserving_fleet.fleet.ssh import CommandResult

            return CommandResult(127, b"", b"sh: 1: imageserving: not found\n")
        return real(request)

    hosts.answer = answer  # type: ignore[method-assign]
    ctx = hosts.context(tmp_path, Command.PING)
    with hosts.fleet() as fleet:
        outcome = status.ping(ctx, fleet)
    ok, gone = outcome.results
    assert (ok.result, ok.agent_version) == (Result.OK, "9.9")
    assert (gone.result, gone.agent_version) == (Result.UNREACHABLE, None)
    assert gone.reason == "agent missing: imageserving not found" and outcome.exit_code == 4
    assert list(ok.to_dict()) == ["host", "result", "reason", "status", "elapsed_s", "agent_version"]
    assert "agent_version" not in gone.to_dict() and hosts.asked("--version") == ["a"]  # gone never ran it
