"""What a starting supervisor does with the components a previous one left running: adopt or stop.

A handover (`restart supervisor`) adopts every component as the old supervisor recorded it. After
a crash (kill -9, the OOM killer) a component is adopted only when all of these hold, else its
processes are stopped first (with its own stop_signal and stop_timeout), so no component ever
runs twice:

- it is still in the configuration, with the same settings (its digest);
- its main process is the one recorded (pid and start time) and was RUNNING;
- its output still reaches its log: its stdout is the pipe of its log relay, still alive (relay.py).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any

from . import ownership
from .config import AgentConfig, ComponentConfig
from .ownership import Owned
from .states import Proc, State, from_record


def component_digest(comp: ComponentConfig) -> str:
    """sha256 of one component's settings: an adopted process must run what the configuration says."""
    return hashlib.sha256(json.dumps(asdict(comp), sort_keys=True, default=str).encode()).hexdigest()


@dataclass
class Plan:
    """Per component: adopt (its ownership record and state) or stop (with why); ids absent start fresh."""

    adopt: dict[str, tuple[Owned, Proc]] = field(default_factory=dict)
    stop: list[tuple[dict[str, Any], Owned, list[int], str]] = field(default_factory=list)


def plan(doc: dict[str, Any], config: AgentConfig, log_path: Any, handover: bool) -> Plan:
    """Takes the state file's document, the configuration, `log_path(id)` and whether this is a
    handover; returns what to adopt and what to stop."""
    out = Plan()
    for cid, rec in (doc.get("components") or {}).items():
        if not isinstance(rec, dict):
            continue
        owned = Owned.from_dict(cid, rec)
        proc = from_record(rec.get("proc"))
        if handover and cid in config.ids:
            out.adopt[cid] = (owned, proc)
            continue
        pids = ownership.members(owned)
        if not pids:
            continue
        why = refusal(rec, owned, proc, config, log_path(cid))
        if why:
            out.stop.append((rec, owned, pids, why))
        else:
            out.adopt[cid] = (owned, proc)
    return out


def refusal(rec: dict[str, Any], owned: Owned, proc: Proc, config: AgentConfig, log: str) -> str:
    """Why a leftover component cannot be adopted after a crash ("" when it can)."""
    if owned.id not in config.ids:
        return "no longer in the configuration"
    if rec.get("digest") != component_digest(config.component(owned.id)):
        return "its configuration changed"
    if not owned.main_alive():
        return f"its main process {owned.pid} is gone"
    if proc.state != State.RUNNING or proc.pid != owned.pid:
        return f"it was {proc.state}, not RUNNING"
    if not owned.output_reaches_log():
        return f"its output no longer reaches {log} (its log relay is gone)"
    return ""
