"""group_vars/ and host_vars/ beside an inventory source, as Ansible's host_group_vars plugin reads them.

`VarsDir(base)` indexes `base/group_vars` and `base/host_vars` once; `group_vars(name)` and
`host_vars(name)` return one entity's variables, merged from `name`, `name.yml`, `name.yaml`,
`name.json` and the files of a `name/` directory (recursively, sorted), read once each.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

from .files import VARS_DIRS, YAML_SUFFIXES, read_text
from .yaml import YamlDocument, describe, is_null

__all__ = ["VarsDir"]


class VarsDir:
    """group_vars/ and host_vars/ under one base directory, read on demand and once per name."""

    _RANK = {"": 0, ".yml": 1, ".yaml": 2, ".json": 3}  # Ansible's order when several match

    def __init__(self, base: Path) -> None:
        self.base = base
        self.index = {kind: self._index(base / kind) for kind in VARS_DIRS}
        self.cache: dict[tuple[str, str], Mapping[str, Any]] = {}

    def group_vars(self, name: str) -> Mapping[str, Any]:
        return self._vars("group_vars", name)

    def host_vars(self, name: str) -> Mapping[str, Any]:
        return self._vars("host_vars", name)

    def _index(self, directory: Path) -> dict[str, list[Path]]:
        """Takes group_vars/ or host_vars/, returns entity name -> its files, in Ansible's order."""
        if not directory.is_dir():
            return {}
        ranked: dict[str, list[tuple[int, Path]]] = {}
        for entry in sorted(os.listdir(directory)):
            if entry.startswith(".") or entry.endswith("~"):
                continue
            ranked.setdefault(entry, []).append((0, directory / entry))
            stem, suffix = os.path.splitext(entry)
            if suffix in YAML_SUFFIXES:
                ranked.setdefault(stem, []).append((self._RANK[suffix], directory / entry))
        return {name: [p for _, p in sorted(found)] for name, found in ranked.items()}

    def _vars(self, kind: str, name: str) -> Mapping[str, Any]:
        key = (kind, name)
        if key not in self.cache:
            merged: dict[str, Any] = {}
            for path in self.index[kind].get(name, ()):
                for file in _vars_files(path):
                    merged.update(_load_vars_file(file))
            self.cache[key] = merged
        return self.cache[key]


def _vars_files(path: Path) -> Iterator[Path]:
    """A vars file itself, or a vars directory's files (recursively, sorted, YAML/JSON or no suffix)."""
    if not path.is_dir():
        yield path
        return
    for entry in sorted(os.listdir(path)):
        if entry.startswith(".") or entry.endswith("~"):
            continue
        full = path / entry
        suffix = os.path.splitext(entry)[1]
        if full.is_dir() and not suffix:
            yield from _vars_files(full)
        elif full.is_file() and (not suffix or suffix in YAML_SUFFIXES):
            yield full


def _load_vars_file(path: Path) -> Mapping[str, Any]:
    """Takes a group_vars/host_vars file, returns its mapping (empty file: nothing)."""
    doc = YamlDocument(read_text(path), str(path))
    if doc.root is None or is_null(doc.root):
        return {}
    if not isinstance(doc.root, yaml.MappingNode):
        raise doc.error(f"a variables file must hold a mapping, not {describe(doc.root)}", doc.root)
    value: Mapping[str, Any] = doc.value(doc.root)
    return value
