"""Sending files to a host: over SFTP when the host offers it, else piped through a command, checked.

    send(session, files, deadline, python=...) -> Sent   every file at its remote path, or raise
    batches(sizes, chunk)                                pure: how the piped bytes are cut into commands
    receive_command(mark, python, items)                 pure: the remote command that takes one batch
    read_receipts(stdout, mark) / verify(...)            pure: what the host said, and whether it is right

The order is Ansible's `ssh_transfer_method: smart` (sftp, then scp, then piped) without scp: on
OpenSSH 9 and later `scp` speaks SFTP itself, so it fails wherever SFTP does; legacy `scp -t` needs
an scp binary on the host and, like the SFTP server, is started through the login shell and speaks
its protocol on the same stdout the shell prints on, so a printing startup file breaks it the same
way. The two usual causes of a failed SFTP session, no `Subsystem sftp` (sshd refuses the request)
and a login shell that prints (sshd starts the SFTP server with `$SHELL -c`, so the printed bytes
come first and paramiko calls them a garbage packet), are both cured by the piped transfer; scp
would cure at most the first, which piped already does, with a checksum scp lacks.

Piped: the files' bytes go on stdin of `exec PYTHON -c RECEIVE MARK ARGS...` (the deploy already
needs python3 there). The receiver reads exactly the announced number of bytes per file into a
temporary name beside the target, computes its sha256, renames it into place only when it equals
the controller's, and prints one line per file starting with MARK, a random token: whatever the
login shell prints around it is ignored, and bytes a startup file swallows from stdin show up as a
short read or a checksum mismatch, a per-host failure that names the file. Files are sent in
batches of at most CHUNK bytes, one command per batch (a wheel larger than CHUNK spans several,
appended in order), so the controller holds at most one batch per host, never a whole large file.
(A session whose run() took a stream for stdin would let one command carry everything, at SFTP's
speed; the batches are what a bytes-only run() allows.)
"""

from __future__ import annotations

import enum
import hashlib
import secrets
import shlex
import socket
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...errors import HostError, UnreachableError, UsageError
from ..remote import quote_path
from ..ssh import CommandResult, Session

# One command's stdin: what a host in flight costs the controller (at most twice this, while a
# batch of small files is joined: 50 forks all piping at once hold 200-400 MB), and large enough
# that a deploy's wheels (7.5 MB) take two commands, each paying a login shell's and a python's
# start (30-150 ms on an idle host). No cap across hosts: a stalled host holding a turn would make
# healthy ones time out.
CHUNK = 4 << 20
_REPLY_LIMIT = 1 << 20  # the receipts are short; the rest is what the login shell printed
_SFTP_REQUEST_TIMEOUT = 30.0
_FIELDS = 6  # per piece in the receiver's argv: path, tmp, offset, length, sha256 (last piece), mode

# Run by the host's python; argv: MARK then _FIELDS per piece. Stdlib only, any Python 3.
RECEIVE = r"""
import hashlib, os, sys
mark, args = sys.argv[1], sys.argv[2:]
inp = sys.stdin.buffer
def say(n, *words):
    sys.stdout.write(" ".join([mark, str(n)] + [str(w) for w in words]) + "\n")
    sys.stdout.flush()
for n in range(len(args) // 6):
    path, tmp, offset, length, want, mode = args[6 * n:6 * n + 6]
    offset, length = int(offset), int(length)
    try:
        with open(tmp, "r+b" if offset else "wb") as f:
            f.seek(0, 2)
            if f.tell() != offset:
                say(n, "gap", f.tell())
                sys.exit(3)
            left = length
            while left:
                block = inp.read(min(left, 1 << 20))
                if not block:
                    break
                f.write(block)
                left -= len(block)
        if left:
            os.unlink(tmp)
            say(n, "short", length - left)
            sys.exit(3)
        if not want:
            say(n, "part", length)
            continue
        h = hashlib.sha256()
        with open(tmp, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        if h.hexdigest() != want:
            os.unlink(tmp)
            say(n, "mismatch", h.hexdigest())
            sys.exit(3)
        os.chmod(tmp, int(mode, 8))
        os.replace(tmp, path)
        say(n, "ok", h.hexdigest())
    except OSError as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        say(n, "error", "%s: %s" % (path, exc.strerror or exc))
        sys.exit(1)
"""

# The login shell runs this: from the home directory (a startup file may have cd'ed elsewhere), the
# deploy's python when this user can run it, else python3 (a become host's interpreter may be
# root's own). Exit 127: no python at all.
_LAUNCH = ('cd || exit 1; p=$1; shift; case $p in */*) [ -x "$p" ] || p=python3;; *) command -v "$p" '
           '>/dev/null 2>&1 || p=python3;; esac; exec "$p" -c "$@"')


class Transfer(enum.StrEnum):
    """How the files reached the host (the `transfer` of the host's deploy result)."""

    SFTP = "sftp"
    PIPED = "piped"  # on stdin of a command, checked with sha256 on the host
    LOCAL = "local"  # ansible_connection=local: a copy


