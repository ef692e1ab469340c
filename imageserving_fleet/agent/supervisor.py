"""The Server Supervisor: one event loop that owns every component process of one home.

Single-threaded on purpose (only tcp/http checks run in short-lived threads, which wake the loop
when done): signals arrive through a wake-up socket, children are reaped with waitpid, the control
socket (server.py) and the children's output pipes are multiplexed with selectors. When nothing is
starting or stopping, it sleeps in select() until the next timer (a backoff, a health check) or
event, so an idle supervisor costs no CPU. The rules live in states.py, operations.py and
reload.py; this module carries out what they decide.
"""

from __future__ import annotations

import os
import selectors
import signal
import socket
import subprocess
import time
from dataclasses import replace
from typing import Any

from .. import __version__
from ..home import HOME_ENV, Home
from ..protocol import FAILED, error, ok
from ..units import format_size
from . import commands, memory, notify, procs, readiness, statusdoc
from .config import AgentConfig, ComponentConfig, digest
from .logfiles import EventLog, LogFile
from .notifier import Notifier
from .operations import SETTLED_DOWN, Operation
from .reload import Reload, diff
from .server import Client, ControlServer
from .states import (
    Event,
    Exited,
    HealthFailed,
    HealthOk,
    KillTree,
    Proc,
    ReadyOk,
    Restart,
    Signal,
    Spawn,
    Spawned,
    SpawnFailed,
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


class Supervisor:
    """Runs the components of one configuration under one home until told to shut down."""

    def __init__(self, config: AgentConfig, home: Home, listener: socket.socket) -> None:
        self.cfg, self.home = config, home
        self.comps: dict[str, ComponentConfig] = {c.id: c for c in config.components}  # + those being removed
        self.digest = digest(config)
        self.procs: dict[str, Proc] = {c.id: Proc() for c in config.components}
        self.children: dict[str, procs.Child] = {}        # live main process by component
        self.pgids: dict[str, int] = {}                   # group of the last process, until gone
        self.by_pid: dict[int, str] = {}
        self.outputs: dict[int, str] = {}                 # output pipe fd -> component
        self.logs = {c.id: LogFile(home.log(c.id), config.log_max_bytes, config.log_backups)
                     for c in config.components}
        self.events = EventLog(home.supervisor_log, config.log_max_bytes, config.log_backups)
        self.checks = readiness.Checks(wake=self.wake)
        self.sampler = memory.MemorySampler()
        self.mem_strikes: dict[str, int] = {}
        self.next_memory = 0.0
        self.ops: list[tuple[AnyOp, Client | None]] = []
        self.reloads: list[tuple[AgentConfig, Client]] = []   # queued behind the reload in flight
        self.started = time.monotonic()
        self.exit_after: bool = False
        self.sel = selectors.DefaultSelector()
        self.wake_r, self.wake_w = socket.socketpair()
        self.server = ControlServer(listener, self.sel, self.events,
                                    lambda req, client: commands.dispatch(self, req, client))
        self.notifier = Notifier(config.notify, socket.gethostname(), wake=self.wake)   # supervisor.notify
        self.tracker = notify.EventTracker()

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
        self.events.line(f"supervisor {__version__} pid {os.getpid()} started with {self.cfg.path}")
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
                else:
                    self.on_output(key.data[1])
            self.reap()
            self.turn()
            if self.exit_after and not self.ops:
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
        if now >= self.next_memory and any(c.max_memory for c in self.comps.values()):
            self.check_memory(now)
            self.next_memory = now + MEMORY_EVERY
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

    def spawn(self, comp: ComponentConfig) -> None:
        # Every component learns the home, so it can write its own logs under <home>/logs (the `logs:` key's root).
        env = {HOME_ENV: self.home.root, **comp.env}
        try:
            child = procs.spawn(replace(comp, env=env), self.home.marker)
        except (OSError, subprocess.SubprocessError, KeyError, ValueError) as exc:
            self.feed(comp.id, SpawnFailed(_oserror(exc)))
            return
        self.children[comp.id] = child
        self.pgids[comp.id] = child.pid
        self.by_pid[child.pid] = comp.id
        self.outputs[child.output_fd] = comp.id
        self.sel.register(child.output_fd, selectors.EVENT_READ, ("output", child.output_fd))
        procs.save_children(self.home.children_file, self.children.values())
        self.checks.spawned(comp.id, time.monotonic())
        self.feed(comp.id, Spawned(child.pid))

    def signal(self, cid: str, signo: int) -> None:
        child = self.children.get(cid)
        tree = procs.tree(child.pid if child else None, self.home.marker, cid)
        procs.signal_all(tree, self.pgids.get(cid), signo)

    def kill_tree(self, cid: str) -> None:
        """SIGKILL everything of the component and wait (briefly) until it is gone: ports are freed."""
        child = self.children.get(cid)
        tree = procs.tree(child.pid if child else None, self.home.marker, cid)
        procs.signal_all(tree, self.pgids.get(cid), signal.SIGKILL)
        end = time.monotonic() + 1.0
        while time.monotonic() < end and self.tree_alive(cid, scan=False):
            self.reap()
            time.sleep(0.005)

    def tree_alive(self, cid: str, scan: bool = True) -> bool:
        pgid = self.pgids.get(cid)
        if pgid is not None and procs.group_alive(pgid):
            return True
        child = self.children.get(cid)
        if child is not None and self.procs[cid].pid is not None:
            return True
        if scan and procs.tagged(self.home.marker, cid):
            return True
        return False

    def reap(self) -> None:
        """Collects every ended child: components, command checks and orphans reparented to us."""
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            cid = self.by_pid.pop(pid, None)
            if cid is not None:
                self.children.pop(cid, None)
                how, clean = procs.describe_status(status)
                self.feed(cid, Exited(pid, how, clean))
                continue
            self.checks.reaped(pid, status)
            self.notifier.reaped(pid, status)

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
            mem = self.sampler.memory(cid, p.pid, now)
            strikes = self.mem_strikes.get(cid, 0) + 1 if memory.over_limit(mem, comp.max_memory) else 0
            self.mem_strikes[cid] = strikes
            if strikes >= MEMORY_STRIKES and mem is not None:
                self.mem_strikes[cid] = 0
                self.feed(cid, Restart("max_memory", f"restarted: memory {format_size(mem.effective)} stayed above "
                                                     f"max_memory {format_size(comp.max_memory)}"))

    # ----------------------------------------------------------- operations
    def begin(self, op: AnyOp, client: Client | None) -> None:
        if op.kind == "stop":  # a stop overrides any start, restart or reload in flight
            for other, other_client in self.ops:
                if other.kind != "stop" and other_client is not None:
                    self.server.answer(other_client, error(FAILED, "interrupted by a stop"))
            self.ops = [(o, c) for o, c in self.ops if o.kind == "stop"]
            for _, waiting in self.reloads:
                self.server.answer(waiting, error(FAILED, "interrupted by a stop"))
            self.reloads = []
        if client is not None:
            client.op = op
        self.ops.append((op, client))
        self.progress_ops()

    def progress_ops(self) -> None:
        for op, client in list(self.ops):
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
            self.ops.remove((op, client))
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
        if self.reloads and not any(isinstance(o, Reload) for o, _ in self.ops):
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
                self.logs[comp.id] = LogFile(self.home.log(comp.id), new.log_max_bytes, new.log_backups)
        for log in (*self.logs.values(), self.events):
            log.max_bytes, log.backups = new.log_max_bytes, new.log_backups
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
                self.logs.pop(cid).close()
                self.sampler.forget(cid)
                self.checks.forget(cid)
                self.tracker.forget(cid)

    # ----------------------------------------------------------------- status
    def status_doc(self, ids: list[str] | None) -> dict[str, Any]:
        now = time.monotonic()
        order = [*self.cfg.ids, *(c for c in self.procs if c not in self.cfg.ids)]
        comps = [statusdoc.component_status(self.comps[cid], self.procs[cid],
                                            self.sampler.memory(cid, self.procs[cid].pid, now), now)
                 for cid in order if not ids or cid in ids]
        doc = statusdoc.status_doc(comps, started=self.started, now=now,
                                   memory=self.sampler.memory(SELF, os.getpid(), now, memory.self_memory),
                                   socket_path=self.home.socket, config_digest=self.digest)
        return doc.to_dict()

    # ----------------------------------------------------- output and signals
    def on_output(self, fd: int) -> None:
        cid = self.outputs.get(fd)
        try:
            data = os.read(fd, 65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if data and cid is not None and cid in self.logs:
            self.logs[cid].write(data)
            return
        if data:
            return
        self.sel.unregister(fd)
        self.outputs.pop(fd, None)
        os.close(fd)

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
                for log in (*self.logs.values(), self.events):
                    log.reopen()
                self.events.line("received SIGHUP: reopened log files")  # the first line of the new file


def _oserror(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.strerror}: {exc.filename}" if exc.filename else exc.strerror
    return str(exc)
