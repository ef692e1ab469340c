#!/usr/bin/env python3
"""Benchmark: liveness checks and status under load, the figures issue 12 asks for (in-tree agent, this machine).

    python bench/agent.py --health            # the same, from the agent benchmark's entry point
    python bench/agent_health.py [--cpu-seconds 60] [--restarts 3] [--status-runs 200]

Figures:
  1. SIGSTOP of an HTTP component (health interval 1 s, timeout 500 ms, failures 3, stop_timeout 2 s)
     to its replacement RUNNING, polled in-process every 20 ms; the bound is failures × interval +
     stop_timeout + 1 s = 6 s;
  2. `status` latency over the control socket while a health check is outstanding against a TCP server
     that accepts and never answers (target < 100 ms), and the same with no check outstanding;
  3. the supervisor's CPU (its threads included, /proc schedstat) with http checks on three components at
     a 1 s interval, over --cpu-seconds (target < 0.5 % of a core), and with no checks for comparison.

Everything runs under a temporary home with the agent from this tree; every process is stopped at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
PROGS = REPO / "tests" / "agent" / "progs.py"
sys.path.insert(0, str(REPO))

from imageserving_fleet.agent import client  # noqa: E402
from imageserving_fleet.home import Home  # noqa: E402

T0 = time.monotonic()


def log(msg: str) -> None:
    print(f"[{time.monotonic() - T0:7.1f}s] {msg}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http_comp(port: int, health: dict[str, Any] | None) -> dict[str, Any]:
    comp: dict[str, Any] = {"command": [sys.executable, str(PROGS), "http", str(port)],
                            "ready": {"tcp": f"127.0.0.1:{port}"}, "start_delay": "100ms", "stop_timeout": "2s",
                            "start_retries": 5, "backoff": {"initial": "1s", "max": "10s", "reset_after": "5s"}}
    if health is not None:
        comp["health"] = health
    return comp


class Agent:
    def __init__(self, root: Path, components: dict[str, Any]) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.config = root / "agent.yaml"
        self.config.write_text(json.dumps({"components": components}))  # JSON is YAML
        self.home = Home(str(root / "h"))
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("IMAGESERVING_")}
        self.env["PYTHONPATH"] = str(REPO)

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "imageserving_fleet.agent.main", "--home", self.home.root,
                               "--config", str(self.config), *args], capture_output=True, text=True,
                              env=self.env, timeout=120)

    def __enter__(self) -> Agent:
        proc = self.cli("start")
        if proc.returncode != 0:
            raise SystemExit(f"start failed: {proc.stdout}{proc.stderr}")
        return self

    def __exit__(self, *exc: object) -> None:
        self.cli("stop")

    def status(self) -> dict[str, Any]:
        return client.request(self.home, {"cmd": "status", "ids": []}, timeout=10)["result"]

    def comp(self, cid: str) -> dict[str, Any]:
        return next(c for c in self.status()["components"] if c["id"] == cid)

    def pid(self) -> int:
        return int(self.status()["supervisor"]["pid"])


def wait(pred: Any, timeout: float = 60.0, every: float = 0.02) -> Any:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = pred()
        if value:
            return value
        time.sleep(every)
    raise SystemExit("condition not met in time")


def sched_ns(pid: int) -> int:
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            total += int(Path(f"/proc/{pid}/task/{tid}/schedstat").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            pass
    return total


def restart_bound(work: Path, runs: int) -> list[float]:
    port = free_port()
    health = {"http": f"http://127.0.0.1:{port}/", "interval": "1s", "timeout": "500ms", "failures": 3,
              "start_period": "0s"}
    out = []
    with Agent(work / "restart", {"ps": http_comp(port, health)}) as agent:
        for _ in range(runs):
            wait(lambda: agent.comp("ps").get("health") == "healthy")
            old = agent.comp("ps")["pid"]
            stopped = time.monotonic()
            os.kill(old, signal.SIGSTOP)
            wait(lambda old=old: (c := agent.comp("ps"))["pid"] not in (None, old) and c["state"] == "RUNNING")
            out.append(time.monotonic() - stopped)
            log(f"SIGSTOP → new pid RUNNING: {out[-1]:.2f} s ({agent.comp('ps')['restart_reason']})")
            time.sleep(5.5)  # past reset_after: each run starts from the same backoff level
    return out


class Silent:
    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.conns: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                self.conns.append(self.sock.accept()[0])
            except OSError:
                return


def status_latency(work: Path, runs: int) -> tuple[list[float], list[float], float]:
    silent, port, quiet = Silent(), free_port(), free_port()
    hung = {"http": f"http://127.0.0.1:{silent.port}/", "interval": "60s", "timeout": "50s", "failures": 3,
            "start_period": "0s"}
    with Agent(work / "latency", {"ps": http_comp(port, hung), "is": http_comp(quiet, None)}) as agent:
        wait(lambda: silent.conns)
        hung_ms = []
        for _ in range(runs):
            t = time.perf_counter()
            agent.status()
            hung_ms.append((time.perf_counter() - t) * 1000)
        outstanding = bool(silent.conns)
        log(f"status with a hung check outstanding ({outstanding}): median {statistics.median(hung_ms):.2f} ms, "
            f"max {max(hung_ms):.2f} ms")
    with Agent(work / "latency2", {"is": http_comp(quiet, None)}) as agent:
        plain_ms = []
        pid = agent.pid()
        before = sched_ns(pid)
        for _ in range(runs):
            t = time.perf_counter()
            agent.status()
            plain_ms.append((time.perf_counter() - t) * 1000)
        per_answer = (sched_ns(pid) - before) / 1e6 / runs
        log(f"status with no check: median {statistics.median(plain_ms):.2f} ms, max {max(plain_ms):.2f} ms; "
            f"supervisor CPU per answer {per_answer:.3f} ms")
    return hung_ms, plain_ms, per_answer


def health_cpu(work: Path, seconds: float, with_health: bool) -> float:
    comps = {}
    for cid in ("is", "svg", "ps"):
        port = free_port()
        health = {"http": f"http://127.0.0.1:{port}/", "interval": "1s", "timeout": "500ms", "failures": 3,
                  "start_period": "0s"} if with_health else None
        comps[cid] = http_comp(port, health)
    with Agent(work / ("cpu" if with_health else "cpu0"), comps) as agent:
        pid = agent.pid()
        time.sleep(2.0)
        a, t = sched_ns(pid), time.monotonic()
        time.sleep(seconds)
        b, u = sched_ns(pid), time.monotonic()
        pct = (b - a) / 1e9 / (u - t) * 100
        checks = sum(1 for c in agent.status()["components"] if c.get("health") == "healthy")
        log(f"supervisor CPU over {seconds:g} s, {'3 http checks at 1 s' if with_health else 'no checks'}: "
            f"{pct:.3f} % of a core ({checks} healthy)")
        return pct


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cpu-seconds", type=float, default=60.0)
    ap.add_argument("--restarts", type=int, default=3)
    ap.add_argument("--status-runs", type=int, default=200)
    args = ap.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="ish-", dir="/tmp"))
    restarts = restart_bound(work, args.restarts)
    hung, plain, per_answer = status_latency(work, args.status_runs)
    cpu = health_cpu(work, args.cpu_seconds, True)
    cpu0 = health_cpu(work, args.cpu_seconds, False)
    load = os.getloadavg()[0]
    print(f"| figure | value | target |\n|---|---:|---|\n"
          f"| SIGSTOP of an http component → new pid RUNNING (interval 1 s, failures 3, stop_timeout 2 s), "
          f"{len(restarts)} runs | median {statistics.median(restarts):.2f} s, max {max(restarts):.2f} s | ≤ 6 s |\n"
          f"| `status` over the socket while a check hangs ({len(hung)} runs) | median "
          f"{statistics.median(hung):.2f} ms, p99 {sorted(hung)[int(len(hung) * 0.99) - 1]:.2f} ms, "
          f"max {max(hung):.2f} ms | < 100 ms |\n"
          f"| `status` over the socket, no check ({len(plain)} runs) | median {statistics.median(plain):.2f} ms, "
          f"max {max(plain):.2f} ms | |\n"
          f"| supervisor CPU per `status` answer (memory sampled at most every 1.5 s) | {per_answer:.3f} ms | |\n"
          f"| supervisor CPU, http checks on 3 components at 1 s ({args.cpu_seconds:g} s) | {cpu:.3f} % | < 0.5 % |\n"
          f"| supervisor CPU, same stack without checks | {cpu0:.3f} % | |\n"
          f"\nload average at the end: {load:.1f} on {os.cpu_count()} cores")
    return 0


if __name__ == "__main__":
    sys.exit(main())
