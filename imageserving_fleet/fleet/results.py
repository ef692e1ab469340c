"""Per-host results and their aggregation: pure functions from agent output to fleet verdicts."""

from __future__ import annotations

import enum
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from ..componentstate import State
from ..schema import AgentStatus, ComponentStatus, SchemaError, parse_status
from ..verdict import Result
from .exitcodes import (  # noqa: F401 - re-exported: results.EXIT_* is where callers read them
    EXIT_BAD_OPTIONS,
    EXIT_BEFORE_HOSTS,
    EXIT_HOST_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_UNREACHABLE,
)
from .remote import AGENT_MISSING_EXIT as AGENT_MISSING


class Via(enum.StrEnum):
    """How a status was asked: over the supervisor's socket, or by running the agent."""

    SOCKET = "socket"
    EXEC = "exec"


@dataclass(frozen=True)
class Deployed:
    """What a deploy did on a host (its --json fields, in this order)."""

    action: str
    version: str
    imageserving_command: str
    venv: str
    uploaded: int
    transfer: str | None
    sftp_error: str | None = None   # why the files went piped; in the JSON only when set
    systemd: bool = False           # "systemd": "enabled" in the JSON only when true
    activated: str | None = None    # after a new build: "restarted", "not running" or "failed" (restart supervisor)
    supervisor_pid: int | None = None   # the new supervisor's, when activated

    def fields(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"action": self.action, "version": self.version,
                               "imageserving_command": self.imageserving_command, "venv": self.venv,
                               "uploaded": self.uploaded, "transfer": self.transfer}
        if self.sftp_error:
            doc["sftp_error"] = self.sftp_error
        if self.systemd:
            doc["systemd"] = "enabled"
        if self.activated is not None:
            doc["activated"] = self.activated
        if self.supervisor_pid is not None:
            doc["supervisor_pid"] = self.supervisor_pid
        return doc


@dataclass(frozen=True)
class HostResult:
    """One host's outcome: the verdict, why, the agent's status (typed), how long it took.

    The optional fields are what some commands add to a host's --json entry (after the five
    every entry has, in this order): `agent_version` (ping), `lines` (logs), `via` (status),
    `deployed` (deploy), `worker` when `clustered` (a --cluster run: the worker's address, or None
    when no worker ran the host).
    """

    host: str
    result: Result
    reason: str = ""
    status: AgentStatus | None = None
    elapsed_s: float = 0.0
    agent_version: str | None = None
    lines: tuple[str, ...] | None = None
    via: Via | None = None
    deployed: Deployed | None = None
    worker: str | None = None
    clustered: bool = False

    def to_dict(self) -> dict[str, Any]:
        """The host's entry in the --json document; `status` is the document as the host sent it."""
        doc: dict[str, Any] = {"host": self.host, "result": str(self.result), "reason": self.reason,
                               "status": self.status.document() if self.status else None,
                               "elapsed_s": round(self.elapsed_s, 3)}
        if self.agent_version is not None:
            doc["agent_version"] = self.agent_version
        if self.lines is not None:
            doc["lines"] = list(self.lines)
        if self.via is not None:
            doc["via"] = str(self.via)
        if self.deployed is not None:
            doc.update(self.deployed.fields())
        if self.clustered:
            doc["worker"] = self.worker
        return doc

    @property
    def components(self) -> tuple[ComponentStatus, ...]:
        return self.status.components if self.status else ()

    def component(self, cid: str) -> ComponentStatus | None:
        return self.status.component(cid) if self.status else None


@dataclass(frozen=True)
class Summary:
    hosts: int = 0
    ok: int = 0
    degraded: int = 0
    failed: int = 0
    unreachable: int = 0
    skipped: int = 0

    def line(self) -> str:
        return (f"hosts={self.hosts} ok={self.ok} degraded={self.degraded} failed={self.failed} "
                f"unreachable={self.unreachable} skipped={self.skipped}")


def summarize(results: Iterable[HostResult]) -> Summary:
    counts = {r.value: 0 for r in Result}
    n = 0
    for res in results:
        counts[res.result.value] += 1
        n += 1
    return Summary(hosts=n, **counts)


def exit_code(summary: Summary) -> int:
    """4 unreachable wins over 2 failed/degraded/skipped; 0 when every host is ok."""
    if summary.unreachable:
        return EXIT_UNREACHABLE
    if summary.failed or summary.degraded or summary.skipped:
        return EXIT_HOST_FAILED
    return EXIT_OK


_SURROGATE = re.compile(r"\\u[dD][89a-fA-F]")


def last_line(text: str) -> str:
    """The last non-empty line of what the agent wrote on stderr, without its `imageserving: `."""
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    line = lines[-1] if lines else ""
    return line.removeprefix("imageserving: ")[:300]


def status_of(raw: Any, text: str) -> AgentStatus:
    """Decoded JSON and the text it came from -> the typed status; raises SchemaError or RecursionError."""
    if _SURROGATE.search(text):  # "\udc80" decodes to a str no UTF-8 writer can print
        raw = json.loads(json.dumps(raw, ensure_ascii=False).encode("utf-8", "replace"))
    return parse_status(raw)


