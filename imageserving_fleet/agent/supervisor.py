"""The Server Supervisor: one event loop that owns every component process of one home.

Single-threaded on purpose (only tcp/http checks run in short-lived threads, which wake the loop
when done): signals arrive through a wake-up socket, children are reaped with waitpid, the control
socket (server.py) and pidfds of adopted processes are multiplexed with selectors; each component's
output goes through its own log relay (relay.py), never through us. When nothing is
starting or stopping, it sleeps in select() until the next timer (a backoff, a health check) or
event, so an idle supervisor costs no CPU. The rules live in states.py, operations.py and
reload.py; this module carries out what they decide.
"""

from __future__ import annotations

import os
import selectors
import signal
import socket
import time
from typing import Any

from .. import __version__
from ..home import Home
from ..protocol import FAILED, error, ok
from ..units import format_size
from . import commands, memory, notify, ownership, procs, readiness, statusdoc
from .config import AgentConfig, ComponentConfig, digest
from .executor import Executor
from .logfiles import EventLog
from .notifier import Notifier
from .operations import SETTLED_DOWN, Operation
from .ownership import Owned
from .processes import OsProcesses, ProcessOps
from .reload import Reload, diff
from .server import Client, ControlServer
from .states import (
    Event,
    HealthFailed,
    HealthOk,
    KillTree,
    Proc,
    ReadyOk,
    Restart,
    Signal,
    Spawn,
    Start,
    State,
    Stop,
    Tick,
    TreeGone,
    next_deadline,
    step,
)

BUSY_TICK = 0.05             # loop period while something is starting or stopping
MEMORY_EVERY = 2.0           # seconds between max_memory checks
MEMORY_STRIKES = 3           # consecutive checks above max_memory before a restart
SELF = "supervisor"          # the sampler's key for our own memory, the notifications' component for reload
NOTIFY_FLUSH = 5.0           # seconds an exiting supervisor waits for queued notifications
AnyOp = Operation | Reload


