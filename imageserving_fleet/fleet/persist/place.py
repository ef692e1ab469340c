"""Where a user's connection holder lives, and how long it stays: the directory, the socket, --persist.

    persist_seconds(option, environ) -> float          --persist, else IMAGESERVING_PERSIST, else 60
    chosen_dir(environ) -> str                         where it is (neither made nor checked)
    holder_dir(environ) -> str                         0700, this user's, created if missing
    starter_socket(environ) -> str | None              the warm-command starter's socket, if it can be there
    Place.of(environ) -> Place                         dir + socket + lock + log + starter paths of this holder

One holder per user and per environment that changes what a connection is: HOME (its
~/.ssh/config and known_hosts), SSH_AUTH_SOCK (its agent's keys), USER/LOGNAME (the default
remote user), XDG_CACHE_HOME (the socket-path cache), the working directory (relative paths in
options and inventories: a holder's threads share one), the Python, and the version of this
package and where it is installed. A different value of any of them is a different socket name,
so a command never asks a holder that would connect differently from the way it would itself.
"""

from __future__ import annotations

import math
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass

from ...errors import HolderError, UsageError
from .names import ENV_DIR, ENV_SECONDS, chosen_dir, identity, starter_socket

__all__ = ["ENV_DIR", "ENV_SECONDS", "Place", "chosen_dir", "holder_dir", "identity", "persist_seconds", "starter_socket"]

DEFAULT_SECONDS = 60.0
MAX_SECONDS = 7 * 86400.0
MAX_SOCKET_PATH = 107          # sun_path holds 108 bytes with its NUL


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
    """chosen_dir(), made 0700 if missing; raises HolderError if it is not safely ours."""
    path = chosen_dir(environ)
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


@dataclass(frozen=True)
class Place:
    """The paths of one holder: its socket, the lock taken to start it, its log, its warm-command starter's socket."""

    dir: str
    socket: str
    lock: str
    log: str
    starter: str

    @classmethod
    def of(cls, environ: Mapping[str, str] = os.environ) -> Place:
        directory = holder_dir(environ)
        name = identity(environ)
        sock = os.path.join(directory, f"h-{name}.sock")
        if len(sock.encode()) > MAX_SOCKET_PATH:
            raise HolderError(f"{sock}: longer than a unix socket path may be ({MAX_SOCKET_PATH} bytes)")
        return cls(directory, sock, os.path.join(directory, f"h-{name}.lock"), os.path.join(directory, f"h-{name}.log"),
                   os.path.join(directory, f"h-{name}.start"))
