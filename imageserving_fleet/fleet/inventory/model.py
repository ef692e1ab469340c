"""The inventory as data: frozen hosts with merged variables, the groups' members, implicit localhost.

Like Ansible's inventory/data.py, this is the one shape every loader produces and the selector
reads; it holds no parser and reads no file.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from ...errors import InventoryError

__all__ = ["LOCALHOST_NAMES", "Host", "Inventory"]

# The names Ansible treats as this machine (its constants.LOCALHOST): a pattern naming one of them
# selects the implicit localhost when nothing in the inventory matches it.
LOCALHOST_NAMES = ("127.0.0.1", "localhost", "::1")


@dataclass(frozen=True)
class Host:
    """One inventory host: its alias, its fully merged variables and every group it belongs to."""

    name: str  # inventory alias
    vars: Mapping[str, Any] = field(hash=False)  # fully merged variables (Ansible precedence)
    # every group it belongs to, ancestors and "all" included, in precedence order ("all" first);
    # empty for the implicit localhost, which is in no group, not even "all"
    groups: tuple[str, ...] = ()
    implicit: bool = False  # Ansible's implicit localhost: not in the inventory, only named explicitly
    # variable -> where its value came from ("group web, hosts.yml:4", "/p/group_vars/all"), for `hosts`
    origins: Mapping[str, str] = field(default_factory=dict, hash=False, compare=False, repr=False)


@dataclass(frozen=True)
class Inventory:
    """Hosts in inventory order (first appearance) and each group's hosts, children included, in
    Ansible's order (the group's own in the order added, then its children's: what subscripts count).

    `implicit` holds, for each of LOCALHOST_NAMES, the host Ansible would make up for it (local
    connection, the controller's Python, the `all` variables); `localhost()` decides when it is used.
    """

    hosts: tuple[Host, ...]
    groups: Mapping[str, tuple[str, ...]] = field(hash=False)  # "all" and "ungrouped" always present;
    # in the order the groups were defined (glob patterns walk them in that order)
    implicit: Mapping[str, Host] = field(default_factory=dict, hash=False, compare=False, repr=False)
    _by_name: Mapping[str, Host] = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_name", MappingProxyType({h.name: h for h in self.hosts}))

    def host(self, name: str) -> Host:
        """The host with this inventory name; InventoryError if there is none."""
        try:
            return self._by_name[name]
        except KeyError:
            raise InventoryError(f"no host named {name!r} in the inventory") from None

    def has_host(self, name: str) -> bool:
        """Whether a host has exactly this inventory name."""
        return name in self._by_name

    def localhost(self, name: str) -> Host | None:
        """Takes one of LOCALHOST_NAMES, returns the host Ansible's `get_host(name)` gives for it.

        The host of that name if the inventory has one; else the inventory's first localhost-like
        host (`-l localhost` with only `127.0.0.1` defined selects that one, as in Ansible); else the
        implicit localhost. None for any other name.
        """
        if name not in LOCALHOST_NAMES:
            return None
        if name in self._by_name:
            return self._by_name[name]
        for host in self.hosts:
            if host.name in LOCALHOST_NAMES:
                return host
        return self.implicit.get(name) or implicit_localhost(name, {})


def implicit_localhost(name: str, all_vars: Mapping[str, Any], host_vars: Mapping[str, Any] | None = None,
                       python: str | None = None) -> Host:
    """Takes a localhost name, the `all` group's variables and the name's host_vars; returns the
    host Ansible creates for it (inventory/data.py `_create_implicit_localhost`).

    Its own variables (a local connection, the controller's Python) beat the group's; host_vars
    files beat both, as for any host.
    """
    if python is None:
        import sys

        python = sys.executable or "/usr/bin/python"  # Ansible's fallback when sys.executable is unset
    merged = dict(all_vars)
    merged.update({"ansible_connection": "local", "ansible_python_interpreter": python})
    merged.update(host_vars or {})
    return Host(name, MappingProxyType(merged), (), implicit=True)
