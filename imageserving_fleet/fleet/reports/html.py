"""The HTML report: one self-contained page (inline CSS, SVG and a little JS), rendered by Jinja2.

Autoescaping is on for every value, so a host name or a reason that holds markup shows as text.
A Content-Security-Policy in the page allows only its own style and script (by hash) and no
network at all, so even a value that slipped through could neither run nor call out.

The exporter's live page (`/`) is the same page with `live` set: one more script (by hash), which
may fetch from its own origin only (`connect-src 'self'`), asks /snapshot.json for the last poll
and puts its rows in place; `fragments` renders those rows from the same template's blocks.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

from ...componentstate import SEVERITY as STATE_SEVERITY
from ...units import format_duration, format_size
from .model import SEVERITY, Report
from .trends import sparkline

SPARK_W, SPARK_H = 64.0, 16.0


@dataclass(frozen=True)
class CellView:
    """What the template needs for one component cell; sort keys as numbers."""

    state: str
    state_key: float
    uptime: str
    rss: str
    rss_bytes: int | None
    bar_pct: float
    restarts: int
    window_restarts: int | None
    restarted: bool
    growing: bool
    spark: tuple[str, ...]
    spark_title: str
    message: str
    health: str | None = None
    held: bool = False


@dataclass(frozen=True)
class RowView:
    host: str
    result: str
    severity: int
    reason: str
    cells: tuple[CellView | None, ...]
    config: str = ""         # short config digest, only when hosts' configurations differ
    config_odd: bool = False  # not the configuration most hosts run


def _cell_view(report: Report, host: Any, cid: str, max_rss: int) -> CellView | None:
    c = report.cell(host, cid)
    if c is None:
        return None
    t = c.trend
    spark: tuple[str, ...] = ()
    title = ""
    if t is not None and sum(1 for v in t.rss if v is not None) >= 2:
        spark = tuple(sparkline(t.rss, SPARK_W, SPARK_H))
        known = [v for v in t.rss if v is not None]
        title = (f"memory over the last {len(t.rss)} runs: {format_size(min(known))} - {format_size(max(known))}, "
                 f"now {format_size(known[-1])}")
    # Worse states first when sorted descending; within a state, the longest uptime last.
    state_key = STATE_SEVERITY.get(c.state, 7) * 1e9 - min(c.uptime_s or 0.0, 9e8)
    return CellView(state=c.state, state_key=state_key, uptime=format_duration(c.uptime_s),
                    rss=format_size(c.rss_bytes), rss_bytes=c.rss_bytes,
                    bar_pct=round(100.0 * (c.rss_bytes or 0) / max_rss, 1) if max_rss else 0.0,
                    restarts=c.restarts, window_restarts=None if t is None else t.restarts,
                    restarted=bool(t and t.restarted), growing=bool(t and t.growing), spark=spark,
                    spark_title=title, message=c.message, health=c.health, held=c.held)


def view(report: Report) -> dict[str, Any]:
    """Takes a report; returns the template's context (pure)."""
    ids = report.component_ids
    maxes = {cid: report.max_rss(cid) for cid in ids}
    digests = report.config_digests
    common = max(set(digests.values()), key=list(digests.values()).count) if digests else ""
    rows = [RowView(host=h.host, result=str(h.result), severity=SEVERITY[h.result], reason=h.reason,
                    cells=tuple(_cell_view(report, h, cid, maxes[cid]) for cid in ids),
                    config=digests.get(h.host, ""), config_odd=bool(digests) and digests.get(h.host) != common)
            for h in report.hosts]
    s = report.summary
    counts = [("ok", s.ok), ("degraded", s.degraded), ("failed", s.failed), ("unreachable", s.unreachable),
              ("skipped", s.skipped)]
    return {"report": report, "ids": ids, "rows": rows, "summary": s, "counts": counts,
            "problems": report.problems, "flagged": report.flagged(), "missing_slices": report.missing_slices(),
            "spark_w": SPARK_W, "spark_h": SPARK_H, "config_drift": bool(digests)}


@lru_cache(maxsize=1)
def _environment() -> Any:
    import jinja2

    env = jinja2.Environment(loader=jinja2.PackageLoader("imageserving_fleet.fleet.reports", "templates"),
                             autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True,
                             lstrip_blocks=True)
    env.filters["size"] = format_size
    env.filters["duration"] = format_duration
    return env


@dataclass(frozen=True)
class Live:
    """What the live page says about its poller; `round` tells the page whether rows changed."""

    interval: float
    hosts: int
    round: int = 0

    @property
    def every(self) -> str:
        return format_duration(self.interval) if self.interval >= 60 else f"{self.interval:g} s"


def _digest(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


@lru_cache(maxsize=1)
def _live_asset() -> tuple[str, str]:
    """The live page's own script and its CSP hash."""
    js = (resources.files("imageserving_fleet.fleet.reports") / "templates" / "report.live.js.j2").read_text(
        encoding="utf-8")
    return js, _digest(js)


@lru_cache(maxsize=1)
def _assets() -> tuple[str, str, str, str]:
    """The page's CSS and JS, and their CSP hashes (the text inlined must be exactly what is hashed).

    Named *.j2 only so that the package-data rule ships them; they are inlined verbatim, not rendered.
    """
    base = resources.files("imageserving_fleet.fleet.reports") / "templates"
    css = (base / "report.css.j2").read_text(encoding="utf-8")
    js = (base / "report.js.j2").read_text(encoding="utf-8")

    return css, js, _digest(css), _digest(js)


def render_html(report: Report, live: Live | None = None) -> str:
    """Takes a report; returns the page (the exporter's live page with `live`)."""
    from markupsafe import Markup

    css, js, css_hash, js_hash = _assets()
    live_js, live_hash = _live_asset() if live else ("", "")
    scripts = f"{js_hash} {live_hash}" if live else js_hash
    connect = "; connect-src 'self'" if live else ""
    csp = (f"default-src 'none'; style-src {css_hash}; script-src {scripts}; img-src data:{connect}; "
           "base-uri 'none'; form-action 'none'")
    return _environment().get_template("report.html.j2").render(
        **view(report), css=Markup(css), js=Markup(js), csp=csp, live=live, live_js=Markup(live_js))


def fragments(report: Report) -> dict[str, str]:
    """Takes a report; returns what the live page replaces: its table rows and problems (HTML, from the
    page's own template blocks, escaped alike), the component ids of its columns, and its title."""
    template = _environment().get_template("report.html.j2")
    context = template.new_context({**view(report), "live": None})
    return {name: "".join(template.blocks[name](context)) for name in ("rows", "problems")} | {
        "ids": ",".join(report.component_ids), "title": f"{report.title}: {report.summary.line()}"}
