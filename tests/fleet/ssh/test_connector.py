"""Connector against real failures: wrong or missing key, closed and silent ports, DNS, a server
that closes before its banner, close() during connects, keys parsed once; bad options.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from imageserving_fleet.errors import UsageError
from imageserving_fleet.fleet.ssh import Connector
from imageserving_fleet.fleet.target import FleetOptions, make_target
from tests.sshd import SshServer, closed_port, keygen, silent_listener

from .helpers import FOREVER, SLOW, patient, soon, target_for, unreachable


def test_wrong_user_key_is_auth(sshd: SshServer, ssh_config_for: Callable[..., Path], tmp_path: Path) -> None:
    stranger = keygen(tmp_path / "stranger")
    options = FleetOptions(ssh_config=str(ssh_config_for(identity=stranger)))
    error, _ = unreachable(lambda: Connector(options).connect(target_for(sshd, options), soon()))
    assert error.reason == "auth" and "permission denied" in error.detail and str(stranger) in error.detail


def test_missing_key_file_is_auth_naming_the_file(sshd: SshServer, ssh_config_for: Callable[..., Path],
                                                  tmp_path: Path) -> None:
    options = FleetOptions(ssh_config=str(ssh_config_for(identity=tmp_path / "gone")))
    error, _ = unreachable(lambda: Connector(options).connect(target_for(sshd, options), soon()))
    assert error.reason == "auth" and "gone: no such file" in error.detail


def test_closed_port_is_refused(fleet_options: FleetOptions) -> None:
    options = patient(fleet_options)
    connector = Connector(options)
    with closed_port() as port:
        target = make_target("h1", {"ansible_host": "127.0.0.1", "ansible_port": port}, options)
        error, took = unreachable(lambda: connector.connect(target, soon(FOREVER)))
    assert error.reason == "refused" and took < SLOW  # at once, not retried until the deadline


def test_silent_port_times_out_within_the_deadline(fleet_options: FleetOptions) -> None:
    options = patient(fleet_options)  # only the deadline can stop the wait for a banner
    connector = Connector(options)
    with silent_listener() as port:
        target = make_target("h1", {"ansible_host": "127.0.0.1", "ansible_port": port}, options)
        error, took = unreachable(lambda: connector.connect(target, soon(1.0)))
    assert error.reason == "timeout" and 0.9 < took < SLOW


def test_unknown_name_is_dns(fleet_options: FleetOptions, connector: Connector) -> None:
    target = make_target("h1", {"ansible_host": "no-such-host.invalid"}, fleet_options)
    error, took = unreachable(lambda: connector.connect(target, soon(5.0)))
    assert error.reason == "dns" and took < SLOW


def test_server_closing_before_its_banner_is_connection_lost(fleet_options: FleetOptions,
                                                             connector: Connector) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        accepted = []

        def slam() -> None:  # what sshd does when MaxStartups drops a connection
            for _ in range(3):
                conn, _ = listener.accept()
                accepted.append(1)
                conn.close()

        threading.Thread(target=slam, daemon=True).start()
        target = make_target("h1", {"ansible_host": "127.0.0.1",
                                    "ansible_port": listener.getsockname()[1]}, fleet_options)
        error, _ = unreachable(lambda: connector.connect(target, soon(5)))
    assert error.reason == "connection lost" and "banner" in error.detail
    assert len(accepted) == 3  # retried twice before giving up


def test_close_aborts_connections_in_progress(fleet_options: FleetOptions) -> None:
    options = patient(fleet_options)  # neither the connect timeout nor the deadline can end it
    connector = Connector(options)
    with silent_listener() as port:
        target = make_target("h1", {"ansible_host": "127.0.0.1", "ansible_port": port}, options)
        threading.Timer(0.3, connector.close).start()
        error, took = unreachable(lambda: connector.connect(target, soon(FOREVER)))
    assert took < SLOW and error.reason in ("connection lost", "timeout")


def test_each_key_file_is_parsed_once_per_run(sshd: SshServer, fleet_options: FleetOptions,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    import paramiko
    calls: list[str] = []
    original = paramiko.PKey.from_path

    def counting(path: Any, password: Any = None) -> Any:
        calls.append(str(path))
        return original(path, password)

    monkeypatch.setattr(paramiko.PKey, "from_path", staticmethod(counting))
    connector = Connector(fleet_options)
    for name in ("a", "b", "c"):
        connector.connect(target_for(sshd, fleet_options, name), soon()).close()
    assert calls == [str(sshd.user_key_path)]


def test_missing_ssh_config_or_key_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="ssh-config"):
        Connector(FleetOptions(ssh_config=str(tmp_path / "nope")))
    with pytest.raises(UsageError, match="private-key"):
        Connector(FleetOptions(private_key=str(tmp_path / "nope")))


def test_settings_are_worked_out_once_and_again_after_refresh_when_ssh_config_changed(tmp_path: Path) -> None:
    """The holder's Connector lives across commands: a host's settings follow the file as it is now."""
    config = tmp_path / "ssh_config"
    config.write_text("Host web1\n  HostName 10.0.0.1\n  User alice\n")
    options = FleetOptions(ssh_config=str(config))
    connector = Connector(options)
    target = make_target("web1", {}, options)
    first = connector.settings(target)
    assert (first.hostname, first.user, first.port) == ("10.0.0.1", "alice", 22)
    assert connector.settings(target) is first  # once per destination
    connector.refresh()
    assert connector.settings(target) is first  # the file reads the same: the same settings
    config.write_text("Host web1\n  HostName 10.0.0.2\n  User bob\n  Port 2222\n")
    assert connector.settings(target) is first  # until the next refresh (a command's start)
    connector.refresh()
    again = connector.settings(target)
    assert (again.hostname, again.user, again.port) == ("10.0.0.2", "bob", 2222)
