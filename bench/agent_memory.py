#!/usr/bin/env python3
"""Benchmark: what PSS/USS sampling (smaps_rollup) costs the supervisor (issue 19), in-tree agent, this machine.

    python bench/agent_memory.py [--status-runs 200] [--fresh-runs 8]

Figures, with three components (one a parent sharing 48 MiB with two forked children, as nginx's
master and workers do; two single processes):
  1. the supervisor's CPU per `status` answer in a burst (memory sampled at most every 1.5 s, so most
     answers are served from the sample): the figure bench/agent_health.py measured at 0.31 ms before;
  2. the supervisor's CPU per `status` answer when every answer measures afresh (requests 1.6 s apart:
     three trees walked and five smaps_rollup files read per answer);
  3. in this process, the cost of one tree measurement: RSS only (psutil, as before) and RSS + PSS + USS.
Everything runs under a temporary home; every process is stopped at the end.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import psutil  # noqa: E402
from agent_health import PROGS, Agent, free_port, log, sched_ns, wait  # noqa: E402

from imageserving_fleet.agent.memory import tree_memory, tree_pids  # noqa: E402


def rss_only(pid: int) -> int:
    main = psutil.Process(pid)
    return int(main.memory_info().rss + sum(c.memory_info().rss for c in main.children(recursive=True)))


def cpu_ms(seconds: float) -> float:
    return seconds * 1000


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--status-runs", type=int, default=200)
    ap.add_argument("--fresh-runs", type=int, default=8)
    args = ap.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="ism-", dir="/tmp"))
    ports = [free_port() for _ in range(3)]
    comps = {
        "share": {"command": [sys.executable, str(PROGS), "share", "48", str(ports[0])],
                  "ready": {"tcp": f"127.0.0.1:{ports[0]}"}, "start_delay": "100ms"},
        "one": {"command": [sys.executable, str(PROGS), "listen", str(ports[1])],
                "ready": {"tcp": f"127.0.0.1:{ports[1]}"}, "start_delay": "100ms"},
        "two": {"command": [sys.executable, str(PROGS), "listen", str(ports[2])],
                "ready": {"tcp": f"127.0.0.1:{ports[2]}"}, "start_delay": "100ms"},
    }
    with Agent(work / "mem", comps) as agent:
        wait(lambda: all(c["state"] == "RUNNING" for c in agent.status()["components"]))
        pid = agent.pid()
        share = agent.comp("share")
        before = sched_ns(pid)
        for _ in range(args.status_runs):
            agent.status()
        burst = (sched_ns(pid) - before) / 1e6 / args.status_runs
        log(f"burst: supervisor CPU per status answer {burst:.3f} ms")
        fresh = []
        for _ in range(args.fresh_runs):
            time.sleep(1.6)  # past the sampler's 1.5 s: this answer measures every tree again
            a = sched_ns(pid)
            agent.status()
            fresh.append((sched_ns(pid) - a) / 1e6)
        log(f"fresh: supervisor CPU per status answer {statistics.median(fresh):.3f} ms (median)")
        tree = share["pid"]
        n = 200
        t = time.process_time()
        for _ in range(n):
            rss_only(tree)
        rss_cost = cpu_ms(time.process_time() - t) / n
        t = time.process_time()
        for _ in range(n):
            tree_memory(tree)
        full_cost = cpu_ms(time.process_time() - t) / n
        mem = tree_memory(tree)
        assert mem is not None
        log(f"one tree of {len(tree_pids(tree))}: RSS only {rss_cost:.3f} ms, RSS+PSS+USS {full_cost:.3f} ms")
        print("| figure | value |\n|---|---:|\n"
              f"| supervisor CPU per `status` answer, burst of {args.status_runs} (sampled at most every 1.5 s) "
              f"| {burst:.3f} ms |\n"
              f"| supervisor CPU per `status` answer measuring afresh (3 trees, 5 processes), median of "
              f"{args.fresh_runs} | {statistics.median(fresh):.3f} ms |\n"
              f"| one tree of 3 processes, RSS only (psutil, before) | {rss_cost:.3f} ms |\n"
              f"| one tree of 3 processes, RSS + PSS + USS (smaps_rollup) | {full_cost:.3f} ms |\n"
              f"| that tree: RSS sum / PSS / USS | {mem.rss / 2**20:.1f} / {(mem.pss or 0) / 2**20:.1f} / "
              f"{(mem.uss or 0) / 2**20:.1f} MiB |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
