"""Liveness and hold-down in the pure state machine: (record, event, time) → (record, actions) tables."""

from __future__ import annotations

import signal
from dataclasses import replace

import pytest

from imageserving_fleet.agent.config import Backoff, ComponentConfig, HealthCheck, ReadyCheck
from imageserving_fleet.agent.states import (
    HELD_MESSAGE,
    Event,
    Exited,
    HealthFailed,
    HealthOk,
    KillTree,
    Proc,
    Restart,
    Signal,
    Spawn,
    Spawned,
    Start,
    State,
    Stop,
    Tick,
    TreeGone,
    step,
)

S = State
HTTP = ReadyCheck("http", url="http://127.0.0.1:8080/healthz")
# RUNNING at 1 (no readiness check, start_delay 1); checks count from start_period 2 after that.
CFG = ComponentConfig(id="ps", command=("/bin/ps",), start_delay=1.0, ready_timeout=10.0, stop_timeout=5.0,
                      start_retries=3, backoff=Backoff(initial=1.0, max=8.0, reset_after=60.0),
                      health=HealthCheck(HTTP, interval=1.0, timeout=0.5, failures=3, start_period=2.0))
TERM = Signal(signal.SIGTERM)


def feed(p: Proc, *events: tuple[Event, float], cfg: ComponentConfig = CFG) -> tuple[Proc, list[object]]:
    acts: list[object] = []
    for ev, now in events:
        p, acts = step(p, cfg, ev, now)
    return p, acts


def running(pid: int = 100, at: float = 0.0, p: Proc | None = None) -> Proc:
    p, _ = feed(p or Proc(), (Start(), at), (Spawned(pid), at), (Tick(), at + 1.0))
    assert p.state == S.RUNNING and p.health == "starting"
    return p


def test_health_starts_as_starting_and_a_pass_makes_it_healthy() -> None:
    p, acts = feed(running(), (HealthOk(), 1.5))
    assert (p.state, p.health, p.health_failures, p.healthy_once, acts) == (S.RUNNING, "healthy", 0, True, [])


# (events after RUNNING at 1, expected state, health, failures, last action)
TABLE = [
    ([(HealthFailed("e1"), 2.0)], S.RUNNING, "starting", 0, None),                  # inside start_period: not counted
    ([(HealthFailed("e1"), 3.5)], S.RUNNING, "unhealthy", 1, None),
    ([(HealthFailed("e1"), 3.5), (HealthOk(), 4.5)], S.RUNNING, "healthy", 0, None),  # a pass resets the count
    ([(HealthFailed("e1"), 3.5), (HealthOk(), 4.5), (HealthFailed("e2"), 5.5), (HealthFailed("e3"), 6.5)],
     S.RUNNING, "unhealthy", 2, None),                                             # "in a row" only
    ([(HealthFailed("e1"), 3.5), (HealthFailed("e2"), 4.5), (HealthFailed("e3"), 5.5)],
     S.STOPPING, "unhealthy", 3, TERM),                                            # failures reached: stop_signal
]


@pytest.mark.parametrize(("events", "state", "health", "failures", "action"), TABLE)
def test_consecutive_failures_past_start_period_restart(events: list[tuple[Event, float]], state: State,
                                                       health: str, failures: int, action: object) -> None:
    p, acts = feed(running(), *events)
    assert (p.state, p.health, p.health_failures) == (state, health, failures)
    assert (acts[-1] if acts else None) == action
    if state == S.STOPPING:
        assert p.restart_reason == "unhealthy: e3" and p.then_backoff and not p.then_start


def test_health_events_outside_running_are_ignored() -> None:
    for p in (Proc(), feed(Proc(), (Start(), 0.0), (Spawned(1), 0.0))[0]):
        assert step(p, CFG, HealthFailed("x"), 99.0) == (p, [])
        assert step(p, CFG, HealthOk(), 99.0) == (p, [])
    no_check = replace(CFG, health=None)
    p, _ = feed(Proc(), (Start(), 0.0), (Spawned(1), 0.0), (Tick(), 1.0), cfg=no_check)
    assert step(p, no_check, HealthFailed("x"), 99.0) == (p, [])


def unhealthy_stop(p: Proc, t: float) -> Proc:
    """Three counted failures from t (past start_period)."""
    p, _ = feed(p, (HealthFailed("e"), t), (HealthFailed("e"), t + 1), (HealthFailed("timeout"), t + 2))
    assert p.state == S.STOPPING
    return p


