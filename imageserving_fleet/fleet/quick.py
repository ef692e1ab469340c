"""`status` and `ping` in their plain form without Typer: the commands typed most, started light.

    run(args) -> exit code, or None: not the plain form, let the full CLI (cli/) take it

The full CLI imports Typer (and pydantic under it, for its parameter adapters) and builds every
command before it parses argv: about 0.2 s of CPU before the first host, which a `status`
answered by the connection holder in a few ms would spend mostly starting. This path reads the
global options from their one declaration (options.py) and runs the same library calls as the
CLI (context.resolve, commands.run.open_fanout, commands.status, render, record.leave_retry), so
its output is the CLI's, its retry file too; with --json it prints without importing rich. It
takes only what it fully understands: anything else (-h, --version, -v, -K, --watch, an
`--opt=value` form, a value it cannot read) and any refusal before a host is contacted (a bad
inventory, --forks 0) go to the full CLI, which says it in its own words.
"""

from __future__ import annotations

import os
import sys
import typing
from typing import Any

from ..errors import ImageServingError

_COMMANDS = ("status", "ping")
_FULL_CLI_ONLY = ("verbose", "ask_become_pass")  # debug logging and the password prompt: the CLI's


def parse(args: list[str]) -> tuple[str, str | None, dict[str, Any]] | None:
    """Takes hoisted argv; returns (command, component id or None, Options fields), or None."""
    from .options import declared

    by_flag: dict[str, tuple[str, Any]] = {}
    for field, kind, decl in declared():
        for flag in decl.flags:
            by_flag[flag] = (field.name, kind)
    values: dict[str, Any] = {}
    command, component = "", None
    i = 0
    while i < len(args):
        arg = args[i]
        if arg in by_flag:
            name, kind = by_flag[arg]
            if name in _FULL_CLI_ONLY:
                return None
            if kind is bool:
                values[name] = True
            else:
                if i + 1 >= len(args):
                    return None
                i += 1
                try:
                    value = _convert(kind, args[i])
                except ValueError:
                    return None
                if isinstance(value, tuple):
                    values[name] = values.get(name, ()) + value
                elif name in values:
                    return None  # given twice: the CLI's rule decides
                else:
                    values[name] = value
        elif not command and arg in _COMMANDS:
            command = arg
        elif command == "status" and component is None and not arg.startswith("-"):
            component = arg
        else:
            return None
        i += 1
    if not command:
        return None
    return command, component, values


def _convert(kind: Any, text: str) -> Any:
    """A value as its declared type reads it: tuple[str, ...] (repeatable), int, float, str (or None)."""
    if typing.get_origin(kind) is tuple:
        return (text,)
    types = set(typing.get_args(kind)) or {kind}
    if float in types:
        return float(text)
    if int in types:
        return int(text)
    return text


def run(args: list[str]) -> int | None:
    """Runs the plain form and returns its exit code; None hands argv to the full CLI untouched."""
    parsed = parse(args)
    if parsed is None:
        return None
    command_name, component, values = parsed
    try:
        from .commands import status as status_cmd
        from .commands.run import open_fanout
        from .context import Command, resolve
        from .options import Options
        from .remote import check_id

        options = Options(**values)
        command = Command.STATUS if command_name == "status" else Command.PING
        cid = check_id(component) if component else None
        ctx = resolve(options, os.environ, command)
        if ctx.cluster is not None:
            return None  # a scheduler to reach (and its refusals): the CLI's
        fanout = open_fanout(ctx)
    except ImageServingError:
        return None  # nothing contacted yet: the full CLI refuses it in its own words
    try:
        with fanout as opened:  # reaches the connection holder first, before any bar's thread
            advance, stop = _bar(options, len(ctx.targets))
            opened.on_result = advance
            try:
                outcome = status_cmd.status(ctx, opened, cid) if command is Command.STATUS else \
                    status_cmd.ping(ctx, opened)
            finally:
                stop()
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        return 99
    if options.as_json:  # the CLI's document, without rich
        import json

        from .results import fleet_document

        sys.stdout.write(json.dumps(fleet_document(command.value, outcome.results)) + "\n")
    else:
        from .render import out, print_outcome

        print_outcome(out, outcome, quiet=options.quiet)
    sys.stdout.flush()
    from .record import leave_retry  # the hosts not ok, for `--limit @FILE` (cli/app.py show(), the same)

    leave_retry(command.value, outcome.results, _say)
    if outcome.interrupted:
        sys.stderr.write("interrupted: the report above is partial\n")
    return outcome.exit_code


def _say(line: str) -> None:
    sys.stderr.write(line + "\n")


def _bar(options: Any, total: int) -> tuple[Any, Any]:
    if options.quiet or options.as_json or not sys.stderr.isatty():
        return None, lambda: None
    from .render import err, progress_bar

    return progress_bar(err, total)
