"""Memory and restart trends of one component on one host, from the samples of past runs. Pure.

A series holds one entry per recent run of the host, oldest first, `None` where the run has no
sample of the component (the host was unreachable, the supervisor down). Two things are flagged:

- restarted: since the previous sample the pid changed or the restart counter went up (an explicit
  `imageserving restart is` does not count as a restart for the supervisor, but it is one for the
  operator reading the page);
- memory only grows: the current process (same pid) has at least GROWTH_MIN_SAMPLES samples whose
  RSS never went down, rose in at least half of the steps, and rose by GROWTH_MIN_RATIO overall.
  A leak looks like that; a busy process going up and down does not.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

GROWTH_MIN_SAMPLES = 6
GROWTH_MIN_RATIO = 0.01


@dataclass(frozen=True)
class Sample:
    """What one run saw of one component."""

    run_id: int
    state: str | None = None
    pid: int | None = None
    rss_bytes: int | None = None
    restarts: int | None = None


@dataclass(frozen=True)
class Trend:
    """What the page shows next to a component: a sparkline, a restart count, two flags."""

    rss: tuple[int | None, ...] = ()     # oldest first, one per run of the host
    restarts: int = 0                    # restarts seen across the window
    restarted: bool = False              # since the previous sample
    growing: bool = False                # memory only grows

    def to_dict(self) -> dict[str, object]:
        return {"rss": list(self.rss), "restarts": self.restarts, "restarted": self.restarted,
                "growing": self.growing}

    @classmethod
    def from_dict(cls, doc: dict[str, object]) -> Trend:
        rss = doc.get("rss") or []
        values = tuple(v if isinstance(v, int) and not isinstance(v, bool) else None
                       for v in (rss if isinstance(rss, list) else []))
        restarts = doc.get("restarts")
        return cls(rss=values, restarts=restarts if isinstance(restarts, int) else 0,
                   restarted=doc.get("restarted") is True, growing=doc.get("growing") is True)


def restarts_between(prev: Sample, cur: Sample) -> int:
    """Takes two samples of a component; returns how many restarts happened between them."""
    counted = 0
    if prev.restarts is not None and cur.restarts is not None:
        # A lower counter means the supervisor itself started over: all of cur's restarts are new.
        counted = cur.restarts - prev.restarts if cur.restarts >= prev.restarts else cur.restarts
    moved = prev.pid is not None and cur.pid is not None and prev.pid != cur.pid
    return max(counted, 1 if moved else 0)


def memory_only_grows(samples: Sequence[Sample]) -> bool:
    """Takes samples oldest first; True when the current process's RSS only went up (see module doc)."""
    present = [s for s in samples if s.rss_bytes is not None]
    if not present:
        return False
    pid = present[-1].pid
    tail: list[int] = []
    for s in reversed(present):
        if s.pid != pid:
            break
        tail.append(s.rss_bytes)  # type: ignore[arg-type]
    tail.reverse()
    if len(tail) < GROWTH_MIN_SAMPLES:
        return False
    steps = [b - a for a, b in zip(tail, tail[1:], strict=False)]
    if any(step < 0 for step in steps):
        return False
    rises = sum(1 for step in steps if step > 0)
    return rises * 2 >= len(steps) and tail[-1] >= tail[0] * (1 + GROWTH_MIN_RATIO) and tail[-1] > tail[0]


def trend(series: Sequence[Sample | None]) -> Trend:
    """Takes one component's samples over the host's recent runs (oldest first); returns its Trend."""
    present = [s for s in series if s is not None]
    restarts = sum(restarts_between(a, b) for a, b in zip(present, present[1:], strict=False))
    restarted = len(present) >= 2 and series[-1] is not None and restarts_between(present[-2], present[-1]) > 0
    return Trend(rss=tuple(None if s is None else s.rss_bytes for s in series), restarts=restarts,
                 restarted=restarted, growing=memory_only_grows(present))


def sparkline(values: Sequence[int | float | None], width: float = 100.0, height: float = 20.0,
              pad: float = 1.5) -> list[str]:
    """Takes values (None = gap); returns SVG polyline `points` strings, one per unbroken run.

    The y axis spans the series' own min..max so a small change is visible; a flat series is a
    line through the middle. A single point between gaps becomes a tiny horizontal dash.
    """
    known = [v for v in values if v is not None]
    if not known:
        return []
    lo, hi = min(known), max(known)
    n = len(values)
    step = (width - 2 * pad) / (n - 1) if n > 1 else 0.0

    def y(v: float) -> float:
        if hi == lo:
            return height / 2
        return pad + (height - 2 * pad) * (1 - (v - lo) / (hi - lo))

    lines: list[str] = []
    current: list[tuple[float, float]] = []
    for i, v in enumerate([*values, None]):
        if v is None:
            if len(current) == 1:
                x0, y0 = current[0]
                current = [(max(0.0, x0 - 1), y0), (min(width, x0 + 1), y0)]
            if current:
                lines.append(" ".join(f"{x:.1f},{yy:.1f}" for x, yy in current))
            current = []
        else:
            current.append((pad + i * step if n > 1 else width / 2, y(v)))
    return lines
