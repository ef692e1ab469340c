"""The executor: carries out the state machine's actions on processes, through ProcessOps only.

Spawn (once the last process's tree is gone: a SIGKILL is never waited for inside the loop),
signal, kill, find (the same set for stop, clean-up and memory), reap children, watch adopted
main processes with pidfds, record orphans, and keep the state file current. A mixin of
Supervisor, which owns the loop; tests drive it with a fake ProcessOps (tests/agent/test_executor.py).
"""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import time

from ..home import HOME_ENV, Home
from . import ownership, statefile
from .adoption import component_digest
from .config import AgentConfig, ComponentConfig
from .logfiles import EventLog
from .memory import Memory, MemorySampler
from .notifier import Notifier
from .ownership import Owned
from .processes import ProcessOps
from .procs import TAG, describe_status, tag_value
from .readiness import Checks
from .states import Event, Exited, Proc, Spawned, SpawnFailed, State, to_record

HOUSEKEEPING_EVERY = 5.0     # seconds between looks for orphans reparented to us (without a cgroup)
SPAWN_WAIT = 5.0             # at most this long a respawn waits for the last process's tree to be gone
UNKNOWN_EXIT = "exit status unknown (not a child of this supervisor)"


class Executor:
    """The process side of a Supervisor (whose __init__ sets these attributes)."""

    cfg: AgentConfig
    home: Home
    ops: ProcessOps
    comps: dict[str, ComponentConfig]
    procs: dict[str, Proc]
    owned: dict[str, Owned]
    by_pid: dict[int, str]
    watches: dict[int, tuple[str, int]]
    pending_spawn: dict[str, float]
    handed_over: bool
    next_housekeeping: float
    checks: Checks
    events: EventLog
    sel: selectors.BaseSelector
    sampler: MemorySampler
    notifier: Notifier

    def feed(self, cid: str, ev: Event) -> None:
        raise NotImplementedError

    def spawn(self, comp: ComponentConfig, waited: float = 0.0) -> None:
        """Starts the component, once the tree of its last process is gone (SIGKILL is not instant)."""
        if self.procs[comp.id].state != State.STARTING or self.procs[comp.id].pid is not None:
            self.pending_spawn.pop(comp.id, None)
            return
        last = self.owned.get(comp.id)
        if last is not None and waited < SPAWN_WAIT and self.ops.members(last):
            self.pending_spawn.setdefault(comp.id, time.monotonic())
            return
        self.pending_spawn.pop(comp.id, None)
        # Every component learns the home, so it can write its own logs under <home>/logs (the `logs:` key's root).
        env = {**os.environ, HOME_ENV: self.home.root, **comp.env, TAG: tag_value(self.home.marker, comp.id)}
        try:
            owned = self.ops.spawn(comp, (self.home.log(comp.id), self.cfg.log_max_bytes, self.cfg.log_backups), env)
        except (OSError, subprocess.SubprocessError, KeyError, ValueError) as exc:
            self.feed(comp.id, SpawnFailed(_oserror(exc)))
            return
        assert owned.pid is not None
        self.owned[comp.id] = owned
        self.by_pid[owned.pid] = comp.id
        self.checks.spawned(comp.id, time.monotonic())
        self.feed(comp.id, Spawned(owned.pid))
        self.save_state()

    def adopt_main(self, cid: str, pid: int) -> None:
        """Watches a main process we did not start (a predecessor did): a pidfd tells when it ends."""
        self.by_pid[pid] = cid
        fd = self.ops.watch(pid)
        if fd is None or not self.owned[cid].main_alive():
            self.by_pid.pop(pid, None)
            if fd is not None:
                os.close(fd)
            self.feed(cid, Exited(pid, UNKNOWN_EXIT, False))
            return
        self.watches[fd] = (cid, pid)
        self.sel.register(fd, selectors.EVENT_READ, ("pidfd", fd))

    def on_pidfd(self, fd: int) -> None:
        cid, pid = self.watches.pop(fd)
        self.sel.unregister(fd)
        os.close(fd)
        if self.by_pid.get(pid) == cid:
            del self.by_pid[pid]
            self.feed(cid, Exited(pid, UNKNOWN_EXIT, False))

    def signal(self, cid: str, signo: int) -> None:
        owned = self.owned.get(cid)
        if owned is not None:
            self.ops.signal(owned, signo)

    def kill_tree(self, cid: str) -> None:
        """SIGKILL everything of the component; its end is seen by tree_alive on later turns, never waited for here."""
        self.signal(cid, signal.SIGKILL)

    def tree_alive(self, cid: str) -> bool:
        owned = self.owned.get(cid)
        if owned is None:
            return False
        if self.ops.members(owned):
            return True
        if self.procs[cid].state != State.STARTING:
            self.ops.release(owned)
        return False

    def reap(self) -> None:
        """Collects every ended child: components, command checks and orphans reparented to us."""
        for pid, status in self.ops.reap():
            cid = self.by_pid.pop(pid, None)
            if cid is not None:
                how, clean = describe_status(status)
                self.feed(cid, Exited(pid, how, clean))
                continue
            self.checks.reaped(pid, status)  # or a log relay that ended
            self.notifier.reaped(pid, status)

    def save_state(self) -> None:
        """Rewrites the state file: what we own and every record, for a successor or after our death."""
        if self.handed_over:
            return
        comps = {}
        for cid, p in self.procs.items():
            comp, owned = self.comps[cid], self.owned.get(cid)
            comps[cid] = {**(owned.to_dict() if owned else {}), "log": self.home.log(cid),
                          "digest": component_digest(comp), "stop_signal": int(comp.stop_signal),
                          "stop_timeout": comp.stop_timeout, "priority": comp.start_priority, "proc": to_record(p)}
        statefile.State.save(self.home.children_file, {
            "supervisor": {"pid": os.getpid(), "start": ownership.start_of(os.getpid())}, "components": comps})

    def claim_orphans(self, now: float) -> None:
        """Without a cgroup: records the orphans reparented to us (double fork, setsid) with their start times."""
        self.next_housekeeping = now + HOUSEKEEPING_EVERY
        relays = {o.relay[0] for o in self.owned.values() if o.relay}  # our children too, no component's
        changed = self.ops.claim_orphans(self.owned.values(), set(self.by_pid) | self.checks.pids() | relays)
        for owned in changed:
            self.events.line(f"{owned.id}: recorded orphan(s) {sorted(owned.seen)} reparented to the supervisor")
        if changed:
            self.save_state()

    def memory(self, cid: str, now: float) -> Memory | None:
        """Sampled resident bytes of the component's processes (the same set stop and clean-up use)."""
        owned = self.owned.get(cid)
        if owned is None:
            return None
        return self.sampler.memory(cid, self.procs[cid].pid, now, lambda _pid: self.ops.measure(owned))


def _oserror(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.strerror}: {exc.filename}" if exc.filename else exc.strerror
    return str(exc)
