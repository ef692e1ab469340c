"""Entry point of `imageserving-fleet`: a warm start if one is there, else let global options stand anywhere and run.

Imports nothing at module level: a warm `status` (persist/thin.py) must not pay for the controller's
imports, which the holder's starter has already made.
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> None:
    if argv is None:  # this process's own command line and streams: a warm start can take them
        from .persist.thin import run as warm_run

        code = warm_run(sys.argv[1:])
        if code is not None:
            sys.exit(code)
    from ..argv import hoist
    from .options import hoisted
    from .results import EXIT_BEFORE_HOSTS

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
