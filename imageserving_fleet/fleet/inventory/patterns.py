"""Select hosts with an Ansible `--limit` pattern, as small pure steps: split → order → evaluate.

    webservers:dbservers          union (`,` works too, and is the separator when present)
    webservers:&staging           intersection
    webservers:!phoenix           exclusion
    a:b:&c:!d:!e                  (a ∪ b) ∩ c − d − e: unions first, then `&`, then `!`,
                                  wherever they stand in the pattern
    is0*.example.com  web*        shell globs (fnmatch), on group names and on host names
    ~(web|db).*\\.example\\.com     a regular expression, anchored at the start (re.match, as Ansible)
    all  *                        every host
    webservers[0] [-1] [0:2] [1:] subscripts into a term's hosts; ranges include their end, and
    webservers[0-2]               `[x-y]` is `[x:y]` (a subscript, never a glob character class)
    localhost  127.0.0.1  ::1     when nothing in the inventory matches, Ansible's implicit localhost
    @FILE  web*,@failed.retry     the file's lines as terms (a retry file), among any others

A term that names a group selects the group's hosts (its children's included); a term that names a
host selects it. The result is always in inventory order (the implicit localhost, which is in no
group, not even `all`, comes last), and matching nothing is a PatternError. Each step mirrors one
of Ansible's inventory/manager.py: split_pattern ↔ split_host_pattern, order_terms ↔ order_patterns,
evaluate ↔ _evaluate_patterns, expand_files ↔ subset's `@filename` reading, match_term ↔ _match_one_pattern, enumerate_matches ↔
_enumerate_matches, split_subscript / apply_subscript ↔ _split_subscript / _apply_subscript.
"""

from __future__ import annotations

import fnmatch
import ipaddress
import os
import re
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ...errors import PatternError
from .model import LOCALHOST_NAMES, Host, Inventory

__all__ = ["Subscript", "apply_subscript", "enumerate_matches", "evaluate", "expand_files", "match_term", "order_terms",
           "select", "split_pattern", "split_subscript"]

# A host name, possibly with [x:y] ranges and a :port, which a ':' inside must not split.
_LABEL = r"(?:[\w-]|\[[a-z0-9]*:[a-z0-9]*(?::\d+)?\])+"
_ADDRESS = re.compile(rf"{_LABEL}(?:\.{_LABEL})*(?::\d+)?", re.IGNORECASE)
_BRACKETED_IPV6 = re.compile(r"\[([0-9a-f:.%]+)\](?::\d+)?", re.IGNORECASE)
# Ansible's ':'-splitting: runs of anything but whitespace, ':' and brackets, or whole [...] groups.
_COLON_TERMS = re.compile(r"(?:[^\s:\[\]]|\[[^\]]*\])+")
# Ansible's PATTERN_WITH_SUBSCRIPT: `[i]`, `[x:y]`, `[x:]`, and the older `[x-y]`, `[x-]`.
_SUBSCRIPT = re.compile(r"(.+)\[(?:(-?[0-9]+)|([0-9]+)[:-]([0-9]*))\]")
_GLOB_CHARS = frozenset("*?[")


@dataclass(frozen=True)
class Subscript:
    """`[start]` when `end` is None; else `[start:end]`, inclusive, `end` -1 meaning the last host.

    As in Ansible, an `end` of 0 (`[2:0]`) picks the one host at `start`.
    """

    start: int
    end: int | None = None


def select(inventory: Inventory, pattern: str) -> list[Host]:
    """Takes an inventory and a --limit pattern, returns the matching hosts in inventory order.

    Raises PatternError when the pattern is empty or malformed, or matches no host.
    """
    terms = expand_files(split_pattern(pattern))
    if not terms:
        raise PatternError("empty host pattern" + (f" ({pattern!r}: its files list no host)" if "@" in pattern else ""))
    hosts = evaluate(inventory, order_terms(terms))
    if not hosts:
        raise PatternError(f"pattern {pattern!r} matches no host")
    return hosts


