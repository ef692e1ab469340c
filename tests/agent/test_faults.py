"""Faults the Server Supervisor must survive, each with real processes: full or read-only log
directory, a deleted binary, a hung readiness check, a component that exits 0 at once under
`restart: always`, SIGSTOP, wall-clock jumps, and control clients that say nothing or far too much.

What "survive" means each time: the supervisor keeps running, answers `imageserving status`
promptly, keeps the healthy components' pids, and says what went wrong in status and Supervisor.log.
"""

from __future__ import annotations

import ast
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from .conftest import PROGS, Agent, component, config, free_port, prog, wait_for

PACKAGE = Path(__file__).resolve().parents[2] / "imageserving_fleet"


PROMPT = 2.5  # seconds: an answer, not a wait for the 5 s idle-client timeout (CI boxes can be loaded)


def timed_status(agent: Agent, *args: str) -> tuple[float, subprocess.CompletedProcess[str]]:
    """The supervisor's own answer time (in-process, no interpreter start-up), then the real CLI."""
    from imageserving_fleet.agent import client
    from imageserving_fleet.home import Home

    started = time.monotonic()
    reply = client.request(Home(str(agent.home.resolve())), {"cmd": "status"}, timeout=10)
    elapsed = time.monotonic() - started
    assert reply["status"] == "ok", reply
    return elapsed, agent.run("status", *args, timeout=30)


def spew(heartbeat: Path) -> list[str]:
    """A component that writes ~1 MB/s to stdout and touches `heartbeat` after every line: if the
    supervisor stopped draining its pipe, the heartbeat would stop."""
    code = ("import sys, time, os\n"
            f"hb = {str(heartbeat)!r}\n"
            "n = 0\n"
            "while True:\n"
            "    n += 1\n"
            "    sys.stdout.write(f'{n:08d} ' + 'x' * 1000 + '\\n'); sys.stdout.flush()\n"
            "    if n % 50 == 0:\n"
            "        open(hb, 'w').write(str(n))\n"
            "    time.sleep(0.001)\n")
    return [sys.executable, "-c", code]


def beats(path: Path) -> int:
    try:
        return int(path.read_text() or 0)
    except (OSError, ValueError):
        return 0


# ------------------------------------------------------------------ log directory


@pytest.fixture
def small_logs(agent: Agent) -> Iterator[Path]:
    """<home>/logs on its own 64 KiB tmpfs (we are root in CI); skips where mount is not allowed."""
    logs = agent.home / "logs"
    logs.mkdir(parents=True)
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k,mode=0755", "tmpfs", str(logs)],
                                           capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root and CAP_SYS_ADMIN)")
    try:
        yield logs
    finally:
        agent.cleanup()
        subprocess.run(["umount", "-l", str(logs)], capture_output=True)


def test_full_then_read_only_log_directory(agent: Agent, small_logs: Path, tmp_path: Path) -> None:
    port, hb = free_port(), tmp_path / "heartbeat"
    agent.write("supervisor:\n  log_max_bytes: 1MiB\n  log_backups: 1\n" + config(
        component("is", prog("listen", str(port)), ready={"tcp": f"127.0.0.1:{port}"}),
        component("svg", spew(hb)),
    ))
    agent.run("start", check=True)
    pids = agent.pids()
    # 64 KiB fill in well under a second at ~1 MB/s.
    wait_for(lambda: os.statvfs(small_logs).f_bavail == 0, timeout=60)
    before = beats(hb)
    wait_for(lambda: beats(hb) > before + 200, timeout=60)  # the component is not blocked on its pipe
    elapsed, proc = timed_status(agent, "--json")
    assert proc.returncode == 0 and elapsed < PROMPT, (elapsed, proc.stderr)
    # State changes still happen with nowhere to log them.
    os.kill(pids["is"], signal.SIGKILL)
    wait_for(lambda: (c := agent.comp("is"))["state"] == "RUNNING" and c["pid"] != pids["is"])

    # Unwritable: a read-only file system mounted over the directory (root ignores file modes, and
    # a busy tmpfs cannot be remounted read-only). Writes on the old files fail, reopening gives EROFS.
    subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=4k", "tmpfs", str(small_logs)], check=True)
    try:
        before = beats(hb)
        wait_for(lambda: beats(hb) > before + 200, timeout=60)
        elapsed, proc = timed_status(agent)
        assert proc.returncode == 0 and elapsed < PROMPT
        assert agent.pids()["svg"] == pids["svg"]
    finally:
        subprocess.run(["umount", str(small_logs)], check=True)

    # Room again: logging resumes (within logfiles.RETRY_AFTER) and says how much was lost.
    subprocess.run(["mount", "-o", "remount,size=8m", str(small_logs)], check=True)
    wait_for(lambda: "bytes of log lost" in agent.log("svg"), timeout=60)
    os.kill(agent.pids()["is"], signal.SIGKILL)
    wait_for(lambda: "is RUNNING -> BACKOFF" in agent.log() or "is RUNNING -> STARTING" in agent.log())
    assert agent.run("stop").returncode == 0
    assert agent.tagged() == []


