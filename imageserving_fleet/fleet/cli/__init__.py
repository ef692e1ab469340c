"""The `imageserving-fleet` commands (Typer): each parses, resolves the run context, calls one
library command (fleet/commands/), renders (render.py). `run()` maps errors to exit codes."""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import partial
from typing import Annotated, NoReturn

import typer

from ...errors import ImageServingError, UsageError
from ..commands import control, live
from ..commands import hosts as hosts_cmd
from ..commands import logs as logs_cmd
from ..commands import rolling as rolling_cmd
from ..commands import status as status_cmd
from ..commands.run import Outcome, local_fleet
from ..context import Command, RunContext
from ..deploy.plan import DeployOptions
from ..fanout import FanOut
from ..remote import check_id
from ..render import batch_printer, err, out, print_hosts, terminal_confirm
from ..reports.options import MergeOptions, ReportOptions
from ..results import EXIT_BAD_OPTIONS, EXIT_BEFORE_HOSTS, EXIT_INTERRUPTED
from ..rolling import OnBatch, Rolling, RollingOptions
from .app import ARGV, SETTINGS, _context, _run, _show, app, recorded_show, say_error
from .globals import with_options


def _id(component: str | None) -> str | None:
    return check_id(component) if component else None


def _roll(ctx: typer.Context, command: Command, how: Rolling, call: Callable[[RunContext, FanOut, OnBatch], Outcome],
          component: str | None = None) -> NoReturn:
    """A rolling command: its batches named on stderr; no progress bar when --confirm asks on the terminal."""
    on_batch = batch_printer(err, ctx.obj.quiet or ctx.obj.as_json)
    _show(ctx, command, lambda c, f: call(c, f, on_batch), component, bar=how.confirm is None)


@app.command()
@with_options(live.WatchOptions, "opts")
def status(ctx: typer.Context, opts: live.WatchOptions, component: Annotated[str | None, typer.Argument(
        help="ps, is or svg (default: all)")] = None) -> None:
    """State, uptime and memory of every component on every host; --watch keeps it on the screen."""
    cid, every = _id(component), opts.every(ctx.obj.as_json)
    if every is None:
        _show(ctx, Command.STATUS, lambda c, f: status_cmd.status(c, f, cid))
    run_ctx = _context(ctx, Command.WATCH)
    raise typer.Exit(_run(ctx, run_ctx, lambda fanout: live.watch(run_ctx, fanout, [cid] if cid else [], every), bar=False))


@app.command()
@with_options(live.ExporterOptions, "opts")
def exporter(ctx: typer.Context, opts: live.ExporterOptions) -> None:
    """A Prometheus exporter and a live page: every host's status polled every --interval (a scrape never waits).

    SIGHUP re-reads the inventory (a bad one is logged and the hosts polled stay as they were).
    """
    notifying = live.notify_options(opts.notify, opts.notify_interval)  # before any host, before the port
    run_ctx = _context(ctx, Command.EXPORTER)
    sock, every = live.listen(opts.listen, opts.interval)  # before any host
    with sock:
        raise typer.Exit(_run(ctx, run_ctx, lambda f: live.exporter(run_ctx, f, sock, every, notifying), bar=False))


@app.command()
def start(ctx: typer.Context, component: Annotated[str | None, typer.Argument(
        help="ps, is or svg: bring one held-down component back (default: everything)")] = None) -> None:
    """Start the Server Supervisor and all components on every host; or one component.

    Example: imageserving-fleet -l 'is0*' start is
    """
    cid = _id(component)
    _show(ctx, Command.START, lambda c, f: control.start(c, f, cid), cid)


@app.command()
def stop(ctx: typer.Context, component: Annotated[str | None, typer.Argument(
        help="ps, is or svg: hold one component down (its hosts stay ok, 'held down: is')")] = None) -> None:
    """Stop all components and the Server Supervisor on every host; or hold one component down.

    Example: imageserving-fleet -l 'is0*' stop is   (maintenance; `start is` ends it)
    """
    cid = _id(component)
    _show(ctx, Command.STOP, lambda c, f: control.stop(c, f, cid), cid)


