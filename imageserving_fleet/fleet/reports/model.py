"""The report: one fleet status run (or several merged slices) as data every format renders. Pure.

Its JSON form is the fleet's `--json` document (schema 1, SPEC §3) with a few more fields, which
readers that do not know them ignore:

    {"schema": 1, "command": "report", "generated": "2026-11-26T17:00:00Z", "title": "...",
     "slices": ["2/4"], "history_runs": 12, "interrupted": false,
     "summary": {"hosts": 50, "ok": 48, ...},
     "hosts": [{"host", "result", "reason", "status", "elapsed_s",
                "trends": {"is": {"rss": [...], "restarts": 1, "restarted": true, "growing": false}}}]}

It is also what `report merge` reads back, so slice reports from several controllers join into one.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from ...errors import ImageServingError
from ...schema import COMPONENT_IDS, SchemaError, parse_status
from ...untrusted import escape
from ..results import HostResult, Result, Summary, config_digests, exit_code, summarize
from .trends import Trend

DEFAULT_TITLE = "Image Serving fleet"
SEVERITY = {Result.OK: 0, Result.SKIPPED: 1, Result.DEGRADED: 2, Result.FAILED: 3, Result.UNREACHABLE: 4}
_SLICE_LABEL = re.compile(r"([0-9]{1,6})/([0-9]{1,6})")  # K/N as written by --slice
MAX_SLICES = 10_000


class ReportInputError(ImageServingError):
    """A report given to `report merge` is not a readable schema-1 report; names the file."""


@dataclass(frozen=True)
class Cell:
    """One component on one host as the report shows it."""

    id: str
    state: str
    pid: int | None = None
    uptime_s: float | None = None
    rss_bytes: int | None = None
    restarts: int = 0
    message: str = ""
    trend: Trend | None = None
    health: str | None = None        # "healthy" | "unhealthy" | "starting" | None (no check)
    held: bool = False               # held down by the operator


@dataclass(frozen=True)
class Report:
    """The hosts (in inventory order) and everything the page says about them."""

    hosts: tuple[HostResult, ...]
    generated: str                                   # ISO-8601 UTC, for the person reading
    title: str = DEFAULT_TITLE
    slices: tuple[str, ...] = ()                     # "K/N" of each slice covered; () = the whole fleet
    trends: Mapping[tuple[str, str], Trend] = field(default_factory=dict)   # (host, component id)
    history_runs: int = 0                            # runs the trends span (0: no history)
    interrupted: bool = False

    @property
    def summary(self) -> Summary:
        return summarize(self.hosts)

    @property
    def exit_code(self) -> int:
        return exit_code(self.summary)

    @property
    def component_ids(self) -> list[str]:
        return component_ids(self.hosts)

    @property
    def problems(self) -> list[HostResult]:
        return [h for h in self.hosts if h.result != Result.OK]

    def cell(self, host: HostResult, cid: str) -> Cell | None:
        comp = host.component(cid)
        if comp is None:
            return None
        return Cell(id=cid, state=comp.state, pid=comp.pid,
                    uptime_s=None if comp.uptime_s is None else float(comp.uptime_s), rss_bytes=comp.rss_bytes,
                    restarts=comp.restarts, message=comp.message, trend=self.trends.get((host.host, cid)),
                    health=comp.health, held=comp.held)

    @property
    def config_digests(self) -> dict[str, str]:
        """host -> short config digest, only when the hosts run different configurations."""
        return config_digests(self.hosts)

    def max_rss(self, cid: str) -> int:
        """The largest RSS of a component across the report: the full width of its memory bars."""
        values = [c.rss_bytes or 0 for h in self.hosts for c in h.components if c.id == cid]
        return max(values, default=0)

    def missing_slices(self) -> list[str]:
        """Slices of a merged report that no input covered (empty when they all share no N)."""
        labels = [m for s in self.slices if (m := _SLICE_LABEL.fullmatch(s))]  # inputs may lie
        counts = {int(m[2]) for m in labels}
        if len(counts) != 1 or not 1 <= (n := counts.pop()) <= MAX_SLICES:
            return []
        have = {int(m[1]) for m in labels}
        return [f"{k}/{n}" for k in range(1, n + 1) if k not in have]

    def flagged(self) -> dict[str, int]:
        """How many components restarted since the previous run, and how many only grow."""
        return {"restarted": sum(1 for t in self.trends.values() if t.restarted),
                "growing": sum(1 for t in self.trends.values() if t.growing)}


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def component_ids(results: Iterable[HostResult]) -> list[str]:
    """ps, is, svg first (those present), then any other id a host reports, in order of appearance."""
    seen: list[str] = []
    for r in results:
        for comp in r.components:
            if comp.id not in seen:
                seen.append(comp.id)
    known = [c for c in COMPONENT_IDS if c in seen]
    return (known + [c for c in seen if c not in COMPONENT_IDS]) or list(COMPONENT_IDS)


def build_report(results: Sequence[HostResult], generated: str, *, title: str = DEFAULT_TITLE,
                 slice_label: str | None = None, trends: Mapping[tuple[str, str], Trend] | None = None,
                 history_runs: int = 0, interrupted: bool = False) -> Report:
    """Takes one run's host results; returns the report."""
    return Report(hosts=tuple(results), generated=generated, title=title,
                  slices=(slice_label,) if slice_label else (), trends=dict(trends or {}),
                  history_runs=history_runs, interrupted=interrupted)


