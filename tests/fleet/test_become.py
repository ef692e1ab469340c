"""Become through real sudo: a non-root SSH user whose sudo asks for a password.

Needs root (to create the user and its sudoers rule) and sudo; .ci/run installs sudo. The user
logs in to the test sshd with the shared test key (AuthorizedKeysFile is one file for everyone).
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.sshd import SshServer

from .fleetlab import Lab

# Per run and per fixture: two suites at once on one machine must not share (or delete) each other's
# user. The name carries the pid of the run that owns it, so a later run can remove what a killed one left.
PREFIX = "imgs-fleet-"
SUDOERS_DIR = Path("/etc/sudoers.d")
SUDOERS_PREFIX = "imageserving-fleet-test-"


def _owner_alive(name: str, prefix: str) -> bool:
    """Whether the run whose pid is in `name` (prefix + pid + "-" + suffix) still exists."""
    pid = name[len(prefix):].split("-", 1)[0]
    if not pid.isdigit():
        return True  # not one of ours: leave it alone
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


def remove_stale_test_users() -> list[str]:
    """Removes the users and sudoers drop-ins of earlier runs that were killed before their cleanup."""
    removed = []
    for line in Path("/etc/passwd").read_text().splitlines():
        name = line.split(":", 1)[0]
        if name.startswith(PREFIX) and not _owner_alive(name, PREFIX):
            subprocess.run(["userdel", "-r", "-f", name], capture_output=True)
            removed.append(name)
    for path in SUDOERS_DIR.glob(SUDOERS_PREFIX + "*"):
        if not _owner_alive(path.name, SUDOERS_PREFIX):
            path.unlink(missing_ok=True)
            removed.append(str(path))
    return removed


@pytest.fixture(scope="module")
def sudo_user(sshd: SshServer) -> Iterator[tuple[str, str]]:
    if os.geteuid() != 0 or not shutil.which("sudo") or not shutil.which("useradd"):
        pytest.skip("needs root, sudo and useradd (apt-get install -y sudo)")
    remove_stale_test_users()
    tag = f"{os.getpid()}-{secrets.token_hex(3)}"
    user, sudoers = PREFIX + tag, SUDOERS_DIR / (SUDOERS_PREFIX + tag)
    password = "pw-" + secrets.token_hex(8)
    subprocess.run(["useradd", "-m", "-s", "/bin/sh", user], check=True, capture_output=True)
    subprocess.run(["chpasswd"], input=f"{user}:{password}\n", text=True, check=True, capture_output=True)
    # timestamp_timeout=0: every sudo asks again, so a cached ticket cannot make a test pass.
    sudoers.write_text(f"{user} ALL=(ALL) ALL\nDefaults:{user} timestamp_timeout=0, !lecture\n")
    sudoers.chmod(0o440)
    # sshd reads authorized_keys with the user's privileges: let it through the 0700 test directory.
    sshd.dir.chmod(0o711)
    sshd.authorized_keys_path.chmod(0o644)
    try:
        yield user, password
    finally:
        sudoers.unlink(missing_ok=True)
        subprocess.run(["userdel", "-r", user], capture_output=True)


@pytest.fixture
def lab(sshd: SshServer, tmp_path: Path) -> Iterator[Lab]:
    tmp_path.chmod(0o755)  # the agent wrapper must be reachable from the test user's login shell
    lab = Lab(sshd, tmp_path)
    yield lab
    lab.stop_all()


def _uid(pid: int) -> int:
    return os.stat(f"/proc/{pid}").st_uid


def test_become_with_a_password_from_the_environment(lab: Lab, sudo_user: tuple[str, str],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    user, password = sudo_user
    lab.add_host("web1", ansible_user=user, ansible_become=True)
    monkeypatch.setenv("IMAGESERVING_BECOME_PASS", password)

    code, doc = lab.fleet_json("-l", "web1", "start")
    assert code == 0, doc
    code, doc = lab.fleet_json("-l", "web1", "status")
    assert code == 0, doc
    status = doc["hosts"][0]["status"]
    assert _uid(status["supervisor"]["pid"]) == 0  # the agent ran as root through sudo
    assert password not in str(doc)
    assert "imageserving" in Path(f"/proc/{status['supervisor']['pid']}/cmdline").read_text()

    code, doc = lab.fleet_json("stop")
    assert code == 0, doc


def test_wrong_or_missing_password_is_a_failed_host_with_the_reason(lab: Lab, sudo_user: tuple[str, str],
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    user, password = sudo_user
    lab.add_host("web1", ansible_user=user, ansible_become=True)

    monkeypatch.setenv("IMAGESERVING_BECOME_PASS", "not-" + password)
    proc = lab.fleet("status", "--json")
    assert proc.returncode in (2, 4), proc.stdout + proc.stderr
    assert "sudo" in proc.stdout and "incorrect password" in proc.stdout
    assert "not-" + password not in proc.stdout + proc.stderr

    monkeypatch.delenv("IMAGESERVING_BECOME_PASS")
    proc = lab.fleet("status", "--json")  # sudo -n: never prompts, says a password is required
    assert proc.returncode in (2, 4), proc.stdout + proc.stderr
    assert "password is required" in proc.stdout


def test_ask_become_pass_prompts_on_the_terminal(lab: Lab, sudo_user: tuple[str, str],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    import pty
    import sys

    user, password = sudo_user
    lab.add_host("web1", ansible_user=user, ansible_become=True)
    monkeypatch.delenv("IMAGESERVING_BECOME_PASS", raising=False)
    argv = [sys.executable, "-m", "imageserving_fleet.fleet.main", "-i", str(lab.inventory()),
            "--ssh-config", str(lab.sshd.ssh_config_path), "-K", "status", "--json"]
    pid, fd = pty.fork()
    if pid == 0:  # the child: a controller whose terminal is this pty
        os.execv(sys.executable, argv)
    seen = b""
    while b"BECOME password:" not in seen:
        seen += os.read(fd, 1024)
    os.write(fd, password.encode() + b"\n")
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:
            break
        if not chunk:
            break
        seen += chunk
    _, status = os.waitpid(pid, 0)
    text = seen.decode(errors="replace")
    # Exit 2 (degraded/failed: no supervisor started) or 0, never 4: sudo took the password.
    assert os.waitstatus_to_exitcode(status) in (0, 2), text
    assert "incorrect password" not in text and "password is required" not in text
    assert "Server Supervisor is not running" in text  # the agent itself answered, through sudo
    assert password not in text  # the prompt does not echo it