@app.command()
@with_options(RollingOptions, "opts")
def restart(ctx: typer.Context, opts: RollingOptions, component: Annotated[str | None, typer.Argument(
        help="ps, is or svg (default: all); supervisor: a new supervisor from the installed agent takes over, "
             "no component restarts")] = None) -> None:
    """Restart one component or everything; rolling with --serial (the next batch waits for this one's health).

    `restart supervisor`: a new Server Supervisor on each host, no component restarted (the agent's handover).

    Example: imageserving-fleet restart --serial 1,25% --confirm --before 'lb drain "$IMAGESERVING_HOST"'
    --after 'lb undrain "$IMAGESERVING_HOST"'
    """
    cid, how = _id(component), opts.rolling(partial(terminal_confirm, err))
    _roll(ctx, Command.RESTART, how, lambda c, f, on_batch: rolling_cmd.restart(c, f, cid, how, on_batch), cid)


@app.command()
@with_options(RollingOptions, "opts")
def reload(ctx: typer.Context, opts: RollingOptions) -> None:
    """Make every host's supervisor re-read its configuration and apply only what changed.

    Example: imageserving-fleet reload --serial 25%
    """
    how = opts.rolling(partial(terminal_confirm, err))
    _roll(ctx, Command.RELOAD, how, lambda c, f, on_batch: rolling_cmd.reload(c, f, how, on_batch))


@app.command()
@with_options(logs_cmd.LogsOptions, "opts")
def logs(ctx: typer.Context, opts: logs_cmd.LogsOptions, name: Annotated[str, typer.Argument(
        metavar="ID[:NAME]", help="ps, is, svg or supervisor; ID:NAME a file of the component's `logs:` key (e.g. "
                                  "is:access)")] = "supervisor") -> None:
    """The last lines of a log from every host, each prefixed by its host (hosts in inventory order).

    Example: imageserving-fleet -l 'is0*' logs is:access --grep ' 5[0-9][0-9] ' --since 10m --group
    """
    r = logs_cmd.request(name, opts.lines, opts.grep, opts.since)  # exit 5 before any host
    _show(ctx, Command.LOGS, lambda c, f: logs_cmd.logs(c, f, r.name, r.lines, r.grep, r.since), raw=opts.raw,
          group=opts.group)


@app.command()
def ping(ctx: typer.Context) -> None:
    """Reachability and agent version of every host."""
    _show(ctx, Command.PING, status_cmd.ping)


@app.command()
@with_options(DeployOptions, "opts")
def deploy(ctx: typer.Context, opts: DeployOptions) -> None:
    """Install or upgrade the agent on every host: wheels over SFTP (else piped), a new venv, no package index there.

    Hosts that got a new build end with `imageserving restart supervisor`: the new code runs at once,
    no component restarts (--no-activate skips it).
    """
    from ..commands import deploy as deploy_cmd

    run_ctx = _context(ctx, Command.DEPLOY)  # a bad inventory or an empty --limit match: before the wheel build
    job = deploy_cmd.plan(run_ctx, opts.wheel, force=opts.force, systemd=opts.systemd, activate=not opts.no_activate)
    fleet = local_fleet(run_ctx)  # deploy's steps need the in-process fan-out's sessions
    recorded_show(ctx, run_ctx, lambda: _run(ctx, run_ctx, lambda _: deploy_cmd.deploy(run_ctx, fleet, job), fleet))


@app.command()
def hosts(ctx: typer.Context) -> None:
    """The matched hosts, their connection settings and where each came from (contacts nothing)."""
    run_ctx = _context(ctx, Command.HOSTS)
    run = run_ctx.wide.as_dict() if run_ctx.wide is not None else None
    print_hosts(out, hosts_cmd.hosts(run_ctx), as_json=ctx.obj.as_json, run=run)


