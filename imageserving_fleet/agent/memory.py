"""Memory of a component's process tree: RSS, and PSS and USS where the kernel gives them.

RSS counts a shared page once per process that maps it, so nginx's master and workers, a forking
server or a JVM sharing libraries are over-counted when their RSS is summed. PSS divides each
shared page among the processes that map it, and USS counts only the pages no other process maps:
summed over a tree they are the honest figures. Both come from /proc/PID/smaps_rollup (Linux 4.14),
one read per process; where it cannot be read (an older kernel, another user's process) the figures
are None and RSS is what the table and `max_memory` use.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass

SAMPLE_EVERY = 1.5  # seconds a memory sample is served before it is measured again
FAMILY_FRESH = 0.1  # seconds one listing of /proc's parent links serves further trees (one status answer)
_KIB = 1024
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


@dataclass(frozen=True)
class Memory:
    """Bytes used by a set of processes; pss and uss are None when any process's smaps were unreadable."""

    rss: int
    pss: int | None = None
    uss: int | None = None

    @property
    def effective(self) -> int:
        """The figure to show and to limit: PSS where the kernel gives it, RSS otherwise."""
        return self.pss if self.pss is not None else self.rss


def over_limit(mem: Memory | None, limit: int) -> bool:
    """max_memory's test: the tree's PSS (RSS where the kernel gives no PSS) above the limit."""
    return mem is not None and mem.effective > limit


def parse_rollup(text: str) -> tuple[int, int, int] | None:
    """Takes the text of /proc/PID/smaps_rollup; returns (rss, pss, uss) in bytes, None if it lacks them."""
    fields: dict[str, int] = {}
    for line in text.splitlines():
        name, _, rest = line.partition(":")
        if name in ("Rss", "Pss", "Private_Clean", "Private_Dirty"):
            value = rest.split()
            if value and value[0].isdigit():
                fields[name] = int(value[0]) * _KIB   # the kernel writes kB (KiB)
    if not {"Rss", "Pss"} <= fields.keys():
        return None
    return fields["Rss"], fields["Pss"], fields.get("Private_Clean", 0) + fields.get("Private_Dirty", 0)


def _statm_rss(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/statm", "rb") as fh:
            return int(fh.read().split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):
        return None


def measure(pids: Iterable[int]) -> Memory | None:
    """Takes pids; returns their summed memory (a process gone meanwhile counts nothing; None: all gone).

    RSS comes from the same smaps_rollup read as PSS, so pss <= rss holds for every sum; a process
    whose smaps_rollup is unreadable falls back to statm for RSS and makes PSS and USS unknown.
    """
    rss = pss = uss = 0
    honest, seen = True, False
    for pid in pids:
        try:
            with open(f"/proc/{pid}/smaps_rollup", "rb") as fh:
                parsed = parse_rollup(fh.read().decode("ascii", "replace"))
        except (FileNotFoundError, ProcessLookupError):
            continue                                  # gone since it was listed
        except OSError:
            parsed = None                             # EACCES/EPERM (another user), no such file (old kernel)
        if parsed is None:
            value = _statm_rss(pid)
            if value is None:
                continue
            rss, honest, seen = rss + value, False, True
            continue
        rss, pss, uss, seen = rss + parsed[0], pss + parsed[1], uss + parsed[2], True
    if not seen:
        return None
    return Memory(rss, pss, uss) if honest else Memory(rss)


Children = dict[int, list[int]]   # parent pid -> child pids


def children_map() -> Children:
    """Every process's children, from one pass over /proc/*/stat (what psutil does per call, done once)."""
    out: Children = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as fh:
                stat = fh.read()
        except OSError:
            continue
        fields = stat[stat.rfind(b")") + 2:].split()   # the command name may hold spaces and ')'
        if len(fields) > 1:
            out.setdefault(int(fields[1]), []).append(int(name))
    return out


def tree_pids(pid: int, children: Children | None = None) -> list[int]:
    """The pid and every descendant's; empty when the process is gone."""
    if not os.path.exists(f"/proc/{pid}"):
        return []
    family = children if children is not None else children_map()
    found, todo, seen = [], [pid], {pid}
    while todo:
        p = todo.pop()
        found.append(p)
        for c in family.get(p, ()):
            if c not in seen:
                seen.add(c)
                todo.append(c)
    return found


def tree_memory(pid: int, children: Children | None = None) -> Memory | None:
    """Memory of a process and all its descendants; None when it is gone."""
    return measure(tree_pids(pid, children))


def self_memory(pid: int) -> Memory | None:
    """Memory of one process alone (the supervisor's own row)."""
    return measure([pid])


class MemorySampler:
    """Memory of each process tree, measured at most every SAMPLE_EVERY seconds per key.

    Walking /proc for a tree and reading each process's smaps_rollup costs milliseconds; a fleet
    polling every host every few seconds would make that most of the supervisor's CPU. A sample is
    kept per key with the pid it was taken for, so a restarted component (new pid) is measured
    afresh at once.
    """

    def __init__(self, every: float = SAMPLE_EVERY) -> None:
        self.every = every
        self._samples: dict[str, tuple[int, float, Memory | None]] = {}
        self._family: tuple[float, Children] | None = None   # one /proc pass serves every tree of an answer

    def memory(self, key: str, pid: int | None, now: float,
               measure_tree: Callable[[int], Memory | None] | None = None) -> Memory | None:
        """Takes a key, the tree's main pid and the monotonic time; returns its Memory (None: no process)."""
        if pid is None:
            self._samples.pop(key, None)
            return None
        hit = self._samples.get(key)
        if hit is not None and hit[0] == pid and now - hit[1] < self.every:
            return hit[2]
        value = measure_tree(pid) if measure_tree is not None else tree_memory(pid, self._children(now))
        self._samples[key] = (pid, now, value)
        return value

    def _children(self, now: float) -> Children:
        if self._family is None or now - self._family[0] > FAMILY_FRESH or now < self._family[0]:
            self._family = (now, children_map())
        return self._family[1]

    def forget(self, key: str) -> None:
        self._samples.pop(key, None)
