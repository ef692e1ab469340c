"""Authentication: a key held only by a real ssh-agent logs in; without one, 'no key to offer'."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from imageserving_fleet.fleet.ssh import Connector
from imageserving_fleet.fleet.target import FleetOptions, make_target
from tests.sshd import SshServer, keygen

from .helpers import soon, unreachable, wait_until


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
            session = connector.connect(make_target("h1", {"ansible_host": sshd.host}, options), soon(60))
            assert session.run("echo via-agent", timeout=10).stdout == b"via-agent\n"
            session.close()
        finally:
            connector.close()
        monkeypatch.delenv("SSH_AUTH_SOCK")
        connector = Connector(options)
        try:
            err, _ = unreachable(lambda: connector.connect(make_target("h1", {"ansible_host": sshd.host}, options),
                                                           soon(60)))
            assert err.reason == "auth" and "no key to offer" in (err.detail or "")
        finally:
            connector.close()
    finally:
        agent.terminate()
        agent.wait(timeout=10)
