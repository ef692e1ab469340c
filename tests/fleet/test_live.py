"""The live fleet with real parts: a real Prometheus scraping the fleet exporter and an agent's own
/metrics, promtool on both outputs, the exporter's live page in headless Chromium, its --notify
reaching an HTTP receiver on loopback, SIGHUP, the watch view driven in tmux as a person would.

One lab (logical hosts on the session's sshd), one exporter, one notification receiver and one
Prometheus for the module:
    h1, h2, h3   good hosts; h2's svg has `restart: never` (a kill leaves it EXITED);
                 h3's supervisor serves /metrics itself (supervisor.metrics.listen)
    dead         a port where nothing listens (unreachable)
    hang         a port that accepts TCP and never says a word (bounded by --timeout)
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.fleet.fleetlab import Lab, Tmux, free_port
from tests.sshd import SshServer, closed_port, silent_listener

PROMETHEUS, PROMTOOL = "/usr/bin/prometheus", "/usr/bin/promtool"
CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if os.access("/usr/bin/chromium", os.X_OK) else None)
GOOD = ("h1", "h2", "h3")
COMPONENTS = ("is", "svg", "ps")


def wait_for(pred: Callable[[], Any], timeout: float = 60.0, every: float = 0.2, what: str = "condition") -> Any:
    end = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < end:
        try:
            last = pred()
        except OSError as exc:  # not listening yet
            last = exc
        if last and not isinstance(last, Exception):
            return last
        time.sleep(every)
    raise AssertionError(f"{what} not met within {timeout}s (last: {last!r:.500})")


def http_get(url: str, accept: str | None = None, timeout: float = 10.0) -> tuple[int, str, str]:
    req = urllib.request.Request(url, headers={"Accept": accept} if accept else {})
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        return resp.status, resp.headers.get("Content-Type", ""), resp.read().decode()


def agent(lab: Lab, host: str, *args: str) -> subprocess.CompletedProcess[str]:
    hv = lab.hosts[host]
    return subprocess.run([str(lab.agent), "--home", hv["imageserving_home"], "--config", hv["imageserving_config"],
                           *args], capture_output=True, text=True, timeout=60)


def comp(lab: Lab, host: str, cid: str) -> dict[str, Any]:
    doc = json.loads(agent(lab, host, "status", "--json").stdout)
    return next(c for c in doc["components"] if c["id"] == cid)


def kill9(lab: Lab, host: str, cid: str) -> int:
    before = comp(lab, host, cid)
    os.kill(before["pid"], signal.SIGKILL)
    return int(before["restarts"])


@pytest.fixture(scope="module")
def lab(sshd: SshServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    lab = Lab(sshd, tmp_path_factory.mktemp("live"))
    for name in GOOD:
        hv = lab.add_host(name)
        cfg = Path(hv["imageserving_config"])
        doc = yaml.safe_load(cfg.read_text())
        if name == "h2":
            doc["components"]["svg"]["restart"] = "never"
        if name == "h3":
            lab.agent_metrics_port = free_port()  # type: ignore[attr-defined]
            doc["supervisor"] = {"metrics": {"listen": f"127.0.0.1:{lab.agent_metrics_port}"}}  # type: ignore[attr-defined]
        cfg.write_text(yaml.safe_dump(doc, sort_keys=False))
    with closed_port() as dead, silent_listener() as hang:
        lab.add_host("dead", ansible_port=dead)
        lab.add_host("hang", ansible_port=hang)
        proc = lab.fleet("-l", ":".join(GOOD), "start", timeout=120)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        try:
            yield lab
        finally:
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(len(GOOD)) as pool:  # in parallel: each stop waits for its components
                list(pool.map(lambda h: agent(lab, h, "stop"), GOOD))
            lab.stop_all()


class Receiver:
    """An HTTP server on loopback keeping every JSON document POSTed to it (the --notify URL)."""

    def __init__(self) -> None:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        docs = self.docs = []  # type: list[dict[str, Any]]

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                assert self.headers.get("Content-Type") == "application/json"
                docs.append(json.loads(body))
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    try:
        yield r
    finally:
        r.server.shutdown()
        r.server.server_close()


class Exporter(str):
    """The exporter's /metrics URL; `.proc` its process, `.base` its root URL."""

    proc: subprocess.Popen[bytes]
    base: str


