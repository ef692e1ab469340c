"""settings.resolve: one set of rules for hosts and ProxyJump hops (pure, no network)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from imageserving_fleet.errors import SshConfigError
from imageserving_fleet.fleet.ssh import Connector, Destination
from imageserving_fleet.fleet.ssh.settings import parse_jump, resolve, resolve_hop
from imageserving_fleet.fleet.target import FleetOptions, make_target

NO_OPTIONS = FleetOptions()


def lookup_from(table: dict[str, dict[str, Any]]):  # type: ignore[no-untyped-def]
    """An ssh_config lookup answering from a table: host name -> options (keys lower-cased)."""
    def lookup(config_path: str | None, hostname: str) -> dict[str, Any]:
        return dict(table.get(hostname, {}), **({"-F": config_path} if config_path else {}))
    return lookup


def settle(dest: Destination, table: dict[str, dict[str, Any]], timeout: float = 10.0):  # type: ignore[no-untyped-def]
    return resolve(dest, lookup_from(table), connect_timeout=timeout, local_user="me")


@pytest.mark.parametrize(("dest", "config", "expected"), [
    # Defaults: the local user, port 22, no keys (agent + defaults), OpenSSH's known_hosts files.
    (Destination("w", "web"), {}, {"hostname": "web", "port": 22, "user": "me", "identity_files": (),
                                   "connect_timeout": 10.0, "proxy_jump": None}),
    # ssh_config fills what the inventory leaves open...
    (Destination("w", "web", port_explicit=False), {"web": {"hostname": "10.0.0.1", "port": "2200", "user": "cfg",
                                                            "identityfile": ["~/k"]}},
     {"hostname": "10.0.0.1", "port": 2200, "user": "cfg", "identity_files": ("~/k",)}),
    # ...but an explicit port, user and key win; the config's key stays a fallback.
    (Destination("w", "web", port=22, user="inv", key_file="/k/inv"),
     {"web": {"port": "2200", "user": "cfg", "identityfile": ["~/k"]}},
     {"port": 22, "user": "inv", "identity_files": ("/k/inv", "~/k")}),
    # HostName %h; ConnectTimeout: the tighter of the run's and the config's.
    (Destination("w", "web"), {"web": {"hostname": "%h.example.com", "connecttimeout": "3"}},
     {"hostname": "web.example.com", "connect_timeout": 3.0}),
    (Destination("w", "web"), {"web": {"connecttimeout": "30"}}, {"connect_timeout": 10.0}),
    (Destination("w", "web"), {"web": {"connecttimeout": "bogus"}}, {"connect_timeout": 10.0}),
    # The command line's ProxyJump beats the file's ProxyCommand; "none" turns both off.
    (Destination("w", "web", options=(("proxyjump", ("j1",)),)), {"web": {"proxycommand": "nc %h %p"}},
     {"proxy_jump": "j1", "proxy_command": None}),
    (Destination("w", "web", options=(("proxyjump", ("none",)),)), {"web": {"proxyjump": "j2"}},
     {"proxy_jump": None, "proxy_command": None}),
    (Destination("w", "web", port=2022, user="u"), {"web": {"proxycommand": "ssh gw -W %h:%p -l %r %n%%"}},
     {"proxy_command": "ssh gw -W web:2022 -l u web%"}),
    # known_hosts: the config's files, %u expanded; HostKeyAlias names the host in them.
    (Destination("w", "web"), {"web": {"userknownhostsfile": "/kh/%u /kh2", "hostkeyalias": "alias",
                                       "hashknownhosts": "yes"}},
     {"known_hosts_files": ("/kh/me", "/kh2"), "host_key_alias": "alias", "hash_known_hosts": True,
      "host_key_name": "alias"}),
    (Destination("w", "web", port=2222), {}, {"host_key_name": "[web]:2222"}),
    # -F: the host's own file is the one read (and remembered for its jump hosts).
    (Destination("w", "web", options=(("-F", ("/etc/other",)),)), {}, {"config_path": "/etc/other"}),
])
def test_resolve(dest: Destination, config: dict[str, dict[str, Any]], expected: dict[str, Any]) -> None:
    settings = settle(dest, config)
    assert {key: getattr(settings, key) for key in expected} == expected


def test_a_config_port_that_is_not_a_number_is_a_config_error_naming_the_host() -> None:
    with pytest.raises(SshConfigError, match="host w: ssh_config Port"):
        settle(Destination("w", "web", port_explicit=False), {"web": {"port": "ssh"}})


@pytest.mark.parametrize(("spec", "expected"), [
    ("bastion", (None, "bastion", None)),
    ("me@bastion:2222", ("me", "bastion", 2222)),
    ("ssh://me@bastion:22", ("me", "bastion", 22)),
    ("[::1]:2200", (None, "::1", 2200)),
    ("fe80::1", (None, "fe80::1", None)),
])
def test_parse_jump(spec: str, expected: tuple[Any, ...]) -> None:
    assert parse_jump(spec) == expected


@pytest.mark.parametrize("spec", ["", "me@", "host:0", "host:70000"])
def test_parse_jump_refuses(spec: str) -> None:
    with pytest.raises(ValueError):
        parse_jump(spec)


def test_a_jump_hop_is_resolved_by_the_same_rules_as_a_host() -> None:
    """Regression: hops had rules of their own and ignored the bastion's ConnectTimeout."""
    table = {"bastion": {"hostname": "10.9.9.9", "port": "2200", "user": "jumper", "connecttimeout": "2",
                         "identityfile": ["~/.ssh/bastion"], "proxyjump": "elsewhere"}}
    behind = settle(Destination("w", "web", key_file="/k/web"), table)
    hop = resolve_hop(behind, "bastion", lookup_from(table), connect_timeout=10.0, local_user="me",
                      private_key="/k/cli")
    assert (hop.hostname, hop.port, hop.user, hop.connect_timeout) == ("10.9.9.9", 2200, "jumper", 2.0)
    # Its own key first, then the run's and the host's; the chain is the host's, not the hop's.
    assert hop.identity_files == ("~/.ssh/bastion", "/k/cli", "/k/web")
    assert (hop.proxy_jump, hop.proxy_command, hop.name) == (None, None, "w")
    explicit = resolve_hop(behind, "ops@bastion:22", lookup_from(table), connect_timeout=10.0, local_user="me",
                           private_key=None)
    assert (explicit.user, explicit.port) == ("ops", 22)


