"""`logs --grep RE --since DURATION` as pure pieces: a line's time, and which lines to keep.

A line's time is read from the common log formats at its start: ISO 8601 and Python logging
(`2026-12-07T03:54:15.123+00:00`, `2026-12-07 03:54:15,123`), nginx's error log
(`2026/12/07 03:54:15`), Apache/nginx access logs (`[07/Dec/2026:03:54:15 +0000]`), Tomcat
(`07-Dec-2026 03:54:15.123`) and Apache's error log (`[Mon Dec 07 03:54:15.123456 2026]`). Times
without a zone are local time. A line with no time (a stack trace, a wrapped message) follows the
previous line's; lines before the first timed one count as older than any --since.
"""

from __future__ import annotations

import calendar
import re
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from ..units import parse_duration

MONTHS = {m: i for i, m in enumerate(("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct",
                                      "nov", "dec"), start=1)}
SCAN = 96  # a timestamp is looked for in a line's first characters only (after a client address, say)
_ZONE = r"(?P<zone>Z|[+-]\d{2}:?\d{2})?"
_FORMATS = [
    # ISO 8601, Python logging, nginx error log: year first.
    re.compile(r"(?P<y>\d{4})[-/](?P<mo>\d{2})[-/](?P<d>\d{2})[T ](?P<h>\d{2}):(?P<mi>\d{2}):(?P<s>\d{2})"
               r"(?:[.,]\d+)?\s?" + _ZONE),
    # Apache/nginx access log: [07/Dec/2026:03:54:15 +0000]
    re.compile(r"\[(?P<d>\d{2})/(?P<mon>[A-Za-z]{3})/(?P<y>\d{4}):(?P<h>\d{2}):(?P<mi>\d{2}):(?P<s>\d{2})"
               r"\s*" + _ZONE + r"\]"),
    # Tomcat (java.util.logging's OneLineFormatter): 07-Dec-2026 03:54:15.123
    re.compile(r"(?P<d>\d{2})-(?P<mon>[A-Za-z]{3})-(?P<y>\d{4}) (?P<h>\d{2}):(?P<mi>\d{2}):(?P<s>\d{2})"),
    # Apache error log: [Mon Dec 07 03:54:15.123456 2026]
    re.compile(r"\[[A-Za-z]{3} (?P<mon>[A-Za-z]{3}) (?P<d>\d{2}) (?P<h>\d{2}):(?P<mi>\d{2}):(?P<s>\d{2})"
               r"(?:\.\d+)? (?P<y>\d{4})\]"),
]


def parse_since(text: str) -> float:
    """Takes `30s`, `10m`, `2h`, `1d` (or plain seconds); returns seconds. Raises ValueError with a message."""
    value = text.strip()
    try:
        if value.endswith("d") and value[:-1].replace(".", "", 1).isdigit():
            return float(value[:-1]) * 86400
        return parse_duration(value)
    except ValueError:
        raise ValueError(f"--since expects a duration such as 10m, 2h or 1d, got {text!r}") from None


def line_time(line: str) -> float | None:
    """Takes one log line; returns its time as Unix seconds, or None when it starts with no known timestamp."""
    head = line[:SCAN]
    best: tuple[int, float] | None = None
    for pattern in _FORMATS:
        m = pattern.search(head)
        if m is None or (best is not None and m.start() >= best[0]):
            continue
        when = _to_epoch(m)
        if when is not None:
            best = (m.start(), when)
    return best[1] if best else None


def _to_epoch(m: re.Match[str]) -> float | None:
    g = m.groupdict()
    month = int(g["mo"]) if g.get("mo") else MONTHS.get((g.get("mon") or "").lower())
    if month is None:
        return None
    try:
        fields = (int(g["y"]), month, int(g["d"]), int(g["h"]), int(g["mi"]), int(g["s"]))
        if not (1 <= month <= 12 and 1 <= fields[2] <= 31 and fields[3] < 24 and fields[4] < 60 and fields[5] < 61):
            return None
    except (TypeError, ValueError):
        return None
    zone = g.get("zone")
    if zone is None:
        return time.mktime((*fields, 0, 1, -1))          # no zone: the host's local time
    utc = calendar.timegm((*fields, 0, 1, 0))
    if zone == "Z":
        return float(utc)
    sign = -1 if zone[0] == "-" else 1
    digits = zone[1:].replace(":", "")
    return float(utc - sign * (int(digits[:2]) * 3600 + int(digits[2:]) * 60))


@dataclass
class LineFilter:
    """Keeps the lines that match `grep` and are not older than `since` (Unix seconds); stateful across calls.

    A line with no timestamp takes the verdict of the time of the line before it, so a stack trace
    stays with the message it belongs to.
    """

    grep: re.Pattern[str] | None = None
    since: float | None = None
    _last_time: float | None = field(default=None, repr=False)

    @property
    def active(self) -> bool:
        return self.grep is not None or self.since is not None

    def keep(self, line: str) -> bool:
        if self.since is not None:
            when = line_time(line)
            if when is not None:
                self._last_time = when
            if self._last_time is None or self._last_time < self.since:
                return False
        return self.grep is None or self.grep.search(line) is not None

    def filter(self, lines: Iterable[str]) -> Iterator[str]:
        return (line for line in lines if self.keep(line))


def compile_grep(pattern: str) -> re.Pattern[str]:
    """Takes --grep's text; returns the compiled regular expression or raises ValueError naming the problem."""
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"--grep: not a regular expression ({exc}): {pattern!r}") from None
