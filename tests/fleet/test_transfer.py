"""deploy/transfer.py: SFTP, else piped with a sha256 check; against real sshds and as pure tables.

Three servers: the session's (internal-sftp: SFTP works), one with no `Subsystem sftp` line, and
one whose SFTP server is started through the login shell, used by a test user whose ~/.bashrc
prints (as on many real hosts: the printed bytes break SFTP). The user's name is unique per run.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from imageserving_fleet.fleet.deploy import transfer
from imageserving_fleet.fleet.deploy.transfer import Outgoing, Piece, Receipt, Transfer, TransferFailed
from imageserving_fleet.fleet.ssh import CommandResult, Connector, LocalSession, Session
from imageserving_fleet.fleet.target import FleetOptions, make_target
from tests.sshd import SFTP_SERVER, SshServer, sshd_available

WELCOME = "Welcome to this host! (printed by ~/.bashrc)"


# ------------------------------------------------------------------ servers and the printing user
def _server(**kw: object) -> Iterator[SshServer]:
    if not sshd_available():
        pytest.skip("/usr/sbin/sshd is not installed (apt-get install -y openssh-server)")
    with SshServer(**kw) as server:  # type: ignore[arg-type]
        # Other users log in too: sshd reads authorized_keys with their privileges.
        server.dir.chmod(0o711)
        server.authorized_keys_path.chmod(0o644)
        yield server


@pytest.fixture(scope="module")
def nosftp_sshd() -> Iterator[SshServer]:
    """An sshd with no `Subsystem sftp`: SFTP requests are refused. Its bash users read ~/.bashrc."""
    yield from _server(sftp=None, skip_bashrc=False)


@pytest.fixture(scope="module")
def shell_sftp_sshd() -> Iterator[SshServer]:
    """An sshd that starts the SFTP server through the login shell, which reads ~/.bashrc."""
    if not os.access(SFTP_SERVER, os.X_OK):
        pytest.skip(f"{SFTP_SERVER} is not installed (apt-get install -y openssh-sftp-server)")
    yield from _server(sftp=SFTP_SERVER, skip_bashrc=False)


@pytest.fixture(scope="module")
def printing_user() -> Iterator[str]:
    """A bash user whose ~/.bashrc prints a line for every command sshd runs (unique name per run)."""
    if os.geteuid() != 0 or not shutil.which("useradd") or not os.path.exists("/bin/bash"):
        pytest.skip("needs root, useradd and bash")
    user = f"isf-pr-{secrets.token_hex(3)}"
    subprocess.run(["useradd", "-m", "-s", "/bin/bash", user], check=True, capture_output=True)
    try:
        subprocess.run(["usermod", "-p", "*", user], check=True, capture_output=True)  # unlocked: UsePAM no
        home = Path(os.path.expanduser(f"~{user}"))
        (home / ".bashrc").write_text(f'echo "{WELCOME}"\n')
        yield user
    finally:
        subprocess.run(["userdel", "-r", user], capture_output=True)


def _session(server: SshServer, user: str | None = None) -> Session:
    options = FleetOptions(ssh_config=str(server.ssh_config_path), connect_timeout=10.0)
    hv = {**server.inventory_vars(), **({"ansible_user": user} if user else {})}
    connector = Connector(options)
    return connector.connect(make_target("h", hv, options), time.monotonic() + 30)


def _files(directory: Path, sizes: tuple[int, ...], remote_dir: str) -> list[Outgoing]:
    out = []
    for n, size in enumerate(sizes):
        path = directory / f"f{n}.whl"
        path.write_bytes(os.urandom(size))
        out.append(Outgoing.of(path, f"{remote_dir}/f{n}.whl.part-x"))
    return out


def _landed(home: Path, files: list[Outgoing]) -> None:
    for f in files:
        remote = home / f.home_relative
        assert remote.read_bytes() == f.local.read_bytes(), f.remote
        assert remote.stat().st_mode & 0o777 == 0o644
    leftovers = [p.name for p in (home / files[0].home_relative).parent.iterdir() if ".tmp-" in p.name]
    assert leftovers == []


# ------------------------------------------------------------------ against real sshds
def test_sftp_where_the_host_offers_it(sshd: SshServer, tmp_path: Path) -> None:
    (tmp_path / "up").mkdir()
    files = _files(tmp_path, (70_000, 0), str(tmp_path / "up"))  # an absolute path works as a relative one
    session = _session(sshd)
    try:
        assert transfer.send(session, files, time.monotonic() + 60) == transfer.Sent(Transfer.SFTP)
    finally:
        session.close()
    _landed(Path.home(), files)


@pytest.mark.parametrize("case", ["no sftp subsystem", "a login shell that prints"])
def test_piped_when_sftp_fails_and_a_large_file_spans_several_commands(
        case: str, request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    server = request.getfixturevalue("nosftp_sshd" if case == "no sftp subsystem" else "shell_sftp_sshd")
    why = "Channel closed" if case == "no sftp subsystem" else "Garbage packet"
    user = request.getfixturevalue("printing_user")
    home = Path(os.path.expanduser(f"~{user}"))
    monkeypatch.setattr(transfer, "CHUNK", 64 * 1024)  # 200 kB in four commands
    files = _files(tmp_path, (150_000, 1, 50_000), "~/.cache/imageserving-fleet/wheels")
    session = _session(server, user)
    try:
        premise = session.run("mkdir -p .cache/imageserving-fleet/wheels", timeout=30)
        assert premise.stdout.decode().strip() == WELCOME  # this shell prints on every command
        sent = transfer.send(session, files, time.monotonic() + 60, python="/usr/bin/python3")
    finally:
        session.close()
    assert sent.method == Transfer.PIPED and why in sent.sftp_error
    _landed(home, files)


def test_the_hosts_own_refusal_is_a_failure_not_a_fallback_nor_unreachable(sshd: SshServer, tmp_path: Path) -> None:
    """A directory that is not there: SFTP's answer is reported as is, and piped says the same."""
    files = _files(tmp_path, (10,), str(tmp_path / "missing"))
    session = _session(sshd)
    try:
        with pytest.raises(TransferFailed, match="No such file"):
            transfer.send(session, files, time.monotonic() + 60)
        with pytest.raises(TransferFailed, match="No such file"):
            transfer.piped(session, files, time.monotonic() + 60)
    finally:
        session.close()


