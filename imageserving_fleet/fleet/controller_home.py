"""The controller's own directory, `~/.imageserving-fleet`: the audit log and the retry files live there."""

from __future__ import annotations

from pathlib import Path

DIRNAME = ".imageserving-fleet"


def controller_home() -> Path:
    """`~/.imageserving-fleet` of the user running the controller (HOME decides, as for ~/.ssh)."""
    return Path.home() / DIRNAME


def make_private_dir(path: Path) -> None:
    """Creates `path` and its parents as the user's own (0700 for what it creates); raises OSError."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
