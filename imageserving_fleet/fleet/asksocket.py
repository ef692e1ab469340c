"""Ask a host's Server Supervisor for its status over the SSH connection: no shell, no process.

    SocketAsker(cache).ask(target, job, session, deadline, started) -> HostResult | None
    SocketAsker.learned(target, result, kind) -> HostResult   (after the agent ran)

The status goes through a `direct-streamlocal@openssh.com` channel (ssh/streamlocal.py) to the
control socket, in the supervisor's own JSON line protocol (protocol.py); the reply is judged as
the agent's own output would be: the typed status, the one rule of which components are down
(componentstate.py, which the agent's status applies too) and results.verdict, so a host's
verdict does not depend on the way it was asked. `"via"` in the result says which way it was:
"socket" or "exec".

The socket path: under an absolute `imageserving_home` (home.py says where); otherwise the
path the host's last exec answer gave (`supervisor.socket`), kept in a small per-host cache; else
there is no path and the agent is run. `None` from ask() means "run the agent": no path, a
become target (its socket is not the login user's), the channel refused (sshd's
`AllowStreamLocalForwarding no` / `DisableForwarding yes`, a missing or stale socket: OpenSSH
answers all of them alike), or a supervisor that closed without answering. The agent then says
the truth, including "Server Supervisor is not running".
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import posixpath
import threading
import time
from collections.abc import Sequence
from typing import Any

from ..atomic import write_atomic
from ..componentstate import down_message
from ..errors import Reason, UnreachableError
from ..home import MAX_SOCKET_PATH, Home
from ..protocol import ANSWER_TIMEOUT, BAD_ARGS, FAILED, MAX_REPLY, NO_ANSWER, OK
from ..schema import SchemaError
from .jobs import Kind
from .results import HostResult, Via, agent_error, bad_output, last_line, status_of, verdict
from .ssh.streamlocal import StreamLocalRefused
from .target import Target

log = logging.getLogger(__name__)

UNREADABLE = "unreadable reply from the Server Supervisor"  # the agent's client says the same


# ------------------------------------------------------------------ pure parts
def status_ids(args: Sequence[str]) -> list[str]:
    """The component ids of a status job's agent arguments (`status is --json` -> ["is"])."""
    return [a for a in args[1:] if not a.startswith("-")]


def request_line(ids: Sequence[str]) -> bytes:
    return json.dumps({"cmd": "status", "ids": list(ids)}).encode() + b"\n"


def reply_result(host: str, reply: bytes, ids: Sequence[str], elapsed: float) -> HostResult:
    """Takes the supervisor's reply line; returns the verdict `imageserving status --json` would lead to.

    As the agent's status does: the components down by componentstate's rule (a held one only when
    named) fail it with "not RUNNING: ...", also written into the document when it has no message;
    an error reply is the agent's error with the reply's code; an unreadable reply is exit 4.
    """
    try:
        envelope = json.loads(reply)
    except (ValueError, RecursionError):
        envelope = None
    if not isinstance(envelope, dict):
        return agent_error(host, NO_ANSWER, UNREADABLE, elapsed)
    if envelope.get("status") != "ok":
        try:
            code = int(envelope.get("code", BAD_ARGS))
        except (TypeError, ValueError):
            return agent_error(host, NO_ANSWER, UNREADABLE, elapsed)
        return agent_error(host, code, last_line(str(envelope.get("reason", "error"))), elapsed)
    raw = envelope.get("result")
    try:
        doc = status_of(raw, reply.decode(errors="replace"))
    except (SchemaError, RecursionError) as exc:
        return bad_output(host, exc, json.dumps(raw), elapsed)
    down = [c.id for c in doc.down(named=bool(ids))]
    if not down:
        return verdict(host, "status", OK, doc, "", elapsed)
    message = down_message(down)
    if not doc.message:
        doc = dataclasses.replace(doc, message=message, source={**doc.document(), "message": message})
    return verdict(host, "status", FAILED, doc, message, elapsed)


def cache_key(target: Target) -> str:
    """The cache's name for a host: where it is reached, as whom, and which home."""
    raw = json.dumps([target.hostname, target.port, target.user or "", target.home or ""])
    return hashlib.sha256(raw.encode()).hexdigest()[:32]


def usable_socket(path: Any) -> str | None:
    """An absolute socket path short enough for sun_path, or None."""
    if (isinstance(path, str) and path.startswith("/") and "\0" not in path
            and len(path.encode()) <= MAX_SOCKET_PATH):
        return path
    return None


def home_socket(target: Target) -> str | None:
    """The socket under an absolute imageserving_home, as the agent computes it (home.py)."""
    if target.home and target.home.startswith("/"):
        return usable_socket(Home(posixpath.normpath(target.home)).socket)
    return None


def reported_socket(result: HostResult) -> str | None:
    """The socket path in the status document an agent printed, if any."""
    return usable_socket(getattr(getattr(result.status, "supervisor", None), "socket", None))


# ------------------------------------------------------------------ the cache
def cache_dir() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "imageserving-fleet", "sockets")


