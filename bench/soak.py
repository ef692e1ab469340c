#!/usr/bin/env python3
"""Soak: one component crashing every ~100 ms for minutes while another serves; the supervisor must not drift.

    python bench/soak.py                      # 5 minutes, prints a table of figures (markdown)
    python bench/soak.py --minutes 1 --no-backoff

The crasher (`is`) writes 64 KiB of output and exits 1 about 100 ms after it starts, `restart: always`,
start_delay 50 ms (so each life counts as RUNNING and is restarted under the backoff rules). The healthy
component (`svg`) listens on a TCP port that is probed once a second. Figures, sampled every second:

- supervisor RSS at the end of minute 1 and at the end (flat: no leak per restart)
- supervisor CPU, user + system, as a share of one core over the whole run (bounded by the backoff), alone
  and with the CPU of the children it reaped (the crasher's own start-up)
- restarts of the crasher, and the crash rate they amount to
- zombies among the supervisor's children (at any sample), and tagged processes left after stop
- the largest total size of <home>/logs (bounded by rotation: log_max_bytes x (1 + log_backups) per file)
- the healthy component's pid (unchanged), failed TCP probes of it (none), the slowest `status`

With --no-backoff the crasher's backoff is reset after 50 ms of life, so it restarts at once every time:
the worst case for the supervisor, bounded only by how fast it can spawn.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
PROGS = ROOT / "tests" / "agent" / "progs.py"
CRASHER = ("import sys, time\n"
           "sys.stdout.write(('crash soon ' * 100 + '\\n') * 64); sys.stdout.flush()\n"
           "time.sleep(0.1)\n"
           "sys.exit(1)\n")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run(home: Path, cfg: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "imageserving_fleet.agent.main", "--home", str(home), "--config", str(cfg), *args]
    env = {k: v for k, v in os.environ.items() if not k.startswith("IMAGESERVING_")}
    env["PYTHONPATH"] = str(ROOT)
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env)


def dir_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.iterdir() if f.is_file())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=5.0)
    ap.add_argument("--no-backoff", action="store_true", help="reset the backoff after 50 ms: restart at once")
    ap.add_argument("--json", action="store_true", help="print the figures as JSON instead of markdown")
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="isf-soak-"))
    home, cfg, port = work / "h", work / "agent.yaml", free_port()
    backoff = ({"initial": "100ms", "max": "100ms", "reset_after": "50ms"} if args.no_backoff
               else {"initial": "100ms", "max": "1s", "reset_after": "60s"})
    log_max, backups = 256 * 1024, 2
    cfg.write_text(json.dumps({
        "supervisor": {"log_max_bytes": f"{log_max // 1024}KiB", "log_backups": backups},
        "components": {
            "svg": {"command": [sys.executable, str(PROGS), "listen", str(port)], "ready": {"tcp": f"127.0.0.1:{port}"},
                    "start_delay": "100ms"},
            "is": {"command": [sys.executable, "-c", CRASHER], "restart": "always", "start_delay": "50ms",
                   "start_retries": 1000000, "backoff": backoff, "start_priority": 2},
        },
    }))
    started = run(home, cfg, "start")
    figures: dict[str, object] = {"minutes": args.minutes, "mode": "no backoff" if args.no_backoff else "backoff 100ms..1s"}
    try:
        sup = psutil.Process(int((home / "run" / "supervisor.pid").read_text()))
        status = json.loads(run(home, cfg, "status", "--json").stdout)
        healthy = next(c["pid"] for c in status["components"] if c["id"] == "svg")
        cpu0 = sup.cpu_times()
        t0 = time.monotonic()
        end = t0 + args.minutes * 60
        rss: list[tuple[float, int]] = []
        zombies = probe_failures = 0
        max_logs = 0
        slowest_status = 0.0
        next_status = t0
        print(f"soak: {figures['mode']}, {args.minutes:g} min, start exit {started.returncode}", file=sys.stderr)
        while time.monotonic() < end:
            now = time.monotonic()
            rss.append((now - t0, sup.memory_info().rss))
            zombies = max(zombies, sum(1 for c in sup.children() if c.status() == psutil.STATUS_ZOMBIE))
            max_logs = max(max_logs, dir_size(home / "logs"))
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
            except OSError:
                probe_failures += 1
            if now >= next_status:
                s0 = time.monotonic()
                doc = json.loads(run(home, cfg, "status", "--json").stdout)
                slowest_status = max(slowest_status, time.monotonic() - s0)
                svg = next(c for c in doc["components"] if c["id"] == "svg")
                if svg["pid"] != healthy or svg["state"] != "RUNNING":
                    figures["healthy_changed"] = svg
                next_status = now + 10
            time.sleep(1.0)
        elapsed = time.monotonic() - t0
        cpu1 = sup.cpu_times()
        doc = json.loads(run(home, cfg, "status", "--json").stdout)
        crasher = next(c for c in doc["components"] if c["id"] == "is")
        svg = next(c for c in doc["components"] if c["id"] == "svg")
        minute1 = next((r for t, r in rss if t >= 60), rss[-1][1])
        figures.update({
            "duration_s": round(elapsed, 1),
            "restarts": crasher["restarts"],
            "crashes_per_s": round(crasher["restarts"] / elapsed, 2),
            "supervisor_rss_start_mib": round(rss[0][1] / 2**20, 1),
            "supervisor_rss_minute1_mib": round(minute1 / 2**20, 1),
            "supervisor_rss_end_mib": round(rss[-1][1] / 2**20, 1),
            "cpu_pct_incl_reaped_children": round(100 * ((cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)
                                                          + (cpu1.children_user - cpu0.children_user)
                                                          + (cpu1.children_system - cpu0.children_system)) / elapsed, 1),
            "supervisor_own_cpu_pct": round(100 * ((cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)) / elapsed, 1),
            "max_zombies_seen": zombies,
            "max_logs_bytes": max_logs,
            "logs_bound_bytes": (log_max + 64 * 1024) * (1 + backups) * 3,  # 3 files; a write may overshoot by one read
            "healthy_pid_unchanged": svg["pid"] == healthy and svg["state"] == "RUNNING" and "healthy_changed" not in figures,
            "healthy_tcp_probe_failures": probe_failures,
            "slowest_status_s": round(slowest_status, 3),
        })
    finally:
        stop = run(home, cfg, "stop")
        from imageserving_fleet.agent import procs

        left = procs.tagged(str(home.resolve()))
        figures["stop_exit"] = stop.returncode
        figures["tagged_processes_left"] = len(left)
        for p in left:
            p.kill()
        shutil.rmtree(work, ignore_errors=True)
    if args.json:
        print(json.dumps(figures, indent=2))
    else:
        print("| figure | value |\n|---|---|")
        for key, value in figures.items():
            print(f"| {key} | {value} |")
    ok = (figures.get("healthy_pid_unchanged") and not figures.get("max_zombies_seen")
          and figures.get("tagged_processes_left") == 0)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
