"""Password logins against real sshds: `password` (sshd checks /etc/shadow itself, UsePAM no) and
`keyboard-interactive` (through PAM), for a throwaway user made with useradd + chpasswd and removed
after. A key that fails is followed by the password; a wrong password is `auth`, never echoed."""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from imageserving_fleet.fleet.ssh import Connector
from imageserving_fleet.fleet.ssh.settings import Secret
from imageserving_fleet.fleet.target import FleetOptions, make_target
from tests.fleet.test_become import PREFIX, remove_stale_test_users
from tests.sshd import SshServer, keygen, running, sshd_available

from .helpers import soon, unreachable


class PasswordServer(SshServer):
    """An sshd that takes passwords: `password` without PAM, or only `keyboard-interactive` with PAM."""

    def __init__(self, *, kbd_interactive: bool) -> None:
        super().__init__()
        self.kbd_interactive = kbd_interactive

    def _write_sshd_config(self) -> None:
        super()._write_sshd_config()
        text = self.config_path.read_text()
        if self.kbd_interactive:
            text = text.replace("KbdInteractiveAuthentication no", "KbdInteractiveAuthentication yes")
            text = text.replace("UsePAM no", "UsePAM yes")
        else:
            text = text.replace("PasswordAuthentication no", "PasswordAuthentication yes")
        self.config_path.write_text(text)


@pytest.fixture(scope="module")
def account() -> Iterator[tuple[str, str]]:
    if os.geteuid() != 0 or not shutil.which("useradd") or not sshd_available():
        pytest.skip("needs root, useradd and sshd")
    remove_stale_test_users()
    user = f"{PREFIX}{os.getpid()}-{secrets.token_hex(3)}"
    password = "pw " + secrets.token_hex(8)  # a space inside: passwords are never stripped or split
    subprocess.run(["useradd", "-m", "-s", "/bin/sh", user], check=True, capture_output=True)
    subprocess.run(["chpasswd"], input=f"{user}:{password}\n", text=True, check=True, capture_output=True)
    try:
        yield user, password
    finally:
        subprocess.run(["userdel", "-r", "-f", user], capture_output=True)


@pytest.fixture(scope="module")
def servers(account: tuple[str, str]) -> Iterator[dict[str, PasswordServer]]:
    with running({"password": PasswordServer(kbd_interactive=False),
                  "keyboard-interactive": PasswordServer(kbd_interactive=True)}) as made:
        yield made


@pytest.fixture
def no_agent(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)


def options(server: SshServer, tmp_path: Path, **kwargs: object) -> FleetOptions:
    stranger = keygen(tmp_path / "not_authorized")  # a key the server does not know: it fails first
    config = server.write_ssh_config(tmp_path / "ssh_config", identity=stranger)
    return FleetOptions(ssh_config=str(config), connect_timeout=10.0, **kwargs)  # type: ignore[arg-type]


def target(server: SshServer, opts: FleetOptions, user: str, **vars: object):  # type: ignore[no-untyped-def]
    return make_target("pw1", {"ansible_host": server.host, "ansible_port": server.port, "ansible_user": user,
                               **vars}, opts)


@pytest.mark.parametrize("kind", ["password", "keyboard-interactive"])
@pytest.mark.parametrize("variable", ["ansible_password", "ansible_ssh_pass"])
def test_a_password_logs_in_after_a_key_that_fails(servers: dict[str, PasswordServer], account: tuple[str, str],
                                                   tmp_path: Path, no_agent: None, kind: str, variable: str) -> None:
    user, password = account
    server = servers[kind]
    opts = options(server, tmp_path)
    host = target(server, opts, user, **{variable: password})
    assert password not in repr(host) and password not in repr(host.destination)
    session = Connector(opts).connect(host, soon(60))
    assert session.run("id -un", timeout=10).stdout.decode().strip() == user


def test_the_run_s_password_beats_the_inventory_s(servers: dict[str, PasswordServer], account: tuple[str, str],
                                                  tmp_path: Path, no_agent: None) -> None:
    user, password = account
    server = servers["password"]
    opts = options(server, tmp_path, password=Secret(password))  # what -k or IMAGESERVING_SSH_PASS give
    session = Connector(opts).connect(target(server, opts, user, ansible_password="wrong"), soon(60))
    assert session.run("true", timeout=10).exit_code == 0


def test_a_wrong_password_is_auth_and_never_shown(servers: dict[str, PasswordServer], account: tuple[str, str],
                                                  tmp_path: Path, no_agent: None) -> None:
    user, _ = account
    server = servers["password"]
    opts = options(server, tmp_path)
    wrong = "wrong-" + secrets.token_hex(4)
    error, _ = unreachable(lambda: Connector(opts).connect(target(server, opts, user, ansible_password=wrong),
                                                           soon(60)))
    assert error.reason == "auth" and "permission denied (publickey,password)" in error.detail
    assert "tried" in error.detail and "a password" in error.detail and wrong not in str(error)


def test_without_a_password_the_message_says_how_to_give_one(servers: dict[str, PasswordServer],
                                                             account: tuple[str, str], tmp_path: Path,
                                                             no_agent: None) -> None:
    user, _ = account
    server = servers["password"]
    opts = options(server, tmp_path)
    error, _ = unreachable(lambda: Connector(opts).connect(target(server, opts, user), soon(60)))
    assert error.reason == "auth" and "permission denied (publickey)" in error.detail


def test_imageserving_ssh_pass_and_ask_pass_reach_the_connection(servers: dict[str, PasswordServer],
                                                                  account: tuple[str, str], tmp_path: Path,
                                                                  no_agent: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """The run's password as the run context resolves it: IMAGESERVING_SSH_PASS, or -k prompting once."""
    from imageserving_fleet.fleet.context import Command, resolve
    from imageserving_fleet.fleet.options import Options

    user, password = account
    server = servers["password"]
    config = options(server, tmp_path).ssh_config
    monkeypatch.setenv("HOME", str(tmp_path))
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(f"all:\n  hosts:\n    pw1: {{ansible_host: {server.host}, ansible_port: {server.port}, "
                         f"ansible_user: {user}, ansible_password: wrong}}\n")
    given = Options(inventory=(str(inventory),), ssh_config=config)
    from_env = resolve(given, {"IMAGESERVING_SSH_PASS": password}, Command.STATUS, cwd=str(tmp_path))
    asked: list[str] = []
    from_prompt = resolve(Options(inventory=(str(inventory),), ssh_config=config, ask_pass=True), {},
                          Command.STATUS, prompt=lambda text: asked.append(text) or password, cwd=str(tmp_path))
    assert asked == ["SSH password: "]  # once per run, however many hosts
    assert resolve(Options(inventory=(str(inventory),), ask_pass=True), {}, Command.HOSTS,
                   prompt=lambda text: asked.append(text) or "", cwd=str(tmp_path)).targets  # hosts: no prompt
    assert asked == ["SSH password: "]
    for ctx in (from_env, from_prompt):
        (host,) = ctx.targets
        assert dict(host.sources)["password"] in ("env IMAGESERVING_SSH_PASS", "command line -k")
        assert password not in repr(ctx) and password not in repr(host)
        session = Connector(ctx.ssh).connect(host, soon(60))
        assert session.run("id -un", timeout=10).stdout.decode().strip() == user
