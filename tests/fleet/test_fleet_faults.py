"""Faults the fleet controller must survive, against a real loopback sshd: hundreds of hosts at
high forks, hosts that drop mid-command, a host that floods output, a host key that changes
between two runs, and Ctrl-C in the middle of a rolling restart.

The hosts run a fake `imageserving` (a few lines of sh printing a schema-1 status), so what is
measured is the controller and SSH, not the agent.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil
import yaml

from tests.sshd import SshServer, keygen

STATUS = {"schema": 1, "host": "fake", "agent_version": "0.1.0", "time": "2026-11-26T17:00:00Z",
          "supervisor": {"state": "RUNNING", "pid": 1, "uptime_s": 1.0, "rss_bytes": 1},
          "components": [{"id": c, "description": c, "state": "RUNNING", "pid": 2, "uptime_s": 1.0, "rss_bytes": 1,
                          "restarts": 0, "last_exit": None, "message": ""} for c in ("ps", "is", "svg")],
          "message": ""}


def fake_agent(directory: Path, name: str, on_run: str = "") -> Path:
    """An `imageserving` for the hosts: `--version`, or any command -> `on_run`, then the status JSON.

    Each call appends `<home> <command> begin|end` to <directory>/calls.log (home is per host).
    """
    status = directory / "status.json"
    status.write_text(json.dumps(STATUS))
    path = directory / name
    path.write_text(f"""#!/bin/sh
home=-
while [ $# -gt 0 ]; do
  case "$1" in
    --version) echo "imageserving 0.1.0"; exit 0;;
    --home) home=$2; shift 2;;
    --config) shift 2;;
    *) break;;
  esac
