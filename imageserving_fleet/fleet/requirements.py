"""The controller's own Python dependencies, checked once before any host is contacted.

`pip install imageserving-fleet` installs them (they are default dependencies); a broken
environment (a module removed, a wheel without its native part) must say so once, with the
command that fixes it, and exit 1, rather than fail every host with the same "internal error".
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterable, Sequence

from ..errors import MissingDependencyError
from .target import Target

# module -> distribution it comes from (what pip installs)
CONTROLLER_MODULES = {"paramiko": "paramiko", "jinja2": "Jinja2", "rich": "rich", "yaml": "PyYAML",
                      "typer": "typer"}
DISTRIBUTION = "imageserving-fleet"


def requirement(module: str) -> str:
    """The requirement this package declares for `module` ("paramiko>=3.4"), else the distribution's name."""
    dist = CONTROLLER_MODULES.get(module, module)
    try:
        from importlib.metadata import PackageNotFoundError, requires

        declared = requires(DISTRIBUTION) or []
    except (ImportError, PackageNotFoundError):
        declared = []
    for line in declared:
        spec = line.split(";", 1)[0].strip()
        name = spec.split("[", 1)[0]
        for stop in "<>=!~ ":
            name = name.split(stop, 1)[0]
        if name.lower().replace("_", "-") == dist.lower() and ";" not in line:
            return spec.replace(" ", "")
    return dist


def fix_command(modules: Iterable[str]) -> str:
    specs = " ".join(f"'{requirement(m)}'" for m in modules)
    return f"{sys.executable} -m pip install {specs}"


def missing_message(modules: Sequence[str], errors: Sequence[BaseException]) -> str:
    """What the user reads: which modules, why, that nothing was contacted, and the pip command."""
    why = "; ".join(f"{type(e).__name__}: {e}" for e in errors)
    return (f"the controller cannot run: Python module{'s' if len(modules) > 1 else ''} {', '.join(modules)} "
            f"missing or broken in {sys.prefix} ({why}); nothing was contacted. Fix: {fix_command(modules)}")


def require(modules: Sequence[str]) -> None:
    """Imports each module; raises one MissingDependencyError naming every one that fails, and the fix."""
    missing: list[tuple[str, BaseException]] = []
    for module in modules:
        try:
            if module == "paramiko":  # through its one loader (ssh/base.py: logging quieted, invoke deferred)
                from .ssh.base import load_paramiko

                load_paramiko()
            else:
                importlib.import_module(module)
        except ImportError as exc:  # ModuleNotFoundError, or a broken install of it
            missing.append((module, exc))
    if missing:
        names = [m for m, _ in missing]
        raise MissingDependencyError(missing_message(names, [e for _, e in missing]), modules=tuple(names))


def modules_for(targets: Sequence[Target]) -> list[str]:
    """What the fan-out to these targets imports: paramiko only when a host is reached over SSH."""
    return ["paramiko"] if any(t.connection == "ssh" for t in targets) else []
