"""Entry point of `imageserving-fleet`: let global options stand anywhere, then run the CLI."""

from __future__ import annotations

import sys

from ..argv import hoist
from .results import EXIT_BEFORE_HOSTS

GLOBAL_WITH_VALUE = ("-i", "--inventory", "-l", "--limit", "-f", "--forks", "--timeout", "--connect-timeout",
                     "-u", "--user", "--private-key", "--ssh-config", "--host-key-policy",
                     "--cluster", "--audit-log")
GLOBAL_FLAGS = ("--json", "-b", "--become", "-K", "--ask-become-pass", "-q", "--quiet", "-v", "--verbose")


def main(argv: list[str] | None = None) -> None:
    args = hoist(list(sys.argv[1:] if argv is None else argv), GLOBAL_WITH_VALUE, GLOBAL_FLAGS)
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