# ---------------------------------------------------------------- binary deleted


def test_binary_deleted_while_running(agent: Agent, tmp_path: Path) -> None:
    port, other = free_port(), free_port()
    binary = tmp_path / "ImageServer"
    binary.write_text(f"#!{sys.executable}\n" + Path(PROGS).read_text())
    binary.chmod(0o755)
    agent.write(config(
        component("is", [str(binary), "listen", str(port)], ready={"tcp": f"127.0.0.1:{port}"}, start_retries=2,
                  backoff={"initial": "100ms", "max": "200ms", "reset_after": "60s"}),
        component("svg", prog("listen", str(other)), ready={"tcp": f"127.0.0.1:{other}"}),
    ))
    agent.run("start", check=True)
    pids = agent.pids()
    binary.unlink()  # an upgrade gone wrong: the running process keeps its inode
    assert agent.comp("is")["state"] == "RUNNING"
    os.kill(pids["is"], signal.SIGKILL)
    comp = wait_for(lambda: (c := agent.comp("is"))["state"] == "FATAL" and c, timeout=60)
    assert "No such file" in comp["message"] or "cannot start" in comp["message"], comp
    assert agent.pids()["svg"] == pids["svg"]
    elapsed, proc = timed_status(agent)
    assert proc.returncode == 1 and elapsed < PROMPT  # a requested component not RUNNING
    # Put it back: an explicit start clears FATAL.
    binary.write_text(f"#!{sys.executable}\n" + Path(PROGS).read_text())
    binary.chmod(0o755)
    assert agent.run("start").returncode == 0
    assert agent.comp("is")["state"] == "RUNNING"


# ------------------------------------------------------------- hung readiness check


def test_a_hung_readiness_check_fails_the_start_in_time_and_is_killed(agent: Agent) -> None:
    port = free_port()
    marker = "987.654321"  # a sleep nobody else runs
    agent.write(config(
        component("is", prog("listen", str(port)), ready={"tcp": f"127.0.0.1:{port}"}),
        component("svg", prog("listen", str(free_port())), ready={"command": ["sleep", marker]},
                  ready_timeout="1s", start_retries=1, start_priority=2),
    ))
    holder: dict[str, subprocess.CompletedProcess[str]] = {}
    starter = threading.Thread(target=lambda: holder.update(p=agent.run("start")))
    began = time.monotonic()
    starter.start()
    wait_for(lambda: agent.supervisor_pid())
    wait_for(lambda: agent.comp("is")["state"] == "RUNNING")
    elapsed, proc = timed_status(agent, "--json")  # the supervisor answers while the check hangs
    assert elapsed < PROMPT, elapsed
    starter.join(60)
    took = time.monotonic() - began
    assert holder["p"].returncode == 1 and "svg failed to start" in holder["p"].stderr, holder["p"].stderr
    assert took < 60, took  # the check would hang for 16 minutes: the 1 s ready_timeout ended it
    assert agent.comp("svg")["state"] == "FATAL"

    def hung_checks() -> list[psutil.Process]:
        return [p for p in psutil.process_iter(["cmdline"]) if p.info["cmdline"] == ["sleep", marker]]

    wait_for(lambda: not hung_checks(), timeout=60)  # killed after COMMAND_PROBE_TIMEOUT, and reaped
    assert agent.comp("is")["state"] == "RUNNING"


# ------------------------------------------------------- exit 0 under restart: always


def test_clean_exit_at_once_under_restart_always_is_fatal_not_a_hot_loop(agent: Agent) -> None:
    agent.write(config(component("is", ["/bin/true"], restart="always", start_retries=3, start_delay="1s",
                                 backoff={"initial": "100ms", "max": "400ms", "reset_after": "60s"})))
    proc = agent.run("start")
    assert proc.returncode == 1 and "is failed to start" in proc.stderr
    comp = agent.comp("is")
    assert comp["state"] == "FATAL" and comp["last_exit"] == "exit 0"
    assert agent.log().count("is STARTING -> BACKOFF") == 2  # then the third failure gives up


