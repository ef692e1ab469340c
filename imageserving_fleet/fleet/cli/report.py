"""`report` and `report merge` (fleet/commands/report.py): the options, parsed and handed on."""

from __future__ import annotations

from typing import Annotated

import typer

from ..context import Command
from .app import SETTINGS, _context, _run, app

report_app = typer.Typer(add_completion=False, rich_markup_mode=None, context_settings=SETTINGS)
app.add_typer(report_app, name="report")
FormatOpt = Annotated[str | None, typer.Option("--format", metavar="html|json|csv|md|openmetrics|prometheus",
                                               help="Default: from -o's extension, else html.")]
OutputOpt = Annotated[str | None, typer.Option("-o", "--output", metavar="FILE",
                                               help="Write here atomically (temp file + rename); default stdout.")]
TitleOpt = Annotated[str | None, typer.Option("--title", metavar="TEXT", help="Page title.")]


@report_app.callback(invoke_without_command=True)
def report(ctx: typer.Context, fmt: FormatOpt = None, output: OutputOpt = None,
           history: Annotated[str | None, typer.Option("--history", metavar="DB",
                                                       help="SQLite file recording every run, for trends.")] = None,
           keep_days: Annotated[float | None, typer.Option("--keep-days", metavar="N",
                                                           help="Prune runs older than N days from --history.")] = None,
           slice_: Annotated[str | None, typer.Option("--slice", metavar="K/N",
                                                      help="Only the K-th of N stable hash slices of the hosts.")] = None,
           trend_runs: Annotated[int, typer.Option("--trend-runs", metavar="N",
                                                   help="Runs the trends cover.")] = 24,
           title: TitleOpt = None) -> None:
    """A status run written as an HTML page, JSON, CSV or Markdown, for cron; `report merge` joins slices."""
    if ctx.invoked_subcommand is not None:
        return
    from ..commands.report import make_request, run_report, sliced

    options = ctx.obj
    request = make_request(fmt=fmt, output=output, history=history, keep_days=keep_days, slice_text=slice_,
                           window=trend_runs, title=title, quiet=options.quiet, as_json=options.as_json)
    run_ctx = sliced(_context(ctx, Command.REPORT), request)
    raise typer.Exit(_run(ctx, run_ctx, lambda fanout: run_report(run_ctx, fanout, request)))


@report_app.command("merge")
def report_merge(ctx: typer.Context,
                 reports: Annotated[list[str], typer.Argument(metavar="REPORT.json",
                                                              help="JSON reports (e.g. one per --slice).")],
                 fmt: FormatOpt = None, output: OutputOpt = None, title: TitleOpt = None) -> None:
    """Join JSON slice reports into one report."""
    from ..commands.report import make_request, run_merge

    options = ctx.obj
    request = make_request(fmt=fmt, output=output, title=title, quiet=options.quiet, as_json=options.as_json)
    raise typer.Exit(run_merge(reports, request))
