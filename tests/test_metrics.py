"""Pure parts of the live fleet: metrics families, content negotiation, --listen and --interval,
the exporter's change lines, and the watch view's change detection and fitting."""

from __future__ import annotations

import math
import os
import subprocess
from typing import Any

import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families

from imageserving_fleet.errors import UsageError
from imageserving_fleet.fleet.exporter import describe_change
from imageserving_fleet.fleet.poller import check_interval
from imageserving_fleet.fleet.results import HostResult, Result
from imageserving_fleet.fleet.watch import CHROME_LINES, Row, WatchState, fit
from imageserving_fleet.metrics import (
    OPENMETRICS,
    PROMETHEUS,
    HostSample,
    agent_families,
    fleet_families,
    healthy,
    negotiate,
    render,
)
from imageserving_fleet.metrics_http import parse_listen
from imageserving_fleet.schema import parse_status


def doc(**comps: dict[str, Any]) -> dict[str, Any]:
    return {"schema": 1, "host": "is01", "agent_version": "0.1.0", "time": "2026-11-26T17:00:00Z",
            "supervisor": {"state": "RUNNING", "pid": 10, "uptime_s": 100.0, "rss_bytes": 19_000_000},
            "components": [{"id": cid, "state": "RUNNING", "pid": 11, "uptime_s": 40.0, "rss_bytes": 5000,
                            "restarts": 0, **c} for cid, c in comps.items()], "message": ""}


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_agent_families_names_values_and_types() -> None:
    status = parse_status(doc(**{"is": {"restarts": 3}, "ps": {"state": "BACKOFF", "pid": None, "uptime_s": None}}))
    text = render(agent_families(status, 0.0), OPENMETRICS).decode()
    got = samples(text)
    start = 1795712400.0  # 2026-11-26T17:00:00Z
    assert got[("imageserving_agent_info", (("version", "0.1.0"),))] == 1
    assert got[("imageserving_supervisor_up", ())] == 1
    assert got[("imageserving_supervisor_start_time_seconds", ())] == start - 100
    assert got[("imageserving_component_up", (("component", "is"),))] == 1
    assert got[("imageserving_component_up", (("component", "ps"),))] == 0
    assert got[("imageserving_component_restarts_total", (("component", "is"),))] == 3
    assert got[("imageserving_component_start_time_seconds", (("component", "is"),))] == start - 40
    assert ("imageserving_component_start_time_seconds", (("component", "ps"),)) not in got
    assert got[("imageserving_component_state", (("component", "ps"), ("imageserving_component_state", "BACKOFF")))] == 1
    assert got[("imageserving_component_state", (("component", "ps"), ("imageserving_component_state", "RUNNING")))] == 0
    assert "# TYPE imageserving_component_state stateset" in text and text.endswith("# EOF\n")
    classic = render(agent_families(status, 0.0), PROMETHEUS).decode()
    assert "# TYPE imageserving_component_state gauge" in classic and "# EOF" not in classic


def test_supervisor_down_has_no_component_series() -> None:
    status = parse_status({"schema": 1, "host": "x", "agent_version": "0.1.0", "time": "",
                           "supervisor": {"state": "STOPPED"}, "components": [], "message": "not running"})
    text = render(agent_families(status, 5.0)).decode()
    assert "imageserving_supervisor_up 0.0" in text and "imageserving_component_up{" not in text


def test_fleet_families_unreachable_host_is_down_and_has_no_components() -> None:
    ok = HostSample("a", "ok", parse_status(doc(**{"is": {}})))
    down = HostSample("b", "unreachable", None)
    got = samples(render(fleet_families([ok, down], 0.0), OPENMETRICS).decode())
    assert got[("imageserving_host_up", (("host", "a"),))] == 1
    assert got[("imageserving_host_up", (("host", "b"),))] == 0
    assert got[("imageserving_host_result", (("host", "b"), ("imageserving_host_result", "unreachable")))] == 1
    assert got[("imageserving_component_up", (("component", "is"), ("host", "a")))] == 1
    assert not [k for k in got if ("host", "b") in k[1] and k[0].startswith("imageserving_component")]


@pytest.mark.parametrize(("running", "health", "want"), [
    (True, None, 1), (False, None, 0), (True, "healthy", 1), (True, "unhealthy", 0), (True, "starting", 0),
    (False, "healthy", 0)])
def test_healthy(running: bool, health: str | None, want: int) -> None:
    assert healthy(running, health) == want


@pytest.mark.parametrize(("accept", "want"), [
    (None, PROMETHEUS), ("", PROMETHEUS), ("text/plain;version=0.0.4", PROMETHEUS),
    ("application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5", OPENMETRICS),
    ("application/openmetrics-text; version=0.0.1; q=0.75", OPENMETRICS),
    ("application/openmetrics-text;q=0", PROMETHEUS), ("application/openmetrics-text;q=nan", PROMETHEUS),
    ("application/openmetrics-text;q=x", PROMETHEUS)])
def test_negotiate(accept: str | None, want: str) -> None:
    assert negotiate(accept) == want


@pytest.mark.parametrize(("text", "want"), [
    ("127.0.0.1:9464", ("127.0.0.1", 9464)), (":9464", ("0.0.0.0", 9464)), ("[::1]:80", ("::1", 80)),
    ("localhost:1", ("localhost", 1)), ("nonsense", None), ("h:0", None), ("h:65536", None), ("h:²", None),
    ("::1:80", None), ("h:", None)])
