"""`start`'s wait for a new supervisor follows its progress (SPEC §2), never a fixed 30 s."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from imageserving_fleet.agent import control
from imageserving_fleet.errors import ComponentError
from imageserving_fleet.home import Home


def _supervisor_saying(lines: list[tuple[float, bytes]]) -> int:
    """A pipe on which a pretend supervisor writes each line that many seconds after the previous one."""
    r, w = os.pipe()

    def talk() -> None:
        try:
            for pause, line in lines:
                time.sleep(pause)  # pacing the pretend supervisor, not waiting for anything
                os.write(w, line)
        except BrokenPipeError:
            pass  # the starter gave up first
        os.close(w)

    threading.Thread(target=talk, daemon=True).start()
    return r


def test_a_wait_announced_while_stopping_leftovers_moves_the_deadline(monkeypatch: pytest.MonkeyPatch,
                                                                        tmp_path: Path) -> None:
    monkeypatch.setattr(control, "START_TIMEOUT", 0.3)
    fd = _supervisor_saying([(0.0, b"WAIT 60 stopping is left by a dead supervisor\n"), (0.6, b"READY 4242\n")])
    assert control._follow_launch(Home(str(tmp_path)), fd) == "READY 4242"


def test_silence_past_the_deadline_is_an_error_naming_the_log(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(control, "START_TIMEOUT", 0.3)
    fd = _supervisor_saying([(1.0, b"READY 4242\n")])
    with pytest.raises(ComponentError, match="said nothing for 0.3s; see .*Supervisor.log"):
        control._follow_launch(Home(str(tmp_path)), fd)
