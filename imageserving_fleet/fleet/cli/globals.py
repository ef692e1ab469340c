"""The Typer callback of the global options, built from their one declaration (options.Options)."""

from __future__ import annotations

import inspect
import logging
import sys
from collections.abc import Callable
from typing import Any

import typer

from ... import __version__
from ..options import Options, declared


def _version(value: bool) -> None:
    if value:
        print(f"imageserving-fleet {__version__}")
        raise typer.Exit(0)


def options_callback() -> Callable[..., None]:
    """A callback taking every global option (as Options declares it); it leaves the Options in ctx.obj."""
    params = [inspect.Parameter("ctx", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=typer.Context)]
    repeated: list[str] = []
    for field, kind, decl in declared():
        if kind == tuple[str, ...]:  # repeatable: Typer collects a list
            repeated.append(field.name)
            kind, default = list[str] | None, None
        else:
            default = field.default
        info = typer.Option(default, *decl.flags, help=decl.help, metavar=decl.metavar)
        params.append(inspect.Parameter(field.name, inspect.Parameter.KEYWORD_ONLY, default=info, annotation=kind))
    params.append(inspect.Parameter("version", inspect.Parameter.KEYWORD_ONLY, annotation=bool,
                                    default=typer.Option(False, "--version", callback=_version, is_eager=True)))

    def callback(ctx: typer.Context, **values: Any) -> None:
        values.pop("version", None)
        for name in repeated:
            values[name] = tuple(values[name] or ())
        ctx.obj = Options(**values)
        if ctx.obj.verbose:
            _debug_log()

    callback.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    callback.__doc__ = None
    return callback


def _debug_log() -> None:
    from ...untrusted import EscapingFormatter

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(EscapingFormatter("debug: %(message)s"))  # the messages carry what hosts printed
    logging.getLogger("imageserving_fleet").addHandler(handler)
    logging.getLogger("imageserving_fleet").setLevel(logging.DEBUG)
