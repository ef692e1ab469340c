"""The fleet's global options, each declared once: its flags, help, and the variable it falls back to.

`Options` is the one declaration. The CLI builds its Typer options from it (cli/globals.py), the
entry point lets each of them stand anywhere on the line (main.py hoists `hoisted()`), and the run
context (context.py) resolves each against its environment variable (`Opt.env`). Adding a global
option is one field here. A command's own options are declared the same way (`Opt` fields on a
frozen dataclass, e.g. rolling.RollingOptions) and reach the CLI through `declared()`. Pure:
nothing is read or checked beyond the values themselves.
"""

from __future__ import annotations

import dataclasses
import functools
import typing
from dataclasses import dataclass
from typing import Annotated

from .runwide import DEFAULT_CONNECT_TIMEOUT, DEFAULT_FORKS
from .target import FleetOptions

__all__ = ["DEFAULT_FORKS", "ENV_BECOME_PASS", "ENV_CLUSTER", "ENV_INVENTORY", "ENV_SSH_PASS", "Options", "declared",
           "hoisted"]

ENV_INVENTORY = "IMAGESERVING_INVENTORY"
ENV_CLUSTER = "IMAGESERVING_CLUSTER"
ENV_AUDIT_LOG = "IMAGESERVING_AUDIT_LOG"
ENV_PERSIST = "IMAGESERVING_PERSIST"
ENV_BECOME_PASS = "IMAGESERVING_BECOME_PASS"  # read by the run context only, never an option (argv is public)
ENV_SSH_PASS = "IMAGESERVING_SSH_PASS"  # likewise: the SSH password, never on argv


@dataclass(frozen=True)
class Opt:
    """How one global option is written: its flags, help, metavar, and its environment variable."""

    flags: tuple[str, ...]
    help: str = ""
    metavar: str | None = None
    env: str | None = None    # used when the option is not given (the run context reads it)


def opt(*flags: str, help: str = "", metavar: str | None = None, env: str | None = None) -> Opt:
    return Opt(flags, help, metavar, env)


@dataclass(frozen=True)
class Options:
    """What the global options say, parsed but unresolved (no file read, no variable looked up)."""

    inventory: Annotated[tuple[str, ...], opt(
        "-i", "--inventory", metavar="PATH", env=ENV_INVENTORY,
        help="Ansible inventory (YAML, INI or a directory); repeatable. Env IMAGESERVING_INVENTORY. "
             "Default ./inventory/hosts.yml, else localhost only.")] = ()
    limit: Annotated[str | None, opt("-l", "--limit", metavar="PATTERN",
                                     help="Ansible host pattern, e.g. 'web*:&prod:!web03'.")] = None
    forks: Annotated[int | None, opt("-f", "--forks", help="Hosts worked on at once (default: ansible.cfg's forks, "
                                                          "else 50).")] = None
    timeout: Annotated[float | None, opt(
        "--timeout", metavar="S", help="Whole per-host deadline (default 30 for status/ping/report, "
                                       "300 for start/stop/restart).")] = None
    connect_timeout: Annotated[float | None, opt(
        "--connect-timeout", metavar="S", help="SSH connect timeout (default: ansible.cfg's timeout, else 10).")] = None
    as_json: Annotated[bool, opt("--json", help="One JSON document on stdout (schema 1).")] = False
    user: Annotated[str | None, opt("-u", "--user", help="Remote user for every host.")] = None
    private_key: Annotated[str | None, opt("--private-key", metavar="PATH")] = None
    ssh_config: Annotated[str | None, opt("--ssh-config", metavar="PATH", help="Default ~/.ssh/config.")] = None
    host_key_policy: Annotated[str | None, opt(
        "--host-key-policy", help="reject (default): unknown keys refused; accept-new: record them; warn (ansible.cfg "
                                  "host_key_checking = False). A changed key is always refused.")] = None
    become: Annotated[bool, opt("-b", "--become", help="Run the agent through sudo.")] = False
    ask_become_pass: Annotated[bool, opt(
        "-K", "--ask-become-pass", help="Prompt for the sudo password (or set IMAGESERVING_BECOME_PASS).")] = False
    ask_pass: Annotated[bool, opt(
        "-k", "--ask-pass", help="Prompt once for the SSH password (or set IMAGESERVING_SSH_PASS); tried after "
                                 "the keys.")] = False
    quiet: Annotated[bool, opt("-q", "--quiet", help="Print only what is wrong.")] = False
    verbose: Annotated[bool, opt(
        "-v", "--verbose", help="Debug lines on stderr: what a host's shell printed around the agent's "
                                "output, why a status was asked by exec instead of the socket, and what "
                                "--before/--after printed, by host.")] = False
    cluster: Annotated[str | None, opt(
        "--cluster", metavar="ADDRESS", env=ENV_CLUSTER,
        help="Run the hosts' work on a dask cluster: local:N (N worker processes here), tcp://HOST:PORT or "
             "tls://HOST:PORT (a running scheduler). Env IMAGESERVING_CLUSTER.")] = None
    audit_log: Annotated[str | None, opt(
        "--audit-log", metavar="PATH", env=ENV_AUDIT_LOG,
        help="Where changes are recorded, one JSON line per run (0600). Env IMAGESERVING_AUDIT_LOG; "
             "default ~/.imageserving-fleet/audit.jsonl.")] = None
    persist: Annotated[float | None, opt(
        "--persist", metavar="S", env=ENV_PERSIST,
        help="Keep this user's SSH connections S seconds after their last use, in a background connection holder "
             "that later commands ask through (default 60; 0: off, nothing outlives the command). Env "
             "IMAGESERVING_PERSIST. `persist stop` ends it.")] = None

    def __post_init__(self) -> None:
        self.ssh  # noqa: B018 - a bad --host-key-policy or --connect-timeout is refused (exit 5) at once

    @property
    def ssh(self) -> FleetOptions:
        """The connection options the command line gives every host (checked: UsageError); the run
        context adds what IMAGESERVING_*, ANSIBLE_* and ansible.cfg say (context.resolve)."""
        return FleetOptions(user=self.user, private_key=self.private_key, ssh_config=self.ssh_config,
                            host_key_policy=self.host_key_policy or "reject",
                            connect_timeout=DEFAULT_CONNECT_TIMEOUT if self.connect_timeout is None
                            else self.connect_timeout, become=self.become)


@functools.cache
def declared(options: type = Options) -> tuple[tuple[dataclasses.Field[object], object, Opt], ...]:
    """Every option a declaration (Options, rolling.RollingOptions) holds: (its field, its type
    without the declaration, its Opt), in order. Worked out once per declaration (typing's hints
    cost ms each time)."""
    hints = typing.get_type_hints(options, include_extras=True)
    out = []
    for field in dataclasses.fields(options):
        hint = hints[field.name]
        out.append((field, hint.__origin__, next(m for m in hint.__metadata__ if isinstance(m, Opt))))
    return tuple(out)


def hoisted() -> tuple[list[str], list[str]]:
    """The global options' flags that take a value, and those that do not (argv.hoist's two lists)."""
    with_value: list[str] = []
    flags: list[str] = []
    for _, kind, decl in declared():
        (flags if kind is bool else with_value).extend(decl.flags)
    return with_value, flags