def split_pattern(pattern: str) -> list[str]:
    """Takes a pattern string, returns its terms, each still carrying its `&` or `!`.

    With a comma anywhere, commas separate; otherwise colons do, except inside `[...]` and in what
    is one address (`host:2222`, `www[01:50].example.com`, an IPv6 address), as Ansible does.
    """
    if "," in pattern:
        terms = pattern.split(",")
    elif _is_one_address(pattern.strip()):
        terms = [pattern]
    else:
        terms = _COLON_TERMS.findall(pattern)
    return [term.strip() for term in terms if term.strip()]


def read_limit_file(path: str) -> str:
    """The text of a `--limit @FILE`; raises PatternError naming the path when it cannot be read."""
    if not os.path.exists(path):
        raise PatternError(f"--limit @{path}: no such file")
    if not os.path.isfile(path):
        raise PatternError(f"--limit @{path}: a limit file must be a file, not a directory")
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return fh.read(16 * 2**20)
    except OSError as exc:
        raise PatternError(f"--limit @{path}: {exc.strerror or exc}") from None


def expand_files(terms: Sequence[str], read: Callable[[str], str] = read_limit_file) -> list[str]:
    """Takes split terms; returns them with each `@FILE` replaced by that file's lines, in place.

    As ansible-core's InventoryManager.subset: each line, stripped, is one term as written (a host,
    a glob, `!host`...), not split again; blank lines are dropped. Only a term that begins with `@`
    is a file (`&@f` and `!@f` are not, in Ansible either).
    """
    out: list[str] = []
    for term in terms:
        if term.startswith("@"):
            out.extend(line.strip() for line in read(term[1:]).split("\n") if line.strip())
        else:
            out.append(term)
    return out


# Ansible's parse_address takes an IPv6 address with a dotted IPv4 tail only in these three shapes.
_IPV4_TAILED_IPV6 = re.compile(r"(?:(?:0:){6}|::(?:ffff:)?|(?:0:){5}ffff:)[0-9a-f]{1,4}(?:\.[0-9a-f]{1,4}){3}",
                               re.IGNORECASE)


def _is_one_address(text: str) -> bool:
    """Takes a pattern without commas, returns whether Ansible's parse_address reads it as one host."""
    if ":" in text and "." in text and "[" not in text:  # an IPv6 address with an IPv4 tail, or host:port
        if _IPV4_TAILED_IPV6.fullmatch(text):
            return True
        return bool(_ADDRESS.fullmatch(text))
    try:
        ipaddress.ip_address(text)
        return "%" not in text  # a scope id (fe80::1%eth0) is not an address to Ansible
    except ValueError:
        pass
    bracketed = _BRACKETED_IPV6.fullmatch(text)
    if bracketed:
        return _is_one_address(bracketed.group(1))
    return bool(_ADDRESS.fullmatch(text))


def order_terms(terms: Sequence[str]) -> list[str]:
    """Takes terms in the order written, returns unions first, then `&` terms, then `!` terms.

    With no union term at all (`!phoenix`, `&staging`), `all` is put first, so they act on everything.
    """
    unions = [t for t in terms if t[0] not in "&!"]
    intersections = [t for t in terms if t[0] == "&"]
    exclusions = [t for t in terms if t[0] == "!"]
    return (unions or ["all"]) + intersections + exclusions


def evaluate(inventory: Inventory, terms: Sequence[str]) -> list[Host]:
    """Takes ordered terms, returns the hosts they select, in inventory order (possibly none).

    The implicit localhost is one host however it is named: `localhost:!127.0.0.1` selects nothing,
    and it keeps the name of the first term that reached it, as Ansible's get_host() does.
    """
    chosen: set[str] = set()
    implicit: Host | None = None
    for term in terms:
        operator, body = (term[0], term[1:]) if term[0] in "&!" else ("", term)
        if not body:
            raise PatternError(f"{term!r} in a host pattern lacks a group or host name")
        if operator == "" and inventory.has_host(body):
            chosen.add(body)  # an exact host name is that host, even if a group has its name (Ansible)
            continue
        names = set()
        for host in match_term(inventory, body):
            if host.implicit:
                implicit = implicit or host
                host = implicit
            names.add(host.name)
        if operator == "&":
            chosen &= names
        elif operator == "!":
            chosen -= names
        else:
            chosen |= names
    hosts = [h for h in inventory.hosts if h.name in chosen]
    if implicit is not None and implicit.name in chosen:
        hosts.append(implicit)
    return hosts


