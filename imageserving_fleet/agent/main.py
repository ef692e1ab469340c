"""Entry point of `imageserving`: a fast path for `status`, Typer for everything else.

`imageserving status --json` runs on every host at every fleet poll, so it must not import Typer,
psutil or yaml: it asks the supervisor (which measures) over the socket and prints the answer.
"""

from __future__ import annotations

import sys

from ..argv import hoist

GLOBAL_WITH_VALUE = ("--home", "--config")
GLOBAL_FLAGS = ("--json",)


def _plain_id(text: str) -> bool:
    return 0 < len(text) <= 32 and text[0].isalpha() and text.replace("-", "").replace("_", "").isalnum()


def _fast_status(args: list[str]) -> int | None:
    """Serves `status [ids]` without Typer; returns the exit code, or None to take the full path."""
    home = config = None
    as_json = False
    i = 0
    while i < len(args) and args[i].startswith("--"):
        name, eq, value = args[i].partition("=")
        if name == "--json" and not eq:
            as_json = True
        elif name in GLOBAL_WITH_VALUE:
            if not eq:
                if i + 1 >= len(args):
                    return None
                i += 1
                value = args[i]
            home, config = (value, config) if name == "--home" else (home, value)
        else:
            return None
        i += 1
    rest = args[i:]
    if not rest or rest[0] != "status" or not all(_plain_id(a) for a in rest[1:]):
        return None
    del config  # the running supervisor has its own; only the full path reads a file
    from ..home import Home
    from . import control
    from .render import emit

    ids = [a.lower() for a in rest[1:]]
    outcome = control.status(Home.resolve(home), ids)
    if ids and outcome.code == control.NOT_RUNNING:
        return None  # ids must be checked against the configuration: full path
    return emit(outcome, as_json, table=True)


def main(argv: list[str] | None = None) -> None:
    args = hoist(list(sys.argv[1:] if argv is None else argv), GLOBAL_WITH_VALUE, GLOBAL_FLAGS)
    if "--version" in args[: args.index("--") if "--" in args else None]:  # the fleet's ping: keep it instant
        from .. import __version__

        sys.stdout.write(f"imageserving {__version__}\n")
        sys.exit(0)
    code = _fast_status(args)
    if code is not None:
        sys.stdout.flush()
        sys.exit(code)
    from .cli import run

    run(args)


if __name__ == "__main__":
    main()
