"""`logs ID -n N`: the last lines of one log from every host, each prefixed by its host.

The agent prints plain lines (`imageserving logs ID -n N`), so any agent version answers; this
reads them into a HostResult whose `lines` the text and --json outputs share.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import TextIO

from ..untrusted import escape
from .results import AGENT_MISSING, HostResult, Result, fleet_document

MAX_LINES = 10_000


def logs_args(name: str, lines: int) -> tuple[str, ...]:
    return ("logs", name, "-n", str(lines))


def parse_logs(host: str, exit_status: int, stdout: bytes, stderr: bytes, elapsed: float) -> HostResult:
    """Takes what `imageserving logs` did on a host; returns its lines (ok) or why not (failed)."""
    err = [ln.strip() for ln in stderr.decode(errors="replace").splitlines() if ln.strip()]
    last = err[-1].removeprefix("imageserving: ")[:300] if err else ""
    if exit_status == AGENT_MISSING:
        return HostResult(host, Result.UNREACHABLE, f"agent missing: {last or 'imageserving not found'}",
                          elapsed_s=elapsed)
    if exit_status != 0:
        return HostResult(host, Result.FAILED, f"logs failed (exit {exit_status})" + (f": {last}" if last else ""),
                          elapsed_s=elapsed)
    lines = stdout.decode(errors="replace").splitlines()[-MAX_LINES:]
    return HostResult(host, Result.OK, "", elapsed_s=elapsed, lines=tuple(lines))


def print_logs(results: Sequence[HostResult], out: TextIO = sys.stdout, err: TextIO = sys.stderr,
               *, raw: bool = False) -> None:
    """Every host's lines in inventory order, `host | line`; hosts without lines say why on stderr.

    A line is a host's text: shown escaped (untrusted.escape), unless `raw` (`logs --raw`) asks for
    it as it came. The reason of a host without lines is escaped either way.
    """
    width = max((len(r.host) for r in results), default=0)
    shown = (lambda line: line) if raw else escape
    for r in results:
        if r.result != Result.OK:
            err.write(f"{r.host.ljust(width)} | {r.result}: {escape(r.reason, tabs=False)}\n")
            continue
        for line in r.lines or ():
            out.write(f"{r.host.ljust(width)} | {shown(line)}\n")
    out.flush()


def logs_document(results: Sequence[HostResult]) -> str:
    """--json: the fleet document, each host with its `lines`."""
    doc = fleet_document("logs", results)
    for entry in doc["hosts"]:
        entry.setdefault("lines", [])
        entry.pop("status", None)
    return json.dumps(doc)