@pytest.fixture(scope="module")
def exporter(lab: Lab, receiver: Receiver) -> Iterator[Exporter]:
    port = free_port()
    argv = [sys.executable, "-m", "imageserving_fleet.fleet.main", "-i", str(lab.inventory()),
            "--ssh-config", str(lab.sshd.ssh_config_path), "--timeout", "4", "--connect-timeout", "3",
            "exporter", "--listen", f"127.0.0.1:{port}", "--interval", "1",
            "--notify", receiver.url, "--notify-interval", "2s"]
    log = open(lab.dir / "exporter.log", "w")
    env = {k: v for k, v in os.environ.items() if k != "SSH_AUTH_SOCK"}
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=lab.dir)
    url = Exporter(f"http://127.0.0.1:{port}/metrics")
    url.proc, url.base = proc, f"http://127.0.0.1:{port}/"
    try:
        wait_for(lambda: all(f'imageserving_host_up{{host="{h}"}}' in http_get(url)[2] for h in (*GOOD, "dead", "hang")),
                 what="every host in the exporter's /metrics")
        yield url
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        log.close()


@pytest.fixture(scope="module")
def prometheus(lab: Lab, exporter: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if not os.access(PROMETHEUS, os.X_OK):
        pytest.skip("prometheus is not installed (apt-get install -y prometheus)")
    d = tmp_path_factory.mktemp("prometheus")
    port = free_port()
    agent_port = lab.agent_metrics_port  # type: ignore[attr-defined]
    (d / "prometheus.yml").write_text(yaml.safe_dump({
        "global": {"scrape_interval": "1s", "scrape_timeout": "900ms"},
        "scrape_configs": [
            {"job_name": "imageserving-fleet", "static_configs": [{"targets": [exporter.split("/")[2]]}]},
            {"job_name": "imageserving-agent", "static_configs": [{"targets": [f"127.0.0.1:{agent_port}"]}]},
        ]}))
    log = open(d / "prometheus.log", "w")
    proc = subprocess.Popen([PROMETHEUS, f"--config.file={d / 'prometheus.yml'}", f"--storage.tsdb.path={d / 'data'}",
                             f"--web.listen-address=127.0.0.1:{port}", "--web.enable-lifecycle"],
                            stdout=log, stderr=subprocess.STDOUT, cwd=d)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: http_get(f"{base}/-/ready")[0] == 200, what="prometheus ready")
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def query(base: str, promql: str) -> list[dict[str, Any]]:
    from urllib.parse import quote

    doc = json.loads(http_get(f"{base}/api/v1/query?query={quote(promql)}")[2])
    assert doc["status"] == "success", doc
    return list(doc["data"]["result"])


def series(base: str, promql: str) -> dict[tuple[str, str, str], float]:
    """(job, host, component) -> value."""
    return {(r["metric"].get("job", ""), r["metric"].get("host", ""), r["metric"].get("component", "")):
            float(r["value"][1]) for r in query(base, promql)}


# ------------------------------------------------------------------ Prometheus
def test_prometheus_scrapes_every_host_and_component(prometheus: str) -> None:
    want = {("imageserving-fleet", h, c) for h in GOOD for c in COMPONENTS}
    want |= {("imageserving-agent", "", c) for c in COMPONENTS}
    got = wait_for(lambda: (s := series(prometheus, "imageserving_component_up")) and want <= set(s) and s,
                   what="a component_up series for every host and component")
    assert all(got[k] == 1 for k in want), got
    up = wait_for(lambda: (s := series(prometheus, "imageserving_host_up")) and len(s) == 5 and s, what="host_up")
    assert {h: v for (_, h, _), v in up.items()} == {"h1": 1, "h2": 1, "h3": 1, "dead": 0, "hang": 0}
    state = series(prometheus, 'imageserving_component_state{imageserving_component_state="RUNNING"}')
    assert state[("imageserving-fleet", "h1", "is")] == 1


def test_prometheus_shows_a_killed_component(lab: Lab, prometheus: str) -> None:
    restarts = kill9(lab, "h1", "is")        # restarted by its supervisor: the counter moves
    kill9(lab, "h2", "svg")                  # restart: never: stays EXITED
    agent_restarts = kill9(lab, "h3", "ps")  # seen through h3's own /metrics
    wait_for(lambda: series(prometheus, "imageserving_component_restarts_total").get(
        ("imageserving-fleet", "h1", "is"), 0) > restarts, what="h1 is restarts_total incremented")
    wait_for(lambda: series(prometheus, "imageserving_component_up").get(("imageserving-fleet", "h2", "svg")) == 0,
             what="h2 svg up 0")
    wait_for(lambda: series(prometheus, 'imageserving_component_state{imageserving_component_state="EXITED"}').get(
        ("imageserving-fleet", "h2", "svg")) == 1, what="h2 svg EXITED")
    wait_for(lambda: series(prometheus, 'imageserving_host_result{imageserving_host_result="degraded"}').get(
        ("imageserving-fleet", "h2", "")) == 1, what="h2 degraded")
    wait_for(lambda: series(prometheus, "imageserving_component_restarts_total").get(
        ("imageserving-agent", "", "ps"), 0) > agent_restarts, what="the agent's own ps restarts_total")
    assert series(prometheus, "imageserving_component_up")[("imageserving-fleet", "h1", "is")] in (0, 1)


