"""`start [ID]` and `stop [ID]` (commands/control.py) on hosts played by MockConnector."""

from __future__ import annotations

from pathlib import Path

from imageserving_fleet.fleet.commands import control
from imageserving_fleet.fleet.context import Command
from imageserving_fleet.fleet.results import Result

from .fakehosts import FakeHosts


def test_stop_then_start_everything(tmp_path: Path) -> None:
    hosts = FakeHosts(["a", "b"])
    with hosts.fleet() as fleet:
        stopped = control.stop(hosts.context(tmp_path, Command.STOP), fleet)
        started = control.start(hosts.context(tmp_path, Command.START), fleet)
    assert [r.result for r in stopped.results] == [Result.OK, Result.OK]  # a stopped host is what stop asked
    assert [r.result for r in started.results] == [Result.OK, Result.OK]
    assert [argv for _, argv in hosts.calls] == [["stop", "--json"]] * 2 + [["start", "--json"]] * 2


def test_stop_one_component_holds_it_and_leaves_the_host_ok(tmp_path: Path) -> None:
    hosts = FakeHosts(["a"])
    with hosts.fleet() as fleet:
        held = control.stop(hosts.context(tmp_path, Command.STOP), fleet, "is")
        back = control.start(hosts.context(tmp_path, Command.START), fleet, "is")
    assert hosts.calls == [("a", ["stop", "is", "--json"]), ("a", ["start", "is", "--json"])]
    assert (held.results[0].result, held.results[0].reason) == (Result.OK, "held down: is")
    assert (back.results[0].result, back.results[0].reason) == (Result.OK, "")


def test_an_action_the_agent_refuses_fails_its_host_only(tmp_path: Path) -> None:
    hosts = FakeHosts(["a", "b"])
    hosts.failing.add("b")
    with hosts.fleet() as fleet:
        outcome = control.start(hosts.context(tmp_path, Command.START), fleet)
    assert [(r.result, r.reason) for r in outcome.results] == [(Result.OK, ""), (Result.FAILED, "start failed on b")]
    assert outcome.exit_code == 2
