"""yaml.py: Ansible's YAML inventory format, and its errors with file:line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from imageserving_fleet.errors import InventoryError
from imageserving_fleet.fleet.inventory import inventory_from_text, load_inventory

from .helpers import names, write

NESTED_YAML = """
all:
  vars: {level: all, from_all: 1}
  hosts:
    loner.example.com:
  children:
    europe:
      vars: {level: europe, from_europe: 1}
      children:
        france:
          vars: {level: france}
          children:
            paris:
              vars: {level: paris}
              hosts:
                par1.example.com:
                par2.example.com: {level: host}
        germany:
          hosts:
            ber1.example.com:
    webservers:
      hosts:
        par1.example.com:
        www[1:2].example.com:
"""


def test_nested_children_three_levels_deep() -> None:
    inv = inventory_from_text(NESTED_YAML, source="nested.yml")
    assert names(inv) == ["loner.example.com", "par1.example.com", "par2.example.com", "ber1.example.com",
                          "www1.example.com", "www2.example.com"]
    # a group's hosts in Ansible's order: its own, then its children's, level by level
    assert inv.groups["europe"] == ("ber1.example.com", "par1.example.com", "par2.example.com")
    assert inv.groups["france"] == inv.groups["paris"] == ("par1.example.com", "par2.example.com")
    assert inv.groups["ungrouped"] == ("loner.example.com",)
    assert set(inv.groups["all"]) == set(names(inv))
    assert inv.host("par1.example.com").groups == ("all", "europe", "webservers", "france", "paris")
    assert inv.host("loner.example.com").groups == ("all", "ungrouped")


@pytest.mark.parametrize(("host", "expected"), [
    ("loner.example.com", {"level": "all", "from_all": 1}),
    ("ber1.example.com", {"level": "europe", "from_all": 1, "from_europe": 1}),
    ("par1.example.com", {"level": "paris", "from_all": 1, "from_europe": 1}),  # child beats parent
    ("par2.example.com", {"level": "host", "from_all": 1, "from_europe": 1}),  # host beats groups
    ("www1.example.com", {"level": "all", "from_all": 1}),
])
def test_yaml_vars_precedence(host: str, expected: dict[str, Any]) -> None:
    assert dict(inventory_from_text(NESTED_YAML, source="nested.yml").host(host).vars) == expected


def test_yaml_null_hosts_string_sections_and_a_host_in_several_groups() -> None:
    inv = inventory_from_text("""
        web:
          hosts: web1
        db:
          hosts:
            db1:
            web1:
        empty:
        ungrouped:
          hosts: {stray: }
    """.replace("\n        ", "\n"), source="x.yml")
    assert names(inv) == ["web1", "db1", "stray"]
    assert inv.groups["db"] == ("db1", "web1")  # in the order the group got them, as in Ansible
    assert inv.groups["empty"] == ()
    assert inv.host("web1").groups == ("all", "db", "web")
    assert inv.groups["ungrouped"] == ("stray",)


def test_yaml_host_port_shorthand_and_range_keys() -> None:
    inv = inventory_from_text("""
web:
  hosts:
    badwolf.example.com:5309:
    www[01:03].example.com:
      ansible_user: deploy
    explicit.example.com:22:
      ansible_port: 2200
""", source="x.yml")
    assert inv.host("badwolf.example.com").vars == {"ansible_port": 5309}
    assert [h.name for h in inv.hosts][1:4] == ["www01.example.com", "www02.example.com", "www03.example.com"]
    assert inv.host("www02.example.com").vars == {"ansible_user": "deploy"}
    assert inv.host("explicit.example.com").vars["ansible_port"] == 2200  # the variable wins


def test_yaml_anchors_merge_keys_and_the_unsafe_tag() -> None:
    inv = inventory_from_text("""
web:
  vars: &common {ansible_user: deploy, secret: !unsafe "{{ not a template }}"}
  hosts:
    web1: {<<: *common, extra: 1}
""", source="x.yml")
    assert dict(inv.host("web1").vars) == {"ansible_user": "deploy", "secret": "{{ not a template }}",
                                           "extra": 1}


@pytest.mark.parametrize(("text", "line", "message"), [
    ("all:\n  hosts:\n    web1:\n   bad: indent\n", 4, "invalid YAML"),
    ("web:\n  hosts: {a: 1\n", 3, "invalid YAML"),
    ("web:\n  - web1\n", 2, "group 'web' must be a mapping"),
    ("web: web1\n", 1, "group 'web' must be a mapping"),
    ("all:\n  children:\n    web:\n      - web1\n", 4, "group 'web' must be a mapping"),
    ("web:\n  host:\n    web1:\n", 2, "unknown key 'host'"),
    ("web:\n  hosts:\n    web1: [1, 2]\n", 3, "variables of host 'web1' must be a mapping"),
    ("web:\n  vars:\n    - a\n", 3, "vars of group 'web' must be a mapping"),
    ("web:\n  hosts: [web1, web2]\n", 2, "hosts of group 'web' must be a mapping"),
    ("a:\n  children:\n    b:\n      children:\n        a:\n", 3, "'b' a child of 'a' creates a cycle"),
    ("a:\n  children:\n    a:\n", 3, "creates a cycle"),
    ("web:\n  children:\n    all:\n", 3, "group 'all' cannot be a child"),
    ("- web1\n- web2\n", 1, "must be a mapping of group names"),
    ("plugin: aws_ec2\n", 1, "plugin configurations are not supported"),
    ("web:\n  hosts:\n    www[3:1]:\n", 3, "ends before it begins"),
    ("web:\n  vars: {ansible_group_priority: high}\n", 2, "must be an integer"),
    ("web:\n  vars: {secret: !vault x}\n", 2, "Vault"),
    ("web: &w\n  children:\n    sub: *w\n", 3, "contains itself"),
])
def test_yaml_errors_name_the_file_and_line(tmp_path: Path, text: str, line: int, message: str) -> None:
    path = write(tmp_path, "hosts.yml", text)
    with pytest.raises(InventoryError, match=message) as caught:
        load_inventory([path])
    assert caught.value.path == str(path)
    assert caught.value.line == line
    assert str(caught.value).startswith(f"{path}:{line}: ")


def test_an_empty_yaml_file_adds_nothing(tmp_path: Path) -> None:
    assert load_inventory([write(tmp_path, "empty.yml", "# nothing yet\n")]).hosts == ()
