"""deploy's activation: what the host's `imageserving restart supervisor --json` answer means."""

from __future__ import annotations

import json

import pytest

from imageserving_fleet.fleet.deploy.activate import interpret

DOC = json.dumps({"schema": 1, "supervisor": {"state": "RUNNING", "pid": 4242}, "components": []}).encode()


@pytest.mark.parametrize(("code", "stdout", "stderr", "activated", "pid", "ok", "words"), [
    (0, DOC, b"", "restarted", 4242, True, ""),
    (0, b"Welcome to host\n" + DOC + b"\n", b"", "restarted", 4242, True, ""),   # a login shell's noise
    (7, b"", b"imageserving: Server Supervisor is not running; use `imageserving start`\n", "not running", None,
     True, "next start"),
    (1, b"", b"imageserving: the new Server Supervisor failed: boom; see Supervisor.log\n", "failed", None, False,
     "the new Server Supervisor failed: boom"),
    (2, b"", b"imageserving: bad request: unknown command 'handover'\n", "failed", None, False,
     "predates `restart supervisor`"),
    (255, b"", b"", "failed", None, False, "exit 255"),
])
def test_interpret(code: int, stdout: bytes, stderr: bytes, activated: str, pid: int | None, ok: bool,
                   words: str) -> None:
    got = interpret(code, stdout, stderr)
    assert (got.activated, got.pid, got.ok) == (activated, pid, ok)
    assert words in got.detail
