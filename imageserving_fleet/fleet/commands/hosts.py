"""`hosts`: the matched hosts and their connection settings, as rows; contacts nothing."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from ..context import RunContext
from ..target import Target

COLUMNS = ("host", "address", "connection", "become", "home", "config", "agent")  # the table's


@dataclass(frozen=True)
class HostRow:
    """One host as `hosts` shows it (its --json entry has these keys, in this order)."""

    host: str
    address: str
    connection: str
    become: bool
    become_user: str | None
    home: str | None
    config: str | None
    worker: str | None
    agent: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def row(target: Target) -> HostRow:
    agent = target.agent_command or f"{target.venv}/bin/imageserving (else imageserving on PATH)"
    return HostRow(target.name, target.address, target.connection, target.become, target.become_user,
                   target.home, target.config, target.worker, agent)


def hosts(ctx: RunContext) -> list[HostRow]:
    return [row(t) for t in ctx.targets]


def hosts_document(rows: list[HostRow]) -> dict[str, Any]:
    return {"schema": 1, "command": "hosts", "hosts": [r.to_dict() for r in rows]}
