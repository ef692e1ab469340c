"""Pure: from what a host reported and the wheels at hand, what a deploy does there, or why it cannot.

    plan_host(facts, wheels, DeployRequest) -> Plan      raises Refused(reason)
    render_unit(template, agent, home, config) -> str    the systemd unit for this install

Layout on a host, for `imageserving_venv` V (default ~/.imageserving/venv):

    dirname(V)/venvs/<version>-<build id>[.N]/   one complete virtual environment per install
    V -> dirname(V)/venvs/<...>                  the symlink every command uses, switched last

Nothing here touches a host, a file or the clock; the tables in tests/fleet/test_deploy.py drive it.
"""

from __future__ import annotations

import enum
import posixpath
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated

from ...errors import ImageServingError
from ..options import opt
from .facts import HostFacts

VERSION_DIR_RE = re.compile(r"^[0-9][A-Za-z0-9.+!_-]*-[0-9a-f]{12}(\.[0-9]+)?$")
# What a path may hold to be written into a systemd unit line unquoted and unexpanded.
_UNIT_SAFE = re.compile(r"^/[A-Za-z0-9_./@+-]*$")
AGENT = "imageserving"


class Refused(ImageServingError):
    """This host cannot be deployed to as asked; the message says why and what to do."""


class Action(enum.StrEnum):
    INSTALL = "installed"
    UNCHANGED = "unchanged"


@dataclass(frozen=True)
class WheelSet:
    """What the controller offers one platform: the agent's version and every wheel's sha256."""

    version: str
    build_id: str
    wheels: dict[str, str]  # name -> sha256, the installer's included
    requires_python: str | None = None


@dataclass(frozen=True)
class DeployOptions:
    """`deploy`'s options as written, each declared once (the CLI builds its options from them)."""

    systemd: Annotated[bool, opt(
        "--systemd", help="Also install and enable the imageserving systemd unit (needs root: -b).")] = False
    force: Annotated[bool, opt("--force", help="Reinstall even where the same build already runs.")] = False
    wheel: Annotated[str | None, opt(
        "--wheel", metavar="PATH", help="Deploy this imageserving-fleet wheel (e.g. a release build) instead of "
                                        "building one from this installation.")] = None
    no_activate: Annotated[bool, opt(
        "--no-activate", help="Do not end with `restart supervisor` on hosts that got a new build (their supervisor "
                              "keeps the old code until restarted).")] = False


@dataclass(frozen=True)
class DeployRequest:
    force: bool = False  # reinstall even when the same build runs there
    systemd: bool = False  # install and enable the systemd unit
    activate: bool = True  # after installing a new build: `restart supervisor` there (no component restarts)


@dataclass(frozen=True)
class Plan:
    """One host's deploy: where the new environment goes, what to upload, what to remove after."""

    action: Action
    version: str
    venv: str  # the symlink, absolute
    version_dir: str  # what it points to afterwards, absolute
    uploads: tuple[str, ...] = ()  # wheel names the host lacks (or holds with another hash)
    prune: tuple[str, ...] = ()  # old version directories, absolute, removed after the switch
    systemd: bool = False

    @property
    def agent(self) -> str:
        """The agent's path through the symlink: stays valid across upgrades."""
        return posixpath.join(self.venv, "bin", AGENT)


