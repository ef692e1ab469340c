"""Host entries as an inventory writes them: `www[01:50].example.com:2222` → names and a port.

Pure: takes a string, returns names (ranges expanded) and the port; raises InventoryError without
a file or line (the loader that knows them adds them). Follows Ansible's parsing/utils/addresses.py
and its `[begin:end(:step)]` ranges.
"""

from __future__ import annotations

import ipaddress
import itertools
import re
import string
from collections.abc import Iterator

from ...errors import InventoryError

__all__ = ["MAX_HOSTS_PER_PATTERN", "expand_host_pattern"]

MAX_HOSTS_PER_PATTERN = 100_000


def expand_host_pattern(pattern: str) -> tuple[list[str], int | None]:
    """Takes an inventory host entry, returns its host names and the port it gives (or None).

    `www[01:50].example.com` → 50 zero-padded names; `db-[a:f]` letters; `[1:9:2]` a step;
    several ranges multiply; `badwolf.example.com:5309` → port 5309; IPv6 addresses stay whole,
    `[2001:db8::1]:22` gives a port. Raises InventoryError (without a file: the caller adds it).
    """
    name, port = _split_port(pattern.strip())
    if not name:
        raise InventoryError(f"empty host name in {pattern!r}")
    if "[" not in name and "]" not in name:
        return [name], port
    return _expand_ranges(name), port


def _split_port(pattern: str) -> tuple[str, int | None]:
    """Takes `host`, `host:port`, an IP address or `[ipv6]:port`; returns (host, port or None)."""
    if ":" not in pattern or _is_ip_address(pattern):
        return pattern, None
    bracketed = re.fullmatch(r"\[([0-9A-Fa-f:.%]+)\](?::(\d+))?", pattern)
    if bracketed and _is_ip_address(bracketed.group(1)):
        return bracketed.group(1), _port(bracketed.group(2), pattern)
    colons = [i for i, _ in _outside_brackets(pattern, ":")]
    if len(colons) != 1:
        return pattern, None  # a plain name, or something IPv6-like: Ansible keeps it whole too
    head, tail = pattern[:colons[0]], pattern[colons[0] + 1:]
    if not tail:
        raise InventoryError(f"host {pattern!r} ends with ':' but gives no port")
    return head, _port(tail, pattern)


def _port(text: str | None, pattern: str) -> int | None:
    if text is None:
        return None
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise InventoryError(f"invalid port {text!r} in host {pattern!r}")
    return int(text)


def _is_ip_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _outside_brackets(text: str, char: str) -> Iterator[tuple[int, str]]:
    depth = 0
    for i, c in enumerate(text):
        depth += (c == "[") - (c == "]")
        if c == char and depth == 0:
            yield i, c


def _expand_ranges(name: str) -> list[str]:
    """Takes a name holding one or more `[begin:end(:step)]` ranges, returns every name it stands for."""
    parts: list[list[str]] = []
    rest = name
    while "[" in rest:
        head, _, after = rest.partition("[")
        body, closed, rest = after.partition("]")
        if not closed:
            raise InventoryError(f"host range in {name!r} has no closing ']'")
        parts.append([head])
        parts.append(_range_values(body, name))
    if "]" in rest:
        raise InventoryError(f"host range in {name!r} has a ']' without '['")
    parts.append([rest])
    count = 1
    for part in parts:
        count *= len(part)
    if count > MAX_HOSTS_PER_PATTERN:
        raise InventoryError(f"host range {name!r} stands for {count} hosts, more than "
                             f"{MAX_HOSTS_PER_PATTERN}")
    return ["".join(combo) for combo in itertools.product(*parts)]


_DIGITS = re.compile(r"[0-9]{1,18}")  # int() refuses 4300+ digits; no fleet needs 19


def _range_values(body: str, name: str) -> list[str]:
    """Takes the inside of `[...]` (`01:50`, `a:f`, `1:9:2`), returns its values, formatted."""
    bounds = body.split(":")
    if len(bounds) not in (2, 3):
        raise InventoryError(f"host range [{body}] in {name!r} must be [begin:end] or [begin:end:step]")
    begin, end = bounds[0] or "0", bounds[1]
    step_text = bounds[2] if len(bounds) == 3 else "1"
    if not end:
        raise InventoryError(f"host range [{body}] in {name!r} has no end")
    if not _DIGITS.fullmatch(step_text) or int(step_text) == 0:
        raise InventoryError(f"host range [{body}] in {name!r} has an invalid step {step_text!r}")
    step = int(step_text)
    if len(begin) == 1 and len(end) == 1 and begin in string.ascii_letters and end in string.ascii_letters:
        first, last = string.ascii_letters.index(begin), string.ascii_letters.index(end)
        if first > last:
            raise InventoryError(f"host range [{body}] in {name!r} ends before it begins")
        return list(string.ascii_letters[first:last + 1:step])
    if not (_DIGITS.fullmatch(begin) and _DIGITS.fullmatch(end)):  # not isdigit(): it takes '²', int() does not
        raise InventoryError(f"host range [{body}] in {name!r} must be numbers or single letters")
    if int(begin) > int(end):
        raise InventoryError(f"host range [{body}] in {name!r} ends before it begins")
    count = (int(end) - int(begin)) // step + 1  # not len(range()): that overflows past 2**63
    if count > MAX_HOSTS_PER_PATTERN:  # before building the list: h[0:99999999] is gigabytes of names
        raise InventoryError(f"host range {name!r} stands for {count} hosts or more, more than {MAX_HOSTS_PER_PATTERN}")
    width = len(begin) if begin.startswith("0") and len(begin) > 1 else 0
    if width and len(end) != width:
        raise InventoryError(f"host range [{body}] in {name!r}: a zero-padded begin and its end must "
                             f"have the same number of digits")
    return [str(n).zfill(width) for n in range(int(begin), int(end) + 1, step)]