def test_clean_exit_after_running_restarts_with_backoff(agent: Agent) -> None:
    # No start_delay and no check: RUNNING at once, then exit 0, forever. restart: always must
    # restart it, and the backoff must keep that from becoming a fork bomb.
    agent.write(config(component("is", prog("clean-exit"), restart="always", start_delay="0s", start_retries=1000,
                                 backoff={"initial": "200ms", "max": "1s", "reset_after": "60s"})))
    began = time.monotonic()
    agent.run("start")
    # Polled slowly: each status answer costs the supervisor CPU too.
    wait_for(lambda: agent.comp("is")["restarts"] >= 4, every=0.5)
    # The back-off between restarts is a lower bound on the time they take, which no slow machine breaks:
    # 200 ms + 400 ms + 800 ms before the fourth (a hot loop would do thousands in that time).
    assert time.monotonic() - began >= 1.4
    sup = psutil.Process(agent.supervisor_pid())
    cpu = sup.cpu_percent(1.0)
    assert cpu < 50, cpu  # a restart a second; a hot loop would hold a core


# ------------------------------------------------------------------------ SIGSTOP


def test_sigstop_of_a_component(agent: Agent) -> None:
    port, other = free_port(), free_port()
    agent.write(config(
        component("is", prog("listen", str(port)), ready={"tcp": f"127.0.0.1:{port}"}, stop_timeout="2s"),
        component("svg", prog("listen", str(other)), ready={"tcp": f"127.0.0.1:{other}"}),
    ))
    agent.run("start", check=True)
    pids = agent.pids()
    os.kill(pids["is"], signal.SIGSTOP)
    try:
        elapsed, proc = timed_status(agent)
        # A stopped process is alive: the supervisor reports it as it is, and does not hang on it.
        assert elapsed < PROMPT and proc.returncode == 0
        started = time.monotonic()
        assert agent.run("restart", "is").returncode == 0  # SIGTERM + SIGCONT: it wakes and dies
        assert time.monotonic() - started < 60  # SIGCONT sent: not a wait for a stopped process forever
        new = agent.pids()
        assert new["is"] != pids["is"] and new["svg"] == pids["svg"]
        assert psutil.Process(new["is"]).status() != psutil.STATUS_STOPPED
        os.kill(new["is"], signal.SIGSTOP)
        started = time.monotonic()
        assert agent.run("stop").returncode == 0
        assert time.monotonic() - started < 60
        assert agent.tagged() == []
    finally:
        for pid in (pids["is"],):
            try:
                os.kill(pid, signal.SIGCONT)
            except OSError:
                pass


# ----------------------------------------------------------------- clock jumps

# Wall-clock reads allowed in the agent and the fleet: timestamps a person reads, nothing else.
WALL_CLOCK_OK = {("agent/statusdoc.py", "status_doc"), ("agent/control.py", "down_status"), ("agent/logfiles.py", "stamp"),
                 # metrics: Unix start times for Prometheus; the exporter's log stamps; the watch view's clock
                 ("agent/cli.py", "metrics"), ("agent/metrics_listener.py", "supervisor_snapshot"),
                 ("agent/metrics_listener.py", "snapshot"), ("fleet/exporter.py", "on_round"), ("fleet/exporter.py", "make_log"),
                 ("fleet/exporter.py", "log"), ("fleet/watch.py", "watch"),
                 # a report's generation time and the history's run time (reports/ is exempt as a whole)
                 ("fleet/commands/report.py", "_now"),
                 # a host certificate's validity interval is wall-clock time by definition
                 ("fleet/ssh/known_hosts.py", "_check_certificate"),
                 # `logs --since`: compared with the times written in the log lines
                 ("agent/cli.py", "logs"),
                 # the live page's "last poll" before the first one
                 ("fleet/exporter.py", "__init__")}


def _wall_clock_calls() -> list[tuple[str, str, int]]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = str(path.relative_to(PACKAGE))
        tree = ast.parse(path.read_text())
        for func in [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]:
            for node in ast.walk(func):
                if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                    name = ast.unparse(node.func)
                    if name in ("time.time", "time.time_ns", "datetime.now", "datetime.utcnow", "datetime.datetime.now"):
                        found.append((rel, func.name, node.lineno))
    return found


def test_timers_never_read_the_wall_clock() -> None:
    """The clock jumping (NTP step, a VM resumed, an operator's `date -s`) cannot move a timeout,
    a backoff or an uptime: every timer uses time.monotonic, and the wall clock is read only to
    print a timestamp. Changing the system clock inside a test would disturb every other process
    on the machine, so this is checked on the source, and by the next test on the state machine."""
    bad = [(f, fn, line) for f, fn, line in _wall_clock_calls()
           if (f, fn) not in WALL_CLOCK_OK and not f.startswith(("fleet/reports/", "fleet/deploy/"))]
    assert bad == [], bad


