"""What the fleet CLI prints: the results of a run, the progress bar, batch lines, errors; the exit."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import NoReturn

import typer
from rich.console import Console

from ..commands.hosts import COLUMNS, HostRow, hosts_document
from ..commands.run import Outcome, Progress
from ..context import Command
from ..options import Options
from ..results import HostResult, Result, fleet_document
from ..rolling import OnBatch

# A pipe or cron mail has no width: give the table room rather than cutting states to "RUN…".
out = Console(highlight=False, width=None if sys.stdout.isatty() else 200)
# Errors unwrapped (soft_wrap): a log or cron mail must read `got 'notaport'` on one line, and a
# terminal wraps long lines itself.
err = Console(stderr=True, highlight=False, soft_wrap=True)


def say_error(message: object) -> None:
    err.print(f"imageserving-fleet: {message}", markup=False)


def progress(options: Options) -> Progress:
    """A progress bar on stderr, only when it is a terminal (never in cron mail or a pipe)."""
    def start(total: int) -> tuple[Callable[[HostResult], None] | None, Callable[[], None]]:
        if options.quiet or options.as_json or not sys.stderr.isatty() or total < 2:
            return None, lambda: None
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                       console=err, transient=True)
        task = bar.add_task("hosts", total=total)
        bar.start()

        def advance(res: HostResult) -> None:
            bar.update(task, advance=1, description=f"{res.host}: {res.result}")

        return advance, bar.stop

    return start


def batch_printer(options: Options) -> OnBatch:
    def on_batch(i: int, n: int, names: list[str]) -> None:
        if not options.quiet and not options.as_json and n > 1:
            err.print(f"batch {i}/{n}: {', '.join(names)}")

    return on_batch


def show(options: Options, outcome: Outcome) -> NoReturn:
    """Prints a run's results (the table, JSON, or per command) and exits with its code."""
    results = outcome.results
    wrong = [r for r in results if r.result != Result.OK]
    command = outcome.command
    if options.as_json:
        if command is Command.LOGS:
            from ..logs import logs_document

            sys.stdout.write(logs_document(results) + "\n")
        else:
            sys.stdout.write(json.dumps(fleet_document(command.value, results)) + "\n")
    elif command is Command.LOGS:
        from ..logs import print_logs

        print_logs(results)
    elif command is Command.DEPLOY:
        from ..deploy.render import print_deploy

        if not options.quiet or wrong:
            print_deploy(out, wrong if options.quiet else results)
    elif not options.quiet or wrong:
        from ..render import print_results

        print_results(out, wrong if options.quiet else list(results))
    if outcome.interrupted:
        err.print("interrupted: the report above is partial")
    raise typer.Exit(outcome.exit_code)


def show_hosts(options: Options, rows: list[HostRow]) -> None:
    if options.as_json:
        sys.stdout.write(json.dumps(hosts_document(rows)) + "\n")
        return
    from rich.table import Table

    table = Table(header_style="bold")
    for col in COLUMNS:
        table.add_column(col, overflow="fold")
    for row in rows:
        cells = row.to_dict()
        table.add_row(*(str(cells[c]) if cells[c] not in (None, False) else "-" for c in COLUMNS))
    out.print(table)
    out.print(f"{len(rows)} host(s)")


def debug_log() -> None:
    import logging

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("debug: %(message)s"))
    logger = logging.getLogger("imageserving_fleet")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
