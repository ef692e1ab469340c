"""atomic.write_atomic: a reader sees the old file or the new one, never half; the mode is kept."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from imageserving_fleet.atomic import write_atomic


def test_write_atomic_keeps_the_mode_and_leaves_no_temp_file(tmp_path: Path) -> None:
    target = tmp_path / "r.html"
    write_atomic(target, "one")
    umask = os.umask(0)
    os.umask(umask)
    assert target.read_text() == "one" and target.stat().st_mode & 0o777 == 0o666 & ~umask
    target.chmod(0o640)
    write_atomic(target, "two")
    assert target.read_text() == "two" and target.stat().st_mode & 0o777 == 0o640
    assert [p.name for p in tmp_path.iterdir()] == ["r.html"]


def test_write_atomic_leaves_the_old_file_on_failure(tmp_path: Path) -> None:
    target = tmp_path / "r.html"
    target.write_text("old")

    with pytest.raises(Exception):  # noqa: B017 - whatever the write raised
        write_atomic(target, "\ud800")  # not encodable: the write fails half way
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["r.html"]


@pytest.mark.parametrize("durable", [True, False])
def test_bytes_are_written_as_they_are_durable_or_not(tmp_path: Path, durable: bool) -> None:
    target = tmp_path / "c.json"
    write_atomic(str(target), b"\x00\xff{}", durable=durable)
    assert target.read_bytes() == b"\x00\xff{}" and [p.name for p in tmp_path.iterdir()] == ["c.json"]


def test_a_missing_directory_is_an_oserror_and_writes_nothing(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        write_atomic(tmp_path / "no" / "c.json", "x")
    assert list(tmp_path.iterdir()) == []
