"""supervisor.notify: which state changes are which events, flap damping, delivery to a command and a URL."""

from __future__ import annotations

import http.server
import json
import os
import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from imageserving_fleet.agent.config import NotifyConfig, parse_config
from imageserving_fleet.agent.config.model import ComponentConfig, HealthCheck, ReadyCheck
from imageserving_fleet.agent.notifier import Notifier
from imageserving_fleet.agent.notify import Damper, EventTracker, Notification
from imageserving_fleet.agent.states import (
    Event,
    Exited,
    HealthFailed,
    Proc,
    ReadyOk,
    Spawned,
    Start,
    State,
    Stop,
    Tick,
    TreeGone,
    step,
)
from imageserving_fleet.errors import ConfigError

from .conftest import Agent, component, free_port, prog, wait_for

# ------------------------------------------------------------------ damping, with an injected clock


@pytest.mark.parametrize("times, want", [
    ([0], [0]),
    ([0, 10, 20, 299, 300], [0, None, None, None, 3]),      # the next one carries how many were left out
    ([0, 300, 600], [0, 0, 0]),
    ([0, 1, 400, 401, 800], [0, None, 1, None, 1]),
])
def test_damper_one_per_interval_with_the_suppressed_count(times: list[float], want: list[int | None]) -> None:
    now = [0.0]
    damper = Damper(300.0, lambda: now[0])
    got = []
    for t in times:
        now[0] = t
        got.append(damper.admit("is", "crash"))
    assert got == want


def test_damper_keys_by_component_and_event() -> None:
    damper = Damper(300.0, lambda: 5.0)
    assert [damper.admit("is", "crash"), damper.admit("ps", "crash"), damper.admit("is", "fatal"),
            damper.admit("is", "crash")] == [0, 0, 0, None]


def test_no_interval_lets_everything_through() -> None:
    damper = Damper(0.0, lambda: 1.0)
    assert [damper.admit("is", "crash") for _ in range(3)] == [0, 0, 0]


# ------------------------------------------------------------------ state changes -> events

CFG = ComponentConfig("is", ("x",), start_delay=0.0, start_retries=2,
                      health=HealthCheck(ReadyCheck("tcp", "127.0.0.1", 1), failures=1, start_period=0.0))


def run(events: list[Event], proc: Proc | None = None) -> tuple[Proc, list[str]]:
    """Feeds the real state machine; returns the last record and every notification event, in order."""
    p, tracker, out, now = proc or Proc(), EventTracker(), [], 100.0
    for ev in events:
        new, _ = step(p, CFG, ev, now)
        out += tracker.events("is", p, new, ev)
        p, now = new, now + 1
    return p, out


START = [Start(), Spawned(11), ReadyOk(), Tick()]


@pytest.mark.parametrize("events, want", [
    (START, ["start"]),
    (START + [Exited(11, "exit 1", False)], ["start", "crash"]),
    (START + [Exited(11, "exit 1", False), Spawned(12), ReadyOk(), Tick()], ["start", "crash", "recovered", "start"]),
    (START + [HealthFailed("refused")], ["start", "unhealthy"]),
    (START + [Stop(), TreeGone()], ["start", "stop"]),
    (START + [Stop(hold=True), TreeGone()], ["start", "held", "stop"]),
    ([Start(), Spawned(11), Exited(11, "exit 1", False), Tick(), Tick(), Spawned(12), Exited(12, "exit 1", False)],
     ["crash", "crash", "fatal"]),
    ([Start(), Spawned(11), Exited(99, "exit 1", False)], []),          # not our pid: no crash
])
def test_events_of_state_changes(events: list[Event], want: list[str]) -> None:
    assert run(events)[1] == want


def test_recovered_only_after_trouble() -> None:
    p, events = run(START + [Stop(), TreeGone(), *START])
    assert p.state == State.RUNNING and "recovered" not in events


def test_notification_document_has_the_spec_fields() -> None:
    doc = json.loads(Notification("is01", "is", "crash", "STARTING", "RUNNING", "2026-12-07T04:00:00Z",
                                  "restarted after exit 1", 3, 2).to_json())
    assert list(doc) == ["host", "component", "event", "state", "previous_state", "time", "message", "restarts",
                         "suppressed"]
    assert doc["suppressed"] == 2 and doc["restarts"] == 3


# ------------------------------------------------------------------ configuration


