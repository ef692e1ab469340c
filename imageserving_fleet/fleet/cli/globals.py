"""Typer options built from their one declaration (options.Opt fields): the global options'
callback (options.Options) and a command's family of options (e.g. rolling.RollingOptions)."""

from __future__ import annotations

import functools
import inspect
import logging
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import typer

from ... import __version__
from ..options import Options, declared

F = TypeVar("F", bound=Callable[..., Any])


def _version(value: bool) -> None:
    if value:
        print(f"imageserving-fleet {__version__}")
        raise typer.Exit(0)


def _parameters(options: type) -> tuple[list[inspect.Parameter], Callable[[dict[str, Any]], Any]]:
    """Typer's parameters for every option `options` declares, and what makes the declaration's
    instance of their values (a repeatable option: Typer collects a list, the field holds a tuple)."""
    params, repeated = [], []
    for field, kind, decl in declared(options):
        if kind == tuple[str, ...]:
            repeated.append(field.name)
            kind, default = list[str] | None, None
        else:
            default = field.default
        info = typer.Option(default, *decl.flags, help=decl.help, metavar=decl.metavar)
        params.append(inspect.Parameter(field.name, inspect.Parameter.KEYWORD_ONLY, default=info, annotation=kind))

    def build(values: dict[str, Any]) -> Any:
        return options(**{name: tuple(value or ()) if name in repeated else value for name, value in values.items()})

    return params, build


def options_callback() -> Callable[..., None]:
    """A callback taking every global option (as Options declares it); it leaves the Options in ctx.obj."""
    params, build = _parameters(Options)
    params.insert(0, inspect.Parameter("ctx", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=typer.Context))
    params.append(inspect.Parameter("version", inspect.Parameter.KEYWORD_ONLY, annotation=bool,
                                    default=typer.Option(False, "--version", callback=_version, is_eager=True)))

    def callback(ctx: typer.Context, **values: Any) -> None:
        values.pop("version", None)
        ctx.obj = build(values)
        if ctx.obj.verbose:
            _debug_log()

    callback.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    callback.__doc__ = None
    return callback


def with_options(options: type, name: str) -> Callable[[F], F]:
    """Gives a command the options `options` declares, after its own parameters; it receives them
    as one instance of the declaration in its parameter `name`."""
    def decorate(command: F) -> F:
        params, build = _parameters(options)
        own = inspect.signature(command, eval_str=True)

        @functools.wraps(command)
        def wrapper(*args: Any, **values: Any) -> Any:
            given = {param.name: values.pop(param.name) for param in params}
            return command(*args, **values, **{name: build(given)})

        kept = [param for param in own.parameters.values() if param.name != name]
        wrapper.__signature__ = own.replace(parameters=[*kept, *params])  # type: ignore[attr-defined]
        return wrapper  # type: ignore[return-value]

    return decorate


def _debug_log() -> None:
    from ...untrusted import EscapingFormatter

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(EscapingFormatter("debug: %(message)s"))  # the messages carry what hosts printed
    logging.getLogger("imageserving_fleet").addHandler(handler)
    logging.getLogger("imageserving_fleet").setLevel(logging.DEBUG)
