"""`logs --group`: each distinct output once, with the hosts that gave it (clush -b, dshbak).

At 200 hosts the question is "do they all say the same, and who does not": hosts whose lines are
identical share one block headed by their folded names (`is[01-19] (19)`, hostlist.fold); a host
that could not answer is grouped with the others that failed for the same reason, on stderr.

Order (documented in the README): blocks in the order of their first host in the inventory, so
the output is stable from one run to the next and reads like the ungrouped one; the header says
how many hosts each block stands for, so a lone odd host is easy to spot.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TextIO

from ..untrusted import escape
from .hostlist import fold
from .results import HostResult, Result


@dataclass(frozen=True)
class Group:
    """Hosts (inventory order) that gave the same answer: the same lines, or the same failure."""

    hosts: tuple[str, ...]
    lines: tuple[str, ...]
    result: Result = Result.OK
    reason: str = ""

    @property
    def folded(self) -> str:
        return fold(self.hosts)

    def to_dict(self) -> dict[str, Any]:
        return {"hosts": list(self.hosts), "folded": self.folded, "result": str(self.result),
                "reason": self.reason, "lines": list(self.lines)}


def group_results(results: Sequence[HostResult]) -> list[Group]:
    """Takes every host's logs result (inventory order); returns the groups, by their first host."""
    members: dict[tuple[Any, ...], list[str]] = {}
    for r in results:
        key = ((Result.OK, "", tuple(r.lines or ())) if r.result == Result.OK
               else (r.result, r.reason, ()))
        members.setdefault(key, []).append(r.host)
    return [Group(tuple(hosts), lines, result, reason) for (result, reason, lines), hosts in members.items()]


def print_groups(groups: Sequence[Group], out: TextIO | None = None, err: TextIO | None = None,
                 *, raw: bool = False) -> None:
    """Each answer once under its hosts (stdout); failures one line per reason (stderr).

    Lines are a host's text, shown escaped unless `raw` (`logs --raw`); reasons are escaped always.
    """
    out, err = out or sys.stdout, err or sys.stderr  # at call time: whatever stdout is then
    shown = (lambda line: line) if raw else escape
    for g in groups:
        head = f"{g.folded} ({len(g.hosts)})"
        if g.result != Result.OK:
            err.write(f"{head} | {g.result}: {escape(g.reason, tabs=False)}\n")
            continue
        if not g.lines:
            head += ": no lines"
        rule = "-" * min(len(head), 80)
        out.write(f"{rule}\n{head}\n{rule}\n")
        for line in g.lines:
            out.write(shown(line) + "\n")
    out.flush()
