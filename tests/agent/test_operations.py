"""Operations: ordered start, reverse stop and restart, driven by records built directly."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

import pytest

from imageserving_fleet.agent.config import Backoff, ComponentConfig
from imageserving_fleet.agent.operations import Operation, Progress
from imageserving_fleet.agent.states import Event, Proc, Restart, Start, State, Stop, Tick, TreeGone, step

S = State
IDS = ("is", "svg", "ps")
GROUPS = [["is", "svg"], ["ps"]]  # the demo's start order


def procs(states: Mapping[str, State | Proc] | None = None, /, **more: State | Proc) -> dict[str, Proc]:
    """Records for is, svg and ps: STOPPED unless given a state or a whole record."""
    out = {cid: Proc() for cid in IDS}
    for cid, value in {**(states or {}), **more}.items():
        out[cid] = value if isinstance(value, Proc) else Proc(state=value)
    return out


def up(since: float = 0.0) -> Proc:
    return Proc(state=S.RUNNING, pid=1, running_since=since)


# ---------------------------------------------------------------------- start


def test_start_issues_groups_in_order_and_waits_for_running() -> None:
    op = Operation("start", [list(g) for g in GROUPS], since=0.0)
    assert op.advance(procs()) == Progress(start=["is", "svg"])
    # the first group is starting: nothing to send, not done
    assert op.advance(procs({"is": S.STARTING, "svg": S.STARTING})) == Progress()
    # one of two is up: still waiting; a retry in BACKOFF is not a failure yet
    assert op.advance(procs({"is": up(), "svg": S.BACKOFF})) == Progress()
    # the whole first group is RUNNING: only now is ps started
    assert op.advance(procs({"is": up(), "svg": up()})) == Progress(start=["ps"])
    assert op.advance(procs({"is": up(), "svg": up(), "ps": S.STARTING})) == Progress()
    assert op.advance(procs({"is": up(), "svg": up(), "ps": up()})) == Progress(done=True)


def test_start_of_running_components_is_done_at_once() -> None:
    op = Operation("start", [list(g) for g in GROUPS], since=0.0)
    running = procs({"is": up(), "svg": up(), "ps": up()})
    assert op.advance(running) == Progress(start=["is", "svg"])
    assert op.advance(running) == Progress(start=["ps"])
    assert op.advance(running) == Progress(done=True)


def test_start_with_no_groups_is_done() -> None:
    assert Operation("start", [], since=0.0).advance(procs()) == Progress(done=True)


@pytest.mark.parametrize("bad", [S.FATAL, S.EXITED, S.STOPPED])
def test_failure_in_first_group_fails_and_reports_later_groups_not_started(bad: State) -> None:
    op = Operation("start", [["is"], ["svg"], ["ps"]], since=0.0)
    assert op.advance(procs()) == Progress(start=["is"])
    progress = op.advance(procs({"is": bad}))
    assert progress == Progress(done=True, failed=["is"], not_started=["svg", "ps"])
    assert op.groups == []
    assert op.advance(procs({"is": bad})) == Progress(done=True)  # finished for good


def test_failure_names_only_the_failed_members_of_a_group() -> None:
    op = Operation("start", [list(g) for g in GROUPS], since=0.0)
    op.advance(procs())
    progress = op.advance(procs({"is": up(), "svg": S.FATAL}))
    assert progress == Progress(done=True, failed=["svg"], not_started=["ps"])


def test_failure_in_last_group_has_nothing_not_started() -> None:
    op = Operation("start", [list(g) for g in GROUPS], since=0.0)
    op.advance(procs())
    op.advance(procs({"is": up(), "svg": up()}))
    progress = op.advance(procs({"is": up(), "svg": up(), "ps": S.FATAL}))
    assert progress == Progress(done=True, failed=["ps"], not_started=[])


# ----------------------------------------------------------------------- stop


def test_stop_runs_in_reverse_order() -> None:
    op = Operation("stop", [["ps"], ["is", "svg"]], since=0.0)
    everything = procs({"is": up(), "svg": up(), "ps": up()})
    assert op.advance(everything) == Progress(stop=["ps"])
    assert op.advance({**everything, "ps": Proc(state=S.STOPPING, pid=3, deadline=9.0)}) == Progress()
    assert op.advance({**everything, "ps": Proc()}) == Progress(stop=["is", "svg"])
    assert op.advance(procs({"is": S.STOPPING, "svg": S.STOPPED})) == Progress()
    assert op.advance(procs()) == Progress(done=True)


@pytest.mark.parametrize("settled", [S.STOPPED, S.EXITED, S.FATAL])
def test_stop_counts_every_settled_state_as_stopped(settled: State) -> None:
    op = Operation("stop", [["ps"]], since=0.0)
    op.advance(procs(ps=up()))
    assert op.advance(procs(ps=settled)) == Progress(done=True)


def test_stop_gives_up_on_a_process_alive_after_sigkill_and_goes_on() -> None:
    op = Operation("stop", [["ps"], ["is", "svg"]], since=0.0)
    op.advance(procs(ps=up()))
    killed = Proc(state=S.STOPPING, pid=None, killed=True, deadline=12.0)  # SIGKILL sent, grace running
    assert op.advance(procs(ps=killed)) == Progress()
    stuck = replace(killed, deadline=None, message="still alive 5s after SIGKILL")
    assert op.advance(procs(ps=stuck)) == Progress(stop=["is", "svg"])
    assert op.advance(procs(ps=stuck)) == Progress(done=True, failed=["ps"])


# -------------------------------------------------------------------- restart


def test_restart_waits_for_a_process_started_after_the_request() -> None:
    op = Operation("restart", [["is"]], since=100.0)
    assert op.advance(procs({"is": up(since=5.0)})) == Progress(restart=["is"])
    # the old process is still RUNNING: not done
    assert op.advance(procs({"is": up(since=5.0)})) == Progress()
    assert op.advance(procs({"is": Proc(state=S.STOPPING, pid=1)})) == Progress()
    assert op.advance(procs({"is": Proc(state=S.STARTING, pid=2)})) == Progress()
    assert op.advance(procs({"is": up(since=100.0)})) == Progress(done=True)  # >= since


def test_restart_that_ends_fatal_fails() -> None:
    op = Operation("restart", [["is"]], since=100.0)
    op.advance(procs({"is": up(since=5.0)}))
    assert op.advance(procs({"is": S.FATAL})) == Progress(done=True, failed=["is"], not_started=[])


# ------------------------------------------------- with the real state machine


def test_start_then_stop_against_the_state_machine() -> None:
    """Operation and step() together, as the supervisor's loop drives them."""
    cfg = {
        cid: ComponentConfig(
            id=cid,
            command=("x",),
            start_delay=0.0,
            ready=None,
            start_retries=2,
            backoff=Backoff(initial=1.0, max=1.0),
        )
        for cid in IDS
    }
    recs = {cid: Proc() for cid in IDS}
    order: list[tuple[str, str]] = []
    now = 0.0

    def send(progress: Progress) -> None:
        events: list[tuple[str, Event]] = [("start", Start()), ("stop", Stop()), ("restart", Restart())]
        for kind, event in events:
            for cid in getattr(progress, kind):
                order.append((kind, cid))
                recs[cid], _ = step(recs[cid], cfg[cid], event, now)

    def loop(op: Operation) -> Progress:
        nonlocal now
        for _ in range(50):
            progress = op.advance(recs)
            send(progress)
            if progress.done:
                return progress
            now += 0.5
            for cid in IDS:  # the executor: processes appear, then vanish when stopped
                if recs[cid].state == S.STARTING and recs[cid].pid is None:
                    recs[cid] = replace(recs[cid], pid=1000 + IDS.index(cid))
                recs[cid], _ = step(recs[cid], cfg[cid], Tick(), now)
                if recs[cid].state == S.STOPPING:
                    recs[cid], _ = step(replace(recs[cid], pid=None), cfg[cid], TreeGone(), now)
        raise AssertionError("operation did not finish")

    assert loop(Operation("start", [list(g) for g in GROUPS], since=now)) == Progress(done=True)
    assert all(r.state == S.RUNNING for r in recs.values())
    assert order == [("start", "is"), ("start", "svg"), ("start", "ps")]
    # ps came up only after both of the first group were RUNNING
    assert (recs["ps"].running_since or 0) > max(
        recs["is"].running_since or 0, recs["svg"].running_since or 0
    )

    order.clear()
    since = now
    assert loop(Operation("restart", [["svg"]], since=since)) == Progress(done=True)
    assert recs["svg"].restarts == 1 and (recs["svg"].running_since or 0) >= since

    order.clear()
    assert loop(Operation("stop", [list(g) for g in reversed(GROUPS)], since=now)) == Progress(done=True)
    assert order == [("stop", "ps"), ("stop", "is"), ("stop", "svg")]
    assert all(r.state == S.STOPPED for r in recs.values())