# ------------------------------------------------------------------ exporter
def test_promtool_accepts_the_agent_and_the_exporter(lab: Lab, exporter: str) -> None:
    if not os.access(PROMTOOL, os.X_OK):
        pytest.skip("promtool is not installed (apt-get install -y prometheus)")
    texts = {"imageserving metrics": agent(lab, "h3", "metrics").stdout, "exporter": http_get(exporter)[2],
             "agent /metrics": http_get(f"http://127.0.0.1:{lab.agent_metrics_port}/metrics")[2]}  # type: ignore[attr-defined]
    own = ("imageserving_exporter_poll_duration_seconds", "imageserving_exporter_last_poll_timestamp_seconds",
           "imageserving_exporter_hosts 5.0", "imageserving_exporter_poll_errors_total",
           'imageserving_exporter_notifications_total{outcome="sent"}')
    assert all(name in texts["exporter"] for name in own), texts["exporter"]
    for name, text in texts.items():
        assert "imageserving_component_up" in text, name
        check = subprocess.run([PROMTOOL, "check", "metrics"], input=text, capture_output=True, text=True, timeout=30)
        assert check.returncode == 0, f"{name}: {check.stdout}{check.stderr}"
    status, ctype, body = http_get(exporter, accept="application/openmetrics-text; version=1.0.0")
    assert ctype.startswith("application/openmetrics-text") and body.endswith("# EOF\n")
    assert "# TYPE imageserving_host_result stateset" in body


def test_the_shipped_alert_rules_are_valid_and_name_only_metrics_that_exist(exporter: Exporter) -> None:
    if not os.access(PROMTOOL, os.X_OK):
        pytest.skip("promtool is not installed (apt-get install -y prometheus)")
    rules = Path(__file__).resolve().parents[2] / "docs" / "prometheus" / "imageserving-rules.yml"
    check = subprocess.run([PROMTOOL, "check", "rules", str(rules)], capture_output=True, text=True, timeout=30)
    assert check.returncode == 0, check.stdout + check.stderr
    served = http_get(exporter)[2]
    for name in set(re.findall(r"\b(imageserving_[a-z_]+)", rules.read_text())):
        assert f"\n{name}" in served or f"\n{name}{{" in served, name


def test_a_hanging_host_never_holds_up_a_scrape(lab: Lab, exporter: str) -> None:
    # `hang` accepts TCP and says nothing: every round it is outstanding until --timeout (4 s),
    # scrapes meanwhile answer from the last snapshot, and it is reported down, never RUNNING.
    for _ in range(5):
        _, _, body = http_get(exporter, timeout=5.0)
        assert 'imageserving_host_up{host="hang"} 0.0' in body
        assert 'imageserving_host_result{host="hang",imageserving_host_result="unreachable"} 1.0' in body
        assert 'host="hang",component=' not in body and 'host="dead",component=' not in body
        time.sleep(0.3)
    log = (lab.dir / "exporter.log").read_text()
    assert "hang: unreachable (timeout" in log and "dead: unreachable" in log
    assert log.count("hang: unreachable") == 1  # one line per change, not one per poll


def test_a_host_that_hangs_mid_poll_is_bounded_by_timeout_and_scrapes_go_on(lab: Lab, exporter: str) -> None:
    # h1's supervisor stopped (SIGSTOP): the SSH connection and the command start, no answer comes.
    ok = 'imageserving_host_result{host="h1",imageserving_host_result="ok"} 1.0'
    wait_for(lambda: ok in http_get(exporter)[2], what="h1 ok (its is restarted by an earlier test)")
    pid = int(Path(lab.hosts["h1"]["imageserving_home"], "run", "supervisor.pid").read_text())
    os.kill(pid, signal.SIGSTOP)
    try:
        for _ in range(5):  # meanwhile every scrape answers at once, from the last snapshot
            assert http_get(exporter, timeout=5.0)[0] == 200
        body = wait_for(lambda: (b := http_get(exporter)[2]) and 'imageserving_host_up{host="h1"} 0.0' in b and b,
                        what="h1 down once its --timeout has passed")
        assert 'host="h1",component=' not in body  # no stale RUNNING
    finally:
        os.kill(pid, signal.SIGCONT)
    wait_for(lambda: ok in http_get(exporter)[2], what="h1 back")
    log = (lab.dir / "exporter.log").read_text()
    # the reason is "timeout: ...", or "connection lost: aborted" when the deadline's abort wins the race (runner)
    assert "h1: ok -> unreachable (" in log and "h1: unreachable -> ok" in log, log


