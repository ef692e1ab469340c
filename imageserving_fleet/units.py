"""Parse the human units of configuration files: durations, sizes and ${VAR:-default}.

Pure functions, stdlib only; each takes text and returns a number (or raises ValueError with a
message that can be shown to a user as is).
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]i?B|B)?\s*$", re.IGNORECASE)
_SIZE_UNITS = {
    "b": 1, "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40,
    "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
}
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?-)([^}]*))?\}")


def parse_duration(value: object) -> float:
    """Takes `500ms`, `5s`, `2m`, `1h` or a bare number of seconds; returns seconds."""
    if isinstance(value, bool):
        raise ValueError(f"expected a duration such as 500ms, 5s or 2m, got {value!r}")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError(f"a duration cannot be negative: {value!r}")
        seconds = float(value)
    else:
        match = _DURATION.match(str(value))
        if not match:
            raise ValueError(f"expected a duration such as 500ms, 5s or 2m, got {value!r}")
        seconds = float(match.group(1)) * _DURATION_UNITS[match.group(2)]
    if not math.isfinite(seconds):  # .nan or .inf in YAML: a stop that never times out
        raise ValueError(f"expected a finite duration, got {value!r:.40}")
    return seconds


def parse_size(value: object) -> int:
    """Takes `512KiB`, `10MiB`, `2GiB` (or MB, GB...) or a bare number of bytes; returns bytes."""
    if isinstance(value, bool):
        raise ValueError(f"expected a size such as 512KiB, 10MiB or 2GiB, got {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"a size cannot be negative: {value!r}")
        return value
    match = _SIZE.match(str(value))
    if not match:
        raise ValueError(f"expected a size such as 512KiB, 10MiB or 2GiB, got {value!r}")
    unit = (match.group(2) or "B").lower()
    nbytes = float(match.group(1)) * _SIZE_UNITS[unit]
    if not math.isfinite(nbytes):
        raise ValueError(f"size too large: {str(value):.40}")
    return int(nbytes)


def expand_vars(text: str, env: Mapping[str, str] | None = None) -> str:
    """Takes text with `${VAR}`, `${VAR:-default}` or `${VAR-default}`; returns it expanded.

    `${VAR}` of an unset variable is an error (a silent empty string hides typos); `:-` also
    replaces an empty value, `-` only an unset one, as in the POSIX shell.
    """
    environ = os.environ if env is None else env

    def one(match: re.Match[str]) -> str:
        name, op, default = match.group(1), match.group(2), match.group(3) or ""
        if "${" in default:
            raise ValueError(f"nested ${{...}} in a default is not supported: {match.group(0)}}}")
        value = environ.get(name)
        if op == ":-":
            return value if value else default
        if op == "-":
            return default if value is None else value
        if value is None:
            raise ValueError(f"environment variable {name} is not set (use ${{{name}:-default}})")
        return value

    return _VAR.sub(one, text)


def format_duration(seconds: float | None) -> str:
    """Takes seconds; returns a short human uptime such as `3d 4h`, `2h 05m`, `4m 12s`, `0.8s`."""
    if seconds is None:
        return "-"
    if seconds < 10:
        return f"{seconds:.1f}s"
    s = int(seconds)
    days, s = divmod(s, 86400)
    hours, s = divmod(s, 3600)
    minutes, s = divmod(s, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {s:02d}s"
    return f"{s}s"


def format_size(nbytes: int | None) -> str:
    """Takes bytes; returns `18.4 MiB`-style text."""
    if nbytes is None:
        return "-"
    value = float(nbytes)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"  # pragma: no cover - loop always returns
