"""known_hosts parsing and lookup (table tests on files in tmp_path), and the host key check
against a real sshd: unknown, accept-new, changed, warn, hashed/wildcard, @revoked."""

from __future__ import annotations

import base64
import hashlib
import hmac
from pathlib import Path

import pytest

from imageserving_fleet.fleet.ssh.known_hosts import KnownHosts, fingerprint, key_type

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
    (f"@cert-authority web ssh-ed25519 {KEY}", "web", False),     # certificates are not verified here
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
