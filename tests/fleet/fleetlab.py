"""A loopback fleet for tests and benchmarks: logical hosts on one real sshd, each its own agent.

Every logical host is an inventory alias of 127.0.0.1:<sshd port> with its own imageserving_home
and its own configuration (the demo stack on free ports), so they behave as separate hosts.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def agent_wrapper(directory: Path) -> Path:
    """An `imageserving` executable for the hosts: this interpreter running the agent from this tree."""
    path = directory / "imageserving"
    path.write_text(f"#!/bin/sh\nPYTHONPATH={ROOT} exec {sys.executable} -m imageserving_fleet.agent.main \"$@\"\n")
    path.chmod(0o755)
    return path


def demo_config(path: Path, start_delay: str = "100ms") -> dict[str, int]:
    """The demo stack on three free ports; returns them."""
    ports = {"is": free_port(), "svg": free_port(), "ps": free_port()}
    py = sys.executable
    comps = {
        "is": {"description": "Image Server", "start_priority": 1,
               "command": [py, "-m", "imageserving_fleet.agent.demo.imageserver", "--port", str(ports["is"])],
               "ready": {"tcp": f"127.0.0.1:{ports['is']}"}},
        "svg": {"description": "SVG server", "start_priority": 1,
                "command": [py, "-m", "imageserving_fleet.agent.demo.svgserver", "--port", str(ports["svg"])],
                "ready": {"tcp": f"127.0.0.1:{ports['svg']}"}},
        "ps": {"description": "Platform Server", "start_priority": 2,
               "command": [py, "-m", "imageserving_fleet.agent.demo.platformserver", "--port", str(ports["ps"]),
                           "--is-port", str(ports["is"]), "--svg-port", str(ports["svg"])],
               "ready": {"http": f"http://127.0.0.1:{ports['ps']}/healthz"}},
    }
    for comp in comps.values():
        comp.update({"start_delay": start_delay, "stop_timeout": "5s", "ready_timeout": "20s",
                     "env": {"PYTHONPATH": str(ROOT)}})
    path.write_text(yaml.safe_dump({"components": comps}, sort_keys=False))
    return ports


class Lab:
    """Builds inventories of logical hosts on one sshd and runs the fleet CLI against them."""

    def __init__(self, sshd: Any, directory: Path) -> None:
        self.sshd, self.dir = sshd, directory
        self.agent = agent_wrapper(directory)
        self.hosts: dict[str, dict[str, Any]] = {}

    def add_host(self, name: str, **overrides: Any) -> dict[str, Any]:
        """A good logical host with its own home and demo config; overrides change its variables."""
        home = self.dir / name
        home.mkdir(exist_ok=True)
        config = home / "agent.yaml"
        demo_config(config)
        hv: dict[str, Any] = {**self.sshd.inventory_vars(), "imageserving_home": str(home / "h"),
                              "imageserving_config": str(config), "imageserving_command": str(self.agent)}
        hv.update(overrides)
        self.hosts[name] = hv
        return hv

    def inventory(self, groups: Mapping[str, list[str]] | None = None) -> Path:
        doc: dict[str, Any] = {"all": {"hosts": self.hosts}}
        if groups:
            doc["all"]["children"] = {g: {"hosts": {h: None for h in hs}} for g, hs in groups.items()}
        path = self.dir / "hosts.yml"
        path.write_text(yaml.safe_dump(doc, sort_keys=False))
        return path

    def fleet(self, *args: str, timeout: float = 180, ssh_config: Path | None = None
              ) -> subprocess.CompletedProcess[str]:
        inventory = self.inventory()
        argv = [sys.executable, "-m", "imageserving_fleet.fleet.main", "-i", str(inventory),
                "--ssh-config", str(ssh_config or self.sshd.ssh_config_path), *args]
        env = {k: v for k, v in os.environ.items() if k != "SSH_AUTH_SOCK"}
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env, cwd=self.dir)

    def fleet_json(self, *args: str, **kw: Any) -> tuple[int, dict[str, Any]]:
        proc = self.fleet(*args, "--json", **kw)
        try:
            return proc.returncode, json.loads(proc.stdout)
        except ValueError:
            raise AssertionError(f"no JSON (exit {proc.returncode}): {proc.stdout!r} {proc.stderr!r}") from None

    def log(self, name: str) -> str:
        path = Path(self.hosts[name]["imageserving_home"]) / "logs" / "Supervisor.log"
        return path.read_text() if path.exists() else ""

    def agent_status(self, hv: Mapping[str, Any]) -> dict[str, Any]:
        """A logical host's status document, asked of its agent directly (no SSH)."""
        proc = subprocess.run([str(self.agent), "--home", hv["imageserving_home"], "--config", hv["imageserving_config"],
                               "status", "--json"], capture_output=True, text=True, timeout=120)
        return dict(json.loads(proc.stdout))

    def component(self, hv: Mapping[str, Any], cid: str) -> dict[str, Any]:
        return next(dict(c) for c in self.agent_status(hv)["components"] if c["id"] == cid)

    def stop_all(self) -> None:
        """Stops every logical host's supervisor directly (no SSH), whatever the test left.

        All at once (each stop waits for its own components), and only where something may be left:
        a supervisor that exited cleanly removed its pid and children files, so asking it again would
        only pay an interpreter start to hear "already stopped".
        """
        homes = [hv["imageserving_home"] for hv in self.hosts.values() if hv.get("imageserving_home")]
        left = [h for h in homes if any(Path(h, "run", f).exists() for f in ("supervisor.pid", "components.json"))]
        procs = [subprocess.Popen([str(self.agent), "--home", home, "stop"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for home in left]
        for proc in procs:
            try:
                proc.wait(timeout=120)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def by_host(doc: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    return {h["host"]: h for h in doc["hosts"]}


def pids(entry: Mapping[str, Any]) -> dict[str, int]:
    return {c["id"]: c["pid"] for c in (entry.get("status") or {}).get("components", [])}


def wait(seconds: float) -> None:
    """Pacing only (a load for a benchmark); never to wait for something to happen: use wait_until."""
    time.sleep(seconds)


def wait_until(condition: Callable[[], object], seconds: float = 60.0, every: float = 0.05) -> bool:
    """Polls `condition` until it is true or `seconds` pass (generous: a loaded machine is slow); whether it held."""
    end = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > end:
            return False
        time.sleep(every)
    return True


TMUX = shutil.which("tmux")


class Tmux:
    """A detached tmux session running a clean bash: a terminal a test types into and reads, as a person would."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __call__(self, *args: str) -> str:
        return subprocess.run([str(TMUX), *args], capture_output=True, text=True, timeout=30, check=True).stdout

    def screen(self, *, escapes: bool = False) -> str:
        """What the pane shows; with escapes, its colours and attributes too (capture-pane -e)."""
        return self("capture-pane", "-p", *(["-e"] if escapes else []), "-t", self.name)

    def type(self, line: str) -> None:
        self("send-keys", "-t", self.name, line, "Enter")

    @classmethod
    @contextmanager
    def session(cls, width: int = 200, height: int = 40) -> Iterator[Tmux]:
        """A new session (skips the test when tmux is not installed), killed at the end."""
        if not TMUX:
            pytest.skip("tmux is not installed")
        t = cls(f"t-{os.getpid()}-{time.monotonic_ns()}")
        env = {k: v for k, v in os.environ.items() if k not in ("SSH_AUTH_SOCK", "TMUX")}
        subprocess.run([TMUX, "new-session", "-d", "-s", t.name, "-x", str(width), "-y", str(height), "env", "-i",
                        f"PATH={env.get('PATH', '')}", f"HOME={env.get('HOME', '/root')}", "TERM=xterm-256color",
                        "bash", "--norc", "--noprofile"], check=True, timeout=30, env=env)
        try:
            yield t
        finally:
            subprocess.run([TMUX, "kill-session", "-t", t.name], capture_output=True, timeout=30)
