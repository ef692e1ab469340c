"""The remote side of a deploy: shell commands built from quoted values, and their execution.

Every command has the same shape, so quoting is done in one place:

    S="$HOME"/.cache/imageserving-fleet/wheels; mkdir -p "$S" && [sudo -n [-u U] --] sh -c SCRIPT sh ARG...

SCRIPT is a constant of this module; every value (paths, wheel names, the interpreter) travels as a
positional argument quoted with shlex.quote, never pasted into a script. Uploads (transfer.py: SFTP,
else piped) land in the login user's ~/.cache/imageserving-fleet/wheels (they run as that user even
when the install runs through sudo) under a temporary name and are renamed into place as
<sha256>/<wheel name>, so hosts sharing a home never see half a wheel and two deploys of different
builds with one file name never read each other's. The steps before the symlink switch only build
a new directory; if one fails that directory is removed and the agent the symlink points to is untouched.
"""

from __future__ import annotations

import os
import re
import secrets
import shlex
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ...errors import HostError
from ..ssh import CommandResult, Session
from ..target import Target
from .facts import PROBE
from .plan import Action, Plan, staged_path
from .transfer import Outgoing, Sent, send
from .wheelhouse import Bundle, Wheel

STAGE = ".cache/imageserving-fleet/wheels"  # under the login user's home, where SFTP paths start
UNIT_PATH = "/etc/systemd/system/imageserving.service"
_WHEEL_NAME = re.compile(r"^[A-Za-z0-9_.+!-]+\.whl$")
_STEP_OUTPUT = 1 << 20

# The constant scripts; $1... are the quoted arguments.
_PROBE = 'exec "$2" -c "$3" "$4" "$1"'  # stage, python, code, venv
# Renames the uploads into place (<sha256>/<name>: keyed by content), and drops parts an interrupted
# run left more than a day ago.
_FINISH_UPLOADS = ('cd "$1" || exit 1; shift; while [ $# -gt 1 ]; do mkdir -p -- "${2%/*}" && mv -f -- "$1" "$2" '
                   '|| exit 1; shift 2; done; '
                   "find . -maxdepth 1 -name '*.whl.part-*' -mmin +1440 -exec rm -f -- {} + 2>/dev/null; exit 0")
_CREATE = 'mkdir -p -- "$2" && rm -rf -- "$3" && exec "$1" -m venv --without-pip -- "$3"'
_INSTALL = ('s=$1 v=$2 pip=$3; shift 3; cd "$s" || exit 1; PIP_CONFIG_FILE=/dev/null exec "$v/bin/python" "$pip/pip" '
            'install --no-index --no-deps --find-links "$s" --no-cache-dir --disable-pip-version-check --no-input '
            '--no-warn-script-location -q "$@"')
# Prints a marker line first: the version is the line after it, whatever the login shell printed.
_CHECK = 'printf "%s\\n" "$2"; exec "$1/bin/imageserving" --version'
CHECK_MARK = "-- imageserving-fleet deploy: the new agent says --"
_SWITCH = 'exec "$1" -c "$2" "$3" "$4"'
_SWITCH_PY = ("import os, sys\n"
              "new, link = sys.argv[1], sys.argv[2]\n"
              "tmp = '%s.new-%d' % (link, os.getpid())\n"
              "os.symlink(new, tmp)\n"
              "try:\n"
              "    os.replace(tmp, link)\n"
              "except OSError:\n"
              "    os.unlink(tmp)\n"
              "    raise\n")
_SYSTEMD = ('install -m 0644 -- "$1/$2" "$3" && systemctl daemon-reload && systemctl enable --quiet '
            'imageserving.service')
_REMOVE = 'rm -rf -- "$@"'


class StepFailed(HostError):
    """A deploy step failed on a host; `reason` names the step, `detail` what it said."""


@dataclass(frozen=True)
class Step:
    name: str  # what a person reads in the reason: "create venv", "pip install"...
    command: str
    expect: str | None = None  # the exact stdout the step must print (the version check)
    sudo: bool = True  # runs through sudo on a become host (and so reads the password, if any)


def shell(target: Target, script: str, args: Sequence[str], *, sudo: bool = True, password: bool = False,
          stage_arg: bool = False) -> str:
    """`sh -c SCRIPT sh ARGS` after creating the upload dir, through sudo when the host says become.

    `stage_arg` passes the upload dir (expanded by the login shell) as the first argument.
    """
    quoted = ['"$S"'] if stage_arg else []
    quoted += [shlex.quote(a) for a in args]
    run = f"sh -c {shlex.quote(script)} sh {' '.join(quoted)}".rstrip()
    if sudo and target.become:
        mode = "-S -p ''" if password else "-n"
        who = f"-u {shlex.quote(target.become_user)} " if target.become_user else ""
        run = f"sudo {mode} {who}-- {run}"
    return f'S="$HOME"/{STAGE}; mkdir -p "$S" && {run}'


def probe_command(target: Target, python: str, password: bool = False) -> str:
    """Runs the probe with the host's interpreter; the venv goes as given (the installer expands `~`)."""
    return shell(target, _PROBE, [python, PROBE, target.venv], password=password, stage_arg=True)


