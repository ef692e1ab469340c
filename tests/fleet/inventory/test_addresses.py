"""addresses.py: host entries and their ranges and ports, as Ansible expands them."""

from __future__ import annotations

import re

import pytest

from imageserving_fleet.errors import InventoryError
from imageserving_fleet.fleet.inventory.addresses import expand_host_pattern

WWW_50 = [f"www{n:02d}.example.com" for n in range(1, 51)]


@pytest.mark.parametrize(("pattern", "hosts", "port"), [
    ("alpha", ["alpha"], None),
    ("badwolf.example.com:5309", ["badwolf.example.com"], 5309),
    ("10.0.0.1", ["10.0.0.1"], None),
    ("10.0.0.1:2222", ["10.0.0.1"], 2222),
    ("2001:db8::1", ["2001:db8::1"], None),
    ("[2001:db8::1]:22", ["2001:db8::1"], 22),
    ("www[01:50].example.com", WWW_50, None),
    ("www[1:3].example.com", ["www1.example.com", "www2.example.com", "www3.example.com"], None),
    ("www[8:11]", ["www8", "www9", "www10", "www11"], None),
    ("www[:2]", ["www0", "www1", "www2"], None),
    ("db-[a:f].example.com", [f"db-{c}.example.com" for c in "abcdef"], None),
    ("www[01:10:2].example.com", [f"www{n:02d}.example.com" for n in (1, 3, 5, 7, 9)], None),
    ("db-[a:g:3]", ["db-a", "db-d", "db-g"], None),
    ("rack[1:2]-node[a:b]", ["rack1-nodea", "rack1-nodeb", "rack2-nodea", "rack2-nodeb"], None),
    ("is[01:02].example.com:2222", ["is01.example.com", "is02.example.com"], 2222),
])
def test_host_patterns_expand_like_ansible(pattern: str, hosts: list[str], port: int | None) -> None:
    assert expand_host_pattern(pattern) == (hosts, port)


@pytest.mark.parametrize(("pattern", "message"), [
    ("www[1:].example.com", "has no end"),
    ("www[1].example.com", "must be [begin:end]"),
    ("www[1:2:3:4]", "must be [begin:end]"),
    ("www[5:1]", "ends before it begins"),
    ("db-[f:a]", "ends before it begins"),
    ("www[a:3]", "numbers or single letters"),
    ("www[001:10]", "same number of digits"),
    ("www[1:5:0]", "invalid step"),
    ("www[1:5", "no closing ']'"),
    ("www1]", "']' without '['"),
    ("host:", "gives no port"),
    ("host:99999", "invalid port"),
    ("host:ssh", "invalid port"),
    ("www[0:999999]", "more than"),
])
def test_bad_host_patterns_say_what_is_wrong(pattern: str, message: str) -> None:
    with pytest.raises(InventoryError, match=re.escape(message)):
        expand_host_pattern(pattern)
