"""Entry point of `imageserving-fleet`: let global options stand anywhere, then run the CLI."""

from __future__ import annotations

import sys

from ..argv import hoist
from .options import hoisted
from .results import EXIT_BEFORE_HOSTS


def main(argv: list[str] | None = None) -> None:
    with_value, flags = hoisted()  # every global option, from its one declaration (options.py)
    args = hoist(list(sys.argv[1:] if argv is None else argv), with_value, flags)
    try:  # a plain status or ping without Typer's start-up cost (quick.py); anything else: the CLI
        from .quick import run as quick_run

        code = quick_run(args)
    except ImportError:
        code = None
    if code is not None:
        sys.exit(code)
    try:
        from .cli import run
    except ImportError as exc:  # a broken environment: say so once, with the fix, before anything else
        from .requirements import CONTROLLER_MODULES, missing_message

        module = (exc.name or "").split(".")[0]
        if module not in CONTROLLER_MODULES:
            raise
        sys.stderr.write(f"imageserving-fleet: {missing_message([module], [exc])}\n")
        sys.exit(EXIT_BEFORE_HOSTS)
    run(args)


if __name__ == "__main__":
    main()
