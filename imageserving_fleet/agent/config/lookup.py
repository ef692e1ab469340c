"""Which configuration file to use: --config, IMAGESERVING_CONFIG, /etc/imageserving/agent.yaml, the demo."""

from __future__ import annotations

import os
from pathlib import Path

SYSTEM_CONFIG = "/etc/imageserving/agent.yaml"


def packaged_default() -> Path:
    """The demo stack's configuration, shipped inside the package."""
    return Path(__file__).parent.parent / "demo" / "demo.yaml"


def resolve_path(explicit: str | None) -> Path:
    """Takes --config (or None); returns the file to use, following the documented lookup order."""
    if explicit:
        return Path(explicit)
    env = os.environ.get("IMAGESERVING_CONFIG")
    if env:
        return Path(env)
    if Path(SYSTEM_CONFIG).exists():
        return Path(SYSTEM_CONFIG)
    return packaged_default()
