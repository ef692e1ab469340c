"""Transport tests: make_target tables, settings precedence, and real SSH to a loopback sshd.

Every failure a fleet run must survive is provoked for real here (closed port, silent port,
unknown and changed host keys, wrong key, DNS, hung command, dropped connection) and checked for
its reason code and for arriving within its deadline.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import shlex
import shutil
import signal
import socket
import stat
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from imageserving_fleet.errors import HostError, UnreachableError, UsageError
from imageserving_fleet.fleet.target import FleetOptions, Target, make_target, ssh_options
from imageserving_fleet.fleet.transport import CommandResult, Connector, LocalSession, SshSession
from tests.sshd import SshServer, closed_port, keygen, silent_listener

# --------------------------------------------------------------------------- make_target (pure)

NO_OPTIONS = FleetOptions()


@pytest.mark.parametrize(("vars", "options", "expected"), [
    ({}, NO_OPTIONS, {"hostname": "web1", "port": 22, "port_explicit": False, "user": None,
                      "key_file": None, "connection": "ssh", "venv": "~/.imageserving/venv",
                      "become": False, "common_args": ()}),
    ({"ansible_host": "10.0.0.5", "ansible_port": "2222", "ansible_user": "deploy",
      "ansible_ssh_private_key_file": "~/.ssh/fleet"}, NO_OPTIONS,
     {"hostname": "10.0.0.5", "port": 2222, "port_explicit": True, "user": "deploy",
      "key_file": "~/.ssh/fleet"}),
    # The CLI's --user and --private-key win over the inventory.
    ({"ansible_user": "deploy", "ansible_ssh_private_key_file": "inv.key"},
     FleetOptions(user="ops", private_key="cli.key"), {"user": "ops", "key_file": "cli.key"}),
    ({"ansible_connection": "local"}, NO_OPTIONS, {"connection": "local"}),
    ({"ansible_connection": "paramiko"}, NO_OPTIONS, {"connection": "ssh"}),
    ({"ansible_connection": "smart"}, NO_OPTIONS, {"connection": "ssh"}),
    ({"ansible_connection": "ansible.builtin.ssh"}, NO_OPTIONS, {"connection": "ssh"}),
    # Options inside ansible_ssh_common_args count, below the ansible_* variables.
    ({"ansible_ssh_common_args": "-o Port=2200 -o User=bob"}, NO_OPTIONS,
     {"port": 2200, "port_explicit": True, "user": "bob"}),
    ({"ansible_ssh_common_args": "-p 2201 -l carol", "ansible_port": 2202, "ansible_user": "dan"},
     NO_OPTIONS, {"port": 2202, "user": "dan"}),
    ({"ansible_ssh_common_args": "-o ProxyJump=bastion -o 'ProxyCommand=none'"}, NO_OPTIONS,
     {"common_args": ("-o", "ProxyJump=bastion", "-o", "ProxyCommand=none")}),
    ({"ansible_become": "yes", "ansible_become_user": "svc"}, NO_OPTIONS,
     {"become": True, "become_user": "svc"}),
    ({"ansible_become": False}, FleetOptions(become=True), {"become": False}),
    ({}, FleetOptions(become=True), {"become": True}),
    ({"imageserving_command": "/opt/is/bin/imageserving", "imageserving_venv": "/opt/is",
      "imageserving_home": "/srv/is1", "imageserving_config": "/etc/is1.yaml"}, NO_OPTIONS,
     {"agent_command": "/opt/is/bin/imageserving", "venv": "/opt/is", "home": "/srv/is1",
      "config": "/etc/is1.yaml"}),
    ({"ansible_ssh_host": "old.example.com", "ansible_ssh_port": 2022}, NO_OPTIONS,
     {"hostname": "old.example.com", "port": 2022}),
])
def test_make_target_merges_inventory_and_cli(vars: dict[str, Any], options: FleetOptions,
                                              expected: dict[str, Any]) -> None:
    target = make_target("web1", vars, options)
    assert {key: getattr(target, key) for key in expected} == expected


@pytest.mark.parametrize(("vars", "variable"), [
    ({"ansible_port": "ssh"}, "ansible_port"),
    ({"ansible_port": 0}, "ansible_port"),
    ({"ansible_port": 70000}, "ansible_port"),
    ({"ansible_port": True}, "ansible_port"),
    ({"ansible_connection": "docker"}, "ansible_connection"),
    ({"ansible_connection": "winrm"}, "ansible_connection"),
    ({"ansible_become": "maybe"}, "ansible_become"),
    ({"ansible_user": ["a", "b"]}, "ansible_user"),
    ({"ansible_host": "{{ inventory_hostname }}.example.com"}, "ansible_host"),
    ({"ansible_ssh_common_args": "-o 'ProxyJump=x"}, "ansible_ssh_common_args"),
    ({"ansible_ssh_common_args": "-o Port=abc"}, "ansible_ssh_common_args"),
    ({"ansible_ssh_common_args": "-o Compression"}, "ansible_ssh_common_args"),
    ({"ansible_ssh_common_args": "bastion"}, "ansible_ssh_common_args"),
    ({"ansible_ssh_common_args": "-p"}, "ansible_ssh_common_args"),
])
def test_make_target_refuses_bad_values_naming_host_and_variable(vars: dict[str, Any],
                                                                  variable: str) -> None:
    with pytest.raises(UsageError) as caught:
        make_target("web1", vars, NO_OPTIONS)
    assert "web1" in str(caught.value) and variable in str(caught.value)


@pytest.mark.parametrize(("args", "expected"), [
    ("-o ProxyJump=a", {"proxyjump": ["a"]}),
    ("-J a,b", {"proxyjump": ["a,b"]}),
    ("-oPort=1 -o Port=2", {"port": ["1", "2"]}),
    ("-o 'ProxyCommand ssh -W %h:%p b'", {"proxycommand": ["ssh -W %h:%p b"]}),
    ("-o 'ProxyCommand = ssh b'", {"proxycommand": ["ssh b"]}),
    ("-4Cvq -o StrictHostKeyChecking=no", {"stricthostkeychecking": ["no"]}),
    ("-vp2222 -i k1 -i k2", {"port": ["2222"], "identityfile": ["k1", "k2"]}),
    ("-F cfg -c aes128-ctr", {"-F": ["cfg"]}),
])
def test_ssh_options_reads_openssh_arguments(args: str, expected: dict[str, list[str]]) -> None:
    assert ssh_options(shlex.split(args)) == expected


def test_fleet_options_refuses_unknown_policy() -> None:
    with pytest.raises(UsageError, match="host-key-policy"):
        FleetOptions(host_key_policy="yolo")


# --------------------------------------------------------------------------- settings (no network)


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


def test_settings_follow_include(tmp_path: Path) -> None:
    (tmp_path / "conf.d").mkdir()
    (tmp_path / "conf.d" / "hosts.conf").write_text("Host inc\n    Port 2345\n")
    config = tmp_path / "config"
    config.write_text(f"Include {tmp_path}/conf.d/*.conf\nHost *\n    Port 22\n")
    connector = Connector(FleetOptions(ssh_config=str(config)))
    assert connector.settings(make_target("inc", {}, NO_OPTIONS)).port == 2345


def test_missing_ssh_config_or_key_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="ssh-config"):
        Connector(FleetOptions(ssh_config=str(tmp_path / "nope")))
    with pytest.raises(UsageError, match="private-key"):
        Connector(FleetOptions(private_key=str(tmp_path / "nope")))


# --------------------------------------------------------------------------- helpers


@pytest.fixture(autouse=True)
def _close_every_connector(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Closes every Connector a test made, so no SSH session outlives its test."""
    made: list[Connector] = []
    original = Connector.__init__

    def tracking(self: Connector, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        made.append(self)

    monkeypatch.setattr(Connector, "__init__", tracking)
    yield
    for connector in made:
        connector.close()


@pytest.fixture
def connector(fleet_options: FleetOptions) -> Connector:
    return Connector(fleet_options)


def target_for(server: SshServer, options: FleetOptions, name: str = "h1", **vars: Any) -> Target:
    return make_target(name, {"ansible_host": server.host, "ansible_port": server.port, **vars}, options)


def unreachable(call: Callable[[], object]) -> tuple[UnreachableError, float]:
    """Runs `call`, expecting UnreachableError; returns it and how long it took."""
    start = time.monotonic()
    with pytest.raises(UnreachableError) as caught:
        call()
    return caught.value, time.monotonic() - start


def soon(seconds: float = 10.0) -> float:
    return time.monotonic() + seconds


# Deadlines here are checked against bounds a machine ten times slower than this one still meets,
# yet far below what the failure would take if the deadline did not hold (a command that would
# run for minutes, a port that never answers). The real latencies are measured in bench/deadlines.py.
SLOW = 30.0     # generous bound on "promptly"
FOREVER = 120   # what the command or the silent port would take if nothing stopped it


def patient(options: FleetOptions) -> FleetOptions:
    """The options with a connect timeout so long that only the deadline under test can bite."""
    return dataclasses.replace(options, connect_timeout=float(FOREVER))


def wait_until(condition: Callable[[], bool], seconds: float = 60.0) -> bool:
    """Polls `condition` until it holds or `seconds` pass; returns whether it held."""
    end = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > end:
            return False
        time.sleep(0.02)
    return True


# --------------------------------------------------------------------------- ssh: commands


def test_run_returns_exit_code_stdout_and_stderr(sshd: SshServer, connector: Connector,
                                                 fleet_options: FleetOptions) -> None:
    session = connector.connect(target_for(sshd, fleet_options), soon())
    try:
        result = session.run("echo out; echo err >&2; exit 3", timeout=10)
        assert result == CommandResult(3, b"out\n", b"err\n")
    finally:
        session.close()


def test_stdin_is_delivered_even_beyond_the_ssh_window(sshd: SshServer, connector: Connector,
                                                       fleet_options: FleetOptions) -> None:
    payload = os.urandom(3 * 2**20)  # more than paramiko's 2 MiB channel window
    session = connector.connect(target_for(sshd, fleet_options), soon())
    result = session.run("sha256sum", stdin=payload, timeout=20)
    assert result.stdout.split()[0].decode() == hashlib.sha256(payload).hexdigest()
    # No stdin given: the command sees EOF at once rather than waiting for input.
    assert session.run("cat; echo done", timeout=5).stdout == b"done\n"


def test_one_session_serves_several_commands_over_one_connection(sshd: SshServer, connector: Connector,
                                                                 fleet_options: FleetOptions) -> None:
    session = connector.connect(target_for(sshd, fleet_options), soon())
    clients = {session.run("echo $SSH_CLIENT", timeout=5).stdout for _ in range(5)}
    assert len(clients) == 1  # same client port: the same TCP connection every time


def test_command_timeout_kills_only_that_command(sshd: SshServer, connector: Connector,
                                                 fleet_options: FleetOptions) -> None:
    session = connector.connect(target_for(sshd, fleet_options), soon())
    error, took = unreachable(lambda: session.run(f"sleep {FOREVER}", timeout=0.5))
    assert error.reason == "timeout" and 0.5 <= took < SLOW
    assert session.run("echo still here", timeout=5).stdout == b"still here\n"


def test_abort_from_another_thread_unblocks_a_running_command(sshd: SshServer, connector: Connector,
                                                              fleet_options: FleetOptions) -> None:
    session = connector.connect(target_for(sshd, fleet_options), soon())
    threading.Timer(0.3, session.abort).start()
    error, took = unreachable(lambda: session.run(f"sleep {FOREVER}", timeout=FOREVER))
    assert error.reason == "connection lost" and took < SLOW


def test_hung_host_times_out_and_closing_does_not_hang(sshd: SshServer, connector: Connector,
                                                      fleet_options: FleetOptions) -> None:
    session = connector.connect(target_for(sshd, fleet_options), soon())
    server_side = int(session.run("echo $PPID", timeout=5).stdout)  # sshd's process for this connection
    os.kill(server_side, signal.SIGSTOP)
    try:
        error, took = unreachable(lambda: session.run("true", timeout=1.0))
        assert error.reason == "timeout" and 1.0 <= took < SLOW  # the stopped sshd would never answer
        start = time.monotonic()
        session.close()
        assert time.monotonic() - start < SLOW
    finally:
        os.kill(server_side, signal.SIGKILL)


def test_output_beyond_the_cap_is_refused(sshd: SshServer, connector: Connector,
                                          fleet_options: FleetOptions) -> None:
    session = connector.connect(target_for(sshd, fleet_options), soon())
    error, _ = unreachable(lambda: session.run("head -c 300000 /dev/zero", timeout=10, max_output=100_000))
    assert error.reason == "output too large"


def test_connection_dropped_mid_command_is_connection_lost(sshd: SshServer, connector: Connector,
                                                           fleet_options: FleetOptions) -> None:
    session = connector.connect(target_for(sshd, fleet_options), soon())
    # Kill this connection's own sshd process (the parent of the command's shell).
    error, took = unreachable(lambda: session.run(f"kill -9 $PPID; sleep {FOREVER}", timeout=FOREVER))
    assert error.reason == "connection lost" and took < SLOW


def test_background_child_holding_stdout_does_not_hang_the_run(sshd: SshServer, connector: Connector,
                                                               fleet_options: FleetOptions) -> None:
    session = connector.connect(target_for(sshd, fleet_options), soon())
    start = time.monotonic()
    result = session.run(f"sleep {FOREVER} & echo started $!", timeout=FOREVER)
    took = time.monotonic() - start
    word, child = result.stdout.split()
    os.kill(int(child), signal.SIGKILL)  # the test's own leftover
    assert result.exit_code == 0 and word == b"started" and took < SLOW


def test_put_uploads_a_file_with_its_mode(sshd: SshServer, connector: Connector,
                                          fleet_options: FleetOptions, tmp_path: Path) -> None:
    source = tmp_path / "tool.sh"
    source.write_bytes(b"#!/bin/sh\necho hi\n" + os.urandom(100_000))
    source.chmod(0o750)
    session = connector.connect(target_for(sshd, fleet_options), soon())
    destination = tmp_path / "uploaded.sh"
    session.put(str(source), str(destination))
    assert destination.read_bytes() == source.read_bytes()
    assert stat.S_IMODE(destination.stat().st_mode) == 0o750
    with pytest.raises(HostError, match="upload failed"):
        session.put(str(source), str(tmp_path / "no" / "such" / "dir" / "x"))


# --------------------------------------------------------------------------- ssh: host keys


def test_unknown_host_key_is_refused_by_default(sshd: SshServer, ssh_config_for: Callable[..., Path],
                                                tmp_path: Path) -> None:
    config = ssh_config_for(known_hosts=tmp_path / "empty_known_hosts")
    options = FleetOptions(ssh_config=str(config))
    error, _ = unreachable(lambda: Connector(options).connect(target_for(sshd, options), soon()))
    assert error.reason == "unknown host key"
    assert "SHA256:" in error.detail and "accept-new" in error.detail
    assert not (tmp_path / "empty_known_hosts").exists()


def test_accept_new_records_the_key_once_and_it_is_known_next_time(
        sshd: SshServer, ssh_config_for: Callable[..., Path], tmp_path: Path) -> None:
    known_hosts = tmp_path / "ssh" / "known_hosts"  # its directory does not exist yet
    config = ssh_config_for(known_hosts=known_hosts)
    accept = FleetOptions(ssh_config=str(config), host_key_policy="accept-new")
    connector = Connector(accept)
    # Ten aliases of the same sshd at once: one line recorded, not ten.
    results: list[object] = []
    threads = [threading.Thread(target=lambda i=i: results.append(
        connector.connect(target_for(sshd, accept, f"alias{i}"), soon()).run("true", timeout=10)))
        for i in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    connector.close()
    assert results == [CommandResult(0, b"", b"")] * 10
    assert known_hosts.read_text() == sshd.known_hosts_line()
    strict = FleetOptions(ssh_config=str(config))
    session = Connector(strict).connect(target_for(sshd, strict), soon())
    assert session.run("true", timeout=5).exit_code == 0


@pytest.mark.parametrize("policy", ["reject", "accept-new", "warn"])
def test_changed_host_key_is_refused_whatever_the_policy(
        sshd: SshServer, ssh_config_for: Callable[..., Path], tmp_path: Path, policy: str) -> None:
    other = keygen(tmp_path / "other_host_key")
    known_hosts = sshd.write_known_hosts(tmp_path / "known_hosts",
                                         (tmp_path / "other_host_key.pub").read_text())
    before = known_hosts.read_text()
    options = FleetOptions(ssh_config=str(ssh_config_for(known_hosts=known_hosts)), host_key_policy=policy)
    error, _ = unreachable(lambda: Connector(options).connect(target_for(sshd, options), soon()))
    assert error.reason == "changed host key" and "ssh-keygen -R" in error.detail
    assert known_hosts.read_text() == before and other.exists()


def test_warn_policy_connects_and_warns_without_recording(
        sshd: SshServer, ssh_config_for: Callable[..., Path], tmp_path: Path) -> None:
    known_hosts = tmp_path / "known_hosts"
    options = FleetOptions(ssh_config=str(ssh_config_for(known_hosts=known_hosts)), host_key_policy="warn")
    warnings: list[str] = []
    connector = Connector(options, warn=warnings.append)
    for name in ("a", "b"):
        session = connector.connect(target_for(sshd, options, name), soon())
        assert session.run("true", timeout=5).exit_code == 0
    assert len(warnings) == 1 and "SHA256:" in warnings[0]  # one sshd, one warning
    assert not known_hosts.exists()


def test_hashed_and_wildcard_known_hosts_entries_match(
        sshd: SshServer, ssh_config_for: Callable[..., Path], tmp_path: Path) -> None:
    hashed = sshd.write_known_hosts(tmp_path / "hashed")
    subprocess.run(["ssh-keygen", "-q", "-H", "-f", str(hashed)], check=True, capture_output=True)
    assert hashed.read_text().startswith("|1|")
    wildcard = tmp_path / "wildcard"
    wildcard.write_text(f"[127.0.0.*]:{sshd.port},!bogus {sshd.host_pub}\n")
    for known_hosts in (hashed, wildcard):
        options = FleetOptions(ssh_config=str(ssh_config_for(known_hosts=known_hosts)))
        session = Connector(options).connect(target_for(sshd, options), soon())
        assert session.run("true", timeout=5).exit_code == 0


def test_revoked_host_key_is_refused(sshd: SshServer, ssh_config_for: Callable[..., Path],
                                     tmp_path: Path) -> None:
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(f"@revoked * {sshd.host_pub}\n" + sshd.known_hosts_line())
    options = FleetOptions(ssh_config=str(ssh_config_for(known_hosts=known_hosts)))
    error, _ = unreachable(lambda: Connector(options).connect(target_for(sshd, options), soon()))
    assert error.reason == "changed host key" and "revoked" in error.detail


# --------------------------------------------------------------------------- ssh: failures


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


# --------------------------------------------------------------------------- ssh: proxies


def test_proxy_jump_through_the_same_sshd(sshd: SshServer, fleet_options: FleetOptions,
                                          connector: Connector) -> None:
    jump = f"-J {sshd.host}:{sshd.port}"
    targets = [target_for(sshd, fleet_options, name, ansible_ssh_common_args=jump) for name in ("a", "b")]
    assert connector.settings(targets[0]).proxy_jump == f"{sshd.host}:{sshd.port}"
    sessions = [connector.connect(target, soon()) for target in targets]
    for session in sessions:
        result = session.run("echo $SSH_CLIENT", timeout=5)
        assert result.exit_code == 0 and result.stdout.startswith(b"127.0.0.1 ")
    assert len(connector._jumps) == 1  # one connection to the jump host, shared


def test_proxy_jump_to_a_closed_port_is_refused(sshd: SshServer, fleet_options: FleetOptions,
                                                connector: Connector) -> None:
    with closed_port() as port:
        target = make_target("h1", {"ansible_host": "127.0.0.1", "ansible_port": port,
                                    "ansible_ssh_common_args": f"-o ProxyJump={sshd.host}:{sshd.port}"},
                             fleet_options)
        error, _ = unreachable(lambda: connector.connect(target, soon()))
    assert error.reason == "refused"


def test_proxy_command(sshd: SshServer, fleet_options: FleetOptions, connector: Connector) -> None:
    command = f"ssh -F {sshd.ssh_config_path} -W %h:%p {sshd.host}"
    target = target_for(sshd, fleet_options,
                        ansible_ssh_common_args=f"-o {shlex.quote('ProxyCommand=' + command)}")
    session = connector.connect(target, soon())
    assert session.run("echo via proxy", timeout=5).stdout == b"via proxy\n"
    broken = target_for(sshd, fleet_options,
                        ansible_ssh_common_args="-o 'ProxyCommand=echo nope >&2; exit 1'")
    error, _ = unreachable(lambda: connector.connect(broken, soon()))
    assert error.reason == "connection lost" and "nope" in error.detail


# --------------------------------------------------------------------------- local


def test_local_session_runs_through_sh_in_home() -> None:
    session = Connector(FleetOptions()).connect(make_target("localhost", {"ansible_connection": "local"},
                                                            NO_OPTIONS), soon())
    assert isinstance(session, LocalSession)
    assert session.run("echo out; echo err >&2; exit 4", timeout=5) == CommandResult(4, b"out\n", b"err\n")
    assert session.run("pwd", timeout=5).stdout.decode().strip() == os.path.expanduser("~")
    payload = os.urandom(1_000_000)
    assert session.run("cat", stdin=payload, timeout=5).stdout == payload
    assert session.run("cat; echo done", timeout=5).stdout == b"done\n"
    assert session.run("kill -9 $$", timeout=5).exit_code == 137


def test_local_timeout_kills_the_whole_process_group(tmp_path: Path) -> None:
    session = LocalSession("localhost")
    pid_file = tmp_path / "child.pid"
    error, took = unreachable(lambda: session.run(f"sleep {FOREVER} & echo $! > {pid_file}; wait", timeout=0.5))
    assert error.reason == "timeout" and 0.5 <= took < SLOW
    child = int(pid_file.read_text())
    assert wait_until(lambda: not _alive(child)), f"the command's child {child} outlived the timeout"


def test_local_abort_output_cap_and_put(tmp_path: Path) -> None:
    session = LocalSession("localhost")
    threading.Timer(0.3, session.abort).start()
    error, took = unreachable(lambda: session.run(f"sleep {FOREVER}", timeout=FOREVER))
    assert error.reason == "connection lost" and took < SLOW
    session = LocalSession("localhost")
    error, _ = unreachable(lambda: session.run("head -c 300000 /dev/zero", timeout=5, max_output=100_000))
    assert error.reason == "output too large"
    source = tmp_path / "a"
    source.write_bytes(b"data")
    source.chmod(0o640)
    session.put(str(source), str(tmp_path / "b"))
    assert (tmp_path / "b").read_bytes() == b"data" and stat.S_IMODE((tmp_path / "b").stat().st_mode) == 0o640
    with pytest.raises(UsageError):
        session.sftp()


def test_ssh_session_type(sshd: SshServer, connector: Connector, fleet_options: FleetOptions) -> None:
    session = connector.connect(target_for(sshd, fleet_options), soon())
    assert isinstance(session, SshSession) and session.alive
    session.close()
    error, _ = unreachable(lambda: session.run("true", timeout=5))
    assert error.reason == "connection lost"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead for our purpose: its parent (the killed shell) is gone.
    with open(f"/proc/{pid}/stat") as handle:
        return handle.read().split()[2] != "Z"


def test_key_held_only_by_ssh_agent(sshd: SshServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No IdentityFile anywhere, and the key file deleted: only a real ssh-agent can log in."""
    if not shutil.which("ssh-agent") or not shutil.which("ssh-add"):
        pytest.skip("ssh-agent/ssh-add not installed (openssh-client)")
    key = keygen(tmp_path / "agent_key", "agent-only")
    sshd.authorize(key.with_name("agent_key.pub").read_text())
    sock = tmp_path / "agent.sock"
    agent = subprocess.Popen(["ssh-agent", "-D", "-a", str(sock)], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    try:
        assert wait_until(sock.exists), "ssh-agent never made its socket"
        subprocess.run(["ssh-add", str(key)], env={**os.environ, "SSH_AUTH_SOCK": str(sock)}, check=True,
                       capture_output=True, timeout=10)
        key.unlink()
        config = tmp_path / "ssh_config"
        config.write_text(f"Host *\n    Port {sshd.port}\n    User {sshd.user}\n"
                          f"    UserKnownHostsFile {sshd.known_hosts_path}\n    StrictHostKeyChecking yes\n")
        monkeypatch.setenv("SSH_AUTH_SOCK", str(sock))
        monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.ssh/id_* of the developer's to fall back on
        options = FleetOptions(ssh_config=str(config), connect_timeout=5.0)
        connector = Connector(options)
        try:
            session = connector.connect(make_target("h1", {"ansible_host": sshd.host}, options), soon())
            assert session.run("echo via-agent", timeout=10).stdout == b"via-agent\n"
            session.close()
        finally:
            connector.close()
        monkeypatch.delenv("SSH_AUTH_SOCK")
        connector = Connector(options)
        try:
            err, _ = unreachable(lambda: connector.connect(make_target("h1", {"ansible_host": sshd.host}, options),
                                                           soon()))
            assert err.reason == "auth" and "no key to offer" in (err.detail or "")
        finally:
            connector.close()
    finally:
        agent.terminate()
        agent.wait(timeout=10)
