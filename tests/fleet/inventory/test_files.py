"""files.py: which files of an inventory directory are inventory, and reading one safely."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from imageserving_fleet.errors import InventoryError
from imageserving_fleet.fleet.inventory.files import directory_files, read_text


def test_directory_files_are_sorted_recursive_and_skip_what_ansible_skips(tmp_path: Path) -> None:
    for name in ("20-db.ini", "10-web.yml", "sub/30-hosts", "sub/.hidden", ".hidden.yml", "site.retry", "hosts~",
                 "README.md", "notes.txt", "old.bak", "x.pyc", "group_vars/all.yml", "host_vars/h1.yml", "ok.cfg"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("")
    assert [p.relative_to(tmp_path).as_posix() for p in directory_files(tmp_path)] == [
        "10-web.yml", "20-db.ini", "sub/30-hosts"]


@pytest.mark.parametrize(("data", "text"), [
    (b"[web]\nweb1\n", "[web]\nweb1\n"),
    ("\ufeff[web]\r\nweb1\r\n".encode(), "[web]\r\nweb1\r\n"),  # a BOM from a Windows editor is not a host
    (b"", ""),
])
def test_read_text(tmp_path: Path, data: bytes, text: str) -> None:
    path = tmp_path / "hosts"
    path.write_bytes(data)
    assert read_text(path) == text


@pytest.mark.parametrize(("make", "message"), [
    (lambda p: p.write_bytes(b"[web]\n\xff\xfe\n"), "not UTF-8 text (byte 6)"),
    (lambda p: None, "inventory file not found"),
    (lambda p: p.mkdir(), "cannot read: Is a directory"),
])
def test_read_text_failures_name_the_file(tmp_path: Path, make: object, message: str) -> None:
    path = tmp_path / "hosts"
    make(path)  # type: ignore[operator]
    with pytest.raises(InventoryError, match=re.escape(message)) as caught:
        read_text(path)
    assert caught.value.path == str(path)
