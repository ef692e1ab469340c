"""`logs` across hosts: --grep/--since checked on the controller and passed to every host's agent,
--group printing each distinct answer once under its folded hosts. Fan-out on a MockConnector.
"""

from __future__ import annotations

import io
import json

import pytest

from imageserving_fleet.errors import Reason, UnreachableError, UsageError
from imageserving_fleet.fleet.jobs import logs_job
from imageserving_fleet.fleet.loggroup import Group, group_results, print_groups
from imageserving_fleet.fleet.logs import logs_document, logs_request
from imageserving_fleet.fleet.results import HostResult, Result
from imageserving_fleet.fleet.runner import Fleet
from imageserving_fleet.fleet.ssh import CommandResult
from imageserving_fleet.fleet.ssh.mock import MockConnector, MockRequest
from imageserving_fleet.fleet.target import FleetOptions, make_target


@pytest.mark.parametrize(("args", "agent_args"), [
    (("supervisor",), ("logs", "supervisor", "-n", "20")),
    (("SUPERVISOR", 5), ("logs", "supervisor", "-n", "5")),
    (("IS", 5), ("logs", "is", "-n", "5")),
    (("is:access", 100, r" 5\d\d ", "10m"), ("logs", "is:access", "-n", "100", "--grep", r" 5\d\d ", "--since", "10m")),
    (("ps", 1, "", None), ("logs", "ps", "-n", "1", "--grep", "")),
    (("ps", 1, None, " 2h "), ("logs", "ps", "-n", "1", "--since", "2h")),
    (("ps", 1, None, "1d"), ("logs", "ps", "-n", "1", "--since", "1d")),
    (("Is:Access", 1), ("logs", "is:access", "-n", "1")),
])
def test_request_to_agent_args(args: tuple, agent_args: tuple[str, ...]) -> None:  # type: ignore[type-arg]
    r = logs_request(*args)
    assert logs_job(r.name, r.lines, r.grep, r.since).args == agent_args


