"""ini.py: Ansible's INI inventory format, its values, and its errors with file:line."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from imageserving_fleet.errors import InventoryError
from imageserving_fleet.fleet.inventory import inventory_from_text, load_inventory

from .helpers import names, write

WWW_50 = [f"www{n:02d}.example.com" for n in range(1, 51)]


INI = """
# comments with '#' ...
; ... and with ';'
mail.example.com
loose.example.com:2222

[webservers]
foo.example.com http_port=80 maxRequestsPerChild=808
bar.example.com:5309 ansible_host=192.0.2.50 motd="hello world" # a trailing comment

[dbservers]
db-[a:c].example.com

[atlanta]
host1 ansible_port=2222
host2

[atlanta:vars]
ntp_server=ntp.atlanta.example.com
proxy=proxy.atlanta.example.com

[southeast:children]
atlanta
raleigh

[raleigh]
host3

[southeast:vars]
ntp_server=ntp.southeast.example.com
escape_pods=2
halon_system_timeout=30

[usa:children]
southeast

[all:vars]
ntp_server=ntp.all.example.com
"""


def test_ini_sections_children_and_ungrouped_hosts() -> None:
    inv = inventory_from_text(INI, source="hosts.ini")
    assert names(inv) == ["mail.example.com", "loose.example.com", "foo.example.com", "bar.example.com",
                          "db-a.example.com", "db-b.example.com", "db-c.example.com", "host1", "host2",
                          "host3"]
    assert inv.groups["ungrouped"] == ("mail.example.com", "loose.example.com")
    assert inv.groups["southeast"] == inv.groups["usa"] == ("host1", "host2", "host3")
    assert inv.host("host1").groups == ("all", "usa", "southeast", "atlanta")


@pytest.mark.parametrize(("host", "expected"), [
    ("mail.example.com", {"ntp_server": "ntp.all.example.com"}),
    ("loose.example.com", {"ntp_server": "ntp.all.example.com", "ansible_port": 2222}),
    ("foo.example.com", {"ntp_server": "ntp.all.example.com", "http_port": 80, "maxRequestsPerChild": 808}),
    ("bar.example.com", {"ntp_server": "ntp.all.example.com", "ansible_port": 5309,
                         "ansible_host": "192.0.2.50", "motd": "hello world"}),
    ("host1", {"ntp_server": "ntp.atlanta.example.com", "proxy": "proxy.atlanta.example.com",
               "escape_pods": 2, "halon_system_timeout": 30, "ansible_port": 2222}),
    ("host3", {"ntp_server": "ntp.southeast.example.com", "escape_pods": 2, "halon_system_timeout": 30}),
])
def test_ini_vars_precedence(host: str, expected: dict[str, Any]) -> None:
    assert dict(inventory_from_text(INI, source="hosts.ini").host(host).vars) == expected


@pytest.mark.parametrize(("written", "value"), [
    ("2222", 2222),
    ("1.5", 1.5),
    ("True", True),
    ("None", None),
    ("true", "true"),  # not a Python literal: stays text, as in Ansible
    ("010", "010"),
    ("'2222'", 2222),  # the shell-like split eats one level of quotes, as in Ansible...
    ("\"'2222'\"", "2222"),  # ...so a string needs two
    ('"a b"', "a b"),
    ("\"'03#pa33w0rd'\"", "03#pa33w0rd"),
    ("[1,2]", [1, 2]),
    ("(1,2)", [1, 2]),
    ("{'a':1}", "{a:1}"),
    ("\"{'a':1}\"", {"a": 1}),
    ("/srv/imageserving", "/srv/imageserving"),
    ("-o ProxyJump=bastion", "-o"),  # unquoted spaces end the value: quote it
    ("1j", "1j"),
    ("\"{(1,2): 3}\"", {"(1, 2)": 3}),
    ("", ""),
])
def test_ini_inline_values_are_python_literals(written: str, value: Any) -> None:
    inv = inventory_from_text(f"[g]\nh1 v={written}\n", source="hosts.ini")
    assert inv.host("h1").vars["v"] == value


def test_ini_group_vars_keep_the_whole_line_after_the_equals_sign() -> None:
    inv = inventory_from_text("[g]\nh1\n[g:vars]\nargs = -o ProxyJump=bastion.example.com\nport=22\n",
                              source="hosts.ini")
    assert dict(inv.host("h1").vars) == {"args": "-o ProxyJump=bastion.example.com", "port": 22}


def test_ini_ranges_and_steps() -> None:
    inv = inventory_from_text("[web]\nwww[01:50].example.com\n[odd]\nodd[01:10:2]\n[db]\ndb-[a:f]\n",
                              source="hosts.ini")
    assert inv.groups["web"] == tuple(WWW_50)
    assert inv.groups["odd"] == ("odd01", "odd03", "odd05", "odd07", "odd09")
    assert inv.groups["db"] == tuple(f"db-{c}" for c in "abcdef")


def test_ini_children_may_be_declared_before_the_child_group() -> None:
    inv = inventory_from_text("[parent:children]\nkid\n[kid]\nk1\n[kid:vars]\nx=1\n", source="hosts.ini")
    assert inv.groups["parent"] == ("k1",)


def test_a_thousand_host_range_loads() -> None:
    inv = inventory_from_text("[imageservers]\nis[0001:1000].example.com ansible_user=deploy\n"
                              "[imageservers:vars]\nimageserving_home=/srv/is\n", source="big.ini")
    assert len(inv.hosts) == 1000
    assert inv.hosts[-1].name == "is1000.example.com"
    assert inv.hosts[0].vars == {"ansible_user": "deploy", "imageserving_home": "/srv/is"}


@pytest.mark.parametrize(("text", "line", "message"), [
    ("[web:hosts]\nweb1\n[web:bogus]\n", 3, "unknown type 'bogus'"),
    ("[web servers]\nweb1\n", 1, "invalid section header"),
    ("[web]\nweb1 motd='unclosed\n", 2, "cannot parse host line"),
    ("[web]\nweb1 ansible_port\n", 2, "expected key=value after host 'web1'"),
    ("[web]\nweb1\n[web:vars]\nnovalue\n", 4, "expected key=value"),
    ("[web:children]\nweb1 extra\n", 2, "expected a group name"),
    ("[web:children]\nghost\n[other]\nh1\n", 2, "lists group 'ghost', which is never defined"),
    ("[nowhere:vars]\nx=1\n", 1, "never defined"),
    ("[a:children]\nb\n[b:children]\na\n", 4, "creates a cycle"),
    ("[web]\nwww[1:x].example.com\n", 2, "numbers or single letters"),
    ("[web]\nweb1:\n", 2, "gives no port"),
    ("---\n", 1, "YAML"),
])
def test_ini_errors_name_the_file_and_line(tmp_path: Path, text: str, line: int, message: str) -> None:
    path = write(tmp_path, "hosts.ini", text)
    with pytest.raises(InventoryError, match=message) as caught:
        load_inventory([path])
    assert (caught.value.path, caught.value.line) == (str(path), line)


@pytest.mark.parametrize(("line", "hosts"), [
    ("[1:2].example.com", ["1.example.com", "2.example.com"]),
    ("[a:b]-web ansible_port=2222", ["a-web", "b-web"]),
    ("[1:2].h[a:b] # a range at both ends, then a comment", ["1.ha", "1.hb", "2.ha", "2.hb"]),
    ("[01:02].example.com:2200", ["01.example.com", "02.example.com"]),
])
def test_a_host_line_that_begins_with_a_range_is_a_host(line: str, hosts: list[str]) -> None:
    inv = inventory_from_text(f"[web]\n{line}\n", source="hosts.ini")
    assert inv.groups["web"] == tuple(hosts)


@pytest.mark.parametrize(("line", "message"), [
    ("[web servers]", "invalid section header"),  # starts with '[' and ends with ']': a header, and a bad one
    ("[1:2].h[a:b]", "invalid section header"),  # so is this, in Ansible too
    ("[1:2]", "unknown type '2'"),
    ("[web] trailing", "expected key=value after host '[web]'"),  # not a header: a host line, and a bad one
])
def test_what_is_taken_for_a_section_header(line: str, message: str) -> None:
    with pytest.raises(InventoryError, match=re.escape(message)):
        inventory_from_text(f"{line}\n", source="hosts.ini")
