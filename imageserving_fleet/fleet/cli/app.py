"""The Typer app and what every command's CLI function shares: resolve the run context, run one
library command on a fan-out with the progress bar, record a change in the audit log, show the
outcome (and the retry file of the hosts not ok), exit with its code."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import NoReturn, TypeVar

import typer

from ..commands.run import Outcome, open_fanout
from ..context import Command, RunContext, resolve
from ..fanout import FanOut
from ..record import audited, leave_retry
from ..render import err, out, print_outcome, progress_bar
from .globals import options_callback

T = TypeVar("T")
ARGV: list[str] = []  # the command line as given (run() sets it): the audit line records it, redacted
SETTINGS = {"help_option_names": ["-h", "--help"]}
app = typer.Typer(add_completion=False, no_args_is_help=True, rich_markup_mode=None, context_settings=SETTINGS,
                  help="Run the Image Serving agent on every host of an Ansible inventory, in parallel over SSH, "
                       "and aggregate what each reports.")
app.callback()(options_callback)


def say_error(message: object) -> None:
    err.print(f"imageserving-fleet: {message}", markup=False)


def recorded_show(ctx: typer.Context, run_ctx: RunContext, run: Callable[[], Outcome], component: str | None = None,
                  raw: bool = False, group: bool = False) -> NoReturn:
    """Runs a command, prints its results and exits with its code (99, and a note, when Ctrl-C cut it
    short). A change is recorded in the audit log (record.audited: opened before any host, exit 1
    if it cannot be; written on the way out, Ctrl-C included); hosts not ok get a retry file, named on stderr."""
    with audited(run_ctx, ARGV, component) as note:
        outcome = note(run())
        print_outcome(out, outcome, as_json=ctx.obj.as_json, quiet=ctx.obj.quiet, raw=raw, group=group)
        leave_retry(outcome.command.value, outcome.results, lambda line: err.print(line, markup=False))
        if outcome.interrupted:
            err.print("interrupted: the report above is partial")
        raise typer.Exit(outcome.exit_code)


def _context(ctx: typer.Context, command: Command) -> RunContext:
    run_ctx = resolve(ctx.obj, os.environ, command)
    for notice in run_ctx.notices:  # the packaged inventory in use, settings not honoured: never silent
        err.print(notice, markup=False)
    return run_ctx


def _run(ctx: typer.Context, run_ctx: RunContext, call: Callable[[FanOut], T], fanout: FanOut | None = None,
         bar: bool = True) -> T:
    """Calls a command on the run's fan-out (opened here, closed on the way out: every kept connection
    too) with the progress bar (none with `bar` False, --quiet or --json)."""
    with fanout or open_fanout(run_ctx) as opened:  # may refuse options: before the bar
        quiet = ctx.obj.quiet or ctx.obj.as_json or not bar
        advance, stop = (None, lambda: None) if quiet else progress_bar(err, len(run_ctx.targets))
        opened.on_result = advance
        try:
            return call(opened)
        finally:
            stop()


def _show(ctx: typer.Context, command: Command, call: Callable[[RunContext, FanOut], Outcome],
          component: str | None = None, raw: bool = False, bar: bool = True, group: bool = False) -> NoReturn:
    """Resolves the context, runs `call` on the fan-out, prints the outcome and exits with its code
    (`component`: the one the command names, for the audit log)."""
    run_ctx = _context(ctx, command)
    recorded_show(ctx, run_ctx, lambda: _run(ctx, run_ctx, lambda fanout: call(run_ctx, fanout), bar=bar), component,
                  raw, group)
