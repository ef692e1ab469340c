"""The exporter's logic without a host: its pages, /healthz, its own metrics, the changes it
notifies (through a Notifier whose POST and clock are the test's), and SIGHUP's re-read.
The same things with real parts (sshd, Chromium, promtool, an HTTP receiver): test_live.py.
"""

from __future__ import annotations

import html
import json
import re
import threading
from collections.abc import Sequence
from typing import Any

import pytest

from imageserving_fleet.damping import Send
from imageserving_fleet.errors import InventoryError, UsageError
from imageserving_fleet.fleet.exporter import Exporter, changes, reread
from imageserving_fleet.fleet.notify import Change, Notifier, check_url, document
from imageserving_fleet.fleet.results import HostResult, Result
from imageserving_fleet.fleet.target import FleetOptions, Target, make_target
from tests.test_metrics import hr


def targets(*names: str) -> list[Target]:
    return [make_target(n, {}, FleetOptions()) for n in names]


def polled(exporter: Exporter, *results: HostResult) -> None:
    for r in results:
        exporter.on_result(r, 0.0)
    exporter.on_round_s(0.25)
    exporter.on_round(list(results))


def test_live_page_json_and_healthz() -> None:
    lines: list[str] = []
    exp = Exporter(targets("a", "b<i>"), lines.append, interval=2, timeout=5)
    assert exp.healthz().status == 503 and b"no poll has completed yet" in exp.healthz().body
    polled(exp, hr("a", Result.OK, {"is": "RUNNING"}), hr("b<i>", Result.UNREACHABLE, reason="refused <x>"))
    health = exp.healthz()
    assert health.status == 200 and health.body.startswith(b"ok: last poll ended")
    page = exp.page()
    text = page.body.decode()
    assert page.etag == '"p1"' and page.content_type.startswith("text/html")
    assert exp.page().body is page.body  # rendered once per round, when first asked
    assert "connect-src 'self'" in html.unescape(text) and text.count("<script>") == 2 and 'data-live-interval="2' in text
    assert "Live: 2 hosts polled every 2 s" in text and "b&lt;i&gt;" in text and "<i>" not in text
    doc = json.loads(exp.snapshot_json().body)
    assert doc["round"] == 1 and [h["host"] for h in doc["hosts"]] == ["a", "b<i>"]
    assert doc["summary"] == {"hosts": 2, "ok": 1, "degraded": 0, "failed": 0, "unreachable": 1, "skipped": 0}
    # the rows the page is served with are the rows the JSON carries (one template, two outputs)
    tbody = re.search(r"<tbody>(.*)</tbody>", text, re.S)
    assert tbody and tbody.group(1).strip() == doc["html"]["rows"].strip()
    assert doc["html"]["ids"] == "is" and "refused &lt;x&gt;" in doc["html"]["problems"]
    assert lines == ["b<i>: unreachable (refused <x>)", "first poll done: hosts=2 ok=1 degraded=0 failed=0 "
                     "unreachable=1 skipped=0"]


def test_own_metrics_in_both_encodings_in_one_document() -> None:
    exp = Exporter(targets("a"), lambda _: None, interval=2, timeout=5)
    polled(exp, hr("a", Result.UNREACHABLE, reason="timeout"))
    for fmt in ("prometheus", "openmetrics"):
        text = exp.snapshot(fmt).decode()
        assert 'imageserving_host_up{host="a"}' in text
        assert "imageserving_exporter_poll_duration_seconds 0.25" in text
        assert re.search(r"imageserving_exporter_last_poll_timestamp_seconds \d\.\d+e\+09", text), text
        assert "imageserving_exporter_hosts 1.0" in text and "imageserving_exporter_poll_errors_total 1.0" in text
        assert 'imageserving_exporter_inventory_reloads_total{outcome="error"} 0.0' in text
    om = exp.snapshot("openmetrics").decode()
    assert om.count("# EOF") == 1 and om.endswith("# EOF\n")


@pytest.mark.parametrize(("before", "after", "want"), [
    (None, hr("a", Result.OK, {"is": "RUNNING"}), [("a", None, "ok", None)]),
    (hr("a", Result.OK, {"is": "RUNNING"}), hr("a", Result.OK, {"is": "RUNNING"}, pids={"is": 9}), []),
    (hr("a", Result.OK, {"is": "RUNNING", "ps": "RUNNING"}),
     hr("a", Result.DEGRADED, {"is": "RUNNING", "ps": "BACKOFF"}, "not RUNNING: ps BACKOFF"),
     [("a", None, "degraded", "ok"), ("a", "ps", "BACKOFF", "RUNNING")]),
    (hr("a", Result.DEGRADED, {"ps": "BACKOFF"}), hr("a", Result.DEGRADED, {"ps": "FATAL"}),
     [("a", "ps", "FATAL", "BACKOFF")]),
    (hr("a", Result.OK, {"is": "RUNNING"}), hr("a", Result.UNREACHABLE, reason="timeout"),
     [("a", None, "unreachable", "ok")]),
])
def test_changes(before: HostResult | None, after: HostResult,
                 want: list[tuple[str, str | None, str, str | None]]) -> None:
    assert [(c.host, c.component, c.state, c.previous) for c in changes(before, after)] == want


