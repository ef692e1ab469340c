"""Per-host results and their aggregation: pure functions from agent output to fleet verdicts."""

from __future__ import annotations

import enum
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..schema import SchemaError, parse_status

AGENT_MISSING = 127  # what sh says when the command is not found


class Result(enum.StrEnum):
    """The verdict for one host, worst last."""

    OK = "ok"
    DEGRADED = "degraded"
    FAILED = "failed"
    UNREACHABLE = "unreachable"
    SKIPPED = "skipped"


@dataclass(frozen=True)
class HostResult:
    """One host's outcome: the verdict, why, the agent's status document (raw), how long it took."""

    host: str
    result: Result
    reason: str = ""
    status: dict[str, Any] | None = None
    elapsed_s: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"host": self.host, "result": str(self.result), "reason": self.reason,
                               "status": self.status, "elapsed_s": round(self.elapsed_s, 3)}
        doc.update(self.extra)
        return doc

    def component(self, cid: str) -> dict[str, Any] | None:
        for comp in (self.status or {}).get("components", []):
            if comp.get("id") == cid:
                return comp
        return None


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


# SPEC §3 exit codes: Ansible's, without its overloading.
EXIT_OK, EXIT_BEFORE_HOSTS, EXIT_HOST_FAILED, EXIT_UNREACHABLE, EXIT_BAD_OPTIONS, EXIT_INTERRUPTED = 0, 1, 2, 4, 5, 99


def exit_code(summary: Summary) -> int:
    """4 unreachable wins over 2 failed/degraded/skipped; 0 when every host is ok."""
    if summary.unreachable:
        return EXIT_UNREACHABLE
    if summary.failed or summary.degraded or summary.skipped:
        return EXIT_HOST_FAILED
    return EXIT_OK


_SURROGATE = re.compile(r"\\u[dD][89a-fA-F]")


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    line = lines[-1] if lines else ""
    return line.removeprefix("imageserving: ")[:300]


def classify(host: str, command: str, exit_status: int, stdout: bytes, stderr: bytes,
             elapsed: float) -> HostResult:
    """Takes what the agent did on a host; returns the verdict (never raises on lying output)."""
    err = stderr.decode(errors="replace")
    if exit_status == AGENT_MISSING:
        return HostResult(host, Result.UNREACHABLE, f"agent missing: {_last_line(err) or 'imageserving not found'}",
                          elapsed_s=elapsed)
    doc: dict[str, Any] | None = None
    text = stdout.decode(errors="replace").strip()
    if text:
        try:
            raw = json.loads(text)
            if _SURROGATE.search(text):  # "\udc80" decodes to a str no UTF-8 writer can print
                raw = json.loads(json.dumps(raw, ensure_ascii=False).encode("utf-8", "replace"))
            parse_status(raw)
            doc = raw
        except (ValueError, RecursionError) as exc:  # JSONDecodeError and SchemaError are ValueErrors;
            # RecursionError: JSON nested a few thousand levels deep, which no agent writes
            kind = "bad status" if isinstance(exc, SchemaError) else "bad JSON"
            return HostResult(host, Result.FAILED, f"{kind}: {str(exc)[:200]}; output began {text[:60]!r}",
                              elapsed_s=elapsed)
    message = _last_line(err)
    if doc is None:
        return HostResult(host, Result.FAILED, f"agent error (exit {exit_status})" + (f": {message}" if message else ""),
                          elapsed_s=elapsed)
    # A component the operator holds down (`stop ID`) is no fault of the host (SPEC §3).
    held = [c["id"] for c in doc.get("components", []) if c.get("held") is True and c.get("state") != "RUNNING"]
    down = [c["id"] for c in doc.get("components", []) if c.get("state") != "RUNNING" and c["id"] not in held]
    supervisor_up = doc.get("supervisor", {}).get("state") == "RUNNING"
    held_note = f"held down: {', '.join(held)}" if held else ""
    if command == "stop":
        if exit_status == 0:
            return HostResult(host, Result.OK, held_note if supervisor_up else "", doc, elapsed)
        return HostResult(host, Result.FAILED, message or f"stop failed (exit {exit_status})", doc, elapsed)
    if not supervisor_up:
        return HostResult(host, Result.FAILED, message or doc.get("message") or "Server Supervisor is not running",
                          doc, elapsed)
    if exit_status not in (0, 1) or (command != "status" and exit_status != 0):
        return HostResult(host, Result.FAILED, message or f"{command} failed (exit {exit_status})", doc, elapsed)
    if down:
        states = ", ".join(f"{c['id']} {c.get('state')}" for c in doc["components"] if c["id"] in down)
        return HostResult(host, Result.DEGRADED, f"not RUNNING: {states}" + (f"; {held_note}" if held else ""),
                          doc, elapsed)
    return HostResult(host, Result.OK, held_note, doc, elapsed)


def config_digests(results: Iterable[HostResult]) -> dict[str, str]:
    """Takes results; returns host -> short config digest, only when the hosts do not all run one configuration.

    Empty when every host that answered reports the same `supervisor.config_digest` (or none does),
    so a table shows a config column only when there is drift to see.
    """
    found = {r.host: d for r in results
             if isinstance(d := ((r.status or {}).get("supervisor") or {}).get("config_digest"), str) and d}
    if len(set(found.values())) < 2:
        return {}
    return {host: digest[:8] for host, digest in found.items()}


def fleet_document(command: str, results: Sequence[HostResult]) -> dict[str, Any]:
    """The --json document of a fleet run, hosts in inventory order."""
    s = summarize(results)
    return {"schema": 1, "command": command,
            "summary": {"hosts": s.hosts, "ok": s.ok, "degraded": s.degraded, "failed": s.failed,
                        "unreachable": s.unreachable, "skipped": s.skipped},
            "hosts": [r.to_dict() for r in results]}
