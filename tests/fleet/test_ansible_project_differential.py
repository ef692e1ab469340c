"""Differential test: ansible-core and imageserving-fleet, on Ansible project directories built here
(ansible.cfg, ANSIBLE_* variables, group_vars beside the playbook directory, become settings), must
select the same hosts and reach each with the same address, port, user, key and become settings.

ansible-core answers in a child process (tests/fleet/ansible_project_oracle.py: its own ssh
connection plugin and sudo become plugin resolve their options), run in the project directory with
the case's environment; the product resolves in-process (context.resolve, as the CLI does).
ansible-core is in the `test` extra; without it the module is skipped. The number of settings
compared is printed (`-s`) and asserted to be what the cases hold.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from imageserving_fleet.fleet.context import Command, resolve
from imageserving_fleet.fleet.options import Options

pytestmark = pytest.mark.skipif(importlib.util.find_spec("ansible") is None,
                                reason="ansible-core is not installed (pip install -e '.[test]')")

ORACLE = Path(__file__).with_name("ansible_project_oracle.py")


@dataclass
class Case:
    name: str
    files: dict[str, str]
    env: dict[str, str] = field(default_factory=dict)
    cwd: str = "."  # where both run, relative to the project


CASES = [
    Case("cfg names inventory, user, key", {
        "ansible.cfg": "[defaults]\ninventory = hosts.ini\nremote_user = deploy\nprivate_key_file = ~/.ssh/deploy\n",
        "hosts.ini": "[web]\nweb1 ansible_host=10.0.0.1\nweb2 ansible_port=2202\n[db]\ndb1 ansible_user=dba\n"
                     "[db:vars]\nansible_ssh_private_key_file=keys/db\n",
    }),
    Case("debops inventory directory, host_key_checking off", {
        "ansible.cfg": "[defaults]\ninventory = ansible/inventory/\nhost_key_checking = False\nforks = 20\n"
                       "timeout = 7\n",
        "ansible/inventory/hosts": "[debops_all_hosts]\nhost-a\nhost-b ansible_ssh_user=legacy\n",
        "ansible/inventory/group_vars/all.yml": "ansible_user: admin\nansible_port: 2022\n",
        "ansible/inventory/host_vars/host-a.yml": "ansible_ssh_port: 2023\n",
    }),
    Case("kubespray bastion args, YAML inventory", {
        "ansible.cfg": "[ssh_connection]\npipelining=True\nssh_args = -F ./ssh-bastion.conf -o ControlMaster=auto "
                       "-o ControlPersist=30m -o ConnectionAttempts=100 -o UserKnownHostsFile=/dev/null\n"
                       "[defaults]\nhost_key_checking=False\ninventory = inventory/mycluster/hosts.yaml\n"
                       "remote_user = ubuntu\n[privilege_escalation]\nbecome = True\n",
        "ssh-bastion.conf": "Host 10.*\n  ProxyJump bastion\n",
        "inventory/mycluster/hosts.yaml": "all:\n  hosts:\n    node1: {ansible_host: 10.0.0.11}\n"
                                          "    node2: {ansible_host: 10.0.0.12, ansible_become: false}\n"
                                          "  children:\n    kube_control_plane: {hosts: {node1: }}\n",
        "inventory/mycluster/group_vars/kube_control_plane.yml": "ansible_become_user: kube\n",
    }),
    Case("trellis: group_vars beside the playbook", {
        "ansible.cfg": "[defaults]\ninventory = hosts/production\nprivate_key_file = ~/.ssh/trellis\n",
        "hosts/production": "[production]\nexample.com\n[web]\nexample.com\n",
        "group_vars/all/main.yml": "ansible_user: web\n",
        "group_vars/production/main.yml": "ansible_port: 2200\n",
        "host_vars/example.com.yml": "ansible_become: true\n",
    }),
    Case("ANSIBLE_* only, ANSIBLE_CONFIG elsewhere", {
        "conf/team.cfg": "[defaults]\nremote_user = fromcfg\nforks = 9\n[privilege_escalation]\nbecome_user = app\n",
        "inv.yml": "all:\n  hosts:\n    a1:\n    a2: {ansible_user: own}\n",
    }, env={"ANSIBLE_CONFIG": "conf/team.cfg", "ANSIBLE_INVENTORY": "inv.yml", "ANSIBLE_REMOTE_USER": "envuser",
            "ANSIBLE_PRIVATE_KEY_FILE": "keys/env", "ANSIBLE_HOST_KEY_CHECKING": "False", "ANSIBLE_BECOME": "yes",
            "ANSIBLE_REMOTE_PORT": "2201"}),
    Case("privilege escalation from the file, variables beat it", {
        "ansible.cfg": "[defaults]\ninventory = hosts\nremote_port = 2400\n[privilege_escalation]\nbecome = True\n"
                       "become_user = svc\nbecome_method = sudo\n",
        "hosts": "h1\nh2 ansible_become=false\nh3 ansible_become_user=other ansible_port=22\n",
    }, env={"ANSIBLE_BECOME_USER": "envsvc"}),
    Case("inventory list, later source wins, playbook group_vars beat the inventory's", {
        "ansible.cfg": "[defaults]\ninventory = one.ini, two.yml\nremote_user = cfg\n",
        "one.ini": "[g]\nx1 ansible_user=first\nx2\n",
        "two.yml": "all:\n  children:\n    g:\n      vars: {ansible_port: 2300}\n",
        "group_vars/g.yml": "ansible_user: pb\n",
        "host_vars/x2.yml": "ansible_ssh_private_key_file: ~/.ssh/x2\n",
    }),
    Case("run from a subdirectory: cfg found by ANSIBLE_CONFIG, relative paths", {
        "ansible.cfg": "[defaults]\ninventory = hosts.ini\nhost_key_checking = true\n",
        "hosts.ini": "s1 ansible_host=192.0.2.1\n",
        "sub/keep": "",
    }, env={"ANSIBLE_CONFIG": "../ansible.cfg", "ANSIBLE_PRIVATE_KEY_FILE": "../k"}, cwd="sub"),
]


def build(root: Path, case: Case) -> Path:
    for rel, text in case.files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root / case.cwd


def ansible_answer(cwd: Path, env: dict[str, str]) -> dict[str, Any]:
    done = subprocess.run([sys.executable, "-W", "ignore", str(ORACLE)], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    answer: dict[str, Any] = json.loads(done.stdout)
    return answer


def product_answer(cwd: Path, env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    monkeypatch.chdir(cwd)
    ctx = resolve(Options(), env, Command.HOSTS, cwd=str(cwd))
    hosts = {}
    for t in ctx.targets:
        key = os.path.join(str(cwd), os.path.expanduser(t.key_file)) if t.key_file else None
        hosts[t.name] = {"address": t.hostname, "port": t.port if t.port_explicit else None, "user": t.user,
                         "key": key, "become": t.become, "become_user": t.become_user or "root"}
    assert ctx.wide is not None
    return {"hosts": hosts, "forks": ctx.forks, "timeout": ctx.ssh.connect_timeout,
            "policy": ctx.ssh.host_key_policy, "forks_source": ctx.wide.forks.source}


COMPARED: list[int] = []


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_ansible_core_and_the_product_agree(case: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    home.mkdir()
    cwd = build(tmp_path / "project", case)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANSIBLE_", "IMAGESERVING_"))}
    env.update(case.env, HOME=str(home))
    theirs = ansible_answer(cwd, env)
    monkeypatch.setenv("HOME", str(home))
    ours = product_answer(cwd, env, monkeypatch)
    compared = 0
    assert list(ours["hosts"]) == list(theirs["hosts"]), "the same hosts, in the same order"
    compared += 1
    for name, want in theirs["hosts"].items():
        got = ours["hosts"][name]
        want = dict(want)
        if want["key"]:
            want["key"] = os.path.join(str(cwd), os.path.expanduser(want["key"]))
        for setting in ("address", "port", "user", "key", "become", "become_user"):
            assert got[setting] == want[setting], (name, setting, got[setting], want[setting])
            compared += 1
        assert want["become_method"] == "sudo"
        assert ours["policy"] == ("reject" if want["host_key_checking"] else "warn"), name
        compared += 1
    assert ours["timeout"] == float(theirs["timeout"])
    compared += 1
    if ours["forks_source"] != "default":  # unset, the product's default is 50 where ansible's is 5 (README)
        assert ours["forks"] == theirs["forks"]
        compared += 1
    COMPARED.append(compared)


def test_how_many_settings_were_compared() -> None:
    """Runs last in the module (file order): the count the closing note reports."""
    if len(COMPARED) != len(CASES):
        pytest.skip("run with the whole module to count")
    total = sum(COMPARED)
    print(f"\nansible-core and imageserving-fleet agreed on {total} settings over {len(CASES)} project directories")
    assert total >= 100
