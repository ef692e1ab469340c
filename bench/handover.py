#!/usr/bin/env python3
"""Benchmark: `imageserving restart supervisor` with three components (SPEC §2), on this machine.

    python bench/handover.py [--runs 5]

Starts a supervisor in a temporary home with three small components (a TCP server, a process
printing a line every millisecond, a sleeper), then hands over --runs times and prints, as the
median and each run:

  handover   the control request alone: the old supervisor starts the new one from the installed
             code, waits for its READY and answers (the new one has adopted every component);
  command    `imageserving restart supervisor` as an operator runs it: fork + exec of the console
             script until it exits (the request, the old supervisor's exit, a status).

Every run checks that no component pid changed. Everything is stopped at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from imageserving_fleet.agent import client, control
from imageserving_fleet.home import Home

AGENT = [sys.executable, "-m", "imageserving_fleet.agent.main"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def components(port: int) -> str:
    listen = (f"import socket,time; s=socket.socket(); s.bind(('127.0.0.1',{port})); s.listen(); "
              "print('listening', flush=True); time.sleep(1e9)")
    count = "import sys,time\nn=0\nwhile True:\n n+=1; print('line', n, flush=True); time.sleep(0.001)"
    blocks = {"is": [sys.executable, "-c", listen], "out": [sys.executable, "-c", count],
              "svg": [sys.executable, "-c", "import time; time.sleep(1e9)"]}
    lines = ["components:"]
    for cid, argv in blocks.items():
        lines += [f"  {cid}:", f"    command: {json.dumps(argv)}", "    start_delay: 100ms", "    stop_timeout: 2s"]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="is-handover-") as tmp:
        home, cfg = Path(tmp, "h"), Path(tmp, "agent.yaml")
        cfg.write_text(components(free_port()))
        cli = [*AGENT, "--home", str(home), "--config", str(cfg)]
        env = {k: v for k, v in os.environ.items() if not k.startswith("IMAGESERVING_")}
        subprocess.run([*cli, "start"], check=True, capture_output=True, env=env)
        try:
            h = Home(str(home))
            pids = _pids(h)
            request, command = [], []
            for _ in range(args.runs):
                started = time.perf_counter()
                reply = client.request(h, {"cmd": "handover", "python": sys.executable}, timeout=None)
                request.append(time.perf_counter() - started)
                assert reply.get("status") == "ok", reply
                control._wait_gone(int(reply["previous"]))
                started = time.perf_counter()
                subprocess.run([*cli, "restart", "supervisor"], check=True, capture_output=True, env=env)
                command.append(time.perf_counter() - started)
                assert _pids(h) == pids, "a component pid changed"
            print(f"restart supervisor, 3 components, {args.runs} runs each (median; all, seconds)")
            for name, values in (("handover", request), ("command", command)):
                print(f"  {name:9} {statistics.median(values):.3f}  ({', '.join(f'{v:.3f}' for v in values)})")
        finally:
            subprocess.run([*cli, "stop"], capture_output=True, env=env)
    return 0


def _pids(h: Home) -> dict[str, int]:
    doc = control.status(h, []).status or {}
    return {c["id"]: c["pid"] for c in doc.get("components", [])}


if __name__ == "__main__":
    sys.exit(main())
