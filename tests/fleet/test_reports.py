"""`imageserving-fleet report` end to end: a real sshd on loopback, real agents, every format,
the SQLite history, atomic writes, concurrent cron runs, hostile values, and the page in Chromium."""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.sshd import SshServer, closed_port

from .fleetlab import Lab, wait_until

EVIL_HOST = "<script>alert('host')</script>"
EVIL_REASON = "<script>alert('reason')</script>"
CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if os.access("/usr/bin/chromium", os.X_OK) else None)
ALL = ("ok1", "ok2", "deg", "down", EVIL_HOST)


@pytest.fixture(scope="module")
def lab(sshd: SshServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """ok1, ok2 (all RUNNING), deg (svg exits: degraded), down (refused: unreachable) and a host whose
    name and reason hold <script>; started once for the module."""
    lab = Lab(sshd, tmp_path_factory.mktemp("reports"))
    lab.add_host("ok1")
    lab.add_host("ok2")
    deg = lab.add_host("deg")
    config = yaml.safe_load(Path(deg["imageserving_config"]).read_text())
    # ps (nothing waits for it) reaches RUNNING, then exits for good a second later: degraded, quickly.
    config["components"]["ps"].update(command=[sys.executable, "-c", "import sys, time; time.sleep(1); sys.exit(3)"],
                                       restart="never", ready=None)
    Path(deg["imageserving_config"]).write_text(yaml.safe_dump(config))
    evil_agent = lab.dir / "evil-agent"
    evil_agent.write_text(f"#!/bin/sh\necho \"{EVIL_REASON}\" >&2\nexit 3\n")
    evil_agent.chmod(0o755)
    with closed_port() as port:
        lab.add_host("down", ansible_port=port)
        # Not add_host: its name cannot be a directory (the "/" in "</script>").
        lab.hosts[EVIL_HOST] = {**lab.sshd.inventory_vars(), "imageserving_command": str(evil_agent)}
        try:
            assert lab.fleet("-l", "ok*:deg", "start").returncode == 0
            assert wait_until(lambda: lab.component(deg, "ps")["state"] != "RUNNING"), "deg's ps never exited"
            yield lab
        finally:
            lab.stop_all()


def report(lab: Lab, *args: str) -> subprocess.CompletedProcess[str]:
    return lab.fleet("report", *args, timeout=120)


# ----------------------------------------------------------------- formats
@pytest.fixture(scope="module")
def outputs(lab: Lab) -> dict[str, tuple[int, str]]:
    """One report run per format: exit code and file text."""
    out = {}
    for fmt in ("json", "csv", "md", "html"):
        path = lab.dir / f"fleet.{fmt}"
        proc = report(lab, "--format", fmt, "-o", str(path), "--timeout", "20")
        assert "Traceback" not in proc.stderr, proc.stderr
        out[fmt] = (proc.returncode, path.read_text())
    return out


def test_json_report_has_every_host_and_the_fleet_schema(outputs: dict[str, tuple[int, str]]) -> None:
    code, text = outputs["json"]
    doc = json.loads(text)
    assert code == 4  # an unreachable host wins over the degraded and failed ones (SPEC §3)
    assert doc["schema"] == 1 and doc["command"] == "report" and doc["generated"].endswith("Z")
    assert doc["summary"] == {"hosts": 5, "ok": 2, "degraded": 1, "failed": 1, "unreachable": 1, "skipped": 0}
    hosts = {h["host"]: h for h in doc["hosts"]}
    assert list(hosts) == list(ALL)  # inventory order
    assert hosts["deg"]["result"] == "degraded" and "ps EXITED" in hosts["deg"]["reason"]
    assert hosts["down"]["result"] == "unreachable" and hosts["down"]["reason"].startswith("refused")
    assert hosts[EVIL_HOST]["result"] == "failed" and EVIL_REASON in hosts[EVIL_HOST]["reason"]
    assert all(c["rss_bytes"] > 0 for c in hosts["ok1"]["status"]["components"])


def test_csv_report_has_a_row_per_host_and_component(outputs: dict[str, tuple[int, str]]) -> None:
    import csv
    import io

    code, text = outputs["csv"]
    rows = list(csv.DictReader(io.StringIO(text)))
    assert code == 4
    assert {(r["host"], r["component"]) for r in rows if r["host"] == "ok1"} == {("ok1", c) for c in ("ps", "is", "svg")}
    assert all(int(r["rss_bytes"]) > 0 and r["state"] == "RUNNING" for r in rows if r["host"] == "ok1")
    down = [r for r in rows if r["host"] == "down"]
    assert len(down) == 1 and down[0]["result"] == "unreachable" and down[0]["component"] == ""
    ps = next(r for r in rows if r["host"] == "deg" and r["component"] == "ps")
    assert ps["state"] == "EXITED" and ps["rss_bytes"] == ""
    assert {r["host"] for r in rows} == set(ALL)


def test_markdown_report_lists_what_is_wrong(outputs: dict[str, tuple[int, str]]) -> None:
    code, text = outputs["md"]
    assert code == 4
    assert "**hosts=5** ok=2 degraded=1 failed=1 unreachable=1 skipped=0" in text
    wrong = text.split("## What is wrong")[1].split("## Hosts")[0]
    assert "**deg** degraded" in wrong and "**down** unreachable" in wrong
    assert "<script>" not in text and "&lt;script&gt;" in text
    assert sum(1 for line in text.splitlines() if line.startswith("| ")) == 1 + 5  # header + hosts


def test_html_report_is_self_contained_and_escapes_host_values(outputs: dict[str, tuple[int, str]]) -> None:
    code, page = outputs["html"]
    assert code == 4
    assert page.count("<script") == 1  # ours; the host's name and reason are text
    assert html.escape(EVIL_HOST) in page or "&lt;script&gt;alert(&#39;host&#39;)&lt;/script&gt;" in page
    assert "&lt;script&gt;alert(&#39;reason&#39;)&lt;/script&gt;" in page
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)  # no network
    assert "Content-Security-Policy" in page and "default-src 'none'" in html.unescape(page)
    assert 'name="viewport"' in page
    for name in ("ok1", "ok2", "deg", "down"):
        assert f'data-v="{name}"' in page
    assert 'class="badge r-unreachable"' in page and "s-RUNNING" in page and '<svg class="bar"' in page


