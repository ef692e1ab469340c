"""OpenSSH client arguments as Ansible's ssh_args/ssh_common_args/ssh_extra_args hold them: parsed
into ssh_config keywords, and those the SSH layer does not honour named. Pure.

    ssh_options(args)          -> {keyword: [values]}   (`-o Port=2222 -J b -i k` -> port, proxyjump, identityfile)
    unsupported_ssh_args(args) -> ["-C", "-o ControlPersist=60s", ...]
"""

from __future__ import annotations

from collections.abc import Sequence

from imageserving_fleet.fleet.ssh.settings import SUPPORTED_SSH_OPTIONS

__all__ = ["port", "ssh_options", "unsupported_ssh_args"]

# OpenSSH client options that take an argument (from ssh(1)); needed to skip them correctly.
_SSH_OPTS_WITH_ARG = set("BbcDEeFIiJLlmOoPpQRSWw")
# Short options we translate to their ssh_config keyword; the others are accepted and ignored.
_SSH_SHORT_TO_KEYWORD = {"p": "port", "l": "user", "i": "identityfile", "J": "proxyjump", "F": "-F"}


def ssh_options(args: Sequence[str]) -> dict[str, list[str]]:
    """Takes OpenSSH client arguments (`-o Port=2222 -J bastion -i key`); returns keyword -> values.

    Keywords are ssh_config's, lower-cased (`-p` gives "port", `-J` "proxyjump", `-F` "-F"); values
    keep the order given (OpenSSH uses the first, except IdentityFile where all count). Flags
    without meaning for us (-C, -v, -q, -A...) are accepted and ignored. Raises ValueError.
    """
    found: dict[str, list[str]] = {}
    items = list(args)
    i = 0
    while i < len(items):
        arg = items[i]
        i += 1
        if not arg.startswith("-") or arg == "-":
            raise ValueError(f"unexpected argument {arg!r} (only options such as -o Key=Value)")
        j = 1
        while j < len(arg):
            letter = arg[j]
            if letter not in _SSH_OPTS_WITH_ARG:
                j += 1
                continue
            value = arg[j + 1:]
            if not value:
                if i >= len(items):
                    raise ValueError(f"option -{letter} needs a value")
                value = items[i]
                i += 1
            if letter == "o":
                key, val = _split_o(value)
                found.setdefault(key, []).append(val)
            elif letter in _SSH_SHORT_TO_KEYWORD:
                found.setdefault(_SSH_SHORT_TO_KEYWORD[letter], []).append(value)
            break
    if "port" in found:
        port(found["port"][0])
    return found


def unsupported_ssh_args(args: Sequence[str]) -> list[str]:
    """Takes OpenSSH client arguments; returns those the SSH layer does not honour, as given
    (`-C`, `-o ControlPersist=60s`...), so a warning can name them. Raises ValueError as ssh_options."""
    ssh_options(args)  # the same grammar, the same errors
    left: list[str] = []
    items = list(args)
    i = 0
    while i < len(items):
        arg = items[i]
        i += 1
        j = 1
        while j < len(arg):
            letter = arg[j]
            if letter not in _SSH_OPTS_WITH_ARG:
                left.append(f"-{letter}")
                j += 1
                continue
            value = arg[j + 1:]
            if not value:
                value = items[i]
                i += 1
            if letter == "o":
                if _split_o(value)[0] not in SUPPORTED_SSH_OPTIONS:
                    left.append(f"-o {value}")
            elif letter not in _SSH_SHORT_TO_KEYWORD:
                left.append(f"-{letter} {value}")
            break
    return left


def _split_o(value: str) -> tuple[str, str]:
    """Takes the value of `-o` (`Key=Value` or `Key Value`); returns (lower-cased key, value)."""
    text = value.strip()
    for index, char in enumerate(text):
        if char == "=" or char.isspace():
            key, rest = text[:index], text[index:].lstrip()
            if rest.startswith("="):
                rest = rest[1:].lstrip()
            if key and rest:
                return key.lower(), rest
            break
    raise ValueError(f"-o {value!r} is not Key=Value")


def port(value: object) -> int:
    """Takes a port as YAML or an argument gives it; returns it as an int or raises ValueError."""
    if isinstance(value, bool):  # YAML's `yes` is a bool, and bool is an int in Python
        raise ValueError(f"expected a port number 1-65535, got {value!r}")
    try:
        number = int(str(value).strip()) if not isinstance(value, int) else value
    except ValueError:
        raise ValueError(f"expected a port number 1-65535, got {value!r}") from None
    if not 0 < number < 65536:
        raise ValueError(f"expected a port number 1-65535, got {value!r}")
    return number
