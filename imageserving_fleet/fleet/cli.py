"""The `imageserving-fleet` commands (Typer). Each parses, calls the fleet library, prints."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from typing import Annotated

import typer
from rich.console import Console

from .. import __version__
from ..errors import ImageServingError, InventoryError, UsageError
from . import remote
from .results import (
    EXIT_BAD_OPTIONS,
    EXIT_BEFORE_HOSTS,
    EXIT_INTERRUPTED,
    HostResult,
    Result,
    exit_code,
    fleet_document,
    summarize,
)
from .rolling import rolling_restart
from .runner import Job
from .session import DEFAULT_FORKS, RunSettings, Work
from .target import FleetOptions, Target

app = typer.Typer(
    add_completion=False, no_args_is_help=True, rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
    help="Run the Image Serving agent on every host of an Ansible inventory, in parallel over SSH, "
         "and aggregate what each reports.",
)
# A pipe or cron mail has no width: give the table room rather than cutting states to "RUN…".
out = Console(highlight=False, width=None if sys.stdout.isatty() else 200)
# Errors unwrapped (soft_wrap): a log or cron mail must read `got 'notaport'` on one line, and a
# terminal wraps long lines itself.
err = Console(stderr=True, highlight=False, soft_wrap=True)


def _version(value: bool) -> None:
    if value:
        print(f"imageserving-fleet {__version__}")
        raise typer.Exit(0)


@app.callback()
def _options(
    ctx: typer.Context,
    inventory: Annotated[list[str] | None, typer.Option(
        "-i", "--inventory", metavar="PATH",
        help="Ansible inventory (YAML, INI or a directory); repeatable. Env IMAGESERVING_INVENTORY. "
             "Default ./inventory/hosts.yml, else localhost only.")] = None,
    limit: Annotated[str | None, typer.Option("-l", "--limit", metavar="PATTERN",
                                                 help="Ansible host pattern, e.g. 'web*:&prod:!web03'.")] = None,
    forks: Annotated[int, typer.Option("-f", "--forks", help="Hosts worked on at once.")] = DEFAULT_FORKS,
    timeout: Annotated[float | None, typer.Option(
        "--timeout", metavar="S", help="Whole per-host deadline (default 30 for status/ping/report, "
                                       "300 for start/stop/restart).")] = None,
    connect_timeout: Annotated[float, typer.Option("--connect-timeout", metavar="S")] = 10.0,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON document on stdout (schema 1).")] = False,
    user: Annotated[str | None, typer.Option("-u", "--user", help="Remote user for every host.")] = None,
    private_key: Annotated[str | None, typer.Option("--private-key", metavar="PATH")] = None,
    ssh_config: Annotated[str | None, typer.Option("--ssh-config", metavar="PATH",
                                                      help="Default ~/.ssh/config.")] = None,
    host_key_policy: Annotated[str, typer.Option(
        "--host-key-policy", help="reject (default): unknown keys refused; accept-new: record them; warn. "
                                  "A changed key is always refused.")] = "reject",
    become: Annotated[bool, typer.Option("-b", "--become", help="Run the agent through sudo.")] = False,
    ask_become_pass: Annotated[bool, typer.Option(
        "-K", "--ask-become-pass", help="Prompt for the sudo password (or set IMAGESERVING_BECOME_PASS).")] = False,
    quiet: Annotated[bool, typer.Option("-q", "--quiet", help="Print only what is wrong.")] = False,
    verbose: Annotated[bool, typer.Option(
        "-v", "--verbose", help="Debug lines on stderr: what a host's shell printed around the agent's "
                                "output, and why a status was asked by exec instead of the socket.")] = False,
    cluster: Annotated[str | None, typer.Option(
        "--cluster", metavar="ADDRESS", envvar="IMAGESERVING_CLUSTER", show_envvar=False,
        help="Run the hosts' work on a dask cluster: local:N (N worker processes here), tcp://HOST:PORT or "
             "tls://HOST:PORT (a running scheduler). Env IMAGESERVING_CLUSTER.")] = None,
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True)] = False,
) -> None:
    if verbose:
        _debug_log()
    options = FleetOptions(user=user, private_key=private_key, ssh_config=ssh_config,
                           host_key_policy=host_key_policy, connect_timeout=connect_timeout, become=become)
    ctx.obj = RunSettings(inventories=list(inventory or []), limit=limit, forks=forks, timeout=timeout,
                          options=options, as_json=as_json, quiet=quiet, ask_become_pass=ask_become_pass,
                          cluster=cluster)


# ------------------------------------------------------------------ helpers
def _debug_log() -> None:
    import logging

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("debug: %(message)s"))
    logger = logging.getLogger("imageserving_fleet")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)


def _progress(settings: RunSettings, total: int) -> tuple[Callable[[HostResult], None] | None, Callable[[], None]]:
    """A progress bar on stderr, only when it is a terminal (never in cron mail or a pipe)."""
    if settings.quiet or settings.as_json or not sys.stderr.isatty() or total < 2:
        return None, lambda: None
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                   console=err, transient=True)
    task = bar.add_task("hosts", total=total)
    bar.start()

    def advance(res: HostResult) -> None:
        bar.update(task, advance=1, description=f"{res.host}: {res.result}")

    return advance, bar.stop


def _report(settings: RunSettings, command: str, results: Sequence[HostResult]) -> int:
    code = exit_code(summarize(results))
    if settings.as_json:
        sys.stdout.write(json.dumps(fleet_document(command, results)) + "\n")
        return code
    from .render import print_results

    shown = [r for r in results if r.result != Result.OK] if settings.quiet else list(results)
    if settings.quiet and not shown:
        return code
    print_results(out, shown)
    return code


def _run(ctx: typer.Context, command: str, work: Job | Work,
         report: Callable[[Sequence[HostResult]], int] | None = None) -> None:
    """Runs one fleet command (RunSettings.run) and prints its report; Ctrl-C: partial report, exit 99."""
    settings: RunSettings = ctx.obj
    show = report or (lambda results: _report(settings, command, results))
    targets = settings.targets()
    results, interrupted = settings.run(command, targets, work, lambda n: _progress(settings, n))
    code = show(results)
    if interrupted:
        err.print("interrupted: the report above is partial")
        raise typer.Exit(EXIT_INTERRUPTED)
    raise typer.Exit(code)


def _component(cid: str | None) -> list[str]:
    return [remote.check_id(cid)] if cid else []


# ----------------------------------------------------------------- commands
IntervalOpt = Annotated[float | None, typer.Option("--interval", metavar="S",
                                                  help="With --watch: seconds between refreshes (default 2).")]


@app.command()
def status(ctx: typer.Context,
           component: Annotated[str | None, typer.Argument(help="ps, is or svg (default: all)")] = None,
           watch: Annotated[bool, typer.Option("--watch", help="A full-screen live view; q or Ctrl-C leaves.")] = False,
           interval: IntervalOpt = None) -> None:
    """State, uptime and memory of every component on every host; --watch keeps it on the screen."""
    if not watch:
        if interval is not None:
            raise UsageError("--interval goes with --watch")
        _run(ctx, "status", Job("status", ("status", *_component(component), "--json")))
        return
    from .poller import check_interval
    from .watch import DEFAULT_INTERVAL, check_terminal
    from .watch import watch as watch_fleet

    settings: RunSettings = ctx.obj
    every = check_interval(DEFAULT_INTERVAL if interval is None else interval)
    if settings.as_json:
        raise UsageError("--watch is for a person and --json for a script: choose one")
    check_terminal()
    ids = _component(component)
    _live(settings, "watch", lambda fleet, targets, timeout: watch_fleet(fleet, targets, ids, every, timeout))


def _live(settings: RunSettings, command: str, body: Callable[..., int]) -> None:
    """Runs a long-lived command (watch, exporter) over one Fleet that keeps its connections."""
    timeout = settings.deadline_for("status")
    targets = settings.targets()
    with settings.fleet(command, targets) as fleet:  # closes every kept connection on the way out
        code = body(fleet, targets, timeout)
    raise typer.Exit(code)


@app.command()
def exporter(ctx: typer.Context,
             listen: Annotated[str, typer.Option("--listen", metavar="ADDR",
                                                 help="HOST:PORT, [V6]:PORT or :PORT to serve /metrics, the live "
                                                      "page (/) and /healthz on.")] = "127.0.0.1:9464",
             interval: Annotated[float, typer.Option("--interval", metavar="S",
                                                     help="Seconds between polls of every host.")] = 15.0,
             notify: Annotated[str | None, typer.Option(
                 "--notify", metavar="URL", help="POST a JSON document (Slack-compatible \"text\") for each change "
                                                 "logged: a host's result, a component's state.")] = None,
             notify_interval: Annotated[str, typer.Option(
                 "--notify-interval", metavar="D", help="Flap damping: at most one notification per host and "
                                                        "subject per D (e.g. 30s, 5m); the next says how many were "
                                                        "held back.")] = "5m",
             ) -> None:
    """A Prometheus exporter and a live page: every host's status polled every --interval (a scrape never waits).

    SIGHUP re-reads the inventory (a bad one is logged and the hosts polled stay as they were).
    """
    from ..metrics_http import bind
    from ..units import parse_duration
    from .exporter import serve
    from .notify import check_url
    from .poller import check_interval

    settings: RunSettings = ctx.obj
    every = check_interval(interval)
    url = check_url(notify) if notify is not None else None
    try:
        damping = parse_duration(notify_interval)
    except ValueError as exc:
        raise UsageError(f"--notify-interval: {exc}") from None
    settings.deadline_for("status")  # a bad --timeout is refused before the port is taken
    sock = bind(listen)              # in use, not allowed, not an address: exit 5 before any host
    try:
        _live(settings, "exporter", lambda fleet, targets, timeout: serve(
            fleet, targets, sock, every, timeout, reload=settings.targets, notify=url, notify_interval=damping))
    finally:
        sock.close()


@app.command()
def start(ctx: typer.Context,
          component: Annotated[str | None, typer.Argument(help="ps, is or svg: bring one held-down component "
                                                                "back (default: everything)")] = None) -> None:
    """Start the Server Supervisor and all components on every host; or one component.

    Example: imageserving-fleet -l 'is0*' start is
    """
    _run(ctx, "start", Job("start", ("start", *_component(component), "--json")))


@app.command()
def stop(ctx: typer.Context,
         component: Annotated[str | None, typer.Argument(help="ps, is or svg: hold one component down (its "
                                                               "hosts stay ok, 'held down: is')")] = None) -> None:
    """Stop all components and the Server Supervisor on every host; or hold one component down.

    Example: imageserving-fleet -l 'is0*' stop is   (maintenance; `start is` ends it)
    """
    _run(ctx, "stop", Job("stop", ("stop", *_component(component), "--json")))


@app.command()
def restart(ctx: typer.Context,
            component: Annotated[str | None, typer.Argument(help="ps, is or svg (default: everything)")] = None,
            serial: Annotated[str | None, typer.Option(
                "--serial", metavar="N|N%", help="Rolling restart: batches of N hosts (or N% of them); the "
                                                 "next batch starts when this one is all RUNNING.")] = None,
            max_fail_percentage: Annotated[float, typer.Option(
                "--max-fail-percentage", metavar="P", help="Stop the rolling restart when more than P% of a "
                                                            "batch fails (default 0: any failure).")] = 0.0,
            ) -> None:
    """Restart one component or everything; rolling with --serial."""
    ids = _component(component)
    cid = ids[0] if ids else None
    if not 0 <= max_fail_percentage <= 100:
        raise UsageError("--max-fail-percentage must be between 0 and 100")
    if serial is not None:
        from .rolling import parse_serial

        parse_serial(serial)  # a usage error before any host is contacted

    def run(fleet, targets: Sequence[Target]) -> list[HostResult]:  # type: ignore[no-untyped-def]
        def on_batch(i: int, n: int, names: list[str]) -> None:
            if not settings.quiet and not settings.as_json and n > 1:
                err.print(f"batch {i}/{n}: {', '.join(names)}")

        return rolling_restart(fleet, targets, cid, serial, max_fail_percentage, on_batch)

    settings: RunSettings = ctx.obj
    _run(ctx, "restart", run)


SerialOpt = Annotated[str | None, typer.Option(
    "--serial", metavar="N|N%", help="Batches of N hosts (or N% of them); the next batch starts when this one "
                                     "is all RUNNING.")]
MaxFailOpt = Annotated[float, typer.Option(
    "--max-fail-percentage", metavar="P", help="Stop when more than P% of a batch fails (default 0: any failure).")]


def _rolling_options(ctx: typer.Context, serial: str | None, max_fail_percentage: float
                     ) -> Callable[[int, int, list[str]], None]:
    """Checks --serial and --max-fail-percentage before any host is contacted; returns the batch printer."""
    from .rolling import parse_serial

    if not 0 <= max_fail_percentage <= 100:
        raise UsageError("--max-fail-percentage must be between 0 and 100")
    if serial is not None:
        parse_serial(serial)
    settings: RunSettings = ctx.obj

    def on_batch(i: int, n: int, names: list[str]) -> None:
        if not settings.quiet and not settings.as_json and n > 1:
            err.print(f"batch {i}/{n}: {', '.join(names)}")

    return on_batch


@app.command()
def reload(ctx: typer.Context, serial: SerialOpt = None, max_fail_percentage: MaxFailOpt = 0.0) -> None:
    """Make every host's supervisor re-read its configuration and apply only what changed.

    Example: imageserving-fleet reload --serial 25%
    """
    from . import configpush

    on_batch = _rolling_options(ctx, serial, max_fail_percentage)
    _run(ctx, "reload", lambda fleet, targets: configpush.reload(fleet, targets, serial, max_fail_percentage,
                                                                 on_batch))


@app.command()
def logs(ctx: typer.Context,
         name: Annotated[str, typer.Argument(metavar="ID[:NAME]",
                                             help="ps, is, svg or supervisor; ID:NAME a file of the component's "
                                                  "`logs:` key (e.g. is:access)")] = "supervisor",
         lines: Annotated[int, typer.Option("-n", "--lines", help="How many last lines per host.")] = 20,
         grep: Annotated[str | None, typer.Option("--grep", metavar="RE",
                                                  help="Only lines matching this regular expression (Python's), "
                                                       "filtered on the host.")] = None,
         since: Annotated[str | None, typer.Option("--since", metavar="D",
                                                   help="Only lines of the last D (90s, 10m, 2h, 1d), filtered on "
                                                        "the host.")] = None,
         group: Annotated[bool, typer.Option("--group", help="Each distinct output once, under the hosts that "
                                                             "gave it (is[01-03,07]), as clush -b does.")] = False,
         ) -> None:
    """The last lines of a log from every host, each prefixed by its host (hosts in inventory order).

    Example: imageserving-fleet -l 'is0*' logs is:access --grep ' 5[0-9][0-9] ' --since 10m --group
    """
    from .logs import logs_document, logs_request, parse_logs, print_logs

    request = logs_request(name, lines, grep, since)
    settings: RunSettings = ctx.obj

    def report(results: Sequence[HostResult]) -> int:
        if settings.as_json:
            sys.stdout.write(logs_document(results, grouped=group) + "\n")
        elif group:
            from .loggroup import group_results, print_groups

            print_groups(group_results(results))
        else:
            print_logs(results)
        return exit_code(summarize(results))

    _run(ctx, "logs", Job("logs", request.args(), parse=parse_logs), report)


@app.command()
def ping(ctx: typer.Context) -> None:
    """Reachability and agent version of every host."""
    _run(ctx, "ping", Job("version", ("--version",)))


@app.command()
def deploy(ctx: typer.Context,
           systemd: Annotated[bool, typer.Option(
               "--systemd", help="Also install and enable the imageserving systemd unit (needs root: -b).")] = False,
           force: Annotated[bool, typer.Option(
               "--force", help="Reinstall even where the same build already runs.")] = False,
           wheel: Annotated[str | None, typer.Option(
               "--wheel", metavar="PATH", help="Deploy this imageserving-fleet wheel (e.g. a release build) "
                                               "instead of building one from this installation.")] = None) -> None:
    """Install or upgrade the agent on every host: wheels over SFTP (else piped), a new venv, no package index there."""
    import zipfile

    from .deploy.plan import DeployRequest
    from .deploy.render import print_deploy
    from .deploy.run import DeployJob, inventory_interpreters
    from .deploy.run import deploy as deploy_hosts
    from .deploy.wheelhouse import WheelhouseError, given_wheel, project_wheel

    settings: RunSettings = ctx.obj
    settings.targets()  # a bad inventory or an empty --limit match stops us before the wheel build
    try:
        job = DeployJob(given_wheel(wheel) if wheel else project_wheel(), DeployRequest(force=force, systemd=systemd),
                        inventory_interpreters(settings))
    except (WheelhouseError, OSError, zipfile.BadZipFile) as exc:  # nothing contacted yet: exit 1
        err.print(f"imageserving-fleet: {exc}", markup=False)
        raise typer.Exit(EXIT_BEFORE_HOSTS) from None

    def report(results: Sequence[HostResult]) -> int:
        if settings.as_json:
            sys.stdout.write(json.dumps(fleet_document("deploy", results)) + "\n")
        elif not settings.quiet or any(r.result != Result.OK for r in results):
            print_deploy(out, [r for r in results if r.result != Result.OK] if settings.quiet else results)
        return exit_code(summarize(results))

    _run(ctx, "deploy", lambda fleet, targets: deploy_hosts(fleet, targets, job, on_result=fleet.on_result), report)


@app.command()
def hosts(ctx: typer.Context) -> None:
    """The matched hosts and their connection settings (contacts nothing)."""
    settings: RunSettings = ctx.obj
    targets = settings.targets()
    rows = [{"host": t.name, "address": t.address, "connection": t.connection, "become": t.become,
             "become_user": t.become_user, "home": t.home, "config": t.config, "worker": t.worker,
             "agent": t.agent_command or f"{t.venv}/bin/imageserving (else imageserving on PATH)"} for t in targets]
    if settings.as_json:
        sys.stdout.write(json.dumps({"schema": 1, "command": "hosts", "hosts": rows}) + "\n")
        return
    from rich.table import Table

    table = Table(header_style="bold")
    for col in ("host", "address", "connection", "become", "home", "config", "agent"):
        table.add_column(col, overflow="fold")
    for row in rows:
        table.add_row(*(str(row[c]) if row[c] not in (None, False) else "-" for c in
                        ("host", "address", "connection", "become", "home", "config", "agent")))
    out.print(table)
    out.print(f"{len(rows)} host(s)")


# ------------------------------------------------------------------- config
config_app = typer.Typer(add_completion=False, rich_markup_mode=None, no_args_is_help=True,
                         context_settings={"help_option_names": ["-h", "--help"]},
                         help="Push an agent configuration to the hosts.")
app.add_typer(config_app, name="config")


@config_app.command("push")
def config_push(ctx: typer.Context,
                path: Annotated[str, typer.Argument(metavar="FILE", help="The agent configuration (YAML).")],
                serial: SerialOpt = None, max_fail_percentage: MaxFailOpt = 0.0) -> None:
    """Validate FILE on each host with its own agent, install it (previous kept as .prev), reload.

    A host that refuses it keeps its old file and is failed with the agent's message.
    Example: imageserving-fleet config push agent.yaml --serial 3
    """
    from . import configpush

    data = configpush.read_config_file(path)
    on_batch = _rolling_options(ctx, serial, max_fail_percentage)
    _run(ctx, "config push", lambda fleet, targets: configpush.push(fleet, targets, data, serial,
                                                                    max_fail_percentage, on_batch))


# ------------------------------------------------------------------ reports
report_app = typer.Typer(add_completion=False, rich_markup_mode=None,
                         context_settings={"help_option_names": ["-h", "--help"]})
app.add_typer(report_app, name="report")
FormatOpt = Annotated[str | None, typer.Option("--format", metavar="html|json|csv|md|openmetrics|prometheus",
                                               help="Default: from -o's extension, else html.")]
OutputOpt = Annotated[str | None, typer.Option("-o", "--output", metavar="FILE",
                                               help="Write here atomically (temp file + rename); default stdout.")]
TitleOpt = Annotated[str | None, typer.Option("--title", metavar="TEXT", help="Page title.")]


def _report_errors(fn: Callable[[], int]) -> None:
    from .reports.history import HistoryError
    from .reports.model import ReportInputError

    try:
        code = fn()
    except (HistoryError, ReportInputError) as exc:
        err.print(f"imageserving-fleet: {exc}", markup=False)
        raise typer.Exit(EXIT_BEFORE_HOSTS) from None
    raise typer.Exit(code)


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
    from .reports.command import make_request, run_report

    settings: RunSettings = ctx.obj
    request = make_request(fmt=fmt, output=output, history=history, keep_days=keep_days, slice_text=slice_,
                           window=trend_runs, title=title, quiet=settings.quiet, as_json=settings.as_json)
    _report_errors(lambda: run_report(settings, request, lambda n: _progress(settings, n)))


@report_app.command("merge")
def report_merge(ctx: typer.Context,
                 reports: Annotated[list[str], typer.Argument(metavar="REPORT.json",
                                                              help="JSON reports (e.g. one per --slice).")],
                 fmt: FormatOpt = None, output: OutputOpt = None, title: TitleOpt = None) -> None:
    """Join JSON slice reports into one report."""
    from .reports.command import make_request, run_merge

    settings: RunSettings = ctx.obj
    request = make_request(fmt=fmt, output=output, title=title, quiet=settings.quiet, as_json=settings.as_json)
    _report_errors(lambda: run_merge(reports, request))


def _show_usage_error(exc: Exception) -> None:
    show = getattr(exc, "show", None)
    if callable(show):
        show()
    else:
        err.print(f"imageserving-fleet: {exc}", markup=False)


def run(args: list[str]) -> None:
    """Runs the Typer app on already-hoisted argv; maps our errors to the documented exit codes."""
    try:
        code = app(args=args, prog_name="imageserving-fleet", standalone_mode=False)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except InventoryError as exc:
        err.print(f"imageserving-fleet: {exc}", markup=False)
        sys.exit(EXIT_BEFORE_HOSTS)
    except UsageError as exc:
        err.print(f"imageserving-fleet: {exc}", markup=False)
        sys.exit(EXIT_BAD_OPTIONS)
    except ImageServingError as exc:  # any other refusal of ours comes before hosts are reached
        err.print(f"imageserving-fleet: {exc}", markup=False)
        sys.exit(EXIT_BEFORE_HOSTS)
    except (KeyboardInterrupt, typer.Abort):
        err.print("interrupted")
        sys.exit(EXIT_INTERRUPTED)
    except typer.exceptions.TyperException as exc:  # usage errors (Typer ships its own click)
        _show_usage_error(exc)
        sys.exit(EXIT_BAD_OPTIONS)
    sys.exit(code if isinstance(code, int) else 0)
