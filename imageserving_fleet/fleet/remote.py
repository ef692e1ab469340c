"""Build the shell command line that runs the agent on a host. Pure; every value is quoted.

Nothing from the inventory or the command line reaches a remote shell unquoted: paths go through
shlex.quote (a leading `~/` becomes "$HOME"/...), component ids are checked against a strict
pattern first, and a become password travels on stdin, never in argv.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Sequence
from dataclasses import replace

from ..errors import UsageError
from ..schema import COMPONENT_ID_RE
from .target import Target

ID_RE = COMPONENT_ID_RE
AGENT = "imageserving"
AGENT_MISSING_EXIT = 127  # what sh says when the command is not found
# Who asked for a change, for the supervisor's log on the host (`alice@controller`): the agent's
# control client sends it, the supervisor writes it beside the request.
REQUESTED_BY_ENV = "IMAGESERVING_REQUESTED_BY"
_NOT_NAME = re.compile(r"[^\w.@+-]+")


def check_id(cid: str) -> str:
    """Takes a component id from the command line; returns it lower-cased or raises UsageError."""
    value = cid.lower()
    if not ID_RE.match(value):
        raise UsageError(f"invalid component id {cid!r}: expected ps, is, svg or another id of letters, "
                         "digits, - and _")
    return value


def quote_path(path: str) -> str:
    """Quotes a path for sh, keeping `~` and `~/x` meaning the remote user's home."""
    if path == "~":
        return '"$HOME"'
    if path.startswith("~/"):
        return '"$HOME"/' + shlex.quote(path[2:])
    return shlex.quote(path)


def agent_args(target: Target, args: Sequence[str]) -> list[str]:
    """The agent's own arguments: the host's --home/--config, then the command."""
    out: list[str] = []
    if target.home:
        out += ["--home", target.home]
    if target.config:
        out += ["--config", target.config]
    return out + list(args)


def _quote_arg(arg: str) -> str:
    return quote_path(arg) if arg.startswith("~") else shlex.quote(arg)


def requested_by_prefix(requested_by: str | None) -> str:
    """`IMAGESERVING_REQUESTED_BY=alice@ctl; export IMAGESERVING_REQUESTED_BY; ` (a name reduced to
    letters, digits and `.@+-_`, so no login shell reads anything into it), or nothing."""
    name = _NOT_NAME.sub("_", requested_by or "")[:100]
    return f"{REQUESTED_BY_ENV}={name}; export {REQUESTED_BY_ENV}; " if name else ""


def agent_command(target: Target, args: Sequence[str], requested_by: str | None = None) -> str:
    """Takes a target and agent arguments; returns a POSIX sh command line that runs the agent.

    Without imageserving_command: the agent in imageserving_venv when it is there, else the one on
    PATH. Exit 127 from sh means no agent was found. `requested_by` (a change's asker) goes to the
    agent in its environment, inside any sudo.
    """
    quoted = " ".join(_quote_arg(a) for a in agent_args(target, args))
    if target.agent_command:
        run = f"exec {quote_path(target.agent_command)} {quoted}"
    else:
        venv_agent = quote_path(target.venv.rstrip("/") + "/bin/" + AGENT)
        run = f"a={venv_agent}; [ -x \"$a\" ] || a={AGENT}; exec \"$a\" {quoted}"
    run = requested_by_prefix(requested_by) + run
    if not target.become:
        return run
    return become(run, target.become_user, password=False)


def become(command: str, user: str | None, *, password: bool) -> str:
    """Wraps a command in sudo: `-n` (never prompt) or `-S` with the password read from stdin."""
    who = f"-u {shlex.quote(user)} " if user else ""
    mode = "-S -p ''" if password else "-n"
    return f"sudo {mode} {who}-- sh -c {shlex.quote(command)}"


def with_password(target: Target, args: Sequence[str], requested_by: str | None = None) -> str:
    """Like agent_command, but sudo reads a password from stdin (the caller sends it)."""
    inner = agent_command(replace(target, become=False), args, requested_by)
    return become(inner, target.become_user, password=True)