def test_the_state_machine_runs_on_the_time_it_is_given(monkeypatch: pytest.MonkeyPatch) -> None:
    from imageserving_fleet.agent.config import parse_config
    from imageserving_fleet.agent.states import Exited, Proc, Spawned, Start, State, Tick, step

    def jumped() -> float:
        raise AssertionError("the wall clock was read")

    monkeypatch.setattr(time, "time", jumped)
    cfg = parse_config("components:\n  is:\n    command: [x]\n    start_delay: 1s\n    "
                       "backoff: {initial: 2s, max: 8s, reset_after: 60s}\n").component("is")
    t = 1000.0  # an arbitrary monotonic origin
    p, _ = step(Proc(), cfg, Start(), t)
    p, _ = step(p, cfg, Spawned(42), t)
    p, _ = step(p, cfg, Tick(), t + 1.5)
    assert p.state == State.RUNNING
    p, _ = step(p, cfg, Exited(42, "exit 1", False), t + 2)
    assert p.state == State.STARTING  # the first quick crash restarts at once
    p, _ = step(p, cfg, Spawned(43), t + 2)
    p, _ = step(p, cfg, Tick(), t + 3.5)
    p, _ = step(p, cfg, Exited(43, "exit 1", False), t + 4)
    assert p.state == State.BACKOFF and p.deadline == t + 4 + 2  # the next waits backoff.initial
    p2, actions = step(p, cfg, Tick(), t + 5.9)
    assert p2.state == State.BACKOFF and not actions  # the backoff waits on the times it is fed
    p3, _ = step(p, cfg, Tick(), t + 6)
    assert p3.state == State.STARTING


# ---------------------------------------------------------- hostile control clients


def test_silent_and_flooding_control_clients(agent: Agent) -> None:
    port = free_port()
    agent.write(config(component("is", prog("listen", str(port)), ready={"tcp": f"127.0.0.1:{port}"})))
    agent.run("start", check=True)
    sock_path = str(agent.home / "run" / "supervisor.sock")
    sup = psutil.Process(agent.supervisor_pid())
    rss_before = sup.memory_info().rss

    silent = []
    for _ in range(100):  # connect and say nothing
        s = socket.socket(socket.AF_UNIX)
        s.connect(sock_path)
        silent.append(s)
    flood_result: dict[str, object] = {}

    def flood() -> None:
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(10)
        s.connect(sock_path)
        sent = 0
        try:
            while sent < 10 * 2**20:
                sent += s.send(b"x" * 65536)
        except OSError as exc:
            flood_result["error"] = type(exc).__name__
        flood_result["sent"] = sent
        try:
            flood_result["reply"] = s.recv(4096)
        except OSError:
            pass
        s.close()

    t = threading.Thread(target=flood)
    t.start()
    try:
        for _ in range(3):
            elapsed, proc = timed_status(agent, "--json")
            assert proc.returncode == 0 and elapsed < PROMPT, (elapsed, proc.stderr)
        t.join(30)
        assert not t.is_alive()
        assert int(flood_result["sent"]) < 10 * 2**20, flood_result  # cut off, not read to the end  # type: ignore[call-overload]
        # The silent ones are answered and closed after CLIENT_IDLE.
        silent[0].settimeout(15)
        reply = silent[0].recv(4096)
        assert b"request not received in time" in reply or reply == b""
    finally:
        for s in silent:
            s.close()
    assert sup.memory_info().rss - rss_before < 8 * 2**20
    assert agent.comp("is")["state"] == "RUNNING"
    assert sup.is_running()


def test_a_start_that_asks_after_the_launched_supervisor_gave_up_gets_that_outcome(agent: Agent) -> None:
    """`imageserving start` launches the supervisor (which starts everything) and then asks it to
    start. On a loaded host the first start can be over, FATAL, before the question arrives: the
    answer is that outcome, not a second start that clears FATAL and runs the backoff again."""
    from imageserving_fleet.agent import client, control
    from imageserving_fleet.agent.config import load_config
    from imageserving_fleet.home import Home

    path = agent.write(config(component("is", ["/bin/true"], restart="always", start_retries=3, start_delay="1s",
                                        backoff={"initial": "100ms", "max": "400ms", "reset_after": "60s"})))
    home = Home(str(agent.home.resolve()))
    home.prepare()
    control._launch(home, load_config(str(path)))  # the launch alone, as a slow client leaves it
    wait_for(lambda: agent.comp("is")["state"] == "FATAL")
    reply = client.request(home, {"cmd": "start", "ids": [], "after_launch": True}, timeout=30)
    assert reply["status"] == "error" and "is" in reply.get("failed", []), reply
    assert agent.comp("is")["state"] == "FATAL"
    assert agent.log().count("is STARTING -> BACKOFF") == 2  # the one start's failures, no more