@pytest.mark.parametrize(("args", "message"), [
    (("is", 0), "-n must be between 1 and 10000"),
    (("is", 10_001), "-n must be between 1 and 10000"),
    (("is;reboot",), "invalid component id"),
    (("supervisor:x",), "the supervisor has only its own log"),
    (("is:",), "invalid log name ''"),
    (("is:a/b",), "invalid log name 'a/b'"),
    (("is:$(reboot)",), "invalid log name"),
    (("is", 5, "(unclosed"), "--grep: not a regular expression: '(unclosed': missing ), unterminated subpattern"),
    (("is", 5, "*x"), "--grep: not a regular expression"),
    (("is", 5, "a" * 1001), "--grep: the pattern is 1001 characters long"),
    (("is", 5, None, "soon"), "--since: expected a duration such as 90s, 10m, 2h or 1d, got 'soon'"),
    (("is", 5, None, "d"), "--since: expected a duration"),
    (("is", 5, None, ""), "--since: expected a duration"),
    (("is:" + "a" * 33,), "invalid log name"),
    (("is", 5, None, "0"), "--since: expected a duration"),
    (("is", 5, None, "-5m"), "--since: expected a duration"),
    (("is", 5, None, "nanm"), "--since: expected a duration"),
])
def test_bad_requests_are_usage_errors(args: tuple, message: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(UsageError, match=None) as raised:
        logs_request(*args)
    assert message in str(raised.value)


COMMON = [b"2026-12-07T04:00:01Z ERROR is: cache miss storm", b"2026-12-07T04:00:09Z ERROR is: upstream 503"]
ODD = {"is07": [b"2026-12-07T04:00:03Z ERROR is: disk full"], "is13": [b"2026-12-07T04:00:03Z ERROR is: disk full"]}
HOSTS = [f"is{n:02d}" for n in range(1, 21)]   # is01 .. is20


def _fleet_logs(name: str, lines: int, grep: str | None = None, since: str | None = None
                ) -> tuple[list[HostResult], MockConnector]:
    def handler(request: MockRequest) -> CommandResult:
        if request.host == "is20":
            raise UnreachableError(request.host, Reason.REFUSED, "connection refused")
        if request.host == "is19":
            return CommandResult(0, b"", b"")            # nothing matched there
        return CommandResult(0, b"\n".join(ODD.get(request.host, COMMON)) + b"\n", b"")

    connector = MockConnector(handler)
    targets = [make_target(n, {}, FleetOptions()) for n in HOSTS]
    with Fleet(connector, forks=8, timeout=60) as fleet:
        r = logs_request(name, lines, grep, since)
        results = fleet.run(targets, logs_job(r.name, r.lines, r.grep, r.since))
    return results, connector


def test_twenty_hosts_grouped_one_block_for_the_identical_ones() -> None:
    results, connector = _fleet_logs("is", 50, "ERROR", "10m")
    # --grep and --since reached every host's agent as arguments (filtered there), quoted once
    assert len(connector.requests) == 20
    assert all('"$a" logs is -n 50 --grep ERROR --since 10m)' in req.command for req in connector.requests)
    out, err = io.StringIO(), io.StringIO()
    print_groups(group_results(results), out, err)
    assert out.getvalue().splitlines() == [
        "-" * 26, "is[01-06,08-12,14-18] (16)", "-" * 26,
        "2026-12-07T04:00:01Z ERROR is: cache miss storm",
        "2026-12-07T04:00:09Z ERROR is: upstream 503",
        "-" * 13, "is[07,13] (2)", "-" * 13,
        "2026-12-07T04:00:03Z ERROR is: disk full",
        "-" * 18, "is19 (1): no lines", "-" * 18,
    ]
    assert err.getvalue() == "is20 (1) | unreachable: refused: connection refused\n"
    assert out.getvalue().count("cache miss storm") == 1


def test_grouped_json_keeps_every_host_and_adds_the_groups() -> None:
    results, _ = _fleet_logs("is", 5)
    plain, grouped = json.loads(logs_document(results)), json.loads(logs_document(results, grouped=True))
    assert "groups" not in plain and grouped["hosts"] == plain["hosts"]        # per host: unchanged
    assert [h["host"] for h in plain["hosts"]] == HOSTS
    assert [(g["folded"], g["result"], len(g["lines"])) for g in grouped["groups"]] == [
        ("is[01-06,08-12,14-18]", "ok", 2), ("is[07,13]", "ok", 1), ("is19", "ok", 0), ("is20", "unreachable", 0)]
    assert grouped["groups"][1]["hosts"] == ["is07", "is13"]


def test_groups_follow_the_first_host_in_inventory_order_and_failures_group_by_reason() -> None:
    results = [HostResult("b2", Result.OK, lines=("x",)),
               HostResult("a1", Result.FAILED, "logs failed (exit 2): no log yet"),
               HostResult("b1", Result.OK, lines=("y",)),
               HostResult("a2", Result.FAILED, "logs failed (exit 2): no log yet"),
               HostResult("b3", Result.OK, lines=("x",)),
               HostResult("a3", Result.FAILED, "logs failed (exit 2): other")]
    assert group_results(results) == [
        Group(("b2", "b3"), ("x",)), Group(("a1", "a2"), (), Result.FAILED, "logs failed (exit 2): no log yet"),
        Group(("b1",), ("y",)), Group(("a3",), (), Result.FAILED, "logs failed (exit 2): other")]
    assert [g.folded for g in group_results(results)] == ["b[2-3]", "a[1-2]", "b1", "a3"]


def test_grouped_lines_are_shown_escaped_unless_raw() -> None:
    groups = [Group(("a1", "a2"), ("boom \x1b]0;PWNED\x07",)), Group(("b",), (), Result.FAILED, "bad \x1b[2J")]
    for raw, line in ((False, "boom \\x1b]0;PWNED\\x07"), (True, "boom \x1b]0;PWNED\x07")):
        out, err = io.StringIO(), io.StringIO()
        print_groups(groups, out, err, raw=raw)
        assert out.getvalue().splitlines()[3] == line
        assert err.getvalue() == "b (1) | failed: bad \\x1b[2J\n"  # a reason: escaped even with --raw
