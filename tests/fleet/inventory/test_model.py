"""model.py: frozen hosts, host lookup, and which host a localhost name stands for."""

from __future__ import annotations

import pytest

from imageserving_fleet.errors import InventoryError
from imageserving_fleet.fleet.inventory import Host, Inventory, default_inventory


def test_unknown_host_lookup_is_an_inventory_error() -> None:
    with pytest.raises(InventoryError, match="no host named 'ghost'"):
        default_inventory().host("ghost")


def test_hosts_are_frozen() -> None:
    host = default_inventory().hosts[0]
    with pytest.raises(TypeError):
        host.vars["ansible_connection"] = "ssh"  # type: ignore[index]
    assert hash(host) == hash(Host("localhost", {}, ("all", "ungrouped")))


HOSTS = (Host("web1", {}, ("all", "ungrouped")), Host("127.0.0.1", {}, ("all", "ungrouped")),
         Host("::1", {}, ("all", "ungrouped")))


@pytest.mark.parametrize(("hosts", "name", "expected", "implicit"), [
    (HOSTS, "127.0.0.1", "127.0.0.1", False),  # the host of that name
    (HOSTS, "::1", "::1", False),
    (HOSTS, "localhost", "127.0.0.1", False),  # else the first localhost-like host, as Ansible's data.py
    (HOSTS[:1], "localhost", "localhost", True),  # else the implicit one
    (HOSTS[:1], "::1", "::1", True),
    (HOSTS, "web1", None, False),  # not a localhost name
    (HOSTS, "LOCALHOST", None, False),
])
def test_which_host_a_localhost_name_stands_for(hosts: tuple[Host, ...], name: str, expected: str | None,
                                               implicit: bool) -> None:
    found = Inventory(hosts, {"all": tuple(h.name for h in hosts), "ungrouped": ()}).localhost(name)
    assert (found.name if found else None) == expected
    assert (found.implicit if found else False) is implicit
    if found and implicit:
        assert found.vars["ansible_connection"] == "local" and found.groups == ()