# ------------------------------------------------------------------ piped through a real shell, corrupted on the way
@dataclass
class Tampering:
    """A local session whose stdin is changed on the way, as a misbehaving host or startup file would."""

    inner: LocalSession
    change: str  # "flip": one byte differs; "eat": a startup file swallows the first bytes

    @property
    def host(self) -> str:
        return self.inner.host

    def run(self, command: str, *, stdin: bytes | None = None, timeout: float,
            max_output: int = 1 << 20) -> CommandResult:
        if stdin:
            stdin = (bytes([stdin[0] ^ 1]) + stdin[1:]) if self.change == "flip" else stdin[10:]
        return self.inner.run(command, stdin=stdin, timeout=timeout, max_output=max_output)


@pytest.mark.parametrize(("change", "words"), [
    ("flip", "checksum mismatch: sha256 on the host"),
    ("eat", "the host received 990 of 1000 bytes (does a startup file read stdin?)"),
])
def test_a_file_changed_on_the_way_is_a_failure_and_nothing_lands(
        change: str, words: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))  # LocalSession runs in the home directory
    (tmp_path / "up").mkdir()
    files = _files(tmp_path, (1000,), "up")
    with pytest.raises(TransferFailed, match="upload") as caught:
        transfer.piped(Tampering(LocalSession("h1"), change), files, time.monotonic() + 60)  # type: ignore[arg-type]
    assert words in caught.value.detail and "f0.whl" in caught.value.detail
    assert os.listdir(tmp_path / "up") == []  # no half file, no temporary left


@pytest.mark.parametrize("python", ["python3", "/no/such/python3", "no-such-python"])  # the last two: python3
def test_piped_values_are_data_to_the_shell(python: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "up").mkdir()
    (tmp_path / "x.whl").write_bytes(b"wheel")
    odd = Outgoing.of(tmp_path / "x.whl", "up/it's $(touch pwned); `id` x.whl")
    transfer.piped(LocalSession("h1"), [odd], time.monotonic() + 60, python=python)
    assert (tmp_path / "up" / "it's $(touch pwned); `id` x.whl").read_bytes() == b"wheel"
    assert not (tmp_path / "pwned").exists()


