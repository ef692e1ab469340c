"""The watchdog (ssh/deadline.py): alarms fire in deadline order, an earlier alarm added while the
loop sleeps for a later one still fires at its time, a cancelled one never fires."""

from __future__ import annotations

import threading
import time

from imageserving_fleet.fleet.ssh.deadline import Watchdog

PATIENCE = 20.0  # seconds a test waits for what should happen at once: a slow machine is no failure


def test_an_earlier_alarm_wakes_a_loop_asleep_for_a_later_one() -> None:
    dog = Watchdog()
    late, early, later = threading.Event(), threading.Event(), threading.Event()
    far = dog.at(time.monotonic() + 3600, late.set)  # the loop now sleeps for an hour
    dog.at(time.monotonic() + 0.01, early.set)       # earlier: the loop must be woken for it
    farther = dog.at(time.monotonic() + 7200, later.set)  # later than the earliest: no need to wake
    assert early.wait(PATIENCE)
    assert not late.is_set() and not later.is_set()
    assert far.cancel() and farther.cancel()


def test_alarms_fire_in_deadline_order_and_cancelled_ones_not_at_all() -> None:
    dog = Watchdog()
    fired: list[str] = []
    lock = threading.Lock()
    all_done = threading.Event()

    def mark(name: str) -> None:
        with lock:
            fired.append(name)
            if len(fired) == 3:
                all_done.set()

    now = time.monotonic()
    for name, delay in (("c", 0.06), ("a", 0.02), ("x", 0.03), ("b", 0.04)):
        alarm = dog.at(now + delay, lambda n=name: mark(n))
        if name == "x":
            assert alarm.cancel()
    assert all_done.wait(PATIENCE)
    # Each fired callback runs on a thread of its own: their order is the loop's order only when
    # they are apart in time, so the set is what is exact; the cancelled one is never among them.
    assert sorted(fired) == ["a", "b", "c"]
    late = dog.at(time.monotonic(), lambda: None)
    deadline = time.monotonic() + PATIENCE
    while not late.fired and time.monotonic() < deadline:
        time.sleep(0.005)
    assert late.fired and not late.cancel()  # fired: too late to cancel
