"""An operator's day, end to end over a real loopback sshd: the audit log, retry files and
`--limit @FILE`, rolling batches with hooks, the HTTP gate through a direct-tcpip channel, and a
lying host whose escape sequences must not reach the terminal.

Most hosts run a fake `imageserving` (a few lines of sh): what is tested is the controller. One
real agent with the demo stack proves what only it can: the supervisor's log names who asked, and
the gate GETs its ps through the host's SSH connection. The controller's HOME is a temporary
directory, so the audit log and retry files land there.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.sshd import SshServer, closed_port

from .fleetlab import Lab, wait_until
from .test_fleet_faults import STATUS, fake_agent

LIE = "boom \x1b]0;PWNED\x07 \x1b[2Jcleared"


def lying_agent(directory: Path) -> Path:
    """An agent whose restart fails with escape sequences on stderr, and whose log lines carry them."""
    path = directory / "liar"
    path.write_text(f"""#!/bin/sh
while [ $# -gt 0 ]; do case "$1" in --home|--config) shift 2;; *) break;; esac; done
case "$1" in
  restart) printf '{LIE}\\n' >&2; exit 1;;
  logs) printf 'GET /a\\033[31m HTTP/1.1 "Mozilla \\033]52;c;cm0gLXJm\\007"\\n'; exit 0;;
  *) cat {directory / 'status.json'};;
