"""The component state machine: a pure function of (record, config, event, monotonic time).

`step()` returns the new record and the actions the supervisor must carry out (spawn, signal,
kill); it never touches a process, a clock or a file, so every rule here is a table-driven test.

    STOPPED ──start──▶ STARTING ──ready ≥ start_delay──▶ RUNNING
       ▲                │  ▲  exit / ready_timeout          │ crash: at once if first or ran
       │                ▼  │                                ▼ ≥ reset_after, else BACKOFF
       │             BACKOFF ──start_retries failures──▶ FATAL (only start/restart clears it)
       └── STOPPING ◀──stop── STARTING | RUNNING        EXITED (clean exit, restart policy says so)
              │ ▲
              │ └── `failures` health checks in a row fail while RUNNING (liveness)
              ▼
        BACKOFF | FATAL | STARTING   by the crash rules; never healthy since its start counts as a failed start

A Stop(hold=True) (the operator's `stop ID`) holds the component down: only Start or Restart
clears `held`, so neither a reload nor a health check brings it back.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from ..componentstate import State
from .config import ComponentConfig

S = State
TRANSITIONS: dict[State, frozenset[State]] = {
    S.STOPPED: frozenset({S.STARTING}),
    S.STARTING: frozenset({S.RUNNING, S.BACKOFF, S.FATAL, S.STOPPING}),
    S.RUNNING: frozenset({S.STARTING, S.BACKOFF, S.STOPPING, S.EXITED}),
    S.BACKOFF: frozenset({S.STARTING, S.STOPPED}),
    S.STOPPING: frozenset({S.STOPPED, S.STARTING, S.BACKOFF, S.FATAL}),
    S.EXITED: frozenset({S.STARTING, S.STOPPED}),
    S.FATAL: frozenset({S.STARTING, S.STOPPED}),
}
ACTIVE = frozenset({S.STARTING, S.RUNNING, S.STOPPING})  # states in which processes may exist


# Events: what happened.
@dataclass(frozen=True)
class Start:
    """An operator (or the start sequence) asks for the component to run; clears FATAL."""


@dataclass(frozen=True)
class Stop:
    """An operator asks for the component to stop; with hold, it stays down until Start or Restart."""

    hold: bool = False


@dataclass(frozen=True)
class Restart:
    """Stop if running, then start again; counted as a restart. `reason` is the status's restart_reason."""

    reason: str = "operator"   # "operator" | "reload" | "max_memory"
    message: str = ""


@dataclass(frozen=True)
class Spawned:
    pid: int


@dataclass(frozen=True)
class SpawnFailed:
    error: str


@dataclass(frozen=True)
class Exited:
    """The component's main process ended; `how` reads like `exit 3` or `signal KILL`."""

    pid: int
    how: str
    clean: bool  # exit status 0


@dataclass(frozen=True)
class ReadyOk:
    """The readiness check passed once."""


@dataclass(frozen=True)
class HealthOk:
    """A liveness check passed."""


@dataclass(frozen=True)
class HealthFailed:
    """A liveness check failed (or timed out); `error` says how."""

    error: str


@dataclass(frozen=True)
class TreeGone:
    """While stopping: no process of the component's tree is left."""


@dataclass(frozen=True)
class Tick:
    """Time passed; timers (ready timeout, backoff, stop timeout) are checked against `now`."""


Event = Start | Stop | Restart | Spawned | SpawnFailed | Exited | ReadyOk | HealthOk | HealthFailed | TreeGone | Tick


# Actions: what the supervisor must do.
@dataclass(frozen=True)
class Spawn:
    pass


@dataclass(frozen=True)
class Signal:
    """Send the stop signal to the process group and every descendant."""

    signo: int


@dataclass(frozen=True)
class KillTree:
    """SIGKILL the group and every descendant, including those that left the group."""


Action = Spawn | Signal | KillTree

KILL_GRACE = 5.0  # seconds to wait for SIGKILLed processes to be reaped
HELD_MESSAGE = "stopped by operator"


