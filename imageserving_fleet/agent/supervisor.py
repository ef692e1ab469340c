"""The Server Supervisor: one event loop that owns every component process of one home.

Single-threaded on purpose (only tcp/http probes use a small pool): signals arrive through a
wake-up socket, children are reaped with waitpid, the control socket and the children's output
pipes are multiplexed with selectors. When nothing is starting or stopping, it sleeps in select()
until something happens, so an idle supervisor costs no CPU.
"""

from __future__ import annotations

import json
import os
import selectors
import signal
import socket
import struct
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from .. import __version__
from ..units import format_size
from . import procs, readiness
from .config import AgentConfig, ComponentConfig
from .home import Home
from .logfiles import EventLog, LogFile
from .operations import Operation
from .states import (
    ACTIVE,
    Event,
    Exited,
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

MAX_REQUEST = 64 * 1024      # one control request line; more is refused (and the peer dropped)
CLIENT_IDLE = 5.0            # seconds a control client may take to send its request
BUSY_TICK = 0.05             # loop period while something is starting or stopping
MEMORY_EVERY = 2.0           # seconds between max_memory checks
MEMORY_STRIKES = 3           # consecutive checks above max_memory before a restart
COMMAND_PROBE_TIMEOUT = 10.0
_SO_PEERCRED = getattr(socket, "SO_PEERCRED", 17)


@dataclass
class Client:
    """One control connection: a request line in, one reply line out, then closed."""

    sock: socket.socket
    deadline: float
    buf: bytearray = field(default_factory=bytearray)
    op: Operation | None = None
    reply: Callable[[], dict[str, Any]] | None = None


class Supervisor:
    """Runs the components of one configuration under one home until told to shut down."""

    def __init__(self, config: AgentConfig, home: Home, listener: socket.socket) -> None:
        self.cfg, self.home, self.listener = config, home, listener
        self.procs: dict[str, Proc] = {c.id: Proc() for c in config.components}
        self.children: dict[str, procs.Child] = {}        # live main process by component
        self.pgids: dict[str, int] = {}                   # group of the last process, until gone
        self.by_pid: dict[int, str] = {}
        self.outputs: dict[int, str] = {}                 # output pipe fd -> component
        self.logs = {c.id: LogFile(home.log(c.id), config.log_max_bytes, config.log_backups)
                     for c in config.components}
        self.events = EventLog(home.log("Supervisor"), config.log_max_bytes, config.log_backups)
        self.probes: dict[str, readiness.Probe | tuple[int, float]] = {}
        self.next_probe: dict[str, float] = {}
        self.mem_strikes: dict[str, int] = {}
        self.next_memory = 0.0
        self.ops: list[tuple[Operation, Client | None]] = []
        self.clients: dict[int, Client] = {}
        self.started = time.monotonic()
        self.exit_after: bool = False
        self.sel = selectors.DefaultSelector()
        self.wake_r, self.wake_w = socket.socketpair()

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
        self.listener.setblocking(False)
        self.sel.register(self.listener, selectors.EVENT_READ, "listen")
        procs.become_subreaper()
        self.events.line(f"supervisor {__version__} pid {os.getpid()} started with {self.cfg.path}")
        if autostart:
            self.begin(Operation("start", self.cfg.priorities(), time.monotonic()), None)
        while True:
            for key, _ in self.sel.select(self.timeout()):
                if key.data == "wake":
                    self.on_signals()
                elif key.data == "listen":
                    self.accept()
                elif isinstance(key.data, tuple) and key.data[0] == "client":
                    self.on_client(key.data[1])
                else:
                    self.on_output(key.data[1])
            self.reap()
            self.turn()
            if self.exit_after and not self.ops:
                break
        self.events.line(f"supervisor pid {os.getpid()} exiting")

    def turn(self) -> None:
        """Everything time-driven: probes, timers, memory, stop detection, operations, idle clients."""
        now = time.monotonic()
        self.poll_probes(now)
        for cid in self.procs:
            self.feed(cid, Tick())
            if self.procs[cid].state == State.STOPPING and self.procs[cid].pid is None:
                if not self.tree_alive(cid):
                    self.feed(cid, TreeGone())
        if now >= self.next_memory and any(c.max_memory for c in self.cfg.components):
            self.check_memory()
            self.next_memory = now + MEMORY_EVERY
        self.progress_ops()
        for fd, client in list(self.clients.items()):
            if client.op is None and now > client.deadline:
                self.drop(fd, {"status": "error", "reason": "request not received in time"})

    def timeout(self) -> float | None:
        """How long select() may sleep: briefly while anything moves, else until the next timer."""
        if any(p.state in (State.STARTING, State.STOPPING) for p in self.procs.values()) or self.probes:
            return BUSY_TICK
        now = time.monotonic()
        times = [t for cid, p in self.procs.items()
                 if (t := next_deadline(p, self.cfg.component(cid))) is not None]
        if any(c.max_memory for c in self.cfg.components):
            times.append(self.next_memory)
        times += [c.deadline for c in self.clients.values() if c.op is None]
        if self.exit_after:
            times.append(now)
        return max(0.0, min(times) - now) if times else None

    # ------------------------------------------------------- state machine
    def feed(self, cid: str, ev: Event) -> None:
        """Applies one event to a component and carries out the resulting actions."""
        comp = self.cfg.component(cid)
        old = self.procs[cid]
        new, actions = step(old, comp, ev, time.monotonic())
        self.procs[cid] = new
        if new.state != old.state:
            extra = f" pid {new.pid or old.pid}" if (new.pid or old.pid) else ""
            why = f": {new.message}" if new.message else ""
            self.events.line(f"{cid} {old.state} -> {new.state}{extra}{why}")
        for action in actions:
            if isinstance(action, Spawn):
                self.spawn(comp)
            elif isinstance(action, Signal):
                self.signal(cid, action.signo)
            elif isinstance(action, KillTree):
                self.kill_tree(cid)

    def spawn(self, comp: ComponentConfig) -> None:
        try:
            child = procs.spawn(comp, self.home.marker)
        except (OSError, subprocess.SubprocessError, KeyError, ValueError) as exc:
            self.feed(comp.id, SpawnFailed(_oserror(exc)))
            return
        self.children[comp.id] = child
        self.pgids[comp.id] = child.pid
        self.by_pid[child.pid] = comp.id
        self.outputs[child.output_fd] = comp.id
        self.sel.register(child.output_fd, selectors.EVENT_READ, ("output", child.output_fd))
        procs.save_children(self.home.children_file, self.children.values())
        self.next_probe[comp.id] = time.monotonic()
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
        """Collects every ended child: components, probes and orphans reparented to us."""
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
            for probe_cid, probe in list(self.probes.items()):
                if isinstance(probe, tuple) and probe[0] == pid:
                    del self.probes[probe_cid]
                    if os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0:
                        self.feed(probe_cid, ReadyOk())

    # --------------------------------------------------------------- probes
    def poll_probes(self, now: float) -> None:
        for cid, p in self.procs.items():
            probe = self.probes.get(cid)
            if isinstance(probe, readiness.Probe) and probe.done:
                del self.probes[cid]
                if probe.ok and self.procs[cid].state == State.STARTING:
                    self.feed(cid, ReadyOk())
            elif isinstance(probe, tuple) and now - probe[1] > COMMAND_PROBE_TIMEOUT:
                try:
                    os.killpg(probe[0], signal.SIGKILL)  # a hung check must not hang the start
                except OSError:
                    pass
            comp = self.cfg.component(cid)
            if (p.state != State.STARTING or p.pid is None or p.ready_ok or comp.ready is None
                    or cid in self.probes or now < self.next_probe.get(cid, 0.0)):
                continue
            self.next_probe[cid] = now + readiness.INTERVAL
            if comp.ready.kind == "command":
                try:
                    proc = subprocess.Popen(list(comp.ready.argv), stdin=subprocess.DEVNULL,
                                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                            start_new_session=True, cwd=comp.cwd or None)
                    proc.returncode = 0  # reaped by reap(), not by Popen
                    self.probes[cid] = (proc.pid, now)
                except OSError:
                    pass
            else:
                self.probes[cid] = readiness.Probe(comp.ready)

    def check_memory(self) -> None:
        for comp in self.cfg.components:
            p = self.procs[comp.id]
            if not comp.max_memory or p.state != State.RUNNING:
                continue
            rss = procs.tree_rss(p.pid) or 0
            strikes = self.mem_strikes.get(comp.id, 0) + 1 if rss > comp.max_memory else 0
            self.mem_strikes[comp.id] = strikes
            if strikes >= MEMORY_STRIKES:
                self.mem_strikes[comp.id] = 0
                self.feed(comp.id, Restart(
                    f"restarted: memory {format_size(rss)} stayed above max_memory {format_size(comp.max_memory)}"))

    # ----------------------------------------------------------- operations
    def begin(self, op: Operation, client: Client | None) -> None:
        if op.kind == "stop":  # a stop overrides any start or restart in flight
            for other, other_client in self.ops:
                if other.kind != "stop" and other_client is not None:
                    self.drop(other_client.sock.fileno(),
                              {"status": "error", "reason": "interrupted by a stop", "code": 1})
            self.ops = [(o, c) for o, c in self.ops if o.kind == "stop"]
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
                    self.feed(cid, Stop())
                for cid in prog.restart:
                    self.feed(cid, Restart())
                if prog.done or not (prog.start or prog.stop or prog.restart):
                    break
            if not prog.done:
                continue
            self.ops.remove((op, client))
            for cid in prog.not_started:
                self.events.line(f"{cid} not started: {', '.join(prog.failed)} failed")
            reply: dict[str, Any] = {"status": "ok"}
            if prog.failed:
                reply = {"status": "error", "code": 1, "failed": prog.failed,
                         "reason": self.failure_text(op.kind, prog.failed, prog.not_started)}
            if op.shutdown:
                self.exit_after = True
            if client is not None:
                reply["result"] = self.status_doc(None)
                self.drop(client.sock.fileno(), reply)

    def failure_text(self, kind: str, failed: list[str], not_started: list[str]) -> str:
        verb = "stop" if kind == "stop" else "start"
        parts = [f"{cid} failed to {verb} ({self.procs[cid].state}: {self.procs[cid].message or 'no message'});"
                 f" see {self.home.log(cid)}" for cid in failed]
        if not_started:
            parts.append(f"not started because of it: {', '.join(not_started)}")
        return "; ".join(parts)

    # ----------------------------------------------------------------- status
    def status_doc(self, ids: list[str] | None) -> dict[str, Any]:
        now = time.monotonic()
        comps = []
        for comp in self.cfg.components:
            if ids and comp.id not in ids:
                continue
            p = self.procs[comp.id]
            since = p.running_since if p.state == State.RUNNING else (
                p.spawned_at if p.state in ACTIVE and p.pid else None)
            comps.append({
                "id": comp.id, "description": comp.description, "state": str(p.state), "pid": p.pid,
                "uptime_s": round(now - since, 1) if since is not None else None,
                "rss_bytes": procs.tree_rss(p.pid) if p.pid else None,
                "restarts": p.restarts, "last_exit": p.last_exit, "message": p.message,
            })
        return {
            "schema": 1, "host": socket.gethostname(), "agent_version": __version__,
            "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "supervisor": {"state": "RUNNING", "pid": os.getpid(), "uptime_s": round(now - self.started, 1),
                           "rss_bytes": procs.self_rss(), "socket": self.home.socket},
            "components": comps, "message": "",
        }

    # ------------------------------------------------------ control socket
    def accept(self) -> None:
        while True:
            try:
                sock, _ = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return  # e.g. EMFILE: the client retries; we must not die
            creds = sock.getsockopt(socket.SOL_SOCKET, _SO_PEERCRED, struct.calcsize("3i"))
            _, uid, _ = struct.unpack("3i", creds)
            if uid not in (os.geteuid(), 0):
                self.events.line(f"refused a control connection from uid {uid}")
                _send(sock, {"status": "error", "reason": "permission denied: not the supervisor's user", "code": 4})
                sock.close()
                continue
            sock.setblocking(False)
            client = Client(sock, time.monotonic() + CLIENT_IDLE)
            self.clients[sock.fileno()] = client
            self.sel.register(sock, selectors.EVENT_READ, ("client", sock.fileno()))

    def on_client(self, fd: int) -> None:
        client = self.clients.get(fd)
        if client is None:
            return
        try:
            data = client.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self.drop(fd, None)
            return
        if client.op is not None:
            return  # one request per connection: ignore anything after it
        client.buf += data
        if b"\n" not in client.buf:
            if len(client.buf) > MAX_REQUEST:
                self.drop(fd, {"status": "error", "reason": f"request larger than {MAX_REQUEST} bytes", "code": 2})
            return
        line = bytes(client.buf.split(b"\n", 1)[0])
        try:
            req = json.loads(line)
            if not isinstance(req, dict):
                raise ValueError("not an object")
            reply = self.handle(req, client)
        except (ValueError, TypeError, KeyError) as exc:
            reply = {"status": "error", "reason": f"bad request: {exc}", "code": 2}
        except RecursionError:  # `[[[[…` a few thousand deep: json.loads recurses per level
            reply = {"status": "error", "reason": "bad request: nested too deeply", "code": 2}
        if reply is not None:
            self.drop(fd, reply)

    def handle(self, req: dict[str, Any], client: Client) -> dict[str, Any] | None:
        """Answers at once (returns the reply) or starts an operation that answers later (None)."""
        cmd = req.get("cmd")
        ids = req.get("ids") or []
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            raise ValueError("ids must be a list of component ids")
        unknown = [i for i in ids if i not in self.procs]
        if unknown:
            return {"status": "error", "code": 2,
                    "reason": f"unknown component {unknown[0]!r}; valid ids: {', '.join(self.procs)}"}
        now = time.monotonic()
        if cmd == "ping":
            return {"status": "ok", "pid": os.getpid(), "version": __version__}
        if cmd == "status":
            return {"status": "ok", "result": self.status_doc(ids)}
        if cmd == "start":
            for i, (op, owner) in enumerate(self.ops):
                if not ids and op.kind == "start" and owner is None:
                    # `imageserving start` launches us (we start everything at once) and then asks
                    # for a start: answer it when that first start ends instead of starting twice,
                    # which would reset a BACKOFF component's retries and skip its backoff.
                    client.op, self.ops[i] = op, (op, client)
                    return None
            groups = [[c for c in g if not ids or c in ids] for g in self.cfg.priorities()]
            self.begin(Operation("start", [g for g in groups if g], now), client)
            return None
        if cmd == "stop":
            groups = [[c for c in g if not ids or c in ids] for g in reversed(self.cfg.priorities())]
            self.begin(Operation("stop", [g for g in groups if g], now, shutdown=bool(req.get("shutdown"))), client)
            return None
        if cmd == "restart":
            if not ids:
                raise ValueError("restart needs component ids (a full restart replaces the supervisor)")
            self.begin(Operation("restart", [ids], now), client)
            return None
        raise ValueError(f"unknown command {cmd!r}")

    def drop(self, fd: int, reply: dict[str, Any] | None) -> None:
        client = self.clients.pop(fd, None)
        if client is None:
            return
        try:
            self.sel.unregister(client.sock)
        except (KeyError, ValueError):
            pass
        if reply is not None:
            _send(client.sock, reply)
        client.sock.close()

    # ----------------------------------------------------- output and signals
    def on_output(self, fd: int) -> None:
        cid = self.outputs.get(fd)
        try:
            data = os.read(fd, 65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if data and cid is not None:
            self.logs[cid].write(data)
            return
        self.sel.unregister(fd)
        self.outputs.pop(fd, None)
        os.close(fd)

    def on_signals(self) -> None:
        try:
            data = self.wake_r.recv(4096)
        except BlockingIOError:
            return
        for signo in set(data):
            if signo in (signal.SIGTERM, signal.SIGINT) and not self.exit_after:
                self.events.line(f"received {signal.Signals(signo).name}: stopping everything")
                groups = list(reversed(self.cfg.priorities()))
                self.begin(Operation("stop", groups, time.monotonic(), shutdown=True), None)
            elif signo == signal.SIGHUP:
                for log in (*self.logs.values(), self.events):
                    log.reopen()
                self.events.line("received SIGHUP: reopened log files")  # the first line of the new file


def _send(sock: socket.socket, reply: dict[str, Any]) -> None:
    try:
        sock.setblocking(True)
        sock.settimeout(1.0)  # a client that does not read its reply is not our problem
        sock.sendall(json.dumps(reply).encode() + b"\n")
    except OSError:
        pass


def _oserror(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.strerror}: {exc.filename}" if exc.filename else exc.strerror
    return str(exc)
