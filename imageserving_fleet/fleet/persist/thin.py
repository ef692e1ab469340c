"""The warm command's client: a `status` or `ping` handed, whole, to a process that is already started.

    run(args) -> int | None      the command's exit code; None: not here (run it in this process)
    pack(obj) -> bytes           read(sock) -> dict           the conversation's frames (starter.py's too)

A second command inside the --persist window spends most of its time starting: the interpreter,
then the controller's imports (inventory, YAML, rich, the fan-out), before it asks the holder
anything. The holder's starter (starter.py) has all of that imported already. This client
imports next to nothing (os, sys, _socket, marshal, names.py): it finds the starter's socket for
this environment, hands it the argv, the working directory, the environment, the umask and its
own stdin, stdout and stderr (SCM_RIGHTS), and waits for the exit code, while a child forked
from the starter runs the very same code path (quick.py) on this terminal.

Frames are a 4-byte big-endian length and a marshal'd dict: both ends are the same interpreter
(its path is part of the socket's name, names.identity) and the same uid (checked by the kernel,
SO_PEERCRED), which is what marshal needs to be safe and exact.

Never a wrong answer, and never a silent change:
- Only `status` and `ping` come here (read-only, no prompt); anything the child does not take
  as the plain form (quick.py) comes back as "declined" before it printed anything, and runs here.
- No starter, a socket of another uid, one that does not answer: None, before anything ran.
- Ctrl-C is passed on to the child (SIGINT), which ends as the command would have ("interrupted").
- The child ending without its exit code (killed): the question is asked again here, direct, as
  a holder lost mid-command costs a read-only command (client.py); stderr says so.
"""

from __future__ import annotations

import _socket
import marshal
import os
import sys

from ..exitcodes import EXIT_INTERRUPTED
from .names import ENV_SECONDS, starter_socket

TYPE_CHECKING = False  # not `from typing`: this module is the warm command's whole start-up
if TYPE_CHECKING:
    from typing import Any

VERSION = 1                 # of this conversation (the starter declines another)
COMMANDS = ("status", "ping")
ANSWER_TIMEOUT = 10.0       # seconds for the starter to say the child's pid (it forks at once)
MAX_FRAME = 64 * 2**20      # the environment and argv of any command fit easily
SIGINT = 2                  # POSIX; the signal module would import enum for its name
_PEERCRED_SIZE = 12         # struct ucred: pid, uid, gid (3 ints)


class _FrameError(Exception):
    """The other end sent something that is not a frame of this conversation.

    Private, outside errors.py's hierarchy: it never reaches a user (either end treats it as the
    peer gone), and this module must not import errors.py's enum. Catch FRAME_ERRORS.
    """


FRAME_ERRORS = (OSError, EOFError, _FrameError)  # what read() and pack() raise when the other end is not there or not this


def pack(obj: dict[str, Any]) -> bytes:
    data = marshal.dumps(obj)
    if len(data) > MAX_FRAME:
        raise _FrameError(f"frame of {len(data)} bytes is over {MAX_FRAME}")
    return len(data).to_bytes(4, "big") + data


def read(sock: Any, head: bytes = b"") -> dict[str, Any]:
    """The next frame (its first bytes may have been read already); EOFError if the peer closed first."""
    head = head + _exactly(sock, 4 - len(head))
    size = int.from_bytes(head, "big")
    if size > MAX_FRAME:
        raise _FrameError(f"frame of {size} bytes announced, over {MAX_FRAME}")
    try:
        obj = marshal.loads(_exactly(sock, size))
    except (ValueError, EOFError, TypeError) as exc:
        raise _FrameError(f"not a frame: {exc}") from None
    if not isinstance(obj, dict):
        raise _FrameError("not a frame: not a dict")
    return obj


def _exactly(sock: Any, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise EOFError("closed")
        buf += chunk
    return buf


def peer_uid(sock: Any) -> int:
    """The uid at the other end of a unix socket, as the kernel says (SO_PEERCRED)."""
    raw = sock.getsockopt(_socket.SOL_SOCKET, _socket.SO_PEERCRED, _PEERCRED_SIZE)
    return int.from_bytes(raw[4:8], sys.byteorder)


def run(args: list[str], environ: dict[str, str] | None = None) -> int | None:
    """Hands this process's command to the starter when it can; returns the exit code, or None."""
    env = dict(os.environ if environ is None else environ)
    if not any(arg in COMMANDS for arg in args) or persist_off(args, env):
        return None
    try:
        path = starter_socket(env)
    except OSError:
        return None
    if path is None:
        return None
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        sock.settimeout(ANSWER_TIMEOUT)
        sock.connect(path)
        if peer_uid(sock) != os.geteuid():
            return None
        umask = os.umask(0)
        os.umask(umask)
        request = {"v": VERSION, "argv": list(args), "argv0": sys.argv[0] if sys.argv else "imageserving-fleet",
                   "cwd": os.getcwd(), "env": env, "umask": umask, "streams": _streams()}
        fds = b"".join(fd.to_bytes(4, sys.byteorder) for fd in (0, 1, 2))
        data = pack(request)
        sent = sock.sendmsg([data], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, fds)])
        if sent < len(data):
            sock.sendall(data[sent:])
        first = read(sock)
    except FRAME_ERRORS:
        sock.close()
        return None
    except KeyboardInterrupt:
        sock.close()
        sys.stderr.write("interrupted\n")
        return EXIT_INTERRUPTED
    pid = first.get("pid")
    if not isinstance(pid, int):
        sock.close()
        return None  # declined (another version, a request it could not take): this process runs it
    try:
        return _wait(sock, pid)
    finally:
        sock.close()


def _wait(sock: Any, pid: int) -> int | None:
    """The child's exit code; None if it declined, or ended without one (then asked again here)."""
    sock.settimeout(None)
    while True:
        try:
            answer = read(sock)
        except KeyboardInterrupt:  # the terminal's Ctrl-C reached only us: the child is not in our group
            _signal(pid, SIGINT)
            continue
        except FRAME_ERRORS:
            sys.stderr.write(f"imageserving-fleet: the warm command's process ({pid}) ended without an exit status; "
                             "asking directly\n")
            return None
        if isinstance(answer.get("exit"), int):
            return int(answer["exit"])
        if answer.get("declined"):
            return None


def persist_off(args: list[str], environ: dict[str, str]) -> bool:
    """--persist 0 (or IMAGESERVING_PERSIST=0, or a value this client cannot read): no warm start."""
    text = environ.get(ENV_SECONDS, "").strip()
    for i, arg in enumerate(args):
        if arg == "--persist":
            text = args[i + 1] if i + 1 < len(args) else "0"
        elif arg.startswith("--persist="):
            text = arg.partition("=")[2]
    if not text:
        return False
    try:
        return not float(text) > 0
    except ValueError:
        return True  # the full command says what is wrong with it


def _streams() -> list[list[str]]:
    """Each standard stream's encoding and error handler, so the child writes exactly as this process would."""
    return [[getattr(stream, "encoding", None) or "utf-8", getattr(stream, "errors", None) or "strict"]
            for stream in (sys.stdin, sys.stdout, sys.stderr)]


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except OSError:
        pass