@dataclass(frozen=True)
class Proc:
    """The supervisor's record of one component. Times are time.monotonic() seconds."""

    state: State = S.STOPPED
    pid: int | None = None
    spawned_at: float | None = None
    running_since: float | None = None
    deadline: float | None = None   # ready timeout, backoff end or stop timeout, by state
    ready_ok: bool = False
    fails: int = 0                  # consecutive failures to reach RUNNING
    level: int = 0                  # backoff level of quick crashes
    restarts: int = 0
    last_exit: str | None = None
    message: str = ""
    killed: bool = False            # SIGKILL already sent while stopping
    then_start: bool = False        # a restart: start again once stopped
    then_backoff: bool = False      # an unhealthy restart: once stopped, the crash rules decide
    held: bool = False              # the operator's `stop ID`: down until Start or Restart
    health: str | None = None       # None (no check) | "starting" | "healthy" | "unhealthy"
    health_failures: int = 0        # consecutive counted failures
    last_health_error: str | None = None
    healthy_once: bool = False      # a check passed since the last spawn
    restart_reason: str | None = None


def step(p: Proc, cfg: ComponentConfig, ev: Event, now: float) -> tuple[Proc, list[Action]]:
    """Takes a record, its config, an event and the monotonic time; returns the new record and actions."""
    new, actions = _step(p, cfg, ev, now)
    if new.state != p.state and new.state not in TRANSITIONS[p.state]:
        raise AssertionError(f"{cfg.id}: illegal transition {p.state} -> {new.state} on {ev}")
    return new, actions


def _step(p: Proc, cfg: ComponentConfig, ev: Event, now: float) -> tuple[Proc, list[Action]]:
    st = p.state
    if isinstance(ev, Start):
        if st in (S.STARTING, S.RUNNING):
            return p, []
        if st == S.STOPPING:
            return replace(p, then_start=True, then_backoff=False, held=False), []
        return _spawn(replace(p, fails=0, level=0, message="", held=False), cfg, now, counted=False)
    if isinstance(ev, Restart):
        p = replace(p, held=False, restart_reason=ev.reason)
        if st in (S.STARTING, S.RUNNING):
            return _stop(replace(p, then_start=True, then_backoff=False, message=ev.message), cfg, now)
        if st == S.STOPPING:
            return replace(p, then_start=True, then_backoff=False), []
        return _spawn(replace(p, fails=0, level=0, message=ev.message), cfg, now, counted=True)
    if isinstance(ev, Stop):
        held = p.held or ev.hold
        message = HELD_MESSAGE if held else ""
        if st in (S.STARTING, S.RUNNING):
            return _stop(replace(p, then_start=False, then_backoff=False, held=held, message=message), cfg, now)
        if st == S.STOPPING:
            return replace(p, then_start=False, then_backoff=False, held=held,
                           message=message or p.message), []
        if st in (S.BACKOFF, S.EXITED, S.FATAL):
            return replace(p, state=S.STOPPED, deadline=None, pid=None, held=held, message=message), []
        return (replace(p, held=True, message=HELD_MESSAGE), []) if held else (p, [])
    if isinstance(ev, Spawned):
        return (replace(p, pid=ev.pid), []) if st == S.STARTING else (p, [])
    if isinstance(ev, SpawnFailed):
        if st != S.STARTING:
            return p, []  # stale: the spawn it reports was already given up on
        return _failed(replace(p, pid=None, last_exit="spawn failed"), cfg, now, f"cannot start: {ev.error}")
    if isinstance(ev, Exited):
        if ev.pid != p.pid:
            return p, []  # a process we already gave up on (killed after a timeout)
        p = replace(p, pid=None, last_exit=ev.how)
        if st == S.STARTING:
            # A detaching wrapper may have left descendants behind: clean them up before retrying.
            p, acts = _failed(p, cfg, now, f"exited while starting ({ev.how})")
            return p, [KillTree(), *acts]
        if st == S.RUNNING:
            return _crashed(p, cfg, ev, now)
        return p, []  # STOPPING: wait for TreeGone
    if isinstance(ev, ReadyOk):
        if st != S.STARTING:
            return p, []
        return _maybe_running(replace(p, ready_ok=True), cfg, now)
    if isinstance(ev, HealthOk | HealthFailed):
        return _health(p, cfg, ev, now)
    if isinstance(ev, TreeGone):
        if st != S.STOPPING:
            return p, []
        stopped = replace(p, state=S.STOPPED, pid=None, deadline=None, killed=False)
        if p.then_backoff:
            return _after_unhealthy(replace(stopped, then_backoff=False), cfg, now)
        if p.then_start:
            return _spawn(replace(stopped, then_start=False, fails=0, level=0), cfg, now, counted=True)
        return stopped, []
    # Tick
    if st == S.STARTING:
        if p.pid is not None and cfg.ready is None:
            p = replace(p, ready_ok=True)  # no check: alive for start_delay is enough
        if p.deadline is not None and now >= p.deadline and not (p.ready_ok and _aged(p, cfg, now)):
            failed, acts = _failed(replace(p, pid=None), cfg, now,
                                   f"not ready after {cfg.ready_timeout:g}s"
                                   + (f" ({cfg.ready.describe()})" if cfg.ready else ""))
            return failed, [KillTree(), *acts]
        return _maybe_running(p, cfg, now)
    if st == S.BACKOFF and p.deadline is not None and now >= p.deadline:
        return _spawn(p, cfg, now, counted=True)
    if st == S.STOPPING and p.deadline is not None and now >= p.deadline:
        if not p.killed:
            return replace(p, killed=True, deadline=now + KILL_GRACE,
                           message=f"did not stop within {cfg.stop_timeout:g}s, killed"), [KillTree()]
        return replace(p, deadline=None, message=f"still alive {KILL_GRACE:g}s after SIGKILL"), []
    return p, []


