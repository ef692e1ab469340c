"""The rolling family (commands/rolling.py over fleet/rolling.py): the pure batching as tables, then
restart / reload / config push on hosts played by MockConnector: order, the health gate, the stop rule."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from imageserving_fleet.errors import ImageServingError, UsageError
from imageserving_fleet.fleet import rolling as rolling_mod
from imageserving_fleet.fleet.commands import rolling
from imageserving_fleet.fleet.context import Command
from imageserving_fleet.fleet.results import HostResult, Result
from imageserving_fleet.fleet.rolling import BatchSize, Rolling, batches, parse_serial, too_many_failures

from .fakehosts import FakeHosts


@pytest.mark.parametrize("text, want", [
    ("3", (3, False)), ("30%", (30, True)), (" 2 ", (2, False)), ("100%", (100, True)), ("1", (1, False)),
    ("0", None), ("0%", None), ("101%", None), ("-1", None), ("x", None), ("2.5", None), ("%", None), ("", None),
])
def test_parse_serial(text: str, want: tuple[int, bool] | None) -> None:
    if want is None:
        with pytest.raises(UsageError, match="--serial must be"):
            parse_serial(text)
    else:
        assert parse_serial(text) == (BatchSize(*want),)  # one size (lists: tests/fleet/test_rolling.py)


HOSTS = ["a", "b", "c", "d", "e"]


@pytest.mark.parametrize("serial, want", [
    (None, [HOSTS]),
    ("2", [["a", "b"], ["c", "d"], ["e"]]),
    ("9", [HOSTS]),
    ("40%", [["a", "b"], ["c", "d"], ["e"]]),
    ("10%", [["a"], ["b"], ["c"], ["d"], ["e"]]),   # floor(0.5) hosts: at least one per batch
    ("100%", [HOSTS]),
])
def test_batches(serial: str | None, want: list[list[str]]) -> None:
    assert batches(HOSTS, serial) == want


def test_no_hosts_no_batches() -> None:
    assert batches([], "2") == []


def _batch(*verdicts: Result) -> list[HostResult]:
    return [HostResult(f"h{i}", v) for i, v in enumerate(verdicts)]


@pytest.mark.parametrize("batch, allowed, stops", [
    (_batch(Result.OK, Result.OK), 0, False),
    (_batch(Result.OK, Result.FAILED), 0, True),
    (_batch(Result.OK, Result.FAILED), 50, False),        # exceeds, not equals
    (_batch(Result.OK, Result.DEGRADED), 49.9, True),     # degraded counts as a failure
    (_batch(Result.UNREACHABLE), 99, True),
    (_batch(Result.SKIPPED, Result.OK, Result.OK, Result.OK), 25, False),
    ([], 0, False),
])
def test_too_many_failures(batch: list[HostResult], allowed: float, stops: bool) -> None:
    assert too_many_failures(batch, allowed) is stops


@pytest.mark.parametrize("serial, percent", [("0", 0.0), (None, -1.0), (None, 100.5), (None, math.nan)])
def test_rolling_options_are_checked_before_any_host(serial: str | None, percent: float) -> None:
    with pytest.raises(UsageError):
        Rolling(serial, percent)


@pytest.fixture(autouse=True)
def _quick_gate(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rolling_mod, "HEALTH_POLL", 0.001)  # the gate's pace, not a synchronisation


def test_restart_goes_batch_by_batch_behind_the_health_gate(tmp_path: Path) -> None:
    hosts = FakeHosts(["r1", "r2", "r3", "r4"])
    hosts.slow["r2"] = 3  # its `is` stays STARTING for a few polls after the restart
    printed: list[tuple[int, int, list[str]]] = []
    ctx = hosts.context(tmp_path, Command.RESTART)
    with hosts.fleet() as fleet:
        outcome = rolling.restart(ctx, fleet, "is", Rolling("2"), lambda i, n, names: printed.append((i, n, names)))
    assert outcome.exit_code == 0 and [r.result for r in outcome.results] == [Result.OK] * 4
    assert printed == [(1, 2, ["r1", "r2"]), (2, 2, ["r3", "r4"])]
    order = [(h, argv[0]) for h, argv in hosts.calls]
    assert all(argv == ["restart", "is", "--json"] for _, argv in hosts.calls if argv[0] == "restart")
    last_poll = max(i for i, (h, verb) in enumerate(order) if (h, verb) == ("r2", "status"))
    first_of_batch_2 = order.index(("r3", "restart"))
    assert last_poll < first_of_batch_2  # batch 2 began only once r2 was RUNNING again
    assert {h for h, verb in order if verb == "status"} == {"r2"}  # only the degraded host is polled


def test_a_failed_batch_stops_the_run_and_the_rest_are_skipped(tmp_path: Path) -> None:
    hosts = FakeHosts(["f1", "f2", "f3"])
    hosts.failing.add("f1")
    ctx = hosts.context(tmp_path, Command.RESTART)
    with hosts.fleet() as fleet:
        outcome = rolling.restart(ctx, fleet, None, Rolling("1"))
    got = {r.host: (r.result, r.reason) for r in outcome.results}
    assert got["f1"] == (Result.FAILED, "restart failed on f1")
    why = "not reached: batch 1 had 1 of 1 hosts fail (more than --max-fail-percentage 0)"
    assert got["f2"] == got["f3"] == (Result.SKIPPED, why)
    assert hosts.asked("restart") == ["f1"] and outcome.exit_code == 2


def test_max_fail_percentage_lets_a_batch_fail_within_it(tmp_path: Path) -> None:
    hosts = FakeHosts(["a", "b", "c", "d"])
    hosts.failing.update({"a", "c"})
    ctx = hosts.context(tmp_path, Command.RESTART)
    with hosts.fleet() as fleet:
        outcome = rolling.restart(ctx, fleet, None, Rolling("2", 50))
    assert [r.result for r in outcome.results] == [Result.FAILED, Result.OK, Result.FAILED, Result.OK]
    assert sorted(hosts.asked("restart")) == ["a", "b", "c", "d"]


def test_reload_asks_every_host_to_reload(tmp_path: Path) -> None:
    hosts = FakeHosts(["a", "b"])
    ctx = hosts.context(tmp_path, Command.RELOAD)
    with hosts.fleet() as fleet:
        outcome = rolling.reload(ctx, fleet, Rolling())
    assert outcome.command is Command.RELOAD and outcome.exit_code == 0
    assert [argv for _, argv in hosts.calls] == [["reload", "--json"]] * 2


def test_config_push_sends_the_file_on_stdin_and_a_refusal_is_the_hosts(tmp_path: Path) -> None:
    hosts = FakeHosts(["a", "b"])
    hosts.failing.add("b")
    ctx = hosts.context(tmp_path, Command.CONFIG_PUSH)
    path = tmp_path / "agent.yaml"
    path.write_bytes(b"components: {}\n")
    with hosts.fleet() as fleet:
        outcome = rolling.config_push(ctx, fleet, rolling.read_config_file(str(path)), Rolling(None, 100))
    assert [argv for _, argv in hosts.calls] == [["config", "install", "--json"]] * 2
    assert hosts.stdin == {"a": b"components: {}\n", "b": b"components: {}\n"}
    assert [(r.result, r.reason) for r in outcome.results] == [(Result.OK, ""),
                                                                (Result.FAILED, "config failed on b")]


def test_a_push_file_that_cannot_be_read_or_is_too_large_stops_before_any_host(tmp_path: Path) -> None:
    with pytest.raises(ImageServingError, match="cannot read"):
        rolling.read_config_file(str(tmp_path / "missing.yaml"))
    big = tmp_path / "big.yaml"
    big.write_bytes(b"#" * (rolling.MAX_PUSH_BYTES + 1))
    with pytest.raises(ImageServingError, match="larger than 4 MiB"):
        rolling.read_config_file(str(big))
