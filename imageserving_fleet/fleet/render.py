"""Turn fleet results into what a person reads: a rich table and the recap line."""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Console
from rich.table import Table
from rich.text import Text

from ..componentstate import TONE
from ..schema import COMPONENT_IDS, ComponentStatus
from ..units import format_duration, format_size
from .results import HostResult, Result, config_digests, summarize

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
    if comp.rss_bytes is not None:
        text.append(f" {format_size(comp.rss_bytes)}", style="cyan")
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
        table.add_column(cid, no_wrap=True)
    digests = config_digests(results)  # only when hosts run different configurations
    if digests:
        common = max(set(digests.values()), key=list(digests.values()).count)
        table.add_column("config", no_wrap=True)
    table.add_column("reason", overflow="fold")
    for r in results:
        reason = r.reason
        if "agent_version" in r.extra:
            reason = f"agent {r.extra['agent_version']}" + (f"; {reason}" if reason else "")
        config = []
        if digests:
            d = digests.get(r.host, "-")
            config = [Text(d, style="" if d == common else "bold yellow")]
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
