"""damping: flap damping of notifications (pure), as tables of (time, change) -> what is sent."""

from __future__ import annotations

import pytest

from imageserving_fleet.damping import Gate, Send, due, next_due, offer

# Each step: ("offer", t, event) or ("due", t); the result: what was sent, as (t, event, suppressed).
Steps = list[tuple[str, float] | tuple[str, float, str]]


def play(steps: Steps, min_interval: float = 60.0) -> list[tuple[float, str, int]]:
    gate: Gate[str] = Gate()
    sent: list[tuple[float, str, int]] = []
    for step in steps:
        if step[0] == "offer":
            gate, send = offer(gate, step[2], step[1], min_interval)  # type: ignore[misc]
        else:
            gate, send = due(gate, step[1], min_interval)
        if send is not None:
            sent.append((step[1], send.event, send.suppressed))
    return sent


@pytest.mark.parametrize(("steps", "sent"), [
    # the first change goes at once
    ([("offer", 0, "failed")], [(0, "failed", 0)]),
    # changes far apart: each goes, nothing suppressed
    ([("offer", 0, "failed"), ("offer", 60, "ok"), ("offer", 500, "failed")],
     [(0, "failed", 0), (60, "ok", 0), (500, "failed", 0)]),
    # a flap inside the interval: held back; when due, the latest goes with the count before it
    ([("offer", 0, "failed"), ("offer", 5, "ok"), ("offer", 10, "failed"), ("offer", 15, "ok"),
      ("due", 30), ("due", 60)],
     [(0, "failed", 0), (60, "ok", 2)]),
    # flapping stopped inside the interval in the sent state: the receiver still hears the last word
    ([("offer", 0, "failed"), ("offer", 5, "ok"), ("offer", 10, "failed"), ("due", 61)],
     [(0, "failed", 0), (61, "failed", 1)]),
    # a new change after the interval with something held: the new one goes, counting all held back
    ([("offer", 0, "failed"), ("offer", 5, "ok"), ("offer", 70, "failed")],
     [(0, "failed", 0), (70, "failed", 1)]),
    # after a due send, a new interval starts from it
    ([("offer", 0, "a"), ("offer", 1, "b"), ("due", 60), ("offer", 61, "c"), ("due", 119), ("due", 120)],
     [(0, "a", 0), (60, "b", 0), (120, "c", 0)]),
    # due with nothing held sends nothing
    ([("offer", 0, "a"), ("due", 100), ("due", 1000)], [(0, "a", 0)]),
])
def test_damping(steps: Steps, sent: list[tuple[float, str, int]]) -> None:
    assert play(steps) == sent


def test_zero_interval_sends_everything() -> None:
    assert play([("offer", 0, "a"), ("offer", 0, "b"), ("offer", 0, "c")], min_interval=0) == [
        (0, "a", 0), (0, "b", 0), (0, "c", 0)]


def test_next_due() -> None:
    gate, _ = offer(Gate(), "a", 10.0, 60.0)
    assert next_due(gate, 60.0) is None                   # nothing held
    gate, send = offer(gate, "b", 20.0, 60.0)
    assert send is None and next_due(gate, 60.0) == 70.0
    assert due(gate, 69.9, 60.0) == (gate, None)
    assert due(gate, 70.0, 60.0)[1] == Send("b", 0)
