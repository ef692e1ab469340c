"""The direct-streamlocal@openssh.com channel against a real sshd: opened, refused, and why.

A Unix socket server on the controller stands in for the supervisor: it answers each connection
with the uid of its peer (SO_PEERCRED), which proves sshd connected as the login user.
"""

from __future__ import annotations

import os
import socket
import struct
import tempfile
import threading
import time
from collections.abc import Iterator

import pytest

from imageserving_fleet.fleet.ssh import Connector, SshSession
from imageserving_fleet.fleet.ssh.streamlocal import StreamLocalRefused, open_streamlocal, payload
from imageserving_fleet.fleet.target import FleetOptions, make_target
from tests.sshd import SshServer, sshd_available


def test_payload_is_path_then_reserved_string_then_reserved_uint32() -> None:
    assert payload("/run/x.sock") == ("/run/x.sock", "", 0)


@pytest.fixture(scope="module")
def peer_uid_server() -> Iterator[str]:
    """A Unix socket that answers every connection with `uid <peer uid>\\n`."""
    directory = tempfile.mkdtemp(prefix="isf-sl-")
    path = os.path.join(directory, "s.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(16)

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
                line = conn.recv(100)
                conn.sendall(f"uid {struct.unpack('3i', creds)[1]} {line.decode().strip()}\n".encode())

    threading.Thread(target=serve, daemon=True).start()
    yield path
    listener.close()
    os.unlink(path)
    os.rmdir(directory)


def _session(server: SshServer) -> SshSession:
    options = FleetOptions(ssh_config=str(server.ssh_config_path), connect_timeout=5.0)
    target = make_target("h", server.inventory_vars(), options)
    session = Connector(options).connect(target, time.monotonic() + 30)
    assert isinstance(session, SshSession)
    return session


def _read_line(chan: object) -> bytes:
    data = b""
    while not data.endswith(b"\n"):
        chunk = chan.recv(100)  # type: ignore[attr-defined]
        if not chunk:
            break
        data += chunk
    return data


def test_channel_reaches_the_socket_as_the_login_user(sshd: SshServer, peer_uid_server: str) -> None:
    session = _session(sshd)
    try:
        for _ in range(2):  # twice on one connection: nothing left half-open
            chan = open_streamlocal(session.transport, peer_uid_server, timeout=10)
            chan.settimeout(10)
            chan.sendall(b"hello\n")
            assert _read_line(chan) == f"uid {os.getuid()} hello\n".encode()
            chan.close()
    finally:
        session.close()


def test_a_missing_socket_is_refused_not_hung(sshd: SshServer) -> None:
    session = _session(sshd)
    try:
        with pytest.raises(StreamLocalRefused) as info:
            open_streamlocal(session.transport, "/nonexistent/isf.sock", timeout=10)
        # OpenSSH 9.2 says SSH2_OPEN_CONNECT_FAILED "Connect failed" here and for a policy refusal
        # alike: nothing in the answer tells "supervisor down" from "forwarding off".
        assert info.value.code == 2
        assert session.alive  # the connection survives a refused channel
    finally:
        session.close()


@pytest.mark.parametrize("option", ["AllowStreamLocalForwarding no", "DisableForwarding yes"])
def test_sshd_policy_refuses_the_channel(option: str, peer_uid_server: str) -> None:
    if not sshd_available():
        pytest.skip("/usr/sbin/sshd is not installed")
    with SshServer(extra_config=option + "\n") as server:
        session = _session(server)
        try:
            with pytest.raises(StreamLocalRefused) as info:
                open_streamlocal(session.transport, peer_uid_server, timeout=10)
            assert info.value.code == 2  # the very answer a missing socket gets
            assert session.run("echo still-usable", timeout=20).stdout == b"still-usable\n"
        finally:
            session.close()
