"""`restart supervisor` that fails, and ownership without a cgroup (SPEC §2), with small real programs."""

from __future__ import annotations

import json
import os
import shutil
import signal
from pathlib import Path

from imageserving_fleet.agent import ownership

from .conftest import Agent, component, config, free_port, port_free, prog, wait_for


def test_restart_supervisor_that_cannot_start_leaves_the_old_one(agent: Agent, tmp_path: Path) -> None:
    port = free_port()
    agent.write(config(component("is", prog("listen", str(port)), ready={"tcp": f"127.0.0.1:{port}"})))
    assert agent.run("restart", "supervisor").returncode == 7  # nothing to hand over
    shadow = tmp_path / "shadow"
    shadow.mkdir()
    agent.env["PYTHONPATH"] = str(shadow)  # the supervisor and whatever it starts see this directory first
    agent.run("start", check=True)
    old_sup, old_pids = agent.supervisor_pid(), agent.pids()
    # A broken build installed after the supervisor started: the new one cannot even import.
    pkg = shadow / "imageserving_fleet"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("raise SystemExit('a broken build')\n")
    del agent.env["PYTHONPATH"]
    proc = agent.run("restart", "supervisor")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "the new Server Supervisor failed" in proc.stderr and f"pid {old_sup}" in proc.stderr
    assert agent.supervisor_pid() == old_sup and agent.pids() == old_pids
    assert agent.run("status").returncode == 0
    shutil.rmtree(pkg)  # with whatever bytecode the failed start left in it
    proc = agent.run("restart", "supervisor")  # the fix is installed: it works now
    assert proc.returncode == 0, proc.stderr
    assert agent.supervisor_pid() != old_sup and agent.pids() == old_pids


def test_without_a_cgroup_the_subreaper_finds_a_detached_grandchild(agent: Agent) -> None:
    """nginx-style detach (double fork, setsid, empty environment) with cgroups off: the orphan
    reparented to the supervisor is recorded with its start time, so a stop after the
    supervisor's kill -9 still finds it."""
    port = free_port()
    agent.env[ownership.CGROUP_ENV] = "off"
    other = free_port()
    agent.write(config(component("dd", prog("detach", str(port)), ready={"tcp": f"127.0.0.1:{port}"}),
                       # started after dd: its log relay (our child too) must not pass for dd's orphan
                       component("svg", prog("listen", str(other)), ready={"tcp": f"127.0.0.1:{other}"},
                                 start_priority=2)))
    agent.run("start", check=True)
    assert "ownership: no cgroup" in agent.log()
    state = agent.home / "run" / "components.json"
    main, agent_pid = agent.pids()["dd"], agent.pids()["svg"]

    def recorded() -> list[int]:
        rec = json.loads(state.read_text())["components"]["dd"]
        return [pid for pid, _ in rec["seen"] if pid != main]

    grandchild = wait_for(recorded)[0]
    assert rec_cgroup(state) is None
    assert Path(f"/proc/{grandchild}/environ").read_bytes() == b""  # nothing to find it by but the record
    os.kill(agent.supervisor_pid() or 0, signal.SIGKILL)
    wait_for(lambda: agent.run("status").returncode == 3)
    proc = agent.run("status", "--json")
    assert json.loads(proc.stdout)["orphans"] == [{"id": "dd", "pids": sorted([main, grandchild])},
                                                  {"id": "svg", "pids": [agent_pid]}]
    proc = agent.run("stop")
    assert proc.returncode == 0 and "stopped 3 processes left by a dead supervisor" in proc.stdout + proc.stderr
    assert ownership.stat(grandchild) is None and port_free(port) and port_free(other)


def rec_cgroup(state: Path) -> str | None:
    cgroup: str | None = json.loads(state.read_text())["components"]["dd"]["cgroup"]
    return cgroup
