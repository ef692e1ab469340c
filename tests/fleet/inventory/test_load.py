"""load.py and files.py: files, directories, several sources, format detection, the packaged default."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from imageserving_fleet.errors import InventoryError
from imageserving_fleet.fleet.inventory import Host, default_inventory, load_inventory

from .helpers import REPO, names, write


def test_windows_line_endings_and_a_byte_order_mark(tmp_path: Path) -> None:
    path = tmp_path / "hosts"
    path.write_bytes("\ufeff[web]\r\nweb1 ansible_port=2222\r\n".encode())
    assert load_inventory([path]).host("web1").vars == {"ansible_port": 2222}


def test_an_unreadable_directory_is_an_inventory_error(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path, "inv/hosts.ini", "[web]\nweb1\n")

    def refuse(path: Any) -> list[str]:
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(os, "listdir", refuse)
    with pytest.raises(InventoryError, match="cannot read: Permission denied") as caught:
        load_inventory([tmp_path / "inv"])
    assert caught.value.path == str(tmp_path / "inv")


def test_format_is_detected_by_content_without_a_suffix(tmp_path: Path) -> None:
    yaml_file = write(tmp_path, "yaml_hosts", "# yaml\nweb:\n  hosts:\n    web1:\n")
    ini_file = write(tmp_path, "ini_hosts", "# ini\nweb1:2222\n[web]\nweb2\n")
    assert load_inventory([yaml_file]).groups["web"] == ("web1",)
    inv = load_inventory([ini_file])
    assert inv.groups["web"] == ("web2",)
    assert inv.host("web1").vars == {"ansible_port": 2222}


def test_several_inventories_merge_in_order(tmp_path: Path) -> None:
    first = write(tmp_path, "a/hosts.yml", """
        web:
          vars: {color: blue, size: 1}
          hosts:
            web1: {role: a}
            web2:
    """)
    second = write(tmp_path, "b/hosts.ini", """
        [web]
        web3
        web1 role=b

        [web:vars]
        color=green
    """)
    inv = load_inventory([first, second])
    assert names(inv) == ["web1", "web2", "web3"]
    assert dict(inv.host("web1").vars) == {"color": "green", "size": 1, "role": "b"}


def test_a_directory_inventory_reads_every_file_sorted_and_skips_the_rest(tmp_path: Path) -> None:
    write(tmp_path, "inv/10-web.yml", "web:\n  hosts:\n    web1:\n")
    write(tmp_path, "inv/20-db.ini", "[db]\ndb1\n")
    write(tmp_path, "inv/sub/30-hosts", "[cache]\ncache1\n")
    for ignored in (".hidden.yml", "site.retry", "hosts~", "README.md", "notes.txt", "old.bak"):
        write(tmp_path, f"inv/{ignored}", "this would not parse: [\n")
    write(tmp_path, "inv/group_vars/web.yml", "color: red\n")
    inv = load_inventory([tmp_path / "inv"])
    assert names(inv) == ["web1", "db1", "cache1"]
    assert inv.host("web1").vars == {"color": "red"}


def test_a_missing_inventory_is_an_error_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "nope" / "hosts.yml"
    with pytest.raises(InventoryError, match="not found") as caught:
        load_inventory([missing])
    assert caught.value.path == str(missing)


def test_inventory_scripts_are_refused(tmp_path: Path) -> None:
    script = write(tmp_path, "ec2.py", "#!/usr/bin/env python3\nprint('{}')\n")
    with pytest.raises(InventoryError, match="scripts are not supported"):
        load_inventory([script])


def test_the_packaged_default_is_localhost_with_a_local_connection() -> None:
    inv = default_inventory()
    assert inv.hosts == (Host("localhost", {"ansible_connection": "local"}, ("all", "ungrouped")),)


def test_the_example_inventories_describe_the_same_fleet() -> None:
    from_yaml = load_inventory([REPO / "inventory" / "example.yml"])
    from_ini = load_inventory([REPO / "inventory" / "example.ini"])
    assert from_yaml == from_ini
    assert len(from_yaml.groups["imageservers"]) == 8
    assert from_yaml.host("is05.example.com").vars["ansible_port"] == 2222
    assert from_yaml.host("is01.example.com").vars["ansible_become"] is True
