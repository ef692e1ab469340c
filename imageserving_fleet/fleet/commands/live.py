"""`status --watch` and `exporter`: one long-lived fan-out, every host polled over kept connections."""

from __future__ import annotations

import socket
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated

from ...errors import UsageError
from ..context import RunContext
from ..fanout import FanOut
from ..options import opt


@dataclass(frozen=True)
class WatchOptions:
    """`status`'s options for its live view, as written (the CLI builds its options from them)."""

    watch: Annotated[bool, opt("--watch", help="A full-screen live view; q or Ctrl-C leaves.")] = False
    interval: Annotated[float | None, opt(
        "--interval", metavar="S", help="With --watch: seconds between refreshes (default 2).")] = None

    def every(self, as_json: bool) -> float | None:
        """None without --watch (and then no --interval: UsageError); else watch_interval()."""
        if not self.watch:
            if self.interval is not None:
                raise UsageError("--interval goes with --watch")
            return None
        return watch_interval(self.interval, as_json)


@dataclass(frozen=True)
class ExporterOptions:
    """`exporter`'s options as written (the CLI builds its options from them)."""

    listen: Annotated[str, opt("--listen", metavar="ADDR", help="HOST:PORT, [V6]:PORT or :PORT to serve /metrics on.")
                      ] = "127.0.0.1:9464"
    interval: Annotated[float, opt("--interval", metavar="S", help="Seconds between polls of every host.")] = 15.0


def watch_interval(interval: float | None, as_json: bool) -> float:
    """Checks `status --watch` can run here (a terminal, no --json); returns its interval (UsageError)."""
    from ..poller import check_interval
    from ..watch import DEFAULT_INTERVAL, check_terminal

    every = check_interval(DEFAULT_INTERVAL if interval is None else interval)
    if as_json:
        raise UsageError("--watch is for a person and --json for a script: choose one")
    check_terminal()
    return every


def watch(ctx: RunContext, fanout: FanOut, ids: Sequence[str], interval: float) -> int:
    """The full-screen view until q, Ctrl-C or a signal; returns the exit code."""
    from ..watch import watch as watch_fleet

    return watch_fleet(fanout, ctx.targets, ids, interval, ctx.timeout)


def exporter(ctx: RunContext, fanout: FanOut, sock: socket.socket, interval: float) -> int:
    """Serves /metrics on `sock` (see listen()) until SIGTERM or SIGINT; returns the exit code."""
    from ..exporter import serve

    return serve(fanout, ctx.targets, sock, interval, ctx.timeout)


def listen(address: str, interval: float) -> tuple[socket.socket, float]:
    """The exporter's checked --interval and its bound socket: in use, not allowed, not an address: exit 5."""
    from ...metrics_http import bind
    from ..poller import check_interval

    every = check_interval(interval)
    return bind(address), every