def test_a_hung_process_is_killed_after_stop_timeout() -> None:
    p = unhealthy_stop(running(), 3.5)           # STOPPING at 5.5, stop_timeout 5
    p, acts = feed(p, (Tick(), 10.4))
    assert acts == [] and p.state == S.STOPPING
    p, acts = feed(p, (Tick(), 10.5))
    assert acts == [KillTree()] and p.killed  # SIGKILL of the group: a SIGSTOPped process still goes


def test_never_healthy_counts_as_failed_starts_with_backoff_then_fatal() -> None:
    p, t, delays, pid = running(), 3.5, [], 100
    for attempt in range(CFG.start_retries):
        p = unhealthy_stop(p, t)
        p, _ = feed(p, (Exited(pid, "signal TERM", False), t + 2.1), (TreeGone(), t + 2.2))
        if attempt == CFG.start_retries - 1:
            break
        assert p.state == S.BACKOFF and p.restart_reason == "unhealthy: timeout"
        delays.append(p.deadline - (t + 2.2))
        pid += 1
        p, acts = feed(p, (Tick(), p.deadline))
        assert acts == [Spawn()] and p.state == S.STARTING and p.health == "starting"
        t = p.spawned_at
        p, _ = feed(p, (Spawned(pid), t), (Tick(), t + 1.0))
        t += 1.0 + CFG.health.start_period + 0.5
    assert p.state == S.FATAL and "gave up after 3" in p.message
    assert p.restarts == CFG.start_retries - 1 <= CFG.start_retries
    assert delays == [1.0, 2.0]  # the backoff grows between the restarts: no storm


def test_healthy_once_then_hung_restarts_by_the_crash_rules() -> None:
    p, _ = feed(running(), (HealthOk(), 1.5))
    p = unhealthy_stop(p, 100.0)  # ran ≥ reset_after: restart at once, like a first crash
    p, acts = feed(p, (Exited(100, "signal TERM", False), 102.1), (TreeGone(), 102.2))
    assert p.state == S.STARTING and acts == [Spawn()] and p.restarts == 1
    assert p.restart_reason == "unhealthy: timeout" and p.fails == 0


def test_a_restart_after_unhealthy_resets_health() -> None:
    p, _ = feed(running(), (HealthOk(), 1.5))
    p = unhealthy_stop(p, 100.0)
    p, _ = feed(p, (TreeGone(), 102.2), (Spawned(101), 102.2), (Tick(), 103.2))
    assert (p.state, p.health, p.health_failures, p.last_health_error) == (S.RUNNING, "starting", 0, "timeout")


# ------------------------------------------------------------------ held down
def test_stop_with_hold_from_each_state() -> None:
    for p in (Proc(), running(), feed(running(), (Exited(100, "exit 1", False), 5.0))[0]):
        held, _ = feed(p, (Stop(hold=True), 6.0))
        assert held.held and held.message == HELD_MESSAGE
        assert held.state in (S.STOPPED, S.STOPPING)
        if held.state == S.STOPPING:
            held, _ = feed(held, (TreeGone(), 7.0))
        assert held.state == S.STOPPED and held.held and held.message == HELD_MESSAGE


@pytest.mark.parametrize("event", [HealthFailed("x"), HealthOk(), Tick(), TreeGone(), Stop()])
def test_nothing_but_start_or_restart_ends_a_hold(event: Event) -> None:
    p, _ = feed(running(), (Stop(hold=True), 5.0), (TreeGone(), 6.0))
    after, acts = step(p, CFG, event, 100.0)
    assert after.state == S.STOPPED and after.held and acts == []


@pytest.mark.parametrize("event", [Start(), Restart()])
def test_start_or_restart_ends_a_hold(event: Event) -> None:
    p, _ = feed(running(), (Stop(hold=True), 5.0), (TreeGone(), 6.0))
    after, acts = step(p, CFG, event, 7.0)
    assert after.state == S.STARTING and not after.held and acts == [Spawn()]


def test_restart_reasons() -> None:
    p, _ = feed(running(), (Restart("reload"), 5.0))
    assert p.restart_reason == "reload" and p.state == S.STOPPING
    p, _ = feed(running(), (Exited(100, "exit 1", False), 5.0))
    assert p.restart_reason == "crash"
