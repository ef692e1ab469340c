"""Who asked for a change reaches the host: the controller puts `user@controller` in the agent's
environment (a name no login shell reads anything into), only for jobs that change something."""

from __future__ import annotations

import pytest

from imageserving_fleet.fleet import remote
from imageserving_fleet.fleet.jobs import Kind, action_job, status_job
from imageserving_fleet.fleet.runner import Fleet
from imageserving_fleet.fleet.ssh.mock import MockConnector
from imageserving_fleet.fleet.target import FleetOptions, make_target


@pytest.mark.parametrize(("name", "prefix"), [
    ("alice@ctl.example.com", "IMAGESERVING_REQUESTED_BY=alice@ctl.example.com; export IMAGESERVING_REQUESTED_BY; "),
    ("a b;rm -rf /'`$(x)", "IMAGESERVING_REQUESTED_BY=a_b_rm_-rf_x_; export IMAGESERVING_REQUESTED_BY; "),
    ("", ""),
    (None, ""),
])
def test_requested_by_prefix(name: str | None, prefix: str) -> None:
    assert remote.requested_by_prefix(name) == prefix


def test_only_changes_carry_the_asker() -> None:
    target = make_target("h", {"imageserving_command": "/bin/agent"}, FleetOptions())
    with Fleet(MockConnector(lambda r: None), forks=1, timeout=5) as fleet:  # type: ignore[arg-type,return-value]
        fleet.requested_by = "alice@ctl"
        restart, _ = fleet.command_for(target, action_job(Kind.RESTART))
        status, _ = fleet.command_for(target, status_job())
    assert restart.startswith("IMAGESERVING_REQUESTED_BY=alice@ctl; export IMAGESERVING_REQUESTED_BY; exec /bin/agent")
    assert "REQUESTED_BY" not in status
