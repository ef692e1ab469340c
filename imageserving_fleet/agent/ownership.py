"""Which processes belong to a component: the same answer for the supervisor, for the next one after
its death, and for `status`/`stop` when no supervisor runs.

Sources, best first:

1. **A cgroup per component** where the host lets us create one (cgroup v2, including the
   `unified` hierarchy of a v1 hybrid; else a v1 `pids` or `freezer` hierarchy), under
   `<mount>[/<our own v2 cgroup>]/imageserving/<key of the home>/<id>`. Nothing a process does
   (fork, double fork, setsid, a new environment or command line) takes it out; v2's `cgroup.kill`
   kills every member at once, even one forking at that moment.
2. Otherwise **the subreaper's view and the session**: every component is a session leader, so
   its session id is its main pid; the supervisor is a child subreaper, so a descendant that
   leaves the session and is orphaned (double fork + setsid, nginx-style) is reparented to it.
   Every member ever seen (and every orphan reparented to the supervisor) is recorded with its
   start time, so a later supervisor or a `stop` finds it without guessing; a pid whose start
   time differs is someone else.

The environment tag (procs.TAG) is never relied upon: nginx's workers and many C daemons erase it.
The record of each component lives in `<home>/run/components.json` (statefile.py). Stdlib only
and no dataclasses: `imageserving status` imports this when the supervisor is down.
"""

from __future__ import annotations

import os
import signal

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import Any

CGROUP_ENV = "IMAGESERVING_CGROUP"   # "off": use the subreaper's view only (hosts that forbid cgroups, tests)

ProcRow = tuple[int, int, int, int]   # ppid, pgid, sid, start (clock ticks since boot)


# ------------------------------------------------------------------ /proc
def stat(pid: int) -> ProcRow | None:
    """(ppid, pgid, sid, start ticks) of a live process; None when gone or a zombie."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            data = fh.read()
    except OSError:
        return None
    rest = data[data.rindex(b")") + 2:].split()
    if rest[0] in (b"Z", b"X"):
        return None
    return int(rest[1]), int(rest[2]), int(rest[3]), int(rest[19])


def start_of(pid: int) -> int | None:
    row = stat(pid)
    return row[3] if row else None


def table() -> dict[int, ProcRow]:
    """Every live process of the host."""
    out = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            row = stat(int(name))
            if row is not None:
                out[int(name)] = row
    return out


def children_of(pid: int) -> list[int]:
    """Direct children of a process (ours: orphans reparented to the subreaper, components, checks)."""
    out: list[int] = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/children") as fh:
                out += [int(x) for x in fh.read().split()]
    except OSError:
        return [p for p, row in table().items() if row[0] == pid]
    return out


def boot_id() -> str:
    try:
        with open("/proc/sys/kernel/random/boot_id") as fh:
            return fh.read().strip()
    except OSError:
        return ""


def stdout_target(pid: int) -> str | None:
    """Where a process's stdout goes (a path, `pipe:[…]`, …), None when unreadable."""
    try:
        return os.readlink(f"/proc/{pid}/fd/1")
    except OSError:
        return None


# ---------------------------------------------------------------- cgroups
def _mounts() -> list[tuple[str, str, str]]:
    """(mount point, fstype, options) of every cgroup hierarchy."""
    out = []
    try:
        with open("/proc/self/mounts") as fh:
            for line in fh:
                parts = line.split()
                if len(parts) >= 4 and parts[2] in ("cgroup", "cgroup2"):
                    out.append((parts[1], parts[2], parts[3]))
    except OSError:
        pass
    return out


def _own_v2_path() -> str:
    try:
        with open("/proc/self/cgroup") as fh:
            for line in fh:
                if line.startswith("0::"):
                    return line[3:].strip()
    except OSError:
        pass
    return "/"


def home_key(root: str) -> str:
    import hashlib

    return hashlib.sha256(root.encode()).hexdigest()[:16]


def cgroup_base(root: str) -> str | None:
    """The directory holding this home's component cgroups, created if the host lets us; else None.

    v2 first (it has cgroup.kill; under systemd with Delegate=yes, inside our own subtree), then
    a v1 `pids` or `freezer` hierarchy (a v1 hybrid as on hosts without systemd as PID 1).
    """
    if os.environ.get(CGROUP_ENV, "").lower() in ("off", "0", "no"):
        return None
    mounts = _mounts()
    candidates = [os.path.join(m, _own_v2_path().lstrip("/")) for m, kind, _ in mounts if kind == "cgroup2"]
    for want in ("pids", "freezer"):
        candidates += [m for m, kind, opts in mounts if kind == "cgroup" and want in opts.split(",")]
    for parent in candidates:
        base = os.path.join(parent, "imageserving", home_key(root))
        try:
            os.makedirs(base, exist_ok=True)
        except OSError:
            continue
        if os.access(os.path.join(base, "cgroup.procs"), os.W_OK):
            return base
    return None


def cgroup_of_self(base: str) -> str | None:
    """The cgroup directory we are in, in the hierarchy `base` belongs to (to step back after a spawn)."""
    mount = next((m for m, _, _ in sorted(_mounts(), key=lambda x: -len(x[0]))
                  if base.startswith(m.rstrip("/") + "/")), None)
    if mount is None:
        return None
    v2 = os.path.exists(os.path.join(mount, "cgroup.controllers"))
    try:
        with open("/proc/self/cgroup") as fh:
            for line in fh:
                num, ctrls, path = line.rstrip("\n").split(":", 2)
                if (v2 and num == "0") or (not v2 and os.path.basename(mount) in ctrls.split(",")):
                    return os.path.join(mount, path.lstrip("/"))
    except (OSError, ValueError):
        pass
    return None


