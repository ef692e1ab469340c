"""`hosts`: the matched hosts, their connection settings and where each came from, as rows; contacts
nothing (ssh_config is read, as a run would read it, to say what it adds)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from ..context import RunContext
from ..explain import explain
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
    # setting -> {"value", "source"}: user, address, port, keys, jump, host key policy, become... (explain.py)
    settings: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def row(target: Target, settings: Mapping[str, Mapping[str, Any]] | None = None) -> HostRow:
    agent = target.agent_command or f"{target.venv}/bin/imageserving (else imageserving on PATH)"
    return HostRow(target.name, target.address, target.connection, target.become, target.become_user,
                   target.home, target.config, target.worker, agent, settings or {})


def hosts(ctx: RunContext) -> list[HostRow]:
    """Each selected host's row, with every connection setting and its source."""
    from ..ssh import Connector

    connector = Connector(ctx.ssh)  # reads ssh_config as the run would (SshConfigError: exit 1); connects nothing
    try:
        rows = []
        for t in ctx.targets:
            ssh = None if t.connection == "local" else connector.settings(t)
            found = connector.ssh_config_options(t) if ssh is not None else {}
            rows.append(row(t, explain(t, ssh, found, ctx.wide)))
        return rows
    finally:
        connector.close()


def hosts_document(rows: list[HostRow], run: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """`hosts --json`: the rows, and (`run`) the run-wide settings with their sources."""
    doc: dict[str, Any] = {"schema": 1, "command": "hosts"}
    if run is not None:
        doc["run"] = dict(run)
    doc["hosts"] = [r.to_dict() for r in rows]
    return doc
