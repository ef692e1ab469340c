"""The `imageserving` commands (Typer). Each parses, calls agent.control, prints via render.emit."""

from __future__ import annotations

import os
import sys
import time
from typing import Annotated

import typer

from .. import __version__
from ..errors import ConfigError, ImageServingError, SupervisorError, UsageError
from ..home import Home
from . import control, logview
from .config import AgentConfig, load_config, resolve_path
from .render import emit

app = typer.Typer(
    add_completion=False, no_args_is_help=True, rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
    help="Control the Server Supervisor and the Image Serving components of this host "
         "(ps: Platform Server, is: Image Server, svg: SVG server).",
)


class Settings:
    def __init__(self, home: str | None, config: str | None, as_json: bool) -> None:
        self.home = Home.resolve(home)
        self.config_path = str(resolve_path(config))
        self.explicit_config = config  # --config or IMAGESERVING_CONFIG, else None
        self.as_json = as_json

    def config(self) -> AgentConfig:
        return load_config(self.config_path)


def _version(value: bool) -> None:
    if value:
        print(f"imageserving {__version__}")
        raise typer.Exit(0)


@app.callback()
def _options(
    ctx: typer.Context,
    config: Annotated[str | None, typer.Option("--config", envvar="IMAGESERVING_CONFIG", metavar="PATH",
                                                  help="Agent configuration (YAML). Default: "
                                                       "/etc/imageserving/agent.yaml, else the demo stack.")] = None,
    home: Annotated[str | None, typer.Option("--home", envvar="IMAGESERVING_HOME", metavar="DIR",
                                                help="State root (run/, logs/). Default: ~/.imageserving")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine output (status JSON, schema 1) on stdout.")] = False,
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    ctx.obj = Settings(home, config, as_json)


def _ids(settings: Settings, ids: list[str]) -> list[str]:
    return control.normalize_ids(ids, settings.config().ids)


def _known_ids(settings: Settings, component: str) -> list[str]:
    """Checked against the configuration (exit 2 listing the valid ids); a broken file must not stop
    `stop ID` from working, so then the running supervisor checks it."""
    try:
        return _ids(settings, [component])
    except ConfigError:
        return control.normalize_ids([component], None)


def _finish(settings: Settings, outcome: control.Outcome, table: bool = True) -> None:
    raise typer.Exit(emit(outcome, settings.as_json, table))


@app.command()
def start(ctx: typer.Context,
          component: Annotated[str | None, typer.Argument(help="ps, is or svg: start one held-down component "
                                                                "(the supervisor must run)")] = None) -> None:
    """Start the Server Supervisor (detached) and all components, in start order; or one component.

    Example: imageserving start is   (ends the hold of `imageserving stop is`)
    """
    s: Settings = ctx.obj
    if component:
        _finish(s, control.start(s.home, None, _known_ids(s, component)))
    _finish(s, control.start(s.home, s.config()))  # a bad file is refused before anything starts


@app.command("inicio", hidden=True)
def inicio(ctx: typer.Context, component: Annotated[str | None, typer.Argument()] = None) -> None:
    start(ctx, component)


@app.command()
def stop(ctx: typer.Context,
         component: Annotated[str | None, typer.Argument(help="ps, is or svg: stop it and hold it down until "
                                                               "`start ID`")] = None) -> None:
    """Stop all components (reverse order), then the Server Supervisor; or hold one component down.

    Example: imageserving stop is   (maintenance: is stays STOPPED, "stopped by operator", through reloads
    and health checks, until `imageserving start is`)
    """
    s: Settings = ctx.obj
    _finish(s, control.stop(s.home, _known_ids(s, component) if component else []), table=False)


@app.command()
def reload(ctx: typer.Context) -> None:
    """Re-read the configuration and apply only what changed; every other component keeps its pid.

    Reads --config when given, else the file the supervisor runs with. A bad file changes nothing
    (exit 6, with file, line and key). Example: imageserving reload --json
    """
    s: Settings = ctx.obj
    path = s.explicit_config or control.running_config(s.home) or s.config_path
    config = load_config(path)  # validated here: the supervisor never reads YAML
    _finish(s, control.reload(s.home, config))


@app.command()
def restart(ctx: typer.Context,
            component: Annotated[str | None, typer.Argument(help="ps, is or svg; supervisor: hand over to a new "
                                                                     "supervisor, no component restarted; none: "
                                                                     "everything, with a new supervisor")] = None) -> None:
    """Restart one component (the others keep their pids), everything and the supervisor, or only the supervisor.

    `restart supervisor`: a new Server Supervisor from the code installed now takes over every
    component (same pids, restarts, holds, uptime, logs); if it cannot start, the old one keeps
    running (exit 1). This is how an agent upgrade reaches a host with no component restarted.
    """
    s: Settings = ctx.obj
    if component and component.lower() == "supervisor":
        _finish(s, control.restart_supervisor(s.home), table=False)
    config = s.config()  # a bad file is refused before anything stops
    ids = control.normalize_ids([component], config.ids) if component else []
    _finish(s, control.restart(s.home, config, ids))


@app.command("reiniciar", hidden=True)
def reiniciar(ctx: typer.Context, component: Annotated[str | None, typer.Argument()] = None) -> None:
    restart(ctx, component)


@app.command()
def status(ctx: typer.Context,
           components: Annotated[list[str] | None, typer.Argument(help="ps, is, svg (default: all)")] = None
           ) -> None:
    """Uptime and current memory of each component and of the supervisor."""
    s: Settings = ctx.obj
    ids = _ids(s, components or [])
    _finish(s, control.status(s.home, ids))


@app.command()
def supervise(ctx: typer.Context) -> None:
    """Run the Server Supervisor in the foreground (systemd Type=simple, containers)."""
    s: Settings = ctx.obj
    config = s.config()
    s.home.prepare()
    sys.stdout.flush()
    # Replace this process: the long-lived daemon must not carry Typer, yaml and their imports.
    argv = control.daemon_argv(s.home, control.write_config_json(s.home, config))
    os.execv(argv[0], argv)


@app.command()
def logs(ctx: typer.Context,
         name: Annotated[str, typer.Argument(
             help="ps, is, svg or supervisor: the component's output (stdout and stderr) or Supervisor.log; "
                  "ID:NAME: a server's own log named in the component's `logs:` key, e.g. is:access")] = "supervisor",
         lines: Annotated[int | None, typer.Option(
             "-n", "--lines", help="How many last lines (default 20; with --since, every line since then).")] = None,
         follow: Annotated[bool, typer.Option("-f", "--follow", help="Keep printing new lines.")] = False,
         grep: Annotated[str | None, typer.Option("--grep", metavar="RE",
                                                  help="Only lines matching this regular expression.")] = None,
         since: Annotated[str | None, typer.Option(
             "--since", metavar="DURATION",
             help="Only lines from the last DURATION (10m, 2h, 1d), by the time at the start of each line "
                  "(ISO 8601, Apache/nginx, Tomcat formats); a line without one follows the line before it.")] = None,
         ) -> None:
    """Print the end of a log: a component's output, the supervisor's, or a server's own (ID:NAME).

    Exit 0: printed; 1: no such file (yet), or no file matches the glob; 2: unknown id or log name, bad --grep
    or --since. Example: imageserving logs is:access -n 50 --grep ' 500 ' --since 1h
    """
    from .logfilter import LineFilter, compile_grep, parse_since

    s: Settings = ctx.obj
    if lines is not None and lines < 0:
        raise UsageError(f"-n must be 0 or more, got {lines}")
    try:
        filt = LineFilter(grep=compile_grep(grep) if grep is not None else None,
                          since=time.time() - parse_since(since) if since is not None else None)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    source = _log_source(s, name)
    path = logview.resolve(source)
    sys.stdout.write("".join(logview.last_lines(path, lines, filt)))
    sys.stdout.flush()
    if follow:
        def write(text: str) -> None:
            sys.stdout.write(text)
            sys.stdout.flush()

        try:
            logview.follow(source, path, filt, write)
        except KeyboardInterrupt:
            pass


def _log_source(s: Settings, name: str) -> logview.LogSource:
    """`supervisor`, `ID` or `ID:NAME` -> the log to show; unknown ids and names are usage errors (exit 2)."""
    key, _, log_name = name.lower().partition(":")
    if not log_name:
        if key != "supervisor":
            try:
                key = _ids(s, [key])[0]
            except ConfigError:
                key = control.normalize_ids([key], None)[0]  # a broken config must not hide the logs that explain it
        return logview.own_log(s.home, key)
    # The server logs are named in the configuration the supervisor runs with (as `reload` reads it).
    try:
        running = None if s.explicit_config else control.running_config(s.home)
    except SupervisorError:
        running = None  # a hung supervisor must not keep anyone from its servers' logs
    config = load_config(s.explicit_config or running or s.config_path)
    cid = control.normalize_ids([key], config.ids)[0]
    return logview.server_log(s.home, config.component(cid), log_name)


@app.command()
def metrics(ctx: typer.Context,
            output: Annotated[str | None, typer.Option(
                "-o", "--output", metavar="FILE",
                help="Write here atomically (temp file + rename), e.g. into node_exporter's textfile "
                     "directory as imageserving.prom; default stdout.")] = None,
            fmt: Annotated[str, typer.Option(
                "--format", metavar="prometheus|openmetrics",
                help="prometheus: the text format node_exporter's textfile collector and promtool read "
                     "(default); openmetrics: OpenMetrics 1.0.")] = "prometheus") -> None:
    """The status as Prometheus metrics (SPEC §7 names), for node_exporter's textfile collector."""
    from ..metrics import FORMATS, agent_families, render
    from ..schema import parse_status

    s: Settings = ctx.obj
    if fmt not in FORMATS:
        raise UsageError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    if output is not None and not os.access(os.path.dirname(os.path.abspath(output)), os.W_OK):
        raise UsageError(f"-o {output}: its directory does not exist or is not writable")
    outcome = control.status(s.home, [])
    if outcome.status is None:  # no answer in time: leave the last file, whose age says it (exit 4)
        sys.stderr.write(f"imageserving: {outcome.message}\n")
        raise typer.Exit(outcome.code)
    text = render(agent_families(parse_status(outcome.status), time.time()), fmt)
    if output is None:
        sys.stdout.buffer.write(text)
        sys.stdout.flush()
        return
    from ..atomic import write_atomic

    try:
        write_atomic(output, text.decode())
    except OSError as exc:
        raise ImageServingError(f"cannot write {output}: {exc.strerror or exc}") from None


config_app = typer.Typer(help="Check a configuration without starting anything, or install one.",
                         no_args_is_help=True)
app.add_typer(config_app, name="config")


@config_app.command("check")
def config_check(ctx: typer.Context,
                 path: Annotated[str | None, typer.Argument(help="Default: the file start would use.")] = None
                 ) -> None:
    """Validate a configuration: exit 0 when valid, 6 with file, line and key when not."""
    s: Settings = ctx.obj
    cfg = load_config(path or s.config_path)
    if s.as_json:
        import json

        print(json.dumps({"path": cfg.path, "valid": True, "components": list(cfg.ids)}))
        return
    order = " → ".join(", ".join(g) for g in cfg.priorities())
    print(f"{cfg.path}: valid; {len(cfg.components)} components, start order: {order}")


@config_app.command("install")
def config_install(ctx: typer.Context,
                   no_reload: Annotated[bool, typer.Option("--no-reload", help="Install only.")] = False) -> None:
    """Install a configuration read from stdin as --config (default /etc/imageserving/agent.yaml), then reload.

    Validated first as `config check` does; a refused file (exit 6) leaves the old one in place;
    the previous file is kept as .prev. The fleet's `config push` runs this on every host.
    Example: imageserving --config /etc/imageserving/agent.yaml config install < new.yaml
    """
    from .install import destination, install

    s: Settings = ctx.obj
    _finish(s, install(s.home, destination(s.explicit_config), sys.stdin.buffer, apply=not no_reload))


def run(args: list[str]) -> None:
    """Runs the Typer app on already-hoisted argv and maps our errors to LSB exit codes."""
    try:
        code = app(args=args, prog_name="imageserving", standalone_mode=False)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except ConfigError as exc:
        sys.stderr.write(f"imageserving: invalid configuration: {exc}\n")
        sys.exit(control.BAD_CONFIG)
    except UsageError as exc:
        sys.stderr.write(f"imageserving: {exc}\n")
        sys.exit(control.BAD_ARGS)
    except SupervisorError as exc:
        sys.stderr.write(f"imageserving: {exc}\n")
        sys.exit(control.FAILED)
    except ImageServingError as exc:
        sys.stderr.write(f"imageserving: {exc}\n")
        sys.exit(control.FAILED)
    except KeyboardInterrupt:
        sys.exit(130)
    except typer.Abort:
        sys.exit(130)
    except typer.exceptions.TyperException as exc:  # usage errors (Typer ships its own click)
        show = getattr(exc, "show", None)
        if callable(show):
            show()
        else:
            sys.stderr.write(f"imageserving: {exc}\n")
        sys.exit(control.BAD_ARGS)
    sys.exit(code if isinstance(code, int) else 0)
