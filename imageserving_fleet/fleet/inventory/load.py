"""Read Ansible inventories (YAML or INI, files or directories) into one frozen Inventory.

`load_inventory` turns paths into an Inventory as `ansible -i a -i b` does, `inventory_from_text`
does the same for a string, `default_inventory` reads the packaged one. Every error is an
InventoryError naming the file and, when the parser knows it, the line. group_vars/ and
host_vars/ are looked up beside each inventory file, or inside each inventory directory, as
Ansible's host_group_vars plugin does; a later -i source overrides an earlier one.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

from ...errors import InventoryError
from .builder import Builder
from .files import VARS_DIRS, YAML_SUFFIXES, directory_files, read_text
from .ini import parse_ini
from .model import Inventory
from .vars import VarsDir
from .yaml import parse_yaml

__all__ = ["default_inventory", "inventory_from_text", "load_inventory", "looks_like_yaml"]

PACKAGED_DEFAULT = "default_inventory.yml"


def load_inventory(paths: Sequence[str | Path], playbook_dir: str | Path | None = None) -> Inventory:
    """Takes inventory files and directories, returns them read in order into one Inventory.

    `playbook_dir`: group_vars/ and host_vars/ there are read too, after every inventory source's
    (ansible-core's "playbook group_vars": they win over the inventory's, group by group).
    """
    builder = Builder()
    var_dirs: dict[Path, VarsDir] = {}
    try:
        for given in paths:
            path = Path(given)
            if path.is_dir():
                for file in directory_files(path):
                    _parse_text(read_text(file), str(file), builder)
                base = path
            elif path.exists():
                _parse_text(read_text(path), str(path), builder)
                base = path.parent
            else:
                raise InventoryError("inventory file or directory not found", path=str(given))
            key = base.resolve()
            if key not in var_dirs and any((base / d).is_dir() for d in VARS_DIRS):
                var_dirs[key] = VarsDir(base)
        sources = list(var_dirs.values())
        if playbook_dir is not None:
            base = Path(playbook_dir)
            if any((base / d).is_dir() for d in VARS_DIRS):
                sources.append(var_dirs.get(base.resolve()) or VarsDir(base))
        return builder.build(sources)
    except OSError as exc:  # a directory we may not list, a file we may not stat...
        raise InventoryError(f"cannot read: {exc.strerror or exc}", path=str(exc.filename or "")) from None


def inventory_from_text(text: str, *, source: str = "<inventory>") -> Inventory:
    """Takes one inventory held in a string, returns it; `source` names it in errors (a .ini/.yml suffix decides)."""
    builder = Builder()
    _parse_text(text, source, builder)
    return builder.build([])


def default_inventory() -> Inventory:
    """The packaged fallback inventory: only `localhost`, reached with a local connection."""
    package = __name__.rpartition(".")[0]
    text = resources.files(package).joinpath(PACKAGED_DEFAULT).read_text(encoding="utf-8")
    return inventory_from_text(text, source=f"{package}/{PACKAGED_DEFAULT}")


def _parse_text(text: str, source: str, builder: Builder) -> None:
    if text.startswith("#!"):
        raise InventoryError("executable inventory scripts are not supported; use YAML or INI", path=source,
                             line=1)
    if looks_like_yaml(source, text):
        parse_yaml(text, source, builder)
    else:
        parse_ini(text, source, builder)


_YAML_FIRST_LINE = re.compile(r"^(?:---|%|\{|[^\s\[=#;]+:(?:\s|$)|['\"][^'\"]*['\"]\s*:(?:\s|$))")


def looks_like_yaml(source: str, text: str) -> bool:
    """Takes a file name and its text, returns True for YAML: by suffix, else by the first real line."""
    suffix = os.path.splitext(source)[1].lower()
    if suffix in YAML_SUFFIXES:
        return True
    if suffix == ".ini":
        return False
    for line in text.splitlines():
        line = line.strip()
        if line and line[0] not in "#;":
            return bool(_YAML_FIRST_LINE.match(line))
    return False
