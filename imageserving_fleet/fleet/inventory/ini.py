"""Ansible's INI inventory (plugins/inventory/ini.py): `[group]`, `[group:vars]`, `[group:children]`.

Takes a file's text and a Builder and adds what the file defines. Hosts before any section are
ungrouped. A line is a section header only when it starts with `[` and ends with `]`, as in
Ansible, so a host entry that begins with a range (`[1:2].example.com`) is a host. Values are
Python literals when they are one, as Ansible's code (not its documentation) reads them.
"""

from __future__ import annotations

import ast
import re
import shlex
import warnings
from typing import Any

from ...errors import InventoryError
from .builder import Builder, Where

__all__ = ["ini_value", "parse_ini"]

_INI_SECTION = re.compile(r"^\[([^:\]\s]+)(?::(\w+))?\]\s*(?:[#;].*)?$")
_INI_GROUP_NAME = re.compile(r"^([^:\]\s]+)\s*(?:[#;].*)?$")


def parse_ini(text: str, source: str, builder: Builder) -> None:
    """Ansible's INI inventory: `[group]`, `[group:vars]`, `[group:children]`, hosts before any section
    are ungrouped; a `[g:vars]` or `[p:children]` naming a group never defined is an error, as in Ansible."""
    group, kind = "ungrouped", "hosts"
    pending_children: dict[str, list[tuple[str, int]]] = {}  # child -> [(parent, line)]
    pending_vars: dict[str, int] = {}  # group -> line of its [group:vars]
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        where = (source, lineno)
        section = _INI_SECTION.match(line)
        if section:
            group, kind = section.group(1), section.group(2) or "hosts"
            if kind not in ("hosts", "vars", "children"):
                raise InventoryError(f"section [{group}:{kind}] has an unknown type {kind!r}; "
                                     f"expected [{group}], [{group}:vars] or [{group}:children]",
                                     path=source, line=lineno)
            if kind == "vars":
                if group not in builder.groups and group not in pending_children:
                    pending_vars[group] = lineno
                builder.add_group(group, where)
            else:
                builder.add_group(group, where)
                pending_vars.pop(group, None)
                for parent, parent_line in pending_children.pop(group, []):
                    builder.add_child(parent, group, (source, parent_line))
            continue
        if line.startswith("[") and line.endswith("]"):  # else a host such as `[1:2].example.com`
            raise InventoryError(f"invalid section header {line!r} (no spaces allowed inside the brackets)",
                                 path=source, line=lineno)
        if kind == "hosts":
            _ini_host_line(line, group, where, builder)
        elif kind == "vars":
            key, equals, value = line.partition("=")
            if not equals or not key.strip():
                raise InventoryError(f"expected key=value in [{group}:vars], got {line!r}", path=source,
                                     line=lineno)
            builder.set_group_var(group, key.strip(), ini_value(value.strip()), where)
        else:
            child = _INI_GROUP_NAME.match(line)
            if not child:
                raise InventoryError(f"expected a group name in [{group}:children], got {line!r}",
                                     path=source, line=lineno)
            if child.group(1) in builder.groups:
                builder.add_child(group, child.group(1), where)
            else:
                pending_children.setdefault(child.group(1), []).append((group, lineno))
    problems = [(at, f"section [{name}:vars] is for group {name!r}, which is never defined")
                for name, at in pending_vars.items()]
    problems += [(at, f"[{parent}:children] lists group {name!r}, which is never defined")
                 for name, uses in pending_children.items() for parent, at in uses]
    if problems:
        at, message = min(problems)
        raise InventoryError(message, path=source, line=at)


def _ini_host_line(line: str, group: str, where: Where, builder: Builder) -> None:
    """`host[01:10].example.com:2222 key=value key2="a b"  # comment`, shell-quoted like Ansible's."""
    try:
        tokens = shlex.split(line, comments=True)
    except ValueError as exc:
        raise InventoryError(f"cannot parse host line: {exc}", path=where[0], line=where[1]) from None
    if not tokens:
        return
    if tokens[0] == "---":
        raise InventoryError("'---' is not a host; is this a YAML file with the wrong suffix?",
                             path=where[0], line=where[1])
    variables: dict[str, Any] = {}
    for token in tokens[1:]:
        key, equals, value = token.partition("=")
        if not equals or not key:
            raise InventoryError(f"expected key=value after host {tokens[0]!r}, got {token!r}",
                                 path=where[0], line=where[1])
        variables[key] = ini_value(value)
    builder.add_hosts(tokens[0], group, variables, where)


def ini_value(text: str) -> Any:
    """Takes an INI value, returns it as Ansible's INI plugin does: a Python literal when it is one
    (`2222`, `True`, `[1, 2]`, `'quoted'`), else the text itself.

    Ansible documents `[group:vars]` values as strings but its code literal-evaluates them exactly
    like inline host variables; we follow the code, so an inventory behaves the same in both tools.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            value = ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return text
    return _plain(value, text)


def _plain(value: Any, text: str) -> Any:
    """Keeps what YAML could also have given (str, bool, int, float, None, list, dict); bytes become
    text, tuples and sets lists; anything else (complex, Ellipsis) stays the original text."""
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    if isinstance(value, bytes):
        return value.decode("utf-8", "surrogateescape")
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_plain(v, str(v)) for v in value]
    if isinstance(value, dict):
        return {_plain_key(k): _plain(v, str(v)) for k, v in value.items()}
    return text


def _plain_key(key: Any) -> Any:
    plain = _plain(key, str(key))
    return str(key) if isinstance(plain, (list, dict)) else plain  # a tuple key would become unhashable
