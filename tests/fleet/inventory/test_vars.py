"""vars.py: group_vars/ and host_vars/ files, in Ansible's precedence, and their errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from imageserving_fleet.errors import InventoryError
from imageserving_fleet.fleet.inventory import load_inventory

from .helpers import write


def test_vars_files_follow_ansible_precedence(tmp_path: Path) -> None:
    hosts = write(tmp_path, "hosts.yml", """
        all:
          vars: {a: inventory-all, b: inventory-all, c: inventory-all}
          children:
            parent:
              vars: {a: inventory-parent, d: inventory-parent}
              children:
                child:
                  vars: {d: inventory-child, e: inventory-child}
                  hosts:
                    h1: {f: inventory-host, g: inventory-host}
                    h2:
    """)
    write(tmp_path, "group_vars/all.yml", "b: file-all\nc: file-all\nd: file-all\n")
    write(tmp_path, "group_vars/parent/10.yml", "c: file-parent\n")
    write(tmp_path, "group_vars/parent/20.yaml", "e: file-parent\n")
    write(tmp_path, "group_vars/child", "e: file-child\nf: file-child\n")
    write(tmp_path, "host_vars/h1.yml", "g: file-host\n")
    write(tmp_path, "group_vars/unknown_group.yml", "not: read\n")
    inv = load_inventory([hosts])
    assert dict(inv.host("h1").vars) == {
        "a": "inventory-parent",  # parent group beats all
        "b": "file-all",          # group_vars/all beats the inventory's all
        "c": "file-parent",       # group_vars/parent beats group_vars/all
        "d": "file-all",          # any group_vars file beats vars written in the inventory (Ansible)
        "e": "file-child",        # child beats parent among files too
        "f": "inventory-host",    # host variables beat every group variable
        "g": "file-host",         # host_vars beat the inventory's host variables
    }
    assert inv.host("h2").vars["e"] == "file-child"


@pytest.mark.parametrize(("name", "text", "line", "message"), [
    ("group_vars/web.yml", "- a list\n", 1, "must hold a mapping"),
    ("host_vars/web1.yml", "a: 1\nb: [\n", 3, "invalid YAML"),
])
def test_bad_vars_files_name_the_file_and_line(tmp_path: Path, name: str, text: str, line: int,
                                               message: str) -> None:
    hosts = write(tmp_path, "hosts.ini", "[web]\nweb1\n")
    bad = write(tmp_path, name, text)
    with pytest.raises(InventoryError, match=message) as caught:
        load_inventory([hosts])
    assert (caught.value.path, caught.value.line) == (str(bad), line)
