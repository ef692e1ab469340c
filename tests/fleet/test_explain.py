"""What `hosts` explains (fleet/explain.py): each effective setting and its source, ssh_config and
defaults included, from a Target, its SshSettings and the run's settings. Pure: tables."""

from __future__ import annotations

from typing import Any

import pytest

from imageserving_fleet.fleet.ansiblecfg import AnsibleSettings, Sourced
from imageserving_fleet.fleet.explain import explain, text_rows
from imageserving_fleet.fleet.runwide import RunWide
from imageserving_fleet.fleet.ssh.settings import Destination, resolve
from imageserving_fleet.fleet.target import FleetOptions, make_target

WIDE = RunWide(Sourced(("hosts",), "command line -i"), Sourced(50, "default"), Sourced(10.0, "default"),
               Sourced("warn", "ansible.cfg /p/ansible.cfg:5 host_key_checking = False"), AnsibleSettings())


def settings_for(vars: dict[str, Any], cfg: dict[str, Any]) -> dict[str, dict[str, Any]]:
    target = make_target("web1", vars, FleetOptions(), origins={"ansible_user": "group web, hosts:3"})
    dest: Destination = target.destination
    ssh = resolve(dest, lambda path, host: cfg, connect_timeout=10.0, local_user="me")
    return explain(target, ssh, cfg, WIDE)


@pytest.mark.parametrize(("vars", "cfg", "expect"), [
    ({}, {}, {"user": ("me", "default (the local user)"), "port": (22, "default"), "jump": (None, "none"),
              "keys": ([], "default: ssh-agent"), "address": ("web1", "inventory name")}),
    ({}, {"user": "cfguser", "port": "2222", "hostname": "10.1.1.1", "identityfile": ["~/.ssh/k"],
          "proxyjump": "bastion", "identitiesonly": "yes"},
     {"user": ("cfguser", "ssh_config User"), "port": (2222, "ssh_config Port"),
      "address": ("10.1.1.1", "ssh_config HostName"), "jump": ("bastion", "ssh_config ProxyJump"),
      "keys": (["~/.ssh/k"], "ssh_config IdentityFile (IdentitiesOnly)")}),
    ({"ansible_user": "u", "ansible_port": 2200, "ansible_ssh_private_key_file": "/k", "ansible_password": "s3cret",
      "ansible_ssh_common_args": "-J jumper"}, {"identityfile": ["~/.ssh/k"]},
     {"user": ("u", "inventory ansible_user (group web, hosts:3)"), "port": (2200, "inventory ansible_port"),
      "keys": (["/k", "~/.ssh/k"], "inventory ansible_ssh_private_key_file; then ssh_config IdentityFile"),
      "jump": ("jumper", "inventory ansible_ssh_common_args"), "password": ("set", "inventory ansible_password"),
      "host_key_policy": ("warn", "host_key_checking = False"), "become": (False, "default")}),
])
def test_explain(vars: dict[str, Any], cfg: dict[str, Any], expect: dict[str, tuple[Any, str]]) -> None:
    shown = settings_for(vars, cfg)
    for setting, (value, source) in expect.items():
        assert shown[setting]["value"] == value, setting
        assert source in shown[setting]["source"], (setting, shown[setting]["source"])
    assert "s3cret" not in repr(shown)


def test_a_local_host_has_no_ssh_settings_and_the_table_names_the_host_once() -> None:
    target = make_target("here", {"ansible_connection": "local"}, FleetOptions())
    shown = explain(target, None, {}, None)
    assert shown["user"]["source"] == "local connection (no SSH)" and "keys" not in shown
    rows = text_rows("here", shown)
    assert [r[0] for r in rows] == ["here"] + [""] * (len(rows) - 1)