# ------------------------------------------------------------------ history
def _trends(doc: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(h["host"], cid): t for h in doc["hosts"] for cid, t in (h.get("trends") or {}).items()}


def test_history_after_three_runs_with_a_restart_in_between(lab: Lab) -> None:
    db = lab.dir / "history.sqlite"
    args = ("-l", "ok*:deg", "--history", str(db), "--format", "json")
    first = report(lab, *args)
    second = report(lab, *args)
    assert first.returncode == second.returncode == 2, first.stderr  # deg is degraded
    hv = lab.hosts["ok1"]
    subprocess.run([hv["imageserving_command"], "--home", hv["imageserving_home"], "--config",
                    hv["imageserving_config"], "restart", "is"], check=True, capture_output=True, timeout=60)
    page = lab.dir / "trends.html"
    third = report(lab, *args[:-2], "--keep-days", "30", "-o", str(page))
    fourth_json = report(lab, *args)  # a 4th run, to read the trends as JSON too
    assert third.returncode == 2 and fourth_json.returncode == 2

    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("SELECT version FROM schema_version").fetchone()[0] >= 1
        assert conn.execute("SELECT count(*) FROM runs").fetchone()[0] == 4
        rows = conn.execute("SELECT run_id, pid, rss_bytes FROM component_samples WHERE host='ok1' AND component='is' "
                            "ORDER BY run_id").fetchall()
        assert len(rows) == 4 and rows[0][1] == rows[1][1] != rows[2][1] == rows[3][1]
        assert conn.execute("SELECT count(*) FROM host_results WHERE host='deg' AND result='degraded'").fetchone()[0] == 4

    third_page = page.read_text()
    ok1_row = re.search(r'<tr class="host-row[^"]*"[^>]*>\s*<th[^>]*data-v="ok1".*?</tr>', third_page, re.S)
    assert ok1_row and "restarted" in ok1_row.group(0) and '<svg class="spark"' in ok1_row.group(0)
    ok2_row = re.search(r'<tr class="host-row[^"]*"[^>]*>\s*<th[^>]*data-v="ok2".*?</tr>', third_page, re.S)
    assert ok2_row and ">restarted<" not in ok2_row.group(0)
    assert "trends over the last 3 runs" in third_page

    trends = _trends(json.loads(fourth_json.stdout))
    assert len(trends[("ok1", "is")]["rss"]) == 4 and all(v > 0 for v in trends[("ok1", "is")]["rss"])
    assert trends[("ok1", "is")]["restarts"] == 1
    assert trends[("ok1", "is")]["restarted"] is False  # run 4: nothing happened since run 3
    assert trends[("ok1", "ps")]["restarts"] == 0 and trends[("ok2", "is")]["restarts"] == 0


