"""After a deploy switched a host to a new build: `imageserving restart supervisor` there, so the new
agent code runs at once and no component restarts (SPEC §2, §3). `deploy --no-activate` skips it.

Pure interpretation of the host's answer, plus the one command that asks for it.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

from ..remote import agent_command, with_password
from ..ssh import Session
from ..target import Target

NOT_RUNNING = 7     # the agent's `restart supervisor` exit code when no supervisor runs: nothing to activate
BAD_ARGS = 2        # an agent (the running supervisor) that predates `restart supervisor`


@dataclass(frozen=True)
class Activation:
    """What `restart supervisor` did on one host: `activated` is one of "restarted", "not running",
    "failed"; `pid` the new supervisor's; `detail` the agent's message."""

    activated: str
    pid: int | None = None
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.activated != "failed"


def interpret(exit_code: int, stdout: bytes, stderr: bytes) -> Activation:
    """Takes the agent's exit code and output; returns the Activation."""
    said = (stderr.decode(errors="replace").strip().splitlines() or [""])[-1].removeprefix("imageserving: ")
    if exit_code == 0:
        pid = None
        for line in reversed(stdout.decode(errors="replace").splitlines()):
            try:
                doc = json.loads(line)
            except ValueError:
                continue
            if isinstance(doc, dict):
                pid = (doc.get("supervisor") or {}).get("pid")
                break
        return Activation("restarted", pid if isinstance(pid, int) else None)
    if exit_code == NOT_RUNNING:
        return Activation("not running", None, "no supervisor runs there: the next start uses the new agent")
    if exit_code == BAD_ARGS:
        said = f"the running supervisor predates `restart supervisor` ({said}); run `imageserving restart` there"
    return Activation("failed", None, said or f"exit {exit_code}")


def activate(session: Session, target: Target, deadline: float, stdin: bytes | None) -> Activation:
    """Runs `imageserving restart supervisor --json` with the host's new agent; never raises for its answer."""
    args = ["restart", "supervisor", "--json"]
    command = with_password(target, args) if stdin is not None else agent_command(target, args)
    out = session.run(command, stdin=stdin, timeout=max(0.01, deadline - time.monotonic()))
    return interpret(out.exit_code, out.stdout, out.stderr)
