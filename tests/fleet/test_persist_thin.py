"""The warm command's client (persist/thin.py) and the names it finds the starter by (persist/names.py).

A fake starter (a thread on a unix socket that answers what the test says) stands for a starter
whose child declines, answers, or dies; the real starter is driven in test_persist.py.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from imageserving_fleet.fleet.persist import thin
from imageserving_fleet.fleet.persist.names import identity, starter_socket


@pytest.mark.parametrize(("args", "env", "off"), [
    (["status"], {}, False),
    (["status"], {"IMAGESERVING_PERSIST": "0"}, True),
    (["status"], {"IMAGESERVING_PERSIST": " 30 "}, False),
    (["--persist", "0", "status"], {}, True),
    (["--persist", "0", "status"], {"IMAGESERVING_PERSIST": "30"}, True),   # the option wins
    (["--persist", "30", "status"], {"IMAGESERVING_PERSIST": "0"}, False),
    (["--persist=0", "status"], {}, True),
    (["--persist", "soon", "status"], {}, True),    # unreadable: the full command says why
    (["status", "--persist"], {}, True),
    (["--persist", "-5", "ping"], {}, True),
])
def test_persist_off(args: list[str], env: dict[str, str], off: bool) -> None:
    assert thin.persist_off(args, env) is off


def test_frames_round_trip_and_refuse_what_is_not_one() -> None:
    a, b = socket.socketpair()
    with a, b:
        doc = {"argv": ["status", "é"], "env": {"K": "v"}, "umask": 0o22, "streams": [["utf-8", "strict"]] * 3}
        a.sendall(thin.pack(doc))
        assert thin.read(b) == doc
        a.sendall((thin.MAX_FRAME + 1).to_bytes(4, "big"))
        with pytest.raises(thin.FRAME_ERRORS, match="over"):
            thin.read(b)
    for body in (b"\xff\xfe", b"\xe9\x00"):  # not marshal data at all; a marshal'd int, not a dict
        a, b = socket.socketpair()
        with a, b:
            a.sendall(len(body).to_bytes(4, "big") + body)
            with pytest.raises(thin.FRAME_ERRORS):
                thin.read(b)
    a, b = socket.socketpair()
    with b:
        a.sendall(b"\x00\x00")
        a.close()
        with pytest.raises(EOFError):
            thin.read(b)


def test_the_starter_socket_is_only_looked_for_in_a_private_directory_of_this_user(tmp_path: Path) -> None:
    persist = tmp_path / "p"
    env = {"IMAGESERVING_PERSIST_DIR": str(persist), "HOME": str(tmp_path)}
    assert starter_socket(env) is None  # nothing made by looking
    assert not persist.exists()
    persist.mkdir(mode=0o700)
    found = starter_socket(env)
    assert found == str(persist / f"h-{identity(env)}.start")
    persist.chmod(0o755)
    assert starter_socket(env) is None
    persist.chmod(0o700)
    link = tmp_path / "link"
    link.symlink_to(persist)
    assert starter_socket({**env, "IMAGESERVING_PERSIST_DIR": str(link)}) is None


def test_the_socket_name_changes_with_what_shapes_a_connection(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    base = {"HOME": "/home/a", "USER": "a"}
    name = identity(base)
    assert identity(dict(base)) == name
    assert identity({**base, "HOME": "/home/b"}) != name
    assert identity({**base, "SSH_AUTH_SOCK": "/tmp/agent"}) != name
    assert identity({**base, "COLUMNS": "80"}) == name  # not part of a connection
    monkeypatch.chdir(tmp_path)
    assert identity(base) != name  # another working directory: relative paths mean other files


Behave = Callable[[socket.socket, dict[str, Any], list[int]], None]


@pytest.fixture
def fake_starter() -> Iterator[Callable[[Behave], dict[str, str]]]:
    """A starter that reads one request (and its descriptors), then does what the test says."""
    made: list[tuple[socket.socket, str]] = []

    def start(behave: Behave) -> dict[str, str]:
        directory = tempfile.mkdtemp(prefix="ist-")  # short: a socket path fits in 108 bytes
        persist = os.path.join(directory, "p")
        os.mkdir(persist, 0o700)
        env = {**os.environ, "IMAGESERVING_PERSIST_DIR": persist, "IMAGESERVING_PERSIST": "60"}
        path = starter_socket(env)
        assert path
        listener = socket.socket(socket.AF_UNIX)
        listener.bind(path)
        listener.listen(1)
        made.append((listener, directory))

        def serve() -> None:
            conn, _ = listener.accept()
            with conn:
                head, fds, _, _ = socket.recv_fds(conn, 4, 3)
                try:
                    behave(conn, thin.read(conn, head), list(fds))
                finally:
                    for fd in fds:
                        os.close(fd)

        threading.Thread(target=serve, daemon=True).start()
        return env

    yield start
    for listener, directory in made:
        listener.close()
        subprocess.run(["rm", "-rf", directory], check=False)


def test_a_child_that_answers_gives_its_exit_code_and_gets_this_processs_world(fake_starter: Any) -> None:
    seen: dict[str, Any] = {}

    def answer(conn: socket.socket, request: dict[str, Any], fds: list[int]) -> None:
        seen.update(request, fds=len(fds))
        conn.sendall(thin.pack({"pid": os.getpid()}) + thin.pack({"exit": 4}))

    env = fake_starter(answer)
    assert thin.run(["-i", "inv.yml", "status"], env) == 4
    assert seen["argv"] == ["-i", "inv.yml", "status"] and seen["fds"] == 3
    assert seen["cwd"] == os.getcwd() and seen["env"] == env and seen["v"] == thin.VERSION
    assert seen["umask"] == (lambda m: (os.umask(m), m)[1])(os.umask(0))


def test_a_declined_or_refused_request_runs_in_this_process(fake_starter: Any) -> None:
    env = fake_starter(lambda conn, request, fds: conn.sendall(thin.pack({"pid": os.getpid()})
                                                               + thin.pack({"declined": True})))
    assert thin.run(["status"], env) is None
    env = fake_starter(lambda conn, request, fds: conn.sendall(thin.pack({"declined": True})))
    assert thin.run(["ping"], env) is None
    env = fake_starter(lambda conn, request, fds: None)  # closes without a word
    assert thin.run(["status"], env) is None


def test_a_child_that_dies_without_its_exit_code_is_said_and_asked_again(fake_starter: Any,
                                                                         capsys: pytest.CaptureFixture[str]) -> None:
    env = fake_starter(lambda conn, request, fds: conn.sendall(thin.pack({"pid": 4242})))
    assert thin.run(["status"], env) is None
    assert "(4242) ended without an exit status; asking directly" in capsys.readouterr().err


def test_no_starter_not_a_status_or_persist_off_never_connects(tmp_path: Path) -> None:
    persist = tmp_path / "p"
    persist.mkdir(mode=0o700)
    env = {**os.environ, "IMAGESERVING_PERSIST_DIR": str(persist)}
    assert thin.run(["status"], env) is None  # the directory, but no socket in it
    path = starter_socket(env)
    assert path
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(path)
    listener.listen(1)
    with listener:
        assert thin.run(["restart", "is"], env) is None
        assert thin.run(["status"], {**env, "IMAGESERVING_PERSIST": "0"}) is None
        listener.setblocking(False)
        with pytest.raises(BlockingIOError):
            listener.accept()  # neither of them connected


def test_the_warm_client_imports_next_to_nothing() -> None:
    """What a warm `status` loads before it hands over: no typing, json, socket module, hashlib, enum."""
    proc = subprocess.run([sys.executable, "-X", "importtime", "-c",
                           "import imageserving_fleet.fleet.main, imageserving_fleet.fleet.persist.thin"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    imported = {line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines()}
    assert "imageserving_fleet.fleet.persist.thin" in imported
    heavy = {"typing", "json", "socket", "hashlib", "enum", "re", "dataclasses", "yaml", "rich", "paramiko",
             "imageserving_fleet.errors", "imageserving_fleet.fleet.options"}
    assert not heavy & imported, heavy & imported