def test_hop_settings_read_the_ssh_config_file_and_its_connect_timeout(tmp_path: Path) -> None:
    config = tmp_path / "config"
    config.write_text("Host bastion\n    HostName 127.0.0.2\n    ConnectTimeout 1.5\n    User jumper\n"
                      "Host behind*\n    ProxyJump bastion\n")
    connector = Connector(FleetOptions(ssh_config=str(config)))
    try:
        behind = connector.settings(make_target("a", {"ansible_host": "behind1"}, NO_OPTIONS))
        hop = connector.hop_settings(behind, behind.proxy_jump or "")
    finally:
        connector.close()
    assert (hop.hostname, hop.user, hop.connect_timeout) == ("127.0.0.2", "jumper", 1.5)


def test_settings_inventory_beats_ssh_config_which_beats_defaults(tmp_path: Path) -> None:
    config = tmp_path / "config"
    config.write_text(
        "Host web1.example.com\n"
        "    HostName 10.1.1.1\n    Port 2200\n    User cfguser\n    IdentityFile ~/.ssh/web\n"
        "Host *\n    ConnectTimeout 3\n    UserKnownHostsFile ~/kh1 ~/kh2\n    HashKnownHosts yes\n")
    connector = Connector(FleetOptions(ssh_config=str(config)))
    plain = connector.settings(make_target("w", {"ansible_host": "web1.example.com"}, NO_OPTIONS))
    assert (plain.hostname, plain.port, plain.user) == ("10.1.1.1", 2200, "cfguser")
    assert plain.identity_files == (os.path.expanduser("~/.ssh/web"),)
    assert plain.connect_timeout == 3.0 and plain.hash_known_hosts
    assert plain.known_hosts_files == (os.path.expanduser("~/kh1"), os.path.expanduser("~/kh2"))
    assert plain.host_key_name == "[10.1.1.1]:2200"

    explicit = connector.settings(make_target("w", {
        "ansible_host": "web1.example.com", "ansible_port": 22, "ansible_user": "inv",
        "ansible_ssh_private_key_file": "/k/inv"}, NO_OPTIONS))
    assert (explicit.port, explicit.user) == (22, "inv")
    assert explicit.identity_files[0] == "/k/inv"  # tried first; the config's key stays a fallback
    assert explicit.host_key_name == "10.1.1.1"

    other = connector.settings(make_target("x", {"ansible_host": "other"}, NO_OPTIONS))
    assert (other.hostname, other.port) == ("other", 22)
    connector.close()


def test_settings_proxy_options_from_common_args_and_config(tmp_path: Path) -> None:
    config = tmp_path / "config"
    config.write_text("Host behind*\n    ProxyJump jumpcfg\n"
                      "Host viacmd\n    ProxyCommand ssh gw -W %h:%p -l %r\n")
    connector = Connector(FleetOptions(ssh_config=str(config)))
    jump = connector.settings(make_target("a", {"ansible_host": "behind1"}, NO_OPTIONS))
    assert (jump.proxy_jump, jump.proxy_command) == ("jumpcfg", None)
    args = connector.settings(make_target("a", {
        "ansible_host": "behind1", "ansible_ssh_common_args": "-J me@jumparg:2222"}, NO_OPTIONS))
    assert args.proxy_jump == "me@jumparg:2222"
    # %p and %r are the values actually used: the inventory's port, not the config's default.
    command = connector.settings(make_target("c", {
        "ansible_host": "viacmd", "ansible_port": 2022, "ansible_user": "u1"}, NO_OPTIONS))
    assert command.proxy_command == "ssh gw -W viacmd:2022 -l u1"
    none = connector.settings(make_target("a", {
        "ansible_host": "behind1", "ansible_ssh_common_args": "-o ProxyJump=none"}, NO_OPTIONS))
    assert none.proxy_jump is None
    connector.close()