def test_report_openmetrics_once_for_cron(lab: Lab, tmp_path: Path) -> None:
    out = tmp_path / "fleet.prom"
    proc = lab.fleet("-l", "h1", "report", "--format", "prometheus", "-o", str(out))
    assert proc.returncode in (0, 2), proc.stderr
    text = out.read_text()
    assert 'imageserving_host_up{host="h1"} 1.0' in text and 'imageserving_component_up{component="is",host="h1"}' in text


# ------------------------------------------------------------------ live page, healthz, notify, SIGHUP
def chromium(url: str, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    argv = [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
            f"--user-data-dir={profile}", "--virtual-time-budget=5000", *args, url]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=90)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install -y chromium)")
def test_the_live_page_in_chromium_refreshes_its_rows_in_place(exporter: Exporter, tmp_path: Path) -> None:
    url = exporter.base + "#sort=host&dir=desc"
    shot = tmp_path / "exporter-live-page.png"   # the artifact: look at it when the page changes
    dom = chromium(url, tmp_path / "profile", "--window-size=1280,640", "--hide-scrollbars", f"--screenshot={shot}",
                   "--dump-dom").stdout         # both after the same 5 s of virtual time
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000
    # the live script fetched /snapshot.json (its CSP allows only its own origin) and put the rows in
    # place at least once; report.js re-indexed them and kept the sort the address asks for
    renders = re.search(r'data-live-renders="(\d+)"', dom)
    assert renders and int(renders.group(1)) >= 1, dom[-3000:]
    assert 'data-ready="1"' in dom and 'data-sort="host:desc"' in dom
    rows = re.findall(r'<th scope="row" class="sticky host" data-col="host" data-v="([^"]*)"', dom)
    assert rows == sorted((*GOOD, "dead", "hang"), reverse=True), rows
    assert '<span id="live-state"></span>' in dom  # no "does not answer" warning
    assert re.search(r'<b data-count="unreachable">2</b>', dom), dom[:3000]


def test_healthz_and_snapshot_json(exporter: Exporter) -> None:
    status, ctype, body = http_get(exporter.base + "healthz")
    assert status == 200 and ctype.startswith("text/plain") and body.startswith("ok: last poll ended"), body
    status, ctype, body = http_get(exporter.base + "snapshot.json")
    doc = json.loads(body)
    assert ctype == "application/json" and doc["command"] == "exporter" and doc["round"] >= 1
    assert [h["host"] for h in doc["hosts"]] == [*GOOD, "dead", "hang"]
    assert all(f'data-v="{h}"' in doc["html"]["rows"] for h in (*GOOD, "dead", "hang"))
    req = urllib.request.Request(exporter.base + "snapshot.json", headers={"If-None-Match": f'"{doc["round"]}"'})
    try:  # the same round again: 304, no body (unless a new round ended meanwhile)
        with urllib.request.urlopen(req, timeout=10) as resp:
            assert json.loads(resp.read())["round"] > doc["round"]
    except urllib.error.HTTPError as exc:
        assert exc.code == 304


def log_text(lab: Lab) -> str:
    return (lab.dir / "exporter.log").read_text()


