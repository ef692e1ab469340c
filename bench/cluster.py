#!/usr/bin/env python3
"""Benchmark: `imageserving-fleet status` in-process, through `--cluster local:2`, and through a scheduler.

    python bench/cluster.py                    # 500 hosts and 10 hosts, each way, one run each
    python bench/cluster.py --hosts 200 --reps 2

Needs the `cluster` extra (`pip install -e '.[cluster]'`) and an OpenSSH server (tests/sshd.py).

The fleet: one real sshd on 127.0.0.1 and N logical hosts, inventory aliases of 127.0.0.1:<port>. Each
host's agent is a canned one (`cat` of a real status document, captured once from a real Server
Supervisor), so the figures are the fan-out's: the SSH connection, the exec, reading and classifying the
JSON, and in a cluster the shards' round trips. (A real agent adds the same ~100 ms of host CPU to every
way of running, on the host, not on the controller.)

Three ways, side by side, each a fresh controller process (interpreter start and imports included):

  in-process   `imageserving-fleet status --json` (--forks 50)
  local:2      the same with `--cluster local:2`: two worker processes started by the controller
  scheduler    the same with `--cluster tcp://...`: a `dask scheduler` and two `dask worker`s
               (--nthreads 1, no nanny) started beforehand by the benchmark, as an operator would

Each way works on 50 hosts at once (forks 50; two workers each running one shard of 25 hosts at a
time), because all of them share one sshd on this machine's two cores: more at once only makes the
handshakes time out, which says nothing about the fan-out.

Measured per run: wall time (spawn to exit) and the CPU (user + system) of the controller process itself,
from getrusage(RUSAGE_SELF) at its exit, threads included and its children excluded (local:2's workers are
its children: their CPU is shown apart, as are the scheduler's and the workers' of the third way, from
/proc). Per host: the difference between the N-host run and the 10-host run, divided by N - 10, so the
fixed costs (start, imports, the cluster's set-up) drop out; the 10-host run gives those fixed costs.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

CHILD = "IMAGESERVING_BENCH_CLUSTER_RUSAGE"  # where the controller writes its own rusage at exit
TICK = os.sysconf("SC_CLK_TCK")


def child_main() -> None:
    """Runs the fleet CLI in this process and records this process's own CPU at exit."""
    import atexit

    out = os.environ[CHILD]

    def record() -> None:
        me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        Path(out).write_text(json.dumps({"self": me.ru_utime + me.ru_stime, "children": kids.ru_utime + kids.ru_stime}))

    atexit.register(record)
    from imageserving_fleet.fleet.main import main

    main(sys.argv[1:])