class SocketCache:
    """Per host, the socket path its agent last reported: one small JSON file per host.

    A file per host, written atomically (atomic.py: temp file + rename), so runs at once never lose each
    other's entries; anything unreadable is ignored (the host is asked by exec and rewritten).
    """

    def __init__(self, directory: str | None = None) -> None:
        self.dir = directory or cache_dir()
        self._memo: dict[str, str | None] = {}
        self._lock = threading.Lock()

    def get(self, target: Target) -> str | None:
        key = cache_key(target)
        with self._lock:
            if key in self._memo:
                return self._memo[key]
        try:
            with open(os.path.join(self.dir, key + ".json"), "rb") as fh:
                path = usable_socket(json.loads(fh.read(4096)).get("socket"))
        except (OSError, ValueError, AttributeError, RecursionError):
            path = None
        with self._lock:
            self._memo[key] = path
        return path

    def put(self, target: Target, path: str) -> None:
        key = cache_key(target)
        with self._lock:
            if self._memo.get(key) == path:
                return
            self._memo[key] = path
        entry = {"socket": path, "host": target.hostname, "port": target.port, "user": target.user,
                 "home": target.home}
        try:
            os.makedirs(self.dir, mode=0o700, exist_ok=True)
            write_atomic(os.path.join(self.dir, key + ".json"), json.dumps(entry), durable=False)
        except OSError as exc:  # a read-only home costs only the exec next time
            log.debug("socket cache %s: %s", self.dir, exc)


# ------------------------------------------------------------------ asking
class SocketAsker:
    """Status over the socket where it can be, with the exec fallback decided per host."""

    def __init__(self, cache: SocketCache | None = None) -> None:
        self.cache = cache if cache is not None else SocketCache()
        self._skip: set[str] = set()      # hosts whose sshd refused the channel while the agent ran
        self._refused: dict[str, str] = {}  # host -> the path refused on its last try
        self._lock = threading.Lock()

    def socket_path(self, target: Target) -> str | None:
        if target.become or target.connection != "ssh":
            return None
        with self._lock:
            if target.name in self._skip:
                return None
        return home_socket(target) or self.cache.get(target)

    def ask(self, target: Target, job_args: Sequence[str], session: Any, deadline: float,
            started: float) -> HostResult | None:
        """The host's status through its socket, or None when the agent must be run instead."""
        path = self.socket_path(target)
        opener = getattr(session, "open_streamlocal", None)
        if path is None or opener is None:
            return None
        try:
            chan = opener(path, timeout=max(0.01, deadline - time.monotonic()))
        except StreamLocalRefused as exc:
            log.debug("%s: %s; asking the agent instead", target.name, exc)
            with self._lock:
                self._refused[target.name] = path
            return None
        except TimeoutError:
            raise UnreachableError(target.name, Reason.TIMEOUT, "no answer to the channel open to the "
                                   "Server Supervisor's socket") from None
        except Exception as exc:  # the transport itself is gone
            raise UnreachableError(target.name, Reason.CONNECTION_LOST, f"{type(exc).__name__}: {exc}") from None
        answer_by = time.monotonic() + ANSWER_TIMEOUT
        try:
            reply = _exchange(chan, request_line(status_ids(job_args)), min(deadline, answer_by))
        except TimeoutError:
            if deadline <= answer_by:  # the host's deadline came first, as it would for the agent's run
                raise UnreachableError(target.name, Reason.TIMEOUT, "the Server Supervisor did not answer "
                                       "on its socket within --timeout") from None
            res = agent_error(target.name, NO_ANSWER, f"no answer from the Server Supervisor within "
                              f"{ANSWER_TIMEOUT:g}s", time.monotonic() - started)
        except Exception as exc:  # the channel broke under us (EOFError, OSError, SSHException)
            if not getattr(session, "alive", False):
                raise UnreachableError(target.name, Reason.CONNECTION_LOST, f"{type(exc).__name__}: {exc}") from None
            log.debug("%s: the channel to %s broke (%s); asking the agent", target.name, path, exc)
            return None
        else:
            if reply is None:  # closed without a word: let the agent tell what is wrong
                log.debug("%s: the supervisor closed %s without answering; asking the agent", target.name, path)
                return None
            res = reply_result(target.name, reply, status_ids(job_args), time.monotonic() - started)
        with self._lock:
            self._refused.pop(target.name, None)
        return dataclasses.replace(res, via=Via.SOCKET)

    def learned(self, target: Target, result: HostResult, kind: Kind = Kind.STATUS) -> HostResult:
        """After the agent ran: keep the socket path it reported; note a policy refusal; say "exec".

        Any command's status document counts (a start's too), so the first status after a
        start already goes over the socket; only a status result gets `"via"`.
        """
        path = reported_socket(result)
        if path is not None and not target.become and target.connection == "ssh":
            with self._lock:
                refused = self._refused.pop(target.name, None)
                if refused == path:  # the supervisor runs there, and sshd would not let us in
                    self._skip.add(target.name)
            if home_socket(target) is None:
                self.cache.put(target, path)
        if kind is not Kind.STATUS:
            return result
        return dataclasses.replace(result, via=Via.EXEC)


def _exchange(chan: Any, request: bytes, deadline: float) -> bytes | None:
    """Sends one request line; returns the reply line, None on EOF before any byte."""
    data = bytearray()
    try:
        chan.settimeout(max(0.01, deadline - time.monotonic()))
        chan.sendall(request)
        while not data.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError()
            chan.settimeout(left)
            try:
                chunk = chan.recv(65536)
            except OSError as exc:  # socket.timeout is a TimeoutError, an OSError
                if isinstance(exc, TimeoutError):
                    raise
                chunk = b""
            if not chunk:
                break
            data += chunk
            if len(data) > MAX_REPLY:
                break
    finally:
        try:
            chan.close()
        except Exception:  # noqa: BLE001 - a half-dead channel is closed either way
            pass
    return bytes(data) if data else None
