"""The one timestamp format a person reads: UTC to the second, ISO 8601 with a Z.

The status document's `time`, the exporter's log lines and a report's generation time all use
it. Stdlib `time` only at import (no datetime): the agent's status path imports this when it has to write
a document itself (its supervisor down).
"""

from __future__ import annotations

import time

FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def utc_stamp(when: float | None = None) -> str:
    """Unix seconds (default: now) -> "2026-12-07T04:05:06Z"."""
    return time.strftime(FORMAT, time.gmtime(when))


def parse_stamp(text: str) -> float:
    """"2026-12-07T04:05:06Z" -> Unix seconds; raises ValueError for anything else."""
    import calendar  # here: it imports datetime, which the status path does without

    return float(calendar.timegm(time.strptime(text, FORMAT)))
