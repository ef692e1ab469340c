"""Where one installation keeps its state: <home>/run (lock, pid, socket) and <home>/logs.

Shared: the agent lives there, and the fleet computes a host's socket path from it (asksocket).

Plain strings and os.path, no pathlib or dataclasses: the status client imports this, and those
imports alone would cost it 15 ms.
"""

from __future__ import annotations

import os

HOME_ENV = "IMAGESERVING_HOME"  # --home's fallback; also set for every component, so a server can write under it
MAX_SOCKET_PATH = 104  # sun_path is 108 bytes on Linux, 104 on the BSDs
SUPERVISOR_LOG = "Supervisor"  # logs/Supervisor.log, and what `imageserving logs supervisor` reads


class Home:
    """The state root of one Server Supervisor, and the paths under it (computed once: plain strings)."""

    __slots__ = ("root", "run", "logs", "socket", "lock", "start_lock", "pidfile", "children_file")

    def __init__(self, root: str) -> None:
        self.root = root
        self.run = os.path.join(root, "run")            # 0700: the socket's guard
        self.logs = os.path.join(root, "logs")
        self.socket = os.path.join(self.run, "supervisor.sock")
        self.lock = os.path.join(self.run, "supervisor.lock")
        self.start_lock = os.path.join(self.run, "start.lock")
        self.pidfile = os.path.join(self.run, "supervisor.pid")
        # pid and create time of every component spawned: found again after a crash
        self.children_file = os.path.join(self.run, "components.json")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Home) and other.root == self.root

    def __hash__(self) -> int:
        return hash(self.root)

    def __repr__(self) -> str:
        return f"Home({self.root!r})"

    @classmethod
    def resolve(cls, explicit: str | None) -> Home:
        """Takes --home (or None); returns IMAGESERVING_HOME or ~/.imageserving when not given."""
        value = explicit or os.environ.get(HOME_ENV) or "~/.imageserving"
        return cls(os.path.abspath(os.path.expanduser(value)))

    @property
    def marker(self) -> str:
        """The value of IMAGESERVING_SUPERVISED that tags this home's processes and their descendants."""
        return self.root

    def log(self, name: str) -> str:
        return os.path.join(self.logs, f"{name}.log")

    @property
    def supervisor_log(self) -> str:
        """The supervisor's own log: one line per state change, and why it could not start."""
        return self.log(SUPERVISOR_LOG)

    def prepare(self) -> None:
        """Creates run/ (0700: the socket's guard) and logs/."""
        os.makedirs(self.run, mode=0o700, exist_ok=True)
        os.chmod(self.run, 0o700)
        os.makedirs(self.logs, exist_ok=True)
