"""--limit patterns, against the examples of Ansible's "Patterns: targeting hosts and groups" page."""

from __future__ import annotations

import re

import pytest

from imageserving_fleet.errors import InventoryError, PatternError
from imageserving_fleet.fleet.inventory import Inventory, inventory_from_text
from imageserving_fleet.fleet.inventory.patterns import (
    Subscript,
    order_terms,
    select,
    split_pattern,
    split_subscript,
)

FLEET_TEXT = """
all:
  hosts:
    mail.example.com:
  children:
    webservers:
      hosts:
        foo.example.com:
        bar.example.com:
        web[1:3].example.com:
    dbservers:
      hosts:
        one.example.com:
        two.example.com:
        three.example.com:
    atlanta:
      hosts:
        foo.example.com:
        one.example.com:
    phoenix:
      hosts:
        bar.example.com:
        two.example.com:
    staging:
      hosts:
        foo.example.com:
        bar.example.com:
        web1.example.com:
        two.example.com:
    production:
      hosts:
        web2.example.com:
        web3.example.com:
        one.example.com:
        three.example.com:
    imageservers:
      hosts:
        is01.example.com:
        is02.example.com:
        is10.example.com:
        is-db.example.com:
        myweb.example.com:
    usa:
      children:
        southeast:
          children:
            georgia:
              hosts:
                ga1.example.com:
"""
FLEET = inventory_from_text(FLEET_TEXT, source="fleet.yml")

WEB = ["foo.example.com", "bar.example.com", "web1.example.com", "web2.example.com", "web3.example.com"]
DB = ["one.example.com", "two.example.com", "three.example.com"]


def select_names(inventory: Inventory, pattern: str) -> list[str]:
    return [h.name for h in select(inventory, pattern)]


@pytest.mark.parametrize(("pattern", "expected"), [
    # one group, one host, everything
    ("webservers", WEB),
    ("one.example.com", ["one.example.com"]),
    ("all", [h.name for h in FLEET.hosts]),
    ("*", [h.name for h in FLEET.hosts]),
    ("ungrouped", ["mail.example.com"]),
    ("usa", ["ga1.example.com"]),  # children's children count
    # unions: ':' or ',' — always in inventory order, whatever order they are written in
    ("webservers:dbservers", WEB + DB),
    ("dbservers:webservers", WEB + DB),
    ("webservers,dbservers", WEB + DB),
    ("one.example.com:two.example.com", ["one.example.com", "two.example.com"]),
    ("one.example.com, mail.example.com", ["mail.example.com", "one.example.com"]),
    # exclusion and intersection
    ("all:!atlanta", [h.name for h in FLEET.hosts if h.name not in ("foo.example.com", "one.example.com")]),
    ("webservers:!phoenix", ["foo.example.com", "web1.example.com", "web2.example.com", "web3.example.com"]),
    ("webservers:&staging", ["foo.example.com", "bar.example.com", "web1.example.com"]),
    ("webservers:dbservers:&staging:!phoenix", ["foo.example.com", "web1.example.com"]),
    ("webservers:&staging:!phoenix", ["foo.example.com", "web1.example.com"]),
    ("!phoenix:webservers:&staging", ["foo.example.com", "web1.example.com"]),  # order does not matter
    ("&staging", ["foo.example.com", "bar.example.com", "web1.example.com", "two.example.com"]),
    ("!webservers,!dbservers,!imageservers", ["mail.example.com", "ga1.example.com"]),
    # globs, on host names and on group names
    ("is0*.example.com", ["is01.example.com", "is02.example.com"]),
    ("*.example.com:!is*", [h.name for h in FLEET.hosts if not h.name.startswith("is")]),
    ("web*", WEB),  # group "webservers" and hosts web1..web3
    ("web?.example.com", ["web1.example.com", "web2.example.com", "web3.example.com"]),
    ("is[01]*.example.com", ["is01.example.com", "is02.example.com", "is10.example.com"]),
    ("*servers:&production", ["web2.example.com", "web3.example.com", "one.example.com",
                              "three.example.com"]),
    # regular expressions: re.match, as Ansible (so myweb and is-db do not match)
    (r"~(web|db).*\.example\.com", ["web1.example.com", "web2.example.com", "web3.example.com"]),
    (r"~is\d{2}", ["is01.example.com", "is02.example.com", "is10.example.com"]),
    (r"~.*web", WEB + ["myweb.example.com"]),
    (r"~(atl|phoe)", ["foo.example.com", "bar.example.com", "one.example.com", "two.example.com"]),
    # subscripts: on the term's hosts in inventory order; ranges include their end
    ("webservers[0]", ["foo.example.com"]),
    ("webservers[-1]", ["web3.example.com"]),
    ("webservers[0:2]", ["foo.example.com", "bar.example.com", "web1.example.com"]),
    ("webservers[3:]", ["web2.example.com", "web3.example.com"]),
    ("webservers[0]:dbservers[1]", ["foo.example.com", "two.example.com"]),
    ("webservers[0:1]:!phoenix", ["foo.example.com"]),
    # [x-y] is the older spelling of [x:y], and a subscript wins over a glob character class
    ("webservers[1-2]", ["bar.example.com", "web1.example.com"]),
    ("webservers[3-]", ["web2.example.com", "web3.example.com"]),
    ("web*[0-1]", ["foo.example.com", "bar.example.com"]),
    ("webservers[1:0]", ["bar.example.com"]),  # Ansible's `if end:` reads an end of 0 as a single index
    ("webservers[9:12]:dbservers", DB),  # a slice past the end is empty, not an error
    # several matched groups: their host lists one after the other, repeats counted (Ansible)
    ("*servers[4:5]", ["web3.example.com", "one.example.com"]),
    ("*ta*[0:3]", ["foo.example.com", "bar.example.com", "one.example.com"]),  # atlanta's 2 + staging's, foo twice
])
def test_patterns_select_like_ansible(pattern: str, expected: list[str]) -> None:
    assert select_names(FLEET, pattern) == expected