class Supervisor(Executor):
    """Runs the components of one configuration under one home until told to shut down."""

    def __init__(self, config: AgentConfig, home: Home, listener: socket.socket, ops: ProcessOps | None = None,
                 adopted: dict[str, tuple[Owned, Proc]] | None = None) -> None:
        self.cfg, self.home = config, home
        self.ops: ProcessOps = ops if ops is not None else OsProcesses(home.root)
        self.comps: dict[str, ComponentConfig] = {c.id: c for c in config.components}  # + those being removed
        self.digest = digest(config)
        self.procs: dict[str, Proc] = {c.id: Proc() for c in config.components}
        self.owned: dict[str, Owned] = {}                 # what each component owns, until its tree is gone
        self.by_pid: dict[int, str] = {}                  # live main process -> component
        self.watches: dict[int, tuple[str, int]] = {}     # pidfd of an adopted main process -> (component, pid)
        self.pending_spawn: dict[str, float] = {}         # respawns waiting for the last tree to be gone
        self.handed_over = False                          # a successor took over: exit touching nothing
        self.inheritable: dict[str, int] = {}             # lock, listen, metrics fds a successor inherits
        self.next_housekeeping = 0.0
        self.events = EventLog(home.supervisor_log, config.log_max_bytes, config.log_backups)
        self.checks = readiness.Checks(wake=self.wake)
        self.sampler = memory.MemorySampler()
        self.mem_strikes: dict[str, int] = {}
        self.next_memory = 0.0
        self.operations: list[tuple[AnyOp, Client | None]] = []
        # The first start's reply when it ended before the launching client asked for it (a loaded
        # host): that client's `start` is answered with it instead of starting everything again.
        self.launch_reply: dict[str, Any] | None = None
        self.reloads: list[tuple[AgentConfig, Client]] = []   # queued behind the reload in flight
        self.started = time.monotonic()
        self.exit_after: bool = False
        self.sel = selectors.DefaultSelector()
        self.wake_r, self.wake_w = socket.socketpair()
        self.server = ControlServer(listener, self.sel, self.events,
                                    lambda req, client: commands.dispatch(self, req, client))
        self.notifier = Notifier(config.notify, socket.gethostname(), wake=self.wake)   # supervisor.notify
        self.tracker = notify.EventTracker()
        for cid, (owned, proc) in (adopted or {}).items():
            if cid in self.procs:
                self.procs[cid], self.owned[cid] = proc, owned
                if proc.pid is not None:
                    self.adopt_main(cid, proc.pid)

    # ----------------------------------------------------------------- loop
    def run(self, autostart: bool = True) -> None:
        """Serves until a shutdown operation completes (stop request, SIGTERM, SIGINT)."""
        for s in (self.wake_r, self.wake_w):
            s.setblocking(False)
        signal.set_wakeup_fd(self.wake_w.fileno(), warn_on_full_buffer=False)
        for signo in (signal.SIGCHLD, signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signo, lambda *_: None)  # the wake-up fd carries the signal number
        signal.signal(signal.SIGPIPE, signal.SIG_IGN)
        self.sel.register(self.wake_r, selectors.EVENT_READ, "wake")
        self.server.register()
        procs.become_subreaper()
        self.events.line(f"supervisor {__version__} pid {os.getpid()} started with {self.cfg.path}; "
                         f"ownership: {getattr(self.ops, 'describe', lambda: 'custom')()}")
        self.save_state()
        if autostart:
            self.begin(Operation("start", self.cfg.priorities(), time.monotonic()), None)
        while True:
            for key, _ in self.sel.select(self.timeout()):
                if key.data == "wake":
                    self.on_signals()
                elif key.data == "listen":
                    self.server.accept()
                elif isinstance(key.data, tuple) and key.data[0] == "client":
                    self.server.on_client(key.data[1])
                elif isinstance(key.data, tuple) and key.data[0] == "pidfd":
                    self.on_pidfd(key.data[1])
            if self.handed_over:
                return  # the successor owns every component now: reap, spawn and write nothing
            self.reap()
            self.turn()
            if self.exit_after and not self.operations:
                break
        if not self.notifier.idle(NOTIFY_FLUSH):
            self.events.line(f"notify: exiting with notifications unsent after {NOTIFY_FLUSH:g}s")
        for line in self.notifier.drain():
            self.events.line(line)
        self.events.line(f"supervisor pid {os.getpid()} exiting")

    def turn(self) -> None:
        """Everything time-driven: checks, timers, memory, stop detection, operations, idle clients."""
        now = time.monotonic()
        self.run_checks(now)
        for cid in list(self.procs):
            self.feed(cid, Tick())
            if self.procs[cid].state == State.STOPPING and self.procs[cid].pid is None:
                if not self.tree_alive(cid):
                    self.feed(cid, TreeGone())
        for cid, since in list(self.pending_spawn.items()):
            self.spawn(self.comps[cid], waited=now - since)
        if now >= self.next_memory and any(c.max_memory for c in self.comps.values()):
            self.check_memory(now)
            self.next_memory = now + MEMORY_EVERY
        starting = any(p.state == State.STARTING for p in self.procs.values())
        if not self.ops.cgroups and (now >= self.next_housekeeping or starting):
            self.claim_orphans(now)
        self.progress_ops()
        self.server.expire(now)
        for line in self.notifier.drain():  # the notify thread's failures, written by the loop alone
            self.events.line(line)

    def timeout(self) -> float | None:
        """How long select() may sleep: briefly while anything moves, else until the next timer."""
        if any(p.state in (State.STARTING, State.STOPPING) for p in self.procs.values()):
            return BUSY_TICK
        now = time.monotonic()
        times = [t for cid, p in self.procs.items() if (t := next_deadline(p, self.comps[cid])) is not None]
        times += self.checks.wakeups([cid for cid, p in self.procs.items()
                                      if p.state == State.RUNNING and self.comps[cid].health], now)
        if any(c.max_memory for c in self.comps.values()):
            times.append(self.next_memory)
        if (t := self.server.next_deadline()) is not None:
            times.append(t)
        if self.exit_after:
            times.append(now)
        if not self.ops.cgroups:
            times.append(self.next_housekeeping)
        return max(0.0, min(times) - now) if times else None

    # ------------------------------------------------------- state machine
    def feed(self, cid: str, ev: Event) -> None:
        """Applies one event to a component and carries out the resulting actions."""
        comp = self.comps[cid]
        old = self.procs[cid]
        new, actions = step(old, comp, ev, time.monotonic())
        self.procs[cid] = new
        if new.state != old.state:
            extra = f" pid {new.pid or old.pid}" if (new.pid or old.pid) else ""
            why = f": {new.message}" if new.message else ""
            self.events.line(f"{cid} {old.state} -> {new.state}{extra}{why}")
        for event in self.tracker.events(cid, old, new, ev):
            self.notifier.submit(cid, event, str(new.state), str(old.state), notify.message_of(new), new.restarts)
        for action in actions:
            if isinstance(action, Spawn):
                self.spawn(comp)
            elif isinstance(action, Signal):
                self.signal(cid, action.signo)
            elif isinstance(action, KillTree):
                self.kill_tree(cid)
        if new != old:
            self.save_state()

    # --------------------------------------------------------------- checks
    def run_checks(self, now: float) -> None:
        """Collects finished checks and starts due ones: readiness while STARTING, liveness while RUNNING."""
        for cid, purpose, pid, verdict in self.checks.finished(now):
            if cid not in self.procs or self.procs[cid].pid != pid:
                continue  # about a process that is gone: a stale answer
            if purpose == "ready":
                if verdict.ok and self.procs[cid].state == State.STARTING:
                    self.feed(cid, ReadyOk())
            else:
                self.feed(cid, HealthOk() if verdict.ok else HealthFailed(verdict.error))
        for cid, p in self.procs.items():
            comp = self.comps[cid]
            if p.pid is None:
                continue
            if p.state == State.STARTING and comp.ready is not None and not p.ready_ok:
                timeout = readiness.COMMAND_TIMEOUT if comp.ready.kind == "command" else readiness.PROBE_TIMEOUT
                self.checks.start_due(cid, "ready", comp.ready, timeout, readiness.INTERVAL, now, p.pid, comp.cwd)
            elif p.state == State.RUNNING and comp.health is not None:
                h = comp.health
                self.checks.start_due(cid, "health", h.check, h.timeout, h.interval, now, p.pid, comp.cwd)

    def wake(self) -> None:
        """Called from a check's thread: a zero byte on the wake-up socket (no signal is 0)."""
        try:
            self.wake_w.send(b"\0")
        except OSError:
            pass

    def check_memory(self, now: float) -> None:
        for cid, p in self.procs.items():
            comp = self.comps[cid]
            if not comp.max_memory or p.state != State.RUNNING:
                continue
            mem = self.memory(cid, now)
            strikes = self.mem_strikes.get(cid, 0) + 1 if memory.over_limit(mem, comp.max_memory) else 0
            self.mem_strikes[cid] = strikes
            if strikes >= MEMORY_STRIKES and mem is not None:
                self.mem_strikes[cid] = 0
                self.feed(cid, Restart("max_memory", f"restarted: memory {format_size(mem.effective)} stayed above "
                                                     f"max_memory {format_size(comp.max_memory)}"))

    # ----------------------------------------------------------- operations
    def begin(self, op: AnyOp, client: Client | None) -> None:
        if op.kind == "stop":  # a stop overrides any start, restart or reload in flight
            for other, other_client in self.operations:
                if other.kind != "stop" and other_client is not None:
                    self.server.answer(other_client, error(FAILED, "interrupted by a stop"))
            self.operations = [(o, c) for o, c in self.operations if o.kind == "stop"]
            for _, waiting in self.reloads:
                self.server.answer(waiting, error(FAILED, "interrupted by a stop"))
            self.reloads = []
        if client is not None:
            client.op = op
        self.operations.append((op, client))
        self.progress_ops()

    def progress_ops(self) -> None:
        for op, client in list(self.operations):
            while True:
                prog = op.advance(self.procs)
                for cid in prog.start:
                    self.feed(cid, Start())
                for cid in prog.stop:
                    self.feed(cid, Stop(hold=getattr(op, "hold", False)))
                for cid in prog.restart:
                    self.feed(cid, Restart(op.reason))
                if prog.done or not (prog.start or prog.stop or prog.restart):
                    break
            if not prog.done:
                continue
            self.operations.remove((op, client))
            for cid in prog.not_started:
                self.events.line(f"{cid} not started: {', '.join(prog.failed)} failed")
            reply = ok()
            if prog.failed:
                reply = error(FAILED, self.failure_text(op.kind, prog.failed, prog.not_started), failed=prog.failed)
            if isinstance(op, Reload):
                self.retire(op)
                reply.update(op.reply_fields())
            if op.shutdown:
                self.exit_after = True
            if client is not None:
                reply["result"] = self.status_doc(None)
                self.server.answer(client, reply)
            elif op.kind == "start" and not isinstance(op, Reload):
                self.launch_reply = reply  # the autostart, answered to no one yet
        if self.reloads and not any(isinstance(o, Reload) for o, _ in self.operations):
            config, client = self.reloads.pop(0)
            client.waiting = False
            self.apply_config(config, client)

    def failure_text(self, kind: str, failed: list[str], not_started: list[str]) -> str:
        verb = "stop" if kind == "stop" else "start"
        parts = [f"{cid} failed to {verb} ({self.procs[cid].state}: {self.procs[cid].message or 'no message'});"
                 f" see {self.home.log(cid)}" for cid in failed if cid in self.procs]
        if not_started:
            parts.append(f"not started because of it: {', '.join(not_started)}")
        return "; ".join(parts)

    # ---------------------------------------------------------------- reload
    def request_reload(self, config: AgentConfig, client: Client) -> None:
        """Queues a validated configuration; reloads run one at a time, in the order they came."""
        client.waiting = True
        self.reloads.append((config, client))
        self.progress_ops()

    def apply_config(self, new: AgentConfig, client: Client | None) -> None:
        """Takes a new configuration: settings apply at once, components through a Reload operation."""
        old, changes = self.cfg, diff(self.cfg, new)
        held = {cid for cid, p in self.procs.items() if p.held}
        self.cfg, self.digest = new, digest(new)
        for comp in new.components:
            self.comps[comp.id] = comp
            if comp.id in changes.added:
                self.procs[comp.id] = Proc()
        self.events.max_bytes, self.events.backups = new.log_max_bytes, new.log_backups
        summary = (f"reload from {new.path}: added {list(changes.added)}, removed {list(changes.removed)}, "
                   f"changed {list(changes.changed)}, unchanged {len(changes.unchanged)}")
        self.events.line(summary)
        self.notifier.configure(new.notify)
        self.notifier.submit(SELF, "reload", "RUNNING", "RUNNING", summary, 0)
        self.begin(Reload.plan(changes, old, new, held, time.monotonic()), client)

    def retire(self, op: Reload) -> None:
        """Forgets the removed components that are down (their whole tree is gone)."""
        for cid in op.changes.removed:
            if cid in self.procs and self.procs[cid].state in SETTLED_DOWN and cid not in self.cfg.ids:
                del self.procs[cid]
                self.comps.pop(cid, None)
                owned = self.owned.pop(cid, None)
                if owned is not None:
                    self.ops.release(owned)
                self.sampler.forget(cid)
                self.tracker.forget(cid)
                self.checks.forget(cid)

    # ----------------------------------------------------------------- status
    def status_doc(self, ids: list[str] | None) -> dict[str, Any]:
        now = time.monotonic()
        order = [*self.cfg.ids, *(c for c in self.procs if c not in self.cfg.ids)]
        comps = [statusdoc.component_status(self.comps[cid], self.procs[cid],
                                            self.memory(cid, now), now)
                 for cid in order if not ids or cid in ids]
        doc = statusdoc.status_doc(comps, started=self.started, now=now,
                                   memory=self.sampler.memory(SELF, os.getpid(), now, memory.self_memory),
                                   socket_path=self.home.socket, config_digest=self.digest)
        return doc.to_dict()

    # ----------------------------------------------------------------- signals
    def on_signals(self) -> None:
        try:
            data = self.wake_r.recv(4096)
        except BlockingIOError:
            return
        for signo in set(data) - {0}:  # 0: a check finished (see wake)
            if signo in (signal.SIGTERM, signal.SIGINT) and not self.exit_after:
                self.events.line(f"received {signal.Signals(signo).name}: stopping everything")
                groups = list(reversed(self.cfg.priorities()))
                self.begin(Operation("stop", groups, time.monotonic(), shutdown=True), None)
            elif signo == signal.SIGHUP:
                self.events.reopen()
                for owned in self.owned.values():  # each relay reopens its component's log
                    if owned.relay and ownership.start_of(owned.relay[0]) == owned.relay[1]:
                        os.kill(owned.relay[0], signal.SIGHUP)
                self.events.line("received SIGHUP: reopened log files")  # the first line of the new file