done
echo "$home $1 begin" >> {directory}/calls.log
{on_run}
cat {status}
echo "$home $1 end" >> {directory}/calls.log
""")
    path.chmod(0o755)
    return path


def write_inventory(path: Path, sshd: SshServer, hosts: dict[str, Path | str]) -> Path:
    """hosts: name -> agent path. Each host gets its own (fake) home: its name."""
    base = sshd.inventory_vars()
    doc = {"all": {"hosts": {name: {"imageserving_command": str(agent), "imageserving_home": f"/nonexistent/{name}"}
                             for name, agent in hosts.items()},
                   "vars": base}}
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def fleet_argv(inventory: Path, ssh_config: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "imageserving_fleet.fleet.main", "-i", str(inventory),
            "--ssh-config", str(ssh_config), *args]


def run_fleet(inventory: Path, ssh_config: Path, *args: str, timeout: float = 120) -> tuple[int, dict[str, Any], str]:
    env = {k: v for k, v in os.environ.items() if k != "SSH_AUTH_SOCK"}
    proc = subprocess.run(fleet_argv(inventory, ssh_config, *args, "--json"), capture_output=True, text=True,
                          timeout=timeout, env=env)
    assert "Traceback" not in proc.stderr, proc.stderr
    try:
        return proc.returncode, json.loads(proc.stdout), proc.stderr
    except ValueError:
        raise AssertionError(f"no JSON (exit {proc.returncode}): {proc.stdout!r} {proc.stderr!r}") from None


def by_host(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {h["host"]: h for h in doc["hosts"]}


# ------------------------------------------------------------------ many hosts


def _many(sshd: SshServer, tmp_path: Path, hosts: int, forks: int) -> tuple[float, dict[str, Any]]:
    agent = fake_agent(tmp_path, "imageserving")
    inv = write_inventory(tmp_path / "hosts.yml", sshd, {f"h{i:03d}": agent for i in range(hosts)})
    started = time.monotonic()
    code, doc, err = run_fleet(inv, sshd.ssh_config_path, "status", "--forks", str(forks), "--timeout", "60",
                               timeout=300)
    elapsed = time.monotonic() - started
    assert code == 0, (doc["summary"], [h for h in doc["hosts"] if h["result"] != "ok"][:5])
    assert doc["summary"] == {"hosts": hosts, "ok": hosts, "degraded": 0, "failed": 0, "unreachable": 0,
                              "skipped": 0}
    assert [h["host"] for h in doc["hosts"]] == [f"h{i:03d}" for i in range(hosts)]  # inventory order
    return elapsed, doc


def test_500_hosts_at_forks_200(sshd: SshServer, tmp_path: Path) -> None:
    """500 logical hosts on one sshd, 200 at once: every one ok, in order, well within the deadline
    (about 15 s on a 2-core box; the fleet's own timing is in bench/fleet.py). No bound on the
    wall time here beyond the run's own timeout: a machine ten times slower is still correct."""
    elapsed, doc = _many(sshd, tmp_path, 500, 200)
    print(f"500 hosts at forks 200: {elapsed:.1f} s, slowest host {max(h['elapsed_s'] for h in doc['hosts']):.1f} s")


# ------------------------------------------------------ hosts that drop or flood


def test_hosts_dropping_mid_command_and_one_flooding_100_mb(sshd: SshServer, tmp_path: Path) -> None:
    good = fake_agent(tmp_path, "good")
    # Killing the agent's nearest sshd ancestor (the session process; the framing shell stands between)
    # drops the connection in the middle of the command, as a host that crashes or loses its network does.
    drop = fake_agent(tmp_path, "drop", on_run="sleep 0.3; p=$PPID; while [ \"$(cat /proc/$p/comm)\" != sshd ]; "
                                                "do p=$(cut -d' ' -f4 /proc/$p/stat); done; kill -9 $p; sleep 120")
    flood = fake_agent(tmp_path, "flood", on_run="head -c 104857600 /dev/zero")
    inv = write_inventory(tmp_path / "hosts.yml", sshd, {"ok1": good, "drop1": drop, "flood": flood, "ok2": good,
                                                         "drop2": drop})
    env = {k: v for k, v in os.environ.items() if k != "SSH_AUTH_SOCK"}
    started = time.monotonic()
    proc = subprocess.Popen(fleet_argv(inv, sshd.ssh_config_path, "status", "--json", "--timeout", "120"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    peak = 0
    controller = psutil.Process(proc.pid)
    while proc.poll() is None:
        try:
            peak = max(peak, controller.memory_info().rss)
        except psutil.Error:
            break
        time.sleep(0.02)
    out, err = proc.communicate(timeout=240)
    elapsed = time.monotonic() - started
    assert "Traceback" not in err, err
    doc = json.loads(out)
    hosts = by_host(doc)
    assert hosts["ok1"]["result"] == "ok" and hosts["ok2"]["result"] == "ok"
    for name in ("drop1", "drop2"):
        assert hosts[name]["result"] == "unreachable" and hosts[name]["reason"].startswith("connection lost"), hosts[name]
    assert hosts["flood"]["result"] == "failed" and hosts["flood"]["reason"].startswith("output too large"), hosts["flood"]
    assert proc.returncode == 4  # unreachable wins over failed
    # Each failure ended its host at once (the reasons above), not the 120 s deadline (or the drop's sleep).
    assert elapsed < 60, elapsed
    # The output cap is 16 MiB; the controller never holds the 100 MB.
    assert peak < 160 * 2**20, peak
    print(f"flood: controller peak RSS {peak / 2**20:.0f} MiB, run {elapsed:.1f} s")


# ------------------------------------------------------------ host key changes


def _restart_with_new_host_key(server: SshServer) -> None:
    """The same host (address and port) comes back with a new host key: a reinstall, or an attacker."""
    server._terminate()
    keygen(server.host_key_path, "imageserving-test-host-2")
    server.process = subprocess.Popen(
        ["/usr/sbin/sshd", "-D", "-e", "-f", str(server.config_path), "-E", str(server.log_path)],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    assert server._wait_ready(timeout=10.0), server.log()


def test_a_host_key_that_changes_between_two_runs_is_refused(tmp_path: Path) -> None:
    with SshServer(directory=tmp_path / "sshd") as server:
        agent = fake_agent(tmp_path, "imageserving")
        inv = write_inventory(tmp_path / "hosts.yml", server, {"moved": agent})
        known = tmp_path / "known_hosts"
        known.write_text("")
        config = server.write_ssh_config(tmp_path / "ssh_config", known_hosts=known)
        code, doc, _ = run_fleet(inv, config, "status", "--host-key-policy", "accept-new")
        assert code == 0, doc
        recorded = known.read_text()
        assert server.host_pub.split()[1] in recorded
        _restart_with_new_host_key(server)
        for policy in ("reject", "accept-new"):  # and warn: test_fleet_cli.py::test_changed_host_key_is_refused_…
            code, doc, _ = run_fleet(inv, config, "status", "--host-key-policy", policy)
            assert code == 4, doc
            assert doc["hosts"][0]["reason"].startswith("changed host key"), doc
        assert known.read_text() == recorded  # never overwritten
        calls = (tmp_path / "calls.log").read_text().count("status begin")
        assert calls == 1  # nothing ran on the impostor


# ---------------------------------------------------------------- Ctrl-C


def test_ctrl_c_in_the_middle_of_a_rolling_restart(sshd: SshServer, tmp_path: Path) -> None:
    # The second batch (r3, r4) is still restarting when Ctrl-C comes, however slow the machine.
    agent = fake_agent(tmp_path, "imageserving",
                       on_run='[ "$1" = restart ] && case "$home" in */r3|*/r4) sleep 120;; *) sleep 0.2;; esac')
    names = [f"r{i}" for i in range(1, 7)]
    inv = write_inventory(tmp_path / "hosts.yml", sshd, dict.fromkeys(names, agent))
    env = {k: v for k, v in os.environ.items() if k != "SSH_AUTH_SOCK"}
    proc = subprocess.Popen(fleet_argv(inv, sshd.ssh_config_path, "restart", "--serial", "2"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    calls = tmp_path / "calls.log"

    def restarts_begun() -> int:
        return calls.read_text().count("restart begin") if calls.exists() else 0

    end = time.monotonic() + 60
    while restarts_begun() < 4 and time.monotonic() < end:  # the second batch is restarting
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 99, (out, err)
    assert "Traceback" not in err, err
    assert "interrupted: the report above is partial" in err
    lines = {n: next((ln for ln in out.splitlines() if ln.strip("│ ").split()[:1] == [n]), "") for n in names}
    assert all(lines.values()), out  # every host is in the report
    for n in ("r1", "r2"):
        assert " ok " in lines[n], lines[n]  # restarted, and healthy before batch 2 began
    for n in ("r3", "r4"):
        assert "failed" in lines[n] and "half-restarted" in lines[n], lines[n]
    for n in ("r5", "r6"):
        assert "skipped" in lines[n] and "not restarted" in lines[n], lines[n]
    assert "hosts=6 ok=2 degraded=0 failed=2 unreachable=0 skipped=2" in out
    log = calls.read_text()
    assert "/nonexistent/r5 restart" not in log and "/nonexistent/r6 restart" not in log  # truly not touched


def test_ctrl_c_json_report_accounts_for_every_host(sshd: SshServer, tmp_path: Path) -> None:
    agent = fake_agent(tmp_path, "imageserving",
                       on_run='[ "$1" = restart ] && case "$home" in */j2) sleep 120;; *) sleep 0.2;; esac')
    names = [f"j{i}" for i in range(1, 5)]
    inv = write_inventory(tmp_path / "hosts.yml", sshd, dict.fromkeys(names, agent))
    env = {k: v for k, v in os.environ.items() if k != "SSH_AUTH_SOCK"}
    proc = subprocess.Popen(fleet_argv(inv, sshd.ssh_config_path, "restart", "--serial", "1", "--json"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    calls = tmp_path / "calls.log"
    end = time.monotonic() + 60
    while not (calls.exists() and "/j2 restart begin" in calls.read_text()) and time.monotonic() < end:
        time.sleep(0.02)  # j1 is done, j2 is restarting (until interrupted)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 99 and "Traceback" not in err, err
    doc = json.loads(out)
    hosts = by_host(doc)
    assert list(hosts) == names
    assert hosts["j1"]["result"] == "ok"
    assert hosts["j4"]["result"] == "skipped" and "not restarted" in hosts["j4"]["reason"]
    assert doc["summary"]["hosts"] == 4
