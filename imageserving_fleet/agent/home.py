"""Where one installation keeps its state: <home>/run (lock, pid, socket) and <home>/logs.

Plain strings and os.path, no pathlib or dataclasses: the status client imports this, and those
imports alone would cost it 15 ms.
"""

from __future__ import annotations

import os

HOME_ENV = "IMAGESERVING_HOME"  # --home's fallback; also set for every component, so a server can write under it
MAX_SOCKET_PATH = 104  # sun_path is 108 bytes on Linux, 104 on the BSDs


class Home:
    """The state root of one Server Supervisor."""

    __slots__ = ("root",)

    def __init__(self, root: str) -> None:
        self.root = root

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
    def run(self) -> str:
        return os.path.join(self.root, "run")

    @property
    def logs(self) -> str:
        return os.path.join(self.root, "logs")

    @property
    def socket(self) -> str:
        return os.path.join(self.run, "supervisor.sock")

    @property
    def lock(self) -> str:
        return os.path.join(self.run, "supervisor.lock")

    @property
    def start_lock(self) -> str:
        return os.path.join(self.run, "start.lock")

    @property
    def pidfile(self) -> str:
        return os.path.join(self.run, "supervisor.pid")

    @property
    def children_file(self) -> str:
        """pid and create time of every component we spawned: found again after a crash."""
        return os.path.join(self.run, "components.json")

    @property
    def marker(self) -> str:
        """The value of IMAGESERVING_SUPERVISED that tags this home's processes and their descendants."""
        return self.root

    def log(self, name: str) -> str:
        return os.path.join(self.logs, f"{name}.log")

    def prepare(self) -> None:
        """Creates run/ (0700: the socket's guard) and logs/."""
        os.makedirs(self.run, mode=0o700, exist_ok=True)
        os.chmod(self.run, 0o700)
        os.makedirs(self.logs, exist_ok=True)
