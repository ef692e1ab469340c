"""SshSession against a real loopback sshd: commands, stdin, deadlines, abort, output bound,
dropped connections, background children, uploads.
"""

from __future__ import annotations

import hashlib
import os
import signal
import stat
import threading
import time
from pathlib import Path

import pytest

from imageserving_fleet.errors import HostError, OutputTooLargeError
from imageserving_fleet.fleet.ssh import CommandResult, Connector, SshSession
from imageserving_fleet.fleet.target import FleetOptions
from tests.sshd import SshServer

from .helpers import FOREVER, SLOW, soon, target_for, unreachable


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
    with pytest.raises(OutputTooLargeError) as caught:
        session.run("head -c 300000 /dev/zero", timeout=10, max_output=100_000)
    assert caught.value.reason == "output too large"


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


def test_ssh_session_type(sshd: SshServer, connector: Connector, fleet_options: FleetOptions) -> None:
    session = connector.connect(target_for(sshd, fleet_options), soon())
    assert isinstance(session, SshSession) and session.alive
    session.close()
    error, _ = unreachable(lambda: session.run("true", timeout=5))
    assert error.reason == "connection lost"
