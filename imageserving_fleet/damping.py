"""Flap damping for notifications: at most one per subject per interval, none lost from view. Pure.

A subject (a host's result, a component on a host) that changes five times in a minute must not
page someone five times, and the page that does go out must say what it held back. Per subject:

- the first change is sent at once;
- a change less than `min_interval` after the last one sent is held back (counted);
- when the interval has passed, the latest held-back change is sent (`due`), carrying
  `suppressed`: how many changes were not sent before it. So the last word a receiver has on a
  subject is always its latest state, even when the flapping stopped inside the interval;
- a change after the interval has passed, with nothing held back, is sent at once again.

Stdlib only, no clock of its own: the caller passes monotonic `now`. Shared by the fleet
exporter's `--notify` and meant for the agent's `supervisor.notify` (SPEC §2, §7).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Gate(Generic[T]):
    """One subject's damping state: when its last notification went, and what is held back."""

    sent_at: float | None = None
    held: T | None = None        # the latest change held back, sent when the interval is over
    suppressed: int = 0          # changes held back since the last one sent


@dataclass(frozen=True)
class Send(Generic[T]):
    """A notification to send now: the change and how many were held back before it."""

    event: T
    suppressed: int


def offer(gate: Gate[T], event: T, now: float, min_interval: float) -> tuple[Gate[T], Send[T] | None]:
    """Takes a subject's gate and a new change; returns the new gate and what to send now (or None)."""
    if gate.sent_at is None or (now - gate.sent_at >= min_interval and gate.held is None):
        return Gate(sent_at=now), Send(event, 0)
    if now - gate.sent_at >= min_interval:  # held back and due: this newer change goes instead
        return Gate(sent_at=now), Send(event, gate.suppressed)
    return replace(gate, held=event, suppressed=gate.suppressed + 1), None


def due(gate: Gate[T], now: float, min_interval: float) -> tuple[Gate[T], Send[T] | None]:
    """Takes a gate at `now`; returns it and the held-back change to send, once its interval is over."""
    if gate.held is None or gate.sent_at is None or now - gate.sent_at < min_interval:
        return gate, None
    return Gate(sent_at=now), Send(gate.held, gate.suppressed - 1)


def next_due(gate: Gate[T], min_interval: float) -> float | None:
    """When `due` will have something to send for this gate (monotonic time), or None."""
    if gate.held is None or gate.sent_at is None:
        return None
    return gate.sent_at + min_interval
