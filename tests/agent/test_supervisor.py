"""The Server Supervisor with real child processes, real signals and real ports."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import psutil
import pytest

from .conftest import Agent, component, config, free_port, port_free, prog, wait_for


def three(ps_port: int, is_port: int, svg_port: int, **is_settings: object) -> str:
    """The Image Serving topology: is and svg at priority 1 with tcp checks, ps at 2."""
    return config(
        component("is", prog("listen", str(is_port)), ready={"tcp": f"127.0.0.1:{is_port}"},
                  start_priority=1, **is_settings),
        component("svg", prog("listen", str(svg_port)), ready={"tcp": f"127.0.0.1:{svg_port}"}, start_priority=1),
        component("ps", prog("listen", str(ps_port)), ready={"tcp": f"127.0.0.1:{ps_port}"}, start_priority=2),
    )


@pytest.fixture
def stack(agent: Agent) -> Agent:
    agent.ports = [free_port(), free_port(), free_port()]  # type: ignore[attr-defined]
    agent.write(three(*agent.ports))  # type: ignore[attr-defined]
    proc = agent.run("start", check=True)
    assert "RUNNING" in proc.stdout
    return agent


def test_ordered_start_waits_for_readiness(agent: Agent) -> None:
    ps, is_, svg = free_port(), free_port(), free_port()
    # is only listens after 1 s: ps (priority 2) must not start before is is ready.
    slow_is = [sys.executable, "-c",
               f"import time,runpy,sys; time.sleep(1); sys.argv=['p','listen','{is_}']; "
               f"runpy.run_path({prog()[1]!r}, run_name='__main__')"]
    agent.write(config(
        component("is", slow_is, ready={"tcp": f"127.0.0.1:{is_}"}),
        component("svg", prog("listen", str(svg)), ready={"tcp": f"127.0.0.1:{svg}"}),
        component("ps", prog("listen", str(ps)), ready={"tcp": f"127.0.0.1:{ps}"}, start_priority=2),
    ))
    proc = agent.run("start")
    assert proc.returncode == 0, proc.stderr
    log = agent.log()
    assert log.index("is STARTING -> RUNNING") < log.index("ps STOPPED -> STARTING")
    assert log.index("svg STARTING -> RUNNING") < log.index("ps STOPPED -> STARTING")
    assert all(c["state"] == "RUNNING" for c in agent.status()["components"])
    # stop runs in reverse: ps first
    assert agent.run("stop").returncode == 0
    log = agent.log()
    assert log.index("ps STOPPING -> STOPPED") < log.index("is RUNNING -> STOPPING")


def test_status_reports_uptime_memory_and_exit_codes(stack: Agent) -> None:
    doc = stack.status()
    assert doc["schema"] == 1 and doc["supervisor"]["state"] == "RUNNING"
    assert doc["supervisor"]["rss_bytes"] > 1_000_000
    for c in doc["components"]:
        assert c["state"] == "RUNNING" and c["pid"] > 0 and c["rss_bytes"] > 1_000_000
        assert c["uptime_s"] >= 0 and c["restarts"] == 0
    assert stack.run("status").returncode == 0
    assert stack.run("status", "IS").returncode == 0  # ids are case-insensitive
    bad = stack.run("status", "nope")
    assert bad.returncode == 2 and "valid ids: is, svg, ps" in bad.stderr
    human = stack.run("status").stdout
    assert "Server Supervisor" in human and "MiB" in human


def test_restart_one_component_keeps_the_others(stack: Agent) -> None:
    before = stack.pids()
    proc = stack.run("restart", "is")
    assert proc.returncode == 0, proc.stderr
    after = stack.pids()
    assert after["is"] != before["is"]
    assert after["ps"] == before["ps"] and after["svg"] == before["svg"]
    assert stack.comp("is")["restarts"] == 1


def test_kill_9_of_a_component_gives_a_new_pid(stack: Agent) -> None:
    old = stack.comp("svg")["pid"]
    os.kill(old, signal.SIGKILL)
    c = wait_for(lambda: (c := stack.comp("svg"))["state"] == "RUNNING" and c["pid"] != old and c)
    assert c["restarts"] == 1 and c["last_exit"] == "signal KILL"


def test_crash_loop_backs_off_then_fatal_others_untouched(agent: Agent) -> None:
    port = free_port()
    agent.write(config(
        component("is", prog("listen", str(port)), ready={"tcp": f"127.0.0.1:{port}"}),
        component("svg", prog("crash-later", "0.3"), start_delay="1s", start_retries=3,
                  backoff={"initial": "200ms", "max": "1s", "reset_after": "60s"}, start_priority=2),
    ))
    proc = agent.run("start")
    assert proc.returncode == 1
    assert "svg failed to start" in proc.stderr and "svg.log" in proc.stderr
    is_pid = agent.comp("is")["pid"]
    svg = agent.comp("svg")
    assert svg["state"] == "FATAL" and "gave up after 3" in svg["message"]
    assert "svg STARTING -> BACKOFF" in agent.log()
    assert agent.comp("is")["pid"] == is_pid and agent.comp("is")["state"] == "RUNNING"
    assert agent.run("status").returncode == 1
    assert agent.run("status", "is").returncode == 0


def test_a_component_that_ran_long_enough_restarts_at_once(agent: Agent) -> None:
    agent.write(config(component("is", prog("crash-later", "0.6"), start_delay="50ms",
                                 backoff={"initial": "5s", "max": "5s", "reset_after": "300ms"})))
    agent.run("start", check=True)
    wait_for(lambda: agent.comp("is")["restarts"] >= 3, timeout=60)
    assert "BACKOFF" not in agent.log()  # each ran past reset_after: no 5 s back-off


def test_stop_kills_a_stubborn_tree_and_frees_its_port(agent: Agent) -> None:
    port = free_port()
    agent.write(config(component("is", prog("stubborn", str(port)), stop_timeout="1s",
                                 ready={"tcp": f"127.0.0.1:{port}"})))
    agent.run("start", check=True)
    assert not port_free(port)
    assert len(agent.tagged()) == 2  # the main process and its setsid grandchild
    started = time.monotonic()
    proc = agent.run("stop")
    assert proc.returncode == 0, proc.stderr
    assert time.monotonic() - started < 60  # killed after its stop_timeout: it would ignore SIGTERM forever
    assert agent.tagged() == []
    assert port_free(port)
    assert "did not stop within 1s, killed" in agent.log()


def test_kill_9_of_the_supervisor_then_start_adopts_one_copy(stack: Agent) -> None:
    """SPEC §2: unchanged configuration and output still reaching the log: adopted, not restarted."""
    old = stack.pids()
    sup = stack.supervisor_pid()
    assert sup
    os.kill(sup, signal.SIGKILL)
    wait_for(lambda: not psutil.pid_exists(sup) or psutil.Process(sup).status() == psutil.STATUS_ZOMBIE)
    assert stack.run("status").returncode == 3
    proc = stack.run("start")
    assert proc.returncode == 0, proc.stderr + stack.log()
    assert stack.pids() == old
    assert len(stack.tagged()) == 3  # one copy each
    assert all(f"{c}: adopted pid {old[c]}" in stack.log() for c in old)


def test_ten_concurrent_starts_make_one_supervisor(agent: Agent) -> None:
    agent.write(config(component("is", prog("listen", str(free_port())))))
    with ThreadPoolExecutor(10) as pool:
        results = list(pool.map(lambda _: agent.run("start"), range(10)))
    assert [r.returncode for r in results] == [0] * 10, [r.stderr for r in results]
    daemons = [p for p in psutil.process_iter(["cmdline"])
               if "imageserving_fleet.agent.daemon" in " ".join(p.info["cmdline"] or [])
               and str(agent.home) in " ".join(p.info["cmdline"] or [])]
    assert len(daemons) == 1
    assert len(agent.tagged()) == 1


def test_stale_socket_and_pid_file_after_reboot(agent: Agent) -> None:
    agent.write(config(component("is", prog("listen", str(free_port())))))
    run = agent.home / "run"
    run.mkdir(parents=True, mode=0o700)
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(run / "supervisor.sock"))  # a socket file nobody listens on
    s.close()
    (run / "supervisor.pid").write_text("999999\n")
    (run / "components.json").write_text('[{"id": "is", "pid": 1, "create_time": 1.0}]')
    assert agent.run("status").returncode == 3
    proc = agent.run("start")
    assert proc.returncode == 0, proc.stderr
    assert agent.supervisor_pid() != 999999
    assert agent.comp("is")["state"] == "RUNNING"


def test_broken_config_is_refused_and_the_running_supervisor_untouched(stack: Agent) -> None:
    sup, pids = stack.supervisor_pid(), stack.pids()
    good = stack.config.read_text()
    stack.config.write_text(good.replace("    stop_timeout:", "    stop_timeout: [oops\n    x:", 1))
    for args in (("restart",), ("start",), ("restart", "is"), ("config", "check")):
        proc = stack.run(*args)
        assert proc.returncode == 6, (args, proc.stderr)
        assert "agent.yaml:" in proc.stderr
    stack.config.write_text(good.replace('stop_timeout: "2s"', 'stop_timeout: "soon"', 1))
    proc = stack.run("restart")
    assert proc.returncode == 6
    assert f"agent.yaml:{good.splitlines().index([x for x in good.splitlines() if 'stop_timeout' in x][0]) + 1}" in proc.stderr
    assert "components.is.stop_timeout" in proc.stderr
    assert stack.supervisor_pid() == sup and stack.pids() == pids


def _as_nobody(sock_path: str) -> str:
    """Connects to the control socket from a forked child running as `nobody`; returns what it saw."""
    import pwd

    nobody = pwd.getpwnam("nobody")
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            os.close(r)
            os.setgid(nobody.pw_gid)
            os.setuid(nobody.pw_uid)
            s = socket.socket(socket.AF_UNIX)
            s.settimeout(10)
            s.connect(sock_path)
            try:
                s.sendall(b'{"cmd": "status"}\n')
            except BrokenPipeError:
                pass  # the supervisor refused and closed before our request arrived: its reply waits for us
            out = s.recv(4096)
        except OSError as exc:
            out = f"OSError: {exc}".encode()
        os.write(w, out)
        os._exit(0)
    os.close(w)
    data = b""
    while chunk := os.read(r, 4096):
        data += chunk
    os.close(r)
    os.waitpid(pid, 0)
    return data.decode()


def test_another_uid_is_refused_on_the_socket() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to act as another user")
    import shutil
    import tempfile
    from pathlib import Path

    root = Path(tempfile.mkdtemp(prefix="isf-uid-"))  # pytest's tmp dirs are 0700: nobody could not get near
    os.chmod(root, 0o755)
    stack = Agent(root)
    stack.write(config(component("is", prog("listen", str(free_port())))))
    try:
        stack.run("start", check=True)
        _check_uid_refused(stack)
    finally:
        stack.cleanup()
        shutil.rmtree(root, ignore_errors=True)


def _check_uid_refused(stack: Agent) -> None:
    sock_path = str(stack.home / "run" / "supervisor.sock")
    # By default the 0700 directory and 0600 socket keep others out entirely.
    assert "Permission denied" in _as_nobody(sock_path)
    # Even with the file modes opened up, the supervisor checks the peer's uid itself.
    os.chmod(stack.home, 0o755)
    os.chmod(stack.home / "run", 0o711)
    os.chmod(sock_path, 0o666)
    seen = _as_nobody(sock_path)
    assert "permission denied: not the supervisor's user" in seen and '"components"' not in seen
    assert "refused a control connection from uid" in stack.log()
    assert stack.status()["supervisor"]["state"] == "RUNNING"


def test_max_memory_restarts_a_growing_component(agent: Agent) -> None:
    agent.write(config(component("is", prog("leak", "60"), max_memory="30MiB", start_delay="50ms")))
    agent.run("start", check=True)
    c = wait_for(lambda: (c := agent.comp("is"))["restarts"] >= 1 and c, timeout=60)
    assert "max_memory" in agent.log()
    assert c["restarts"] >= 1


def test_sigterm_to_the_supervisor_stops_everything(stack: Agent) -> None:
    sup = stack.supervisor_pid()
    assert sup
    os.kill(sup, signal.SIGTERM)
    wait_for(lambda: not psutil.pid_exists(sup) or psutil.Process(sup).status() == psutil.STATUS_ZOMBIE)
    assert stack.tagged() == []
    assert all(port_free(p) for p in stack.ports)  # type: ignore[attr-defined]
    assert not (stack.home / "run" / "supervisor.sock").exists()


def test_start_and_stop_are_idempotent_with_lsb_codes(stack: Agent) -> None:
    proc = stack.run("start")
    assert proc.returncode == 0 and "already running" in proc.stdout
    assert stack.run("stop").returncode == 0
    proc = stack.run("stop")
    assert proc.returncode == 0 and "already stopped" in proc.stdout
    proc = stack.run("status")
    assert proc.returncode == 3 and "Server Supervisor is not running" in proc.stdout
    doc = stack.status()
    assert doc["supervisor"] == {"state": "STOPPED"} and doc["components"] == []
    assert stack.run("restart", "is").returncode == 7


def test_aliases_and_options_after_the_command(stack: Agent) -> None:
    before = stack.pids()
    proc = stack.run("reiniciar", "SVG")
    assert proc.returncode == 0, proc.stderr
    assert stack.pids()["svg"] != before["svg"]
    proc = stack.run("inicio")
    assert proc.returncode == 0 and "already running" in proc.stdout


def test_logs_show_component_output(stack: Agent) -> None:
    proc = stack.run("logs", "is", "-n", "5")
    assert proc.returncode == 0 and "listening on" in proc.stdout
    assert "is STARTING -> RUNNING" in stack.run("logs").stdout


def test_status_json_path_stays_light(stack: Agent) -> None:
    argv = [sys.executable, "-X", "importtime", "-m", "imageserving_fleet.agent.main",
            "--home", str(stack.home), "status", "--json"]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=30, env=stack.env)
    assert proc.returncode == 0
    imported = {line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines()}
    assert not {"typer", "psutil", "yaml", "click", "rich", "prometheus_client"} & imported


def test_sighup_reopens_log_files_after_logrotate_moved_them(stack: Agent) -> None:
    logs = stack.home / "logs"
    os.replace(logs / "Supervisor.log", logs / "Supervisor.log.rotated")  # what logrotate (no copytruncate) does
    os.replace(logs / "is.log", logs / "is.log.rotated")
    sup = stack.supervisor_pid()
    assert sup
    os.kill(sup, signal.SIGHUP)
    wait_for(lambda: (logs / "Supervisor.log").exists())
    assert "SIGHUP" in (logs / "Supervisor.log").read_text()
    assert stack.run("restart", "is").returncode == 0
    assert "is" in (logs / "Supervisor.log").read_text()
    wait_for(lambda: (logs / "is.log").exists())  # the new is writes to a new is.log
    assert stack.supervisor_pid() == sup


def test_supervise_runs_in_the_foreground_as_systemd_wants(agent: Agent) -> None:
    ports = [free_port(), free_port(), free_port()]
    agent.write(three(*ports))
    argv = [sys.executable, "-m", "imageserving_fleet.agent.main", "--home", str(agent.home),
            "--config", str(agent.config), "supervise"]
    proc = subprocess.Popen(argv, env=agent.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: (s := agent.status())["components"] and all(
            c["state"] == "RUNNING" for c in s["components"]), timeout=30)
        assert agent.supervisor_pid() == proc.pid  # no fork: the unit's main pid is the supervisor
        assert agent.run("start").returncode == 0  # a second one is not started beside it
        assert agent.supervisor_pid() == proc.pid
        proc.send_signal(signal.SIGTERM)  # systemctl stop
        assert proc.wait(timeout=30) == 0
        assert agent.tagged() == [] and all(port_free(p) for p in ports)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
