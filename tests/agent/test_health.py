"""Liveness checks with real processes: a SIGSTOPped server is restarted, a never-healthy one ends
FATAL without a storm, a hung check never delays a status answer, and a held-down component stays
down through a neighbour's health restart.

Timing bounds (restart within failures × interval + stop_timeout + 1 s, status latency under a hung
check) are figures in bench/agent.py, not asserts here: this machine is shared and a test must pass
on one ten times slower. The tests assert what happened, and lower bounds (backoff delays).
"""

from __future__ import annotations

import os
import re
import signal
import socket
import threading
from datetime import datetime

import psutil

from imageserving_fleet.agent import client
from imageserving_fleet.home import Home

from .conftest import Agent, component, config, free_port, prog, wait_for

# Short, but with a timeout a loaded machine's healthy server still meets: a spurious restart would
# only add to `restarts`, which the tests therefore bound from below.
FAST_HEALTH = {"interval": "1s", "timeout": "800ms", "failures": 2, "start_period": "0s"}


def http_component(cid: str, port: int, **settings: object) -> str:
    return component(cid, prog("http", str(port)), ready={"tcp": f"127.0.0.1:{port}"},
                     health={"http": f"http://127.0.0.1:{port}/healthz", **FAST_HEALTH}, **settings)


def test_a_sigstopped_http_component_is_restarted_as_unhealthy(agent: Agent) -> None:
    port, other = free_port(), free_port()
    agent.write(config(http_component("ps", port),
                       component("is", prog("listen", str(other)), ready={"tcp": f"127.0.0.1:{other}"})))
    agent.run("start", check=True)
    wait_for(lambda: agent.comp("ps").get("health") == "healthy", timeout=30)
    before = agent.pids()
    os.kill(before["ps"], signal.SIGSTOP)  # hung: the pid exists, the port accepts, nothing answers
    try:
        ps = wait_for(lambda: (c := agent.comp("ps"))["pid"] not in (None, before["ps"])
                      and c["state"] == "RUNNING" and c, timeout=60)
    finally:
        try:
            os.kill(before["ps"], signal.SIGCONT)
        except OSError:
            pass
    assert ps["restart_reason"].startswith("unhealthy: http http://127.0.0.1:")
    assert ps["restarts"] >= 1 and ps["last_health_error"]
    assert not psutil.pid_exists(before["ps"]) or psutil.Process(before["ps"]).status() == psutil.STATUS_ZOMBIE
    assert agent.pids()["is"] == before["is"]  # the neighbour keeps its pid
    assert "2 health check(s) failed in a row" in agent.log()
    human = agent.run("status").stdout
    assert "HEALTH" in human and "last restart: unhealthy" in human


def _times(log: str, pattern: str) -> list[float]:
    out = []
    for line in log.splitlines():
        if re.search(pattern, line):
            out.append(datetime.fromisoformat(line.split(" ", 1)[0]).timestamp())
    return out


def test_a_never_healthy_component_ends_fatal_with_backoff_between_restarts(agent: Agent) -> None:
    port, dead = free_port(), free_port()
    agent.write(config(component(
        "ps", prog("listen", str(port)), ready={"tcp": f"127.0.0.1:{port}"}, start_retries=3,
        backoff={"initial": "400ms", "max": "10s", "reset_after": "60s"},
        health={"tcp": f"127.0.0.1:{dead}", "interval": "200ms", "timeout": "100ms", "failures": 1,
                "start_period": "0s"})))
    agent.run("start")  # its start itself succeeds: it is RUNNING before its first check
    ps = wait_for(lambda: (c := agent.comp("ps"))["state"] == "FATAL" and c, timeout=60)
    assert ps["restarts"] <= 3 and "gave up after 3 failed start(s)" in ps["message"]
    assert ps["restart_reason"].startswith("unhealthy: tcp 127.0.0.1:")
    log = agent.log()
    assert "retry 1/2 in 0.4s" in log and "retry 2/2 in 0.8s" in log
    backoff_at = _times(log, r"ps STOPPING -> BACKOFF")
    respawn_at = _times(log, r"ps BACKOFF -> STARTING")
    assert len(backoff_at) == len(respawn_at) == 2
    for delay, (went, came) in zip((0.4, 0.8), zip(backoff_at, respawn_at, strict=True), strict=True):
        assert came - went >= delay - 0.01  # it waited its backoff: no restart storm
    assert agent.run("status").returncode == 1


class Silent:
    """A TCP server that accepts and never answers: what a deadlocked Tomcat looks like from outside."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.conns: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(conn)

    def open_connections(self) -> int:
        """Connections the checker still holds open (it closes its socket when the check ends)."""
        n = 0
        for conn in self.conns:
            conn.setblocking(False)
            try:
                if conn.recv(1, socket.MSG_PEEK) == b"":
                    continue
                n += 1  # sent its request and waits for us
            except BlockingIOError:
                n += 1
            except OSError:
                continue
        return n


def test_a_hung_health_check_never_delays_a_status_answer(agent: Agent) -> None:
    silent, port = Silent(), free_port()
    agent.write(config(component(
        "ps", prog("listen", str(port)), ready={"tcp": f"127.0.0.1:{port}"},
        health={"http": f"http://127.0.0.1:{silent.port}/healthz", "interval": "30s", "timeout": "20s",
                "failures": 3, "start_period": "0s"})))
    agent.run("start", check=True)
    wait_for(lambda: silent.open_connections() >= 1, timeout=30)  # the check is out, waiting on the silence
    home = Home(str(agent.home.resolve()))
    reply = client.request(home, {"cmd": "status", "ids": []}, timeout=10)
    assert reply["status"] == "ok" and reply["result"]["components"][0]["state"] == "RUNNING"
    assert reply["result"]["components"][0]["health"] == "starting"
    assert silent.open_connections() >= 1  # the answer came while the check was still outstanding
    assert reply["result"]["supervisor"]["socket"] == home.socket


def test_held_component_stays_down_through_a_neighbours_health_restart(agent: Agent) -> None:
    is_port, ps_port = free_port(), free_port()
    agent.write(config(component("is", prog("listen", str(is_port)), ready={"tcp": f"127.0.0.1:{is_port}"}),
                       http_component("ps", ps_port, start_priority=2)))
    agent.run("start", check=True)
    stopped = agent.run("stop", "is", "--json")
    assert stopped.returncode == 0, stopped.stderr
    is_ = agent.comp("is")
    assert (is_["state"], is_["held"], is_["message"]) == ("STOPPED", True, "stopped by operator")
    assert agent.run("status").returncode == 0  # held down is not a failure of the host
    assert agent.run("status", "is").returncode == 1  # but asked by name, it is not RUNNING
    wait_for(lambda: agent.comp("ps").get("health") == "healthy", timeout=30)
    ps_pid = agent.pids()["ps"]
    os.kill(ps_pid, signal.SIGSTOP)
    try:
        wait_for(lambda: (c := agent.comp("ps"))["pid"] not in (None, ps_pid) and c["state"] == "RUNNING",
                 timeout=60)
    finally:
        try:
            os.kill(ps_pid, signal.SIGCONT)
        except OSError:
            pass
    is_ = agent.comp("is")
    assert (is_["state"], is_["held"], is_["pid"]) == ("STOPPED", True, None)
    started = agent.run("start", "is")
    assert started.returncode == 0, started.stderr
    is_ = agent.comp("is")
    assert (is_["state"], is_["held"]) == ("RUNNING", False)
