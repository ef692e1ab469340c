"""What a person reads after a deploy: host, result, what was done, how files went, the agent's path; the recap."""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Console
from rich.table import Table
from rich.text import Text

from ...untrusted import escape
from ..render import RESULT_STYLE, recap
from ..results import HostResult


def print_deploy(console: Console, results: Sequence[HostResult]) -> None:
    if results:
        table = Table(header_style="bold")
        for col in ("host", "result", "action", "version", "transfer", "imageserving_command", "reason"):
            table.add_column(col, overflow="fold", no_wrap=col in ("host", "result"))
        for r in results:
            cells = (str(r.extra.get("action", "-")), str(r.extra.get("version", "-")),
                     str(r.extra.get("transfer") or "-"), str(r.extra.get("imageserving_command", "-")), r.reason)
            table.add_row(Text(r.host), Text(str(r.result), style=RESULT_STYLE[r.result]),
                          *(Text(escape(cell, tabs=False)) for cell in cells))
        console.print(table)
    console.print(recap(results))
    commands = sorted({str(r.extra["imageserving_command"]) for r in results if "imageserving_command" in r.extra})
    if len(commands) == 1:
        console.print(f"imageserving_command: {escape(commands[0])}", markup=False, highlight=False)
        console.print("(the default for these hosts: status, start, stop and restart use it without setting it)",
                      style="dim")
    elif commands:
        console.print("imageserving_command: per host, as in the table (each is that host's default)", style="dim")
