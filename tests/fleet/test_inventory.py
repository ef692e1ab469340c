"""Inventory loading: Ansible's YAML and INI formats, ranges, variable precedence, errors with file:line."""

from __future__ import annotations

import os
import re
import textwrap
from pathlib import Path
from typing import Any

import pytest

from imageserving_fleet.errors import InventoryError
from imageserving_fleet.fleet.inventory import (
    Host,
    Inventory,
    default_inventory,
    expand_host_pattern,
    inventory_from_text,
    load_inventory,
)

REPO = Path(__file__).resolve().parents[2]


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def names(inventory: Inventory) -> list[str]:
    return [h.name for h in inventory.hosts]


# ------------------------------------------------------------------------------------ host patterns

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


# --------------------------------------------------------------------------------------------- YAML

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
    assert inv.groups["europe"] == ("par1.example.com", "par2.example.com", "ber1.example.com")
    assert inv.groups["france"] == inv.groups["paris"] == ("par1.example.com", "par2.example.com")
    assert inv.groups["ungrouped"] == ("loner.example.com",)
    assert inv.groups["all"] == tuple(names(inv))
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
    assert inv.groups["db"] == ("web1", "db1")
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


# ---------------------------------------------------------------------------------------------- INI

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


# ------------------------------------------------------------------------- files, directories, vars


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


def test_a_missing_inventory_is_an_error_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "nope" / "hosts.yml"
    with pytest.raises(InventoryError, match="not found") as caught:
        load_inventory([missing])
    assert caught.value.path == str(missing)


def test_inventory_scripts_are_refused(tmp_path: Path) -> None:
    script = write(tmp_path, "ec2.py", "#!/usr/bin/env python3\nprint('{}')\n")
    with pytest.raises(InventoryError, match="scripts are not supported"):
        load_inventory([script])


def test_unknown_host_lookup_is_an_inventory_error() -> None:
    with pytest.raises(InventoryError, match="no host named 'ghost'"):
        default_inventory().host("ghost")


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


def test_hosts_are_frozen() -> None:
    host = default_inventory().hosts[0]
    with pytest.raises(TypeError):
        host.vars["ansible_connection"] = "ssh"  # type: ignore[index]
    assert hash(host) == hash(Host("localhost", {}, ("all", "ungrouped")))
