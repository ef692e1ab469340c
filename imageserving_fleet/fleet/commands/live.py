"""`status --watch` and `exporter`: one long-lived fan-out, every host polled over kept connections."""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping, Sequence
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

    listen: Annotated[str, opt("--listen", metavar="ADDR", help="HOST:PORT, [V6]:PORT or :PORT to serve /metrics, "
                                                                "the live page (/) and /healthz on.")] = "127.0.0.1:9464"
    interval: Annotated[float, opt("--interval", metavar="S", help="Seconds between polls of every host.")] = 15.0
    notify: Annotated[str | None, opt(
        "--notify", metavar="URL", help="POST a JSON document (Slack-compatible \"text\") for each change logged: a "
                                        "host's result, a component's state.")] = None
    notify_interval: Annotated[str, opt(
        "--notify-interval", metavar="D", help="Flap damping: at most one notification per host and subject per D "
                                               "(e.g. 30s, 5m); the next says how many were held back.")] = "5m"


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


def exporter(ctx: RunContext, fanout: FanOut, sock: socket.socket, interval: float,
             notify: Notify | None = None, environ: Mapping[str, str] | None = None) -> int:
    """Serves /metrics, the live page and /healthz on `sock` (see listen()) until SIGTERM or SIGINT;
    SIGHUP re-reads the inventory as it was found at start (same -i, same --limit); returns the exit code."""
    from ..context import select_targets
    from ..exporter import serve

    env = os.environ if environ is None else environ
    return serve(fanout, ctx.targets, sock, interval, ctx.timeout,
                 reload=lambda: select_targets(ctx.options, env),
                 notify=notify.url if notify else None, notify_interval=notify.min_interval if notify else 0.0)


@dataclass(frozen=True)
class Notify:
    """--notify URL and its flap damping (--notify-interval), checked."""

    url: str
    min_interval: float


def notify_options(url: str | None, interval: str) -> Notify | None:
    """Checks --notify (an http(s) URL) and --notify-interval (a duration); UsageError (exit 5) before any host."""
    from ...units import parse_duration
    from ..notify import check_url

    try:
        seconds = parse_duration(interval)
    except ValueError as exc:
        raise UsageError(f"--notify-interval: {exc}") from None
    return Notify(check_url(url), seconds) if url is not None else None


def listen(address: str, interval: float) -> tuple[socket.socket, float]:
    """The exporter's checked --interval and its bound socket: in use, not allowed, not an address: exit 5."""
    from ...metrics_http import bind
    from ..poller import check_interval

    every = check_interval(interval)
    return bind(address), every