def test_sighup_rereads_the_inventory_and_a_killed_supervisor_reaches_notify(
        lab: Lab, exporter: Exporter, receiver: Receiver) -> None:
    inventory = lab.dir / "hosts.yml"
    inventory.write_text("all:\n  hosts: [\n")         # a bad inventory: kept polling the old one
    exporter.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: "SIGHUP: inventory not re-read, still polling the same 5 host(s): " in log_text(lab),
             what="the bad inventory logged")
    assert 'imageserving_exporter_inventory_reloads_total{outcome="error"} 1.0' in http_get(exporter)[2]
    h4 = lab.add_host("h4")  # one quiet component: quick to start, and to clean up after the kill
    Path(h4["imageserving_config"]).write_text(yaml.safe_dump({"components": {"is": {
        "command": ["/bin/sleep", "3600"], "ready": None, "start_delay": "100ms", "stop_timeout": "2s"}}}))
    assert agent(lab, "h4", "start").returncode == 0
    lab.inventory()                                     # now with h4
    exporter.proc.send_signal(signal.SIGHUP)
    try:
        wait_for(lambda: "SIGHUP: inventory re-read: 6 host(s), added h4" in log_text(lab), what="h4 added")
        ok = 'imageserving_host_result{host="h4",imageserving_host_result="ok"} 1.0'
        wait_for(lambda: ok in http_get(exporter)[2], what="h4 polled and ok")
        pid = int(Path(lab.hosts["h4"]["imageserving_home"], "run", "supervisor.pid").read_text())
        os.kill(pid, signal.SIGKILL)
        doc = wait_for(lambda: next((d for d in list(receiver.docs) if d["host"] == "h4"), None),
                       what="h4's notification at the receiver")
        assert (doc["event"], doc["component"], doc["previous_state"], doc["state"]) == ("result", None, "ok", "failed")
        assert doc["text"].startswith("imageserving-fleet exporter: h4: ok -> failed") and doc["suppressed"] == 0
        assert doc["source"] == "imageserving-fleet exporter" and doc["time"].endswith("Z")
    finally:
        agent(lab, "h4", "start")   # its components outlived the supervisor: a new one stops them first
        agent(lab, "h4", "stop")
        del lab.hosts["h4"]
        lab.inventory()
        exporter.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: "removed h4" in log_text(lab), what="h4 removed")
    wait_for(lambda: 'host="h4"' not in http_get(exporter)[2], what="h4 gone from /metrics")


# ------------------------------------------------------------------ watch
def test_watch_without_a_terminal_is_a_usage_error(lab: Lab) -> None:
    proc = lab.fleet("status", "--watch")
    assert proc.returncode == 5 and "needs a terminal" in proc.stderr


def column_text(screen: str, host: str, column: str) -> str:
    """The text of one column of a host's row, by the header's column positions."""
    lines = screen.splitlines()
    header = next(ln for ln in lines if ln.startswith("host ") and " answer" in ln) + " "
    names = header.split()
    starts = [header.index(f" {n} ") + 1 if i else 0 for i, n in enumerate(names)]
    i = names.index(column)
    row = next(ln for ln in lines if ln.startswith(host + " "))
    return row[starts[i]:starts[i + 1] if i + 1 < len(starts) else None].strip()


def test_watch_in_tmux_shows_every_host_a_kill_and_q_restores(lab: Lab, tmux: Tmux) -> None:
    cmd = (f"cd {lab.dir} && echo BEFORE-WATCH && PYTHONPATH={Path(__file__).resolve().parents[2]} {sys.executable} -m "
           f"imageserving_fleet.fleet.main -i {lab.inventory()} --ssh-config {lab.sshd.ssh_config_path} "
           f"--timeout 4 --connect-timeout 3 status --watch --interval 1")
    tmux("send-keys", "-t", tmux.name, cmd, "Enter")
    screen = wait_for(lambda: (s := tmux.screen()) and all(
        any(ln.startswith(f"{h} ") and " ok " in ln for ln in s.splitlines()) for h in ("h1", "h3")) and s,
        what="rows for the good hosts")
    assert all(any(ln.startswith(f"{h} ") for ln in screen.splitlines()) for h in (*GOOD, "dead", "hang")), screen
    assert "hosts=" in screen and "q quits" in screen
    before = kill9(lab, "h3", "svg")
    wait_for(lambda: f"↻{before + 1}" in column_text(tmux.screen(), "h3", "svg"), timeout=30,
             what="the kill of h3's svg on screen")
    tmux("send-keys", "-t", tmux.name, "q")
    wait_for(lambda: "BEFORE-WATCH" in (s := tmux.screen()) and "q quits" not in s, timeout=30,
             what="the shell's screen back after q")
    # Ctrl-C is the other way out, and restores the terminal as well
    tmux("send-keys", "-t", tmux.name, "clear; " + cmd.replace("echo BEFORE-WATCH", "echo AGAIN"), "Enter")
    wait_for(lambda: "q quits" in tmux.screen(), timeout=60, what="the watch view again")
    tmux("send-keys", "-t", tmux.name, "C-c")
    wait_for(lambda: "AGAIN" in (s := tmux.screen()) and "q quits" not in s, timeout=30, what="the shell after Ctrl-C")
    # the terminal is back in canonical mode with echo (a marker the typed command does not contain)
    tmux("send-keys", "-t", tmux.name, "stty -a | tr ' ' '\\n' | grep -x -e icanon -e echo | tr '\\n' ' '; echo E''ND", "Enter")
    lines = wait_for(lambda: [ln.strip() for ln in tmux.screen().splitlines() if ln.strip().endswith(" END")],
                     timeout=30, what="stty output")
    assert lines == ["icanon echo END"], lines
