"""The component state machine: (state, event) → (state, actions) tables, backoff, FATAL, timers."""

from __future__ import annotations

import signal
from collections.abc import Callable
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from imageserving_fleet.agent.config import Backoff, ComponentConfig, ReadyCheck
from imageserving_fleet.agent.states import (
    ACTIVE,
    KILL_GRACE,
    TRANSITIONS,
    Action,
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

S = State
TCP = ReadyCheck("tcp", host="127.0.0.1", port=27345)
# Small numbers that are easy to follow: start_delay 1s, ready_timeout 10s, stop_timeout 5s.
CFG = ComponentConfig(
    id="is",
    command=("/bin/is",),
    ready=TCP,
    start_delay=1.0,
    ready_timeout=10.0,
    stop_timeout=5.0,
    start_retries=3,
    backoff=Backoff(initial=1.0, max=8.0, reset_after=60.0),
)
PID = 100
TERM = Signal(signal.SIGTERM)


def run(p: Proc, *events: tuple[Event, float], cfg: ComponentConfig = CFG) -> tuple[Proc, list[Action]]:
    """Feeds (event, now) pairs; returns the last record and the actions of the last step."""
    actions: list[Action] = []
    for ev, now in events:
        p, actions = step(p, cfg, ev, now)
    return p, actions


def starting(cfg: ComponentConfig = CFG) -> Proc:
    """Started at 0 with pid 100: deadline 10."""
    return run(Proc(), (Start(), 0.0), (Spawned(PID), 0.0), cfg=cfg)[0]


def running(cfg: ComponentConfig = CFG) -> Proc:
    """RUNNING since 1 (ready at once, start_delay 1)."""
    p = run(starting(cfg), (ReadyOk(), 1.0), cfg=cfg)[0]
    if cfg.ready is None:
        p = run(p, (Tick(), 1.0), cfg=cfg)[0]
    assert p.state == S.RUNNING
    return p


def backoff() -> Proc:
    """BACKOFF after a failed start at 0.5: deadline 1.5."""
    return run(starting(), (Exited(PID, "exit 1", False), 0.5))[0]


def stopping() -> Proc:
    """STOPPING since 2 (pid 100 still alive): deadline 7."""
    return run(running(), (Stop(), 2.0))[0]


def exited() -> Proc:
    return run(running(), (Exited(PID, "exit 0", True), 3.0))[0]


def fatal(cfg: ComponentConfig = CFG) -> Proc:
    """start_retries failed starts in a row."""
    p = starting(cfg)
    now = 0.0
    for i in range(cfg.start_retries):
        p, _ = run(p, (Exited(PID + i, "exit 1", False), now + 0.1), cfg=cfg)
        if p.state == S.FATAL:
            return p
        now = p.deadline or now
        p, _ = run(p, (Tick(), now), (Spawned(PID + i + 1), now), cfg=cfg)
    raise AssertionError(p)


AT: dict[State, Callable[[], Proc]] = {
    S.STOPPED: Proc,
    S.STARTING: starting,
    S.RUNNING: running,
    S.BACKOFF: backoff,
    S.STOPPING: stopping,
    S.EXITED: exited,
    S.FATAL: fatal,
}


def test_fixtures_are_in_their_states() -> None:
    for state, make in AT.items():
        assert make().state == state


# (from, event, now, to, actions). `now` is after the fixture's own times (see the helpers above).
TABLE: list[tuple[State, Event, float, State, list[Action]]] = [
    (S.STOPPED, Start(), 5, S.STARTING, [Spawn()]),
    (S.STOPPED, Restart(), 5, S.STARTING, [Spawn()]),
    (S.STOPPED, Stop(), 5, S.STOPPED, []),
    (S.STOPPED, Spawned(7), 5, S.STOPPED, []),
    (S.STOPPED, Exited(7, "exit 1", False), 5, S.STOPPED, []),
    (S.STOPPED, ReadyOk(), 5, S.STOPPED, []),
    (S.STOPPED, TreeGone(), 5, S.STOPPED, []),
    (S.STOPPED, Tick(), 5, S.STOPPED, []),
    (S.STARTING, Start(), 0.5, S.STARTING, []),
    (S.STARTING, Restart(), 0.5, S.STOPPING, [TERM]),
    (S.STARTING, Stop(), 0.5, S.STOPPING, [TERM]),
    (S.STARTING, Spawned(PID + 1), 0.5, S.STARTING, []),
    (S.STARTING, SpawnFailed("No such file"), 0.5, S.BACKOFF, []),
    (S.STARTING, Exited(PID + 9, "exit 1", False), 0.5, S.STARTING, []),  # not our pid
    (S.STARTING, ReadyOk(), 0.5, S.STARTING, []),  # ready, but not yet alive for start_delay
    (S.STARTING, ReadyOk(), 1.0, S.RUNNING, []),
    (S.STARTING, TreeGone(), 0.5, S.STARTING, []),
    (S.STARTING, Tick(), 5, S.STARTING, []),  # no ReadyOk yet, deadline 10
    (S.STARTING, Tick(), 10, S.BACKOFF, [KillTree()]),  # ready timeout
    (S.RUNNING, Start(), 5, S.RUNNING, []),
    (S.RUNNING, Restart(), 5, S.STOPPING, [TERM]),
    (S.RUNNING, Stop(), 5, S.STOPPING, [TERM]),
    (S.RUNNING, Spawned(PID + 1), 5, S.RUNNING, []),
    (S.RUNNING, Exited(PID + 9, "exit 1", False), 5, S.RUNNING, []),
    (S.RUNNING, Exited(PID, "exit 1", False), 5, S.STARTING, [KillTree(), Spawn()]),  # first crash: at once
    (S.RUNNING, Exited(PID, "exit 0", True), 5, S.EXITED, [KillTree()]),  # on-failure, clean
    (S.RUNNING, ReadyOk(), 5, S.RUNNING, []),
    (S.RUNNING, TreeGone(), 5, S.RUNNING, []),
    (S.RUNNING, Tick(), 5000, S.RUNNING, []),
    (S.BACKOFF, Start(), 1.0, S.STARTING, [Spawn()]),
    (S.BACKOFF, Restart(), 1.0, S.STARTING, [Spawn()]),
    (S.BACKOFF, Stop(), 1.0, S.STOPPED, []),
    (S.BACKOFF, Spawned(7), 1.0, S.BACKOFF, []),
    (S.BACKOFF, Exited(PID, "exit 1", False), 1.0, S.BACKOFF, []),  # already handled: pid cleared
    (S.BACKOFF, ReadyOk(), 1.0, S.BACKOFF, []),
    (S.BACKOFF, TreeGone(), 1.0, S.BACKOFF, []),
    (S.BACKOFF, Tick(), 1.0, S.BACKOFF, []),  # deadline 1.5
    (S.BACKOFF, Tick(), 1.5, S.STARTING, [Spawn()]),
    (S.STOPPING, Start(), 3, S.STOPPING, []),
    (S.STOPPING, Restart(), 3, S.STOPPING, []),
    (S.STOPPING, Stop(), 3, S.STOPPING, []),
    (S.STOPPING, Spawned(7), 3, S.STOPPING, []),
    (S.STOPPING, Exited(PID, "signal TERM", False), 3, S.STOPPING, []),  # wait for the whole tree
    (S.STOPPING, ReadyOk(), 3, S.STOPPING, []),
    (S.STOPPING, TreeGone(), 3, S.STOPPED, []),
    (S.STOPPING, Tick(), 6.9, S.STOPPING, []),  # deadline 7
    (S.STOPPING, Tick(), 7, S.STOPPING, [KillTree()]),
    (S.EXITED, Start(), 5, S.STARTING, [Spawn()]),
    (S.EXITED, Restart(), 5, S.STARTING, [Spawn()]),
    (S.EXITED, Stop(), 5, S.STOPPED, []),
    (S.EXITED, Spawned(7), 5, S.EXITED, []),
    (S.EXITED, Exited(PID, "exit 0", True), 5, S.EXITED, []),
    (S.EXITED, ReadyOk(), 5, S.EXITED, []),
    (S.EXITED, TreeGone(), 5, S.EXITED, []),
    (S.EXITED, Tick(), 5000, S.EXITED, []),
    (S.FATAL, Start(), 5000, S.STARTING, [Spawn()]),
    (S.FATAL, Restart(), 5000, S.STARTING, [Spawn()]),
    (S.FATAL, Stop(), 5000, S.STOPPED, []),
    (S.FATAL, Spawned(7), 5000, S.FATAL, []),
    (S.FATAL, Exited(PID + 2, "exit 1", False), 5000, S.FATAL, []),
    (S.FATAL, ReadyOk(), 5000, S.FATAL, []),
    (S.FATAL, TreeGone(), 5000, S.FATAL, []),
    (S.FATAL, Tick(), 5000, S.FATAL, []),
]


@pytest.mark.parametrize(
    ("start", "event", "now", "end", "actions"),
    TABLE,
    ids=[f"{a.name}-{type(e).__name__}@{n}-{b.name}" for a, e, n, b, _ in TABLE],
)
def test_transition_table(start: State, event: Event, now: float, end: State, actions: list[Action]) -> None:
    before = AT[start]()
    after, acts = step(before, CFG, event, now)
    assert (after.state, acts) == (end, actions)
    assert after.restarts >= before.restarts
    if end not in ACTIVE:
        assert after.pid is None


def test_table_covers_every_declared_transition() -> None:
    seen = {(a, b) for a, _, _, b, _ in TABLE if a != b}
    seen |= {(S.STARTING, S.FATAL), (S.RUNNING, S.BACKOFF), (S.STOPPING, S.STARTING)}  # tested below
    seen |= {(S.STOPPING, S.BACKOFF), (S.STOPPING, S.FATAL)}  # unhealthy restarts: test_states_health.py
    declared = {(a, b) for a, targets in TRANSITIONS.items() for b in targets}
    assert seen == declared


IGNORED = [
    (start, event, now)
    for start, event, now, end, actions in TABLE
    if start == end and not actions and start != S.STARTING  # a Tick while starting may record ready_ok
    and not (start == S.STOPPING and isinstance(event, Exited | Start | Restart | Stop))  # these set flags
]


@pytest.mark.parametrize(
    ("start", "event", "now"), IGNORED, ids=[f"{a.name}-{type(e).__name__}" for a, e, _ in IGNORED]
)
def test_ignored_events_leave_the_record_untouched(start: State, event: Event, now: float) -> None:
    before = AT[start]()
    assert step(before, CFG, event, now) == (before, [])


# ------------------------------------------------------------ starting up


def test_start_records_times_and_deadline() -> None:
    p, acts = step(Proc(), CFG, Start(), 100.0)
    assert acts == [Spawn()]
    assert (p.state, p.pid, p.spawned_at, p.deadline, p.restarts) == (S.STARTING, None, 100.0, 110.0, 0)
    p, acts = step(p, CFG, Spawned(42), 100.1)
    assert (p.pid, acts) == (42, [])


def test_ready_before_start_delay_waits_for_a_tick() -> None:
    p, _ = run(starting(), (ReadyOk(), 0.3))
    assert p.state == S.STARTING and p.ready_ok
    assert next_deadline(p, CFG) == 1.0  # spawned_at + start_delay
    p, _ = run(p, (Tick(), 0.9))
    assert p.state == S.STARTING
    p, _ = run(p, (Tick(), 1.0))
    assert (p.state, p.running_since, p.deadline, p.fails) == (S.RUNNING, 1.0, None, 0)


def test_ready_and_aged_at_the_deadline_is_running_not_a_timeout() -> None:
    p, acts = run(starting(), (ReadyOk(), 0.3), (Tick(), 10.0))
    assert (p.state, acts) == (S.RUNNING, [])


def test_without_ready_check_alive_for_start_delay_is_running() -> None:
    cfg = replace(CFG, ready=None)
    p, _ = run(starting(cfg), (Tick(), 0.5), cfg=cfg)
    assert p.state == S.STARTING and p.ready_ok
    p, _ = run(p, (Tick(), 1.0), cfg=cfg)
    assert (p.state, p.running_since) == (S.RUNNING, 1.0)


def test_without_ready_check_a_process_not_yet_spawned_is_not_ready() -> None:
    cfg = replace(CFG, ready=None)
    p, _ = run(Proc(), (Start(), 0.0), (Tick(), 2.0), cfg=cfg)
    assert p.state == S.STARTING and not p.ready_ok


def test_ready_timeout_kills_the_tree_and_backs_off() -> None:
    p, acts = run(starting(), (Tick(), 10.0))
    assert acts == [KillTree()]
    assert (p.state, p.pid, p.fails, p.deadline) == (S.BACKOFF, None, 1, 11.0)
    assert "not ready after 10s (tcp 127.0.0.1:27345)" in p.message
    # the killed process is reaped later: its Exited carries a pid we no longer own
    after, acts = step(p, CFG, Exited(PID, "signal KILL", False), 10.1)
    assert (after, acts) == (p, [])


@pytest.mark.parametrize("clean", [False, True], ids=["exit-1", "exit-0"])
def test_exit_while_starting_is_a_failed_start(clean: bool) -> None:
    # Even a clean exit: a server that ends before it is ready did not start.
    p, acts = run(starting(), (Exited(PID, "exit 0" if clean else "exit 1", clean), 0.5))
    assert (p.state, p.pid, p.fails, p.deadline, p.running_since) == (S.BACKOFF, None, 1, 1.5, None)
    assert "exited while starting" in p.message and "retry 1/2 in 1s" in p.message
    assert Spawn() not in acts  # whether KillTree is sent: see test_exit_while_starting_kills_the_tree


def test_spawn_failure_backs_off_with_the_error() -> None:
    p, acts = run(Proc(), (Start(), 0.0), (SpawnFailed("[Errno 2] No such file: '/bin/is'"), 0.0))
    assert (p.state, acts, p.last_exit) == (S.BACKOFF, [], "spawn failed")
    assert "cannot start: [Errno 2]" in p.message and "retry 1/2 in 1s" in p.message


# ------------------------------------------------------------ backoff, FATAL


@pytest.mark.parametrize(
    ("level", "delay"), [(-1, 0.0), (0, 0.0), (1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (5, 8.0), (50, 8.0)]
)
def test_backoff_delay(level: int, delay: float) -> None:
    assert Backoff(initial=1.0, max=8.0).delay(level) == delay


def test_failed_starts_back_off_doubling_to_max_then_fatal() -> None:
    cfg = replace(CFG, start_retries=7, backoff=Backoff(initial=0.5, max=4.0, reset_after=60.0))
    p = starting(cfg)
    now, delays = 0.0, []
    for i in range(6):
        p, acts = run(p, (Exited(PID + i, "exit 2", False), now + 0.1), cfg=cfg)
        assert (p.state, p.fails) == (S.BACKOFF, i + 1)
        assert Spawn() not in acts
        delays.append(p.deadline - (now + 0.1))  # type: ignore[operator]
        now = p.deadline  # type: ignore[assignment]
        p, acts = run(p, (Tick(), now), cfg=cfg)
        assert (p.state, acts, p.restarts) == (S.STARTING, [Spawn()], i + 1)
        p, _ = run(p, (Spawned(PID + i + 1), now), cfg=cfg)
    assert delays == pytest.approx([0.5, 1.0, 2.0, 4.0, 4.0, 4.0])
    p, acts = run(p, (Exited(PID + 6, "exit 2", False), now + 0.1), cfg=cfg)
    assert (p.state, p.fails, p.deadline) == (S.FATAL, 7, None)
    assert Spawn() not in acts
    assert "gave up after 7 failed start(s)" in p.message


def test_fatal_after_start_retries_and_only_start_clears_it() -> None:
    p = fatal()
    assert (p.state, p.fails, p.restarts) == (S.FATAL, 3, 2)
    for ev in (Tick(), ReadyOk(), TreeGone(), Spawned(5), Exited(5, "exit 1", False)):
        assert step(p, CFG, ev, 1e6)[0].state == S.FATAL
    cleared, acts = step(p, CFG, Start(), 1e6)
    assert acts == [Spawn()]
    assert (cleared.state, cleared.fails, cleared.level, cleared.message) == (S.STARTING, 0, 0, "")
    assert cleared.restarts == p.restarts  # Start is not a restart
    again, _ = step(p, CFG, Restart("operator", "restarted by the operator"), 1e6)
    assert (again.state, again.fails, again.restarts, again.message, again.restart_reason) == (
        S.STARTING,
        0,
        p.restarts + 1,
        "restarted by the operator",
        "operator",
    )


def test_start_retries_one_is_fatal_at_the_first_failure() -> None:
    cfg = replace(CFG, start_retries=1)
    p, acts = run(starting(cfg), (Exited(PID, "exit 1", False), 0.5), cfg=cfg)
    assert p.state == S.FATAL
    assert Spawn() not in acts


def test_starting_to_fatal_on_ready_timeout_still_kills() -> None:
    cfg = replace(CFG, start_retries=1)
    p, acts = run(starting(cfg), (Tick(), 10.0), cfg=cfg)
    assert (p.state, acts) == (S.FATAL, [KillTree()])


def test_reaching_running_resets_the_failure_count() -> None:
    p, _ = run(backoff(), (Tick(), 1.5), (Spawned(PID + 1), 1.5), (ReadyOk(), 2.5))
    assert (p.state, p.fails) == (S.RUNNING, 0)


# ---------------------------------------------------------------- crashes


def test_crash_after_reset_after_restarts_at_once() -> None:
    p = running()
    # a quick first crash: at once; then a crash after a long run: at once again, level reset
    p, acts = run(p, (Exited(PID, "signal SEGV", False), 2.0))
    assert (p.state, acts, p.restarts, p.level) == (S.STARTING, [KillTree(), Spawn()], 1, 1)
    p, _ = run(p, (Spawned(PID + 1), 2.0), (ReadyOk(), 3.0))
    assert (p.state, p.running_since) == (S.RUNNING, 3.0)
    p, acts = run(p, (Exited(PID + 1, "signal SEGV", False), 3.0 + 60.0))
    assert (p.state, acts, p.restarts, p.level) == (S.STARTING, [KillTree(), Spawn()], 2, 1)
    assert p.last_exit == "signal SEGV"
    assert p.message == "restarted after signal SEGV"


def test_quick_repeated_crashes_back_off_with_growing_delay() -> None:
    p, now, pid = running(), 1.0, PID
    delays = []
    for i in range(6):
        p, acts = run(p, (Exited(pid, "exit 1", False), now + 5))  # ran 5s < reset_after
        now += 5
        if i == 0:
            assert (p.state, acts) == (S.STARTING, [KillTree(), Spawn()])
        else:
            assert (p.state, acts) == (S.BACKOFF, [KillTree()])
            assert f"{i + 1} times quickly" in p.message
            delays.append(p.deadline - now)  # type: ignore[operator]
            now = p.deadline  # type: ignore[assignment]
            p, acts = run(p, (Tick(), now))
            assert (p.state, acts) == (S.STARTING, [Spawn()])
        assert p.restarts == i + 1
        pid += 1
        p, _ = run(p, (Spawned(pid), now), (ReadyOk(), now + 1))
        now += 1
        assert p.state == S.RUNNING
    assert delays == [1.0, 2.0, 4.0, 8.0, 8.0]


@pytest.mark.parametrize(
    ("policy", "clean", "state", "actions"),
    [
        ("on-failure", True, S.EXITED, [KillTree()]),
        ("on-failure", False, S.STARTING, [KillTree(), Spawn()]),
        ("always", True, S.STARTING, [KillTree(), Spawn()]),
        ("always", False, S.STARTING, [KillTree(), Spawn()]),
        ("never", True, S.EXITED, [KillTree()]),
        ("never", False, S.EXITED, [KillTree()]),
    ],
)
def test_restart_policy(policy: str, clean: bool, state: State, actions: list[Action]) -> None:
    cfg = replace(CFG, restart=policy)
    how = "exit 0" if clean else "exit 3"
    p, acts = run(running(cfg), (Exited(PID, how, clean), 100.0), cfg=cfg)
    assert (p.state, acts, p.last_exit, p.pid) == (state, actions, how, None)
    assert p.restarts == (1 if state == S.STARTING else 0)
    if state == S.EXITED:
        assert p.message == f"exited ({how}); restart policy {policy}"
        assert p.running_since is None


def test_exited_with_a_stale_pid_is_ignored() -> None:
    for make in (starting, running, stopping):
        p = make()
        assert step(p, CFG, Exited(PID + 50, "exit 1", False), 3.0) == (p, [])


# ---------------------------------------------------------------- stopping


def test_stop_signal_is_the_configured_one() -> None:
    cfg = replace(CFG, stop_signal=signal.SIGINT)
    p, acts = run(running(cfg), (Stop(), 2.0), cfg=cfg)
    assert (p.state, acts, p.deadline) == (S.STOPPING, [Signal(signal.SIGINT)], 7.0)


def test_stop_timeout_kills_then_reports_survivors() -> None:
    p = stopping()
    p, acts = run(p, (Tick(), 7.0))
    assert (p.state, acts, p.killed, p.deadline) == (S.STOPPING, [KillTree()], True, 7.0 + KILL_GRACE)
    assert p.message == "did not stop within 5s, killed"
    assert next_deadline(p, CFG) == 7.0 + KILL_GRACE
    p, acts = run(p, (Tick(), 8.0))
    assert acts == [] and p.deadline == 12.0
    p, acts = run(p, (Tick(), 12.0))
    assert (p.state, acts, p.deadline) == (S.STOPPING, [], None)
    assert p.message == f"still alive {KILL_GRACE:g}s after SIGKILL"
    assert next_deadline(p, CFG) is None
    assert run(p, (Tick(), 1000.0)) == (p, [])  # nothing more to do, and no second SIGKILL
    p, acts = run(p, (TreeGone(), 1001.0))
    assert (p.state, acts, p.killed, p.pid) == (S.STOPPED, [], False, None)


def test_stop_from_backoff_exited_fatal_is_immediate() -> None:
    for make in (backoff, exited, fatal):
        p, acts = step(make(), CFG, Stop(), 10.0)
        assert (p.state, acts, p.deadline, p.pid) == (S.STOPPED, [], None, None)


def test_restart_while_running_stops_then_starts_counted() -> None:
    p, acts = run(running(), (Restart("max_memory", "memory above max_memory"), 2.0))
    assert (p.state, acts, p.then_start, p.message) == (S.STOPPING, [TERM], True, "memory above max_memory")
    p, acts = run(p, (Exited(PID, "signal TERM", False), 2.5))
    assert (p.state, acts, p.pid) == (S.STOPPING, [], None)
    p, acts = run(p, (TreeGone(), 2.6))
    assert (p.state, acts, p.restarts, p.then_start) == (S.STARTING, [Spawn()], 1, False)
    assert p.spawned_at == 2.6 and p.deadline == 12.6


def test_stop_during_a_restart_cancels_the_start() -> None:
    p, _ = run(running(), (Restart(), 2.0), (Stop(), 2.1), (TreeGone(), 2.2))
    assert (p.state, p.restarts) == (S.STOPPED, 0)


def test_start_during_a_stop_starts_again_once_stopped() -> None:
    p, _ = run(stopping(), (Start(), 2.1))
    assert p.then_start
    p, acts = run(p, (TreeGone(), 2.2))
    assert (p.state, acts) == (S.STARTING, [Spawn()])


def test_restart_after_the_kill_still_restarts() -> None:
    p, _ = run(running(), (Restart(), 2.0), (Tick(), 7.0))
    assert p.killed and p.then_start
    p, acts = run(p, (TreeGone(), 7.5))
    assert (p.state, acts, p.restarts, p.killed) == (S.STARTING, [Spawn()], 1, False)


# ------------------------------------------------------------- next_deadline


@pytest.mark.parametrize(
    ("make", "deadline"),
    [
        (Proc, None),
        (starting, 10.0),  # ready timeout
        (lambda: run(starting(), (ReadyOk(), 0.3))[0], 1.0),  # ready: spawned_at + start_delay
        (running, None),
        (backoff, 1.5),
        (stopping, 7.0),
        (exited, None),
        (fatal, None),
    ],
)
def test_next_deadline(make: object, deadline: float | None) -> None:
    assert next_deadline(make(), CFG) == deadline  # type: ignore[operator]


def test_next_deadline_never_after_the_ready_timeout() -> None:
    cfg = replace(CFG, start_delay=30.0)
    p, _ = run(starting(cfg), (ReadyOk(), 0.3), cfg=cfg)
    assert next_deadline(p, cfg) == 10.0


def test_a_tick_at_next_deadline_changes_the_record() -> None:
    for make in (starting, backoff, stopping, lambda: run(starting(), (ReadyOk(), 0.3))[0]):
        p = make()
        due = next_deadline(p, CFG)
        assert due is not None
        assert step(p, CFG, Tick(), due)[0] != p


# ------------------------------------------------ regressions (bugs found by these tests)


@pytest.mark.parametrize("retries", [3, 1], ids=["to-BACKOFF", "to-FATAL"])
def test_exit_while_starting_kills_the_tree(retries: int) -> None:
    cfg = replace(CFG, start_retries=retries)
    p, acts = run(starting(cfg), (Exited(PID, "exit 0", True), 0.5), cfg=cfg)
    assert p.state in (S.BACKOFF, S.FATAL)
    assert KillTree() in acts


@pytest.mark.parametrize("state", [S.STOPPED, S.RUNNING, S.BACKOFF, S.STOPPING, S.EXITED, S.FATAL])
def test_spawn_failed_outside_starting_is_ignored(state: State) -> None:
    p = AT[state]()
    assert step(p, CFG, SpawnFailed("late"), 50.0) == (p, [])


# -------------------------------------------------------------- properties

CONFIGS = st.builds(
    ComponentConfig,
    id=st.just("c"),
    command=st.just(("/bin/c",)),
    ready=st.sampled_from([None, TCP]),
    start_delay=st.sampled_from([0.0, 0.5, 1.0, 5.0]),
    ready_timeout=st.sampled_from([0.5, 2.0, 10.0]),
    stop_timeout=st.sampled_from([0.0, 1.0, 5.0]),
    restart=st.sampled_from(["always", "on-failure", "never"]),
    start_retries=st.integers(1, 4),
    backoff=st.builds(
        Backoff,
        initial=st.sampled_from([0.1, 1.0]),
        max=st.sampled_from([1.0, 4.0]),
        reset_after=st.sampled_from([0.5, 10.0]),
    ),
)
KINDS = ["start", "stop", "restart", "spawned", "spawn_failed", "exited", "ready", "gone", "tick", "tick"]


@settings(max_examples=300, deadline=None)
@given(CONFIGS, st.data())
def test_random_event_sequences_keep_the_invariants(cfg: ComponentConfig, data: st.DataObject) -> None:
    p, now, next_pid = Proc(), 0.0, 1000
    for _ in range(data.draw(st.integers(1, 40), label="steps")):
        now += data.draw(st.sampled_from([0.0, 0.05, 0.3, 1.0, 2.5, 11.0, 70.0]), label="dt")
        kind = data.draw(st.sampled_from(KINDS), label="kind")
        ev: Event
        if kind == "start":
            ev = Start()
        elif kind == "stop":
            ev = Stop()
        elif kind == "restart":
            ev = Restart("r")
        elif kind == "spawned":
            ev = Spawned(next_pid)
            next_pid += 1
        elif kind == "spawn_failed":
            # The executor reports SpawnFailed only right after Spawn; elsewhere it is ignored (see above).
            ev = SpawnFailed("e") if p.state == S.STARTING and p.pid is None else Tick()
        elif kind == "exited":
            own = p.pid is not None and data.draw(st.booleans(), label="own pid")
            ev = Exited(
                p.pid if own and p.pid is not None else 7, "exit 1", data.draw(st.booleans(), label="clean")
            )
        elif kind == "ready":
            ev = ReadyOk()
        elif kind == "gone":
            ev = TreeGone()
        else:
            ev = Tick()
        old = p
        p, actions = step(old, cfg, ev, now)
        assert p.state == old.state or p.state in TRANSITIONS[old.state], (old.state, ev, p.state)
        assert p.restarts >= old.restarts
        if old.state == S.FATAL and p.state != S.FATAL:
            assert isinstance(ev, Start | Restart | Stop)
        if p.state not in ACTIVE:
            assert p.pid is None
        if p.state == S.FATAL:
            assert p.fails >= cfg.start_retries
        if p.state == S.BACKOFF:
            assert p.deadline is not None  # a Tick will always get it out
        if p.state == S.RUNNING:
            assert p.running_since is not None and p.running_since <= now
        if Spawn() in actions:
            assert p.state == S.STARTING and p.spawned_at == now
        if any(isinstance(a, Signal) for a in actions):
            assert p.state == S.STOPPING
        due = next_deadline(p, cfg)
        if due is not None:
            assert p.state in (S.STARTING, S.BACKOFF, S.STOPPING)
            assert p.deadline is None or due <= p.deadline