def bad_output(host: str, exc: Exception, text: str, elapsed: float) -> HostResult:
    """What the agent printed is not a status document (bad JSON, or not schema 1)."""
    kind = "bad status" if isinstance(exc, SchemaError) else "bad JSON"
    return HostResult(host, Result.FAILED, f"{kind}: {str(exc)[:200]}; output began {text[:60]!r}", elapsed_s=elapsed)


def agent_error(host: str, exit_status: int, message: str, elapsed: float) -> HostResult:
    """The agent ended without a status document: its exit code and what it said."""
    return HostResult(host, Result.FAILED, f"agent error (exit {exit_status})" + (f": {message}" if message else ""),
                      elapsed_s=elapsed)


def classify(host: str, command: str, exit_status: int, stdout: bytes, stderr: bytes,
             elapsed: float) -> HostResult:
    """Takes what the agent did on a host; returns the verdict (never raises on lying output)."""
    err = stderr.decode(errors="replace")
    if exit_status == AGENT_MISSING:
        return HostResult(host, Result.UNREACHABLE, f"agent missing: {last_line(err) or 'imageserving not found'}",
                          elapsed_s=elapsed)
    doc: AgentStatus | None = None
    text = stdout.decode(errors="replace").strip()
    if text:
        try:
            doc = status_of(json.loads(text), text)
        except (ValueError, RecursionError) as exc:  # JSONDecodeError and SchemaError are ValueErrors;
            # RecursionError: JSON nested a few thousand levels deep, which no agent writes
            return bad_output(host, exc, text, elapsed)
    message = last_line(err)
    if doc is None:
        return agent_error(host, exit_status, message, elapsed)
    return verdict(host, command, exit_status, doc, message, elapsed)


def verdict(host: str, command: str, exit_status: int, doc: AgentStatus, message: str, elapsed: float) -> HostResult:
    """Takes a command's exit code, the status document it printed and its last error line; returns the verdict."""
    # A component the operator holds down (`stop ID`) is no fault of the host (SPEC §3).
    held = doc.held
    down = doc.down()
    supervisor_up = doc.supervisor.state == State.RUNNING
    held_note = f"held down: {', '.join(held)}" if held else ""
    if command == "stop":
        if exit_status == 0:
            return HostResult(host, Result.OK, held_note if supervisor_up else "", doc, elapsed)
        return HostResult(host, Result.FAILED, message or f"stop failed (exit {exit_status})", doc, elapsed)
    if not supervisor_up:
        return HostResult(host, Result.FAILED, message or doc.message or "Server Supervisor is not running",
                          doc, elapsed)
    if exit_status not in (0, 1) or (command != "status" and exit_status != 0):
        return HostResult(host, Result.FAILED, message or f"{command} failed (exit {exit_status})", doc, elapsed)
    if down:
        states = ", ".join(f"{c.id} {c.state}" for c in down)
        return HostResult(host, Result.DEGRADED, f"not RUNNING: {states}" + (f"; {held_note}" if held else ""),
                          doc, elapsed)
    return HostResult(host, Result.OK, held_note, doc, elapsed)


def config_digests(results: Iterable[HostResult]) -> dict[str, str]:
    """Takes results; returns host -> short config digest, only when the hosts do not all run one configuration.

    Empty when every host that answered reports the same `supervisor.config_digest` (or none does),
    so a table shows a config column only when there is drift to see.
    """
    found = {r.host: r.status.supervisor.config_digest for r in results
             if r.status is not None and r.status.supervisor.config_digest}
    if len(set(found.values())) < 2:
        return {}
    return {host: str(digest)[:8] for host, digest in found.items()}


def fleet_document(command: str, results: Sequence[HostResult]) -> dict[str, Any]:
    """The --json document of a fleet run, hosts in inventory order."""
    s = summarize(results)
    return {"schema": 1, "command": command,
            "summary": {"hosts": s.hosts, "ok": s.ok, "degraded": s.degraded, "failed": s.failed,
                        "unreachable": s.unreachable, "skipped": s.skipped},
            "hosts": [r.to_dict() for r in results]}


def version_result(host: str, code: int, stdout: bytes, stderr: bytes, elapsed: float) -> HostResult:
    """Takes what `imageserving --version` did on a host (ping); returns the verdict."""
    if code == AGENT_MISSING:
        return HostResult(host, Result.UNREACHABLE, "agent missing: imageserving not found", elapsed_s=elapsed)
    text = stdout.decode(errors="replace").strip()
    if code != 0 or not text.startswith("imageserving "):
        err = stderr.decode(errors="replace").strip().splitlines()
        return HostResult(host, Result.FAILED, f"agent error (exit {code})" + (f": {err[-1][:200]}" if err else ""),
                          elapsed_s=elapsed)
    version = text.split()[1]
    return HostResult(host, Result.OK, "", elapsed_s=elapsed, agent_version=version)
