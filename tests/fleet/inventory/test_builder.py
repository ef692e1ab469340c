"""builder.py: variable precedence across groups, and the implicit localhost it prepares."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from imageserving_fleet.fleet.inventory import LOCALHOST_NAMES, Host, inventory_from_text, load_inventory

from .helpers import write


def test_same_depth_groups_merge_alphabetically_unless_a_priority_says_otherwise() -> None:
    text = """
zeta: {vars: {color: zeta}, hosts: {h1: }}
alpha: {vars: {color: alpha}, hosts: {h1: }}
"""
    assert inventory_from_text(text, source="x.yml").host("h1").vars["color"] == "zeta"
    prioritized = text.replace("{color: alpha}", "{color: alpha, ansible_group_priority: 10}")
    inv = inventory_from_text(prioritized, source="x.yml")
    assert inv.host("h1").vars["color"] == "alpha"
    assert inv.host("h1").groups == ("all", "zeta", "alpha")


def test_the_implicit_localhost_has_the_all_variables_below_its_own(tmp_path: Path) -> None:
    hosts = write(tmp_path, "hosts.yml", """
        all:
          vars: {ansible_connection: ssh, color: blue, size: 1}
          children:
            web:
              vars: {color: red}
              hosts: {web1: }
    """)
    write(tmp_path, "group_vars/all.yml", "size: 2\n")
    write(tmp_path, "group_vars/web.yml", "size: 3\n")
    write(tmp_path, "host_vars/localhost.yml", "ansible_python_interpreter: /opt/py/bin/python3\n")
    inv = load_inventory([hosts])
    assert not inv.has_host("localhost")
    localhost = inv.localhost("localhost")
    assert localhost is not None and localhost.implicit and localhost.groups == ()
    assert dict(localhost.vars) == {
        "ansible_connection": "local",  # its own beats `all`
        "color": "blue",                # `all` only: it is in no other group
        "size": 2,                      # group_vars/all, not group_vars/web
        "ansible_python_interpreter": "/opt/py/bin/python3",  # host_vars beat its own
    }
    other = inv.localhost("127.0.0.1")
    assert other is not None and other.vars["ansible_python_interpreter"] == sys.executable


@pytest.mark.parametrize("name", LOCALHOST_NAMES)
def test_an_implicit_localhost_is_prepared_for_each_localhost_name(name: str) -> None:
    inv = inventory_from_text("[web]\nweb1\n", source="x.ini")
    assert inv.implicit[name] == Host(name, {"ansible_connection": "local",
                                             "ansible_python_interpreter": sys.executable}, (), implicit=True)
    assert inv.hosts == (inv.host("web1"),)  # not an inventory host
    assert name not in inv.groups["all"]
