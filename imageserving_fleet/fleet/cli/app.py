"""The Typer app and what every command's CLI function shares: resolve the run context, run one
library command on a fan-out with the progress bar, show the outcome, exit with its code."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import NoReturn, TypeVar

import typer

from ..commands.run import Outcome, open_fanout
from ..context import Command, RunContext, resolve
from ..fanout import FanOut
from ..options import Options
from ..render import err, out, print_outcome, progress_bar
from .globals import options_callback


def say_error(message: object) -> None:
    err.print(f"imageserving-fleet: {message}", markup=False)


def show(options: Options, outcome: Outcome, *, group: bool = False) -> NoReturn:
    """Prints a run's results and exits with its code (99, and a note, when Ctrl-C cut it short)."""
    print_outcome(out, outcome, as_json=options.as_json, quiet=options.quiet, group=group)
    if outcome.interrupted:
        err.print("interrupted: the report above is partial")
    raise typer.Exit(outcome.exit_code)


T = TypeVar("T")
SETTINGS = {"help_option_names": ["-h", "--help"]}
app = typer.Typer(add_completion=False, no_args_is_help=True, rich_markup_mode=None, context_settings=SETTINGS,
                  help="Run the Image Serving agent on every host of an Ansible inventory, in parallel over SSH, "
                       "and aggregate what each reports.")
app.callback()(options_callback())


def _context(ctx: typer.Context, command: Command) -> RunContext:
    return resolve(ctx.obj, os.environ, command)


def _run(ctx: typer.Context, run_ctx: RunContext, call: Callable[[FanOut], T], fanout: FanOut | None = None) -> T:
    """Calls a command on the run's fan-out (opened here, closed on the way out) with the progress bar."""
    with fanout or open_fanout(run_ctx) as opened:  # may refuse options: before the bar
        quiet = ctx.obj.quiet or ctx.obj.as_json
        advance, stop = (None, lambda: None) if quiet else progress_bar(err, len(run_ctx.targets))
        opened.on_result = advance
        try:
            return call(opened)
        finally:
            stop()


def _show(ctx: typer.Context, command: Command, call: Callable[[RunContext, FanOut], Outcome]) -> NoReturn:
    """Resolves the context, runs `call` on the fan-out, prints the outcome and exits with its code."""
    run_ctx = _context(ctx, command)
    show(ctx.obj, _run(ctx, run_ctx, lambda fanout: call(run_ctx, fanout)))
