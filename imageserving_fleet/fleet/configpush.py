"""`config push FILE` and `reload` across the fleet, batch by batch like a rolling restart.

Each host gets the file on the agent's stdin and runs `imageserving config install` there: its
own agent validates it (as `config check` does), installs it atomically as the host's
imageserving_config (default /etc/imageserving/agent.yaml) keeping the previous file as `.prev`,
then reloads. A host that refuses the file keeps its old one and is `failed` with the agent's
own message; with --serial the next batch waits until this one is healthy (rolling.py).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from ..errors import ImageServingError
from .hooks import Hooks
from .httpgate import GateUrl
from .results import HostResult
from .rolling import Confirm, rolling
from .runner import Fleet, Job
from .target import Target

MAX_PUSH_BYTES = 4 * 2**20  # the agent refuses larger configurations anyway


def read_config_file(path: str) -> bytes:
    """The file to push, read on the controller; raises ImageServingError (exit 1: nothing contacted yet)."""
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_PUSH_BYTES + 1)
    except OSError as exc:
        raise ImageServingError(f"cannot read {path}: {exc.strerror or exc}") from None
    if len(data) > MAX_PUSH_BYTES:
        raise ImageServingError(f"{path}: larger than {MAX_PUSH_BYTES // 2**20} MiB: not an agent configuration")
    return data


def push_job(data: bytes) -> Job:
    """What every host runs: install from stdin, then reload (classified like a reload)."""
    return Job("reload", ("config", "install", "--json"), stdin=data)


RELOAD = Job("reload", ("reload", "--json"))


def push(fleet: Fleet, targets: Sequence[Target], data: bytes, serial: str | None, max_fail_percentage: float,
         on_batch: Callable[[int, int, list[str]], None] | None = None, *, hooks: Hooks | None = None,
         confirm: Confirm | None = None, gate: GateUrl | None = None) -> list[HostResult]:
    return rolling(fleet, targets, push_job(data), serial, max_fail_percentage, on_batch, verb="config push",
                   hooks=hooks, confirm=confirm, gate=gate)


def reload(fleet: Fleet, targets: Sequence[Target], serial: str | None, max_fail_percentage: float,
           on_batch: Callable[[int, int, list[str]], None] | None = None, *, hooks: Hooks | None = None,
           confirm: Confirm | None = None, gate: GateUrl | None = None) -> list[HostResult]:
    return rolling(fleet, targets, RELOAD, serial, max_fail_percentage, on_batch, verb="reload",
                   hooks=hooks, confirm=confirm, gate=gate)