# ------------------------------------------------------------------ pure parts
@pytest.mark.parametrize(("sizes", "chunk", "expected"), [
    ((), 10, []),
    ((3, 4), 10, [[Piece(0, 0, 3, True), Piece(1, 0, 4, True)]]),
    ((10,), 10, [[Piece(0, 0, 10, True)]]),
    # a file larger than a chunk is cut, and the next file fills the rest of its last batch
    ((25, 3), 10, [[Piece(0, 0, 10, False)], [Piece(0, 10, 10, False)], [Piece(0, 20, 5, True), Piece(1, 0, 3, True)]]),
    # a batch that is exactly full is closed; an empty file still gets its piece
    ((10, 0, 2), 10, [[Piece(0, 0, 10, True)], [Piece(1, 0, 0, True), Piece(2, 0, 2, True)]]),
    ((0,), 10, [[Piece(0, 0, 0, True)]]),
])
def test_batches(sizes: tuple[int, ...], chunk: int, expected: list[list[Piece]]) -> None:
    got = transfer.batches(sizes, chunk)
    assert got == expected
    assert all(sum(p.length for p in b) <= chunk for b in got)


MARK = "imageserving-fleet-receipt-0123"


@pytest.mark.parametrize(("stdout", "expected"), [
    (b"", {}),
    # the login shell's lines around the receipts, and a line with another mark, are not receipts
    (f"{WELCOME}\n{MARK} 0 ok abc\nnoise {MARK} 1 ok x\n{MARK}-other 1 ok y\n{MARK} 1 part 5\nbye\n".encode(),
     {0: Receipt(0, "ok", "abc"), 1: Receipt(1, "part", "5")}),
    (f"{MARK} 2 error up/x.whl: No space left on device\n".encode(),
     {2: Receipt(2, "error", "up/x.whl: No space left on device")}),
    (f"{MARK} x ok abc\n{MARK} 3\n".encode(), {}),
])
def test_read_receipts(stdout: bytes, expected: dict[int, Receipt]) -> None:
    assert transfer.read_receipts(stdout, MARK) == expected


F = Outgoing(Path("/w/pip-24.whl"), "up/pip-24.whl.part-1", 10, "a" * 64)
OK = CommandResult(0, b"", b"")


@pytest.mark.parametrize(("batch", "receipts", "out", "words"), [
    ([Piece(0, 0, 10, True)], {0: Receipt(0, "ok", "a" * 64)}, OK, None),
    ([Piece(0, 0, 4, False)], {0: Receipt(0, "part", "4")}, OK, None),
    ([Piece(0, 0, 10, True)], {0: Receipt(0, "mismatch", "b" * 64)}, CommandResult(3, b"", b""),
     "piped pip-24.whl: checksum mismatch: sha256 on the host bbbbbbbbbbbbbbbb…, sent aaaaaaaaaaaaaaaa…"),
    # a host that claims ok with another hash is a mismatch too
    ([Piece(0, 0, 10, True)], {0: Receipt(0, "ok", "c" * 64)}, OK, "checksum mismatch"),
    ([Piece(0, 0, 10, True)], {0: Receipt(0, "short", "7")}, CommandResult(3, b"", b""),
     "the host received 7 of 10 bytes"),
    ([Piece(0, 0, 10, True)], {0: Receipt(0, "error", "up/pip-24.whl: No space left on device")},
     CommandResult(1, b"", b""), "piped pip-24.whl: up/pip-24.whl: No space left on device"),
    ([Piece(0, 0, 10, True)], {}, CommandResult(127, b"", b"sh: python3: not found\n"), "no python3 on the host"),
    ([Piece(0, 0, 10, True)], {}, CommandResult(1, b"", b"Traceback\nMemoryError\n"), "exit 1: MemoryError"),
    ([Piece(0, 0, 10, True)], {0: Receipt(0, "gap", "3")}, CommandResult(3, b"", b""), "the host said gap 3"),
])
def test_verify(batch: list[Piece], receipts: dict[int, Receipt], out: CommandResult, words: str | None) -> None:
    if words is None:
        transfer.verify("h1", [F], batch, receipts, out)
        return
    with pytest.raises(TransferFailed) as caught:
        transfer.verify("h1", [F], batch, receipts, out)
    assert caught.value.host == "h1" and caught.value.reason == "upload" and words in caught.value.detail
