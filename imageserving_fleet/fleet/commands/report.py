"""`report` and `report merge`: the I/O around the pure report model.

Order matters for the exit codes: every option, the inventory, the output directory and the
history file are checked before any host is contacted (exit 5 or 1); then the status run, the
history, the rendering and the atomic write; the exit code is the hosts' (SPEC §3).
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TextIO

from ...atomic import write_atomic
from ...errors import UsageError
from ...timefmt import utc_stamp
from ..context import RunContext
from ..fanout import FanOut
from ..jobs import STATUS
from ..reports.formats import FORMATS, render
from ..reports.model import DEFAULT_TITLE, Report, ReportInputError, build_report, from_document, merge, quiet_summary
from ..reports.options import DEFAULT_WINDOW, MergeOptions, ReportOptions
from ..reports.slices import Slice, parse_slice, select_slice
from ..reports.trends import trend
from ..requirements import require
from ..results import EXIT_BEFORE_HOSTS, EXIT_INTERRUPTED
from .run import execute

EXTENSIONS = {".html": "html", ".htm": "html", ".json": "json", ".csv": "csv", ".md": "md", ".markdown": "md",
              ".prom": "prometheus", ".om": "openmetrics"}


@dataclass(frozen=True)
class ReportRequest:
    """The report options, checked."""

    fmt: str
    output: str | None = None
    history: str | None = None
    keep_days: float | None = None
    slice: Slice | None = None
    window: int = DEFAULT_WINDOW
    title: str = DEFAULT_TITLE
    quiet: bool = False


def make_request(*, fmt: str | None, output: str | None, history: str | None = None, keep_days: float | None = None,
                 slice_text: str | None = None, window: int = DEFAULT_WINDOW, title: str | None = None,
                 quiet: bool = False, as_json: bool = False) -> ReportRequest:
    """Takes the raw options; returns a ReportRequest or raises UsageError (exit 5)."""
    if fmt is not None and fmt.lower() not in FORMATS:
        raise UsageError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    if as_json and fmt is not None and fmt.lower() != "json":
        raise UsageError(f"--json and --format {fmt} disagree")
    chosen = fmt.lower() if fmt else ("json" if as_json else EXTENSIONS.get(Path(output or "").suffix.lower(), "html"))
    if keep_days is not None and (history is None or keep_days <= 0):
        raise UsageError("--keep-days needs --history and a number of days above 0")
    if window < 2:
        raise UsageError("--trend-runs must be at least 2")
    if output is not None:
        parent = Path(output).parent
        if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
            raise UsageError(f"-o {output}: directory {parent} does not exist or is not writable")
        if Path(output).is_dir():
            raise UsageError(f"-o {output} is a directory")
    return ReportRequest(fmt=chosen, output=output, history=history, keep_days=keep_days,
                         slice=parse_slice(slice_text) if slice_text else None, window=window,
                         title=title or DEFAULT_TITLE, quiet=quiet)


def request_of(options: ReportOptions | MergeOptions, quiet: bool, as_json: bool) -> ReportRequest:
    """The options as written (reports/options.py) checked, with the global --quiet and --json."""
    return make_request(**dataclasses.asdict(options), quiet=quiet, as_json=as_json)


def _now() -> tuple[float, str]:
    wall = time.time()
    return wall, utc_stamp(wall)


def sliced(ctx: RunContext, request: ReportRequest) -> RunContext:
    """The context with only the hosts of the request's --slice (all of them without one)."""
    return replace(ctx, targets=tuple(select_slice(list(ctx.targets), request.slice, lambda t: t.name)))


def run_report(ctx: RunContext, fanout: FanOut, request: ReportRequest,
               stdout: TextIO = sys.stdout, stderr: TextIO = sys.stderr) -> int:
    """Runs a fleet status on the context's hosts (see sliced()), records it, writes the report;
    returns the exit code. jinja2 and the history file are checked before any host is contacted."""
    if request.fmt == "html":
        require(["jinja2"])
    history = None
    if request.history:
        from ..reports.history import History

        history = History(request.history)
    try:
        outcome = execute(ctx, fanout, STATUS)
        results, interrupted = list(outcome.results), outcome.interrupted
        started_at, generated = _now()
        slice_label = str(request.slice) if request.slice and request.slice.n > 1 else None
        trends, runs = {}, 0
        if history is not None:
            try:
                history.record(results, started_at, generated, slice_label, request.keep_days)
                series = history.series([r.host for r in results], request.window)
                current = {(r.host, c.id) for r in results for c in r.components}
                trends = {key: trend(s) for key, s in series.items() if key in current}
                runs = max((len(s) for s in series.values()), default=0)
            except Exception as exc:  # the report still matters more than its history
                stderr.write(f"imageserving-fleet: history not recorded: {exc}\n")
        report = build_report(results, generated, title=request.title, slice_label=slice_label, trends=trends,
                              history_runs=runs, interrupted=interrupted)
    finally:
        if history is not None:
            history.close()
    code = deliver(report, request, stdout, stderr)
    return EXIT_INTERRUPTED if interrupted else code


def run_merge(paths: Sequence[str], request: ReportRequest, stdout: TextIO = sys.stdout,
              stderr: TextIO = sys.stderr) -> int:
    """Joins JSON slice reports into one; returns the merged hosts' exit code."""
    if not paths:
        raise UsageError("report merge needs at least one JSON report")
    if request.fmt == "html":
        require(["jinja2"])
    reports: list[Report] = []
    for path in paths:
        try:
            doc = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError, RecursionError) as exc:
            raise ReportInputError(f"{path}: cannot read a JSON report: {str(exc)[:200]}") from None
        reports.append(from_document(doc, path))
    title = request.title if request.title != DEFAULT_TITLE else None
    return deliver(merge(reports, title), request, stdout, stderr)


def deliver(report: Report, request: ReportRequest, stdout: TextIO, stderr: TextIO) -> int:
    """Renders and writes (or prints) the report, says what --quiet allows; returns the exit code."""
    # A host's "\udc80" survives json.loads; no UTF-8 file or terminal takes it.
    text = render(report, request.fmt).encode("utf-8", "replace").decode("utf-8")
    summary = quiet_summary(report)
    if request.output is None:
        if not (request.quiet and not summary):
            stdout.write(text)
        return report.exit_code
    try:
        write_atomic(request.output, text)
    except OSError as exc:
        stderr.write(f"imageserving-fleet: cannot write {request.output}: {exc}\n")
        return EXIT_BEFORE_HOSTS  # the 1 of every error of ours; the hosts were fine
    if request.quiet:
        if summary:
            stdout.write("\n".join(summary) + f"\nreport: {request.output}\n")
    else:
        stdout.write(f"{report.summary.line()}\nreport: {request.output} ({request.fmt}, {len(text)} bytes)\n")
    return report.exit_code