def plan_host(facts: HostFacts, offer: WheelSet, request: DeployRequest) -> Plan:
    """Takes a host's facts, the wheels for its platform and the request; returns the plan.

    Raises Refused when the host cannot take this agent (old python, a real directory where the
    symlink goes, systemd asked for where there is none or without root).
    """
    if request.systemd and not facts.systemd:
        raise Refused("--systemd: systemd is not running on this host (no /run/systemd/system)")
    if request.systemd and facts.uid != 0:
        raise Refused("--systemd installs a system unit and needs root: add -b/--become")
    too_old = python_too_old(facts.python, offer.requires_python)
    if too_old:
        raise Refused(too_old)
    if facts.venv_kind in ("dir", "other"):
        what = "a directory" if facts.venv_kind == "dir" else "a file"
        raise Refused(f"{facts.venv} is {what}, not the symlink deploy manages: move it away, or set "
                      "imageserving_venv to another path")
    name = f"{offer.version}-{offer.build_id}"
    current = _current(facts)
    unchanged = (not request.force and current is not None and (current == name or current.startswith(name + "."))
                 and facts.agent == f"{AGENT} {offer.version}")
    if unchanged:
        assert current is not None
        return Plan(Action.UNCHANGED, offer.version, facts.venv, posixpath.join(facts.versions_dir, current),
                    systemd=request.systemd)
    new = _free_name(name, facts.versions)
    keep = {new, *(facts.in_use)} | ({current} if current else set())
    prune = tuple(posixpath.join(facts.versions_dir, v) for v in facts.versions
                  if VERSION_DIR_RE.match(v) and v not in keep)
    uploads = tuple(sorted(n for n, sha in offer.wheels.items() if facts.staged.get(staged_path(n, sha)) != sha))
    return Plan(Action.INSTALL, offer.version, facts.venv, posixpath.join(facts.versions_dir, new),
                uploads=uploads, prune=prune, systemd=request.systemd)


def staged_path(name: str, sha256: str) -> str:
    """Where a wheel lives in the upload directory: keyed by its content, so two deploys of different
    builds under one version (same file name) never read each other's wheel."""
    return f"{sha256}/{name}"


def _current(facts: HostFacts) -> str | None:
    """The version directory the symlink points to, when it is one of ours."""
    if facts.venv_kind != "link" or not facts.current:
        return None
    return facts.current if VERSION_DIR_RE.match(facts.current) else None


def _free_name(name: str, taken: Sequence[str]) -> str:
    if name not in taken:
        return name
    n = 2
    while f"{name}.{n}" in taken:
        n += 1
    return f"{name}.{n}"


def python_too_old(python: Sequence[int], requires: str | None) -> str | None:
    """Checks Requires-Python's `>=X.Y` (and `<X.Y`) clauses; returns why not, or None when it fits."""
    if not requires:
        return None
    have = tuple(python[:3])
    for clause in requires.split(","):
        match = re.fullmatch(r"\s*(>=|<|>|<=)\s*(\d+(?:\.\d+)*)\s*", clause)
        if not match:
            continue
        op, want = match.group(1), tuple(int(x) for x in match.group(2).split("."))
        ok = {">=": have[:len(want)] >= want, ">": have[:len(want)] > want,
              "<": have[:len(want)] < want, "<=": have[:len(want)] <= want}[op]
        if not ok:
            return (f"python3 on the host is {'.'.join(map(str, have))}; the agent needs python {requires} "
                    "(set imageserving_python or ansible_python_interpreter to a newer one)")
    return None


def render_unit(template: str, agent: str, home: str | None, config: str | None) -> str:
    """The packaged unit with ExecStart on this agent and the host's home and config.

    Raises Refused when a path cannot stand in a unit file as is (spaces, quotes, `%`, `$`, `~`).
    """
    for label, value in (("agent", agent), ("imageserving_home", home), ("imageserving_config", config)):
        if value is not None and not _UNIT_SAFE.match(value):
            raise Refused(f"--systemd: {label} {value!r} must be an absolute path of plain characters "
                          "to go into a systemd unit")
    lines = []
    for line in template.splitlines():
        if line.startswith("ExecStart="):
            line = f"ExecStart={agent} supervise"
        elif line.startswith("Environment=IMAGESERVING_HOME=") and home:
            line = f"Environment=IMAGESERVING_HOME={home}"
        elif line.startswith("Environment=IMAGESERVING_CONFIG=") and config:
            line = f"Environment=IMAGESERVING_CONFIG={config}"
        lines.append(line)
    return "\n".join(lines) + "\n"