LETTERS_TEXT = """
[a]
h1
h2
h3
[b]
h3
h4
h5
[c]
h2
h3
h4
h5
h6
[d]
h4
[e]
h5
"""
LETTERS = inventory_from_text(LETTERS_TEXT, source="letters.ini")


@pytest.mark.parametrize("pattern", [
    "a:b:&c:!d:!e",
    "!d:a:&c:b:!e",
    "a,b,&c,!d,!e",
    "!e,&c,!d,b,a",
])
def test_unions_then_intersections_then_exclusions_wherever_they_stand(pattern: str) -> None:
    assert select_names(LETTERS, pattern) == ["h2", "h3"]  # (a ∪ b) ∩ c − d − e


def test_a_host_name_wins_over_a_group_of_the_same_name() -> None:
    inv = inventory_from_text("[db]\nweb\n[web]\nw1\nw2\n", source="x.ini")
    assert select_names(inv, "web") == ["web"]
    assert select_names(inv, "web:db") == ["web"]
    assert select_names(inv, "all:!web") == ["web"]  # '!' terms look at groups first, as in Ansible


@pytest.mark.parametrize(("pattern", "terms"), [
    ("webservers", ["webservers"]),
    ("webservers:dbservers", ["webservers", "dbservers"]),
    ("webservers:&staging:!phoenix", ["webservers", "&staging", "!phoenix"]),
    ("a, b ,,c", ["a", "b", "c"]),
    ("a:b,c", ["a:b", "c"]),  # a comma wins: colons are then part of the terms
    ("www[01:50].example.com", ["www[01:50].example.com"]),
    ("webservers[0:2]:dbservers", ["webservers[0:2]", "dbservers"]),
    ("badwolf.example.com:5309", ["badwolf.example.com:5309"]),
    ("2001:db8::1", ["2001:db8::1"]),
    ("[2001:db8::1]:22", ["[2001:db8::1]:22"]),
    # an IPv6 address with an IPv4 tail is one address only in the shapes Ansible's parse_address takes
    ("::ffff:10.0.0.1", ["::ffff:10.0.0.1"]),
    ("2001:db8::1:127.0.0.1", ["2001", "db8", "1", "127.0.0.1"]),
    ("fe80::1%eth0", ["fe80", "1%eth0"]),  # no scope ids
    ("h1:10.0.0.1", ["h1", "10.0.0.1"]),
    ("host1.example.com:host2.example.com", ["host1.example.com", "host2.example.com"]),
    ("  ", []),
])
def test_split(pattern: str, terms: list[str]) -> None:
    assert split_pattern(pattern) == terms


@pytest.mark.parametrize(("terms", "ordered"), [
    (["a", "b"], ["a", "b"]),
    (["!d", "a", "&c", "b", "!e"], ["a", "b", "&c", "!d", "!e"]),
    (["!phoenix"], ["all", "!phoenix"]),
    (["&staging", "!phoenix"], ["all", "&staging", "!phoenix"]),
])
def test_order(terms: list[str], ordered: list[str]) -> None:
    assert order_terms(terms) == ordered


@pytest.mark.parametrize(("term", "split"), [
    ("webservers", ("webservers", None)),
    ("webservers[0]", ("webservers", Subscript(0))),
    ("webservers[-1]", ("webservers", Subscript(-1))),
    ("webservers[0:2]", ("webservers", Subscript(0, 2))),
    ("webservers[1:]", ("webservers", Subscript(1, -1))),
    ("web*[2]", ("web*", Subscript(2))),
    ("webservers[1-3]", ("webservers", Subscript(1, 3))),
    ("webservers[1-]", ("webservers", Subscript(1, -1))),
    ("web[2-3]", ("web", Subscript(2, 3))),  # a subscript, not the character class [2-3]
    ("web[-1:]", ("web[-1:]", None)),  # a range never starts negative: a glob, as in Ansible
    ("web[ab]", ("web[ab]", None)),  # a glob character class, not a subscript
    ("web[١:٢]", ("web[١:٢]", None)),  # only ASCII digits make a subscript
    ("~web[0-9]", ("~web[0-9]", None)),  # a regex keeps its brackets
])
def test_split_subscript(term: str, split: tuple[str, Subscript | None]) -> None:
    assert split_subscript(term) == split


