"""The report's pure core and its small I/O pieces: slices, trends, the model, the formats, the HTML
page, the SQLite history and the atomic write. Table-driven where the logic is a table."""

from __future__ import annotations

import csv
import html
import io
import json
import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest

from imageserving_fleet.errors import UsageError
from imageserving_fleet.fleet.commands.report import make_request
from imageserving_fleet.fleet.reports import history as history_mod
from imageserving_fleet.fleet.reports.formats import md, render, render_csv, render_md
from imageserving_fleet.fleet.reports.history import History, HistoryError
from imageserving_fleet.fleet.reports.html import _assets, render_html
from imageserving_fleet.fleet.reports.model import (
    ReportInputError,
    build_report,
    from_document,
    merge,
    plain,
    quiet_summary,
    to_document,
)
from imageserving_fleet.fleet.reports.slices import Slice, parse_slice, select_slice, slice_index
from imageserving_fleet.fleet.reports.trends import (
    GROWTH_MIN_SAMPLES,
    Sample,
    Trend,
    memory_only_grows,
    restarts_between,
    sparkline,
    trend,
)
from imageserving_fleet.fleet.results import HostResult, Result
from imageserving_fleet.schema import AgentStatus, parse_status

MiB = 2**20


def comp(cid: str, state: str = "RUNNING", rss: int | None = 100 * MiB, pid: int | None = 10, restarts: int = 0,
         message: str = "") -> dict[str, Any]:
    return {"id": cid, "description": cid, "state": state, "pid": pid, "uptime_s": 60.0, "rss_bytes": rss,
            "restarts": restarts, "last_exit": None, "message": message}


def status(host: str, *comps: dict[str, Any]) -> AgentStatus:
    return parse_status({"schema": 1, "host": host, "agent_version": "0.1.0", "time": "2026-11-26T17:00:00Z",
            "supervisor": {"state": "RUNNING", "pid": 1}, "components": list(comps), "message": ""})


