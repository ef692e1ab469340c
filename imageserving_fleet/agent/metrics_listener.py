"""The supervisor's own /metrics listener (`supervisor.metrics.listen`); daemon.py imports it only
when that is set, so prometheus_client is loaded only then.

Its snapshot asks the supervisor over its own control socket, exactly as `imageserving status`
does: the selector loop answers it like any other client and is never blocked by HTTP.
"""

from __future__ import annotations

import socket
import time

from ..home import Home
from ..metrics import agent_families, render
from ..metrics_http import CLIENT_TIMEOUT, MetricsServer, Snapshot
from ..schema import parse_status
from .client import request


def supervisor_snapshot(home: Home) -> Snapshot:
    """The supervisor's snapshot: its own status, asked over its control socket, as metrics."""
    def snapshot(fmt: str) -> bytes:
        reply = request(home, {"cmd": "status", "ids": []}, timeout=CLIENT_TIMEOUT)
        if reply.get("status") != "ok":
            raise RuntimeError(str(reply.get("reason") or "status refused"))
        return render(agent_families(parse_status(reply["result"]), time.time()), fmt)

    return snapshot


def serve_supervisor(sock: socket.socket, home: Home) -> MetricsServer:
    """Starts the supervisor's /metrics listener on a bound socket (see daemon.serve)."""
    return MetricsServer(sock, supervisor_snapshot(home)).start()
