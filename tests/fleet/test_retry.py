"""Retry files and `--limit @FILE` (Ansible's syntax, with any other pattern)."""

from __future__ import annotations

from pathlib import Path

import pytest

from imageserving_fleet.errors import PatternError
from imageserving_fleet.fleet.inventory import inventory_from_text, select
from imageserving_fleet.fleet.inventory.patterns import expand_files
from imageserving_fleet.fleet.results import HostResult, Result
from imageserving_fleet.fleet.retry import hint, retry_path, to_retry, write_retry

INVENTORY = """
all:
  children:
    web: {hosts: {web1: {}, web2: {}, web3: {}}}
    db: {hosts: {db1: {}, db2: {}}}
"""


@pytest.mark.parametrize(("terms", "files", "expanded"), [
    (["web1"], {}, ["web1"]),
    (["@f"], {"f": "web2\ndb1\n"}, ["web2", "db1"]),
    (["web1", "@f", "!db1"], {"f": " web2 \n\n\ndb1"}, ["web1", "web2", "db1", "!db1"]),  # stripped, blanks dropped
    (["@f"], {"f": "web*\n!web2\n"}, ["web*", "!web2"]),  # a line is a term as written
    (["@f"], {"f": "a:b\n"}, ["a:b"]),                     # and is not split again
    (["&@f"], {"f": "x"}, ["&@f"]),                        # only a leading @ reads a file, as in Ansible
])
def test_expand_files(terms: list[str], files: dict[str, str], expanded: list[str]) -> None:
    assert expand_files(terms, files.__getitem__) == expanded


@pytest.mark.parametrize(("pattern", "content", "hosts"), [
    ("@{f}", "web2\ndb1\n", ["web2", "db1"]),            # inventory order, not the file's
    ("@{f}", "db1\nweb2\n", ["web2", "db1"]),
    ("web1,@{f}", "db2\n", ["web1", "db2"]),
    ("@{f}:&web", "web2\ndb1\n", ["web2"]),
    ("@{f}:!web2", "web2\ndb1\n", ["db1"]),
])
def test_select_with_a_limit_file(tmp_path: Path, pattern: str, content: str, hosts: list[str]) -> None:
    f = tmp_path / "failed.retry"
    f.write_text(content)
    inv = inventory_from_text(INVENTORY, source="hosts.yml")
    assert [h.name for h in select(inv, pattern.format(f=f))] == hosts


def test_missing_or_directory_limit_file_names_the_path(tmp_path: Path) -> None:
    inv = inventory_from_text(INVENTORY, source="hosts.yml")
    with pytest.raises(PatternError, match=f"@{tmp_path}/nope.retry: no such file"):
        select(inv, f"@{tmp_path}/nope.retry")
    with pytest.raises(PatternError, match="not a directory"):
        select(inv, f"@{tmp_path}")
    (tmp_path / "empty").write_text("\n\n")
    with pytest.raises(PatternError, match="list no host"):
        select(inv, f"@{tmp_path}/empty")


def test_retry_file_holds_every_host_not_ok_in_order(tmp_path: Path) -> None:
    results = [HostResult("a", Result.OK), HostResult("b", Result.UNREACHABLE, "dns"), HostResult("c", Result.FAILED),
               HostResult("d", Result.DEGRADED), HostResult("e", Result.SKIPPED), HostResult("f", Result.OK)]
    assert to_retry(results) == ["b", "c", "d", "e"]
    path = write_retry("config push", results, home=tmp_path)
    assert path == tmp_path / "retry" / "config-push.retry" == retry_path("config push", tmp_path)
    assert path is not None and path.read_text() == "b\nc\nd\ne\n"
    assert hint(path) == f"to retry the hosts that are not ok: --limit @{path}"
    assert write_retry("config push", [HostResult("a", Result.OK)], home=tmp_path) is None
    assert path.read_text() == "b\nc\nd\ne\n"  # an all-ok run leaves it, as Ansible does
    assert [p.name for p in path.parent.iterdir()] == ["config-push.retry"]  # no temporary left behind
