"""Refuse YAML nested too deep before it is composed: shared by the agent config and inventories.

Composing and walking YAML nodes recurses once per level: a few thousand `[` raise RecursionError,
and some 50 000 crash LibYAML's composer with a segmentation fault. The event stream read here is
produced without recursion, so any depth is safe to count.
"""

from __future__ import annotations

from typing import Any

MAX_DEPTH = 100  # nesting of YAML lists and mappings; a configuration or an inventory needs a handful


def too_deep(text: str, loader: Any, limit: int = MAX_DEPTH) -> int | None:
    """Takes YAML text and a PyYAML loader class; returns the 1-based line where nesting passes
    `limit`, or None. Syntax errors raise yaml.YAMLError as yaml.load would."""
    import yaml

    depth = 0
    for event in yaml.parse(text, Loader=loader):
        if isinstance(event, yaml.SequenceStartEvent | yaml.MappingStartEvent):
            depth += 1
            if depth > limit:
                mark = event.start_mark
                return mark.line + 1 if mark else 1
        elif isinstance(event, yaml.SequenceEndEvent | yaml.MappingEndEvent):
            depth -= 1
    return None
