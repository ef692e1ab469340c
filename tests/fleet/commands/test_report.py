"""`report` (commands/report.py) on hosts played by MockConnector: the slice, the history, the file, the code."""

from __future__ import annotations

import io
import json
from pathlib import Path

from imageserving_fleet.fleet.commands.report import make_request, run_report, sliced
from imageserving_fleet.fleet.context import Command
from imageserving_fleet.fleet.reports.slices import select_slice

from .fakehosts import FakeHosts

NAMES = [f"h{i}" for i in range(8)]


def test_a_slice_runs_only_its_hosts_and_the_report_says_so(tmp_path: Path) -> None:
    hosts = FakeHosts(NAMES)
    hosts.states["h3"]["svg"] = "FATAL"
    request = make_request(fmt=None, output=str(tmp_path / "r.json"), history=str(tmp_path / "h.db"),
                           slice_text="2/3")
    ctx = sliced(hosts.context(tmp_path, Command.REPORT), request)
    mine = select_slice(NAMES, request.slice, lambda n: n)
    assert [t.name for t in ctx.targets] == mine and 0 < len(mine) < len(NAMES)
    out, err = io.StringIO(), io.StringIO()
    with hosts.fleet() as fleet:
        code = run_report(ctx, fleet, request, out, err)
    assert sorted(h for h, _ in hosts.calls) == sorted(mine)
    doc = json.loads((tmp_path / "r.json").read_text())
    assert [h["host"] for h in doc["hosts"]] == mine and doc["slices"] == ["2/3"]
    assert code == (2 if "h3" in mine else 0) and err.getvalue() == ""
    assert f"report: {tmp_path / 'r.json'} (json," in out.getvalue()
    assert (tmp_path / "h.db").exists()  # the run was recorded


def test_quiet_and_all_ok_prints_nothing(tmp_path: Path) -> None:
    hosts = FakeHosts(["a", "b"])
    request = make_request(fmt="md", output=None, quiet=True)
    out = io.StringIO()
    with hosts.fleet() as fleet:
        code = run_report(sliced(hosts.context(tmp_path, Command.REPORT), request), fleet, request, out, io.StringIO())
    assert code == 0 and out.getvalue() == ""
