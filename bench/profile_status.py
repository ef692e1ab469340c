#!/usr/bin/env python3
"""Where the controller's CPU goes per host in a `status`: cProfile of the fan-out, and CPU per host.

    python bench/profile_status.py                  # 50 hosts on one loopback sshd, top 25 functions
    python bench/profile_status.py --hosts 200 --top 40 --persist 60

The fleet is bench/fleet.py's (one sshd, N logical hosts over a few supervisor homes, the agent a
wrapper of this tree). Measured in this process: the status fan-out (context.resolve, open_fanout
and execute, the calls the CLI makes) of N hosts, new connections (direct, --persist 0) and then, with --persist,
through the connection holder twice (cold, warm): process CPU per host of this process, and of
the holder process for the held runs. cProfile's listing is of the direct run (its cost is what
a connection costs the controller), sorted by own time. On a shared machine the CPU figures move
with load; the listing's order does not.
"""

from __future__ import annotations

import argparse
import cProfile
import importlib.util
import io
import os
import pstats
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def _bench_fleet() -> object:
    spec = importlib.util.spec_from_file_location("bench_fleet", REPO / "bench" / "fleet.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_fleet"] = module
    spec.loader.exec_module(module)
    return module


def _holder_cpu(directory: str) -> float:
    """CPU seconds of the holder(s) whose logs are in `directory`."""
    import re

    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    for name in os.listdir(directory):
        if name.endswith(".log"):
            for pid in re.findall(r"holder (\d+): listening", Path(directory, name).read_text()):
                try:
                    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                    total += (int(fields[11]) + int(fields[12])) / tick
                except OSError:
                    pass
    return total


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hosts", type=int, default=50)
    parser.add_argument("--homes", type=int, default=5)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--persist", type=float, default=0.0, help="also run through a holder (seconds)")
    args = parser.parse_args()
    bench = _bench_fleet()
    from imageserving_fleet.fleet.commands.run import execute, local_fleet, open_fanout
    from imageserving_fleet.fleet.context import Command, RunContext, resolve
    from imageserving_fleet.fleet.jobs import STATUS
    from imageserving_fleet.fleet.options import Options

    work = Path(tempfile.mkdtemp(prefix="isprof-"))
    with bench.Fleet(work, homes=args.homes, forks=50, agent="wrapper") as lab:  # type: ignore[attr-defined]
        files = lab.write_inputs(args.hosts)
        def context(persist: float) -> RunContext:
            options = Options(inventory=(str(files["inventory"]),), ssh_config=str(lab.sshd.ssh_config_path),
                              persist=persist)
            return resolve(options, os.environ, Command.STATUS)

        def run(persist: float) -> tuple[float, float, int]:
            ctx = context(persist)
            cpu, wall = time.process_time(), time.monotonic()
            with open_fanout(ctx) as fanout:
                outcome = execute(ctx, fanout, STATUS)
            ok = sum(1 for r in outcome.results if r.status is not None and r.status.supervisor.state == "RUNNING")
            return time.process_time() - cpu, time.monotonic() - wall, ok

        run(0.0)  # warms the imports and the page cache
        cpu, wall, ok = run(0.0)
        print(f"direct, new connections: {args.hosts} hosts ({ok} RUNNING), wall {wall:.2f} s, "
              f"controller CPU {cpu / args.hosts * 1000:.2f} ms per host")
        # cProfile sees one thread: the hosts one after another in this one (paramiko's own
        # reader threads, where the key exchange's arithmetic runs, are not in the listing).
        ctx = context(0.0)
        prof = cProfile.Profile()
        with local_fleet(ctx) as fleet:
            prof.enable()
            for target in ctx.targets:
                fleet.run_one(target, STATUS, time.monotonic() + 30)
                fleet.release(target.name)
            prof.disable()
        if args.persist > 0:
            pdir = str(work / "p")
            os.environ.update({"IMAGESERVING_PERSIST_DIR": pdir})
            for label in ("through the holder, cold", "through the holder, warm"):
                before = _holder_cpu(pdir) if os.path.isdir(pdir) else 0.0
                cpu, wall, ok = run(args.persist)
                held = _holder_cpu(pdir) - before
                print(f"{label}: wall {wall:.2f} s ({ok} RUNNING), this process {cpu / args.hosts * 1000:.2f} ms "
                      f"+ holder {held / args.hosts * 1000:.2f} ms CPU per host")
            from imageserving_fleet.fleet.persist.client import stop_holder

            stop_holder()
        out = io.StringIO()
        pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(args.top)
        print(out.getvalue())
    return 0


if __name__ == "__main__":
    sys.exit(main())
