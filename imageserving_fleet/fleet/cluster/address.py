"""What `--cluster ADDRESS` says: N local worker processes, or a running scheduler. Pure."""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from ...errors import UsageError

MAX_LOCAL_WORKERS = 256
_HOST_PORT = re.compile(r"^(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):(?P<port>[0-9]{1,5})$")


class Kind(enum.Enum):
    LOCAL = "local"  # start N worker processes on this machine for the run
    TCP = "tcp"      # a running scheduler, plain TCP
    TLS = "tls"      # a running scheduler, TLS (the only kind a become password may go to)


@dataclass(frozen=True)
class ClusterAddress:
    kind: Kind
    workers: int = 0      # LOCAL only
    host: str = ""        # TCP/TLS only
    port: int = 0

    @property
    def url(self) -> str:
        """The scheduler address as dask takes it (`tcp://host:port`); `local:N` for LOCAL."""
        if self.kind is Kind.LOCAL:
            return f"local:{self.workers}"
        return f"{self.kind.value}://{self.host}:{self.port}"

    @property
    def encrypted(self) -> bool:
        return self.kind is Kind.TLS

    def __str__(self) -> str:
        return self.url


def parse_address(text: str) -> ClusterAddress:
    """Takes `local:N`, `tcp://HOST:PORT` or `tls://HOST:PORT`; returns it or raises UsageError."""
    value = text.strip()
    usage = (f"--cluster {text!r}: expected local:N (N worker processes here), tcp://HOST:PORT or "
             "tls://HOST:PORT (a running dask scheduler)")
    if value.startswith("local:"):
        count = value.removeprefix("local:")
        if not count.isdigit() or not 1 <= int(count) <= MAX_LOCAL_WORKERS:
            raise UsageError(f"{usage}; N must be 1-{MAX_LOCAL_WORKERS}")
        return ClusterAddress(Kind.LOCAL, workers=int(count))
    scheme, sep, rest = value.partition("://")
    if not sep or scheme.lower() not in ("tcp", "tls"):
        raise UsageError(usage)
    match = _HOST_PORT.match(rest.rstrip("/"))
    if not match or not 0 < int(match["port"]) < 65536:
        raise UsageError(usage)
    return ClusterAddress(Kind(scheme.lower()), host=match["host"], port=int(match["port"]))