def test_notification_document_is_slack_compatible() -> None:
    doc = document(Send(Change("is07", "ps", "FATAL", "BACKOFF", "not RUNNING: ps <FATAL> & co", "T"), 3))
    assert doc == {"source": "imageserving-fleet exporter", "host": "is07", "component": "ps", "event": "state",
                   "state": "FATAL", "previous_state": "BACKOFF", "message": "not RUNNING: ps <FATAL> & co",
                   "time": "T", "suppressed": 3,
                   "text": "imageserving-fleet exporter: is07: ps BACKOFF -> FATAL (not RUNNING: ps &lt;FATAL> "
                           "&amp; co) [3 earlier changes held back]"}
    assert document(Send(Change("h", None, "failed", None), 0))["event"] == "result"
    hostile = document(Send(Change("h", None, "failed", "ok", "boom \x1b]0;PWNED\x07"), 0))
    assert hostile["message"] == "boom \x1b]0;PWNED\x07"             # JSON: as the host said it
    assert hostile["text"].endswith("(boom \\x1b]0;PWNED\\x07)")      # the text a person reads: escaped


@pytest.mark.parametrize("url", ["ftp://x/y", "hooks.example.com/x", "http://", "file:///etc/passwd", ""])
def test_notify_url_must_be_http(url: str) -> None:
    with pytest.raises(UsageError, match="--notify: expected an http"):
        check_url(url)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_notifier_damps_per_host_and_subject_and_never_blocks() -> None:
    posted: list[dict[str, Any]] = []
    arrived = threading.Condition()
    release = threading.Event()

    def post(url: str, doc: dict[str, Any]) -> None:
        release.wait(30)  # a receiver that hangs: submit() must not wait for it
        with arrived:
            posted.append(doc)
            arrived.notify_all()

    clock = Clock()
    n = Notifier("http://127.0.0.1:9/x", 60.0, lambda _: None, post=post, clock=clock).start()
    try:
        for i in range(5):                               # a flapping host, one subject
            n.submit(Change("a", None, "failed" if i % 2 == 0 else "ok", None))
        n.submit(Change("b", "ps", "FATAL", "RUNNING"))  # another subject: not damped by a's
        release.set()
        with arrived:
            assert arrived.wait_for(lambda: len(posted) == 2, 30), posted
        assert [(d["host"], d["state"], d["suppressed"]) for d in posted] == [("a", "failed", 0), ("b", "FATAL", 0)]
        clock.now = 61.0                                  # a's interval is over: its latest held-back change goes
        n.submit(Change("c", None, "ok", None))           # (wakes the thread at the new time)
        with arrived:
            assert arrived.wait_for(lambda: len(posted) == 4, 30), posted
        assert ("a", "failed", 3) in [(d["host"], d["state"], d["suppressed"]) for d in posted[2:]]
        assert n.counts.sent == 4 and n.counts.suppressed == 4
    finally:
        n.stop()


def test_a_failing_receiver_is_tried_twice_then_logged() -> None:
    logged: list[str] = []
    calls: list[str] = []
    done = threading.Event()

    def post(url: str, doc: dict[str, Any]) -> None:
        calls.append(doc["host"])
        raise OSError("connection refused")

    def log(line: str) -> None:
        logged.append(line)
        done.set()

    n = Notifier("http://127.0.0.1:9/x", 0.0, log, post=post, retry_after=0.0).start()
    try:
        n.submit(Change("a", None, "failed", "ok"))
        assert done.wait(30)
    finally:
        n.stop()
    assert calls == ["a", "a"] and n.counts.failed == 1
    assert logged[0].startswith("notify: POST http://127.0.0.1:9/x failed twice, not sent: connection refused")


class FakePool:
    def __init__(self) -> None:
        self.released: list[str] = []

    def release(self, name: str) -> None:
        self.released.append(name)


class FakePoller:
    def __init__(self) -> None:
        self.targets: Sequence[Target] = ()

    def set_targets(self, t: Sequence[Target]) -> None:
        self.targets = t


def test_sighup_reread_keeps_the_old_inventory_when_the_new_one_is_bad() -> None:
    lines: list[str] = []
    old = targets("a", "b")
    exp = Exporter(old, lines.append, interval=2, timeout=5)
    polled(exp, hr("a", Result.OK, {"is": "RUNNING"}), hr("b", Result.OK, {"is": "RUNNING"}))
    fleet = type("F", (), {"pool": FakePool()})()
    poller = FakePoller()

    def bad() -> list[Target]:
        raise InventoryError("hosts.yml:3: expected a mapping")

    assert reread(exp, poller, fleet, bad, old, lines.append) is old  # type: ignore[arg-type]
    assert lines[-1] == ("SIGHUP: inventory not re-read, still polling the same 2 host(s): "
                         "hosts.yml:3: expected a mapping")
    assert poller.targets == () and exp.names == ["a", "b"]
    new = [old[0], *targets("c")]
    assert reread(exp, poller, fleet, lambda: new, old, lines.append) == new  # type: ignore[arg-type]
    assert lines[-1] == "SIGHUP: inventory re-read: 2 host(s), added c, removed b"
    assert poller.targets == new and exp.names == ["a", "c"] and fleet.pool.released == ["b"]
    exp.on_round([])
    text = exp.snapshot("prometheus").decode()
    assert 'host="b"' not in text and 'host="a"' in text  # a removed host leaves every output
    assert 'imageserving_exporter_inventory_reloads_total{outcome="ok"} 1.0' in text
    assert 'imageserving_exporter_inventory_reloads_total{outcome="error"} 1.0' in text