esac
""")
    path.chmod(0o755)
    status = dict(STATUS, message="")
    (directory / "status.json").write_text(json.dumps(status))
    return path


class Controller:
    """Runs imageserving-fleet against an inventory, as a user whose HOME is a temporary directory."""

    def __init__(self, sshd: SshServer, directory: Path) -> None:
        self.sshd, self.dir = sshd, directory
        self.home = directory / "home"
        self.home.mkdir(exist_ok=True)
        self.hosts: dict[str, dict[str, Any]] = {}

    def add(self, name: str, agent: Path | str, **overrides: Any) -> None:
        self.hosts[name] = {**self.sshd.inventory_vars(), "imageserving_command": str(agent),
                            "imageserving_home": f"/nonexistent/{name}", **overrides}

    def run(self, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        inventory = self.dir / "hosts.yml"
        inventory.write_text(yaml.safe_dump({"all": {"hosts": self.hosts}}, sort_keys=False))
        env = {k: v for k, v in os.environ.items() if k not in ("SSH_AUTH_SOCK", "IMAGESERVING_AUDIT_LOG")}
        env["HOME"] = str(self.home)
        argv = [sys.executable, "-m", "imageserving_fleet.fleet.main", "-i", str(inventory),
                "--ssh-config", str(self.sshd.ssh_config_path), *args]
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env, cwd=self.dir,
                              stdin=subprocess.DEVNULL)
        assert "Traceback" not in proc.stderr, proc.stderr
        return proc

    def json(self, *args: str, **kw: Any) -> tuple[int, dict[str, Any], str]:
        proc = self.run(*args, "--json", **kw)
        try:
            return proc.returncode, json.loads(proc.stdout), proc.stderr
        except ValueError:
            raise AssertionError(f"no JSON (exit {proc.returncode}): {proc.stdout!r} {proc.stderr!r}") from None

    @property
    def audit(self) -> Path:
        return self.home / ".imageserving-fleet" / "audit.jsonl"

    def audit_lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.audit.read_text().splitlines()] if self.audit.exists() else []


@pytest.fixture
def ctl(sshd: SshServer, tmp_path: Path) -> Controller:
    return Controller(sshd, tmp_path)


def calls(directory: Path) -> list[str]:
    path = directory / "calls.log"
    return path.read_text().splitlines() if path.exists() else []


# ------------------------------------------------------------ host output is untrusted
def test_a_lying_host_cannot_reach_the_terminal_raw(ctl: Controller, tmp_path: Path) -> None:
    ctl.add("liar", lying_agent(tmp_path))
    restart = ctl.run("-v", "restart")  # the table's reason column and the debug lines
    logs = ctl.run("logs", "ps")
    for proc in (restart, logs):
        for stream in (proc.stdout, proc.stderr):
            assert "\x1b" not in stream and "\x07" not in stream and "\x9b" not in stream, stream
    assert restart.returncode == 2
    shown = restart.stdout + restart.stderr
    assert "\\x1b]0;PWNED\\x07" in shown and "\\x1b[2Jcleared" in shown, shown  # shown, escaped
    assert '\\x1b[31m HTTP/1.1 "Mozilla \\x1b]52;c;cm0gLXJm\\x07"' in logs.stdout
    raw = ctl.run("logs", "ps", "--raw")
    assert "\x1b]52;c;cm0gLXJm\x07" in raw.stdout  # asked for: the bytes as they came
    assert ctl.audit_lines()[0]["hosts"][0]["reason"].endswith(LIE)  # JSON keeps the text (encoded)


# ------------------------------------------------------------------------ audit log
def test_a_change_appends_one_audit_line_and_a_read_does_not(ctl: Controller, tmp_path: Path) -> None:
    agent = fake_agent(tmp_path, "imageserving")
    ctl.add("h1", agent)
    ctl.add("h2", agent)
    assert ctl.run("status").returncode == 0
    assert not ctl.audit.exists()  # read-only: nothing written, not even created
    proc = ctl.run("-l", "h1", "restart", "ps")
    assert proc.returncode == 0, proc.stderr
    lines = ctl.audit_lines()
    assert len(lines) == 1
    line = lines[0]
    assert line["command"] == "restart ps" and line["limit"] == "h1" and line["exit"] == 0
    assert line["user"] and line["controller"] and line["time"].endswith("Z")
    assert line["hosts"] == [{"host": "h1", "result": "ok", "reason": ""}]
    assert line["argv"][-2:] == ["restart", "ps"] and line["inventory"] == [str(tmp_path / "hosts.yml")]
    assert oct(ctl.audit.stat().st_mode & 0o777) == "0o600"


def test_an_unwritable_audit_log_stops_the_change_before_any_host(ctl: Controller, tmp_path: Path) -> None:
    agent = fake_agent(tmp_path, "imageserving")
    ctl.add("h1", agent)
    proc = ctl.run("--audit-log", str(tmp_path), "restart")  # a directory
    assert proc.returncode == 1
    assert f"cannot write the audit log {tmp_path}" in proc.stderr
    assert calls(tmp_path) == []  # no host was contacted


# ---------------------------------------------------------------------- retry files
def test_an_unreachable_host_names_the_retry_file_and_limit_at_file_selects_it(ctl: Controller, tmp_path: Path
                                                                               ) -> None:
    agent = fake_agent(tmp_path, "imageserving")
    ctl.add("good1", agent)
    with closed_port() as port:
        ctl.add("gone", agent, ansible_port=port)
        ctl.add("good2", agent)
        code, doc, err = ctl.json("restart")
    retry = ctl.home / ".imageserving-fleet" / "retry" / "restart.retry"
    assert code == 4 and f"--limit @{retry}" in err
    assert retry.read_text() == "gone\n"
    assert len(ctl.audit_lines()) == 1 and ctl.audit_lines()[0]["exit"] == 4
    code, doc, _ = ctl.json("status", "--limit", f"@{retry}")
    assert [h["host"] for h in doc["hosts"]] == ["gone"]
    proc = ctl.run("status", "--limit", f"@{tmp_path}/no.retry")
    assert proc.returncode == 1 and f"@{tmp_path}/no.retry: no such file" in proc.stderr


# --------------------------------------------------------------------------- rolling
def test_serial_list_batches_and_hooks_in_order_around_each_host(ctl: Controller, tmp_path: Path) -> None:
    agent = fake_agent(tmp_path, "imageserving")
    for name in ("h1", "h2", "h3", "h4"):
        ctl.add(name, agent, imageserving_home=f"/nonexistent/{name}")
    journal = tmp_path / "calls.log"
    hook = 'echo "/nonexistent/$IMAGESERVING_HOST {} $IMAGESERVING_BATCH" >> ' + str(journal)
    code, doc, _ = ctl.json("restart", "--serial", "1,50%", "--before", hook.format("before"),
                            "--after", hook.format("after"))
    assert code == 0, doc
    assert doc["batches"] == [["h1"], ["h2", "h3"], ["h4"]]
    events = [line.split() for line in calls(tmp_path)]
    for host, batch in (("h1", "1"), ("h2", "2"), ("h3", "2"), ("h4", "3")):
        mine = [e[1] for e in events if e[0] == f"/nonexistent/{host}" and e[1] != "status"]
        assert mine == ["before", "restart", "restart", "after"], (host, events)  # restart begin, end
        assert [e[2] for e in events if e[0] == f"/nonexistent/{host}" and e[1] == "before"] == [batch]


def test_confirm_without_a_terminal_is_refused(ctl: Controller, tmp_path: Path) -> None:
    ctl.add("h1", fake_agent(tmp_path, "imageserving"))
    proc = ctl.run("restart", "--serial", "1", "--confirm")
    assert proc.returncode == 5 and "--confirm asks on the terminal" in proc.stderr
    assert calls(tmp_path) == [] and not ctl.audit.exists()


# -------------------------------------------------- a real agent: its log, the HTTP gate
@pytest.fixture(scope="module")
def real(sshd: SshServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Lab, Controller]]:
    base = tmp_path_factory.mktemp("real")
    lab = Lab(sshd, base)
    ctl = Controller(sshd, base)
    hv = lab.add_host("ps01")
    ctl.hosts["ps01"] = hv
    try:
        assert ctl.run("start").returncode == 0
        yield lab, ctl
    finally:
        lab.stop_all()


def ps_port(lab: Lab) -> int:
    config = yaml.safe_load(Path(lab.hosts["ps01"]["imageserving_config"]).read_text())
    argv = config["components"]["ps"]["command"]
    return int(argv[argv.index("--port") + 1])


def test_the_supervisor_log_names_who_asked(real: tuple[Lab, Controller]) -> None:
    lab, ctl = real
    proc = ctl.run("restart", "svg")
    assert proc.returncode == 0, proc.stderr
    user = ctl.audit_lines()[-1]["user"]
    assert wait_until(lambda: re.search(rf"restart svg: asked by {re.escape(user)}@\S+ \(uid \d+\)", lab.log("ps01")))


def test_the_http_gate_asks_ps_through_the_ssh_connection(real: tuple[Lab, Controller]) -> None:
    lab, ctl = real
    url = f"http://127.0.0.1:{ps_port(lab)}/healthz"
    code, doc, _ = ctl.json("reload", "--gate-http", url)
    assert code == 0 and doc["hosts"][0]["result"] == "ok", doc
    with closed_port() as port:
        wrong = f"http://127.0.0.1:{port}/healthz"
        code, doc, _ = ctl.json("reload", "--gate-http", wrong, "--timeout", "3")
    assert code == 2
    assert doc["hosts"][0]["reason"].startswith(f"not serving: GET {wrong}: cannot connect from the host"), doc


@pytest.mark.parametrize("sig", ["SIGINT", "SIGHUP"])  # Ctrl-C; the operator's terminal or SSH session gone
def test_an_interrupted_change_still_writes_its_audit_line(ctl: Controller, tmp_path: Path, sig: str) -> None:
    import signal

    agent = fake_agent(tmp_path, "imageserving", on_run='[ "$1" = restart ] && sleep 60')
    ctl.add("h1", agent)
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(yaml.safe_dump({"all": {"hosts": ctl.hosts}}))
    env = {k: v for k, v in os.environ.items() if k not in ("SSH_AUTH_SOCK", "IMAGESERVING_AUDIT_LOG")}
    env["HOME"] = str(ctl.home)
    proc = subprocess.Popen([sys.executable, "-m", "imageserving_fleet.fleet.main", "-i", str(inventory),
                             "--ssh-config", str(ctl.sshd.ssh_config_path), "restart", "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            stdin=subprocess.DEVNULL)
    try:
        assert wait_until(lambda: any(c.endswith("restart begin") for c in calls(tmp_path)), 120)
        proc.send_signal(getattr(signal, sig))
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 99, err
    [line] = ctl.audit_lines()
    assert line["exit"] == 99 and line["command"] == "restart"
    assert [(h["host"], h["result"]) for h in line["hosts"]] == [("h1", "failed")]
    assert "interrupted" in line["hosts"][0]["reason"]


def test_confirm_on_a_terminal_runs_the_canary_then_asks(ctl: Controller, tmp_path: Path) -> None:
    import pty
    import select

    agent = fake_agent(tmp_path, "imageserving")
    for name in ("h1", "h2", "h3"):
        ctl.add(name, agent, imageserving_home=f"/nonexistent/{name}")
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(yaml.safe_dump({"all": {"hosts": ctl.hosts}}))
    env = {k: v for k, v in os.environ.items() if k not in ("SSH_AUTH_SOCK", "IMAGESERVING_AUDIT_LOG")}
    env["HOME"] = str(ctl.home)
    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "imageserving_fleet.fleet.main", "-i", str(inventory),
                             "--ssh-config", str(ctl.sshd.ssh_config_path), "restart", "--serial", "1",
                             "--confirm", "--json"],
                            stdin=slave, stderr=slave, stdout=subprocess.PIPE, text=True, env=env)
    os.close(slave)
    seen = b""
    try:
        for answer in (b"y\n", b"n\n"):  # batch 2: yes; batch 3: no
            prompts = seen.count(b"go on? [y/N]")
            while seen.count(b"go on? [y/N]") == prompts:
                ready, _, _ = select.select([master], [], [], 120)
                assert ready, seen
                seen += os.read(master, 4096)
            os.write(master, answer)
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)
    assert b"batch 2/3 (h2): go on? [y/N]" in seen and b"batch 3/3 (h3): go on? [y/N]" in seen
    doc = json.loads(out)
    assert [(h["host"], h["result"]) for h in doc["hosts"]] == [("h1", "ok"), ("h2", "ok"), ("h3", "skipped")]
    assert proc.returncode == 2
    assert [c.split()[0] for c in calls(tmp_path) if c.endswith("restart begin")] == ["/nonexistent/h1",
                                                                                      "/nonexistent/h2"]


def test_a_cluster_run_is_recorded_too(ctl: Controller, tmp_path: Path) -> None:
    """The hosts' work runs on a dask worker (--cluster local:1); the controller still writes the line."""
    ctl.hosts["here"] = {"ansible_connection": "local", "imageserving_command": "/bin/false"}
    code, doc, err = ctl.json("--cluster", "local:1", "restart")
    assert code == 2 and doc["hosts"][0]["worker"], doc
    [line] = ctl.audit_lines()
    assert line["hosts"] == [{"host": "here", "result": "failed", "reason": "agent error (exit 1)"}]
    assert line["exit"] == 2 and "--limit @" in err
