"""target.make_target: the legacy ansible_ssh_host/_port/_user win over the new names, as in ansible-core.

ansible-core's ssh connection plugin lists `ansible_host` then `ansible_ssh_host` (and so on) as the
variables of one option, and the last one set wins (config/manager.py `_loop_entries`).
"""

from __future__ import annotations

from typing import Any

import pytest

from imageserving_fleet.fleet.target import FleetOptions, make_target


@pytest.mark.parametrize(("vars", "expected"), [
    ({"ansible_host": "new.example.com", "ansible_ssh_host": "old.example.com"}, {"hostname": "old.example.com"}),
    ({"ansible_port": 2200, "ansible_ssh_port": 2022}, {"port": 2022}),
    ({"ansible_user": "new", "ansible_ssh_user": "old"}, {"user": "old"}),
    ({"ansible_host": "new.example.com", "ansible_port": 2200, "ansible_user": "new"},
     {"hostname": "new.example.com", "port": 2200, "user": "new"}),
    ({"ansible_ssh_host": "old.example.com", "ansible_ssh_port": "2022", "ansible_ssh_user": "old"},
     {"hostname": "old.example.com", "port": 2022, "user": "old"}),
    ({"ansible_host": "new.example.com", "ansible_ssh_host": None}, {"hostname": "new.example.com"}),  # unset
    ({"ansible_private_key_file": "new.key", "ansible_ssh_private_key_file": "old.key"}, {"key_file": "old.key"}),
    ({"ansible_ssh_port": 2022, "ansible_ssh_common_args": "-p 2201"}, {"port": 2022}),
])
def test_legacy_connection_variables_win(vars: dict[str, Any], expected: dict[str, Any]) -> None:
    target = make_target("web1", vars, FleetOptions())
    assert {key: getattr(target, key) for key in expected} == expected


def test_the_cli_user_still_wins_over_both() -> None:
    target = make_target("web1", {"ansible_user": "new", "ansible_ssh_user": "old"}, FleetOptions(user="cli"))
    assert target.user == "cli"
