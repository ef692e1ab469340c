"""Typer options built from their one declaration (options.Opt fields on a frozen dataclass): the
global options (options.Options) and a command's own family (e.g. rolling.RollingOptions)."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import typer

from ... import __version__
from ..options import Options, declared
from ..render import debug_log

F = TypeVar("F", bound=Callable[..., Any])


def with_options(options: type, name: str) -> Callable[[F], F]:
    """Gives a command every option `options` declares, after its positional parameters (before its
    keyword-only ones); it receives their values as one instance of the declaration in `name`."""
    def decorate(command: F) -> F:
        params, repeated = [], []
        for field, kind, decl in declared(options):
            if kind == tuple[str, ...]:  # repeatable: Typer collects a list, the field holds a tuple
                repeated.append(field.name)
                kind, default = list[str] | None, None
            else:
                default = field.default
            info = typer.Option(default, *decl.flags, help=decl.help, metavar=decl.metavar)
            params.append(inspect.Parameter(field.name, inspect.Parameter.KEYWORD_ONLY, default=info, annotation=kind))

        @functools.wraps(command)
        def wrapper(*args: Any, **values: Any) -> Any:
            given = {p.name: values.pop(p.name) for p in params}
            given.update((field, tuple(given[field] or ())) for field in repeated)
            return command(*args, **values, **{name: options(**given)})

        own = [p for p in inspect.signature(command, eval_str=True).parameters.values() if p.name != name]
        keyword = [p for p in own if p.kind is inspect.Parameter.KEYWORD_ONLY]
        wrapper.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
            [*(p for p in own if p not in keyword), *params, *keyword])
        return wrapper  # type: ignore[return-value]

    return decorate


def _version(value: bool) -> None:
    if value:
        print(f"imageserving-fleet {__version__}")
        raise typer.Exit(0)


@with_options(Options, "options")
def options_callback(ctx: typer.Context, options: Options, *, version: Annotated[bool, typer.Option(
        "--version", callback=_version, is_eager=True)] = False) -> None:
    ctx.obj = options  # every global option, as Options declares it
    if options.verbose:
        debug_log()