@pytest.mark.parametrize("block, key, message", [
    ("  notify: {}\n", "supervisor.notify", "expected a command, a url or both"),
    ("  notify: {url: 'ftp://x'}\n", "supervisor.notify.url", "expected an http:// or https:// URL"),
    ("  notify: {command: /bin/page}\n", "supervisor.notify.command", "a shell string is not accepted"),
    ("  notify: {url: 'http://x', on: [crash, boom]}\n", "supervisor.notify.on.1", "unknown event 'boom'"),
    ("  notify: {url: 'http://x', min_interval: soon}\n", "supervisor.notify.min_interval", "expected a duration"),
    ("  notify: {url: 'http://x', bogus: 1}\n", "supervisor.notify.bogus", "unknown key"),
])
def test_notify_refused_with_file_line_key(block: str, key: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config("supervisor:\n" + block + "components:\n  a: {command: [x]}\n", "agent.yaml")
    assert caught.value.line == 2 and caught.value.key == key and message in str(caught.value)


def test_notify_defaults_and_a_bare_on_key() -> None:
    cfg = parse_config("supervisor:\n  notify:\n    url: http://127.0.0.1:9/\ncomponents:\n  a: {command: [x]}\n")
    assert cfg.notify == NotifyConfig(url="http://127.0.0.1:9/", on=("crash", "fatal", "unhealthy", "recovered"),
                                      min_interval=300.0)
    on = parse_config("supervisor:\n  notify:\n    command: [/bin/cat]\n    on: [start]\n"
                      "components:\n  a: {command: [x]}\n")
    assert on.notify is not None and on.notify.on == ("start",)    # YAML 1.1 reads `on:` as true: still the key


# ------------------------------------------------------------------ delivery failures, logged


def test_a_failing_command_and_url_are_logged_and_retried_once() -> None:
    dead = free_port()
    cfg = NotifyConfig(command=(sys.executable, "-c", "import sys; sys.stdin.read(); sys.exit(3)"),
                       url=f"http://127.0.0.1:{dead}/hook", on=("crash",), min_interval=0)
    notifier = Notifier(cfg, "h")
    notifier.retry_after = 0.01
    notifier.submit("is", "crash", "STARTING", "RUNNING", "restarted after exit 1", 1)
    assert notifier.idle(60)
    lines = notifier.drain()
    assert any("crash of is to command" in ln and "exit 3); retrying once" in ln for ln in lines), lines
    assert any("to command" in ln and "failed again" in ln and ln.endswith("dropped") for ln in lines), lines
    assert sum("to url" in ln for ln in lines) == 2 and any("Connection refused" in ln for ln in lines), lines


def test_events_not_listed_are_not_sent() -> None:
    notifier = Notifier(NotifyConfig(command=("/nonexistent",), on=("fatal",), min_interval=0), "h")
    notifier.submit("is", "crash", "STARTING", "RUNNING", "", 0)
    assert notifier.idle(1) and notifier.drain() == []


# ------------------------------------------------------------------ end to end: a real crash


class Receiver(http.server.BaseHTTPRequestHandler):
    bodies: list[dict[str, Any]] = []

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        length = int(self.headers.get("Content-Length", "0"))
        assert self.headers.get("Content-Type") == "application/json"
        body = json.loads(self.rfile.read(length))
        Receiver.bodies.append(body)
        self.send_response(500 if body["event"] == "reload" else 204)   # a broken hook, for reloads only
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def hooked(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Agent, Path]]:
    root = Path(tmp_path_factory.mktemp("notify"))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    out = root / "events.jsonl"
    script = root / "append.py"
    script.write_text("import sys\nwith open(sys.argv[1], 'ab') as f:\n    f.write(sys.stdin.buffer.read())\n")
    agent = Agent(root)
    port = free_port()
    notify = {"command": [sys.executable, str(script), str(out)], "url": f"http://127.0.0.1:{server.server_port}/hook",
              "on": ["crash", "recovered", "reload"], "min_interval": "0s"}
    agent.write(f"supervisor:\n  notify: {json.dumps(notify)}\ncomponents:\n"
                + component("web", prog("listen", str(port)), ready={"tcp": f"127.0.0.1:{port}"},
                            backoff={"initial": "100ms", "max": "1s", "reset_after": "60s"}) + "\n")
    agent.run("start", check=True)
    try:
        yield agent, out
    finally:
        agent.cleanup()
        server.shutdown()


def events_in(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_a_crash_reaches_the_command_and_the_url(hooked: tuple[Agent, Path]) -> None:
    agent, out = hooked
    pid = agent.comp("web")["pid"]
    os.kill(pid, signal.SIGKILL)
    got = wait_for(lambda: (e := events_in(out)) and {"crash", "recovered"} <= {x["event"] for x in e} and e)
    crash = next(e for e in got if e["event"] == "crash")
    assert crash["component"] == "web" and crash["previous_state"] == "RUNNING" and crash["suppressed"] == 0
    assert "signal KILL" in crash["message"] and crash["host"] and crash["time"].endswith("Z")
    assert set(crash) == {"host", "component", "event", "state", "previous_state", "time", "message", "restarts",
                          "suppressed"}
    recovered = next(e for e in got if e["event"] == "recovered")
    assert recovered["state"] == "RUNNING" and recovered["message"].startswith("running, pid ")
    wait_for(lambda: {"crash", "recovered"} <= {b["event"] for b in Receiver.bodies})
    assert "web STARTING -> RUNNING" in agent.log()
    assert "notify:" not in agent.log()          # nothing failed, nothing to say


def test_a_reload_is_notified_and_a_failing_url_is_logged_in_supervisor_log(hooked: tuple[Agent, Path]) -> None:
    agent, out = hooked
    agent.run("reload", check=True)
    reload = wait_for(lambda: next((e for e in events_in(out) if e["event"] == "reload"), None))
    assert reload["component"] == "supervisor" and "reload from" in reload["message"]
    log = wait_for(lambda: "failed again" in (text := agent.log()) and text)
    assert "notify: reload of supervisor to url" in log and "500" in log and "retrying once" in log
    assert sum(b["event"] == "reload" for b in Receiver.bodies) == 2          # retried once, not more
