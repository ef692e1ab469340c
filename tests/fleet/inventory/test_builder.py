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


@pytest.mark.parametrize(("text", "group", "members"), [
    # its own hosts in the order the group got them, not in the inventory's order
    ("[a]\nh2\n[b]\nh1\nh2\n", "b", ("h1", "h2")),
    # then its children's, in the order they became children, level by level
    ("[p]\nh3\n[p:children]\nc2\nc1\n[c2]\nh2\n[c1]\nh1\n", "p", ("h3", "h2", "h1")),
    ("[p]\nh3\n[p:children]\nc2\nc1\n[c1]\nh1\n[c2]\nh2\n", "p", ("h3", "h1", "h2")),  # children undefined
    # until their section: they join in the order they are defined, as in Ansible
    ("[p:children]\nc\n[c:children]\ngc\n[c]\nh1\n[gc]\nh0\n", "p", ("h1", "h0")),
    # `all`: its own (YAML all.hosts), then ungrouped's, then the other groups'
    ("web:\n  hosts: {w1: }\nall:\n  hosts: {u1: }\n", "all", ("u1", "w1")),
])
def test_a_groups_hosts_are_in_ansibles_order(text: str, group: str, members: tuple[str, ...]) -> None:
    source = "x.yml" if ":\n" in text.splitlines()[0] + "\n" else "x.ini"
    assert inventory_from_text(text, source=source).groups[group] == members


def test_ansible_group_priority_is_not_a_host_variable() -> None:
    inv = inventory_from_text("[web]\nw1\n[web:vars]\nansible_group_priority=5\ncolor=red\n", source="x.ini")
    assert dict(inv.host("w1").vars) == {"color": "red"}


def test_a_host_only_in_all_named_like_a_group_brings_that_group_into_ungrouped() -> None:
    # Ansible's reconcile: add_child('ungrouped', 'db') takes the group 'db', not the host 'db'
    inv = inventory_from_text("all:\n  hosts: {db: , solo: }\ndb:\n  hosts: {d1: }\n", source="x.yml")
    assert inv.groups["ungrouped"] == ("solo", "d1")
    assert inv.host("db").groups == ("all",)
    assert inv.host("d1").groups == ("all", "ungrouped", "db")


@pytest.mark.parametrize(("text", "port"), [
    ("[a]\nh1:2201\n", 2201),
    ("[a]\nh1\n[b]\nh1:2201\n", None),  # a port on a later entry of a known host is ignored, as in Ansible
    ("[a]\nh1:2201\n[b]\nh1:2202\n", 2201),  # the first entry's port stays
    ("[a]\nh1:2201 ansible_port=2300\n", 2300),  # the entry's own variable wins over its :port
    ("[a]\nh1:2201\n[b]\nh1 ansible_port=2300\n", 2300),
])
def test_a_hosts_port_comes_from_where_it_first_appears(text: str, port: int | None) -> None:
    assert inventory_from_text(text, source="x.ini").host("h1").vars.get("ansible_port") == port


@pytest.mark.parametrize(("text", "source", "host_vars", "group_vars"), [
    # a group 'db' already defined: the host 'db''s own variables become the group's (Ansible)
    ("[db]\nd1\n[web]\ndb color=red\n", "x.ini", {}, {"color": "red"}),
    ("db:\n  hosts: {d1: }\nweb:\n  hosts: {db: {color: red}}\n", "x.yml", {}, {"color": "red"}),
    # the group defined only after the host line: they stay the host's
    ("[web]\ndb color=red\n[db]\nd1\n", "x.ini", {"color": "red"}, {}),
])
def test_a_hosts_variables_go_to_a_group_of_its_name_defined_before(text: str, source: str,
                                                                     host_vars: dict[str, str],
                                                                     group_vars: dict[str, str]) -> None:
    inv = inventory_from_text(text, source=source)
    assert dict(inv.host("db").vars) == host_vars
    assert dict(inv.host("d1").vars) == group_vars
