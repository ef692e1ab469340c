"""The mutable inventory the loaders fill in, file after file, and its freezing into an Inventory.

Takes groups, children, hosts and variables as the INI and YAML loaders find them (each call with
the file and line, for errors); `build` returns the frozen model with every host's variables merged
in the precedence Ansible documents, lowest first:

    1. `vars` of group `all` in the inventory files
    2. `vars` of the host's other groups, sorted by (depth, ansible_group_priority, name),
       so a child group (deeper) overrides its parents and same-depth groups merge alphabetically
    3. group_vars/all files             4. group_vars/<group> files, same order
    5. the host's own variables in the inventory files (`host:port` sets ansible_port)
    6. host_vars/<host> files
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Protocol

from ...errors import InventoryError
from .addresses import expand_host_pattern
from .model import LOCALHOST_NAMES, Host, Inventory, implicit_localhost

__all__ = ["Builder", "VarsSource", "Where"]

Where = tuple[str, int | None]  # (file, line) for error messages


class VarsSource(Protocol):
    """group_vars/ and host_vars/ of one inventory source (vars.VarsDir)."""

    def group_vars(self, name: str) -> Mapping[str, Any]: ...

    def host_vars(self, name: str) -> Mapping[str, Any]: ...


@dataclass
class _Group:
    name: str
    vars: dict[str, Any] = field(default_factory=dict)
    where: dict[str, str] = field(default_factory=dict)  # variable -> "file:line" that set it
    parents: list[str] = field(default_factory=list)
    children: list[str] = field(default_factory=list)
    priority: int = 1  # Ansible's default ansible_group_priority
    hosts: dict[str, None] = field(default_factory=dict)  # its own hosts in the order added, an ordered set


@dataclass
class _HostDef:
    name: str
    vars: dict[str, Any] = field(default_factory=dict)
    where: dict[str, str] = field(default_factory=dict)  # variable -> "file:line" that set it
    groups: dict[str, None] = field(default_factory=dict)  # direct groups, an ordered set


class Builder:
    """The mutable inventory the parsers fill in, file after file; `build` freezes it."""

    def __init__(self) -> None:
        self.groups: dict[str, _Group] = {"all": _Group("all"), "ungrouped": _Group("ungrouped")}
        self.hosts: dict[str, _HostDef] = {}
        self.add_child("all", "ungrouped", ("<builtin>", None))

    def add_group(self, name: str, where: Where) -> _Group:
        if not name:
            raise InventoryError("empty group name", path=where[0], line=where[1])
        group = self.groups.get(name)
        if group is None:
            group = self.groups[name] = _Group(name)
        return group

    def add_child(self, parent: str, child: str, where: Where) -> None:
        if child == "all":
            raise InventoryError(f"group 'all' cannot be a child of {parent!r}", path=where[0], line=where[1])
        if child in self.groups[parent].children:
            return
        if child == parent or self._reaches(child, parent):
            raise InventoryError(f"making {child!r} a child of {parent!r} creates a cycle of children",
                                 path=where[0], line=where[1])
        self.groups[parent].children.append(child)
        self.groups[child].parents.append(parent)

    def _reaches(self, start: str, target: str) -> bool:
        """Whether `target` is a descendant of `start`."""
        todo, seen = [start], set()
        while todo:
            for child in self.groups[todo.pop()].children:
                if child == target:
                    return True
                if child not in seen:
                    seen.add(child)
                    todo.append(child)
        return False

    def set_group_var(self, group: str, key: Any, value: Any, where: Where) -> None:
        if key == "ansible_group_priority":
            try:
                self.groups[group].priority = int(value)
            except (TypeError, ValueError):
                raise InventoryError(f"ansible_group_priority of group {group!r} must be an integer, "
                                     f"got {value!r}", path=where[0], line=where[1]) from None
            return  # a setting of the group, not a variable of its hosts (Ansible's group.py)
        self.groups[group].vars[key] = value
        self.groups[group].where[key] = _where(where)

    def add_hosts(self, pattern: str, group: str, variables: Mapping[Any, Any], where: Where) -> None:
        try:
            names, port = expand_host_pattern(pattern)
        except InventoryError as exc:
            raise InventoryError(str(exc), path=where[0], line=where[1]) from None
        for name in names:
            host = self.hosts.get(name)
            if host is None:
                host = self.hosts[name] = _HostDef(name)
                if port is not None:  # only where the host first appears: Ansible's data.py ignores it later
                    host.vars["ansible_port"] = port
                    host.where["ansible_port"] = _where(where)
            host.groups[group] = None
            self.groups[group].hosts[name] = None
            if name in self.groups:
                # Ansible's quirk, kept so both merge alike: its set_variable(name, ...) looks for a group
                # of that name first, so a host's own variables go to the group it shares its name with.
                for key, value in variables.items():
                    self.set_group_var(name, key, value, where)
            else:
                host.vars.update(variables)
                host.where.update(dict.fromkeys(variables, _where(where)))

    def build(self, var_dirs: Sequence[VarsSource]) -> Inventory:
        """Link orphans to `all`, fill `ungrouped`, then merge every host's variables in Ansible's order
        (inventory/data.py `reconcile_inventory`)."""
        for group in list(self.groups.values()):
            if group.name != "all" and not group.parents:
                self.add_child("all", group.name, ("<builtin>", None))
        ungrouped = self.groups["ungrouped"].hosts
        for host in self.hosts.values():
            if any(g not in ("all", "ungrouped") for g in host.groups):
                host.groups.pop("ungrouped", None)
                ungrouped.pop(host.name, None)
            elif "ungrouped" not in host.groups and host.name in self.groups:
                # Ansible's quirk, kept so both select alike: its reconcile calls add_child('ungrouped',
                # name), which takes the group of that name first, so the group joins `ungrouped`, not the host.
                self.add_child("ungrouped", host.name, ("<builtin>", None))
            else:
                host.groups["ungrouped"] = None
                ungrouped[host.name] = None

        depth: dict[str, int] = {"all": 0}
        ancestors: dict[str, frozenset[str]] = {"all": frozenset(("all",))}

        def depth_of(name: str) -> int:
            if name not in depth:
                depth[name] = 1 + max(depth_of(p) for p in self.groups[name].parents)
            return depth[name]

        def ancestors_of(name: str) -> frozenset[str]:
            if name not in ancestors:
                found = {name}
                for parent in self.groups[name].parents:
                    found |= ancestors_of(parent)
                ancestors[name] = frozenset(found)
            return ancestors[name]

        def precedence(name: str) -> tuple[int, int, str]:
            return depth_of(name), self.groups[name].priority, name

        group_layer: dict[tuple[str, ...], dict[str, Any]] = {}  # hosts sharing groups share the merge
        origin_layer: dict[tuple[str, ...], dict[str, str]] = {}
        hosts = []
        for hdef in self.hosts.values():
            names: set[str] = {"all"}
            for direct in hdef.groups:
                names |= ancestors_of(direct)
            ordered = tuple(sorted(names, key=precedence))
            if ordered not in group_layer:
                origin_layer[ordered] = {}
                group_layer[ordered] = self._group_vars(ordered, var_dirs, origin_layer[ordered])
            merged = dict(group_layer[ordered])
            merged.update(hdef.vars)
            origins = dict(origin_layer[ordered])
            origins.update((key, f"host {hdef.name}, {where}") for key, where in hdef.where.items())
            for var_dir in var_dirs:
                found = var_dir.host_vars(hdef.name)
                merged.update(found)
                origins.update(dict.fromkeys(found, f"{_base(var_dir)}host_vars/{hdef.name}"))
            hosts.append(Host(hdef.name, MappingProxyType(merged), ordered, origins=MappingProxyType(origins)))
        groups = MappingProxyType({name: self._members(name) for name in self.groups})
        all_vars = group_layer.get(("all",)) or self._group_vars(("all",), var_dirs)
        implicit = {name: implicit_localhost(name, all_vars, _host_files(var_dirs, name))
                    for name in LOCALHOST_NAMES}
        return Inventory(tuple(hosts), groups, MappingProxyType(implicit))

    def _members(self, name: str) -> tuple[str, ...]:
        """Takes a group, returns its hosts and its descendants' in Ansible's order (group.py `_get_hosts`).

        The group's own hosts in the order they were added, then each child's, level by level.
        (Below the children Ansible's order depends on set iteration; parents' order decides here.)
        """
        walk, seen = [name], {name}
        for group in walk:  # grows while it is walked: breadth first
            for child in self.groups[group].children:
                if child not in seen:
                    seen.add(child)
                    walk.append(child)
        found: dict[str, None] = {}
        for group in walk:
            found.update(dict.fromkeys(self.groups[group].hosts))
        return tuple(found)

    def _group_vars(self, ordered: tuple[str, ...], var_dirs: Sequence[VarsSource],
                    origins: dict[str, str] | None = None) -> dict[str, Any]:
        """Takes a host's groups in precedence order ("all" first), returns their merged variables
        (and fills `origins`: variable -> the group, file and line that set it)."""
        merged: dict[str, Any] = {}
        origins = {} if origins is None else origins
        for name in ordered:
            group = self.groups[name]
            merged.update(group.vars)
            origins.update((key, f"group {name}, {group.where.get(key, '?')}") for key in group.vars)
        for var_dir in var_dirs:
            found = var_dir.group_vars("all")
            merged.update(found)
            origins.update(dict.fromkeys(found, f"{_base(var_dir)}group_vars/all"))
        for var_dir in var_dirs:  # Ansible's loop: per source, then per group
            for name in ordered[1:]:
                found = var_dir.group_vars(name)
                merged.update(found)
                origins.update(dict.fromkeys(found, f"{_base(var_dir)}group_vars/{name}"))
        return merged


def _where(where: Where) -> str:
    return where[0] + (f":{where[1]}" if where[1] else "")


def _base(var_dir: VarsSource) -> str:
    base = getattr(var_dir, "base", None)
    return f"{base}/" if base is not None else ""


def _host_files(var_dirs: Sequence[VarsSource], name: str) -> dict[str, Any]:
    """Takes the sources' vars directories and a host name, returns its host_vars merged in order."""
    merged: dict[str, Any] = {}
    for var_dir in var_dirs:
        merged.update(var_dir.host_vars(name))
    return merged
