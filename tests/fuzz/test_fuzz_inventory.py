"""Fuzz the inventory loader (YAML and INI) and the --limit pattern engine.

Properties: only InventoryError (PatternError is one) escapes; what loads, loads fully (every host
has merged variables, every group's hosts exist); a pattern selects a subset of the inventory in
inventory order.
"""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from imageserving_fleet.errors import InventoryError, PatternError, UsageError
from imageserving_fleet.fleet.inventory import Inventory, inventory_from_text, select
from imageserving_fleet.fleet.target import FleetOptions, make_target

from .strategies import DEEP, FAST, HOSTILE, SCALAR, TEXT, json_values, nested

NAMES = st.one_of(st.sampled_from(["is01", "is02", "web[1:3]", "db-[a:c]", "h[01:10:2]", "127.0.0.1",
                                   "[::1]:2222", "h:22", "h:", "x[", "x]", "all", "ungrouped", "*", "~re"]),
                  st.text(alphabet="abcxyz019[]:-._~*!&,{}$ ", min_size=1, max_size=12), HOSTILE)
VARS = st.dictionaries(st.one_of(st.sampled_from(["ansible_host", "ansible_port", "ansible_user",
                                                  "ansible_connection", "ansible_become", "imageserving_home",
                                                  "imageserving_command", "ansible_ssh_common_args",
                                                  "ansible_group_priority"]), TEXT),
                       st.one_of(SCALAR, json_values(5)), max_size=4)


def _check(inv: Inventory) -> None:
    names = {h.name for h in inv.hosts}
    assert "all" in inv.groups and "ungrouped" in inv.groups
    for group, members in inv.groups.items():
        assert set(members) <= names, group
    for host in inv.hosts:
        assert "all" in host.groups


def _load(text: str, source: str) -> Inventory | None:
    try:
        inv = inventory_from_text(text, source=source)
    except InventoryError as err:
        assert source in str(err), err
        return None
    _check(inv)
    return inv


def _targets(inv: Inventory) -> None:
    """Turning hosts into connection targets raises only UsageError (bad variables), never a traceback."""
    for host in inv.hosts:
        try:
            make_target(host.name, host.vars, FleetOptions())
        except UsageError:
            pass


@FAST
@given(st.text(max_size=300), st.sampled_from(["hosts.yml", "hosts.ini", "hosts"]))
def test_random_text(text: str, source: str) -> None:
    _load(text, source)


group = st.deferred(lambda: st.fixed_dictionaries({}, optional={
    "hosts": st.one_of(st.none(), st.dictionaries(NAMES, st.one_of(st.none(), VARS, SCALAR), max_size=3), SCALAR),
    "vars": st.one_of(VARS, SCALAR),
    "children": st.one_of(st.none(), st.dictionaries(NAMES, st.one_of(st.none(), group), max_size=2), SCALAR),
}))


@FAST
@given(st.dictionaries(NAMES, st.one_of(st.none(), group, SCALAR), max_size=3))
def test_structured_yaml(doc: dict[str, Any]) -> None:
    inv = _load(yaml.safe_dump(doc), "hosts.yml")
    if inv is not None:
        _targets(inv)


def _ini_line(name: str, variables: dict[str, Any]) -> str:
    return " ".join([name, *(f"{k}={v}" for k, v in variables.items())])


INI_SECTION = st.one_of(st.sampled_from(["[web]", "[web:vars]", "[web:children]", "[all:vars]", "[x:bogus]",
                                         "[ spaced ]", "[", "[]", "[a b]"]), st.text(max_size=15).map(lambda s: f"[{s}]"))


@FAST
@given(st.lists(st.one_of(INI_SECTION, st.builds(_ini_line, NAMES, VARS), TEXT), max_size=8))
def test_structured_ini(lines: list[str]) -> None:
    inv = _load("\n".join(lines), "hosts.ini")
    if inv is not None:
        _targets(inv)


