"""Let options stand before or after the command word, as Ansible does.

Click wants group options before the command; operators type them anywhere. `hoist()` moves the
global options (and their values) in front of the command word and leaves everything else alone.
Pure and stdlib only.
"""

from __future__ import annotations

from collections.abc import Collection


def hoist(argv: list[str], with_value: Collection[str], flags: Collection[str]) -> list[str]:
    """Takes argv (without the program name); returns it with global options moved to the front.

    `with_value` are options that take a value (`--home H`, `--home=H`, `-iFILE`), `flags` those
    that do not. Everything after a bare `--` stays where it is.
    """
    front: list[str] = []
    rest: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            rest += argv[i:]
            break
        name = arg.split("=", 1)[0]
        if name in flags:
            front.append(arg)
        elif name in with_value:
            front.append(arg)
            if "=" not in arg and i + 1 < len(argv):
                front.append(argv[i + 1])
                i += 1
        elif len(arg) > 2 and arg[0] == "-" and arg[1] != "-" and arg[:2] in with_value:
            front.append(arg)  # -iFILE: short option glued to its value
        else:
            rest.append(arg)
        i += 1
    return front + rest
