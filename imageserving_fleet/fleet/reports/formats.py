"""The report as JSON, CSV and Markdown text. Pure: a Report in, a string out.

- json: the report document (model.py); `report merge` reads it back.
- csv: one row per host and component (a host without components gets one row with an empty
  component), numbers raw (bytes, seconds) for a spreadsheet or a script. A text cell that a
  spreadsheet would run as a formula (=, +, -, @ first) gets a leading `'` (OWASP's advice).
- md: the recap, a host x component table and what is wrong, for a mail or a wiki page; every
  value from a host is escaped so it cannot become a link, markup or a broken table.
- openmetrics, prometheus: the exporter's metrics (SPEC §7) of this one run, in OpenMetrics 1.0
  or in the text format node_exporter's textfile collector reads (metrics.py; prometheus_client
  is imported only for these).
"""

from __future__ import annotations

import csv
import io
import json

from ...units import format_duration, format_size
from .model import Report, plain, to_document

FORMATS = ("html", "json", "csv", "md", "openmetrics", "prometheus")
CSV_COLUMNS = ("host", "result", "reason", "component", "state", "pid", "uptime_s", "rss_bytes", "restarts",
               "message", "restarts_window", "restarted", "memory_growing", "generated")


def render_json(report: Report) -> str:
    return json.dumps(to_document(report), indent=1, ensure_ascii=False) + "\n"


def _csv_text(value: str) -> str:
    value = plain(value)
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def render_csv(report: Report) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    ids = report.component_ids
    for h in report.hosts:
        cells = [c for c in (report.cell(h, cid) for cid in ids) if c is not None]
        head = [_csv_text(h.host), str(h.result), _csv_text(h.reason)]
        if not cells:
            writer.writerow([*head, *([""] * (len(CSV_COLUMNS) - 4)), report.generated])
        for c in cells:
            t = c.trend
            writer.writerow([*head, _csv_text(c.id), c.state, "" if c.pid is None else c.pid,
                             "" if c.uptime_s is None else round(c.uptime_s, 1),
                             "" if c.rss_bytes is None else c.rss_bytes, c.restarts, _csv_text(c.message),
                             "" if t is None else t.restarts, "" if t is None else int(t.restarted),
                             "" if t is None else int(t.growing), report.generated])
    return buf.getvalue()


_MD_SPECIAL = str.maketrans({c: "\\" + c for c in "\\`*_[]|~"} | {"<": "&lt;", ">": "&gt;", "&": "&amp;"})


def md(text: object) -> str:
    """Takes any value; returns it as inert Markdown inline text (one line)."""
    return plain(" ".join(str(text).split())).translate(_MD_SPECIAL)


def render_md(report: Report) -> str:
    ids = report.component_ids
    s = report.summary
    lines = [f"# {md(report.title)}", "", f"Generated {md(report.generated)}"
             + (f", slices {md(', '.join(report.slices))}" if report.slices else "")
             + (f", trends over the last {report.history_runs} runs" if report.history_runs else "") + ".", "",
             f"**hosts={s.hosts}** ok={s.ok} degraded={s.degraded} failed={s.failed} "
             f"unreachable={s.unreachable} skipped={s.skipped}", ""]
    if report.interrupted:
        lines += ["**Interrupted: this report is partial.**", ""]
    missing = report.missing_slices()
    if missing:
        lines += [f"**Missing slices:** {md(', '.join(missing))}", ""]
    problems = report.problems
    if problems:
        lines += ["## What is wrong", ""]
        lines += [f"- **{md(h.host)}** {h.result}" + (f": {md(h.reason)}" if h.reason else "") for h in problems]
        lines.append("")
    lines += ["## Hosts", "", "| host | result | " + " | ".join(md(c) for c in ids) + " | reason |",
              "|---|---|" + "---|" * len(ids) + "---|"]
    for h in report.hosts:
        row = [md(h.host), str(h.result)]
        for cid in ids:
            c = report.cell(h, cid)
            if c is None:
                row.append("–")
                continue
            text = f"{c.state} {format_duration(c.uptime_s)} {format_size(c.rss_bytes)}"
            if c.restarts:
                text += f" ↻{c.restarts}"
            if c.trend and c.trend.restarted:
                text += " (restarted)"
            if c.trend and c.trend.growing:
                text += " (memory only grows)"
            if c.held:
                text += " (held)"
            elif c.health == "unhealthy":
                text += " (unhealthy)"
            row.append(md(text))
        digest = report.config_digests.get(h.host)
        row.append(md(h.reason + (f" (config {digest})" if digest else "")))
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def render(report: Report, fmt: str) -> str:
    """Takes a report and a format name; returns the text (html imports Jinja2 only when asked)."""
    if fmt == "json":
        return render_json(report)
    if fmt == "csv":
        return render_csv(report)
    if fmt == "md":
        return render_md(report)
    if fmt == "html":
        from .html import render_html

        return render_html(report)
    if fmt in ("openmetrics", "prometheus"):
        return render_metrics(report, fmt)
    raise ValueError(f"unknown report format {fmt!r}")


def render_metrics(report: Report, fmt: str) -> str:
    """The report's hosts as the fleet exporter's metrics (host label, host_up, host_result)."""
    import time

    from ...metrics import HostSample, fleet_families
    from ...metrics import render as render_text
    from ..poller import agent_status

    samples = [HostSample(h.host, str(h.result), agent_status(h.status)) for h in report.hosts]
    return render_text(fleet_families(samples, time.time()), fmt).decode()
