"""The progress bar: on stderr when stderr is a terminal, never in a pipe, never on stdout."""

from __future__ import annotations

import json
import os
import pty
import re
import subprocess
import sys
from pathlib import Path

STATUS = {"schema": 1, "host": "h", "agent_version": "0.1.0", "time": "2026-11-26T00:00:00Z",
          "supervisor": {"state": "RUNNING", "pid": 1, "uptime_s": 1.0, "rss_bytes": 1},
          "components": [{"id": c, "state": "RUNNING", "pid": 2, "uptime_s": 1.0, "rss_bytes": 2 ** 20,
                          "restarts": 0, "last_exit": None, "message": ""} for c in ("ps", "is", "svg")],
          "message": ""}


def _inventory(tmp_path: Path, hosts: int) -> Path:
    agent = tmp_path / "fake-agent"
    # A fake agent (answers in 0.2 s, so the bar has something to show); the product runs it for real.
    agent.write_text(f"#!/bin/sh\nsleep 0.2\necho '{json.dumps(STATUS)}'\n")
    agent.chmod(0o755)
    inv = tmp_path / "hosts.ini"
    inv.write_text("".join(f"h{i} ansible_connection=local imageserving_command={agent}\n" for i in range(hosts)))
    return inv


def _run(inv: Path, stderr_tty: bool) -> tuple[int, str, str]:
    argv = [sys.executable, "-m", "imageserving_fleet.fleet.main", "-i", str(inv), "-f", "2", "status"]
    if not stderr_tty:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=60)
        return proc.returncode, proc.stdout, proc.stderr
    master, slave = pty.openpty()
    proc2 = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=slave, env={**os.environ, "TERM": "xterm"})
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    out = proc2.stdout.read().decode() if proc2.stdout else ""
    code = proc2.wait(timeout=60)
    os.close(master)
    return code, out, b"".join(chunks).decode(errors="replace")


def test_progress_bar_only_on_a_terminal(tmp_path: Path) -> None:
    inv = _inventory(tmp_path, 6)
    code, out, err = _run(inv, stderr_tty=True)
    assert code == 0 and "hosts=6 ok=6" in out
    assert re.search(r"[0-6]/6", err), err  # "3/6" of MofNCompleteColumn
    assert re.search(r"h[0-5]: ok", err), err     # the last host done and its result
    assert "/6" not in out                         # nothing of the bar on stdout

    code, out, err = _run(inv, stderr_tty=False)
    assert code == 0 and "hosts=6 ok=6" in out
    assert err == ""
