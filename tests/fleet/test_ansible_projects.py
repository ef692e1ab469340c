"""Six Ansible project directories, of the shapes public projects use, each reached by
`imageserving-fleet status` run from that directory with no -i and no product option, against the
real loopback sshd: ansible.cfg naming inventory/user/key, host_key_checking = False with a
debops-style inventory directory, kubespray's `ssh_args = -F ./ssh-bastion.conf` (through the
bastion), ANSIBLE_* variables only, trellis' group_vars beside the playbook, and become from
[privilege_escalation]. One supervisor (one sleeping component) answers for every project's host.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from imageserving_fleet.fleet.main import main as fleet_main
from tests.sshd import SshServer

from .fleetlab import agent_wrapper


@dataclass(frozen=True)
class Agent:
    command: Path
    home: Path
    config: Path

    def vars_yaml(self) -> str:
        return (f"imageserving_command: {self.command}\nimageserving_home: {self.home}\n"
                f"imageserving_config: {self.config}\n")


@pytest.fixture(scope="module")
def agent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Agent]:
    """One running supervisor with one sleeping component: every project's host is this one."""
    d = tmp_path_factory.mktemp("agent")
    config = d / "agent.yaml"
    config.write_text(yaml.safe_dump({"components": {"is": {
        "command": [sys.executable, "-c", "import time; time.sleep(100000)"], "start_delay": "100ms",
        "stop_timeout": "5s"}}}))
    found = Agent(agent_wrapper(d), d / "h", config)
    started = subprocess.run([str(found.command), "--home", str(found.home), "--config", str(config), "start"],
                             capture_output=True, text=True, timeout=120)
    assert started.returncode == 0, started.stderr
    try:
        yield found
    finally:
        subprocess.run([str(found.command), "--home", str(found.home), "stop"], capture_output=True, timeout=120)


@dataclass
class Project:
    files: dict[str, str]
    env: dict[str, str] = field(default_factory=dict)
    known_hosts: bool = True  # the sshd's key in ~/.ssh/known_hosts (else the project turns checking off)
    via_bastion: bool = False


def projects(sshd: SshServer, agent: Agent) -> dict[str, Project]:
    key, port, user = sshd.user_key_path, sshd.port, sshd.user
    host = f"ansible_host=127.0.0.1 ansible_port={port}"
    return {
        "cfg names inventory, user, key": Project({
            "ansible.cfg": f"[defaults]\ninventory = hosts.ini\nremote_user = {user}\nprivate_key_file = {key}\n",
            "hosts.ini": f"[web]\nweb1 {host}\n",
            "group_vars/all.yml": agent.vars_yaml(),
        }),
        "debops inventory directory, host_key_checking off": Project({
            "ansible.cfg": "[defaults]\ninventory = ansible/inventory\nhost_key_checking = False\n",
            "ansible/inventory/hosts": f"[debops_all_hosts]\nnode-a {host}\n",
            "ansible/inventory/group_vars/all.yml": agent.vars_yaml()
            + f"ansible_user: {user}\nansible_ssh_private_key_file: {key}\n",
        }, known_hosts=False),
        "kubespray bastion": Project({
            "ansible.cfg": "[ssh_connection]\npipelining=True\nssh_args = -F ./ssh-bastion.conf -o ControlMaster=auto "
                           "-o ControlPersist=30m -o ConnectionAttempts=100\n[defaults]\nhost_key_checking=False\n"
                           f"inventory = inventory/mycluster/hosts.yaml\nremote_user = {user}\n",
            "ssh-bastion.conf": f"Host bastion\n  HostName 127.0.0.1\n  Port {port}\n  User {user}\n"
                                f"  IdentityFile {key}\nHost 127.0.0.1\n  ProxyJump bastion\n  IdentityFile {key}\n",
            "inventory/mycluster/hosts.yaml": f"all:\n  hosts:\n    node1: {{ansible_host: 127.0.0.1, ansible_port: {port}}}\n",
            "inventory/mycluster/group_vars/all.yml": agent.vars_yaml(),
        }, known_hosts=False, via_bastion=True),
        "ANSIBLE_* only": Project({
            "conf/team.cfg": "[defaults]\nforks = 3\n",
            "inv.yml": f"all:\n  hosts:\n    a1: {{ansible_host: 127.0.0.1, ansible_port: {port}}}\n"
                       f"  vars: {json.dumps(yaml.safe_load(agent.vars_yaml()))}\n",
        }, env={"ANSIBLE_CONFIG": "conf/team.cfg", "ANSIBLE_INVENTORY": "inv.yml", "ANSIBLE_REMOTE_USER": user,
                "ANSIBLE_PRIVATE_KEY_FILE": str(key), "ANSIBLE_HOST_KEY_CHECKING": "False"}, known_hosts=False),
        "trellis group_vars beside the playbook": Project({
            "ansible.cfg": "[defaults]\ninventory = hosts/production\n",
            "hosts/production": f"[production]\nexample.com {host}\n[web]\nexample.com\n",
            "group_vars/all/main.yml": f"ansible_user: {user}\nansible_ssh_private_key_file: {key}\n",
            "group_vars/production/imageserving.yml": agent.vars_yaml(),
        }),
        "become from privilege_escalation": Project({
            "ansible.cfg": f"[defaults]\ninventory = hosts\nremote_user = {user}\nprivate_key_file = {key}\n"
                           "[privilege_escalation]\nbecome = True\nbecome_method = sudo\n",
            "hosts": f"b1 {host}\n",
            "host_vars/b1.yml": agent.vars_yaml(),
        }),
    }


