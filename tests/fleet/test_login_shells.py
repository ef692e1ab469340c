"""Commands that run the agent work whatever the login shell prints, and under dash.

Each test user is a real account with its own login shell in the passwd file: one whose shell
prints on stdout and stderr before and after every command (as a banner, a conda or rvm line in
a startup file would), one whose shell is /bin/dash. They share uid 0 with root (useradd -o) so
they can run this tree's interpreter, which lives under /root; names are unique per run.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.sshd import SshServer

from .fleetlab import Lab

NOISY = """#!/bin/sh
echo "noisy: welcome to this host"
printf 'noisy: no newline here'
echo "noisy: a word on stderr" >&2
/bin/bash "$@"
c=$?
echo "noisy: goodbye"
echo "noisy: goodbye on stderr" >&2
exit $c
"""
CONFIG = "components:\n  sl:\n    command: [sleep, '100000']\n    start_delay: 0s\n"


@pytest.fixture(scope="module")
def make_user() -> Iterator[object]:
    if os.geteuid() != 0 or not shutil.which("useradd"):
        pytest.skip("needs root and useradd")
    made: list[tuple[str, str]] = []

    def make(kind: str, shell_text: str | None = None, shell: str | None = None) -> tuple[str, Path]:
        name = f"isf-{kind}-{secrets.token_hex(3)}"
        home = Path(tempfile.mkdtemp(prefix=f"{name}-"))
        if shell_text is not None:
            shell_path = home / "login-shell"
            shell_path.write_text(shell_text)
            shell_path.chmod(0o755)
            shell = str(shell_path)
        subprocess.run(["useradd", "-o", "-u", "0", "-g", "0", "-M", "-d", str(home), "-s", str(shell), name],
                       check=True, capture_output=True)
        made.append((name, str(home)))
        subprocess.run(["usermod", "-p", "*", name], check=True, capture_output=True)  # unlocked, no password
        return name, home

    yield make
    for name, home in made:
        subprocess.run(["userdel", "-f", name], capture_output=True)
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture
def lab(sshd: SshServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Lab]:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    lab = Lab(sshd, tmp_path)
    yield lab
    for hv in lab.hosts.values():
        home = Path(str(hv["imageserving_home"]).replace("~", str(hv["_home"]), 1))
        if home.exists():
            subprocess.run([str(lab.agent), "--home", str(home), "stop"], capture_output=True, timeout=120)


def _host(lab: Lab, name: str, user: str, home: Path) -> None:
    config = lab.dir / f"{name}.yaml"
    config.write_text(CONFIG)
    lab.add_host(name, ansible_user=user, imageserving_home="~/h", imageserving_config=str(config), _home=str(home))


def test_a_login_shell_that_prints_around_every_command(lab: Lab, make_user: object) -> None:
    user, home = make_user("noisy", shell_text=NOISY)  # type: ignore[operator]
    _host(lab, "noisy", user, home)
    code, doc = lab.fleet_json("status")  # by exec: the supervisor is down, nothing cached yet
    assert (doc["hosts"][0]["reason"], doc["hosts"][0]["via"]) == ("Server Supervisor is not running", "exec")
    vias = []
    for command in (["start"], ["status"], ["restart"], ["ping"], ["stop"]):
        code, doc = lab.fleet_json(*command)
        entry = doc["hosts"][0]
        assert (code, entry["result"]) == (0, "ok"), (command, entry)
        assert "noisy:" not in str(doc)
        vias.append(entry.get("via"))
    assert vias == [None, "socket", None, None, None]  # ~/h's socket: reported by the start, cached
    proc = lab.fleet("-v", "ping")
    assert proc.returncode == 0 and "noisy: welcome" in proc.stderr and "noisy: goodbye" in proc.stderr

def test_dash_as_login_shell(lab: Lab, make_user: object) -> None:
    user, home = make_user("dash", shell="/bin/dash")  # type: ignore[operator]
    _host(lab, "dashy", user, home)
    code, doc = lab.fleet_json("status")
    assert doc["hosts"][0]["reason"] == "Server Supervisor is not running", doc
    for command in (["start"], ["status"], ["ping"], ["stop"]):
        code, doc = lab.fleet_json(*command)
        assert (code, doc["hosts"][0]["result"]) == (0, "ok"), (command, doc)
