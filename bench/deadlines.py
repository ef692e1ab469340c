#!/usr/bin/env python3
"""Benchmark: how long after its deadline each transport failure is reported, on this machine.

    python bench/deadlines.py             # 5 rounds of each case against a loopback sshd
    python bench/deadlines.py --rounds 20

The tests in tests/fleet/ssh/ (test_session, test_connector, test_local) check that every deadline
holds, with bounds a machine ten times slower still meets; the real latencies are measured here. Each case provokes its failure
for real (a command timeout, an abort from another thread, a stopped sshd, a silent port, a closed
port, a dropped connection) and prints the median and worst time from the call to the exception,
and how much later than the deadline that was. Loopback only; stdlib plus the project.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from imageserving_fleet.errors import UnreachableError  # noqa: E402
from imageserving_fleet.fleet.ssh import Connector, LocalSession  # noqa: E402
from imageserving_fleet.fleet.target import FleetOptions, make_target  # noqa: E402
from tests.sshd import SshServer, closed_port, silent_listener  # noqa: E402


def failing(call: Callable[[], object]) -> float:
    start = time.monotonic()
    try:
        call()
    except UnreachableError:
        return time.monotonic() - start
    raise RuntimeError("the call did not fail")


def cases(server: SshServer) -> dict[str, tuple[float, Callable[[], float]]]:
    """name -> (when the failure is due, seconds after the call; a function that measures one round)."""
    options = FleetOptions(ssh_config=str(server.ssh_config_path), connect_timeout=600.0)
    connector = Connector(options)
    target = make_target("h", {"ansible_host": server.host, "ansible_port": server.port}, options)

    def session() -> object:
        return connector.connect(target, time.monotonic() + 30)

    def command_timeout() -> float:
        s: object = session()
        return failing(lambda: s.run("sleep 60", timeout=0.5))  # type: ignore[attr-defined]

    def abort() -> float:
        s: object = session()
        threading.Timer(0.3, s.abort).start()  # type: ignore[attr-defined]
        return failing(lambda: s.run("sleep 60", timeout=60))  # type: ignore[attr-defined]

    def stopped_sshd() -> float:
        s: object = session()
        child = int(s.run("echo $PPID", timeout=5).stdout)  # type: ignore[attr-defined]
        os.kill(child, signal.SIGSTOP)
        try:
            return failing(lambda: s.run("true", timeout=1.0))  # type: ignore[attr-defined]
        finally:
            os.kill(child, signal.SIGKILL)

    def dropped() -> float:
        s: object = session()
        return failing(lambda: s.run("kill -9 $PPID; sleep 60", timeout=60))  # type: ignore[attr-defined]

    def silent() -> float:
        with silent_listener() as port:
            t = make_target("h", {"ansible_host": "127.0.0.1", "ansible_port": port}, options)
            return failing(lambda: connector.connect(t, time.monotonic() + 1.0))

    def refused() -> float:
        with closed_port() as port:
            t = make_target("h", {"ansible_host": "127.0.0.1", "ansible_port": port}, options)
            return failing(lambda: connector.connect(t, time.monotonic() + 60))

    def local_timeout() -> float:
        return failing(lambda: LocalSession("localhost").run("sleep 60", timeout=0.5))

    return {"command timeout 0.5 s": (0.5, command_timeout), "abort after 0.3 s": (0.3, abort),
            "stopped sshd, timeout 1 s": (1.0, stopped_sshd), "connection dropped": (0.0, dropped),
            "silent port, deadline 1 s": (1.0, silent), "closed port": (0.0, refused),
            "local command timeout 0.5 s": (0.5, local_timeout)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args(argv)
    with SshServer() as server:
        print(f"| case | due (s) | median (s) | worst (s) | worst late (ms) |   ({args.rounds} rounds, {os.cpu_count()} cores)")
        print("|---|---:|---:|---:|---:|")
        for name, (due, measure) in cases(server).items():
            took = [measure() for _ in range(args.rounds)]
            print(f"| {name} | {due:g} | {statistics.median(took):.3f} | {max(took):.3f} | "
                  f"{(max(took) - due) * 1000:.0f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
