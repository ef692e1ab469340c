"""`logs NAME -n N` (commands/logs.py): the checks, the argv, each host's lines and the --json document."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from imageserving_fleet.errors import UsageError
from imageserving_fleet.fleet.commands import logs
from imageserving_fleet.fleet.context import Command
from imageserving_fleet.fleet.logs import logs_document
from imageserving_fleet.fleet.results import Result

from .fakehosts import FakeHosts


@pytest.mark.parametrize("name, want", [("supervisor", "supervisor"), ("Supervisor", "supervisor"), ("IS", "is"),
                                        ("svg", "svg"), ("a;b", None), ("../x", None)])
def test_log_name(name: str, want: str | None) -> None:
    if want is None:
        with pytest.raises(UsageError, match="invalid component id"):
            logs.log_name(name)
    else:
        assert logs.log_name(name) == want


@pytest.mark.parametrize("lines, ok", [(1, True), (10_000, True), (0, False), (-3, False), (10_001, False)])
def test_check_lines(lines: int, ok: bool) -> None:
    if ok:
        assert logs.check_lines(lines) == lines
    else:
        with pytest.raises(UsageError, match="-n must be between 1 and 10000"):
            logs.check_lines(lines)


def test_every_hosts_lines_and_the_json_document(tmp_path: Path) -> None:
    hosts = FakeHosts(["a", "b"])
    ctx = hosts.context(tmp_path, Command.LOGS)
    with hosts.fleet() as fleet:
        outcome = logs.logs(ctx, fleet, "is", 5)
    assert [argv for _, argv in hosts.calls] == [["logs", "is", "-n", "5"]] * 2
    assert [r.lines for r in outcome.results] == [("a line 1", "a line 2"), ("b line 1", "b line 2")]
    doc = json.loads(logs_document(outcome.results))
    assert doc["command"] == "logs" and list(doc["hosts"][0]) == ["host", "result", "reason", "elapsed_s", "lines"]
    assert all(r.result == Result.OK for r in outcome.results)


def test_grep_and_since_reach_every_host_and_group_prints_one_block(tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    from imageserving_fleet.fleet.commands.run import Outcome
    from imageserving_fleet.fleet.render import out, print_outcome

    hosts = FakeHosts(["is01", "is02", "is03"])
    ctx = hosts.context(tmp_path, Command.LOGS)
    with hosts.fleet() as fleet:
        outcome = logs.logs(ctx, fleet, "is:access", 5, " 50[0-9] ", "10m")
    assert [argv for _, argv in hosts.calls] == [["logs", "is:access", "-n", "5", "--grep", " 50[0-9] ",
                                                  "--since", "10m"]] * 3
    same = Outcome(Command.LOGS, tuple(replace(r, lines=("GET /x 503",)) for r in outcome.results))
    print_outcome(out, same, group=True)   # what the CLI prints for --group
    assert capsys.readouterr().out == "\n".join(["-" * 13, "is[01-03] (3)", "-" * 13, "GET /x 503"]) + "\n"
    print_outcome(out, same, as_json=True, group=True)
    assert json.loads(capsys.readouterr().out)["groups"][0]["folded"] == "is[01-03]"
