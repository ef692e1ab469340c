"""Rolling runs: --serial lists (pure), and the order of --before, the action and --after around each
host, a failing or hanging hook, --confirm, through the MockConnector (no host is contacted)."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import psutil
import pytest

from imageserving_fleet.errors import UsageError
from imageserving_fleet.fleet.hooks import Hooks, check_hooks
from imageserving_fleet.fleet.jobs import Kind, action_job
from imageserving_fleet.fleet.results import Result
from imageserving_fleet.fleet.rolling import Rolling, batch_sizes, batches, parse_serial, rolling
from imageserving_fleet.fleet.runner import Fleet
from imageserving_fleet.fleet.ssh import CommandResult
from imageserving_fleet.fleet.ssh.mock import MockConnector, MockRequest
from imageserving_fleet.fleet.target import FleetOptions, Target, make_target


@pytest.mark.parametrize(("hosts", "serial", "sizes"), [
    (4, "1,50%", [1, 2, 1]),           # the example: the last size repeats, cut to what is left
    (10, "1,10%,50%", [1, 1, 5, 3]),
    (200, "1,10%,50%", [1, 20, 100, 79]),
    (7, "2", [2, 2, 2, 1]),
    (3, "5", [3]),
    (5, "30%", [1, 1, 1, 1, 1]),       # 30% of 5 is 1.5: rounded down, as Ansible's pct_to_int
    (1, "50%", [1]),                   # at least one host
    (6, "1, 2 ,100%", [1, 2, 3]),
    (4, "3,1", [3, 1]),
])
def test_serial_lists_as_ansible(hosts: int, serial: str, sizes: list[int]) -> None:
    assert batch_sizes(hosts, parse_serial(serial)) == sizes
    names = [f"h{i}" for i in range(hosts)]
    plan = batches(names, serial)
    assert [len(b) for b in plan] == sizes and sum(plan, []) == names


@pytest.mark.parametrize("serial", ["0", "1,,2", "101%", "x", "", "1,0%", "-1", "1.5", "50%,"])
def test_bad_serial_is_a_usage_error(serial: str) -> None:
    with pytest.raises(UsageError, match="--serial"):
        parse_serial(serial)


@pytest.mark.parametrize(("before", "after", "timeout"), [("", None, 60.0), (None, " ", 60.0),
                                                          (None, None, 0.0), ("x", None, float("nan"))])
def test_bad_hook_options_are_usage_errors(before: str | None, after: str | None, timeout: float) -> None:
    with pytest.raises(UsageError):
        check_hooks(before, after, timeout)
    with pytest.raises(UsageError):  # and so is a Rolling that carries them, before any host
        Rolling(hooks=Hooks(before, after, timeout))


# ------------------------------------------------------------- through the fan-out
def status_json(host: str) -> bytes:
    return json.dumps({"schema": 1, "host": host, "agent_version": "1", "time": "t",
                       "supervisor": {"state": "RUNNING", "pid": 1},
                       "components": [{"id": "ps", "state": "RUNNING"}]}).encode()


def targets(*names: str) -> list[Target]:
    return [make_target(n, {"ansible_host": f"10.0.0.{i + 1}"}, FleetOptions()) for i, n in enumerate(names)]


class Journal:
    """One file both the hooks (sh, `>>`) and the mock hosts (Python) append their events to."""

    def __init__(self, path: Path) -> None:
        self.path, self.lock = path, threading.Lock()
        path.write_text("")

    def add(self, line: str) -> None:
        with self.lock, open(self.path, "a") as fh:
            fh.write(line + "\n")

    def events(self) -> list[str]:
        return self.path.read_text().splitlines()

    def hook(self, which: str) -> str:
        return f'echo "{which} $IMAGESERVING_HOST $IMAGESERVING_ADDRESS $IMAGESERVING_BATCH" >> {self.path}'


def run_restart(journal: Journal, names: list[str], serial: str, hooks: Hooks, **kw):  # type: ignore[no-untyped-def]
    def answer(request: MockRequest) -> CommandResult:
        if " restart" in request.command:
            journal.add(f"restart {request.host}")
        return CommandResult(0, status_json(request.host), b"")

    how = Rolling(serial, kw.pop("max_fail", 0.0), hooks, kw.pop("confirm", None), kw.pop("gate", None))
    with Fleet(MockConnector(answer), forks=10, timeout=kw.pop("timeout", 30.0)) as fleet:
        return rolling(fleet, targets(*names), action_job(Kind.RESTART), how)


def test_before_and_after_wrap_each_host_batch_by_batch(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "events")
    hooks = Hooks(before=journal.hook("before"), after=journal.hook("after"))
    results = run_restart(journal, ["h1", "h2", "h3", "h4"], "1,50%", hooks)
    assert [r.result for r in results] == [Result.OK] * 4
    events = journal.events()
    batch_of = {"h1": 1, "h2": 2, "h3": 2, "h4": 3}
    for host, batch in batch_of.items():
        mine = [e for e in events if e.split()[1] == host]
        assert [e.split()[0] for e in mine] == ["before", "restart", "after"], events
        assert mine[0].split()[2:] == [f"10.0.0.{host[1]}", str(batch)]  # address and batch number in the env
    # a batch begins only when the one before it has finished, its --after included
    position = {e: i for i, e in enumerate(events)}
    for earlier, later in (("h1", "h2"), ("h1", "h3"), ("h3", "h4"), ("h2", "h4")):
        after = next(e for e in events if e.startswith(f"after {earlier} "))
        before = next(e for e in events if e.startswith(f"before {later} "))
        assert position[after] < position[before], events


def test_a_failing_before_leaves_its_host_untouched_and_failed(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "events")
    before = f'[ "$IMAGESERVING_HOST" = h2 ] && {{ echo "lb: no such backend"; exit 3; }}; {journal.hook("before")}'
    hooks = Hooks(before=before, after=journal.hook("after"))
    results = {r.host: r for r in run_restart(journal, ["h1", "h2", "h3"], "1", hooks, max_fail=100.0)}
    assert results["h2"].result == Result.FAILED
    assert results["h2"].reason == "--before exited 3: lb: no such backend; left untouched"
    assert results["h1"].result == results["h3"].result == Result.OK
    assert not [e for e in journal.events() if e.split()[1] == "h2"]  # no restart, no --after on h2


def test_the_default_stop_rule_counts_a_failing_before(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "events")
    hooks = Hooks(before="exit 1")
    results = run_restart(journal, ["h1", "h2"], "1", hooks)
    assert [r.result for r in results] == [Result.FAILED, Result.SKIPPED]
    assert journal.events() == []


def test_a_failing_after_fails_its_host_once_the_action_is_done(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "events")
    hooks = Hooks(after='[ "$IMAGESERVING_HOST" = h1 ] && exit 7; exit 0')
    results = run_restart(journal, ["h1", "h2"], "2", hooks)
    assert [(r.result, r.reason) for r in results] == [(Result.FAILED, "--after exited 7"), (Result.OK, "")]
    assert sorted(journal.events()) == ["restart h1", "restart h2"]


def test_a_hanging_before_is_cut_by_its_timeout_with_what_it_started(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "events")
    pidfile = tmp_path / "child.pid"
    hooks = Hooks(before=f"echo draining; sleep 1000 & echo $! > {pidfile}; wait", timeout=0.5)
    results = run_restart(journal, ["h1"], "1", hooks)
    assert results[0].result == Result.FAILED
    assert results[0].reason == ("--before did not finish within --hook-timeout 0.5s (killed): draining; "
                                 "left untouched")
    assert journal.events() == []
    child = int(pidfile.read_text())
    assert gone(child)  # its background child went with it (the hook's whole group was killed)


def gone(pid: int, limit: float = 30.0) -> bool:
    """The process ends (or is a zombie waiting for whoever inherited it) within a generous deadline."""
    end = time.monotonic() + limit
    while time.monotonic() < end:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.01)
    return False


def test_hook_output_goes_to_the_sink_by_host(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "events")
    seen: list[tuple[str, str, str]] = []
    hooks = Hooks(before="echo one; echo two >&2", on_output=lambda host, which, line: seen.append((host, which, line)))
    run_restart(journal, ["h1"], "1", hooks)
    assert seen == [("h1", "before", "one"), ("h1", "before", "two")]


def test_confirm_asks_before_each_batch_after_the_first_and_a_no_skips_the_rest(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "events")
    asked: list[tuple[int, int, list[str]]] = []

    def confirm(number: int, total: int, names: list[str]) -> bool:
        asked.append((number, total, names))
        return number < 3

    results = run_restart(journal, ["h1", "h2", "h3", "h4"], "1", Hooks(), confirm=confirm)
    assert asked == [(2, 4, ["h2"]), (3, 4, ["h3"])]
    assert [r.result for r in results] == [Result.OK, Result.OK, Result.SKIPPED, Result.SKIPPED]
    assert results[2].reason == "not reached: batch 3 of 4 was not confirmed"
    assert sorted(journal.events()) == ["restart h1", "restart h2"]