def enter(cgroup: str, pid: int = 0) -> None:
    """Moves a process (0: ourselves) into a cgroup; raises OSError."""
    with open(os.path.join(cgroup, "cgroup.procs"), "w") as fh:
        fh.write(str(pid or os.getpid()))


def cgroup_members(cgroup: str) -> list[int]:
    try:
        with open(os.path.join(cgroup, "cgroup.procs")) as fh:
            return [int(x) for x in fh.read().split()]
    except (OSError, ValueError):
        return []


def cgroup_kill(cgroup: str) -> bool:
    """SIGKILL every member at once (v2 `cgroup.kill`, Linux ≥ 5.14); False where not offered."""
    try:
        with open(os.path.join(cgroup, "cgroup.kill"), "w") as fh:
            fh.write("1")
        return True
    except OSError:
        return False


def remove_cgroup(cgroup: str | None) -> None:
    if cgroup:
        try:
            os.rmdir(cgroup)
        except OSError:
            pass


# ------------------------------------------------------------- ownership
class Owned:
    """What a component owns: its main process (pid + start ticks), cgroup, and every member seen.

    `seen` maps pid -> start ticks of every other process found in its tree, its session or
    reparented to the supervisor from it; `relay` is (pid, start ticks) of its log relay and
    `pipe` the inode of the pipe between them; `child` says whether the main process is our
    child (adopted ones are watched with a pidfd instead of waitpid).
    """

    __slots__ = ("id", "pid", "start", "cgroup", "seen", "relay", "pipe", "child")

    def __init__(self, cid: str, pid: int | None = None, start: int | None = None, cgroup: str | None = None,
                 seen: dict[int, int] | None = None, relay: tuple[int, int] | None = None, pipe: int | None = None,
                 child: bool = True) -> None:
        self.id, self.pid, self.start, self.cgroup = cid, pid, start, cgroup
        self.seen: dict[int, int] = seen if seen is not None else {}
        self.relay, self.pipe, self.child = relay, pipe, child

    def to_dict(self) -> dict[str, Any]:
        return {"pid": self.pid, "start": self.start, "cgroup": self.cgroup,
                "seen": [[p, s] for p, s in self.seen.items()], "relay": list(self.relay) if self.relay else None,
                "pipe": self.pipe}

    @classmethod
    def from_dict(cls, cid: str, d: dict[str, Any]) -> Owned:
        seen = {int(p): int(s) for p, s in d.get("seen") or []}
        pid, start, relay = d.get("pid"), d.get("start"), d.get("relay")
        return cls(cid, int(pid) if pid else None, int(start) if start else None, d.get("cgroup") or None,
                   seen, (int(relay[0]), int(relay[1])) if relay else None, d.get("pipe"), child=False)

    def main_alive(self) -> bool:
        return self.pid is not None and self.start is not None and start_of(self.pid) == self.start

    def output_reaches_log(self) -> bool:
        """Its main process still writes into the pipe of a live relay (which writes the log)."""
        if self.relay is None or start_of(self.relay[0]) != self.relay[1] or self.pipe is None:
            return False
        return stdout_target(self.pid or 0) == f"pipe:[{self.pipe}]"


def members(owned: Owned, rows: dict[int, ProcRow] | None = None) -> list[int]:
    """Every live process of the component; records newly seen ones in `owned.seen`.

    With a cgroup: its members (and the main process, should it have escaped the move). Without:
    the main process, its session, the recorded members (same start time) and all their
    descendants started after the component was.
    """
    found: set[int] = set()
    if owned.main_alive():
        assert owned.pid is not None
        found.add(owned.pid)
    if owned.cgroup:
        found.update(cgroup_members(owned.cgroup))
        if found or os.path.isdir(owned.cgroup):
            for pid in found:
                if pid not in owned.seen and pid != owned.pid and (s := start_of(pid)) is not None:
                    owned.seen[pid] = s
            return sorted(found)
    rows = table() if rows is None else rows
    since = owned.start or 0
    for pid, s in list(owned.seen.items()):
        row = rows.get(pid)
        if row is not None and row[3] == s:
            found.add(pid)
        else:
            del owned.seen[pid]
    if owned.pid is not None:
        found.update(p for p, row in rows.items() if row[2] == owned.pid and row[3] >= since)
    kids: dict[int, list[int]] = {}
    for pid, row in rows.items():
        kids.setdefault(row[0], []).append(pid)
    todo = list(found)
    while todo:
        for kid in kids.get(todo.pop(), []):
            if kid not in found and rows[kid][3] >= since:
                found.add(kid)
                todo.append(kid)
    for pid in found:
        if pid != owned.pid:
            owned.seen.setdefault(pid, rows[pid][3])
    return sorted(found)


def signal_members(owned: Owned, signo: int, pids: Iterable[int] | None = None) -> int:
    """Sends signo to the component's session/group and to every member; returns how many got it."""
    pids = list(members(owned) if pids is None else pids)
    if signo == signal.SIGKILL and owned.cgroup:
        cgroup_kill(owned.cgroup)
    if owned.main_alive():
        try:
            os.killpg(owned.pid or 0, signo)
        except OSError:
            pass
    sent = 0
    for pid in pids:
        try:
            os.kill(pid, signo)
            if signo in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT):
                os.kill(pid, signal.SIGCONT)  # a stopped process must wake to act on it
            sent += 1
        except OSError:
            pass
    return sent
