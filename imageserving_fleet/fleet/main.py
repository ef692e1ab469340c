"""Entry point of `imageserving-fleet`: let global options stand anywhere, then run the CLI."""

from __future__ import annotations

import sys

from ..argv import hoist

GLOBAL_WITH_VALUE = ("-i", "--inventory", "-l", "--limit", "-f", "--forks", "--timeout", "--connect-timeout",
                     "-u", "--user", "--private-key", "--ssh-config", "--host-key-policy",
                     "--cluster")
GLOBAL_FLAGS = ("--json", "-b", "--become", "-K", "--ask-become-pass", "-q", "--quiet")


def main(argv: list[str] | None = None) -> None:
    args = hoist(list(sys.argv[1:] if argv is None else argv), GLOBAL_WITH_VALUE, GLOBAL_FLAGS)
    from .cli import run

    run(args)


if __name__ == "__main__":
    main()
