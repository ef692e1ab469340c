"""The agent's YAML configuration, loaded and validated into typed, frozen dataclasses.

Every error is a ConfigError naming the file, the line and the key, raised before anything starts.
One module per job:

    model      the dataclasses (stdlib only)
    lookup     which file: --config, IMAGESERVING_CONFIG, /etc/imageserving/agent.yaml, the demo stack
    yamlfile   reading the file, parsing YAML, the line of every key
    validate   parsed YAML -> model, with file:line:key errors
    wire       model <-> plain JSON data (how the supervisor receives it) and its sha256 digest
"""

from __future__ import annotations

from pathlib import Path

from .lookup import SYSTEM_CONFIG, packaged_default, resolve_path
from .model import (
    NOTIFY_DEFAULT,
    NOTIFY_EVENTS,
    RESTART_POLICIES,
    AgentConfig,
    Backoff,
    ComponentConfig,
    HealthCheck,
    NotifyConfig,
    ReadyCheck,
)
from .validate import ID_RE, validate
from .wire import digest, from_dict, to_dict
from .yamlfile import MAX_CONFIG_BYTES, parse_yaml, read_text

__all__ = [
    "ID_RE", "MAX_CONFIG_BYTES", "NOTIFY_DEFAULT", "NOTIFY_EVENTS", "RESTART_POLICIES", "SYSTEM_CONFIG", "AgentConfig", "Backoff",
    "ComponentConfig", "HealthCheck", "NotifyConfig", "ReadyCheck", "digest", "from_dict", "load_config",
    "packaged_default", "parse_config", "resolve_path", "to_dict",
]


def load_config(path: str | Path) -> AgentConfig:
    """Takes a YAML file path; returns the validated AgentConfig or raises ConfigError."""
    return parse_config(read_text(path), str(path))


def parse_config(text: str, name: str = "<config>") -> AgentConfig:
    """Takes YAML text; returns the validated AgentConfig or raises ConfigError."""
    data, lines = parse_yaml(text, name)
    return validate(data, lines, name)