def test_parse_listen(text: str, want: tuple[str, int] | None) -> None:
    if want is None:
        with pytest.raises(ValueError):
            parse_listen(text)
    else:
        assert parse_listen(text) == want


@pytest.mark.parametrize("value", [0.0, -1.0, math.nan, math.inf, 1e9])
def test_check_interval_refuses(value: float) -> None:
    with pytest.raises(UsageError):
        check_interval(value)


def test_check_interval_takes_fractions() -> None:
    assert check_interval(0.5) == 0.5


def hr(host: str, result: Result, states: dict[str, str] | None = None, reason: str = "",
       pids: dict[str, int] | None = None, restarts: dict[str, int] | None = None) -> HostResult:
    if states is None:
        return HostResult(host, result, reason)
    d = doc(**{cid: {"state": s, "pid": (pids or {}).get(cid, 11), "restarts": (restarts or {}).get(cid, 0)}
               for cid, s in states.items()})
    return HostResult(host, result, reason, d)


@pytest.mark.parametrize(("before", "after", "want"), [
    (None, hr("a", Result.OK, {"is": "RUNNING"}), "a: ok"),
    (hr("a", Result.OK, {"is": "RUNNING"}), hr("a", Result.OK, {"is": "RUNNING"}, pids={"is": 99}), None),
    (hr("a", Result.OK, {"is": "RUNNING"}), hr("a", Result.DEGRADED, {"is": "BACKOFF"}, "not RUNNING: is BACKOFF"),
     "a: ok -> degraded; is RUNNING -> BACKOFF (not RUNNING: is BACKOFF)"),
    (hr("a", Result.OK, {"is": "RUNNING"}), hr("a", Result.UNREACHABLE, reason="timeout"),
     "a: ok -> unreachable (timeout)"),
    (hr("a", Result.UNREACHABLE, reason="timeout"), hr("a", Result.UNREACHABLE, reason="refused"), None)])
def test_exporter_logs_changes_only(before: HostResult | None, after: HostResult, want: str | None) -> None:
    assert describe_change(before, after) == want


def test_watch_highlights_state_pid_restarts_and_a_host_that_stopped_answering() -> None:
    w = WatchState(["a", "b", "c"])
    w.update(hr("a", Result.OK, {"is": "RUNNING", "ps": "RUNNING"}), 0.0)
    w.update(hr("b", Result.OK, {"is": "RUNNING"}), 0.0)
    first = w.frame(1.0)
    assert [r.changed for r in first] == [frozenset()] * 3 and first[2].result is None
    w.update(hr("a", Result.OK, {"is": "RUNNING", "ps": "RUNNING"}, pids={"is": 12}, restarts={"is": 1}), 1.5)
    w.update(hr("b", Result.UNREACHABLE, reason="timeout"), 1.5)
    second = w.frame(2.0)
    assert second[0].changed == {"is"} and second[1].changed == {"host"} and second[0].age_s == 0.5
    third = w.frame(3.0)  # a change is shown for one refresh
    assert [r.changed for r in third] == [frozenset()] * 3


def row(host: str, result: Result | None) -> Row:
    return Row(host, result, "", {}, None, False)


def test_fit_keeps_inventory_order_when_it_fits_else_not_ok_first() -> None:
    rows = [row("a", Result.OK), row("b", Result.UNREACHABLE), row("c", Result.OK), row("d", Result.DEGRADED)]
    assert fit(rows, CHROME_LINES + 4) == (rows, [])
    shown, left = fit(rows, CHROME_LINES + 2)
    assert [r.host for r in shown] == ["b", "d"] and [r.host for r in left] == ["a", "c"]


@pytest.mark.parametrize(("listen", "error"), [
    ("127.0.0.1:9464", None), ("[::1]:9464", None), ("9464", "expected HOST:PORT"), ("h:99999", "expected HOST:PORT")])
def test_config_supervisor_metrics_listen(listen: str, error: str | None) -> None:
    from imageserving_fleet.agent.config import parse_config
    from imageserving_fleet.errors import ConfigError

    text = f'supervisor:\n  metrics:\n    listen: "{listen}"\ncomponents:\n  is:\n    command: ["/bin/true"]\n'
    if error is None:
        assert parse_config(text).metrics_listen == listen
    else:
        with pytest.raises(ConfigError, match=rf":3: supervisor\.metrics\.listen: {error}"):
            parse_config(text)
    assert parse_config('components:\n  is:\n    command: ["/bin/true"]\n').metrics_listen is None


def test_pss_series_only_where_the_agent_gave_pss_and_promtool_accepts_it() -> None:
    status = parse_status(doc(**{"is": {"pss_bytes": 3000, "uss_bytes": 1000}, "ps": {}}))
    for fmt in (OPENMETRICS, PROMETHEUS):
        text = render(agent_families(status, 0.0), fmt).decode()
        if fmt == OPENMETRICS:
            got = samples(text)
            assert got[("imageserving_component_memory_pss_bytes", (("component", "is"),))] == 3000
            assert ("imageserving_component_memory_pss_bytes", (("component", "ps"),)) not in got
        promtool = "/usr/bin/promtool"  # reads the classic text format, the one node_exporter takes
        if fmt == PROMETHEUS and os.access(promtool, os.X_OK):
            check = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True,
                                   timeout=30)
            assert check.returncode == 0, check.stdout + check.stderr
