"""Turn fleet results into what a person (or a script, --json) reads: tables, the recap, the bar.

    print_outcome(console, outcome)   a command's results: JSON, the status table, logs, deploy's table
    print_hosts(console, rows)        `hosts`
    progress_bar(console, total)      on a terminal only: (told of each host done, takes it down)
    batch_printer(console, quiet)     a rolling run's batches as they begin
    terminal_confirm(console)         --confirm's question before each batch after the first
    debug_log()                       -v: the package's debug lines on stderr
    out, err                          the consoles: stdout (wide in a pipe), stderr (unwrapped)

Every string a host sent (reasons, component ids, versions, log lines, deploy's cells) goes
through `untrusted.escape` and into a rich `Text` or a `markup=False` print, never into markup: a
host cannot drive the terminal or restyle the table.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from ..componentstate import TONE
from ..errors import UsageError
from ..schema import COMPONENT_IDS, ComponentStatus
from ..units import format_duration, format_size
from ..untrusted import EscapingFormatter, escape
from .commands.hosts import COLUMNS, HostRow, hosts_document
from .commands.run import Outcome
from .context import Command
from .results import HostResult, Result, config_digests, fleet_document, summarize
from .rolling import Confirm, OnBatch


def _consoles() -> tuple[Console, Console]:
    """stdout's and stderr's consoles, as the streams are now (a terminal's colours and width are read here)."""
    # A pipe or cron mail has no width: give the table room rather than cutting states to "RUN…".
    # Errors unwrapped (soft_wrap): a log or cron mail must read `got 'notaport'` on one line, and
    # a terminal wraps long lines itself.
    return (Console(highlight=False, width=None if sys.stdout.isatty() else 200),
            Console(stderr=True, highlight=False, soft_wrap=True))


out, err = _consoles()


def reset_consoles() -> None:
    """Makes out and err again for the streams as they are now (a warm command's child: persist/starter.py).

    Callers that import them at call time (quick.py) get the new ones.
    """
    global out, err
    out, err = _consoles()
RESULT_STYLE = {Result.OK: "green", Result.DEGRADED: "yellow", Result.FAILED: "red",
                Result.UNREACHABLE: "magenta", Result.SKIPPED: "dim"}
TONE_STYLE = {"ok": "green", "busy": "yellow", "off": "dim", "bad": "red", "fatal": "bold red"}  # by componentstate.TONE


def component_ids(results: Sequence[HostResult]) -> list[str]:
    """ps, is, svg first, then any other component a host reports, in order of appearance."""
    seen = [c for c in COMPONENT_IDS]
    for r in results:
        for comp in r.components:
            if comp.id not in seen:
                seen.append(comp.id)
    present = {c.id for r in results for c in r.components}
    return [c for c in seen if c in present] or list(COMPONENT_IDS)


def component_cell(comp: ComponentStatus | None) -> Text:
    """One component's table cell: state, uptime, memory, restarts, held or unhealthy."""
    if comp is None:
        return Text("-", style="dim")
    text = Text(comp.state, style=TONE_STYLE.get(TONE.get(comp.state, ""), ""))
    if comp.uptime_s is not None:
        text.append(f" {format_duration(comp.uptime_s)}")
    memory = comp.pss_bytes if comp.pss_bytes is not None else comp.rss_bytes   # PSS where the agent gives it
    if memory is not None:
        text.append(f" {format_size(memory)}", style="cyan")
    if comp.restarts:
        text.append(f" ↻{comp.restarts}", style="yellow")
    if comp.held:
        text.append(" held", style="dim")
    elif comp.health == "unhealthy":
        text.append(f" unhealthy×{comp.health_failures}", style="red")
    return text


def results_table(results: Sequence[HostResult], title: str | None = None) -> Table:
    ids = component_ids(results)
    table = Table(title=title, show_lines=False, header_style="bold", expand=False)
    table.add_column("host", no_wrap=True)
    table.add_column("result", no_wrap=True)
    for cid in ids:
        table.add_column(escape(cid, tabs=False), no_wrap=True)
    digests = config_digests(results)  # only when hosts run different configurations
    if digests:
        common = max(set(digests.values()), key=list(digests.values()).count)
        table.add_column("config", no_wrap=True)
    table.add_column("reason", overflow="fold")
    for r in results:
        reason = r.reason
        if r.agent_version is not None:
            reason = f"agent {r.agent_version}" + (f"; {reason}" if reason else "")
        reason = escape(reason, tabs=False)
        config = []
        if digests:
            d = digests.get(r.host, "-")
            config = [Text(escape(d, tabs=False), style="" if d == common else "bold yellow")]
        table.add_row(Text(r.host), Text(str(r.result), style=RESULT_STYLE[r.result]),
                      *(component_cell(r.component(cid)) for cid in ids), *config, Text(reason))
    return table


def print_results(console: Console, results: Sequence[HostResult], title: str | None = None) -> None:
    if results:
        console.print(results_table(results, title))
    console.print(recap(results))


def recap(results: Sequence[HostResult]) -> Text:
    s = summarize(results)
    text = Text()
    for key, value, style in (("hosts", s.hosts, "bold"), ("ok", s.ok, "green"), ("degraded", s.degraded, "yellow"),
                              ("failed", s.failed, "red"), ("unreachable", s.unreachable, "magenta"),
                              ("skipped", s.skipped, "dim")):
        if text:
            text.append(" ")
        text.append(f"{key}={value}", style=style if value and key != "hosts" else ("bold" if key == "hosts" else ""))
    return text


def print_outcome(console: Console, outcome: Outcome, *, as_json: bool = False, quiet: bool = False,
                  raw: bool = False, group: bool = False) -> None:
    """A run's results as its command shows them (--quiet: only the hosts not ok, nothing if none;
    `group`: logs --group, each distinct output once under its hosts; `raw`: logs --raw)."""
    results, command = outcome.results, outcome.command
    wrong = [r for r in results if r.result != Result.OK]
    if as_json:
        if command is Command.LOGS:
            from .logs import logs_document

            sys.stdout.write(logs_document(results, grouped=group) + "\n")
        else:
            batches = {} if outcome.batches is None else {"batches": [list(b) for b in outcome.batches]}
            sys.stdout.write(json.dumps(fleet_document(command.value, results) | batches) + "\n")
    elif command is Command.LOGS and group:
        from .loggroup import group_results, print_groups

        print_groups(group_results(results), raw=raw)
    elif command is Command.LOGS:
        from .logs import print_logs

        print_logs(results, raw=raw)
    elif command is Command.DEPLOY:
        if not quiet or wrong:
            print_deploy(console, wrong if quiet else results)
    elif not quiet or wrong:
        print_results(console, wrong if quiet else list(results))


def print_hosts(console: Console, rows: Sequence[HostRow], *, as_json: bool = False,
                run: Mapping[str, Mapping[str, Any]] | None = None) -> None:
    """The hosts table, then where each setting came from (one row per host and setting), then the
    run's settings and their sources; or all of it as one JSON document."""
    if as_json:
        sys.stdout.write(json.dumps(hosts_document(list(rows), run)) + "\n")
        return
    from .explain import text_rows

    table = Table(header_style="bold")
    for col in COLUMNS:
        table.add_column(col, overflow="fold")
    for row in rows:
        cells = row.to_dict()
        table.add_row(*(str(cells[c]) if cells[c] not in (None, False) else "-" for c in COLUMNS))
    console.print(table)
    console.print(f"{len(rows)} host(s)")
    sources = Table(header_style="bold", title="where each setting came from")
    for col in ("host", "setting", "value", "source"):
        sources.add_column(col, overflow="fold")
    for row in rows:
        for line in text_rows(row.host, row.settings):
            sources.add_row(*line)
    console.print(sources)
    for name, item in (run or {}).items():
        value = item["value"]
        shown = ", ".join(value) if isinstance(value, list) else value
        console.print(f"{name}: {shown if shown not in (None, '') else '-'}  ({item['source']})", markup=False)


def progress_bar(console: Console, total: int) -> tuple[Callable[[HostResult], None] | None, Callable[[], None]]:
    """A bar on `console` when it is a terminal and there are hosts to count: (advance, stop)."""
    if not console.file.isatty() or total < 2:  # not console.is_terminal: FORCE_COLOR must not put it in a pipe
        return None, lambda: None
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                   console=console, transient=True)
    task = bar.add_task("hosts", total=total)
    bar.start()

    def advance(res: HostResult) -> None:
        bar.update(task, advance=1, description=f"{res.host}: {res.result}")

    return advance, bar.stop


