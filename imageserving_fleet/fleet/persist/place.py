"""Where a user's connection holder lives, and how long it stays: the directory, the socket, --persist.

    persist_seconds(option, environ) -> float          --persist, else IMAGESERVING_PERSIST, else 60
    holder_dir(environ) -> str                         0700, this user's, created if missing
    Place.of(environ) -> Place                         dir + socket + lock paths of this holder

One holder per user and per environment that changes what a connection is: HOME (its
~/.ssh/config and known_hosts), SSH_AUTH_SOCK (its agent's keys), USER/LOGNAME (the default
remote user), XDG_CACHE_HOME (the socket-path cache), the working directory (relative paths in
options and inventories: a holder's threads share one), the Python and the version of this
package. A different value of any of them is a different socket name, so a command never asks a
holder that would connect differently from the way it would itself.
"""

from __future__ import annotations

import hashlib
import math
import os
import stat
import sys
from collections.abc import Mapping
from dataclasses import dataclass

from ... import __version__
from ...errors import HolderError, UsageError

ENV_SECONDS = "IMAGESERVING_PERSIST"  # the variable --persist falls back to (options.py declares it too)
ENV_DIR = "IMAGESERVING_PERSIST_DIR"
DEFAULT_SECONDS = 60.0
MAX_SECONDS = 7 * 86400.0
MAX_SOCKET_PATH = 107          # sun_path holds 108 bytes with its NUL
# What the environment contributes to a connection (see the module docstring).
_IDENTITY_VARS = ("HOME", "SSH_AUTH_SOCK", "USER", "LOGNAME", "XDG_CACHE_HOME")


def persist_seconds(option: float | None, environ: Mapping[str, str] = os.environ) -> float:
    """Takes --persist (None: not given) and the environment; returns the idle seconds, 0 = off.

    Raises UsageError naming the option or the variable for anything not a number of seconds >= 0.
    """
    if option is not None:
        value, where = option, "--persist"
    else:
        text = environ.get(ENV_SECONDS, "").strip()
        if not text:
            return DEFAULT_SECONDS
        where = ENV_SECONDS
        try:
            value = float(text)
        except ValueError:
            raise UsageError(f"{ENV_SECONDS}={text!r}: expected seconds (0 turns the connection holder off)") from None
    if not math.isfinite(value) or not 0 <= value <= MAX_SECONDS:
        raise UsageError(f"{where} must be between 0 (off) and {MAX_SECONDS:g} seconds, got {value!r}")
    return float(value)


def holder_dir(environ: Mapping[str, str] = os.environ) -> str:
    """This user's holder directory, made 0700 if missing; raises HolderError if it is not safely ours.

    IMAGESERVING_PERSIST_DIR, else $XDG_RUNTIME_DIR/imageserving-fleet, else
    ~/.imageserving-fleet/persist.
    """
    chosen = environ.get(ENV_DIR)
    if not chosen:
        runtime = environ.get("XDG_RUNTIME_DIR")
        if runtime and _owned_private(runtime):
            chosen = os.path.join(runtime, "imageserving-fleet")
        else:
            chosen = os.path.join(os.path.expanduser("~"), ".imageserving-fleet", "persist")
    path = os.path.abspath(chosen)
    try:
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    except OSError as exc:
        raise HolderError(f"cannot make {path}: {exc.strerror or exc}") from None
    check_private(path)
    return path


def check_private(path: str) -> None:
    """Refuses a holder directory that is a symlink, not ours, or open to group or others."""
    try:
        st = os.lstat(path)
    except OSError as exc:
        raise HolderError(f"{path}: {exc.strerror or exc}") from None
    if not stat.S_ISDIR(st.st_mode):
        raise HolderError(f"{path} is not a directory")
    if st.st_uid != os.geteuid():
        raise HolderError(f"{path} belongs to uid {st.st_uid}, not to this user ({os.geteuid()})")
    if st.st_mode & 0o077:
        raise HolderError(f"{path} is open to others (mode {stat.S_IMODE(st.st_mode):o}): it must be 0700")


def _owned_private(path: str) -> bool:
    try:
        st = os.stat(path)
    except OSError:
        return False
    return stat.S_ISDIR(st.st_mode) and st.st_uid == os.geteuid() and not st.st_mode & 0o077


def identity(environ: Mapping[str, str] = os.environ) -> str:
    """A short digest of everything outside the request that shapes a connection (module docstring)."""
    try:
        cwd = os.getcwd()
    except OSError:  # a directory removed under us: no holder can share it
        cwd = ""
    parts = [__version__, sys.executable, str(os.geteuid()), cwd] + [f"{k}={environ.get(k, '')}"
                                                                     for k in _IDENTITY_VARS]
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Place:
    """The paths of one holder: its socket, the lock taken to start it, its log."""

    dir: str
    socket: str
    lock: str
    log: str

    @classmethod
    def of(cls, environ: Mapping[str, str] = os.environ) -> Place:
        directory = holder_dir(environ)
        name = identity(environ)
        sock = os.path.join(directory, f"h-{name}.sock")
        if len(sock.encode()) > MAX_SOCKET_PATH:
            raise HolderError(f"{sock}: longer than a unix socket path may be ({MAX_SOCKET_PATH} bytes)")
        return cls(directory, sock, os.path.join(directory, f"h-{name}.lock"), os.path.join(directory, f"h-{name}.log"))
