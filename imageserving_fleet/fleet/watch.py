"""`imageserving-fleet status --watch`: the fleet on the screen, changing as it changes.

A poller (poller.py) asks every host again every --interval over kept connections; the screen is
redrawn once per interval (a "refresh") from the last answer of every host. What changed since
the previous refresh is shown reversed: a component's state, its pid (a new process) or its
restart count, and a host that stopped answering. Each host's row says how old its last answer is.

When the fleet has more hosts than the screen has lines, the hosts that are not ok come first
(worst first, then inventory order) and a last line counts the hosts left out; otherwise the rows
keep the inventory's order, so nothing jumps around while all is well.

The pure part (WatchState, frame, view) takes answers and times and returns what to draw; only
`watch()` touches the terminal: cbreak mode for `q`, the alternate screen, and the terminal's
settings restored on every way out (q, Ctrl-C, SIGTERM, SIGHUP, an exception).
"""

from __future__ import annotations

import os
import queue
import select
import signal
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from rich import box
from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

from ..errors import UsageError
from ..schema import ComponentStatus
from ..units import format_duration
from ..untrusted import escape
from .fanout import FanOut
from .jobs import status_job
from .poller import Poller, agent_status
from .render import RESULT_STYLE, component_cell, recap
from .reports.model import SEVERITY
from .results import HostResult, Result
from .target import Target

DEFAULT_INTERVAL = 2.0
CHANGED = "reverse"
CHROME_LINES = 5          # title, table header and its rule, the "more hosts" line, the recap


@dataclass(frozen=True)
class Row:
    """One host as one refresh shows it."""

    host: str
    result: Result | None                          # None: no answer yet
    reason: str
    comps: dict[str, ComponentStatus]
    age_s: float | None                            # since the last answer
    asking: bool                                   # a poll of it is in flight
    changed: frozenset[str] = frozenset()          # component ids that changed; "host" when it stopped answering


@dataclass
class WatchState:
    """Every host's last answer and what the previous refresh showed (to highlight changes)."""

    names: list[str]
    latest: dict[str, HostResult] = field(default_factory=dict)
    answered_at: dict[str, float] = field(default_factory=dict)
    shown: dict[str, tuple[Any, ...]] = field(default_factory=dict)

    def update(self, result: HostResult, at: float) -> None:
        self.latest[result.host] = result
        self.answered_at[result.host] = at

    def frame(self, now: float, asking: frozenset[str] = frozenset()) -> list[Row]:
        """The rows of one refresh, in inventory order, with what changed since the previous one."""
        rows = []
        for name in self.names:
            res = self.latest.get(name)
            status = agent_status(res.status) if res else None
            comps = {c.id: c for c in status.components} if status else {}
            key = (res.result if res else None, {cid: (c.state, c.pid, c.restarts) for cid, c in comps.items()})
            before = self.shown.get(name)
            changed: set[str] = set()
            if before is not None:
                old_comps = before[1]
                changed = {cid for cid, v in key[1].items() if cid in old_comps and old_comps[cid] != v}
                if before[0] not in (None, Result.UNREACHABLE) and key[0] == Result.UNREACHABLE:
                    changed.add("host")
            self.shown[name] = key
            at = self.answered_at.get(name)
            rows.append(Row(name, res.result if res else None, res.reason if res else "", comps,
                            None if at is None else max(0.0, now - at), name in asking, frozenset(changed)))
        return rows


def fit(rows: Sequence[Row], height: int) -> tuple[list[Row], list[Row]]:
    """Takes the rows and the screen's height; returns (shown, left out): all when they fit, else
    the hosts not ok first (worst first, inventory order within a result)."""
    room = max(1, height - CHROME_LINES)
    if len(rows) <= room:
        return list(rows), []
    order = sorted(range(len(rows)), key=lambda i: (-_severity(rows[i]), i))
    keep = sorted(order[:room])
    kept = set(keep)
    return [rows[i] for i in keep], [r for i, r in enumerate(rows) if i not in kept]


def _severity(row: Row) -> int:
    if row.result is None:
        return 1
    return SEVERITY[row.result] + (10 if row.changed else 0)


def _age(row: Row, interval: float) -> Text:
    if row.age_s is None:
        return Text("…" if row.asking else "-", style="dim")
    text = f"{row.age_s:.0f}s" if row.age_s < 60 else format_duration(row.age_s)
    return Text(text, style="bold red" if row.age_s > 3 * interval + 1 else ("" if row.age_s <= interval + 1 else "yellow"))


def _cell(comp: ComponentStatus | None, changed: bool) -> Text:
    text = component_cell(comp)
    if changed and comp is not None:
        text.stylize(CHANGED)
    return text


