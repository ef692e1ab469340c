"""Security: hostile inventory values never run anything, the become password never shows.

What other files already prove (listed in docs/reliability.md, not repeated here):
- the control socket refuses other uids: tests/agent/test_supervisor.py::test_another_uid_is_refused_on_the_socket
- unknown host keys refused by default: tests/fleet/test_fleet_cli.py::test_bad_hosts_each_get_their_reason_and_the_deadline_holds
  and ::test_accept_new_records_an_unknown_key; a changed key refused whatever the policy:
  ::test_changed_host_key_is_refused_whatever_the_policy and
  tests/fleet/test_fleet_faults.py::test_a_host_key_that_changes_between_two_runs_is_refused
- `is;reboot` as a component id on the fleet command line: test_fleet_cli.py::test_errors_before_any_host_and_bad_options
- the become password through a real sudo, from the environment and from -K: tests/fleet/test_become.py
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import yaml

from imageserving_fleet.agent.config import parse_config
from imageserving_fleet.errors import ConfigError
from tests.sshd import SshServer


def recording_agent(directory: Path) -> Path:
    """A fake `imageserving` that writes its argv, one JSON list per call, then prints a status."""
    status = {"schema": 1, "host": "x", "agent_version": "0.1.0", "time": "", "message": "",
              "supervisor": {"state": "RUNNING"}, "components": []}
    (directory / "status.json").write_text(json.dumps(status))
    path = directory / "imageserving"
    path.write_text(f"#!{sys.executable}\n"
                    "import json, sys, time\n"
                    f"open({str(directory / 'argv.log')!r}, 'a').write(json.dumps(sys.argv[1:]) + '\\n')\n"
                    "time.sleep(float(__import__('os').environ.get('FAKE_SLEEP', '0')))\n"
                    f"print(open({str(directory / 'status.json')!r}).read())\n")
    path.chmod(0o755)
    return path


def run_fleet(inventory: Path, sshd: SshServer, *args: str, env: dict[str, str] | None = None
              ) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k != "SSH_AUTH_SOCK"}
    base.update(env or {})
    return subprocess.run([sys.executable, "-m", "imageserving_fleet.fleet.main", "-i", str(inventory),
                           "--ssh-config", str(sshd.ssh_config_path), *args],
                          capture_output=True, text=True, timeout=120, env=base)


def test_hostile_inventory_values_reach_the_agent_as_plain_arguments(sshd: SshServer, tmp_path: Path) -> None:
    pwned = tmp_path / "pwned"
    agent = recording_agent(tmp_path)
    hostile = [f"$(touch {pwned})", f"`touch {pwned}`", f"x; touch {pwned}", f"x\ntouch {pwned}",
               f"x' ; touch {pwned}; '", f'x" ; touch {pwned}; "', f"x && touch {pwned} #", f"~/$(touch {pwned})"]
    hosts = {f"h{i}": {**sshd.inventory_vars(), "imageserving_command": str(agent), "imageserving_home": value,
                       "imageserving_config": value} for i, value in enumerate(hostile)}
    hosts["cmd"] = {**sshd.inventory_vars(), "imageserving_command": f"{agent}; touch {pwned}"}
    hosts["addr"] = {**sshd.inventory_vars(), "ansible_host": f"-oProxyCommand=touch {pwned}"}
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(yaml.safe_dump({"all": {"hosts": hosts}}))
    proc = run_fleet(inventory, sshd, "status", "--json")
    assert "Traceback" not in proc.stderr, proc.stderr
    assert not pwned.exists()
    calls = [json.loads(line) for line in (tmp_path / "argv.log").read_text().splitlines()]
    # Each hostile value arrived as one argument, byte for byte (a leading ~/ means the remote home).
    seen = {tuple(c[1:4:2]) for c in calls}  # (--home value, --config value)
    for value in hostile:
        expect = os.path.expanduser(value) if value.startswith("~/") else value
        assert (expect, expect) in seen, (value, seen)
    doc = json.loads(proc.stdout)
    results = {h["host"]: h for h in doc["hosts"]}
    assert results["cmd"]["result"] == "unreachable" and results["cmd"]["reason"].startswith("agent missing")
    assert results["addr"]["result"] == "unreachable"


@pytest.mark.parametrize("text", [
    'components: {"is;reboot": {command: [x]}}',
    "components: {is: {command: \"touch /tmp/x; reboot\"}}",
    "components: {is: {command: [x], ready: {command: \"reboot\"}}}",
])
def test_agent_config_refuses_shell_strings_and_bad_ids(text: str) -> None:
    with pytest.raises(ConfigError):
        parse_config(text, "agent.yaml")


def test_agent_cli_refuses_a_hostile_component_id(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "imageserving_fleet.agent.main", "--home", str(tmp_path / "h"),
                           "status", "is;reboot"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "valid ids" in proc.stderr and "Traceback" not in proc.stderr


def _parent(pid: str) -> int:
    with open(f"/proc/{pid}/stat") as handle:
        return int(handle.read().rsplit(")", 1)[1].split()[1])


def _scan(needle: bytes, marker: bytes, found: list[str], stop: threading.Event) -> None:
    """Reads every process's command line and environment until stopped, but the controller's environment.

    The controller is told apart by what /proc itself says, not by a pid learnt after Popen returns
    (a scan between the fork and that moment would read its environment): it is this process's
    child and its environment holds `marker`. Its own children would have the controller as parent.
    """
    me = os.getpid()
    while not stop.is_set():
        for pid in os.listdir("/proc"):
            if not pid.isdigit() or int(pid) == me:
                continue
            for what in ("cmdline", "environ"):
                try:
                    data = Path(f"/proc/{pid}/{what}").read_bytes()
                    if needle in data and what == "environ" and marker in data and _parent(pid) == me:
                        continue  # the controller: its environment is where the operator put the password
                except OSError:
                    continue
                if needle in data:
                    found.append(f"{pid} {what}: {data[:200]!r}")
        stop.wait(0.01)


def test_become_password_never_in_a_command_line_output_or_log(sshd: SshServer, tmp_path: Path) -> None:
    if not shutil.which("sudo"):
        pytest.skip("needs sudo on the (loopback) host: apt-get install -y sudo")
    password = "pw-" + secrets.token_hex(12)
    token = secrets.token_hex(8)
    agent = recording_agent(tmp_path)
    hosts = {f"b{i}": {**sshd.inventory_vars(), "imageserving_command": str(agent), "ansible_become": True,
                       "imageserving_home": str(tmp_path / f"home{i}")} for i in range(4)}
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(yaml.safe_dump({"all": {"hosts": hosts}}))
    base = {k: v for k, v in os.environ.items() if k != "SSH_AUTH_SOCK"}
    base.update(IMAGESERVING_BECOME_PASS=password, FAKE_SLEEP="1", IMAGESERVING_TEST_CONTROLLER=token)
    found: list[str] = []
    stop = threading.Event()
    scanner = threading.Thread(target=_scan, args=(password.encode(), f"IMAGESERVING_TEST_CONTROLLER={token}".encode(),
                                                  found, stop))
    scanner.start()
    try:
        proc = subprocess.Popen([sys.executable, "-m", "imageserving_fleet.fleet.main", "-i", str(inventory),
                                 "--ssh-config", str(sshd.ssh_config_path), "status", "--json"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=base)
        out, err = proc.communicate(timeout=120)
    finally:
        stop.set()
        scanner.join()
    assert "Traceback" not in err, err
    calls = (tmp_path / "argv.log").read_text()
    assert calls.count("status") == 4  # the agents ran (through sudo, as root, which reads no password)
    assert found == [], found
    for text in (out, err, calls, sshd.log()):
        assert password not in text
    # With --json, --quiet and the table alike.
    table = run_fleet(inventory, sshd, "status", env={"IMAGESERVING_BECOME_PASS": password})
    assert password not in table.stdout + table.stderr
