"""The progress bar on stderr: only when it is a terminal (never in cron mail or a pipe), only for 2+ hosts.

One home for the full CLI (cli.py) and the light path of a plain status (quick.py); rich is
imported only when a bar is actually drawn.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from .results import HostResult


def bar(total: int, *, quiet: bool, as_json: bool, console: Any = None
        ) -> tuple[Callable[[HostResult], None] | None, Callable[[], None]]:
    """Takes the host count and the run's output options; returns (advance per host or None, take it down)."""
    if quiet or as_json or not sys.stderr.isatty() or total < 2:
        return None, lambda: None
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    shown = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                     console=console or Console(stderr=True, highlight=False, soft_wrap=True), transient=True)
    task = shown.add_task("hosts", total=total)
    shown.start()

    def advance(res: HostResult) -> None:
        shown.update(task, advance=1, description=f"{res.host}: {res.result}")

    return advance, shown.stop
