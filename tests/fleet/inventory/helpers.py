"""Helpers the inventory tests share: writing inventory files, listing an inventory's host names."""

from __future__ import annotations

import textwrap
from pathlib import Path

from imageserving_fleet.fleet.inventory import Inventory

REPO = Path(__file__).resolve().parents[3]


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def names(inventory: Inventory) -> list[str]:
    return [h.name for h in inventory.hosts]
