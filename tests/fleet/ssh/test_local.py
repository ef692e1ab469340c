"""LocalSession: /bin/sh in home, the process group killed on timeout, abort, output bound, put."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

import pytest

from imageserving_fleet.errors import OutputTooLargeError, UsageError
from imageserving_fleet.fleet.ssh import CommandResult, Connector, LocalSession
from imageserving_fleet.fleet.target import FleetOptions, make_target

from .helpers import FOREVER, NO_OPTIONS, SLOW, alive, soon, unreachable, wait_until


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
    assert wait_until(lambda: not alive(child)), f"the command's child {child} outlived the timeout"


def test_local_abort_output_cap_and_put(tmp_path: Path) -> None:
    session = LocalSession("localhost")
    threading.Timer(0.3, session.abort).start()
    error, took = unreachable(lambda: session.run(f"sleep {FOREVER}", timeout=FOREVER))
    assert error.reason == "connection lost" and took < SLOW
    session = LocalSession("localhost")
    with pytest.raises(OutputTooLargeError):
        session.run("head -c 300000 /dev/zero", timeout=5, max_output=100_000)
    source = tmp_path / "a"
    source.write_bytes(b"data")
    source.chmod(0o640)
    session.put(str(source), str(tmp_path / "b"))
    assert (tmp_path / "b").read_bytes() == b"data" and stat.S_IMODE((tmp_path / "b").stat().st_mode) == 0o640
    with pytest.raises(UsageError):
        session.sftp()
