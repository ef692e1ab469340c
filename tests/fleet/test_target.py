"""target.py: make_target merges inventory variables and CLI options; ssh_options reads
OpenSSH arguments (table tests, pure).
"""

from __future__ import annotations

import shlex
from typing import Any

import pytest

from imageserving_fleet.errors import InventoryVariableError, UsageError
from imageserving_fleet.fleet.sshargs import ssh_options
from imageserving_fleet.fleet.target import FleetOptions, make_target

NO_OPTIONS = FleetOptions()


@pytest.mark.parametrize(("vars", "options", "expected"), [
    ({}, NO_OPTIONS, {"hostname": "web1", "port": 22, "port_explicit": False, "user": None,
                      "key_file": None, "connection": "ssh", "venv": "~/.imageserving/venv",
                      "become": False, "common_args": ()}),
    ({"ansible_host": "10.0.0.5", "ansible_port": "2222", "ansible_user": "deploy",
      "ansible_ssh_private_key_file": "~/.ssh/fleet"}, NO_OPTIONS,
     {"hostname": "10.0.0.5", "port": 2222, "port_explicit": True, "user": "deploy",
      "key_file": "~/.ssh/fleet"}),
    # The CLI's --user and --private-key win over the inventory.
    ({"ansible_user": "deploy", "ansible_ssh_private_key_file": "inv.key"},
     FleetOptions(user="ops", private_key="cli.key"), {"user": "ops", "key_file": "cli.key"}),
    ({"ansible_connection": "local"}, NO_OPTIONS, {"connection": "local"}),
    ({"ansible_connection": "paramiko"}, NO_OPTIONS, {"connection": "ssh"}),
    ({"ansible_connection": "smart"}, NO_OPTIONS, {"connection": "ssh"}),
    ({"ansible_connection": "ansible.builtin.ssh"}, NO_OPTIONS, {"connection": "ssh"}),
    # Options inside ansible_ssh_common_args count, below the ansible_* variables.
    ({"ansible_ssh_common_args": "-o Port=2200 -o User=bob"}, NO_OPTIONS,
     {"port": 2200, "port_explicit": True, "user": "bob"}),
    ({"ansible_ssh_common_args": "-p 2201 -l carol", "ansible_port": 2202, "ansible_user": "dan"},
     NO_OPTIONS, {"port": 2202, "user": "dan"}),
    ({"ansible_ssh_common_args": "-o ProxyJump=bastion -o 'ProxyCommand=none'"}, NO_OPTIONS,
     {"common_args": ("-o", "ProxyJump=bastion", "-o", "ProxyCommand=none")}),
    ({"ansible_become": "yes", "ansible_become_user": "svc"}, NO_OPTIONS,
     {"become": True, "become_user": "svc"}),
    ({"ansible_become": False}, FleetOptions(become=True), {"become": False}),
    ({}, FleetOptions(become=True), {"become": True}),
    ({"imageserving_command": "/opt/is/bin/imageserving", "imageserving_venv": "/opt/is",
      "imageserving_home": "/srv/is1", "imageserving_config": "/etc/is1.yaml"}, NO_OPTIONS,
     {"agent_command": "/opt/is/bin/imageserving", "venv": "/opt/is", "home": "/srv/is1",
      "config": "/etc/is1.yaml"}),
    ({"ansible_ssh_host": "old.example.com", "ansible_ssh_port": 2022}, NO_OPTIONS,
     {"hostname": "old.example.com", "port": 2022}),
])
def test_make_target_merges_inventory_and_cli(vars: dict[str, Any], options: FleetOptions,
                                              expected: dict[str, Any]) -> None:
    target = make_target("web1", vars, options)
    assert {key: getattr(target, key) for key in expected} == expected


@pytest.mark.parametrize(("vars", "variable"), [
    ({"ansible_port": "ssh"}, "ansible_port"),
    ({"ansible_port": 0}, "ansible_port"),
    ({"ansible_port": 70000}, "ansible_port"),
    ({"ansible_port": True}, "ansible_port"),
    ({"ansible_connection": "docker"}, "ansible_connection"),
    ({"ansible_connection": "winrm"}, "ansible_connection"),
    ({"ansible_become": "maybe"}, "ansible_become"),
    ({"ansible_user": ["a", "b"]}, "ansible_user"),
    ({"ansible_host": "{{ inventory_hostname }}.example.com"}, "ansible_host"),
    ({"ansible_ssh_common_args": "-o 'ProxyJump=x"}, "ansible_ssh_common_args"),
    ({"ansible_ssh_common_args": "-o Port=abc"}, "ansible_ssh_common_args"),
    ({"ansible_ssh_common_args": "-o Compression"}, "ansible_ssh_common_args"),
    ({"ansible_ssh_common_args": "bastion"}, "ansible_ssh_common_args"),
    ({"ansible_ssh_common_args": "-p"}, "ansible_ssh_common_args"),
])
def test_make_target_refuses_bad_values_naming_host_and_variable(vars: dict[str, Any],
                                                                  variable: str) -> None:
    with pytest.raises(InventoryVariableError) as caught:  # an inventory error (exit 1), not a bad option
        make_target("web1", vars, NO_OPTIONS)
    assert "web1" in str(caught.value) and variable in str(caught.value)


@pytest.mark.parametrize(("args", "expected"), [
    ("-o ProxyJump=a", {"proxyjump": ["a"]}),
    ("-J a,b", {"proxyjump": ["a,b"]}),
    ("-oPort=1 -o Port=2", {"port": ["1", "2"]}),
    ("-o 'ProxyCommand ssh -W %h:%p b'", {"proxycommand": ["ssh -W %h:%p b"]}),
    ("-o 'ProxyCommand = ssh b'", {"proxycommand": ["ssh b"]}),
    ("-4Cvq -o StrictHostKeyChecking=no", {"stricthostkeychecking": ["no"]}),
    ("-vp2222 -i k1 -i k2", {"port": ["2222"], "identityfile": ["k1", "k2"]}),
    ("-F cfg -c aes128-ctr", {"-F": ["cfg"]}),
])
def test_ssh_options_reads_openssh_arguments(args: str, expected: dict[str, list[str]]) -> None:
    assert ssh_options(shlex.split(args)) == expected


def test_fleet_options_refuses_unknown_policy() -> None:
    with pytest.raises(UsageError, match="host-key-policy"):
        FleetOptions(host_key_policy="yolo")