def test_two_cron_runs_at_once_share_the_history(lab: Lab) -> None:
    db = lab.dir / "concurrent.sqlite"
    for _round in range(2):  # the first round also races the schema creation
        argv = [sys.executable, "-m", "imageserving_fleet.fleet.main", "-i", str(lab.inventory()), "--ssh-config",
                str(lab.sshd.ssh_config_path), "-l", "ok*", "report", "--history", str(db), "--format", "json"]
        env = {k: v for k, v in os.environ.items() if k != "SSH_AUTH_SOCK"}
        procs = [subprocess.Popen(argv + ["-o", str(lab.dir / f"c{i}.json")], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True, env=env) for i in range(2)]
        for proc in procs:
            out, err = proc.communicate(timeout=120)
            assert proc.returncode == 0 and not err, (out, err)
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("SELECT count(*) FROM runs").fetchone()[0] == 4
        assert conn.execute("SELECT count(*) FROM schema_version").fetchone()[0] == 1
        assert conn.execute("SELECT count(*) FROM component_samples").fetchone()[0] == 4 * 2 * 3


# ---------------------------------------------------------------- atomicity
READER = r"""
import os, sys, time
path, stop = sys.argv[1], sys.argv[2]
reads = bad = 0
while not os.path.exists(stop):
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except FileNotFoundError:
        continue
    reads += 1
    if reads == 1:
        print("reading", flush=True)
    if not (text.startswith("<!doctype html>") and text.rstrip().endswith("</html>")):
        bad += 1
print(reads, bad)
"""


def test_a_reader_never_sees_a_partial_report(lab: Lab, outputs: dict[str, tuple[int, str]]) -> None:
    """Twenty writes of the page while another process reads it in a loop.

    The first write is a report run against the fleet; the twenty are `report merge` of that run's
    JSON (the same render-and-write path, without twenty SSH rounds) called in this process through
    the CLI's main(), titles alternating so that every write replaces the file with other bytes.
    """
    from imageserving_fleet.fleet.main import main

    page, stop = lab.dir / "atomic.html", lab.dir / "atomic.stop"
    assert report(lab, "-o", str(page)).returncode == 4
    source = lab.dir / "atomic-source.json"
    source.write_text(outputs["json"][1])
    reader = subprocess.Popen([sys.executable, "-c", READER, str(page), str(stop)], stdout=subprocess.PIPE, text=True)
    codes = []
    try:
        assert reader.stdout is not None and reader.stdout.readline() == "reading\n"  # before the first write
        for i in range(20):
            with pytest.raises(SystemExit) as exited:
                main(["report", "merge", str(source), "--title", f"write {i}", "--format", "html", "-o", str(page)])
            codes.append(exited.value.code)
    finally:
        stop.touch()
        out, _ = reader.communicate(timeout=30)
    assert codes == [4] * 20 and "<title>write 19:" in page.read_text()
    reads, bad = map(int, out.split())
    assert reads > 20 and bad == 0, (reads, bad)
    assert not [p for p in lab.dir.iterdir() if p.name.startswith(".atomic.html.")]  # no temp files left
    assert page.stat().st_mode & 0o044 == 0o044  # readable by a web server, not 0600 like mkstemp's


# ---------------------------------------------------------------- quiet
def test_quiet_says_nothing_when_all_is_ok_and_a_summary_otherwise(lab: Lab) -> None:
    calm = report(lab, "-l", "ok*", "--quiet", "-o", str(lab.dir / "q.html"))
    assert (calm.returncode, calm.stdout, calm.stderr) == (0, "", "")
    calm_stdout = report(lab, "-l", "ok*", "--quiet", "--format", "md")
    assert (calm_stdout.returncode, calm_stdout.stdout, calm_stdout.stderr) == (0, "", "")
    loud = report(lab, "--quiet", "-o", str(lab.dir / "q.html"))
    lines = loud.stdout.splitlines()
    assert loud.returncode == 4 and loud.stderr == ""
    assert lines[0] == "hosts=5 ok=2 degraded=1 failed=1 unreachable=1 skipped=0"
    assert any(line.startswith("down: unreachable: refused") for line in lines)
    assert any(line.startswith("deg: degraded") for line in lines) and not any("ok1" in line for line in lines)
    assert (lab.dir / "q.html").read_text().count('class="host-row') == 5


# ---------------------------------------------------------------- slices
def test_slices_cover_the_fleet_once_and_merge_into_one_page(lab: Lab) -> None:
    parts = []
    for k in (1, 2, 3):
        path = lab.dir / f"slice{k}.json"
        proc = report(lab, "--slice", f"{k}/3", "-o", str(path), "--timeout", "20")
        assert proc.returncode in (0, 2, 4), proc.stderr
        parts.append(json.loads(path.read_text()))
    names = [h["host"] for doc in parts for h in doc["hosts"]]
    assert sorted(names) == sorted(ALL)  # every host in exactly one slice
    assert [doc["slices"] for doc in parts] == [["1/3"], ["2/3"], ["3/3"]]

    merged = lab.dir / "merged.html"
    proc = report(lab, "merge", *(str(lab.dir / f"slice{k}.json") for k in (1, 2, 3)), "--format", "html",
                  "-o", str(merged))
    assert proc.returncode == 4 and "hosts=5 ok=2 degraded=1 failed=1 unreachable=1" in proc.stdout, proc.stderr
    page = merged.read_text()
    assert page.count('class="host-row') == 5 and "Missing slices" not in page
    partial = report(lab, "merge", str(lab.dir / "slice1.json"), "--format", "md")
    assert "Missing slices" in partial.stdout
    broken = lab.dir / "broken.json"
    broken.write_text('{"schema": 1, "command": "report", "hosts": [{"host": "x", "result": "fine"}]}')
    bad = report(lab, "merge", str(broken), "-o", str(lab.dir / "never.html"))
    assert bad.returncode == 1 and "broken.json" in bad.stderr and not (lab.dir / "never.html").exists()


