"""The names of a user's holder: its directory and the digest its sockets are named by. Stdlib only, makes nothing.

    chosen_dir(environ) -> str               IMAGESERVING_PERSIST_DIR, $XDG_RUNTIME_DIR/..., ~/.imageserving-fleet/persist
    identity(environ) -> str                 16 hex digits of what shapes a connection (place.py's docstring)
    starter_socket(environ) -> str | None    the warm-command starter's socket, if it can be there

Light on purpose: the warm command's client (thin.py) reads these before anything else, so
this imports neither dataclasses nor hashlib's OpenSSL (place.py builds the rest on it).
"""

from __future__ import annotations

import os
import stat
import sys

from ... import __version__

try:  # the interpreter's own SHA-256, without hashlib's OpenSSL start-up
    from _sha256 import sha256
except ImportError:  # pragma: no cover - Python 3.12+ names it _sha2; any Python has hashlib
    try:
        from _sha2 import sha256  # type: ignore[import-not-found,no-redef]
    except ImportError:
        from hashlib import sha256  # type: ignore[assignment]

TYPE_CHECKING = False  # not `from typing`: the warm client's start-up
if TYPE_CHECKING:
    from collections.abc import Mapping

ENV_SECONDS = "IMAGESERVING_PERSIST"  # the variable --persist falls back to (options.py declares it too)
ENV_DIR = "IMAGESERVING_PERSIST_DIR"
# What the environment contributes to a connection (see place.py's docstring).
_IDENTITY_VARS = ("HOME", "SSH_AUTH_SOCK", "USER", "LOGNAME", "XDG_CACHE_HOME")
_PACKAGE = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # imageserving_fleet/


def chosen_dir(environ: Mapping[str, str] = os.environ) -> str:
    """This user's holder directory, as an absolute path, neither made nor checked.

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
    return os.path.abspath(chosen)


def _owned_private(path: str, *, follow: bool = True) -> bool:
    try:
        st = os.stat(path) if follow else os.lstat(path)
    except OSError:
        return False
    return stat.S_ISDIR(st.st_mode) and st.st_uid == os.geteuid() and not st.st_mode & 0o077


def identity(environ: Mapping[str, str] = os.environ) -> str:
    """A short digest of everything outside the request that shapes a connection (place.py's docstring)."""
    try:
        cwd = os.getcwd()
    except OSError:  # a directory removed under us: no holder can share it
        cwd = ""
    # The package's own directory too: a source checkout of the same version is another program.
    parts = [__version__, _PACKAGE, sys.executable, str(os.geteuid()), cwd] + [f"{k}={environ.get(k, '')}"
                                                                               for k in _IDENTITY_VARS]
    return sha256("\0".join(parts).encode()).hexdigest()[:16]


def starter_socket(environ: Mapping[str, str] = os.environ) -> str | None:
    """The warm-command starter's socket of this environment if its directory is there and ours, else None.

    Makes nothing: the warm command's client (thin.py) asks this before anything else.
    """
    directory = chosen_dir(environ)
    if not _owned_private(directory, follow=False):
        return None
    return os.path.join(directory, f"h-{identity(environ)}.start")