def match_term(inventory: Inventory, term: str) -> list[Host]:
    """Takes one term without `&`/`!`, returns its hosts (Ansible's order, repeats kept), subscript applied."""
    expr, subscript = split_subscript(term)
    return apply_subscript(enumerate_matches(inventory, expr), subscript, term)


def enumerate_matches(inventory: Inventory, expr: str) -> list[Host]:
    """Takes a term without subscript, returns the hosts it names, in Ansible's order, repeats kept.

    Groups are tried first (each group's hosts in Ansible's order, matched groups in the order
    they were defined); then host names (in inventory order) when no group matched, or when the
    term is a glob, a regex or contains a dot (so `*.example.com` reaches hosts even if a group
    name matches). A host can come twice (two matched groups): a subscript counts both, as
    Ansible's does. When nothing matched and the term is `localhost`, `127.0.0.1` or `::1`, it is
    the implicit localhost (or the inventory's own localhost-like host, see Inventory.localhost).
    """
    pattern = expr.startswith("~") or bool(_GLOB_CHARS.intersection(expr))
    matches = _compile(expr).match if pattern else None
    if matches is not None:
        groups = [g for g in inventory.groups if matches(g)]
    else:
        groups = [expr] if expr in inventory.groups else []
    hosts = [inventory.host(name) for group in groups for name in inventory.groups[group]]
    if not groups or pattern or "." in expr:
        if matches is not None:
            hosts += [h for h in inventory.hosts if matches(h.name)]
        elif inventory.has_host(expr):
            hosts.append(inventory.host(expr))
    if not hosts and expr in LOCALHOST_NAMES:
        localhost = inventory.localhost(expr)
        return [localhost] if localhost is not None else []
    return hosts


def _compile(expr: str) -> re.Pattern[str]:
    """Takes a glob or a `~regex`, returns a compiled regex to `.match` names with."""
    if not expr.startswith("~"):
        return re.compile(fnmatch.translate(expr))
    try:
        with warnings.catch_warnings():  # `~[[a]` warns "possible nested set" on stderr: noise, not an answer
            warnings.simplefilter("ignore")
            return re.compile(expr[1:])
    except (re.error, RecursionError, OverflowError) as exc:
        raise PatternError(f"invalid regular expression in host pattern {expr!r}: {exc}") from None


def split_subscript(term: str) -> tuple[str, Subscript | None]:
    """Takes a term, returns it without a trailing `[i]` / `[i:j]` / `[i:]` / `[i-j]` and that subscript.

    The subscript is taken before any globbing, so `web[2-3]` is hosts 2 and 3 of `web`, not a
    character class. A `~regex` term never has one: its brackets belong to the regex.
    """
    match = None if term.startswith("~") else _SUBSCRIPT.fullmatch(term)
    if not match:
        return term, None
    expr, index, start, end = match.groups()
    if index is not None:
        return expr, Subscript(int(index))
    return expr, Subscript(int(start), int(end) if end else -1)


def apply_subscript(hosts: list[Host], subscript: Subscript | None, term: str) -> list[Host]:
    """Takes a term's hosts and its subscript, returns the hosts the subscript picks.

    A slice past the end picks what there is (possibly nothing); a single index past it is an error.
    """
    if subscript is None or not hosts:
        return hosts
    if not subscript.end:  # None, or 0: Ansible's `if end:` reads `[x:0]` as `[x]`
        if not -len(hosts) <= subscript.start < len(hosts):
            raise PatternError(f"subscript in {term!r} is out of range: it matches {len(hosts)} host(s)")
        return [hosts[subscript.start]]
    end = len(hosts) - 1 if subscript.end == -1 else subscript.end
    return hosts[subscript.start:end + 1]
