"""`status --watch` and `exporter`: one fan-out kept open, its connections polled every interval."""

from __future__ import annotations

import socket
from collections.abc import Sequence

from ..context import RunContext
from .run import open_fanout


def watch(ctx: RunContext, ids: Sequence[str], interval: float) -> int:
    """The full-screen view until q, Ctrl-C or a signal; returns the exit code."""
    from ..watch import watch as watch_fleet

    with open_fanout(ctx) as fleet:  # closes every kept connection on the way out
        return watch_fleet(fleet, ctx.targets, ids, interval, ctx.timeout)


def exporter(ctx: RunContext, sock: socket.socket, interval: float) -> int:
    """Serves /metrics on `sock` (bound by the caller) until SIGTERM or SIGINT; returns the exit code."""
    from ..exporter import serve

    with open_fanout(ctx) as fleet:
        return serve(fleet, ctx.targets, sock, interval, ctx.timeout)
