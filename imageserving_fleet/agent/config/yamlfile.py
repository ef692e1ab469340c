"""Read a configuration file and parse its YAML, keeping the line of every key for error messages.

PyYAML is imported inside the functions: the supervisor gets its configuration as JSON and never
pays for yaml, and `status` never imports this module's dependencies at all.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ...errors import ConfigError
from ...yamldepth import MAX_DEPTH, too_deep

MAX_CONFIG_BYTES = 4 * 2**20

LineIndex = dict[tuple[str, ...], int]   # key path -> 1-based line


def read_text(path: str | Path) -> str:
    """Takes a file path; returns its UTF-8 text, or raises ConfigError (unreadable, too large, not text)."""
    name = str(path)
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_CONFIG_BYTES + 1)  # --config /dev/zero must not eat the memory
        if len(raw) > MAX_CONFIG_BYTES:
            raise ConfigError(f"larger than {MAX_CONFIG_BYTES // 2**20} MiB: not an agent configuration", path=name)
        return raw.decode("utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read configuration: {exc.strerror or exc}", path=name) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"not UTF-8 text: {exc.reason}", path=name) from None


def parse_yaml(text: str, name: str) -> tuple[Any, LineIndex]:
    """Takes YAML text and its file name; returns (the data, the line of every key) or raises ConfigError."""
    import yaml

    _Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        deep = too_deep(text, _Loader)
        if deep is not None:
            raise ConfigError(f"YAML nested deeper than {MAX_DEPTH} levels", path=name, line=deep)
        node = yaml.compose(text, Loader=_Loader)
        data = yaml.load(text, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        raise ConfigError(f"invalid YAML: {exc.problem or exc}", path=name, line=line) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"invalid YAML: {exc}", path=name) from None
    except (ValueError, TypeError, OverflowError, RecursionError) as exc:
        # PyYAML's constructors raise these for values such as 2001-13-45 or a 5000-digit integer.
        raise ConfigError(f"invalid YAML value: {str(exc)[:200]}", path=name) from None
    lines: LineIndex = {}
    if node is not None:
        _index_lines(node, (), lines, set())
    return data, lines


def _index_lines(node: Any, path: tuple[str, ...], out: LineIndex, seen: set[int]) -> None:
    """Records the 1-based line of every mapping key, so errors can point at it.

    A node shared through a YAML alias is walked once (`seen`): aliases can nest exponentially or
    refer to themselves.
    """
    import yaml

    out.setdefault(path, node.start_mark.line + 1)
    if id(node) in seen:
        return
    seen.add(id(node))
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            sub = path + (str(key.value),)
            out[sub] = key.start_mark.line + 1
            _index_lines(value, sub, out, seen)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _index_lines(item, path + (str(i),), out, seen)
