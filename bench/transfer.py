#!/usr/bin/env python3
"""Benchmark: deploy's file transfer, SFTP against piped, over one kept connection to a loopback sshd.

    python bench/transfer.py                 # 15 files, 7.5 MB in all (a deploy's wheels), 5 rounds
    python bench/transfer.py --mb 200 --files 1 --rounds 2   # one large wheel

Sends the same random files with deploy/transfer.py's SFTP path and its piped path (the bytes on
stdin of a python3 receiver, sha256 checked on the host), the two alternating round by round, to a
throwaway directory on a test sshd (tests/sshd.py; internal-sftp, the login user's startup files
skipped). Prints, per method, the median wall time and the controller's CPU per round, and the
controller's peak RSS growth, to stdout as a Markdown table.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from imageserving_fleet.fleet.deploy import transfer  # noqa: E402
from imageserving_fleet.fleet.ssh import Connector  # noqa: E402
from imageserving_fleet.fleet.target import FleetOptions, make_target  # noqa: E402
from tests.sshd import SshServer  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=15)
    parser.add_argument("--mb", type=float, default=7.5, help="total size of the files")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="imageserving-bench-transfer-"))
    try:
        size = int(args.mb * 1e6 / args.files)
        local = []
        for n in range(args.files):
            path = work / f"f{n}.whl"
            with open(path, "wb") as handle:
                for _ in range(0, size, 1 << 20):
                    handle.write(os.urandom(min(1 << 20, size - handle.tell())))
            local.append(path)
        (work / "out").mkdir()
        files = [transfer.Outgoing.of(p, str(work / "out" / p.name)) for p in local]
        times: dict[str, list[tuple[float, float]]] = {"sftp": [], "piped": []}
        rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        with SshServer() as server:
            options = FleetOptions(ssh_config=str(server.ssh_config_path), connect_timeout=10.0)
            connector = Connector(options)
            session = connector.connect(make_target("h", server.inventory_vars(), options), time.monotonic() + 30)
            try:
                for _ in range(args.rounds):
                    for name in ("sftp", "piped"):
                        before = resource.getrusage(resource.RUSAGE_SELF)
                        started = time.monotonic()
                        if name == "sftp":
                            sent = transfer.send(session, files, time.monotonic() + 600)
                            assert sent.method == transfer.Transfer.SFTP, sent
                        else:
                            transfer.piped(session, files, time.monotonic() + 600)
                        wall = time.monotonic() - started
                        after = resource.getrusage(resource.RUSAGE_SELF)
                        cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
                        times[name].append((wall, cpu))
            finally:
                session.close()
                connector.close()
        rss = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0) / 1024
        print(f"{args.files} files, {args.mb:g} MB, {args.rounds} rounds, load average {os.getloadavg()[0]:.1f}\n")
        print("| method | wall (median) | controller CPU (median) |\n|---|---:|---:|")
        for name, rows in times.items():
            print(f"| {name} | {statistics.median(w for w, _ in rows):.2f} s | "
                  f"{statistics.median(c for _, c in rows):.2f} s |")
        print(f"\ncontroller peak RSS growth over the run: {rss:.0f} MB")
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