def fleet(cwd: Path, home: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """The real CLI as a child process, from `cwd`, with only `env`'s ANSIBLE_*/IMAGESERVING_* variables."""
    full = {k: v for k, v in os.environ.items()
            if not k.startswith(("ANSIBLE_", "IMAGESERVING_")) and k != "SSH_AUTH_SOCK"}
    full.update(env, HOME=str(home))
    return subprocess.run([sys.executable, "-m", "imageserving_fleet.fleet.main", *args], cwd=cwd, env=full,
                          capture_output=True, text=True, timeout=180)


def fleet_here(cwd: Path, home: Path, env: dict[str, str], monkeypatch: pytest.MonkeyPatch,
               capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """The same CLI in this process (main(), real argv handling and exit codes): no interpreter start."""
    for name in list(os.environ):
        if name.startswith(("ANSIBLE_", "IMAGESERVING_")) or name == "SSH_AUTH_SOCK":
            monkeypatch.delenv(name)
    for name, value in {**env, "HOME": str(home)}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(cwd)
    capsys.readouterr()
    with pytest.raises(SystemExit) as exited:
        fleet_main(list(args))
    out, err = capsys.readouterr()
    return int(exited.value.code or 0), out, err


NAMES = ["cfg names inventory, user, key", "debops inventory directory, host_key_checking off", "kubespray bastion",
         "ANSIBLE_* only", "trellis group_vars beside the playbook", "become from privilege_escalation"]


@pytest.mark.parametrize("name", NAMES)
def test_status_from_the_project_directory(name: str, sshd: SshServer, agent: Agent, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    project = projects(sshd, agent)[name]
    if name.startswith("become") and not shutil.which("sudo"):
        pytest.skip("sudo is not installed")
    root = tmp_path / "project"
    for rel, text in project.files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    if project.known_hosts:
        (home / ".ssh" / "known_hosts").write_text(sshd.known_hosts_line())
    code, out, err = fleet_here(root, home, project.env, monkeypatch, capsys, "status", "--json")
    assert code == 0, (out, err)
    doc = json.loads(out)
    assert [h["result"] for h in doc["hosts"]] == ["ok"], doc
    assert "packaged inventory" not in err
    code, out, _ = fleet_here(root, home, project.env, monkeypatch, capsys, "hosts", "--json")
    settings: dict[str, Any] = json.loads(out)["hosts"][0]["settings"]
    if project.via_bastion:
        assert settings["jump"]["value"] == "bastion" and "ssh_config" in settings["jump"]["source"]
        assert "ControlMaster=auto" in err and "not honoured" in err  # named, not dropped
    if not project.known_hosts:
        assert settings["host_key_policy"]["value"] == "warn"
    if name.startswith("become"):
        assert settings["become"] == {"value": True, "source": settings["become"]["source"]}
        assert "ansible.cfg" in settings["become"]["source"]


def test_no_inventory_anywhere_says_so_on_stderr(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    proc = fleet(tmp_path, home, {}, "hosts")
    assert proc.returncode == 0 and "packaged inventory (localhost only)" in proc.stderr


def test_an_inventory_the_cfg_names_that_does_not_exist_is_exit_1(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (tmp_path / "ansible.cfg").write_text("[defaults]\ninventory = nowhere.ini\n")
    code, _, err = fleet_here(tmp_path, home, {}, monkeypatch, capsys, "status")
    assert code == 1 and f"inventory {tmp_path / 'nowhere.ini'} does not exist" in err and "Traceback" not in err


def test_a_malformed_cfg_is_exit_1_with_file_and_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (tmp_path / "ansible.cfg").write_text("[defaults]\nforks = 5\nforks = 6\n")
    code, _, err = fleet_here(tmp_path, home, {}, monkeypatch, capsys, "status")
    assert code == 1 and f"{tmp_path / 'ansible.cfg'}:3: option 'forks'" in err and "Traceback" not in err
