"""results.py: the verdict from what the agent did (table tests), and the --json entry, which
passes the host's status document on field for field while the code reads it typed."""

from __future__ import annotations

import json
from typing import Any

import pytest

from imageserving_fleet.fleet.results import HostResult, Result, Via, classify, version_result
from imageserving_fleet.schema import AgentStatus


def doc(sup: str = "RUNNING", *states: str, **more: Any) -> dict[str, Any]:
    return {"schema": 1, "host": "h", "agent_version": "1", "time": "t", "supervisor": {"state": sup, "pid": 1},
            "components": [{"id": f"c{i}", "state": s} for i, s in enumerate(states)], "message": "", **more}


@pytest.mark.parametrize(("command", "code", "stdout", "stderr", "result", "reason"), [
    ("status", 0, doc("RUNNING", "RUNNING"), "", Result.OK, ""),
    ("status", 1, doc("RUNNING", "RUNNING", "FATAL"), "", Result.DEGRADED, "not RUNNING: c1 FATAL"),
    ("status", 3, doc("STOPPED", message="Server Supervisor is not running"), "", Result.FAILED,
     "Server Supervisor is not running"),
    ("restart", 1, doc("RUNNING", "RUNNING"), "imageserving: is did not become ready", Result.FAILED,
     "is did not become ready"),
    ("stop", 0, doc("STOPPED"), "", Result.OK, ""),
    ("status", 127, "", "sh: 1: imageserving: not found", Result.UNREACHABLE, "agent missing: sh: 1: imageserving: not found"),
    ("status", 0, "this is not JSON", "", Result.FAILED, "bad JSON"),
    ("status", 0, {"schema": 2}, "", Result.FAILED, "bad status: unsupported status schema 2"),
    ("status", 2, "", "imageserving: bad option", Result.FAILED, "agent error (exit 2): bad option"),
])
def test_classify(command: str, code: int, stdout: Any, stderr: str, result: Result, reason: str) -> None:
    out = stdout if isinstance(stdout, str) else json.dumps(stdout)
    res = classify("h", command, code, out.encode(), stderr.encode(), 0.5)
    assert res.result == result and res.reason.startswith(reason), res


def test_the_status_is_typed_and_the_json_entry_is_what_the_host_sent() -> None:
    sent = doc("RUNNING", "RUNNING", future_field={"x": [1, 2]})
    sent["supervisor"].update(socket="/srv/is/run/control.sock", config_digest="sha256:ab", newer="kept")
    sent["components"][0].update(health="ok", uptime_s=12)  # fields of a newer agent
    res = classify("h", "status", 0, json.dumps(sent).encode(), b"", 0.25)
    assert isinstance(res.status, AgentStatus)
    assert res.status.supervisor.socket == "/srv/is/run/control.sock"
    assert res.status.supervisor.config_digest == "sha256:ab"
    assert res.component("c0") is not None and res.component("c0").uptime_s == 12  # type: ignore[union-attr]
    assert res.to_dict() == {"host": "h", "result": "ok", "reason": "", "status": sent, "elapsed_s": 0.25}


def test_version_result() -> None:
    assert version_result("h", 0, b"imageserving 1.2.3\n", b"", 0.1).agent_version == "1.2.3"
    assert version_result("h", 127, b"", b"", 0.1).result == Result.UNREACHABLE
    assert version_result("h", 0, b"something else", b"", 0.1).result == Result.FAILED


@pytest.mark.parametrize("result, tail", [
    (HostResult("h", Result.OK), ""),
    (HostResult("h", Result.OK, via=Via.SOCKET), ', "via": "socket"'),
    (HostResult("h", Result.OK, via=Via.EXEC, worker="tcp://w:1", clustered=True), ', "via": "exec", "worker": "tcp://w:1"'),
    (HostResult("h", Result.SKIPPED, clustered=True), ', "worker": null'),
    (HostResult("h", Result.OK, agent_version="1.2"), ', "agent_version": "1.2"'),
    (HostResult("h", Result.OK, lines=("a", "b")), ', "lines": ["a", "b"]'),
    (HostResult("h", Result.OK, worker="ignored"), ""),  # not a --cluster run: no "worker" key
])
def test_a_hosts_json_entry_byte_for_byte(result: HostResult, tail: str) -> None:
    head = f'{{"host": "h", "result": "{result.result}", "reason": "", "status": null, "elapsed_s": 0.0'
    assert json.dumps(result.to_dict()) == head + tail + "}"
