"""Split the matched hosts into N stable slices so several controllers can share one fleet.

A host's slice depends only on its name (sha256 of the name, modulo N), never on the inventory's
order or size, so adding a host moves no other host from one controller to another.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from ...errors import UsageError

_SLICE_RE = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")
T = TypeVar("T")


@dataclass(frozen=True)
class Slice:
    """The K-th (1-based) of N slices."""

    k: int
    n: int

    def __str__(self) -> str:
        return f"{self.k}/{self.n}"


def parse_slice(text: str) -> Slice:
    """Takes `K/N`; returns a Slice or raises UsageError (1 <= K <= N)."""
    m = _SLICE_RE.match(text)
    if not m:
        raise UsageError(f"--slice expects K/N such as 2/4, got {text!r}")
    k, n = int(m.group(1)), int(m.group(2))
    if n < 1 or not 1 <= k <= n:
        raise UsageError(f"--slice {text}: K must be between 1 and N, and N at least 1")
    return Slice(k, n)


def slice_index(name: str, n: int) -> int:
    """Takes a host name and a slice count; returns its slice, 1..n (stable across runs and machines)."""
    digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).digest()
    return int.from_bytes(digest[:8], "big") % n + 1


def select_slice(items: Sequence[T], part: Slice | None, name_of: Callable[[T], str]) -> list[T]:
    """Takes hosts (in inventory order) and a slice; returns the hosts of that slice, order kept."""
    if part is None or part.n == 1:
        return list(items)
    return [item for item in items if slice_index(name_of(item), part.n) == part.k]
