"""Fixtures for the fleet tests: one real sshd for the session, and options that reach it.

Built on tests/sshd.py, which bench scripts use too. Tests that need their own known_hosts or
keys get a private ssh_config from `ssh_config_for` rather than touching the shared files.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

# tests/ is not a package; make `tests.sshd` importable however pytest was started.
_ROOT = str(Path(__file__).resolve().parents[2])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from imageserving_fleet.fleet.target import FleetOptions  # noqa: E402
from tests.fleet.fleetlab import Tmux  # noqa: E402
from tests.sshd import SshServer, sshd_available  # noqa: E402


@pytest.fixture(scope="session")
def sshd() -> Iterator[SshServer]:
    """A real OpenSSH server on 127.0.0.1 for the whole session; skips when sshd is not installed."""
    if not sshd_available():
        pytest.skip("/usr/sbin/sshd is not installed (apt-get install -y openssh-server)")
    # A developer's ssh-agent must not make a key test pass or fail.
    saved = os.environ.pop("SSH_AUTH_SOCK", None)
    server = SshServer()
    try:
        server.start()
    except (RuntimeError, OSError) as exc:
        pytest.skip(f"cannot start a test sshd here: {exc}")
    try:
        yield server
    finally:
        server.stop()
        if saved is not None:
            os.environ["SSH_AUTH_SOCK"] = saved


@pytest.fixture
def ssh_config_for(sshd: SshServer, tmp_path: Path) -> Callable[..., Path]:
    """Writes a private ssh_config for the test sshd; keywords as in SshServer.write_ssh_config."""
    counter = iter(range(1000))

    def write(**kwargs: object) -> Path:
        return sshd.write_ssh_config(tmp_path / f"ssh_config.{next(counter)}", **kwargs)  # type: ignore[arg-type]

    return write


@pytest.fixture
def fleet_options(sshd: SshServer) -> FleetOptions:
    """Options that reach the test sshd with its user key and its known_hosts, policy reject."""
    return FleetOptions(ssh_config=str(sshd.ssh_config_path), connect_timeout=5.0)


@pytest.fixture
def tmux() -> Iterator[Tmux]:
    """A terminal (tmux, 200x40) running a clean bash; skips when tmux is not installed."""
    with Tmux.session() as t:
        yield t
