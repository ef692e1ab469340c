"""The human status table of one host. Plain text and stdlib only: the status path stays light."""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False  # not `from typing`: importing typing costs the status path 8 ms

if TYPE_CHECKING:
    from typing import Any

from ..componentstate import TONE
from ..units import format_duration, format_size

_COLORS = {"ok": "32", "busy": "33", "off": "2", "bad": "31", "fatal": "31;1"}  # ANSI, by componentstate.TONE


def _color(state: str, enabled: bool) -> str:
    return f"\033[{_COLORS.get(TONE.get(state, ''), '0')}m{state}\033[0m" if enabled else state


def status_table(doc: dict[str, Any], color: bool | None = None) -> str:
    """Takes a schema-1 status document; returns an aligned table with the supervisor row first."""
    if color is None:
        color = sys.stdout.isatty() and "NO_COLOR" not in os.environ
    sup = doc.get("supervisor", {})
    rows = [("supervisor", "Server Supervisor", sup.get("state", "?"), sup.get("pid"), sup.get("uptime_s"),
             shown_memory(sup), "", "", "")]
    for c in doc.get("components", []):
        rows.append((c["id"], c.get("description", ""), c["state"], c.get("pid"), c.get("uptime_s"),
                     shown_memory(c), str(c.get("restarts", 0)), _health(c), _message(c)))
    header = ("ID", "COMPONENT", "STATE", "PID", "UPTIME", "MEMORY", "RESTARTS", "HEALTH", "MESSAGE")
    cells = [header] + [(r[0], r[1], r[2], str(r[3] or "-"), format_duration(r[4]) if r[4] is not None else "-",
                         format_size(r[5]), r[6], r[7], r[8]) for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = []
    for n, row in enumerate(cells):
        parts = []
        for i, cell in enumerate(row):
            text = cell.ljust(widths[i]) if i < len(row) - 1 else cell
            if i == 2 and n > 0:
                text = _color(cell, color) + " " * (widths[i] - len(cell))
            parts.append(text)
        lines.append("  ".join(parts).rstrip())
    return "\n".join(lines)


def shown_memory(row: dict[str, Any]) -> int | None:
    """The MEMORY cell: PSS where the kernel gives it (shared pages divided among the tree), else RSS."""
    pss = row.get("pss_bytes")
    return pss if pss is not None else row.get("rss_bytes")


def _health(c: dict[str, Any]) -> str:
    health = c.get("health")
    if not health:
        return "-"
    failures = c.get("health_failures") or 0
    return f"{health} ({failures} failed)" if failures and health != "healthy" else str(health)


def _message(c: dict[str, Any]) -> str:
    text = c.get("message") or c.get("last_exit") or ""
    if c.get("held"):
        text = "held down" + (f": {text}" if text else "")
    reason = c.get("restart_reason")
    if reason and reason not in text and c.get("restarts"):
        text = f"{text}; last restart: {reason}" if text else f"last restart: {reason}"
    return str(text)


def emit(outcome: Any, as_json: bool, table: bool) -> int:
    """Prints an Outcome (JSON document on stdout, or message and table); returns its exit code."""
    import json

    if as_json:
        if outcome.status is not None:
            doc = dict(outcome.status)
            if outcome.message and not doc.get("message"):
                doc["message"] = outcome.message
            sys.stdout.write(json.dumps(doc) + "\n")
        if outcome.code != 0 and outcome.message:
            sys.stderr.write(f"imageserving: {outcome.message}\n")
        return int(outcome.code)
    if outcome.message:
        (sys.stdout if outcome.code in (0, 3) else sys.stderr).write(f"{outcome.message}\n")
    if table and outcome.status is not None and outcome.status.get("components"):
        sys.stdout.write(status_table(outcome.status) + "\n")
    return int(outcome.code)