def view(rows: Sequence[Row], ids: Sequence[str], *, interval: float, height: int, clock: str = "") -> RenderableType:
    """Takes one refresh's rows; returns what the screen shows (title, table, recap)."""
    shown, left = fit(rows, height)
    title = Text(f"imageserving-fleet status --watch · every {interval:g}s · {clock} · q quits", style="bold")
    if left:
        title.append(f" · {len(shown)} of {len(rows)} hosts, not ok first", style="yellow")
    cells = [[Text(r.host[:40], style="bold white on red" if "host" in r.changed else ""),
              Text(str(r.result) if r.result else "waiting",
                   style=RESULT_STYLE.get(r.result, "dim") if r.result else "dim"),
              *(_cell(r.comps.get(cid), cid in r.changed) for cid in ids), _age(r, interval)]
             for r in shown]
    heads = ["host", "result", *(escape(cid, tabs=False) for cid in ids), "answer"]
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, header_style="bold", expand=False)
    for i, head in enumerate(heads):  # these keep their width; the reason takes what is left, or is cut
        width = max([len(head)] + [row[i].cell_len for row in cells])
        table.add_column(head, no_wrap=True, min_width=width, justify="right" if head == "answer" else "left")
    table.add_column("reason", no_wrap=True, overflow="ellipsis")
    for r, row in zip(shown, cells, strict=True):
        table.add_row(*row, Text(escape(" ".join(r.reason.split())[:300], tabs=False)))
    parts: list[RenderableType] = [title, table]
    if left:
        counts: dict[str, int] = {}
        for r in left:
            counts[str(r.result or "waiting")] = counts.get(str(r.result or "waiting"), 0) + 1
        parts.append(Text(f"… {len(left)} more hosts: " + " ".join(f"{k}={v}" for k, v in counts.items()),
                          style="dim"))
    answered = [HostResult(r.host, r.result, r.reason) for r in rows if r.result is not None]
    line = recap(answered)
    waiting = sum(1 for r in rows if r.result is None)
    if waiting:
        line.append(f" waiting={waiting}", style="dim")
    parts.append(line)
    return Group(*parts)


def columns(rows: Sequence[Row], wanted: Sequence[str]) -> list[str]:
    """The component columns: the ids asked for, else ps, is, svg and any other a host reports."""
    if wanted:
        return list(wanted)
    from ..schema import COMPONENT_IDS

    seen = list(COMPONENT_IDS)
    for r in rows:
        seen += [cid for cid in r.comps if cid not in seen]
    present = {cid for r in rows for cid in r.comps}
    return [c for c in seen if c in present] or list(COMPONENT_IDS)


# ------------------------------------------------------------------ the terminal
def check_terminal() -> None:
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise UsageError("status --watch needs a terminal (stdin and stdout); "
                         "in a script use `status` or `status --json`")


def watch(fleet: FanOut, targets: Sequence[Target], ids: Sequence[str], interval: float, timeout: float,
          console: Console | None = None) -> int:
    """Runs the live view until q, Ctrl-C, SIGTERM or SIGHUP; returns the exit code (0)."""
    import termios
    import tty

    from rich.live import Live

    check_terminal()
    console = console or Console(highlight=False)
    answers: queue.SimpleQueue[tuple[HostResult, float]] = queue.SimpleQueue()
    state = WatchState([t.name for t in targets])
    poller = Poller(fleet, targets, interval, timeout, lambda res, at: answers.put((res, at)),
                    job=status_job(ids))
    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd)
    resized = [False]

    def leave(signo: int, _frame: Any) -> None:
        raise KeyboardInterrupt

    def on_resize(signo: int, _frame: Any) -> None:
        resized[0] = True

    handlers = {signal.SIGTERM: leave, signal.SIGHUP: leave, signal.SIGWINCH: on_resize}
    previous = {signo: signal.signal(signo, h) for signo, h in handlers.items()}
    try:
        tty.setcbreak(fd)  # keys without Enter, no echo; Ctrl-C still interrupts
        with Live(console=console, screen=True, auto_refresh=False, transient=True) as live:
            poller.start()
            due = time.monotonic()
            rows: list[Row] = []
            while True:
                now = time.monotonic()
                if now >= due:
                    while True:
                        try:
                            state.update(*answers.get_nowait())
                        except queue.Empty:
                            break
                    rows = state.frame(now, poller.outstanding)
                    due = max(due + interval, now + interval / 4)
                    resized[0] = True
                if resized[0]:
                    resized[0] = False
                    live.update(view(rows, columns(rows, ids), interval=interval, height=console.size.height,
                                     clock=datetime.now().strftime("%H:%M:%S")), refresh=True)
                ready, _, _ = select.select([fd], [], [], max(0.0, min(0.25, due - time.monotonic())))
                if ready and b"q" in os.read(fd, 64).lower():
                    break
    except KeyboardInterrupt:
        pass
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)
        for signo, h in previous.items():
            signal.signal(signo, h)
        poller.stop()
    return 0
