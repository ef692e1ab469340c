"""Fixtures for the agent's integration tests: a home, a config, and the real CLI as a subprocess."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

PROGS = str(Path(__file__).with_name("progs.py"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as servers do: TIME_WAIT is no owner
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def wait_for(pred: Callable[[], Any], timeout: float = 60.0, every: float = 0.05) -> Any:
    """Polls `pred` until it returns something true (returned) or `timeout` passes (generous: CI is slow)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = pred()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"condition not met within {timeout}s")


class Agent:
    """One installation under test: its home, its config file, and the `imageserving` CLI."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.home = root / "h"
        self.config = root / "agent.yaml"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("IMAGESERVING_")}

    def write(self, text: str) -> Path:
        self.config.write_text(text)
        return self.config

    def run(self, *args: str, timeout: float = 90, check: bool = False) -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, "-m", "imageserving_fleet.agent.main", "--home", str(self.home),
                "--config", str(self.config), *args]
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=self.env)
        if check and proc.returncode != 0:
            raise AssertionError(f"{args} -> {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
        return proc

    def status(self) -> dict[str, Any]:
        proc = self.run("status", "--json")
        assert proc.stdout, proc.stderr
        return json.loads(proc.stdout)

    def comp(self, cid: str) -> dict[str, Any]:
        return next(c for c in self.status()["components"] if c["id"] == cid)

    def pids(self) -> dict[str, int]:
        return {c["id"]: c["pid"] for c in self.status()["components"]}

    def supervisor_pid(self) -> int | None:
        try:
            return int((self.home / "run" / "supervisor.pid").read_text())
        except (OSError, ValueError):
            return None

    def log(self, name: str = "Supervisor") -> str:
        path = self.home / "logs" / f"{name}.log"
        return path.read_text() if path.exists() else ""

    def tagged(self) -> list[psutil.Process]:
        """Every live process carrying this home's tag: what must be empty after a stop."""
        from imageserving_fleet.agent import procs

        return procs.tagged(str(self.home.resolve()))

    def cleanup(self) -> None:
        self.run("stop", timeout=60)
        for p in self.tagged():
            try:
                p.kill()
            except psutil.Error:
                pass
        pid = self.supervisor_pid()
        if pid:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        self.remove_cgroups()

    def remove_cgroups(self) -> None:
        """The (empty) cgroup directories of this home, which a supervisor killed in a test leaves."""
        import glob

        from imageserving_fleet.agent.ownership import home_key

        for base in glob.glob(f"/sys/fs/cgroup/*/imageserving/{home_key(str(self.home.resolve()))}"):
            for leaf in glob.glob(f"{base}/*/"):
                try:
                    os.rmdir(leaf)
                except OSError:
                    pass
            try:
                os.rmdir(base)
            except OSError:
                pass


@pytest.fixture
def agent(tmp_path: Path) -> Iterator[Agent]:
    a = Agent(tmp_path)
    yield a
    a.cleanup()


def component(cid: str, argv: list[str], **settings: Any) -> str:
    """One component's YAML block (settings as JSON values, which YAML reads)."""
    lines = [f"  {cid}:", f"    command: {json.dumps(argv)}"]
    settings.setdefault("start_delay", "100ms")
    settings.setdefault("stop_timeout", "2s")
    settings.setdefault("ready_timeout", "10s")
    for key, value in settings.items():
        lines.append(f"    {key}: {json.dumps(value)}")
    return "\n".join(lines)


def config(*blocks: str) -> str:
    return "components:\n" + "\n".join(blocks) + "\n"


def prog(*args: str) -> list[str]:
    return [sys.executable, PROGS, *args]
