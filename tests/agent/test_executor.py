"""The supervisor's executor with a fake ProcessOps (no real process): what it asks of the OS, and when.

And the adoption rules after a crash, against real /proc entries of this test's own processes.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
from collections.abc import Iterable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from imageserving_fleet.agent import ownership
from imageserving_fleet.agent.adoption import component_digest, refusal
from imageserving_fleet.agent.config import AgentConfig, Backoff, ComponentConfig
from imageserving_fleet.agent.memory import Memory
from imageserving_fleet.agent.ownership import Owned
from imageserving_fleet.agent.processes import LogSpec
from imageserving_fleet.agent.states import Proc, Start, State, Tick
from imageserving_fleet.agent.supervisor import Supervisor
from imageserving_fleet.home import Home


class FakeOps:
    """Records every call; `alive` says which pids the OS would still report for a component."""

    cgroups = True

    def __init__(self) -> None:
        self.spawned: list[str] = []
        self.signals: list[tuple[str, int]] = []
        self.alive: dict[str, list[int]] = {}
        self.exits: list[tuple[int, int]] = []
        self.next_pid = 1000

    def spawn(self, cfg: ComponentConfig, log: LogSpec, env: dict[str, str]) -> Owned:
        self.next_pid += 1
        self.spawned.append(cfg.id)
        self.alive[cfg.id] = [self.next_pid]
        return Owned(cfg.id, self.next_pid, 1, None)

    def members(self, owned: Owned) -> list[int]:
        return list(self.alive.get(owned.id, []))

    def signal(self, owned: Owned, signo: int) -> None:
        self.signals.append((owned.id, signo))

    def reap(self) -> list[tuple[int, int]]:
        out, self.exits = self.exits, []
        return out

    def watch(self, pid: int) -> int | None:
        return None

    def measure(self, owned: Owned) -> Memory | None:
        pids = self.alive.get(owned.id, [])
        return Memory(4096 * len(pids), 1024 * len(pids), 512 * len(pids)) if pids else None

    def claim_orphans(self, owned: Iterable[Owned], known: set[int]) -> list[Owned]:
        return []

    def release(self, owned: Owned) -> None:
        pass


@pytest.fixture
def sup(tmp_path: Path) -> Iterator[tuple[Supervisor, FakeOps]]:
    home = Home(str(tmp_path / "h"))
    home.prepare()
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(tmp_path / "s"))
    comp = ComponentConfig(id="is", command=("x",), start_delay=0.0, restart="always",
                           backoff=Backoff(initial=0.0, max=0.0, reset_after=60.0))
    ops = FakeOps()
    s = Supervisor(AgentConfig(path="t.yaml", components=(comp,)), home, listener, ops=ops)
    yield s, ops
    listener.close()


def test_a_crash_kills_the_tree_and_respawns_only_once_it_is_gone(sup: tuple[Supervisor, FakeOps]) -> None:
    s, ops = sup
    s.feed("is", Start())
    s.feed("is", Tick())
    assert s.procs["is"].state == State.RUNNING and ops.spawned == ["is"]
    first = s.procs["is"].pid
    assert first is not None
    ops.alive["is"] = [first + 500]              # the main process died; a grandchild lives on
    ops.exits = [(first, 1 << 8)]                # exit 1
    s.reap()
    assert ("is", signal.SIGKILL) in ops.signals  # sent, not waited for inside the loop
    assert ops.spawned == ["is"] and "is" in s.pending_spawn   # the port may still be held
    s.turn()
    assert ops.spawned == ["is"]
    ops.alive["is"] = []                          # the SIGKILL took effect
    s.turn()
    assert ops.spawned == ["is", "is"] and s.procs["is"].restarts == 1 and not s.pending_spawn


def test_memory_and_stop_use_the_same_set(sup: tuple[Supervisor, FakeOps]) -> None:
    s, ops = sup
    s.feed("is", Start())
    s.feed("is", Tick())
    pid = s.procs["is"].pid
    assert pid is not None
    ops.alive["is"] = [pid, pid + 1, pid + 2]
    doc = s.status_doc(None)
    assert doc["components"][0]["rss_bytes"] == 3 * 4096 and doc["components"][0]["pss_bytes"] == 3 * 1024
    assert s.tree_alive("is")


# ------------------------------------------------------------------ adoption after a crash


@pytest.fixture
def piped_child() -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """A real process whose stdout is a pipe read by us (the 'relay' is this test process)."""
    r, w = os.pipe()
    child = subprocess.Popen(["sleep", "60"], stdout=w)
    os.close(w)
    yield child, os.fstat(r).st_ino
    child.kill()
    child.wait()
    os.close(r)


def _case(child: subprocess.Popen[bytes], pipe: int) -> tuple[dict[str, object], Owned, Proc, AgentConfig]:
    comp = ComponentConfig(id="is", command=("sleep", "60"))
    me = (os.getpid(), ownership.start_of(os.getpid()) or 0)
    owned = Owned("is", child.pid, ownership.start_of(child.pid), None, relay=me, pipe=pipe, child=False)
    rec: dict[str, object] = {"digest": component_digest(comp)}
    return rec, owned, Proc(state=State.RUNNING, pid=child.pid), AgentConfig(path="a.yaml", components=(comp,))


def test_an_unchanged_running_component_whose_output_reaches_its_relay_is_adopted(
        piped_child: tuple[subprocess.Popen[bytes], int]) -> None:
    rec, owned, proc, cfg = _case(*piped_child)
    assert refusal(rec, owned, proc, cfg, "is.log") == ""


@pytest.mark.parametrize("change, why", [
    ("removed", "no longer in the configuration"),
    ("digest", "its configuration changed"),
    ("main", "its main process"),
    ("state", "it was BACKOFF, not RUNNING"),
    ("relay", "its output no longer reaches is.log"),
])
def test_leftovers_that_cannot_be_adopted_say_why(piped_child: tuple[subprocess.Popen[bytes], int],
                                                   change: str, why: str) -> None:
    rec, owned, proc, cfg = _case(*piped_child)
    if change == "removed":
        cfg = AgentConfig(path="a.yaml", components=(ComponentConfig(id="ps", command=("x",)),))
    elif change == "digest":
        rec["digest"] = "0" * 64
    elif change == "main":
        owned.start = (owned.start or 0) + 1   # same pid, another process
    elif change == "state":
        proc = replace(proc, state=State.BACKOFF)
    else:
        owned.relay = (owned.relay[0], owned.relay[1] + 1) if owned.relay else None
    assert why in refusal(rec, owned, proc, cfg, "is.log")
