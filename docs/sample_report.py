"""Writes the sample report behind docs/report.png: 14 made-up hosts with 12 runs of history.

    python docs/sample_report.py /tmp/sample.html
    chromium --headless --no-sandbox --hide-scrollbars --screenshot=docs/report.png \
        --window-size=1200,900 file:///tmp/sample.html

Made-up data, because a loopback test fleet has no leak or crash loop to show; the page is
rendered by the same code as `imageserving-fleet report`.
"""

from __future__ import annotations

import random
import sys

from imageserving_fleet.fleet.reports.formats import render
from imageserving_fleet.fleet.reports.model import build_report
from imageserving_fleet.fleet.reports.trends import Sample, trend
from imageserving_fleet.fleet.results import HostResult, Result

MiB = 2**20


def component(rng: random.Random, cid: str, state: str = "RUNNING", uptime: float = 3600.0,
              restarts: int = 0) -> dict[str, object]:
    running = state == "RUNNING"
    return {"id": cid, "description": cid, "state": state, "pid": rng.randint(2000, 60000) if running else None,
            "uptime_s": uptime if running else None, "rss_bytes": rng.randint(80, 900) * MiB if running else None,
            "restarts": restarts, "last_exit": None, "message": ""}


def status(host: str, comps: list[dict[str, object]]) -> dict[str, object]:
    return {"schema": 1, "host": host, "agent_version": "0.1.0", "time": "2026-11-27T06:00:00Z",
            "supervisor": {"state": "RUNNING", "pid": 1200, "uptime_s": 864000.0, "rss_bytes": 19 * MiB},
            "components": comps, "message": ""}


def main(path: str) -> None:
    rng = random.Random(7)
    results, trends = [], {}
    for i in range(1, 15):
        host = f"is{i:02d}.prod.example.com"
        if i == 7:
            results.append(HostResult(host, Result.UNREACHABLE, "timeout: no answer within --timeout 30s", None, 30.0))
            continue
        comps = [component(rng, "ps", uptime=86400 * 9 + i * 977), component(rng, "is", uptime=86400 * 2 + i * 313),
                 component(rng, "svg", uptime=86400 * 9 + i * 41)]
        result, reason = Result.OK, ""
        if i == 3:
            comps[2] = component(rng, "svg", "BACKOFF", restarts=4)
            result, reason = Result.DEGRADED, "not RUNNING: svg BACKOFF"
        results.append(HostResult(host, result, reason, status(host, comps), 0.3))
        for comp in comps:
            if comp["rss_bytes"] is None:
                continue
            cid, rss, pid = str(comp["id"]), int(comp["rss_bytes"]), int(comp["pid"])  # type: ignore[call-overload]
            leak = i == 5 and cid == "is"
            restarted = i == 11 and cid == "ps"
            samples = []
            for run in range(12):
                value = rss - (11 - run) * 9 * MiB if leak else rss + rng.randint(-12, 12) * MiB
                samples.append(Sample(run, "RUNNING", pid if not restarted or run == 11 else pid - 7, value, 0))
            trends[(host, cid)] = trend(samples)
    report = build_report(results, "2026-11-27T06:00:00Z", title="Image Serving — production", trends=trends,
                          history_runs=12)
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(render(report, "html"))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "sample-report.html")