# -------------------------------------------------------------------- JSON
def to_document(report: Report) -> dict[str, Any]:
    """Takes a report; returns its JSON document (the fleet document plus report fields)."""
    s = report.summary
    hosts = []
    for h in report.hosts:
        entry = h.to_dict()
        trends = {cid: t.to_dict() for (host, cid), t in report.trends.items() if host == h.host}
        if trends:
            entry["trends"] = trends
        hosts.append(entry)
    return {"schema": 1, "command": "report", "generated": report.generated, "title": report.title,
            "slices": list(report.slices), "history_runs": report.history_runs, "interrupted": report.interrupted,
            "summary": {"hosts": s.hosts, "ok": s.ok, "degraded": s.degraded, "failed": s.failed,
                        "unreachable": s.unreachable, "skipped": s.skipped},
            "hosts": hosts}


def from_document(doc: Any, source: str = "report") -> Report:
    """Takes a decoded report (or a fleet `status --json` document); returns the Report or raises
    ReportInputError naming the source and what is wrong."""
    def bad(why: str) -> ReportInputError:
        return ReportInputError(f"{source}: not a fleet report: {why}")

    if not isinstance(doc, dict) or doc.get("schema") != 1 or type(doc.get("schema")) is not int:
        raise bad("expected a JSON object with schema 1")
    if doc.get("command") not in ("report", "status"):
        raise bad(f"command {doc.get('command')!r:.30} is not report or status")
    entries = doc.get("hosts")
    if not isinstance(entries, list):
        raise bad("hosts: expected a list")
    hosts: list[HostResult] = []
    trends: dict[tuple[str, str], Trend] = {}
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict) or not isinstance(entry.get("host"), str):
            raise bad(f"hosts[{i}]: expected an object with a host name")
        try:
            result = Result(str(entry.get("result")))
        except ValueError:
            raise bad(f"hosts[{i}].result: unknown result {entry.get('result')!r:.30}") from None
        status = None
        if entry.get("status") is not None:
            try:
                status = parse_status(entry["status"])
            except SchemaError as exc:
                raise bad(f"hosts[{i}].status: {exc}") from None
        elapsed = _num(entry.get("elapsed_s")) or 0.0
        worker = entry.get("worker")  # which cluster worker asked it (§8): kept through a merge
        res = HostResult(entry["host"], result, str(entry.get("reason") or ""), status, elapsed)
        hosts.append(replace(res, worker=worker, clustered=True) if isinstance(worker, str) else res)
        for cid, t in (entry.get("trends") or {}).items() if isinstance(entry.get("trends"), dict) else ():
            if isinstance(t, dict):
                trends[(entry["host"], str(cid))] = Trend.from_dict(t)
    slices = doc.get("slices") or []
    runs = doc.get("history_runs")
    return Report(hosts=tuple(hosts), generated=str(doc.get("generated") or ""),
                  title=str(doc.get("title") or DEFAULT_TITLE),
                  slices=tuple(str(s) for s in slices if isinstance(s, str)) if isinstance(slices, list) else (),
                  trends=trends, history_runs=runs if isinstance(runs, int) else 0,
                  interrupted=doc.get("interrupted") is True)


def merge(reports: Sequence[Report], title: str | None = None) -> Report:
    """Takes slice reports; returns one report with every host once, in the inputs' order.

    A host present in several inputs (overlapping slices, a re-run) is taken from the newest one.
    """
    newest: dict[str, tuple[str, int]] = {}
    for i, rep in enumerate(reports):
        for h in rep.hosts:
            if h.host not in newest or rep.generated >= newest[h.host][0]:
                newest[h.host] = (rep.generated, i)
    hosts: list[HostResult] = []
    trends: dict[tuple[str, str], Trend] = {}
    placed: set[str] = set()
    for i, rep in enumerate(reports):
        for h in rep.hosts:
            if newest[h.host][1] == i and h.host not in placed:
                placed.add(h.host)
                hosts.append(h)
                trends.update({k: t for k, t in rep.trends.items() if k[0] == h.host})
    slices = sorted({s for rep in reports for s in rep.slices}, key=_slice_key)
    return Report(hosts=tuple(hosts), generated=max((r.generated for r in reports), default=""),
                  title=title or (reports[0].title if reports else DEFAULT_TITLE), slices=tuple(slices),
                  trends=trends, history_runs=max((r.history_runs for r in reports), default=0),
                  interrupted=any(r.interrupted for r in reports))


def _slice_key(label: str) -> tuple[int, int]:
    k, _, n = label.partition("/")
    return (int(n) if n.isdigit() else 0, int(k) if k.isdigit() else 0)


# ------------------------------------------------------------------- quiet
def plain(text: str) -> str:
    """Takes text from a host; returns it safe for a terminal or a mail (control characters escaped)."""
    return escape(text, tabs=False)


def quiet_summary(report: Report, limit: int = 20) -> list[str]:
    """Takes a report; returns the lines --quiet prints: nothing when all is ok, else what is wrong."""
    problems = report.problems
    if not problems and not report.interrupted:
        return []
    s = report.summary
    lines = [s.line()]
    if report.interrupted:
        lines.append("interrupted: the report is partial")
    for h in problems[:limit]:
        lines.append(plain(f"{h.host}: {h.result}" + (f": {h.reason}" if h.reason else "")))
    if len(problems) > limit:
        lines.append(f"... and {len(problems) - limit} more")
    return lines
