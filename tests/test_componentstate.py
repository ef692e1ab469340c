"""componentstate: the states, and the one rule of which components count as down."""

from __future__ import annotations

import pytest

from imageserving_fleet.componentstate import SEVERITY, STATES, TONE, State, down_message, is_down, is_held
from imageserving_fleet.timefmt import parse_stamp, utc_stamp


@pytest.mark.parametrize(("state", "held", "named", "down"), [
    ("RUNNING", False, False, False),
    ("RUNNING", True, True, False),     # a hold that did not take yet: running is never down
    ("BACKOFF", False, False, True),
    ("FATAL", False, True, True),
    ("STOPPED", True, False, False),    # held down by the operator: no fault of the host
    ("STOPPED", True, True, True),      # ... unless the status named it (SPEC §2)
    ("STOPPED", False, False, True),
])
def test_is_down(state: str, held: bool, named: bool, down: bool) -> None:
    assert is_down(state, held, named) is down


@pytest.mark.parametrize(("state", "held", "expected"), [
    ("STOPPED", True, True), ("RUNNING", True, False), ("STOPPED", False, False)])
def test_is_held(state: str, held: bool, expected: bool) -> None:
    assert is_held(state, held) is expected


def test_every_state_has_a_severity_and_a_tone_and_a_decoded_name_finds_them() -> None:
    assert set(SEVERITY) == set(TONE) == set(State) and STATES == tuple(s.value for s in State)
    assert SEVERITY.get("FATAL") == max(SEVERITY.values()) and SEVERITY["RUNNING"] == 0
    assert TONE.get("RUNNING") == "ok"


def test_down_message() -> None:
    assert down_message(["is", "svg"]) == "not RUNNING: is, svg"


@pytest.mark.parametrize(("when", "text"), [(0.0, "1970-01-01T00:00:00Z"), (1796616306.9, "2026-12-07T04:05:06Z")])
def test_utc_stamp_round_trip(when: float, text: str) -> None:
    assert utc_stamp(when) == text and parse_stamp(text) == int(when)


@pytest.mark.parametrize("text", ["", "2026-12-07 04:05:06", "2026-12-07T04:05:06+0100", "x"])
def test_parse_stamp_refuses_other_forms(text: str) -> None:
    with pytest.raises(ValueError):
        parse_stamp(text)