def next_deadline(p: Proc, cfg: ComponentConfig) -> float | None:
    """Takes a record; returns the monotonic time at which a Tick can change it, if any."""
    if p.state == S.STARTING and p.ready_ok and p.spawned_at is not None:
        return min(p.spawned_at + cfg.start_delay, p.deadline or float("inf"))
    if p.state in (S.STARTING, S.BACKOFF, S.STOPPING):
        return p.deadline
    return None


def _aged(p: Proc, cfg: ComponentConfig, now: float) -> bool:
    return p.spawned_at is not None and now - p.spawned_at >= cfg.start_delay


def _maybe_running(p: Proc, cfg: ComponentConfig, now: float) -> tuple[Proc, list[Action]]:
    if p.state == S.STARTING and p.pid is not None and p.ready_ok and _aged(p, cfg, now):
        # With a liveness check, only a passed check proves the start worked (see _health).
        fails = 0 if cfg.health is None else p.fails
        return replace(p, state=S.RUNNING, running_since=now, deadline=None, fails=fails, message=""), []
    return p, []


def _health(p: Proc, cfg: ComponentConfig, ev: HealthOk | HealthFailed, now: float) -> tuple[Proc, list[Action]]:
    """A liveness verdict: counted only while RUNNING and past start_period; enough failures restart."""
    if cfg.health is None or p.state != S.RUNNING:
        return p, []
    if isinstance(ev, HealthOk):
        return replace(p, health="healthy", health_failures=0, healthy_once=True, fails=0), []
    started = p.running_since if p.running_since is not None else now
    if now - started < cfg.health.start_period:
        return replace(p, last_health_error=ev.error), []
    failures = p.health_failures + 1
    p = replace(p, health="unhealthy", health_failures=failures, last_health_error=ev.error)
    if failures < cfg.health.failures:
        return p, []
    reason = f"unhealthy: {ev.error}"
    return _stop(replace(p, then_start=False, then_backoff=True, restart_reason=reason,
                         message=f"{failures} health check(s) failed in a row, restarting: {ev.error}"), cfg, now)