config_app = typer.Typer(add_completion=False, rich_markup_mode=None, no_args_is_help=True,
                         context_settings=SETTINGS, help="Push an agent configuration to the hosts.")
app.add_typer(config_app, name="config")


@config_app.command("push")
@with_options(RollingOptions, "opts")
def config_push(ctx: typer.Context, opts: RollingOptions,
                path: Annotated[str, typer.Argument(metavar="FILE", help="The agent configuration (YAML).")]) -> None:
    """Validate FILE on each host with its own agent, install it (previous kept as .prev), reload.

    A host that refuses it keeps its old file and is failed with the agent's message.
    Example: imageserving-fleet config push agent.yaml --serial 3
    """
    how = opts.rolling(partial(terminal_confirm, err))
    data = rolling_cmd.read_config_file(path)
    _roll(ctx, Command.CONFIG_PUSH, how, lambda c, f, on_batch: rolling_cmd.config_push(c, f, data, how, on_batch))


persist_app = typer.Typer(add_completion=False, rich_markup_mode=None, no_args_is_help=True,
                          context_settings=SETTINGS,
                          help="The connection holder that keeps SSH connections between commands (--persist).")
app.add_typer(persist_app, name="persist")


@persist_app.command("stop")
def persist_stop() -> None:
    """End this user's connection holder now; its connections close. Exit 0 whether one ran or not."""
    from ..persist.client import stop_holder

    pid = stop_holder()
    print(f"stopped the connection holder (pid {pid})" if pid else "no connection holder was running")


report_app = typer.Typer(add_completion=False, rich_markup_mode=None, context_settings=SETTINGS)
app.add_typer(report_app, name="report")


@report_app.callback(invoke_without_command=True)
@with_options(ReportOptions, "opts")
def report(ctx: typer.Context, opts: ReportOptions) -> None:
    """A status run written as an HTML page, JSON, CSV or Markdown, for cron; `report merge` joins slices."""
    if ctx.invoked_subcommand is not None:
        return
    from ..commands import report as report_cmd

    request = report_cmd.request_of(opts, ctx.obj.quiet, ctx.obj.as_json)
    run_ctx = report_cmd.sliced(_context(ctx, Command.REPORT), request)
    raise typer.Exit(_run(ctx, run_ctx, lambda fanout: report_cmd.run_report(run_ctx, fanout, request)))


@report_app.command("merge")
@with_options(MergeOptions, "opts")
def report_merge(ctx: typer.Context, opts: MergeOptions,
                 reports: Annotated[list[str], typer.Argument(metavar="REPORT.json",
                                                              help="JSON reports (e.g. one per --slice).")]) -> None:
    """Join JSON slice reports into one report."""
    from ..commands import report as report_cmd

    request = report_cmd.request_of(opts, ctx.obj.quiet, ctx.obj.as_json)
    raise typer.Exit(report_cmd.run_merge(reports, request))


def run(args: list[str]) -> None:
    """Runs the Typer app on already-hoisted argv; maps our errors to the documented exit codes."""
    ARGV[:] = args
    try:
        code = app(args=args, prog_name="imageserving-fleet", standalone_mode=False)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except UsageError as exc:
        say_error(exc)
        sys.exit(EXIT_BAD_OPTIONS)
    except ImageServingError as exc:  # InventoryError and any other refusal of ours: before hosts are reached
        say_error(exc)
        sys.exit(EXIT_BEFORE_HOSTS)
    except (KeyboardInterrupt, typer.Abort):
        err.print("interrupted")
        sys.exit(EXIT_INTERRUPTED)
    except typer.exceptions.TyperException as exc:  # usage errors (Typer ships its own click)
        show_usage = getattr(exc, "show", None)
        show_usage() if callable(show_usage) else say_error(exc)
        sys.exit(EXIT_BAD_OPTIONS)
    sys.exit(code if isinstance(code, int) else 0)
