"""known_hosts parsing and lookup (table tests on files in tmp_path), and the host key check
against a real sshd: unknown, accept-new, changed, warn, hashed/wildcard, @revoked."""

from __future__ import annotations

import base64
import hashlib
import hmac
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from imageserving_fleet.fleet.ssh import CommandResult, Connector
from imageserving_fleet.fleet.ssh.known_hosts import KnownHosts, fingerprint, key_type
from imageserving_fleet.fleet.target import FleetOptions
from tests.sshd import SshServer, keygen

from .helpers import soon, target_for, unreachable

BLOB = b"\x00\x00\x00\x0bssh-ed25519" + b"\x00\x00\x00\x20" + bytes(range(32))
OTHER = b"\x00\x00\x00\x0bssh-ed25519" + b"\x00\x00\x00\x20" + bytes(range(1, 33))
KEY = base64.b64encode(BLOB).decode()


def hashed(name: str, salt: bytes = b"s" * 20) -> str:
    digest = hmac.new(salt, name.encode(), hashlib.sha1).digest()
    return f"|1|{base64.b64encode(salt).decode()}|{base64.b64encode(digest).decode()}"


@pytest.mark.parametrize(("line", "name", "found"), [
    (f"web ssh-ed25519 {KEY}", "web", True),
    (f"web ssh-ed25519 {KEY}", "WEB", True),                      # names are case-insensitive
    (f"web,10.0.0.1 ssh-ed25519 {KEY}", "10.0.0.1", True),
    (f"[web]:2222 ssh-ed25519 {KEY}", "[web]:2222", True),
    (f"[web]:2222 ssh-ed25519 {KEY}", "web", False),              # another port is another host
    (f"{hashed('web')} ssh-ed25519 {KEY}", "web", True),
    (f"{hashed('web')} ssh-ed25519 {KEY}", "other", False),
    (f"*.example.com ssh-ed25519 {KEY}", "a.example.com", True),
    (f"*.example.com,!bad.example.com ssh-ed25519 {KEY}", "bad.example.com", False),  # negation vetoes
    (f"web? ssh-ed25519 {KEY}", "web1", True),
    (f"[web]:2* ssh-ed25519 {KEY}", "[web]:2222", True),          # [ ] are literal, not a set
    (f"# web ssh-ed25519 {KEY}", "web", False),
    ("web ssh-ed25519 not-base64!", "web", False),
    ("web ssh-ed25519", "web", False),
])
def test_lookup(tmp_path: Path, line: str, name: str, found: bool) -> None:
    path = tmp_path / "known_hosts"
    path.write_text(f"{line}\n")
    keys = KnownHosts(str(path)).lookup(name)
    assert bool(keys) is found
    if found:
        assert keys[0].blob == BLOB and keys[0].where == f"{path}:1" and not keys[0].revoked


def test_revoked_lines_are_found_and_marked(tmp_path: Path) -> None:
    path = tmp_path / "known_hosts"
    path.write_text(f"web ssh-ed25519 {base64.b64encode(OTHER).decode()}\n@revoked * ssh-ed25519 {KEY}\n")
    keys = KnownHosts(str(path)).lookup("web")
    assert [(k.blob, k.revoked, k.line) for k in keys] == [(OTHER, False, 1), (BLOB, True, 2)]


def test_a_missing_file_holds_no_keys(tmp_path: Path) -> None:
    assert KnownHosts(str(tmp_path / "nope")).lookup("web") == []


@pytest.mark.parametrize("hash_it", [False, True])
def test_append_records_a_line_ssh_reads_and_finds_it_at_once(tmp_path: Path, hash_it: bool) -> None:
    path = tmp_path / "dir" / "known_hosts"
    index = KnownHosts(str(path))
    index.append("[web]:2222", BLOB, hashed=hash_it)
    line = path.read_text()
    assert line.endswith(f" ssh-ed25519 {KEY}\n") and line.startswith("|1|" if hash_it else "[web]:2222 ")
    assert index.lookup("[web]:2222")[0].blob == BLOB
    assert KnownHosts(str(path)).lookup("[web]:2222")[0].blob == BLOB  # and a fresh read agrees
    assert path.stat().st_mode & 0o777 == 0o600


def test_append_after_a_file_without_its_final_newline(tmp_path: Path) -> None:
    path = tmp_path / "known_hosts"
    path.write_text(f"old ssh-ed25519 {KEY}")
    KnownHosts(str(path)).append("new", BLOB, hashed=False)
    assert path.read_text().splitlines() == [f"old ssh-ed25519 {KEY}", f"new ssh-ed25519 {KEY}"]


def test_fingerprint_and_key_type_are_openssh_s() -> None:
    assert key_type(BLOB) == "ssh-ed25519"
    expected = base64.b64encode(hashlib.sha256(BLOB).digest()).decode().rstrip("=")
    assert fingerprint(BLOB) == f"SHA256:{expected}"


# --------------------------------------------------------------------------- against a real sshd


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


@pytest.mark.parametrize(("source", "connects"), [("default", True), ("ansible.cfg /p/ansible.cfg:3", True),
                                                   ("command line --host-key-policy", False)])
def test_a_host_s_strict_host_key_checking_no_gives_way_only_to_the_command_line(
        sshd: SshServer, ssh_config_for: Callable[..., Path], tmp_path: Path, source: str, connects: bool) -> None:
    """`ansible_ssh_common_args: -o StrictHostKeyChecking=no` (common in inventories) means warn for
    that host, unless --host-key-policy was given on the command line."""
    config = ssh_config_for(known_hosts=tmp_path / "empty_known_hosts")
    options = FleetOptions(ssh_config=str(config), host_key_policy="reject", host_key_policy_source=source)
    target = target_for(sshd, options, ansible_ssh_common_args="-o StrictHostKeyChecking=no")
    warnings: list[str] = []
    connector = Connector(options, warn=warnings.append)
    if connects:
        assert connector.connect(target, soon()).run("true", timeout=10).exit_code == 0
        assert len(warnings) == 1 and "accepted, not recorded" in warnings[0]
    else:
        error, _ = unreachable(lambda: connector.connect(target, soon()))
        assert error.reason == "unknown host key"
    assert not (tmp_path / "empty_known_hosts").exists()


@pytest.mark.parametrize(("variables", "policy"), [
    ({"ansible_host_key_checking": False}, "warn"),
    ({"ansible_host_key_checking": "no"}, "warn"),
    ({"ansible_host_key_checking": True}, "reject"),
    # the host's own ssh arguments say it explicitly: they win over the variable
    ({"ansible_host_key_checking": False, "ansible_ssh_common_args": "-o StrictHostKeyChecking=yes"}, "reject"),
    ({}, None),
])
def test_ansible_host_key_checking_is_the_host_s_strict_host_key_checking(
        variables: dict[str, object], policy: str | None) -> None:
    """ansible-core's per-host `ansible_host_key_checking` is honoured as that host's
    StrictHostKeyChecking (and so gives way to --host-key-policy on the command line, as above)."""
    from imageserving_fleet.fleet.ssh.settings import STRICT_TO_POLICY
    from imageserving_fleet.fleet.target import make_target

    target = make_target("h1", {"ansible_host": "127.0.0.1", **variables}, FleetOptions())
    strict = dict(target.ssh_args).get("stricthostkeychecking")
    assert (STRICT_TO_POLICY[strict[0].lower()] if strict else None) == policy
    if "ansible_host_key_checking" in variables and "ansible_ssh_common_args" not in variables:
        assert dict(target.sources)["ssh stricthostkeychecking"].startswith("inventory ansible_host_key_checking")