def check_wheel_name(name: str) -> str:
    if not _WHEEL_NAME.match(name):
        raise ValueError(f"refusing a wheel name with odd characters: {name!r}")
    return name


def install_steps(target: Target, plan: Plan, bundle: Bundle, python: str, *, parts: Sequence[tuple[str, str]],
                  unit_file: str | None, password: bool = False) -> list[Step]:
    """The commands of one install, in order.

    `parts` are the (temporary, final) names of the uploads; `unit_file` the uploaded unit's name.
    """
    steps: list[Step] = []
    if parts:
        flat = [n for pair in parts for n in pair]
        steps.append(Step("upload", shell(target, _FINISH_UPLOADS, flat, sudo=False, stage_arg=True), sudo=False))
    if plan.action == Action.INSTALL:
        versions = os.path.dirname(plan.version_dir)
        wheels = [_staged(w) for w in bundle.agent_wheels]
        steps += [
            Step("create venv", shell(target, _CREATE, [python, versions, plan.version_dir], password=password)),
            Step("pip install", shell(target, _INSTALL, [plan.version_dir, _staged(bundle.installer), *wheels],
                                      password=password, stage_arg=True)),
            Step("check", shell(target, _CHECK, [plan.version_dir, CHECK_MARK], password=password),
                 expect=f"imageserving {plan.version}"),
            Step("switch", shell(target, _SWITCH, [python, _SWITCH_PY, plan.version_dir, plan.venv],
                                 password=password)),
        ]
    if unit_file is not None:
        steps.append(Step("systemd", shell(target, _SYSTEMD, [unit_file, UNIT_PATH], password=password,
                                           stage_arg=True)))
    if plan.prune:
        steps.append(Step("prune", shell(target, _REMOVE, list(plan.prune), password=password)))
    return steps


def cleanup_command(target: Target, plan: Plan, password: bool = False) -> str:
    return shell(target, _REMOVE, [plan.version_dir], password=password)


def _staged(wheel: Wheel) -> str:
    """A wheel's path in the upload directory (plan.staged_path), its name checked."""
    return staged_path(check_wheel_name(wheel.name), wheel.sha256)


def upload(session: Session, bundle: Bundle, names: Sequence[str], deadline: float, *, python: str,
           unit: tuple[str, str] | None = None) -> tuple[list[tuple[str, str]], Sent | None]:
    """Sends the named wheels to the upload dir under temporary names, and `unit` (name, text) as is.

    Returns the (temporary, final) names of the wheels and how they were sent (None: nothing to
    send). SFTP first, else piped with a sha256 check on the host (transfer.py).
    """
    by_name = {w.name: w for w in bundle.wheels}
    token = secrets.token_hex(4)
    wheels = [by_name[check_wheel_name(name)] for name in names]
    parts = [(f"{w.name}.part-{token}", staged_path(w.name, w.sha256)) for w in wheels]
    files = [Outgoing(w.path, f"{STAGE}/{part}", w.path.stat().st_size, w.sha256)
             for w, (part, _) in zip(wheels, parts, strict=True)]
    with tempfile.TemporaryDirectory(prefix="imageserving-fleet-") as scratch:
        if unit is not None:
            name, text = unit
            local = Path(scratch, "imageserving.service")
            local.write_text(text)
            files.insert(0, Outgoing.of(local, f"{STAGE}/{name}"))
        sent = send(session, files, deadline, python=python) if files else None
    return parts, sent


def run_step(session: Session, step: Step, deadline: float, stdin: bytes | None) -> CommandResult:
    """Runs one step; raises StepFailed with the step's name and the last line it wrote to stderr."""
    out = session.run(step.command, stdin=stdin if step.sudo else None, timeout=_remaining(deadline),
                      max_output=_STEP_OUTPUT)
    if out.exit_code != 0:
        raise StepFailed(session.host, step.name, why(out))
    if step.expect is not None and (got := after_mark(out.stdout, CHECK_MARK)) != step.expect:
        got = got[:80]
        raise StepFailed(session.host, step.name, f"expected {step.expect!r}, the new agent printed {got!r}")
    return out


def after_mark(stdout: bytes, mark: str) -> str:
    """What a command printed after its marker line, stripped: a login shell's noise before it is not
    the answer. The whole output when there is no marker (a shell that printed nothing of ours)."""
    text = stdout.decode(errors="replace")
    lines = text.splitlines()
    if mark in lines:
        rest = lines[len(lines) - 1 - lines[::-1].index(mark) + 1:]
        return "\n".join(rest).strip()
    return text.strip()


def why(out: CommandResult) -> str:
    lines = [ln.strip() for ln in out.stderr.decode(errors="replace").splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("ERROR:")]  # pip's own reason, before its hints
    text = (errors or lines or [""])[-1][:300]
    return f"exit {out.exit_code}" + (f": {text}" if text else "")


def _remaining(deadline: float) -> float:
    return max(0.01, deadline - time.monotonic())
