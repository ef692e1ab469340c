"""The options of `report` and `report merge` as written, each declared once (options.Opt fields):
the CLI builds its options from them, commands/report.make_request checks them. Light on purpose:
the CLI imports it at start, the report machinery only when a report runs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from ..options import opt

DEFAULT_WINDOW = 24        # runs the sparklines and restart counts cover (2 hours at */5)

Format = Annotated[str | None, opt("--format", metavar="html|json|csv|md|openmetrics|prometheus",
                                  help="Default: from -o's extension, else html.")]
Output = Annotated[str | None, opt("-o", "--output", metavar="FILE",
                                   help="Write here atomically (temp file + rename); default stdout.")]
Title = Annotated[str | None, opt("--title", metavar="TEXT", help="Page title.")]


@dataclass(frozen=True)
class ReportOptions:
    """`report`'s options (field names: make_request's arguments)."""

    fmt: Format = None
    output: Output = None
    history: Annotated[str | None, opt("--history", metavar="DB", help="SQLite file recording every run, for trends.")
                       ] = None
    keep_days: Annotated[float | None, opt("--keep-days", metavar="N",
                                           help="Prune runs older than N days from --history.")] = None
    slice_text: Annotated[str | None, opt("--slice", metavar="K/N",
                                          help="Only the K-th of N stable hash slices of the hosts.")] = None
    window: Annotated[int, opt("--trend-runs", metavar="N", help="Runs the trends cover.")] = DEFAULT_WINDOW
    title: Title = None


@dataclass(frozen=True)
class MergeOptions:
    """`report merge`'s options."""

    fmt: Format = None
    output: Output = None
    title: Title = None
