"""`<home>/run/components.json`: what a supervisor owns, for its successor, for the next one after
its death, and for `status`/`stop` when none runs; and stopping what a dead one left.

Stdlib only and no dataclasses: `imageserving status` imports this when the supervisor is down.
"""

from __future__ import annotations

import json
import signal
import time

from .ownership import Owned, boot_id, members, remove_cgroup, signal_members, table

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

STATE_VERSION = 2
STOP_POLL = 0.05                     # seconds between looks while waiting for processes to end
KILL_WAIT = 5.0                      # seconds to wait for SIGKILLed processes to disappear


class State:
    """`<home>/run/components.json`: what the supervisor owns, rewritten on every change.

    {"version": 2, "boot_id", "supervisor": {"pid", "start"}, "components": {id: {"pid", "start",
    "cgroup", "seen": [[pid, start]], "log", "digest", "stop_signal", "stop_timeout", "priority",
    "proc": {the supervisor's record: state, restarts, held, health counters, monotonic times}}}}

    A crash leaves it behind for the next supervisor (or `status`/`stop`); a handover passes
    everything through it. CLOCK_MONOTONIC is system-wide, so the recorded times stay valid
    across processes on the same boot (checked with boot_id).
    """

    @staticmethod
    def load(path: str) -> dict[str, Any]:
        try:
            with open(path) as fh:
                doc = json.load(fh)
        except (OSError, ValueError):
            return {}
        if (not isinstance(doc, dict) or doc.get("version") != STATE_VERSION or doc.get("boot_id") != boot_id()
                or not isinstance(doc.get("components"), dict)):
            return {}
        return doc

    @staticmethod
    def save(path: str, doc: dict[str, Any]) -> None:
        from ..atomic import write_atomic

        doc = {"version": STATE_VERSION, "boot_id": boot_id(), **doc}
        try:  # every state change writes it: no fsync in the loop
            write_atomic(path, json.dumps(doc, separators=(",", ":")), durable=False)
        except OSError:
            pass  # best effort: the cgroup and the session still find them


def leftovers(path: str) -> list[tuple[dict[str, Any], Owned, list[int]]]:
    """What a dead supervisor left running: (its record, Owned, live pids) per component, in start order."""
    doc = State.load(path)
    rows = None
    out = []
    comps = doc.get("components", {})
    for cid in sorted(comps, key=lambda c: (comps[c].get("priority", 1), c)):
        rec = comps[cid]
        if not isinstance(rec, dict):
            continue
        owned = Owned.from_dict(cid, rec)
        if owned.cgroup is None and rows is None:
            rows = table()
        pids = members(owned, rows)
        if pids:
            out.append((rec, owned, pids))
    return out


def stop_leftovers(found: list[tuple[dict[str, Any], Owned, list[int]]],
                   say: Any = None) -> tuple[int, list[str]]:
    """Stops them in reverse priority order, each with its own stop_signal and stop_timeout, then
    SIGKILL; returns (processes stopped, ids of components with a survivor)."""
    by_level: dict[int, list[tuple[dict[str, Any], Owned, list[int]]]] = {}
    for item in found:
        by_level.setdefault(int(item[0].get("priority", 1)), []).append(item)
    stopped, survivors = 0, []
    for level in sorted(by_level, reverse=True):
        group = by_level[level]
        deadline = 0.0
        for rec, owned, pids in group:
            signo = int(rec.get("stop_signal", signal.SIGTERM))
            timeout = float(rec.get("stop_timeout", 10.0))
            if say is not None:
                say(owned.id, pids, signo, timeout)
            stopped += len(pids)
            signal_members(owned, signo, pids)
            deadline = max(deadline, time.monotonic() + timeout)
        _wait_gone([o for _, o, _ in group], deadline)
        for _, owned, _ in group:
            if members(owned):
                signal_members(owned, signal.SIGKILL)
        _wait_gone([o for _, o, _ in group], time.monotonic() + KILL_WAIT)
        for _, owned, _ in group:
            if members(owned):
                survivors.append(owned.id)
            else:
                remove_cgroup(owned.cgroup)
    return stopped, survivors


def _wait_gone(owned: list[Owned], deadline: float) -> None:
    while time.monotonic() < deadline and any(members(o) for o in owned):
        time.sleep(STOP_POLL)