def test_bad_report_options_fail_before_any_host(lab: Lab) -> None:
    for args in (("--format", "pdf"), ("--slice", "4/3"), ("--keep-days", "3"), ("-o", "/no/such/dir/x.html")):
        proc = report(lab, *args)
        assert proc.returncode == 5, (args, proc.stdout, proc.stderr)
        assert "Traceback" not in proc.stderr
    junk = lab.dir / "junk.sqlite"
    junk.write_text("this is not a database, and it is long enough to not be empty" * 20)
    proc = report(lab, "--history", str(junk))
    assert proc.returncode == 1 and "junk.sqlite" in proc.stderr


# ---------------------------------------------------------------- chromium
HARNESS = """<script>
window.addEventListener("load", function () {
  function order() {
    return Array.prototype.map.call(document.querySelectorAll("#hosts tbody tr"), function (r) {
      return [r.cells[0].dataset.v, r.hidden, (r.querySelector('[data-col="memory-is"]') || {dataset: {}}).dataset.v];
    });
  }
  function click(key) { document.querySelector('th[data-key="' + key + '"] button').click(); return order(); }
  var out = {ready: document.body.dataset.ready, initial: order()};
  out.hostAsc = click("host");
  out.hostDesc = click("host");
  out.memory = click("memory-is");
  var q = document.getElementById("q");
  q.value = "ok"; q.dispatchEvent(new Event("input"));
  out.filtered = order();
  out.shown = document.getElementById("shown").textContent;
  var pre = document.createElement("pre");
  pre.id = "harness";
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
</script>"""


def chromium_dom(url: str, profile: Path) -> str:
    argv = [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
            f"--user-data-dir={profile}", "--virtual-time-budget=5000", "--dump-dom", url]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=90)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install -y chromium)")
def test_the_page_in_chromium_lists_every_host_and_sorts(outputs: dict[str, tuple[int, str]], lab: Lab) -> None:
    _, page = outputs["html"]
    # The harness needs its own script to run: drop the page's CSP in this copy only.
    harnessed = re.sub(r'<meta http-equiv="Content-Security-Policy"[^>]*>', "", page)
    harnessed = harnessed.replace("</body>", HARNESS + "</body>")
    path = lab.dir / "harness.html"
    path.write_text(harnessed)
    started = time.monotonic()
    dom = chromium_dom(path.as_uri(), lab.dir / "chromium-profile")
    found = re.search(r'<pre id="harness">(.*?)</pre>', dom, re.S)
    assert found, dom[-3000:]
    out = json.loads(html.unescape(found.group(1)))
    assert out["ready"] == "1"
    assert [r[0] for r in out["initial"]] == list(ALL)
    plain_asc = [r[0] for r in out["hostAsc"] if r[0] != EVIL_HOST]
    assert plain_asc == sorted(plain_asc)
    assert [r[0] for r in out["hostDesc"]] == [r[0] for r in reversed(out["hostAsc"])]
    memory = [int(r[2]) for r in out["memory"] if r[2]]
    assert memory == sorted(memory, reverse=True) and len(memory) == 3  # ok1, ok2, deg
    assert [r[0] for r in out["memory"][3:]] == [r[0] for r in out["initial"] if r[0] not in ("ok1", "ok2", "deg")]
    assert sorted(r[0] for r in out["filtered"] if not r[1]) == ["ok1", "ok2"] and out["shown"] == "2 of 5 hosts"

    # The page as written, with its CSP: the script runs, and the address can ask for a sort.
    dom = chromium_dom(Path(lab.dir / "fleet.html").as_uri() + "#sort=host&dir=desc", lab.dir / "chromium-profile")
    assert 'data-ready="1"' in dom and 'data-sort="host:desc"' in dom
    rows = re.findall(r'<th scope="row" class="sticky host" data-col="host" data-v="([^"]*)"', dom)
    assert len(rows) == 5 and [r for r in rows if r[0] != "&"] == ["ok2", "ok1", "down", "deg"]
    assert "<script>alert" not in dom.split("<body")[1].split("<script>")[0]  # the host's script is text
    assert time.monotonic() - started < 60