def _after_unhealthy(p: Proc, cfg: ComponentConfig, now: float) -> tuple[Proc, list[Action]]:
    """Stopped for failing its checks: the crash rules decide when it runs again.

    Never healthy since its start counts as a failed start (BACKOFF, FATAL after start_retries),
    so a component that never gets healthy cannot storm; one that was healthy is a crash.
    """
    reason = p.restart_reason or "unhealthy"
    if not p.healthy_once:
        return _failed(p, cfg, now, reason)
    ran = now - (p.running_since if p.running_since is not None else now)
    level = 0 if ran >= cfg.backoff.reset_after else p.level
    delay = cfg.backoff.delay(level)
    p = replace(p, level=level + 1, message=f"restarted: {reason}")
    if delay <= 0:
        return _spawn(p, cfg, now, counted=True)
    return replace(p, state=S.BACKOFF, deadline=now + delay, running_since=None,
                   message=f"{reason}; restart in {delay:g}s"), []


def _spawn(p: Proc, cfg: ComponentConfig, now: float, *, counted: bool) -> tuple[Proc, list[Action]]:
    return replace(p, state=S.STARTING, pid=None, spawned_at=now, running_since=None, ready_ok=False,
                   deadline=now + cfg.ready_timeout, killed=False, then_start=False, then_backoff=False,
                   health="starting" if cfg.health else None, health_failures=0, healthy_once=False,
                   restarts=p.restarts + (1 if counted else 0)), [Spawn()]


def _stop(p: Proc, cfg: ComponentConfig, now: float) -> tuple[Proc, list[Action]]:
    return replace(p, state=S.STOPPING, deadline=now + cfg.stop_timeout, killed=False), [Signal(cfg.stop_signal)]


def _failed(p: Proc, cfg: ComponentConfig, now: float, why: str) -> tuple[Proc, list[Action]]:
    """A start attempt failed: back off and retry, or give up after start_retries."""
    fails = p.fails + 1
    if fails >= cfg.start_retries:
        return replace(p, state=S.FATAL, fails=fails, deadline=None, running_since=None,
                       message=f"{why}; gave up after {fails} failed start(s)"), []
    level = max(p.level, 1)
    delay = cfg.backoff.delay(level)
    return replace(p, state=S.BACKOFF, fails=fails, level=level + 1, deadline=now + delay, running_since=None,
                   message=f"{why}; retry {fails}/{cfg.start_retries - 1} in {delay:g}s"), []


def _crashed(p: Proc, cfg: ComponentConfig, ev: Exited, now: float) -> tuple[Proc, list[Action]]:
    """A RUNNING component ended on its own: restart at once, back off, or leave it EXITED."""
    if cfg.restart == "never" or (cfg.restart == "on-failure" and ev.clean):
        return replace(p, state=S.EXITED, running_since=None,
                       message=f"exited ({ev.how}); restart policy {cfg.restart}"), [KillTree()]
    ran = now - (p.running_since if p.running_since is not None else now)
    level = 0 if ran >= cfg.backoff.reset_after else p.level
    delay = cfg.backoff.delay(level)
    p = replace(p, level=level + 1, message=f"restarted after {ev.how}", restart_reason="crash")
    if delay <= 0:
        spawned, acts = _spawn(p, cfg, now, counted=True)
        return spawned, [KillTree(), *acts]
    return replace(p, state=S.BACKOFF, deadline=now + delay, running_since=None,
                   message=f"crashed ({ev.how}) {level + 1} times quickly; restart in {delay:g}s"), [KillTree()]


def to_record(p: Proc) -> dict[str, object]:
    """A record as JSON-able data (the state file, a handover to the next supervisor)."""
    from dataclasses import asdict

    return {**asdict(p), "state": str(p.state)}


def from_record(data: object) -> Proc:
    """Takes what to_record returned (unknown keys, written by another version, are ignored)."""
    from dataclasses import fields

    if not isinstance(data, dict):
        return Proc()
    known = {f.name for f in fields(Proc)}
    values = {k: v for k, v in data.items() if k in known}
    try:
        values["state"] = State(values.get("state", "STOPPED"))
        return Proc(**values)
    except (TypeError, ValueError):
        return Proc()
