"""Helpers for the SSH layer's tests: targets for the test sshd, deadlines, polling."""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable
from typing import Any

import pytest

from imageserving_fleet.errors import UnreachableError
from imageserving_fleet.fleet.target import FleetOptions, Target, make_target
from tests.sshd import SshServer


def target_for(server: SshServer, options: FleetOptions, name: str = "h1", **vars: Any) -> Target:
    return make_target(name, {"ansible_host": server.host, "ansible_port": server.port, **vars}, options)


def unreachable(call: Callable[[], object]) -> tuple[UnreachableError, float]:
    """Runs `call`, expecting UnreachableError; returns it and how long it took."""
    start = time.monotonic()
    with pytest.raises(UnreachableError) as caught:
        call()
    return caught.value, time.monotonic() - start


def soon(seconds: float = 10.0) -> float:
    return time.monotonic() + seconds


# Deadlines here are checked against bounds a machine ten times slower than this one still meets,
# yet far below what the failure would take if the deadline did not hold (a command that would
# run for minutes, a port that never answers). The real latencies are measured in bench/deadlines.py.
SLOW = 30.0     # generous bound on "promptly"
FOREVER = 120   # what the command or the silent port would take if nothing stopped it


def patient(options: FleetOptions) -> FleetOptions:
    """The options with a connect timeout so long that only the deadline under test can bite."""
    return dataclasses.replace(options, connect_timeout=float(FOREVER))


def wait_until(condition: Callable[[], bool], seconds: float = 60.0) -> bool:
    """Polls `condition` until it holds or `seconds` pass; returns whether it held."""
    end = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > end:
            return False
        time.sleep(0.02)
    return True


NO_OPTIONS = FleetOptions()


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead for our purpose: its parent (the killed shell) is gone.
    with open(f"/proc/{pid}/stat") as handle:
        return handle.read().split()[2] != "Z"
