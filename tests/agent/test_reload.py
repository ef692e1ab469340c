"""`imageserving reload` with real processes: exactly the changed and added components get new pids."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import psutil

from .conftest import Agent, component, config, free_port, port_free, prog, wait_for


def stack(ports: dict[str, int], a_env: str = "one", with_c: bool = True, with_d: bool = False,
          e_env: str = "same", b_env: str = "same") -> str:
    blocks = [
        component("a", prog("listen", str(ports["a"])), ready={"tcp": f"127.0.0.1:{ports['a']}"}, env={"V": a_env}),
        component("b", prog("listen", str(ports["b"])), ready={"tcp": f"127.0.0.1:{ports['b']}"}, env={"V": b_env}),
        # e runs 1 s, crashes, restarts at once, crashes again: then BACKOFF for a minute
        component("e", prog("crash-later", "1"), start_priority=3, env={"V": e_env},
                  backoff={"initial": "60s", "max": "60s", "reset_after": "60s"}),
    ]
    if with_c:  # stubborn: ignores SIGTERM and leaves a grandchild outside its group holding the port
        blocks.append(component("c", prog("stubborn", str(ports["c"])), stop_timeout="1s", start_priority=2))
    if with_d:
        blocks.append(component("d", prog("listen", str(ports["d"])), ready={"tcp": f"127.0.0.1:{ports['d']}"},
                                start_priority=2))
    return config(*blocks)


def env_of(pid: int) -> str:
    return psutil.Process(pid).environ().get("V", "")


def reload(agent: Agent, *extra: str) -> tuple[int, dict, str]:
    proc = agent.run(*extra, "reload", "--json")
    return proc.returncode, json.loads(proc.stdout) if proc.stdout.strip() else {}, proc.stderr


def test_reload_restarts_changed_starts_added_stops_removed_keeps_the_rest(agent: Agent) -> None:
    ports = {k: free_port() for k in "abcd"}
    agent.write(stack(ports))
    agent.run("start")
    wait_for(lambda: agent.comp("e")["state"] == "BACKOFF", timeout=60)
    before, sup, digest = agent.pids(), agent.supervisor_pid(), agent.status()["supervisor"]["config_digest"]
    e_before = agent.comp("e")
    c_tree = [p.pid for p in agent.tagged() if p.pid != before["a"] and p.pid != before["b"]]
    assert len(digest) == 64

    agent.write(stack(ports, a_env="two", with_c=False, with_d=True))
    code, doc, err = reload(agent)
    assert code == 0, err
    assert doc["reload"] == {"added": ["d"], "removed": ["c"], "changed": ["a"], "unchanged": ["b", "e"]}
    after = agent.pids()
    assert set(after) == {"a", "b", "d", "e"}
    assert after["a"] != before["a"] and env_of(after["a"]) == "two"
    assert after["b"] == before["b"] and agent.supervisor_pid() == sup
    assert after["d"] and agent.comp("d")["state"] == "RUNNING"
    assert not any(psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE for p in c_tree)
    assert port_free(ports["c"])  # the grandchild that left the group is gone too
    e_after = agent.comp("e")  # untouched while in BACKOFF: same state, same count, no new pid
    assert (e_after["state"], e_after["restarts"], e_after["pid"]) == ("BACKOFF", e_before["restarts"], None)
    assert agent.status()["supervisor"]["config_digest"] != digest
    assert agent.comp("a")["restart_reason"] == "reload"

    # a changed component in BACKOFF is started again with its new settings at once
    agent.write(stack(ports, a_env="two", with_c=False, with_d=True, e_env="new"))
    code, doc, err = reload(agent)
    assert code == 0, err
    assert doc["reload"]["changed"] == ["e"]
    # as the reply saw it when the reload ended (e crashes again a second later, on its own schedule)
    e_new = next(c for c in doc["components"] if c["id"] == "e")
    assert (e_new["state"], e_new["restarts"], e_new["restart_reason"]) == ("RUNNING", e_before["restarts"] + 1,
                                                                            "reload")
    assert agent.pids()["a"] == after["a"] and agent.pids()["d"] == after["d"]


def test_a_broken_file_changes_nothing_and_a_held_component_stays_down(agent: Agent) -> None:
    ports = {k: free_port() for k in "abcd"}
    agent.write(stack(ports, with_c=False))
    agent.run("start")
    before, digest = agent.pids(), agent.status()["supervisor"]["config_digest"]
    agent.write(stack(ports, a_env="two", with_c=False).replace("    start_delay", "    start_dlay", 1))
    code, _, err = reload(agent)
    assert code == 6
    assert f"{agent.config}:" in err and "components.a.start_dlay" in err and "unknown key" in err
    after = agent.pids()
    assert (after["a"], after["b"]) == (before["a"], before["b"])  # e crashes on its own schedule
    assert agent.status()["supervisor"]["config_digest"] == digest

    assert agent.run("stop", "b").returncode == 0  # held down: a reload that changes it does not start it
    agent.write(stack(ports, with_c=False, b_env="changed"))
    code, doc, err = reload(agent)
    assert code == 0, err
    assert doc["reload"]["changed"] == ["b"]
    b = agent.comp("b")
    assert (b["state"], b["held"], b["message"]) == ("STOPPED", True, "stopped by operator")
    assert agent.pids()["a"] == before["a"]


def test_two_concurrent_reloads_do_not_interleave(agent: Agent, tmp_path: Path) -> None:
    ports = {k: free_port() for k in "abcd"}
    agent.write(stack(ports, with_c=False))
    agent.run("start")
    files = []
    for value in ("x", "y"):
        path = tmp_path / f"{value}.yaml"
        path.write_text(stack(ports, a_env=value, with_c=False))
        files.append(path)
    argv = [sys.executable, "-m", "imageserving_fleet.agent.main", "--home", str(agent.home)]
    procs = [subprocess.Popen([*argv, "--config", str(f), "reload", "--json"], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=agent.env) for f in files]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    docs = [json.loads(o[0]) for o in outs]
    assert [d["reload"]["changed"] for d in docs] == [["a"], ["a"]]  # each diffed against the one before
    log = agent.log()
    first, second = (log.index(f"reload from {f}") for f in sorted(files, key=lambda f: log.index(str(f))))
    assert first < log.index("a STARTING -> RUNNING", first) < second  # the first had ended before the second
    last = sorted(files, key=lambda f: log.index(str(f)))[-1]
    assert env_of(agent.pids()["a"]) == last.stem


def test_reload_and_start_id_without_a_supervisor_exit_7(agent: Agent) -> None:
    agent.write(stack({k: free_port() for k in "abcd"}))
    for args in (("reload",), ("start", "a")):
        proc = agent.run(*args)
        assert proc.returncode == 7 and "not running" in proc.stderr, (args, proc.stderr)
