"""One SSH connection per host for a whole run: a rolling restart's health polls reuse it.

Real sshd, real agents; the Connector is wrapped only to count how often it really connects.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from imageserving_fleet.fleet import rolling
from imageserving_fleet.fleet.jobs import Job, Kind, action_job
from imageserving_fleet.fleet.results import Result
from imageserving_fleet.fleet.runner import Fleet
from imageserving_fleet.fleet.ssh import Connector, Session
from imageserving_fleet.fleet.target import FleetOptions, Target, make_target
from tests.sshd import SshServer

from .fleetlab import Lab, wait_until


class CountingConnector(Connector):
    def __init__(self, options: FleetOptions) -> None:
        super().__init__(options)
        self.connects: list[str] = []

    def connect(self, target: Target, deadline: float) -> Session:
        self.connects.append(target.name)
        return super().connect(target, deadline)


@pytest.fixture
def lab(sshd: SshServer, tmp_path: Path) -> Iterator[Lab]:
    lab = Lab(sshd, tmp_path)
    yield lab
    lab.stop_all()


def test_a_rolling_restart_connects_once_per_host(lab: Lab, fleet_options: FleetOptions,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    names = ["h1", "h2", "h3"]
    hosts: dict[str, Any] = {n: lab.add_host(n) for n in names}
    # h2's ps must end up EXITED, down but not held (`stop ps` holds it, and a held component leaves
    # its host ok, so the gate would never poll): restart never, then a kill.
    config = Path(hosts["h2"]["imageserving_config"])
    doc = yaml.safe_load(config.read_text())
    doc["components"]["ps"]["restart"] = "never"
    config.write_text(yaml.safe_dump(doc, sort_keys=False))
    targets = [make_target(n, hosts[n], fleet_options) for n in names]
    connector = CountingConnector(fleet_options)
    fleet = Fleet(connector, forks=10, timeout=60)
    try:
        assert {r.result for r in fleet.run(targets, action_job(Kind.START))} == {Result.OK}
        # h2's ps is down, and comes back only after the health gate has polled h2 twice: restarting
        # `is` there leaves the host degraded, so the gate must poll it before the next batch.
        h2 = hosts["h2"]
        os.kill(lab.component(h2, "ps")["pid"], signal.SIGKILL)
        assert wait_until(lambda: lab.component(h2, "ps")["state"] == "EXITED"), lab.component(h2, "ps")
        monkeypatch.setattr(rolling, "HEALTH_POLL", 0.05)
        polls: list[list[str]] = []
        real_run = fleet.run

        def counting_run(ts: Any, job: Job, timeout: float | None = None) -> Any:
            if job.kind is Kind.STATUS:
                polls.append([t.name for t in ts])
                if len(polls) == 2:
                    subprocess.run([str(lab.agent), "--home", h2["imageserving_home"], "--config",
                                    h2["imageserving_config"], "start"], capture_output=True, timeout=60, check=True)
            return real_run(ts, job, timeout)

        monkeypatch.setattr(fleet, "run", counting_run)
        results = rolling.rolling(fleet, targets, action_job(Kind.RESTART, "is"), rolling.Rolling("1"))
        assert [r.result for r in results] == [Result.OK] * 3, results
        assert len(polls) >= 2 and all(p == ["h2"] for p in polls), polls  # h2 alone, until RUNNING
        assert sorted(connector.connects) == names  # start, 3 restarts and every poll: one connection each
    finally:
        connector.close()