def batch_printer(console: Console, quiet: bool) -> OnBatch:
    """`batch 1/3: a, b` as each batch of a rolling run begins (not for one batch, nor when quiet)."""
    def on_batch(i: int, n: int, names: list[str]) -> None:
        if not quiet and n > 1:
            console.print(f"batch {i}/{n}: {', '.join(names)}", markup=False)

    return on_batch


def print_deploy(console: Console, results: Sequence[HostResult]) -> None:
    """What a person reads after a deploy: host, result, what was done, how files went, the agent's path."""
    if results:
        table = Table(header_style="bold")
        for col in ("host", "result", "action", "version", "transfer", "imageserving_command", "reason"):
            table.add_column(col, overflow="fold", no_wrap=col in ("host", "result"))
        for r in results:
            d = r.deployed
            cells = (d.action if d else "-", d.version if d else "-", (d.transfer if d else None) or "-",
                     d.imageserving_command if d else "-", r.reason)
            table.add_row(Text(r.host), Text(str(r.result), style=RESULT_STYLE[r.result]),
                          *(Text(escape(cell, tabs=False)) for cell in cells))
        console.print(table)
    console.print(recap(results))
    commands = sorted({r.deployed.imageserving_command for r in results if r.deployed is not None})
    if len(commands) == 1:
        console.print(f"imageserving_command: {escape(commands[0])}", markup=False, highlight=False)
        console.print("(the default for these hosts: status, start, stop and restart use it without setting it)",
                      style="dim")
    elif commands:
        console.print("imageserving_command: per host, as in the table (each is that host's default)", style="dim")


def terminal_confirm(console: Console) -> Confirm:
    """--confirm: a yes on the terminal before each batch after the first; without a TTY, UsageError (exit 5)."""
    if not (sys.stdin.isatty() and console.is_terminal):
        raise UsageError("--confirm asks on the terminal, and stdin or stderr is not one")

    def confirm(number: int, total: int, names: list[str]) -> bool:
        shown = ", ".join(names[:10]) + (f" and {len(names) - 10} more" if len(names) > 10 else "")
        try:
            answer = console.input(f"batch {number}/{total} ({shown}): go on? [y/N] ", markup=False)
        except EOFError:
            return False
        return answer.strip().lower() in ("y", "yes")

    return confirm


def debug_log() -> None:
    """-v: the package's debug lines on stderr, escaped (they carry what hosts printed)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(EscapingFormatter("debug: %(message)s"))
    logging.getLogger("imageserving_fleet").addHandler(handler)
    logging.getLogger("imageserving_fleet").setLevel(logging.DEBUG)
