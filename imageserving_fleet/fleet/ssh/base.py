"""What every session offers, whatever carries it: the Session interface and CommandResult.

The fan-out and the deploy code are written against `Session`; `SshSession` (session.py) and
`LocalSession` (local.py) implement it, and tests may hold any object with the same methods.
paramiko is imported lazily here, on the first SSH connection, so a local-only run never pays.
"""

from __future__ import annotations

import importlib.util
import logging
import sys
import types
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from ...protocol import MAX_REPLY

if TYPE_CHECKING:
    import paramiko

# What one command may write, stdout and stderr together, before the host is given up as lying:
# the agent prints one reply of its supervisor at most (protocol.py holds the bound).
MAX_OUTPUT = MAX_REPLY


@dataclass(frozen=True)
class CommandResult:
    """What a finished command left: its exit code and everything it wrote."""

    exit_code: int
    stdout: bytes
    stderr: bytes


class Session(Protocol):
    """A connection to one host that runs commands on it; reuse it for every command to that host."""

    host: str

    def run(self, command: str, *, stdin: bytes | None = None, timeout: float,
            max_output: int = MAX_OUTPUT) -> CommandResult:
        """Runs a POSIX shell command line (quoted by the caller) and waits at most `timeout` s."""
        ...

    def sftp(self) -> paramiko.SFTPClient:
        """An SFTP client on this connection (SSH only)."""
        ...

    def put(self, local: str, remote: str, *, timeout: float | None = None) -> None:
        """Copies a local file to the host; a relative or `~/` remote path is under its home."""
        ...

    def close(self) -> None:
        """Ends the connection politely."""
        ...

    def abort(self) -> None:
        """Ends the connection now, from any thread: a blocked run() raises 'connection lost'."""
        ...



_PARAMIKO: Any = None


def load_paramiko() -> Any:
    """Imports paramiko on first use (~0.2 s) and keeps its log lines off the user's terminal."""
    global _PARAMIKO
    if _PARAMIKO is None:
        _load_on_first_use("invoke")
        import paramiko

        # Without a handler, logging's last resort prints paramiko's ERROR lines (a refused
        # banner...) on stderr, beside our own report of the same failure.
        logging.getLogger("paramiko").addHandler(logging.NullHandler())
        _PARAMIKO = paramiko
    return _PARAMIKO


def _load_on_first_use(name: str) -> None:
    """Puts a stand-in for module `name` in sys.modules that imports the real one on first use.

    paramiko.config imports invoke eagerly (and invoke unittest.mock and asyncio: 33 ms of CPU at
    every controller start, measured with -X importtime) for one rare thing, ssh_config's `Match
    exec`, which then loads it for real. importlib's LazyLoader does not do here: `import invoke`
    itself reads the module's __spec__, which would load it. A module already imported, or not
    installed (paramiko then says so itself at `Match exec`), is left alone.
    """
    if name in sys.modules or importlib.util.find_spec(name) is None:
        return
    sys.modules[name] = _OnFirstUse(name)


class _OnFirstUse(types.ModuleType):
    """A module's stand-in: the first attribute it lacks imports the real module, which answers from then on."""

    def __getattr__(self, attr: str) -> Any:
        real = self.__dict__.get("_real")
        if real is None:
            if sys.modules.get(self.__name__) is self:
                del sys.modules[self.__name__]
            real = importlib.import_module(self.__name__)
            self.__dict__["_real"] = real
        return getattr(real, attr)


class Connecting(Protocol):
    """What the fan-out needs of a connector: `Connector`, or `MockConnector` in tests."""

    def connect(self, where: Any, deadline: float) -> Session:
        """A session to `where` (a Destination or a Target), or UnreachableError by `deadline`."""
        ...

    def close(self) -> None:
        """From any thread: connects in progress and every session end now."""
        ...