def proc_cpu(pid: int) -> float:
    """CPU seconds (user + system) of a running process so far, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def canned_status(work: Path) -> Path:
    """A real status document: one supervisor started and asked once, then stopped."""
    from tests.fleet.fleetlab import agent_wrapper

    agent = agent_wrapper(work)
    home = work / "home"
    config = work / "agent.yaml"
    config.write_text("components:\n  is:\n    command: [sleep, infinity]\n    start_delay: 50ms\n")
    base = [str(agent), "--home", str(home), "--config", str(config)]
    subprocess.run([*base, "start"], check=True, capture_output=True, timeout=120)
    try:
        doc = subprocess.run([*base, "status", "--json"], check=True, capture_output=True, timeout=60).stdout
    finally:
        subprocess.run([*base, "stop"], capture_output=True, timeout=120)
    path = work / "status.json"
    path.write_bytes(doc)
    canned = work / "imageserving-canned"
    canned.write_text(f"#!/bin/sh\nexec cat {path}\n")
    canned.chmod(0o755)
    return canned


def inventory(work: Path, sshd: Any, agent: Path, n: int) -> Path:
    import yaml

    hosts = {f"h{i:05d}": {**sshd.inventory_vars(), "imageserving_command": str(agent)} for i in range(n)}
    path = work / f"hosts-{n}.yml"
    path.write_text(yaml.safe_dump({"all": {"hosts": hosts}}))
    return path


def run(way: str, n: int, inv: Path, sshd: Any, cluster_address: str | None, watch: list[int]) -> dict[str, Any]:
    rusage = Path(tempfile.mktemp(prefix="rusage-"))
    argv = [sys.executable, __file__, "-i", str(inv), "--ssh-config", str(sshd.ssh_config_path), "-f", "50",
            "status", "--json"]
    if cluster_address:
        argv += ["--cluster", cluster_address]
    env = {k: v for k, v in os.environ.items() if k not in ("SSH_AUTH_SOCK", "IMAGESERVING_CLUSTER")}
    env.update({CHILD: str(rusage), "PYTHONPATH": str(REPO)})
    env["IMAGESERVING_PERSIST"] = "0"  # every run cold: no connection holder, no connections kept on workers
    before = sum(proc_cpu(p) for p in watch)
    started = time.monotonic()
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=1800)
    wall = time.monotonic() - started
    others = sum(proc_cpu(p) for p in watch) - before
    doc = json.loads(proc.stdout)
    ok = doc["summary"]["ok"]
    if ok != n:  # reported, not hidden: the table says how many answered
        bad = [(h["host"], h["result"], h["reason"]) for h in doc["hosts"] if h["result"] != "ok"][:3]
        print(f"  {way} {n}: only {ok} of {n} hosts ok, e.g. {bad}", file=sys.stderr, flush=True)
    cpu = json.loads(rusage.read_text())
    rusage.unlink()
    return {"way": way, "hosts": n, "ok": ok, "wall": wall, "controller_cpu": cpu["self"],
            "workers_cpu": cpu["children"] + others,
            "workers": dict(collections.Counter(h["worker"] for h in doc["hosts"] if h.get("worker")))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hosts", type=int, default=500)
    parser.add_argument("--small", type=int, default=10)
    parser.add_argument("--reps", type=int, default=1)
    parser.add_argument("--ways", default="in-process,local:2,scheduler", help="a subset, comma-separated")
    args = parser.parse_args()

    from tests.fleet.daskcluster import DaskCluster
    from tests.sshd import SshServer

    with tempfile.TemporaryDirectory(prefix="bench-cluster-") as tmp, SshServer() as sshd:
        work = Path(tmp)
        agent = canned_status(work)
        invs = {n: inventory(work, sshd, agent, n) for n in (args.small, args.hosts)}
        # One shard (25 hosts) at a time per worker: 50 hosts at once in all, as --forks 50 in-process.
        with DaskCluster(work, nthreads=1) as cluster:
            cluster.add_worker("one")
            cluster.add_worker("two")
            cluster.wait_workers({"one", "two"})
            assert cluster.scheduler is not None
            watch = [cluster.scheduler.pid, *(w.process.pid for w in cluster.workers.values())]
            ways = [w for w in [("in-process", None, []), ("local:2", "local:2", []),
                                ("scheduler", cluster.address, watch)] if w[0] in args.ways.split(",")]
            rows = []
            for rep in range(args.reps):
                for n in (args.small, args.hosts):
                    for way, address, w in ways:
                        print(f"rep {rep + 1}: {way}, {n} hosts", file=sys.stderr, flush=True)
                        rows.append(run(way, n, invs[n], sshd, address, w))
                        print(f"  {rows[-1]}", file=sys.stderr, flush=True)
            parts = fixed_parts(cluster.address)
    print_table(rows, args.small, args.hosts)
    print("\nwhere a cluster run's fixed cost goes (controller side, medians):")
    for what, seconds in parts.items():
        print(f"- {what}: {seconds * 1000:.1f} ms")


def fixed_parts(address: str, rounds: int = 20) -> dict[str, float]:
    """The pieces of a cluster run's fixed cost, timed in a fresh interpreter: import, connect, round trip."""
    code = f'''
import json, statistics, time
t = time.perf_counter(); import distributed; imp = time.perf_counter() - t
t = time.perf_counter(); c = distributed.Client({address!r}, set_as_default=False); conn = time.perf_counter() - t
t = time.perf_counter(); c.scheduler_info(n_workers=-1); info = time.perf_counter() - t
trips = []
for i in range({rounds}):
    t = time.perf_counter(); c.submit(int, i, pure=False).result(); trips.append(time.perf_counter() - t)
c.close()
print(json.dumps({{"import distributed": imp, "connect a client to the scheduler": conn,
                  "scheduler_info (workers and resources)": info,
                  "one shard's round trip (submit to result, an empty task)": statistics.median(trips)}}))
'''
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True)
    return dict(json.loads(out.stdout))


def print_table(rows: list[dict[str, Any]], small: int, big: int) -> None:
    def best(way: str, n: int, key: str) -> float:
        return min(r[key] for r in rows if r["way"] == way and r["hosts"] == n)

    print(f"| way | wall {small} | wall {big} | controller CPU {small} | controller CPU {big} "
          f"| controller CPU per host | workers' CPU {big} | wall per host | hosts ok |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for way in dict.fromkeys(r["way"] for r in rows):
        per_host = (best(way, big, "controller_cpu") - best(way, small, "controller_cpu")) / (big - small)
        wall_per_host = (best(way, big, "wall") - best(way, small, "wall")) / (big - small)
        print(f"| {way} | {best(way, small, 'wall'):.2f} s | {best(way, big, 'wall'):.2f} s "
              f"| {best(way, small, 'controller_cpu'):.2f} s | {best(way, big, 'controller_cpu'):.2f} s "
              f"| {per_host * 1000:.2f} ms | {best(way, big, 'workers_cpu'):.2f} s | {wall_per_host * 1000:.1f} ms "
              f"| {min(r['ok'] for r in rows if r['way'] == way and r['hosts'] == big)}/{big} |")
    base = best("in-process", small, "wall") if any(r["way"] == "in-process" for r in rows) else 0.0
    for way in dict.fromkeys(r["way"] for r in rows):
        if way != "in-process" and base:
            print(f"\nfixed cost of a run through {way} at {small} hosts: "
                  f"{best(way, small, 'wall') - base:+.2f} s wall over in-process", end="")
    print()


if __name__ == "__main__":
    if os.environ.get(CHILD):
        child_main()
    else:
        main()
