"""Hosts played in memory for MockConnector: each answers the agent's commands as a real agent would.

    hosts = FakeHosts(["a", "b"])              every component RUNNING, agent 9.9
    ctx = hosts.context(tmp_path, Command.X)   the run context of those hosts (a real inventory file)
    with hosts.fleet() as fleet: ...           runner.Fleet on a MockConnector answered by hosts.answer

What each host was asked is in `hosts.calls` (host, agent argv), in the order the hosts were asked.
"""

from __future__ import annotations

import json
import re
import shlex
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from imageserving_fleet.fleet.context import Command, RunContext, resolve
from imageserving_fleet.fleet.options import Options
from imageserving_fleet.fleet.runner import Fleet
from imageserving_fleet.fleet.ssh import CommandResult
from imageserving_fleet.fleet.ssh.mock import MockConnector, MockRequest

_AGENT = re.compile(r'exec "\$a" ([^;)]*)')
IDS = ("ps", "is", "svg")


def agent_argv(command: str) -> list[str]:
    """The agent's arguments inside the framed command line a session was asked to run."""
    inner = shlex.split(command)[-1]  # exec /bin/sh -c '<script>'
    match = _AGENT.search(inner)
    assert match, command
    return shlex.split(match.group(1))


def status_doc(host: str, states: dict[str, str], supervisor: str = "RUNNING", held: frozenset[str] = frozenset()
               ) -> dict[str, Any]:
    return {"schema": 1, "host": host, "agent_version": "9.9", "time": "2026-12-07T00:00:00Z",
            "supervisor": {"state": supervisor, "pid": 1 if supervisor == "RUNNING" else None},
            "components": [{"id": cid, "state": state, "held": cid in held} for cid, state in states.items()],
            "message": "" if supervisor == "RUNNING" else "Server Supervisor is not running"}


class FakeHosts:
    """Agents on named hosts; per host: component states, how many status polls it stays STARTING
    after a restart (`slow`), whether its actions fail (`failing`), a hook run on every call (`on_call`)."""

    def __init__(self, names: list[str], *, host_vars: dict[str, dict[str, Any]] | None = None) -> None:
        self.names = names
        self.host_vars = host_vars or {}
        self.states = {n: dict.fromkeys(IDS, "RUNNING") for n in names}
        self.supervisor = dict.fromkeys(names, "RUNNING")
        self.held: dict[str, set[str]] = {n: set() for n in names}
        self.slow: dict[str, int] = {}
        self.failing: set[str] = set()
        self.calls: list[tuple[str, list[str]]] = []
        self.stdin: dict[str, bytes | None] = {}
        self.on_call: Callable[[str, list[str]], None] | None = None
        self.lock = threading.Lock()

    # ----------------------------------------------------------- the run
    def context(self, tmp_path: Path, command: Command, **options: Any) -> RunContext:
        inventory = tmp_path / "hosts.yml"
        hosts = {n: {"ansible_host": "127.0.0.1", **self.host_vars.get(n, {})} for n in self.names}
        inventory.write_text(json.dumps({"all": {"hosts": hosts}}))
        return resolve(Options(inventory=(str(inventory),), **options), {}, command)

    def fleet(self, *, timeout: float = 60.0, forks: int = 10) -> Fleet:
        return Fleet(MockConnector(self.answer), forks=forks, timeout=timeout)

    def asked(self, verb: str) -> list[str]:
        """The hosts asked `verb` (an agent subcommand or flag), in order."""
        return [h for h, argv in self.calls if argv and argv[0] == verb]

    # ----------------------------------------------------------- one agent
    def answer(self, request: MockRequest) -> CommandResult:
        host, argv = request.host, agent_argv(request.command)
        with self.lock:
            self.calls.append((host, argv))
            self.stdin[host] = request.stdin
        if self.on_call is not None:
            self.on_call(host, argv)
        verb = argv[0]
        if verb == "--version":
            return CommandResult(0, b"imageserving 9.9\n", b"")
        if verb == "logs":
            return CommandResult(0, f"{host} line 1\n{host} line 2\n".encode(), b"")
        if verb in ("start", "stop", "restart", "reload", "config") and host in self.failing:
            return CommandResult(1, self._doc(host), f"imageserving: {verb} failed on {host}\n".encode())
        if verb == "restart":
            with self.lock:
                if self.slow.get(host):
                    self.states[host]["is"] = "STARTING"
        elif verb == "stop" and len(argv) > 2:
            self.held[host].add(argv[1])
            self.states[host][argv[1]] = "STOPPED"
        elif verb == "stop":
            self.supervisor[host] = "STOPPED"
        elif verb == "start":
            self.supervisor[host] = "RUNNING"
            for cid in argv[1:-1] or IDS:
                self.held[host].discard(cid)
                self.states[host][cid] = "RUNNING"
        elif verb == "status":
            with self.lock:
                if self.states[host]["is"] == "STARTING":
                    self.slow[host] -= 1
                    if self.slow[host] < 0:
                        self.states[host]["is"] = "RUNNING"
            code = 0 if all(s == "RUNNING" for s in self.states[host].values()) else 1
            ids = [a for a in argv[1:] if a != "--json"]
            return CommandResult(code, self._doc(host, ids), b"")
        return CommandResult(0, self._doc(host), b"")

    def _doc(self, host: str, ids: list[str] | None = None) -> bytes:
        states = {c: s for c, s in self.states[host].items() if not ids or c in ids}
        if self.supervisor[host] != "RUNNING":
            states = {}
        return json.dumps(status_doc(host, states, self.supervisor[host], frozenset(self.held[host]))).encode()
