#!/usr/bin/env python3
"""Benchmark of the live fleet, side by side in one run: the exporter, the watch view, /metrics.

    python bench/live.py                  # 200 hosts; writes docs/bench-live.md
    python bench/live.py --hosts 50 --supervisor-seconds 60 --output /tmp/live.md

The fleet is bench/fleet.py's: one real sshd on loopback and N logical hosts (inventory aliases of
127.0.0.1:<port>) over --homes (50) running Server Supervisors, each supervising `sleep infinity`.
The agent on the hosts is tests/fleet/fleetlab.py's wrapper of this tree (no venv to build).

Measured, in this process (the controller), with the library the CLI commands use:
- the exporter's poll round of every host, the first (new connections) and the next ones (kept
  connections): wall time and the controller's CPU (getrusage of this process: sshd and the
  agents are other processes), and the snapshot's rendering time;
- the scrape latency of the exporter's /metrics at N hosts (a real HTTP GET over loopback from a
  fresh connection; median and max of 30, both encodings) and its size;
- one watch refresh at N hosts: the frame (change detection) and the rich rendering of the view
  into a 200 x 60 screen (CPU of the refresh, median of 20);
- meanwhile, two extra supervisors side by side: one serving /metrics, scraped every 15 s, one
  without a listener: CPU seconds and RSS over --supervisor-seconds.
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

T0 = time.monotonic()


def log(msg: str) -> None:
    print(f"[{time.monotonic() - T0:7.1f}s] {msg}", file=sys.stderr, flush=True)


def cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def proc_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def get(url: str, accept: str | None = None) -> tuple[float, int]:
    req = urllib.request.Request(url, headers={"Accept": accept} if accept else {})
    started = time.perf_counter()
    with urllib.request.urlopen(req, timeout=10) as resp:
        size = len(resp.read())
    return time.perf_counter() - started, size


class SupervisorPair:
    """Two supervisors of `sleep infinity`: one with supervisor.metrics.listen, scraped every 15 s."""

    def __init__(self, work: Path, agent: Path, seconds: float) -> None:
        from fleet import SLEEPER_YAML

        from tests.fleet.fleetlab import free_port

        self.work, self.agent, self.seconds = work, agent, seconds
        self.port = free_port()
        self.homes = {"listener": work / "sup-listener", "none": work / "sup-none"}
        (work / "sup-listener.yaml").write_text(f'supervisor:\n  metrics: {{listen: "127.0.0.1:{self.port}"}}\n'
                                                + SLEEPER_YAML)
        (work / "sup-none.yaml").write_text(SLEEPER_YAML)
        self.result: dict[str, Any] = {}
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _agent(self, name: str, *args: str) -> None:
        subprocess.run([str(self.agent), "--home", str(self.homes[name]), "--config",
                        str(self.work / f"sup-{name}.yaml"), *args], capture_output=True, timeout=120, check=True)

    def _pid(self, name: str) -> int:
        return int((self.homes[name] / "run" / "supervisor.pid").read_text())

    def start(self) -> SupervisorPair:
        for name in self.homes:
            self._agent(name, "start")
        self.thread.start()
        return self

    def _run(self) -> None:
        pids = {name: self._pid(name) for name in self.homes}
        get(f"http://127.0.0.1:{self.port}/metrics")  # the first scrape loads prometheus_client's renderers
        before = {name: proc_cpu(pid) for name, pid in pids.items()}
        started, scrapes = time.monotonic(), 0
        while time.monotonic() - started < self.seconds:
            get(f"http://127.0.0.1:{self.port}/metrics")
            scrapes += 1
            time.sleep(min(15.0, max(0.0, self.seconds - (time.monotonic() - started))))
        wall = time.monotonic() - started
        for name, pid in pids.items():
            used = proc_cpu(pid) - before[name]
            self.result[name] = {"cpu_s": used, "cpu_percent": 100 * used / wall, "rss_bytes": proc_rss(pid)}
        self.result["seconds"], self.result["scrapes"] = wall, scrapes

    def stop(self) -> None:
        for name in self.homes:
            try:
                self._agent(name, "stop")
            except subprocess.SubprocessError:
                pass


def measure(n: int, homes: int, forks: int, supervisor_seconds: float, rounds: int) -> dict[str, Any]:
    from fleet import Fleet as BenchFleet
    from rich.console import Console

    from imageserving_fleet.fleet.exporter import Exporter
    from imageserving_fleet.fleet.inventory import load_inventory
    from imageserving_fleet.fleet.jobs import STATUS as STATUS_JOB
    from imageserving_fleet.fleet.runner import Fleet
    from imageserving_fleet.fleet.ssh import Connector
    from imageserving_fleet.fleet.target import FleetOptions, make_target
    from imageserving_fleet.fleet.watch import WatchState, columns, view
    from imageserving_fleet.metrics_http import MetricsServer, bind
    from tests.fleet.fleetlab import free_port

    out: dict[str, Any] = {"hosts": n, "homes": homes, "forks": forks, "loadavg_before": os.getloadavg()}
    with tempfile.TemporaryDirectory(prefix="isb-live-") as tmp, BenchFleet(Path(tmp), homes, forks, agent="wrapper") as bf:
        pair = SupervisorPair(Path(tmp), bf.agent, supervisor_seconds).start()
        try:
            inputs = bf.write_inputs(n)
            inventory = load_inventory([str(inputs["inventory"])])
            options = FleetOptions(ssh_config=str(bf.sshd.ssh_config_path), connect_timeout=30)
            targets = [make_target(h.name, h.vars, options) for h in inventory.hosts]
            fleet = Fleet(Connector(options), forks=forks, timeout=120, keep_sessions=True)
            exporter = Exporter(targets, lambda line: None)
            fleet.on_result = lambda res: exporter.on_result(res, time.monotonic())
            polls = []
            for i in range(rounds):
                c0, w0 = cpu(), time.perf_counter()
                results = fleet.run(targets, STATUS_JOB, timeout=120)
                wall, used = time.perf_counter() - w0, cpu() - c0
                exporter.on_round(results)
                ok = sum(1 for r in results if str(r.result) == "ok")
                polls.append({"round": i + 1, "wall_s": wall, "controller_cpu_s": used, "ok": ok,
                              "render_s": exporter.render_s})
                log(f"round {i + 1}: {wall:.2f}s wall, {used:.2f}s controller CPU, {ok}/{n} ok, "
                    f"snapshot {exporter.render_s * 1000:.0f} ms")
            out["polls"] = polls
            server = MetricsServer(bind(f"127.0.0.1:{free_port()}"), exporter.snapshot, pages=exporter.pages()).start()
            scrapes: dict[str, Any] = {}
            for fmt, accept in (("prometheus", None), ("openmetrics", "application/openmetrics-text; version=1.0.0")):
                times, size = [], 0
                for _ in range(30):
                    t, size = get(server.url, accept)
                    times.append(t)
                scrapes[fmt] = {"median_ms": 1000 * statistics.median(times), "max_ms": 1000 * max(times),
                                "bytes": size}
                log(f"scrape {fmt}: median {scrapes[fmt]['median_ms']:.1f} ms, max {scrapes[fmt]['max_ms']:.1f} ms, "
                    f"{size} bytes")
            # the live page: rendered (with its JSON) by the first request of a round, then served as is
            page_url = server.url.removesuffix("metrics")
            first, page_size = get(page_url)
            again = [get(page_url)[0] for _ in range(10)]
            json_first, json_size = get(page_url + "snapshot.json")
            out["live_page"] = {"first_ms": 1000 * first, "cached_median_ms": 1000 * statistics.median(again),
                                "bytes": page_size, "json_bytes": json_size, "json_ms": 1000 * json_first}
            log(f"live page: first {first * 1000:.0f} ms (renders page + JSON), then {out['live_page']['cached_median_ms']:.1f}"
                f" ms; {page_size // 1024} KiB, JSON {json_size // 1024} KiB")
            server.stop()
            out["scrape"] = scrapes
            state = WatchState([t.name for t in targets])
            now = time.monotonic()
            for r in exporter.latest.values():
                state.update(r, now)
            refresh = []
            for _ in range(20):
                console = Console(file=io.StringIO(), width=200, height=60, force_terminal=True, color_system="truecolor")
                c0 = time.process_time()
                rows = state.frame(time.monotonic())
                console.print(view(rows, columns(rows, []), interval=2.0, height=60, clock="00:00:00"))
                refresh.append(time.process_time() - c0)
            out["watch_refresh_ms"] = {"median": 1000 * statistics.median(refresh), "max": 1000 * max(refresh)}
            log(f"watch refresh: median {out['watch_refresh_ms']['median']:.1f} ms CPU")
            fleet.close()
            pair.thread.join()
            out["supervisor"] = pair.result
            out["loadavg_after"] = os.getloadavg()
            log(f"supervisors: {json.dumps(pair.result)}")
        finally:
            pair.stop()
    return out


def write_markdown(res: dict[str, Any], path: Path) -> None:
    polls = res["polls"]
    kept = polls[1:] or polls
    sup = res["supervisor"]
    lines = [
        "# Live fleet figures (`python bench/live.py`)", "",
        f"Measured {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC on {platform.node()}: {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, one loopback sshd, {res['hosts']} logical hosts over {res['homes']} "
        f"supervisors, forks {res['forks']}. The hosts are asked with `imageserving status --json` over the kept "
        "connection (exec); the socket channel will take the hosts' share of the work down further. "
        f"Load average (1 min) before / after: {res['loadavg_before'][0]:.1f} / {res['loadavg_after'][0]:.1f}.", "",
        "| what | figure |", "|---|---:|",
        f"| exporter poll round, {res['hosts']} hosts, new connections: wall | {polls[0]['wall_s']:.2f} s |",
        f"| same: controller CPU | {polls[0]['controller_cpu_s']:.2f} s |",
        f"| exporter poll round over kept connections: wall (median of {len(kept)}) | "
        f"{statistics.median(p['wall_s'] for p in kept):.2f} s |",
        f"| same: controller CPU | {statistics.median(p['controller_cpu_s'] for p in kept):.2f} s |",
        f"| snapshot rendering (both encodings) | {statistics.median(p['render_s'] for p in kept) * 1000:.0f} ms |",
        f"| scrape of /metrics, {res['hosts']} hosts, text format: median / max of 30 | "
        f"{res['scrape']['prometheus']['median_ms']:.1f} / {res['scrape']['prometheus']['max_ms']:.1f} ms "
        f"({res['scrape']['prometheus']['bytes'] // 1024} KiB) |",
        f"| same, OpenMetrics | {res['scrape']['openmetrics']['median_ms']:.1f} / "
        f"{res['scrape']['openmetrics']['max_ms']:.1f} ms |",
        *([f"| live page `/`, first request of a round (renders the page and /snapshot.json) / then | "
            f"{res['live_page']['first_ms']:.0f} / {res['live_page']['cached_median_ms']:.1f} ms "
            f"({res['live_page']['bytes'] // 1024} KiB; JSON {res['live_page']['json_bytes'] // 1024} KiB) |"]
          if "live_page" in res else []),
        f"| watch refresh, {res['hosts']} hosts (frame + rendering, CPU, median of 20) | "
        f"{res['watch_refresh_ms']['median']:.1f} ms |",
        f"| supervisor with the /metrics listener, scraped every 15 s: CPU over {sup['seconds']:.0f} s "
        f"({sup['scrapes']} scrapes) | {sup['listener']['cpu_percent']:.3f} % ({sup['listener']['cpu_s']:.2f} s) |",
        f"| same supervisor without a listener | {sup['none']['cpu_percent']:.3f} % ({sup['none']['cpu_s']:.2f} s) |",
        f"| supervisor RSS with / without the listener | {sup['listener']['rss_bytes'] / 2**20:.1f} / "
        f"{sup['none']['rss_bytes'] / 2**20:.1f} MiB |",
        "", "Raw:", "", "```json", json.dumps(res, indent=1), "```", ""]
    path.write_text("\n".join(lines))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hosts", type=int, default=200)
    ap.add_argument("--homes", type=int, default=50)
    ap.add_argument("--forks", type=int, default=50)
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--supervisor-seconds", type=float, default=120.0)
    ap.add_argument("--output", type=Path, default=REPO / "docs" / "bench-live.md")
    args = ap.parse_args()
    res = measure(args.hosts, args.homes, args.forks, args.supervisor_seconds, args.rounds)
    write_markdown(res, args.output)
    log(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
