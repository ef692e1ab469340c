"""The verdict for one host, a shared word: the fleet gives it (fleet/results.py), and the metrics
spell it as the `imageserving_host_result` stateset (metrics.py), whoever renders them."""

from __future__ import annotations

import enum


class Result(enum.StrEnum):
    """The verdict for one host, worst last."""

    OK = "ok"
    DEGRADED = "degraded"
    FAILED = "failed"
    UNREACHABLE = "unreachable"
    SKIPPED = "skipped"

