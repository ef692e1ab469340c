"""Status over the supervisor's socket against a real sshd: no process on the host, and each fallback.

Every host's agent is a wrapper that appends a line to a file each time it runs, so "no process
was started on the host" is a count of lines. The supervisors are started directly (no SSH).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from imageserving_fleet.agent import control
from imageserving_fleet.fleet.asksocket import SocketAsker, SocketCache, cache_key
from imageserving_fleet.fleet.jobs import status_job
from imageserving_fleet.fleet.results import HostResult, Result
from imageserving_fleet.fleet.runner import Fleet
from imageserving_fleet.fleet.ssh import Connector
from imageserving_fleet.fleet.target import FleetOptions, Target, make_target
from imageserving_fleet.home import Home
from tests.sshd import SshServer, sshd_available

from .fleetlab import agent_wrapper

STATUS = status_job()
CONFIG = "components:\n  sl:\n    command: [sleep, '100000']\n    start_delay: 0s\n"


@dataclass
class Host:
    """One logical host: its agent wrapper counts its runs; `home` is where its supervisor lives."""

    dir: Path
    agent: Path
    config: Path
    home: Path
    runs: Path

    def vars(self, server: SshServer, *, absolute_home: bool = True) -> dict[str, Any]:
        hv: dict[str, Any] = {**server.inventory_vars(), "imageserving_command": str(self.agent),
                              "imageserving_config": str(self.config)}
        if absolute_home:
            hv["imageserving_home"] = str(self.home)
        return hv

    def count(self) -> int:
        return len(self.runs.read_text().splitlines()) if self.runs.exists() else 0

    def agent_cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(self.agent), "--config", str(self.config), *args], capture_output=True,
                              text=True, timeout=120, env={**os.environ, "IMAGESERVING_HOME": str(self.home)})


def make_host(directory: Path, *, start: bool = True) -> Host:
    directory.mkdir(parents=True)
    real = agent_wrapper(directory)
    runs, home = directory / "runs", directory / "h"
    agent = directory / "recording-agent"
    # IMAGESERVING_HOME here, not in the inventory, stands for a host whose home is its own business.
    agent.write_text(f"#!/bin/sh\necho run >> {runs}\nIMAGESERVING_HOME={home}\nexport IMAGESERVING_HOME\n"
                     f"exec {real} \"$@\"\n")
    agent.chmod(0o755)
    config = directory / "agent.yaml"
    config.write_text(CONFIG)
    host = Host(directory, agent, config, home, runs)
    if start:
        done = host.agent_cli("start")
        assert done.returncode == 0, done.stderr
        runs.unlink()
    return host


@pytest.fixture(scope="module")
def hosts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Host]]:
    base = tmp_path_factory.mktemp("sockstatus")
    made = {"up": make_host(base / "up"), "down": make_host(base / "down", start=False)}
    yield made
    made["up"].agent_cli("stop")


def _fleet(server: SshServer, cache: Path, asker: SocketAsker | None = None, keep: bool = False) -> Fleet:
    options = FleetOptions(ssh_config=str(server.ssh_config_path), connect_timeout=10.0)
    return Fleet(Connector(options), forks=5, timeout=60, keep_sessions=keep,
                 asker=asker or SocketAsker(SocketCache(str(cache))))


def _target(server: SshServer, host: Host, name: str = "h", **kw: Any) -> Target:
    options = FleetOptions(ssh_config=str(server.ssh_config_path))
    return make_target(name, host.vars(server, **kw), options)


def _poll(fleet: Fleet, target: Target) -> HostResult:
    try:
        [res] = fleet.run([target], STATUS)
    finally:
        fleet.close()
    return res


class ExecOnly(SocketAsker):
    def socket_path(self, target: Target) -> str | None:
        return None


def _same(a: HostResult, b: HostResult) -> None:
    assert (a.result, a.reason) == (b.result, b.reason)
    strip = {"time", "uptime_s", "rss_bytes"}
    def norm(doc: Any) -> Any:
        if isinstance(doc, dict):
            return {k: norm(v) for k, v in doc.items() if k not in strip}
        return [norm(v) for v in doc] if isinstance(doc, list) else doc
    assert norm(a.to_dict()["status"]) == norm(b.to_dict()["status"])


def test_status_starts_no_process_on_the_host_and_says_what_exec_says(
        sshd: SshServer, hosts: dict[str, Host], tmp_path: Path) -> None:
    up = hosts["up"]
    target = _target(sshd, up)
    before = up.count()
    res = _poll(_fleet(sshd, tmp_path), target)
    assert res.result == Result.OK, res
    assert res.via == "socket"
    assert up.count() == before  # nothing ran on the host
    by_exec = _poll(_fleet(sshd, tmp_path, ExecOnly()), target)
    assert by_exec.via == "exec" and up.count() == before + 1
    _same(res, by_exec)
    # a component stopped: the same verdict and reason whichever way the host is asked
    assert control.stop(Home(str(up.home)), ["sl"]).code == 0  # the control socket: no CLI for it
    try:
        degraded = _poll(_fleet(sshd, tmp_path), target)
        assert degraded.reason and degraded.via == "socket", degraded  # held down since issue 12
        _same(degraded, _poll(_fleet(sshd, tmp_path, ExecOnly()), target))
        # an unknown component: the agent's usage error, both ways
        job = status_job(["nope"])
        fleet = _fleet(sshd, tmp_path)
        [bad] = fleet.run([target], job)
        fleet.close()
        assert bad.result == Result.FAILED and "unknown component" in bad.reason, bad
    finally:
        assert up.agent_cli("start").returncode == 0


def test_a_home_that_is_not_absolute_is_asked_by_exec_once_then_over_the_socket(
        sshd: SshServer, hosts: dict[str, Host], tmp_path: Path) -> None:
    up = hosts["up"]
    target = _target(sshd, up, absolute_home=False)
    before = up.count()
    first = _poll(_fleet(sshd, tmp_path), target)
    assert (first.result, first.via) == (Result.OK, "exec"), first
    entry = tmp_path / (cache_key(target) + ".json")
    assert json.loads(entry.read_text())["socket"] == str(up.home / "run" / "supervisor.sock")
    for _ in range(2):  # later runs, each with its own Fleet, read the cache
        again = _poll(_fleet(sshd, tmp_path), target)
        assert (again.result, again.via) == (Result.OK, "socket"), again
    assert up.count() == before + 1

    # a corrupt cache is ignored; a cached socket that is gone means exec; both are rewritten
    for broken in ("{not json", json.dumps({"socket": str(tmp_path / "gone.sock")})):
        entry.write_text(broken)
        res = _poll(_fleet(sshd, tmp_path), target)
        assert (res.result, res.via) == (Result.OK, "exec"), res
        assert json.loads(entry.read_text())["socket"] == str(up.home / "run" / "supervisor.sock")


def test_a_supervisor_that_is_down_is_failed_not_running(sshd: SshServer, hosts: dict[str, Host],
                                                        tmp_path: Path) -> None:
    res = _poll(_fleet(sshd, tmp_path), _target(sshd, hosts["down"]))
    assert res.result == Result.FAILED and res.reason == "Server Supervisor is not running", res
    assert res.via == "exec"


@pytest.fixture(scope="module", params=["AllowStreamLocalForwarding no", "DisableForwarding yes"])
def strict_sshd(request: pytest.FixtureRequest) -> Iterator[SshServer]:
    if not sshd_available():
        pytest.skip("/usr/sbin/sshd is not installed")
    with SshServer(extra_config=request.param + "\n") as server:
        yield server


def test_sshd_that_refuses_forwarding_gets_exec_and_the_same_result(
        strict_sshd: SshServer, hosts: dict[str, Host], tmp_path: Path) -> None:
    up = hosts["up"]
    target = _target(strict_sshd, up)
    fleet = _fleet(strict_sshd, tmp_path, keep=True)
    before = up.count()
    try:
        for _ in range(2):  # the second poll, on the kept connection, does not try the channel again
            [res] = fleet.run([target], STATUS)
            assert (res.result, res.via) == (Result.OK, "exec"), res
        assert fleet.asker.socket_path(target) is None
    finally:
        fleet.close()
    assert up.count() == before + 2


def test_json_says_via_and_verbose_says_why(strict_sshd: SshServer, sshd: SshServer,
                                            hosts: dict[str, Host], tmp_path: Path) -> None:
    import yaml

    up = hosts["up"]
    env = {k: v for k, v in os.environ.items() if k != "SSH_AUTH_SOCK"}
    env["XDG_CACHE_HOME"] = str(tmp_path)
    for server, via in ((sshd, "socket"), (strict_sshd, "exec")):
        inventory = tmp_path / "hosts.yml"
        inventory.write_text(yaml.safe_dump({"all": {"hosts": {"h": up.vars(server)}}}))
        proc = subprocess.run([sys.executable, "-m", "imageserving_fleet.fleet.main", "-i", str(inventory),
                               "--ssh-config", str(server.ssh_config_path), "status", "--json", "-v"],
                              capture_output=True, text=True, timeout=120, env=env)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert json.loads(proc.stdout)["hosts"][0]["via"] == via
        if via == "exec":
            assert "debug: h: direct-streamlocal@openssh.com" in proc.stderr and "refused" in proc.stderr


def test_kept_connection_is_reused_and_a_lost_one_reconnected(sshd: SshServer, hosts: dict[str, Host],
                                                              tmp_path: Path) -> None:
    connects: list[float] = []

    class Counting(Connector):
        def connect(self, target: Target, deadline: float) -> Any:
            connects.append(time.monotonic())
            return super().connect(target, deadline)

    target = _target(sshd, hosts["up"])
    fleet = Fleet(Counting(FleetOptions(ssh_config=str(sshd.ssh_config_path))), forks=5, timeout=60,
                  asker=SocketAsker(SocketCache(str(tmp_path))))
    try:
        for _ in range(3):
            [res] = fleet.run([target], STATUS)
            assert (res.result, res.via) == (Result.OK, "socket"), res
        assert len(connects) == 1
        session = fleet.pool.get(target, time.monotonic() + 30)
        assert session.transport.sock.gettimeout() == 5.0  # quiet reader thread while idle
        session.abort()  # the connection is lost (as when sshd restarts)
        [res] = fleet.run([target], STATUS)
        assert (res.result, res.via) == (Result.OK, "socket"), res
        assert len(connects) == 2
    finally:
        fleet.close()
