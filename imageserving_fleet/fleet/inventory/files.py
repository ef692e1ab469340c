"""The inventory's file I/O: which files of a directory are inventory, and reading one safely.

The only module of the package that opens files, with vars.py (which lists its directories).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from ...errors import InventoryError

__all__ = ["MAX_FILE_BYTES", "VARS_DIRS", "YAML_SUFFIXES", "directory_files", "read_text"]

# Directory inventories skip what Ansible 2.19 skips by default (it no longer skips .ini files).
IGNORED_SUFFIXES = (".pyc", ".pyo", ".swp", ".bak", "~", ".rpm", ".md", ".txt", ".rst", ".orig",
                    ".cfg", ".retry")
VARS_DIRS = ("group_vars", "host_vars")
YAML_SUFFIXES = (".yml", ".yaml", ".json")
MAX_FILE_BYTES = 64 * 2**20  # a 10 000-host inventory is a few MB


def directory_files(directory: Path) -> Iterator[Path]:
    """Takes an inventory directory, yields its inventory files, sorted and recursively, as Ansible picks them."""
    for name in sorted(os.listdir(directory)):
        if name.startswith(".") or name in VARS_DIRS or name.endswith(IGNORED_SUFFIXES):
            continue
        path = directory / name
        if path.is_dir():
            yield from directory_files(path)
        else:
            yield path


def read_text(path: Path) -> str:
    """Takes a path, returns its text; every failure is an InventoryError naming the file."""
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_FILE_BYTES + 1)  # bounded: `-i /dev/zero` must not eat the controller's memory
        if len(data) > MAX_FILE_BYTES:
            raise InventoryError(f"larger than {MAX_FILE_BYTES // 2**20} MiB: not an inventory", path=str(path))
        return data.decode("utf-8-sig")  # -sig: a BOM from a Windows editor is not a host
    except FileNotFoundError:
        raise InventoryError("inventory file not found", path=str(path)) from None
    except UnicodeDecodeError as exc:
        raise InventoryError(f"not UTF-8 text (byte {exc.start})", path=str(path)) from None
    except OSError as exc:
        raise InventoryError(f"cannot read: {exc.strerror or exc}", path=str(path)) from None