class TransferFailed(HostError):
    """A file could not be sent, or arrived different; reason is "upload", detail names the file."""


@dataclass(frozen=True)
class Outgoing:
    """One local file and where it goes: `remote` is relative to the login user's home (or `~/...`)."""

    local: Path
    remote: str
    size: int
    sha256: str
    mode: int = 0o644

    @classmethod
    def of(cls, local: str | Path, remote: str, sha256: str | None = None, mode: int = 0o644) -> Outgoing:
        path = Path(local)
        if sha256 is None:
            digest = hashlib.sha256()
            with open(path, "rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(block)
            sha256 = digest.hexdigest()
        return cls(path, remote, path.stat().st_size, sha256, mode)

    @property
    def home_relative(self) -> str:
        return self.remote.removeprefix("~/")


@dataclass(frozen=True)
class Sent:
    """What send() did: the method, and why SFTP was not it when SFTP was tried and failed."""

    method: Transfer
    sftp_error: str = ""


@dataclass(frozen=True)
class Piece:
    """Bytes [offset, offset+length) of file number `file`; `last` when they end it."""

    file: int
    offset: int
    length: int
    last: bool


@dataclass(frozen=True)
class Receipt:
    """One line of the receiver: piece number, what happened (ok, part, mismatch, short...), detail."""

    piece: int
    status: str
    detail: str


def batches(sizes: Sequence[int], chunk: int = CHUNK) -> list[list[Piece]]:
    """Takes file sizes; returns the pieces of each command, in order, each batch at most `chunk` bytes.

    Files are kept whole where they fit and cut where they do not; an empty file is one empty piece.
    """
    if chunk <= 0:
        raise ValueError("chunk must be positive")
    out: list[list[Piece]] = []
    current: list[Piece] = []
    room = chunk
    for index, size in enumerate(sizes):
        offset = 0
        while True:
            if room == 0:
                out.append(current)
                current, room = [], chunk
            length = min(size - offset, room)
            current.append(Piece(index, offset, length, offset + length == size))
            offset += length
            room -= length
            if offset == size:
                break
    if current:
        out.append(current)
    return out


def temporary(remote: str, token: str) -> str:
    return f"{remote}.tmp-{token}"


def receive_command(mark: str, python: str, items: Sequence[tuple[Outgoing, Piece]], token: str) -> str:
    """The command line for one batch: every value a quoted argument of constant scripts."""
    args = [mark]
    for f, piece in items:
        path = f.home_relative
        args += [path, temporary(path, token), str(piece.offset), str(piece.length),
                 f.sha256 if piece.last else "", f"{f.mode:o}"]
    quoted = " ".join(shlex.quote(a) for a in args)
    return f"sh -c {shlex.quote(_LAUNCH)} sh {quote_path(python)} {shlex.quote(RECEIVE)} {quoted}"


def read_receipts(stdout: bytes, mark: str) -> dict[int, Receipt]:
    """Takes the command's stdout; returns the receiver's lines by piece, ignoring every other line."""
    found: dict[int, Receipt] = {}
    for line in stdout.decode(errors="replace").splitlines():
        words = line.strip().split(" ", 3)
        if len(words) >= 3 and words[0] == mark and words[1].isdigit():
            found[int(words[1])] = Receipt(int(words[1]), words[2], words[3] if len(words) > 3 else "")
    return found


def verify(host: str, files: Sequence[Outgoing], batch: Sequence[Piece], receipts: Mapping[int, Receipt],
           out: CommandResult) -> None:
    """Raises TransferFailed unless the host confirms every piece of the batch, and each whole file's
    sha256 is the local one."""
    for n, piece in enumerate(batch):
        f = files[piece.file]
        name = f.local.name
        got = receipts.get(n)
        if got is None:
            raise TransferFailed(host, "upload", f"piped {name}: {_silence(out)}")
        if got.status == "mismatch" or (got.status == "ok" and got.detail != f.sha256):
            raise TransferFailed(host, "upload", f"piped {name}: checksum mismatch: sha256 on the host "
                                                 f"{got.detail[:16]}…, sent {f.sha256[:16]}…; nothing was renamed "
                                                 "into place")
        if got.status == "short":
            raise TransferFailed(host, "upload", f"piped {name}: the host received {got.detail} of "
                                                 f"{piece.length} bytes (does a startup file read stdin?)")
        if got.status == "error":
            raise TransferFailed(host, "upload", f"piped {name}: {got.detail}")
        expected = "ok" if piece.last else "part"
        if got.status != expected:
            raise TransferFailed(host, "upload", f"piped {name}: the host said {got.status} {got.detail}".rstrip())


def _silence(out: CommandResult) -> str:
    """Why the receiver confirmed nothing: its exit code and last line on stderr."""
    if out.exit_code == 127:
        return "no python3 on the host to receive the file"
    lines = [ln.strip() for ln in out.stderr.decode(errors="replace").splitlines() if ln.strip()]
    return f"exit {out.exit_code}" + (f": {lines[-1][:300]}" if lines else ": the host confirmed nothing")


# --------------------------------------------------------------------------- the I/O shell


def send(session: Session, files: Sequence[Outgoing], deadline: float, *, python: str = "python3") -> Sent:
    """Puts every file at its remote path (complete, or not at all); returns how.

    The remote directories must exist (the deploy's probe makes its upload directory).

    Raises TransferFailed (the host's answer: no space, a checksum mismatch...) or UnreachableError
    (the connection was lost or the deadline passed), never UnreachableError for SFTP itself.
    """
    try:
        client = session.sftp()
    except UsageError:  # a local connection: no SSH at all
        for f in files:
            session.put(str(f.local), f.remote, timeout=_remaining(deadline))
        return Sent(Transfer.LOCAL)
    except UnreachableError as exc:  # no SFTP subsystem, or a login shell that printed into it
        piped(session, files, deadline, python=python)
        return Sent(Transfer.PIPED, _sftp_why(exc))
    try:
        done = 0
        for f in files:
            _sftp_put(session.host, client, f, deadline)
            done += 1
    except _SftpBroke as exc:  # a session that broke mid-way: the rest go piped (a lost link raises there)
        piped(session, files[done:], deadline, python=python)
        return Sent(Transfer.PIPED, str(exc))
    finally:
        _quietly_close(client)
    return Sent(Transfer.SFTP)


def piped(session: Session, files: Sequence[Outgoing], deadline: float, *, python: str = "python3") -> None:
    """Sends the files on stdin of receiver commands, one per batch; raises TransferFailed on a bad answer."""
    mark = "imageserving-fleet-receipt-" + secrets.token_hex(8)
    token = secrets.token_hex(4)
    for batch in batches([f.size for f in files], CHUNK):
        command = receive_command(mark, python, [(files[p.file], p) for p in batch], token)
        out = session.run(command, stdin=_read(session.host, files, batch), timeout=_remaining(deadline),
                          max_output=_REPLY_LIMIT)
        verify(session.host, files, batch, read_receipts(out.stdout, mark), out)


def _read(host: str, files: Sequence[Outgoing], batch: Sequence[Piece]) -> bytes:
    parts = []
    for piece in batch:
        with open(files[piece.file].local, "rb") as handle:
            handle.seek(piece.offset)
            data = handle.read(piece.length)
        if len(data) != piece.length:  # the local file changed under us
            raise TransferFailed(host, "upload", f"{files[piece.file].local} changed while it was sent")
        parts.append(data)
    return parts[0] if len(parts) == 1 else b"".join(parts)


class _SftpBroke(Exception):
    """The SFTP session failed in a way the piped transfer may not (protocol, channel, a stalled request)."""


class _Expired(Exception):
    pass


def _sftp_put(host: str, client: Any, f: Outgoing, deadline: float) -> None:
    """One file over SFTP to a temporary name, then renamed: complete or absent."""
    path = f.home_relative
    tmp = temporary(path, secrets.token_hex(4))
    client.get_channel().settimeout(min(_SFTP_REQUEST_TIMEOUT, _remaining(deadline)))

    def progress(sent: int, total: int) -> None:
        if time.monotonic() >= deadline:
            raise _Expired

    try:
        with open(f.local, "rb") as handle:
            client.putfo(handle, tmp, file_size=f.size, callback=progress, confirm=True)
        client.chmod(tmp, f.mode)
        client.posix_rename(tmp, path)
    except _Expired:  # the host answers, slowly: its failure, not an unreachable host
        _quietly_remove(client, tmp)
        raise TransferFailed(host, "upload", f"{f.local.name} over SFTP did not finish before the deadline") from None
    except OSError as exc:
        if isinstance(exc, socket.timeout) or exc.errno is None:
            _quietly_remove(client, tmp)
            raise _SftpBroke(f"SFTP: {exc or type(exc).__name__}") from None
        _quietly_remove(client, tmp)  # the server's answer (no such directory, no space): piped would hear it too
        raise TransferFailed(host, "upload", f"{path}: {exc.strerror or exc}") from None
    except Exception as exc:  # paramiko's SSHException, EOFError...
        raise _SftpBroke(f"SFTP: {type(exc).__name__}: {exc}") from None


def _sftp_why(exc: UnreachableError) -> str:
    detail = exc.detail or exc.reason
    return detail if detail.startswith("SFTP") else f"SFTP: {detail}"


def _quietly_remove(client: Any, path: str) -> None:
    try:
        client.remove(path)
    except Exception:  # best effort: the tmp name is unique, and the deploy prunes old parts
        pass


def _quietly_close(client: Any) -> None:
    try:
        client.close()
    except Exception:
        pass


def _remaining(deadline: float) -> float:
    return max(0.01, deadline - time.monotonic())