def ok(host: str, rss: int = 100 * MiB, pid: int = 10, restarts: int = 0) -> HostResult:
    return HostResult(host, Result.OK, "", status(host, comp("ps", rss=rss, pid=pid), comp("is", rss=rss * 2, pid=pid + 1,
                                                                                       restarts=restarts),
                                                    comp("svg", rss=rss // 2, pid=pid + 2)), 0.2)


def fleet() -> list[HostResult]:
    return [ok("a"), HostResult("b", Result.DEGRADED, "not RUNNING: svg FATAL",
                                status("b", comp("ps"), comp("is"), comp("svg", "FATAL", rss=None, pid=None))),
            HostResult("c", Result.UNREACHABLE, "refused: connection refused"),
            HostResult("d", Result.FAILED, "Server Supervisor is not running", status("d"))]


# ------------------------------------------------------------------ slices
@pytest.mark.parametrize(("text", "expected"), [("1/1", Slice(1, 1)), ("2/4", Slice(2, 4)), (" 3 / 3 ", Slice(3, 3))])
def test_parse_slice(text: str, expected: Slice) -> None:
    assert parse_slice(text) == expected


@pytest.mark.parametrize("text", ["0/3", "4/3", "1/0", "a/b", "1", "-1/2", "1/2/3", ""])
def test_parse_slice_refuses(text: str) -> None:
    with pytest.raises(UsageError):
        parse_slice(text)


def test_slices_partition_the_hosts_stably_and_evenly() -> None:
    names = [f"is{i:04d}.example.com" for i in range(3000)]
    parts = [select_slice(names, Slice(k, 4), str) for k in range(1, 5)]
    assert sorted(n for p in parts for n in p) == sorted(names)           # each host exactly once
    assert all(p == [n for n in names if n in set(p)] for p in parts)     # inventory order kept
    assert all(600 < len(p) < 900 for p in parts)                         # roughly even
    # Depends on the name only: a host keeps its slice whatever else is in the inventory.
    assert select_slice(names[:10], Slice(2, 4), str) == [n for n in names[:10] if n in set(parts[1])]
    assert slice_index("is01.example.com", 4) == slice_index("is01.example.com", 4)
    assert slice_index("is01.example.com", 1) == 1
    assert select_slice(names, None, str) == names


# ------------------------------------------------------------------ trends
S = Sample


@pytest.mark.parametrize(("prev", "cur", "expected"), [
    (S(1, pid=10, restarts=0), S(2, pid=10, restarts=0), 0),
    (S(1, pid=10, restarts=0), S(2, pid=11, restarts=0), 1),      # explicit restart: pid moved, counter not
    (S(1, pid=10, restarts=2), S(2, pid=12, restarts=5), 3),      # three crashes between two runs
    (S(1, pid=10, restarts=4), S(2, pid=20, restarts=1), 1),      # supervisor restarted: counter began again
    (S(1, pid=None, restarts=1), S(2, pid=10, restarts=1), 0),    # was down, now up: no evidence of a restart
    (S(1, pid=10, restarts=None), S(2, pid=10, restarts=None), 0),
])
def test_restarts_between(prev: Sample, cur: Sample, expected: int) -> None:
    assert restarts_between(prev, cur) == expected


def _grow(values: list[int], pid: int = 7) -> list[Sample]:
    return [S(i, "RUNNING", pid, v, 0) for i, v in enumerate(values)]


@pytest.mark.parametrize(("values", "grows"), [
    ([100, 101, 102, 103, 104, 105], True),
    ([100, 102, 102, 104, 104, 106], True),            # up in half of the steps or more, never down
    ([100, 100, 102, 102, 104, 104], False),           # up in fewer than half: a plateau, not a leak
    ([100, 101, 102, 103, 104], False),                 # too few samples to call it a leak
    ([100, 101, 102, 101, 104, 105], False),            # went down once
    ([100, 100, 100, 100, 100, 101], False),            # one bump is not a trend
    ([100, 100, 100, 100, 100, 100], False),
    ([1000, 1001, 1002, 1003, 1004, 1005], False),      # < 1 %: noise
])
def test_memory_only_grows(values: list[int], grows: bool) -> None:
    assert GROWTH_MIN_SAMPLES == 6
    assert memory_only_grows(_grow(values)) is grows


def test_growth_counts_only_the_current_process() -> None:
    samples = _grow([100, 110, 120], pid=1) + _grow([50, 60, 70, 80, 90], pid=2)
    assert memory_only_grows(samples) is False  # the new process has 5 samples only
    assert memory_only_grows(samples + _grow([100], pid=2)) is True


def test_trend_with_gaps_restarts_and_flags() -> None:
    series: list[Sample | None] = [S(1, "RUNNING", 10, 100, 0), None, S(3, "RUNNING", 10, 110, 0),
                                   S(4, "RUNNING", 11, 90, 0)]
    t = trend(series)
    assert t == Trend(rss=(100, None, 110, 90), restarts=1, restarted=True, growing=False)
    assert trend([*series, S(5, "RUNNING", 11, 91, 0)]).restarted is False
    assert trend([*series, None]).restarted is False  # no sample now: nothing to flag on
    assert trend([S(1, "RUNNING", 10, 100, 0)]) == Trend(rss=(100,), restarts=0, restarted=False, growing=False)
    assert Trend.from_dict(t.to_dict()) == t
    assert Trend.from_dict({"rss": "x", "restarts": "y", "restarted": 1}) == Trend()


def test_sparkline_points() -> None:
    assert sparkline([]) == [] and sparkline([None, None]) == []
    (line,) = sparkline([0, 10], width=100, height=20, pad=0)
    assert line == "0.0,20.0 100.0,0.0"                       # min at the bottom, max at the top
    (flat,) = sparkline([5, 5, 5], width=10, height=20, pad=0)
    assert flat == "0.0,10.0 5.0,10.0 10.0,10.0"
    parts = sparkline([1, 2, None, 3], width=30, height=10, pad=0)
    assert len(parts) == 2 and parts[0] == "0.0,10.0 10.0,5.0"
    assert parts[1].count(",") == 2                              # a lone point becomes a short dash


# ------------------------------------------------------------------- model
def test_build_report_counts_and_exit_code() -> None:
    rep = build_report(fleet(), "2026-11-27T00:00:00Z")
    assert rep.summary.line() == "hosts=4 ok=1 degraded=1 failed=1 unreachable=1 skipped=0"
    assert rep.exit_code == 4 and [h.host for h in rep.problems] == ["b", "c", "d"]
    assert rep.component_ids == ["ps", "is", "svg"]
    cell = rep.cell(rep.hosts[1], "svg")
    assert cell is not None and cell.state == "FATAL" and cell.rss_bytes is None
    assert rep.cell(rep.hosts[2], "ps") is None and rep.max_rss("is") == 200 * MiB
    assert build_report([ok("a")], "t").exit_code == 0
    assert build_report([ok("a"), HostResult("x", Result.SKIPPED)], "t").exit_code == 2


def test_extra_components_come_after_the_known_ones() -> None:
    odd = HostResult("e", Result.OK, "", status("e", comp("cache"), comp("is")))
    assert build_report([odd, ok("a")], "t").component_ids == ["ps", "is", "svg", "cache"]


def test_json_document_round_trips_and_is_a_fleet_document() -> None:
    trends = {("a", "is"): Trend(rss=(1, 2, 3), restarts=1, restarted=True)}
    rep = build_report(fleet(), "2026-11-27T00:00:00Z", slice_label="2/3", trends=trends, history_runs=3)
    doc = json.loads(render(rep, "json"))
    assert doc["schema"] == 1 and doc["command"] == "report" and doc["slices"] == ["2/3"]
    assert set(doc["summary"]) == {"hosts", "ok", "degraded", "failed", "unreachable", "skipped"}
    assert set(doc["hosts"][0]) >= {"host", "result", "reason", "status", "elapsed_s"}
    assert doc["hosts"][0]["trends"]["is"]["restarted"] is True
    back = from_document(doc)
    assert back.hosts == rep.hosts and back.trends == rep.trends and back.slices == ("2/3",)
    assert to_document(back) == doc


@pytest.mark.parametrize(("doc", "says"), [
    ([], "schema 1"),
    ({"schema": True, "command": "report", "hosts": []}, "schema 1"),
    ({"schema": 1, "command": "restart", "hosts": []}, "command"),
    ({"schema": 1, "command": "report", "hosts": {}}, "hosts"),
    ({"schema": 1, "command": "report", "hosts": [{"result": "ok"}]}, "host name"),
    ({"schema": 1, "command": "report", "hosts": [{"host": "a", "result": "fine"}]}, "unknown result"),
    ({"schema": 1, "command": "report", "hosts": [{"host": "a", "result": "ok", "status": {"schema": 2}}]}, "status"),
])
def test_from_document_refuses_what_is_not_a_report(doc: Any, says: str) -> None:
    with pytest.raises(ReportInputError, match=says) as exc:
        from_document(doc, "slice7.json")
    assert "slice7.json" in str(exc.value)


def test_a_status_json_document_merges_too() -> None:
    doc = {"schema": 1, "command": "status", "summary": {}, "hosts": [ok("a").to_dict()]}
    assert [h.host for h in from_document(doc).hosts] == ["a"]


def test_merge_keeps_order_takes_the_newest_duplicate_and_names_missing_slices() -> None:
    one = build_report([ok("a"), ok("b")], "2026-11-27T00:00:00Z", slice_label="1/3",
                       trends={("b", "is"): Trend(rss=(1,))})
    two = build_report([ok("c"), HostResult("b", Result.UNREACHABLE, "timeout")], "2026-11-27T00:05:00Z",
                       slice_label="3/3")
    merged = merge([one, two])
    assert [h.host for h in merged.hosts] == ["a", "c", "b"]
    assert merged.hosts[2].result == Result.UNREACHABLE and ("b", "is") not in merged.trends
    assert merged.slices == ("1/3", "3/3") and merged.missing_slices() == ["2/3"]
    assert merged.generated == "2026-11-27T00:05:00Z" and merged.exit_code == 4
    assert merge([one, two], title="all").title == "all"
    assert build_report([ok("a")], "t").missing_slices() == []


def test_quiet_summary() -> None:
    assert quiet_summary(build_report([ok("a"), ok("b")], "t")) == []
    bad = HostResult("x\x1b[2J", Result.FAILED, "agent error: \x07bell\nnext")
    lines = quiet_summary(build_report([ok("a"), bad], "t"))
    assert lines[0] == "hosts=2 ok=1 degraded=0 failed=1 unreachable=0 skipped=0"
    assert lines[1] == "x\\x1b[2J: failed: agent error: \\x07bell\\x0anext"  # escaped, as journalctl shows them
    many = [HostResult(f"h{i}", Result.UNREACHABLE, "dns") for i in range(30)]
    lines = quiet_summary(build_report(many, "t"), limit=5)
    assert len(lines) == 1 + 5 + 1 and lines[-1] == "... and 25 more"
    assert quiet_summary(build_report([ok("a")], "t", interrupted=True))[1].startswith("interrupted")
    assert plain("a\u202eb") == "a\\u202eb"  # no right-to-left override games in a mail either


# ----------------------------------------------------------------- formats
def test_csv_one_row_per_host_and_component_and_no_formulas() -> None:
    evil = HostResult("=cmd|' /C calc'!A0", Result.FAILED, "+SUM(1)", None)
    rep = build_report([*fleet(), evil], "t", trends={("a", "is"): Trend(rss=(1, 2), restarts=2, restarted=True)})
    rows = list(csv.DictReader(io.StringIO(render_csv(rep))))
    assert len(rows) == 3 + 3 + 1 + 1 + 1
    a_is = next(r for r in rows if r["host"] == "a" and r["component"] == "is")
    assert a_is["rss_bytes"] == str(200 * MiB) and a_is["restarts_window"] == "2" and a_is["restarted"] == "1"
    assert next(r for r in rows if r["host"] == "c")["component"] == ""
    assert rows[-1]["host"].startswith("'=") and rows[-1]["reason"] == "'+SUM(1)"


def test_markdown_escapes_host_values() -> None:
    assert md("a|b") == "a\\|b" and md("<img src=x onerror=alert(1)>") == "&lt;img src=x onerror=alert(1)&gt;"
    assert md("[x](javascript:alert(1))") == "\\[x\\](javascript:alert(1))" and md("two\nlines") == "two lines"
    text = render_md(build_report([HostResult("h|1", Result.FAILED, "<b>boom</b>")], "t"))
    assert "| h\\|1 | failed |" in text and "<b>" not in text


# -------------------------------------------------------------------- html
def test_html_escapes_every_host_value() -> None:
    hostile = "<script>alert(1)</script>"
    evil = HostResult(hostile, Result.DEGRADED, f"reason {hostile}",
                      status(hostile, comp("ps", "FATAL", message='"><img src=x onerror=alert(2)>'),
                             comp(f"x{hostile}")))
    page = render_html(build_report([evil, ok("a")], "t", title=f"title {hostile}"))
    assert page.count("<script") == 1 and "<img" not in page
    assert page.count("&lt;script&gt;alert(1)&lt;/script&gt;") >= 5  # host, reason, component id, title...
    assert 'onerror=alert(2)' not in page.replace("&#34;&gt;&lt;img src=x onerror=alert(2)&gt;", "")


def test_html_allows_only_its_own_style_and_script() -> None:
    page = render_html(build_report(fleet(), "t"))
    css, js, css_hash, js_hash = _assets()
    csp = html.unescape(page.split('http-equiv="Content-Security-Policy" content="')[1].split('"')[0])
    assert f"script-src {js_hash}" in csp and f"style-src {css_hash}" in csp and "default-src 'none'" in csp
    assert f"<script>{js}</script>" in page and f"<style>{css}</style>" in page  # exactly the hashed bytes
    assert "http://" not in page and "https://" not in page


def test_html_bars_sparklines_and_flags() -> None:
    trends = {("a", "is"): Trend(rss=(1, 2, 3, 4, 5, 6), restarts=1, restarted=True, growing=True)}
    page = render_html(build_report([ok("a"), ok("b", rss=50 * MiB)], "t", trends=trends, history_runs=6))
    assert '<rect class="fill" width="100.0"' in page and '<rect class="fill" width="50.0"' in page
    assert page.count('<svg class="spark"') == 1 and "only grows" in page and ">restarted<" in page
    assert 'id="n-restarted">1<' in page and 'id="n-growing">1<' in page


def test_html_size_for_a_large_fleet() -> None:
    hosts = [ok(f"is{i:04d}.example.com", rss=(i % 50 + 1) * MiB) for i in range(1000)]
    trends = {(h.host, c): Trend(rss=tuple(range(24))) for h in hosts for c in ("ps", "is", "svg")}
    page = render_html(build_report(hosts, "t", trends=trends, history_runs=24))
    assert page.count('class="host-row') == 1000
    assert len(page) < 8 * 2**20


# ----------------------------------------------------------------- options
@pytest.mark.parametrize(("kw", "fmt"), [
    ({"fmt": None, "output": None}, "html"),
    ({"fmt": None, "output": "x/fleet.CSV"}, "csv"),
    ({"fmt": None, "output": "x/fleet.md"}, "md"),
    ({"fmt": "JSON", "output": "x/fleet.html"}, "json"),
    ({"fmt": None, "output": None, "as_json": True}, "json"),
])
def test_format_choice(kw: dict[str, Any], fmt: str, tmp_path: Path) -> None:
    if kw.get("output"):
        kw["output"] = str(tmp_path / Path(kw["output"]).name)
    assert make_request(**kw).fmt == fmt


@pytest.mark.parametrize("kw", [
    {"fmt": "pdf", "output": None},
    {"fmt": "html", "output": None, "as_json": True},
    {"fmt": None, "output": None, "keep_days": 3},
    {"fmt": None, "output": None, "history": "h.db", "keep_days": 0},
    {"fmt": None, "output": "/no/such/dir/r.html"},
    {"fmt": None, "output": None, "window": 1},
    {"fmt": None, "output": None, "slice_text": "3/2"},
])
def test_bad_options(kw: dict[str, Any]) -> None:
    with pytest.raises(UsageError):
        make_request(**kw)


# ----------------------------------------------------------------- history
def test_history_records_series_and_prunes(tmp_path: Path) -> None:
    with History(tmp_path / "h.sqlite") as h:
        assert h.journal_mode == "wal" and h.version == history_mod.VERSION
        h.record([ok("a", rss=100, pid=10)], 1000.0, "t1")
        h.record([HostResult("a", Result.UNREACHABLE, "timeout")], 2000.0, "t2")
        h.record([ok("a", rss=120, pid=20), ok("b")], 3000.0, "t3")
        series = h.series(["a", "b", "nobody"], window=10)
        assert [None if s is None else s.rss_bytes for s in series[("a", "ps")]] == [100, None, 120]
        assert len(series[("b", "is")]) == 1 and ("nobody", "ps") not in series
        assert trend(series[("a", "ps")]).restarted is True
        assert len(h.series(["a"], window=2)[("a", "ps")]) == 2
        assert h.prune(keep_days=1, now=1500.0 + 86400) == 1 and h.runs() == 2
        h.record([ok("a")], 4000.0 + 86400 * 3, "t4", keep_days=1)
        assert h.runs() == 1
        samples = h._db.execute("SELECT count(*) FROM component_samples").fetchone()[0]
        assert samples == 3  # the pruned runs' samples went with them


def test_history_migrates_an_old_file_and_refuses_a_newer_one(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
    db.execute("INSERT INTO schema_version VALUES (1)")
    for statement in history_mod.MIGRATIONS[0]:
        db.execute(statement)
    db.execute("INSERT INTO runs (started_at, generated, hosts, ok, degraded, failed, unreachable, skipped) "
               "VALUES (1, 't', 0, 0, 0, 0, 0, 0)")
    db.commit()
    db.close()
    with History(path) as h:
        assert h.version == history_mod.VERSION and h.runs() == 1
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT version FROM schema_version").fetchall() == [(history_mod.VERSION,)]
        assert conn.execute("SELECT name FROM sqlite_master WHERE name='runs_by_time'").fetchone()
        conn.execute("UPDATE schema_version SET version = 99")
    with pytest.raises(HistoryError, match="newer"):
        History(path)
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"not sqlite at all " * 100)
    with pytest.raises(HistoryError, match="junk.sqlite"):
        History(junk)


def test_history_survives_many_writers_at_once(tmp_path: Path) -> None:
    """Eight threads, each with its own connection, create and write one file at the same time."""
    path = tmp_path / "busy.sqlite"
    errors: list[BaseException] = []
    start = threading.Barrier(8)

    def writer(n: int) -> None:
        try:
            start.wait()
            with History(path) as h:
                for i in range(10):
                    h.record([ok(f"h{n}"), ok("shared")], 1000.0 + i, "t", keep_days=365)
                    h.series([f"h{n}"], 5)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("SELECT count(*) FROM runs").fetchone()[0] == 80
        assert conn.execute("SELECT count(*) FROM host_results WHERE host='shared'").fetchone()[0] == 80


@pytest.mark.parametrize("labels", [("2",), ("1/x",), ("1/2", "1/3"), ("0/99999999",), ("/", "a/b")])
def test_lying_slice_labels_in_merge_inputs_name_no_missing_slice(labels: tuple[str, ...]) -> None:
    doc = to_document(build_report([ok("a")], "2026-11-27T00:00:00Z"))
    doc["slices"] = list(labels)
    assert from_document(doc).missing_slices() == []  # and no IndexError / ValueError


def test_a_lone_surrogate_from_a_host_is_written_not_a_crash(tmp_path: Path) -> None:
    from imageserving_fleet.fleet.commands.report import deliver

    bad = HostResult("h\udc80", Result.FAILED, "agent error: \udc80")
    report = build_report([bad], "2026-11-27T00:00:00Z")
    for fmt in ("json", "csv", "md", "html"):
        out = tmp_path / f"r.{fmt}"
        request = make_request(fmt=fmt, output=str(out), quiet=False, as_json=False)
        assert deliver(report, request, io.StringIO(), io.StringIO()) == 2
        text = out.read_text(encoding="utf-8")
        # escaped as \udc80 (csv; md doubles the backslash so Markdown shows one), replaced (json, html)
        assert "h\\udc80" in text or "h\\\\udc80" in text or "h\ufffd" in text or "h?" in text
