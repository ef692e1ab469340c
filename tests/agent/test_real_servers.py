"""Ownership with real servers (SPEC §2): nginx (master + 2 workers), Tomcat 10, a detaching daemon,
a Python server and a component printing without pause, under one supervisor per module.

What only real processes prove: every process a component started is found however it forks,
detaches or rewrites itself, while the supervisor runs and after its kill -9; `restart supervisor`
loses no line and touches no component; the two-fault nginx case ends with one clean copy.
The tests run in file order on one stack (each leaves it running for the next; the last stops it).
"""

from __future__ import annotations

import json
import os
import re
import signal
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from imageserving_fleet.agent import ownership, statefile

from .conftest import Agent, component, config, free_port, port_free, prog, wait_for
from .servers import nginx, tomcat

IDS = ("is", "ps", "svg", "dd", "out")


class Stack(Agent):
    ports: dict[str, int]

    def members(self) -> dict[str, list[int]]:
        """Every live process of each component, as the state file and its cgroup say."""
        doc = statefile.State.load(str(self.home / "run" / "components.json"))
        return {cid: ownership.members(ownership.Owned.from_dict(cid, rec))
                for cid, rec in doc.get("components", {}).items()}

    def workers(self) -> list[int]:
        """nginx's workers among is's processes (they rename themselves `nginx: worker process`)."""
        return [p for p in self.members()["is"] if _cmdline(p).startswith("nginx: worker")]

    def all_ports_free(self) -> bool:
        return all(port_free(p) for p in self.ports.values())


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("real")
    a = Stack(root)
    a.ports = {cid: free_port() for cid in ("is", "ps", "svg", "dd")}
    tc_argv, tc_env = tomcat(root / "tomcat", a.ports["ps"])
    a.write(config(
        component("is", nginx(root / "nginx", a.ports["is"]), ready={"tcp": f"127.0.0.1:{a.ports['is']}"},
                  stop_timeout="10s", start_priority=1),
        component("svg", prog("http", str(a.ports["svg"])), ready={"http": f"http://127.0.0.1:{a.ports['svg']}/"}),
        component("dd", prog("detach", str(a.ports["dd"])), ready={"tcp": f"127.0.0.1:{a.ports['dd']}"}),
        component("out", prog("count")),
        component("ps", tc_argv, env=tc_env, ready={"tcp": f"127.0.0.1:{a.ports['ps']}"}, ready_timeout="120s",
                  stop_timeout="20s", start_priority=2),
    ))
    a.run("start", check=True, timeout=180)
    yield a
    a.cleanup()


def test_every_process_is_found_while_the_supervisor_runs(stack: Stack) -> None:
    members = stack.members()
    assert len(members["is"]) == 3 and len(stack.workers()) == 2, members  # master + 2 workers
    grandchild = [p for p in members["dd"] if p != stack.pids()["dd"]]
    assert len(grandchild) == 1 and psutil.Process(grandchild[0]).environ() == {}  # detached, no tag
    status = {c["id"]: c for c in stack.status()["components"]}
    assert all(status[c]["state"] == "RUNNING" for c in IDS)
    # The memory figure counts the same set: nginx's three processes, not the master alone.
    assert status["is"]["rss_bytes"] > psutil.Process(status["is"]["pid"]).memory_info().rss


def test_restart_supervisor_under_load_and_with_a_held_component(stack: Stack) -> None:
    assert stack.run("stop", "svg").returncode == 0
    before, old_sup = stack.status(), stack.supervisor_pid()
    pids = {c["id"]: c["pid"] for c in before["components"]}
    proc = stack.run("restart", "supervisor")
    assert proc.returncode == 0, proc.stderr + stack.log()
    after = stack.status()
    assert after["supervisor"]["pid"] not in (None, old_sup)
    assert {c["id"]: c["pid"] for c in after["components"]} == pids
    comps = {c["id"]: c for c in after["components"]}
    assert comps["svg"]["held"] and comps["svg"]["state"] == "STOPPED"
    assert all(comps[c]["restarts"] == 0 and comps[c]["state"] == "RUNNING" for c in IDS if c != "svg")
    # The printing component wrote on through the handover: not one line lost, no broken pipe.
    last = _last_line(stack)
    wait_for(lambda: _last_line(stack) > last + 200)
    numbers = [int(m) for m in re.findall(r"^line (\d+)$", stack.log("out"), re.M)]
    assert numbers == list(range(1, len(numbers) + 1))
    assert "Broken pipe" not in stack.log("out")
    assert stack.run("start", "svg").returncode == 0


def test_supervisor_then_nginx_master_killed_then_start(stack: Stack) -> None:
    old = stack.members()["is"]
    master = stack.pids()["is"]
    os.kill(stack.supervisor_pid() or 0, signal.SIGKILL)
    os.kill(master, signal.SIGKILL)
    wait_for(lambda: ownership.stat(master) is None)
    assert [p for p in old if ownership.stat(p) is not None]  # its two workers serve on, orphaned
    proc = stack.run("start", timeout=180)
    assert proc.returncode == 0, proc.stderr + stack.log()
    comp = stack.comp("is")
    assert comp["state"] == "RUNNING" and comp["restarts"] == 0
    assert not [p for p in old if ownership.stat(p) is not None]  # no orphaned worker
    new = stack.members()["is"]
    assert len(new) == 3 and comp["pid"] in new and len(stack.workers()) == 2  # one master, two workers
    assert "is: stopping 2 process(es) left by a dead supervisor" in stack.log()
    assert all(f"{c}: adopted pid" in stack.log() for c in IDS if c != "is")  # the rest ran on untouched


def test_kill_9_then_status_names_orphans_and_stop_stops_them_all(stack: Stack) -> None:
    members = stack.members()
    everything = [p for pids in members.values() for p in pids]
    os.kill(stack.supervisor_pid() or 0, signal.SIGKILL)
    wait_for(lambda: not stack.run("status").returncode == 0)
    proc = stack.run("status", "--json")
    assert proc.returncode == 3
    orphans = {o["id"]: o["pids"] for o in json.loads(proc.stdout)["orphans"]}
    assert set(orphans) == set(IDS) and orphans["is"] == members["is"]
    assert "still running without it" in stack.run("status").stderr + stack.run("status").stdout
    proc = stack.run("stop", timeout=180)
    assert proc.returncode == 0, proc.stderr
    assert f"stopped {len(everything)} processes left by a dead supervisor" in proc.stdout + proc.stderr
    assert not [p for p in everything if ownership.stat(p) is not None]  # workers and grandchild included
    assert stack.all_ports_free()
    assert stack.run("status").returncode == 3
    assert not (stack.home / "run" / "components.json").exists()


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
    except OSError:
        return ""


def _last_line(stack: Stack) -> int:
    found = re.findall(r"^line (\d+)$", stack.log("out")[-2000:], re.M)
    return int(found[-1]) if found else 0