@pytest.mark.parametrize(("pattern", "message"), [
    ("nosuchgroup", "pattern 'nosuchgroup' matches no host"),
    ("webservers:&dbservers", "matches no host"),
    ("webservers:!webservers", "matches no host"),
    ("is9*", "matches no host"),
    ("~^zzz", "matches no host"),
    ("", "empty host pattern"),
    (" , ", "empty host pattern"),
    ("webservers:!", "lacks a group or host name"),
    ("~web(", "invalid regular expression"),
    ("webservers[9]", "subscript in 'webservers[9]' is out of range"),
    ("webservers[9:0]", "subscript in 'webservers[9:0]' is out of range"),
    ("webservers[9-12]", "matches no host"),
    # the implicit localhost is never in `all`, and is one host whatever it is called
    ("&localhost", "matches no host"),
    ("localhost:&all", "matches no host"),
    ("localhost:!127.0.0.1", "matches no host"),
    ("localhost[1]", "out of range"),
    ("local*", "matches no host"),  # only the exact names reach it
    ("~localhost", "matches no host"),
    ("Localhost", "matches no host"),
])
def test_pattern_errors(pattern: str, message: str) -> None:
    with pytest.raises(PatternError, match=re.escape(message)) as caught:
        select(FLEET, pattern)
    assert isinstance(caught.value, InventoryError)  # the CLI maps both to exit 1


def test_a_thousand_hosts_select_quickly_and_in_order() -> None:
    inv = inventory_from_text("[is]\nis[0001:1000].example.com\n[canary]\nis0500.example.com\n",
                              source="big.ini")
    assert len(select(inv, "is*.example.com:!canary")) == 999
    assert [h.name for h in select(inv, "is[-1]:canary")] == ["is0500.example.com", "is1000.example.com"]


# ------------------------------------------------------------------------------- implicit localhost

@pytest.mark.parametrize(("pattern", "expected"), [
    ("localhost", ["localhost"]),
    ("127.0.0.1", ["127.0.0.1"]),
    ("::1", ["::1"]),
    ("localhost[0]", ["localhost"]),
    ("localhost[-1]", ["localhost"]),
    ("dbservers:localhost", DB + ["localhost"]),  # after every inventory host: it is in none of its groups
    ("localhost,dbservers", DB + ["localhost"]),
    ("127.0.0.1:localhost", ["127.0.0.1"]),  # one host, named by the first term that reached it
    ("localhost:&127.0.0.1", ["localhost"]),
    ("localhost:dbservers:!one.example.com", ["two.example.com", "three.example.com", "localhost"]),
    ("all:!localhost", [h.name for h in FLEET.hosts]),
    ("all", [h.name for h in FLEET.hosts]),  # not in `all`...
    ("*", [h.name for h in FLEET.hosts]),  # ...nor reached by a glob
])
def test_a_localhost_name_the_inventory_lacks_selects_the_implicit_localhost(pattern: str,
                                                                              expected: list[str]) -> None:
    hosts = select(FLEET, pattern)
    assert [h.name for h in hosts] == expected
    for host in hosts:
        if host.name in ("localhost", "127.0.0.1", "::1"):
            assert host.implicit and host.groups == ()
            assert host.vars["ansible_connection"] == "local"


@pytest.mark.parametrize(("inventory", "pattern", "expected", "implicit"), [
    ("[web]\nlocalhost ansible_connection=ssh\n", "localhost", ["localhost"], False),
    ("[web]\n127.0.0.1\n", "localhost", ["127.0.0.1"], False),  # Ansible's first localhost-like host
    ("[web]\n127.0.0.1\n::1\n", "::1", ["::1"], False),
    ("[web]\n::1\n127.0.0.1\n", "localhost", ["::1"], False),
    ("[localhost]\nh1\n", "localhost", ["h1"], False),  # a group of that name wins
    ("[localhost]\n[web]\nh1\n", "localhost", ["localhost"], True),  # an empty one matches nothing
    ("[web]\nh1\n", "localhost:web", ["h1", "localhost"], True),
])
def test_which_host_a_localhost_name_selects(inventory: str, pattern: str, expected: list[str],
                                             implicit: bool) -> None:
    hosts = select(inventory_from_text(inventory, source="x.ini"), pattern)
    assert [h.name for h in hosts] == expected
    assert any(h.implicit for h in hosts) is implicit
