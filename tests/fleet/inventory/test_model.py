"""model.py: frozen hosts, host lookup, and which host a localhost name stands for."""

from __future__ import annotations

import pytest

from imageserving_fleet.errors import InventoryError
from imageserving_fleet.fleet.inventory import Host, default_inventory


def test_unknown_host_lookup_is_an_inventory_error() -> None:
    with pytest.raises(InventoryError, match="no host named 'ghost'"):
        default_inventory().host("ghost")


def test_hosts_are_frozen() -> None:
    host = default_inventory().hosts[0]
    with pytest.raises(TypeError):
        host.vars["ansible_connection"] = "ssh"  # type: ignore[index]
    assert hash(host) == hash(Host("localhost", {}, ("all", "ungrouped")))