@pytest.mark.parametrize("source", ["hosts.yml", "hosts.ini"])
@pytest.mark.parametrize("depth", [50, 3000, 100_000])
def test_deep_nesting_is_refused_cleanly(source: str, depth: int) -> None:
    # 3000 levels used to raise RecursionError and 100 000 crashed LibYAML with SIGSEGV.
    _load("all:\n  vars:\n    x: " + nested(depth), source)
    _load(nested(depth, "{a: ", "}"), source)


@pytest.mark.parametrize("name", ["h[0:9999999]", "h[0:99999999999999999999999]", "h[0:" + "9" * 5000 + "]",
                                  "h[0:\u00b2]", "h[\u0661:3]", "h[0:3:\u00b2]", "a[0:999]b[0:999]"])
def test_host_ranges_that_are_huge_or_not_ascii_are_refused_at_once(name: str) -> None:
    # h[0:99999999] used to build 10^8 names before counting them (gigabytes); '²' passed
    # isdigit() and escaped from int() as ValueError.
    with pytest.raises(InventoryError):
        inventory_from_text(f"all:\n  hosts:\n    {name}:\n", source="hosts.yml")
    with pytest.raises(InventoryError):
        inventory_from_text(name, source="hosts.ini")


@FAST
@given(st.text(alphabet="0123456789:\u00b2\u0661\uff11ax-", max_size=12))
def test_random_host_ranges(body: str) -> None:
    _load(f"h[{body}]", "hosts.ini")
    _load(f"all:\n  hosts:\n    'h[{body}]':\n", "hosts.yml")


FLEET = inventory_from_text("""
all:
  hosts:
    mail.example.com:
  children:
    webservers: {hosts: {foo.example.com: , bar.example.com: , "web[1:3].example.com": }}
    dbservers: {hosts: {one.example.com: , two.example.com: }}
    atlanta: {hosts: {foo.example.com: , one.example.com: }}
""", source="fleet.yml")
ORDER = [h.name for h in FLEET.hosts]
TERMS = st.one_of(st.sampled_from(["all", "*", "webservers", "dbservers", "atlanta", "web*", "*.com", "~web[0-9]",
                                   "~(", "~a{99999}", "~(a+)+$", "webservers[0]", "webservers[-1]", "webservers[1:]",
                                   "webservers[9]", "webservers[x]", "web[1:2]", "nosuch", "", "!", "&", "[", "]",
                                   "localhost", "127.0.0.1", "localhost[0]", "webservers[1-2]", "web*[0-1]"]),
                  st.text(alphabet="abw*?~[]!&:,.-0129 ()^$+", max_size=10), HOSTILE)
PATTERNS = st.lists(st.tuples(st.sampled_from(["", "!", "&"]), TERMS), min_size=1, max_size=4).map(
    lambda parts: ":".join(prefix + term for prefix, term in parts))


@FAST
@given(st.one_of(PATTERNS, st.text(max_size=40)))
def test_patterns_select_a_subset_in_order_or_raise_pattern_error(pattern: str) -> None:
    try:
        hosts = select(FLEET, pattern)
    except PatternError:
        return
    names = [h.name for h in hosts]
    assert names and len(set(names)) == len(names)
    listed = [h.name for h in hosts if not h.implicit]
    assert listed == [n for n in ORDER if n in set(listed)]  # inventory order...
    assert [h.implicit for h in hosts] == [False] * len(listed) + [True] * (len(hosts) - len(listed))  # ...then
    assert len(hosts) - len(listed) <= 1  # at most one implicit localhost, last


@pytest.mark.slow
@DEEP
@given(st.one_of(PATTERNS, st.text(max_size=80)))
def test_patterns_deep(pattern: str) -> None:
    test_patterns_select_a_subset_in_order_or_raise_pattern_error.hypothesis.inner_test(pattern)  # type: ignore[attr-defined]


@pytest.mark.slow
@DEEP
@given(st.dictionaries(NAMES, st.one_of(st.none(), group, SCALAR), max_size=4))
def test_structured_yaml_deep(doc: dict[str, Any]) -> None:
    test_structured_yaml.hypothesis.inner_test(doc)  # type: ignore[attr-defined]
