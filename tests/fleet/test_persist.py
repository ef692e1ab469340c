"""The connection holder with real processes (SPEC §9): a real sshd that logs every login, real accounts.

What only real parts can show: a warm command opens no SSH connection (sshd's own log counts
them), the holder leaves when idle and nothing outlives --persist 0 (the process table), a host
key changed while a connection was kept is refused on reconnect, and another account gets no
answer from this one's holder (a throwaway user, the kernel's SO_PEERCRED).

The suite runs with IMAGESERVING_PERSIST=0 (tests/conftest.py); these tests turn it on for their
own commands, each in a directory of its own, and end every holder they start.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.sshd import SshServer, keygen, silent_listener, sshd_available

from .fleetlab import Lab, Tmux, wait_until
from .test_become import PREFIX, remove_stale_test_users

HOLDER_LINE = re.compile(r"(?:holder|starter) (\d+): listening")  # the holder and its warm-command starter
WARM_LINE = re.compile(r"starter \d+: command \d+: exit \d+")          # a command run by a starter's child
USED_HOLDER = "answered by the connection holder"


class LoggingSshServer(SshServer):
    """The test sshd, logging each accepted login (LogLevel VERBOSE) so connections can be counted."""

    def _write_sshd_config(self) -> None:
        super()._write_sshd_config()
        self.config_path.write_text(self.config_path.read_text().replace("LogLevel ERROR", "LogLevel VERBOSE"))

    def logins(self) -> int:
        return self.log().count("Accepted publickey")

    def sessions(self) -> list[int]:
        """The pids of sshd's per-connection children (one per open SSH connection)."""
        assert self.process is not None
        return _children(self.process.pid)

    def restart_with_a_new_host_key(self) -> None:
        """Ends every connection, then serves on the same port with another host key."""
        for pid in self.sessions():
            os.kill(pid, signal.SIGKILL)
        self._terminate()
        keygen(self.host_key_path, "imageserving-test-host-2")
        self.process = subprocess.Popen(
            ["/usr/sbin/sshd", "-D", "-e", "-f", str(self.config_path), "-E", str(self.log_path)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        assert self._wait_ready(10.0), self.log()


@pytest.fixture(scope="module")
def vsshd() -> Iterator[LoggingSshServer]:
    if not sshd_available():
        pytest.skip("/usr/sbin/sshd is not installed (apt-get install -y openssh-server)")
    server = LoggingSshServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


class Holders:
    """A persist directory of the test's own, and the holders started in it (all ended at teardown)."""

    def __init__(self) -> None:
        # Short: a unix socket path must fit in 108 bytes, which pytest's tmp_path may not.
        self.dir = Path(tempfile.mkdtemp(prefix="isp-"))
        self.persist = self.dir / "p"

    def env(self, seconds: float) -> dict[str, str]:
        return {"IMAGESERVING_PERSIST": f"{seconds:g}", "IMAGESERVING_PERSIST_DIR": str(self.persist)}

    def pids(self) -> list[int]:
        found = []
        for log in self.persist.glob("*.log"):
            found += [int(m) for m in HOLDER_LINE.findall(log.read_text(errors="replace"))]
        return found

    def alive(self) -> list[int]:
        return [pid for pid in self.pids() if _alive(pid)]

    def sockets(self) -> list[Path]:
        return list(self.persist.glob("*.sock")) + list(self.persist.glob("*.start"))

    def holder_pid(self) -> int:
        [pid] = [int(m) for log in self.persist.glob("*.log")
                 for m in re.findall(r"holder (\d+): listening", log.read_text(errors="replace"))]
        return pid

    def log(self) -> str:
        return "".join(log.read_text(errors="replace") for log in self.persist.glob("*.log"))

    def warm_commands(self) -> int:
        """Commands run by a starter's child (a warm start), as the holders' logs count them."""
        return sum(len(WARM_LINE.findall(log.read_text(errors="replace"))) for log in self.persist.glob("*.log"))

    def end(self) -> None:
        for pid in self.alive():
            os.kill(pid, signal.SIGKILL)
        shutil.rmtree(self.dir, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.fixture
def holders() -> Iterator[Holders]:
    made = Holders()
    try:
        yield made
    finally:
        made.end()


@pytest.fixture
def lab(vsshd: LoggingSshServer, tmp_path: Path) -> Lab:
    lab = Lab(vsshd, tmp_path)
    for name in ("p1", "p2"):
        lab.add_host(name)
    return lab


def fleet(lab: Lab, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    inventory = lab.inventory()
    full = {k: v for k, v in os.environ.items() if k != "SSH_AUTH_SOCK"}
    full.update(env)
    return subprocess.run([sys.executable, "-m", "imageserving_fleet.fleet.main", "-i", str(inventory),
                           "--ssh-config", str(lab.sshd.ssh_config_path), *args],
                          capture_output=True, text=True, timeout=180, env=full, cwd=lab.dir)


def test_a_warm_status_opens_no_new_connection_and_persist_stop_ends_the_holder(
        lab: Lab, vsshd: LoggingSshServer, holders: Holders) -> None:
    env = holders.env(120)
    first = fleet(lab, env, "-v", "status")
    assert first.returncode == 2, first.stderr  # no supervisor runs there: failed, but reached
    assert "Server Supervisor is not running" in first.stdout
    assert USED_HOLDER in first.stderr
    assert wait_until(lambda: len(holders.alive()) == 2, 60)  # the holder and its starter
    logins = vsshd.logins()
    second = fleet(lab, env, "status")    # a warm start (starter.py), the light path: the CLI's table, to the byte
    assert second.stdout == first.stdout and second.returncode == 2, second.stderr
    assert holders.warm_commands() == 1
    assert vsshd.logins() == logins       # sshd accepted no login for the second command
    # Two commands at once share it: each gets every host's own answer (a second connection for a
    # host the other is using at that moment, never the same one twice at once).
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(2) as pool:
        both = list(pool.map(lambda _: fleet(lab, env, "--json", "status"), range(2)))
    for proc in both:
        assert proc.returncode == 2 and [h["reason"] for h in json.loads(proc.stdout)["hosts"]] == [
            "Server Supervisor is not running"] * 2, proc.stderr
    assert holders.warm_commands() == 3
    stop = fleet(lab, env, "persist", "stop")
    assert stop.returncode == 0 and f"pid {holders.holder_pid()}" in stop.stdout
    assert wait_until(lambda: not holders.alive(), 60)  # the starter goes with its holder
    assert wait_until(lambda: not holders.sockets(), 60)
    assert "no connection holder" in fleet(lab, env, "persist", "stop").stdout


def test_the_holder_leaves_after_its_idle_time_and_nothing_outlives_persist_0(
        lab: Lab, holders: Holders) -> None:
    assert fleet(lab, holders.env(1), "ping").returncode == 0
    assert wait_until(lambda: len(holders.pids()) == 2, 60)  # the holder and its starter
    assert wait_until(lambda: not holders.alive(), 60)  # 1 s idle, polled generously; the starter with it
    assert wait_until(lambda: not holders.sockets(), 60)
    off = Holders()
    try:
        assert fleet(lab, off.env(0), "ping").returncode == 0
        assert not off.persist.exists()  # not even its directory: no holder was ever started
        marker = str(off.persist)
        for entry in os.listdir("/proc"):  # no process carries this run's environment any more
            if entry.isdigit():
                try:
                    assert marker.encode() not in Path(f"/proc/{entry}/environ").read_bytes()
                except OSError:
                    pass
    finally:
        off.end()


def test_a_host_key_changed_while_kept_is_refused_on_the_next_warm_command(
        vsshd: LoggingSshServer, tmp_path: Path, holders: Holders) -> None:
    lab = Lab(vsshd, tmp_path)
    lab.add_host("k1")
    env = holders.env(120)
    assert fleet(lab, env, "ping").returncode == 0
    vsshd.restart_with_a_new_host_key()  # the kept connection dies with it
    try:
        again = fleet(lab, env, "-v", "--json", "ping")
        assert USED_HOLDER in again.stderr
        assert again.returncode == 4, again.stderr
        assert '"reason": "changed host key' in again.stdout
    finally:
        vsshd.write_known_hosts(vsshd.known_hosts_path)  # the new key, for the tests that follow


def _children(pid: int) -> list[int]:
    """The live (not zombie) children of `pid`."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(stat[1]) == pid and stat[0] != "Z":
                found.append(int(entry))
    return found


def _ctrl_c_as_on_a_terminal() -> None:
    """SIGINT as an interactive shell leaves it (a test runner started in the background ignores it)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_ctrl_c_reaches_a_warm_command_and_one_killed_is_asked_again_directly(
        vsshd: LoggingSshServer, tmp_path: Path, holders: Holders) -> None:
    lab = Lab(vsshd, tmp_path)
    lab.add_host("w1")
    env = holders.env(120)
    assert fleet(lab, env, "ping").returncode == 0  # a holder, and its starter, for this directory
    assert wait_until(lambda: len(holders.alive()) == 2, 60)
    [starter] = [pid for pid in holders.alive() if pid != holders.holder_pid()]
    full = {k: v for k, v in os.environ.items() if k != "SSH_AUTH_SOCK"}
    full.update(env)

    def warm_status() -> tuple[subprocess.Popen[str], int]:
        proc = subprocess.Popen([sys.executable, "-m", "imageserving_fleet.fleet.main", "-i", str(lab.inventory()),
                                 "--ssh-config", str(vsshd.ssh_config_path), "--timeout", "600", "--connect-timeout", "600",
                                 "--json", "status"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=full, cwd=lab.dir,
                                preexec_fn=_ctrl_c_as_on_a_terminal)
        assert wait_until(lambda: len(_children(starter)) == 1, 60)  # the command's child, waiting on the host
        [child] = _children(starter)
        return proc, child

    with silent_listener() as port:  # a host that never says a word
        lab.hosts = {"quiet": {**lab.hosts["w1"], "ansible_port": port}}
        proc, child = warm_status()
        proc.send_signal(signal.SIGINT)  # what the terminal's Ctrl-C does: to the client only
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 99, err
        assert "interrupted" in err
        assert wait_until(lambda: not _alive(child), 60)

        proc, child = warm_status()
        os.kill(child, signal.SIGKILL)
    # The port is closed now: the direct run that follows is refused at once, not left waiting.
    out, err = proc.communicate(timeout=120)
    assert "ended without an exit status; asking directly" in err
    assert proc.returncode == 4, err
    [host] = json.loads(out)["hosts"]
    assert host["host"] == "quiet" and host["result"] == "unreachable"


def test_a_starter_that_dies_costs_cold_starts_never_an_answer(
        vsshd: LoggingSshServer, tmp_path: Path, holders: Holders) -> None:
    lab = Lab(vsshd, tmp_path)
    lab.add_host("s1")
    env = holders.env(120)
    assert fleet(lab, env, "ping").returncode == 0
    assert wait_until(lambda: len(holders.alive()) == 2, 60)
    [starter] = [pid for pid in holders.alive() if pid != holders.holder_pid()]
    os.kill(starter, signal.SIGKILL)
    assert wait_until(lambda: f"starter {starter} ended (signal 9)" in holders.log(), 60), holders.log()
    assert not list(holders.persist.glob("*.start"))  # no command tries it any more
    again = fleet(lab, env, "--json", "ping")  # cold, through the holder still
    assert again.returncode == 0, again.stderr
    assert holders.warm_commands() == 0 and holders.alive() == [holders.holder_pid()]


def test_a_warm_status_on_a_terminal_draws_what_a_cold_one_draws(
        vsshd: LoggingSshServer, tmp_path: Path, holders: Holders, tmux: Tmux) -> None:
    """The child writes to the client's own terminal: its colours and width, to the escape sequence."""
    lab = Lab(vsshd, tmp_path)
    lab.add_host("t1")
    inventory = lab.inventory()
    env = " ".join(f"{k}={v}" for k, v in holders.env(120).items())
    screens = []
    for n in (1, 2):  # cold (it starts the holder), then warm
        tmux.type(f"clear; cd {lab.dir} && env {env} {sys.executable} -m imageserving_fleet.fleet.main "
                  f"-i {inventory} --ssh-config {vsshd.ssh_config_path} status; echo DONE-$((40+{n}))")
        done = f"DONE-{40 + n}"  # `clear` wipes the typed line: only the echo can show it
        assert wait_until(lambda done=done: done in tmux.screen(), 120), tmux.screen()
        screens.append(tmux.screen(escapes=True))
    assert holders.warm_commands() == 1
    assert "\x1b[" in screens[0]  # a terminal gets colours (a pipe would not)
    assert screens[1].replace("DONE-42", "DONE-41") == screens[0]


PROBE = r"""
import socket, struct, sys, json
s = socket.socket(socket.AF_UNIX)
try:
    s.connect(sys.argv[1])
except OSError as exc:
    print("connect:", exc.errno); sys.exit(0)
body = json.dumps({"v": 1, "op": "ping"}).encode()
s.settimeout(60)
try:
    s.sendall(struct.pack(">I", len(body)) + body)
    print("answer:", s.recv(4096))
except OSError as exc:
    print("closed:", type(exc).__name__)
"""


def test_another_user_gets_no_answer_from_this_users_holder(lab: Lab, holders: Holders) -> None:
    if os.geteuid() != 0 or not shutil.which("useradd") or not shutil.which("runuser"):
        pytest.skip("needs root, useradd and runuser")
    assert fleet(lab, holders.env(120), "ping").returncode == 0
    assert wait_until(lambda: len(holders.alive()) == 2, 60)  # the holder and its warm-command starter
    [sock] = holders.persist.glob("*.sock")
    [start] = holders.persist.glob("*.start")
    remove_stale_test_users()
    user = f"{PREFIX}{os.getpid()}-{secrets.token_hex(3)}"
    subprocess.run(["useradd", "-M", "-s", "/bin/sh", user], check=True, capture_output=True)
    try:
        def probe(path: Path) -> str:
            return subprocess.run(["runuser", "-u", user, "--", "/usr/bin/python3", "-c", PROBE, str(path)],
                                  capture_output=True, text=True, timeout=120).stdout
        assert probe(sock).startswith("connect: 13")  # the 0700 directory: EACCES
        assert probe(start).startswith("connect: 13")
        # Even with the directory and sockets opened up by mistake, each answers only its own uid:
        # the holder runs nothing, the starter forks no command with the other user's environment.
        Path(holders.dir).chmod(0o711)
        holders.persist.chmod(0o711)
        sock.chmod(0o666)
        start.chmod(0o666)
        for path in (sock, start):
            answer = probe(path).strip()
            assert answer == "answer: b''" or answer.startswith("closed:"), answer  # never a frame
        log = next(holders.persist.glob("*.log")).read_text()
        uid = int(subprocess.run(["id", "-u", user], capture_output=True, text=True).stdout)
        assert f"holder {holders.holder_pid()}: refused a connection from uid {uid}" in log
        assert re.search(rf"starter \d+: refused a connection from uid {uid}", log), log
        assert holders.warm_commands() == 0
    finally:
        subprocess.run(["userdel", "-f", user], capture_output=True)


def test_the_exporter_through_a_two_worker_cluster_reconnects_nothing_on_later_rounds(
        vsshd: LoggingSshServer, tmp_path: Path, holders: Holders) -> None:
    pytest.importorskip("distributed")
    from tests.sshd import free_port

    lab = Lab(vsshd, tmp_path)
    names = ("c1", "c2", "c3", "c4")
    for name in names:  # no supervisor there: every poll runs the agent, one logged session per host
        lab.add_host(name, imageserving_worker="dc-a")  # placement labels: local:2 has no regions
    execs = lambda: vsshd.log().count("Starting session: command")  # noqa: E731
    logins, ran = vsshd.logins(), execs()
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "SSH_AUTH_SOCK"}
    env.update(holders.env(120))
    log = open(tmp_path / "exporter.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "imageserving_fleet.fleet.main", "-i", str(lab.inventory()),
                             "--ssh-config", str(vsshd.ssh_config_path), "--cluster", "local:2", "--timeout", "30",
                             "exporter", "--listen", f"127.0.0.1:{port}", "--interval", "0.5"],
                            stdout=log, stderr=subprocess.STDOUT, env=env, cwd=lab.dir)
    try:
        assert wait_until(lambda: execs() - ran >= 3 * len(names), 240), (tmp_path / "exporter.log").read_text()
        opened = vsshd.logins() - logins
        assert opened == len(names), f"{opened} logins for {len(names)} hosts over {execs() - ran} polls"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
        log.close()
    assert "no worker offers" not in (tmp_path / "exporter.log").read_text()
