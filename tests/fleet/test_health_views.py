"""Held-down, health and configuration drift in the fleet's verdicts, table and reports (pure)."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from rich.console import Console

from imageserving_fleet.fleet.render import results_table
from imageserving_fleet.fleet.reports.formats import render_md
from imageserving_fleet.fleet.reports.html import render_html
from imageserving_fleet.fleet.reports.model import build_report
from imageserving_fleet.fleet.results import HostResult, Result, classify, config_digests
from imageserving_fleet.schema import parse_status


def doc(digest: str = "a" * 64, **is_fields: Any) -> dict[str, Any]:
    comps = [{"id": cid, "state": "RUNNING", "pid": 10 + i, "uptime_s": 5.0, "rss_bytes": 2**20, "restarts": 0,
              "health": "healthy", "held": False} for i, cid in enumerate(("ps", "is", "svg"))]
    comps[1].update(is_fields)
    return {"schema": 1, "host": "h", "agent_version": "0.1.0", "time": "2026-12-01T00:00:00Z",
            "supervisor": {"state": "RUNNING", "pid": 9, "config_digest": digest, "socket": "/h/run/s.sock"},
            "components": comps, "message": ""}


HELD = {"state": "STOPPED", "pid": None, "held": True, "message": "stopped by operator", "health": None}


@pytest.mark.parametrize(("command", "code", "is_fields", "result", "reason"), [
    ("status", 0, HELD, Result.OK, "held down: is"),
    ("status", 1, {"state": "STOPPED", "pid": None}, Result.DEGRADED, "not RUNNING: is STOPPED"),
    ("stop", 0, HELD, Result.OK, "held down: is"),
    ("reload", 0, HELD, Result.OK, "held down: is"),
    ("start", 0, {}, Result.OK, ""),
    ("reload", 6, {}, Result.FAILED, "invalid configuration"),
])
def test_held_down_is_no_fault_of_the_host(command: str, code: int, is_fields: dict[str, Any], result: Result,
                                           reason: str) -> None:
    stdout = b"" if code == 6 else json.dumps(doc(**is_fields)).encode()
    stderr = b"imageserving: invalid configuration: /x.yaml:3: components.is: bad\n" if code == 6 else b""
    res = classify("h", command, code, stdout, stderr, 0.1)
    assert res.result == result and reason in res.reason


def results(*docs: dict[str, Any]) -> list[HostResult]:
    return [HostResult(f"h{i}", Result.OK, "", parse_status(d)) for i, d in enumerate(docs)]


def test_config_digests_only_when_hosts_differ() -> None:
    same = results(doc(), doc())
    assert config_digests(same) == {}
    drift = results(doc(), doc(), doc("b" * 64))
    assert config_digests(drift) == {"h0": "aaaaaaaa", "h1": "aaaaaaaa", "h2": "bbbbbbbb"}
    assert config_digests([*drift, HostResult("down", Result.UNREACHABLE, "timeout")]) == config_digests(drift)


def _text(table: Any) -> str:
    console = Console(width=250, record=True)
    console.print(table)
    return console.export_text()


def test_table_shows_held_unhealthy_and_a_config_column_on_drift() -> None:
    unhealthy = doc(health="unhealthy", health_failures=2)
    assert "config" not in _text(results_table(results(doc(), doc())))
    text = _text(results_table(results(doc(**HELD), unhealthy, copy.deepcopy(doc("b" * 64)))))
    assert "config" in text and "bbbbbbbb" in text
    assert "held" in text and "unhealthy×2" in text


def test_reports_show_held_unhealthy_and_drift() -> None:
    report = build_report(results(doc(**HELD), doc(health="unhealthy"), doc("b" * 64)), "2026-12-01T00:00:00Z")
    page = render_html(report)
    assert 'id="config-drift"' in page and "config bbbbbbbb" in page
    assert ">held<" in page and ">unhealthy<" in page
    md = render_md(report)
    assert "(held)" in md and "(unhealthy)" in md and "(config bbbbbbbb)" in md
    assert 'id="config-drift"' not in render_html(build_report(results(doc(), doc()), "2026-12-01T00:00:00Z"))


def test_fleet_cell_shows_pss_where_the_agent_gives_it_else_rss() -> None:
    from imageserving_fleet.fleet.render import component_cell
    from imageserving_fleet.schema import ComponentStatus

    with_pss = component_cell(ComponentStatus("is", state="RUNNING", rss_bytes=300 * 2**20, pss_bytes=100 * 2**20))
    assert "100.0 MiB" in with_pss.plain and "300.0 MiB" not in with_pss.plain
    older_agent = component_cell(ComponentStatus("is", state="RUNNING", rss_bytes=300 * 2**20))
    assert "300.0 MiB" in older_agent.plain
