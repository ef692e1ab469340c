"""The configuration as plain JSON-able data (how the supervisor receives it) and its digest.

Stdlib only: the supervisor rebuilds its AgentConfig from this and never imports yaml.
"""

from __future__ import annotations

from typing import Any

from .model import AgentConfig, Backoff, ComponentConfig, HealthCheck, NotifyConfig, ReadyCheck


def to_dict(config: AgentConfig) -> dict[str, Any]:
    """Takes a validated config; returns plain JSON-able data (how the supervisor receives it)."""
    from dataclasses import asdict

    return asdict(config)


def _check(d: dict[str, Any]) -> ReadyCheck:
    return ReadyCheck(**{**d, "argv": tuple(d.get("argv", ()))})


def digest(config: AgentConfig) -> str:
    """sha256 of the effective configuration (what the components run with, not where it came from)."""
    import hashlib
    import json

    data = _without_new_defaults(to_dict(config))
    data.pop("path", None)
    return hashlib.sha256(json.dumps(data, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def from_dict(data: dict[str, Any]) -> AgentConfig:
    """Takes what to_dict returned (already validated); returns the AgentConfig again."""
    comps = []
    for c in data["components"]:
        c = dict(c)
        c["command"] = tuple(c["command"])
        c["backoff"] = Backoff(**c["backoff"])
        if c.get("ready"):
            c["ready"] = _check(c["ready"])
        if c.get("health"):
            c["health"] = HealthCheck(**{**c["health"], "check": _check(c["health"]["check"])})
        comps.append(ComponentConfig(**c))
    n = data.get("notify")
    notify = None if not n else NotifyConfig(command=tuple(n["command"]), url=n.get("url"), on=tuple(n["on"]),
                                             min_interval=n["min_interval"])
    return AgentConfig(path=data["path"], components=tuple(comps), log_max_bytes=data["log_max_bytes"],
                       log_backups=data["log_backups"], metrics_listen=data.get("metrics_listen"), notify=notify)


def _without_new_defaults(data: dict[str, Any]) -> dict[str, Any]:
    """Leaves out keys added after the digest was first published while they hold their default,
    so an upgraded agent computes the same digest for the same file (no drift, no restart on handover)."""
    if data.get("notify") is None:
        data.pop("notify", None)
    for comp in data.get("components", []):
        if not comp.get("logs"):
            comp.pop("logs", None)
    return data
