"""One fleet run's settings, resolved once at the edge into a frozen RunContext handed down.

    resolve(options, environ, command, prompt=) -> RunContext

The options (options.py), the environment variables they fall back to, the inventory (parsed
once), the hosts --limit selects (selected once), the cluster address and the become password
(from IMAGESERVING_BECOME_PASS or one -K prompt) are settled here, in this order, and nowhere
else: below this, nothing reads os.environ or an inventory file. Every refusal is an
InventoryError (exit 1) or a UsageError (exit 5), before any host is contacted.

Where each setting came from is kept (`RunContext.sources`: option, environment, default);
a further layer (an ansible.cfg) goes into setting() and is recorded the same way.
"""

from __future__ import annotations

import dataclasses
import enum
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import UsageError
from .audit import audit_path
from .cluster.address import ClusterAddress, parse_address
from .inventory import Host, Inventory, default_inventory, load_inventory, select
from .options import ENV_BECOME_PASS, Options, declared
from .target import FleetOptions, Target, make_target

DEFAULT_INVENTORY = Path("inventory/hosts.yml")
STATUS_TIMEOUT = 30.0       # status, ping: a few hundred ms is normal; 30 s is a dead host
ACTION_TIMEOUT = 300.0      # start, stop, restart: stop_timeout (60 s) twice, and readiness
MAX_TIMEOUT = 10**7         # inf overflowed the deadline arithmetic


class Command(enum.Enum):
    """A fleet command, as the run context needs to know it; the value is its name in --json."""

    STATUS = "status"
    WATCH = "watch"
    EXPORTER = "exporter"
    PING = "ping"
    REPORT = "report"
    START = "start"
    STOP = "stop"
    RESTART = "restart"
    RELOAD = "reload"
    CONFIG_PUSH = "config push"
    LOGS = "logs"
    DEPLOY = "deploy"
    HOSTS = "hosts"

    @property
    def contacts_hosts(self) -> bool:
        return self is not Command.HOSTS

    @property
    def default_timeout(self) -> float:
        quick = (Command.STATUS, Command.WATCH, Command.EXPORTER, Command.PING, Command.REPORT)
        return STATUS_TIMEOUT if self in quick else ACTION_TIMEOUT

    @property
    def keep_sessions(self) -> bool:
        """False for one job per host: a host's connection ends with its job (--forks connections, not N)."""
        return self not in (Command.STATUS, Command.PING, Command.START, Command.STOP, Command.REPORT)

    @property
    def changes(self) -> bool:
        """It changes something on the hosts: each run is recorded in the audit log (audit.py)."""
        return self in (Command.START, Command.STOP, Command.RESTART, Command.RELOAD, Command.CONFIG_PUSH,
                        Command.DEPLOY)

    @property
    def through_cluster(self) -> bool:
        return self is not Command.DEPLOY  # the wheels are on this machine: deploy runs from here


class Source(enum.StrEnum):
    """Where a setting's value came from."""

    OPTION = "option"
    ENVIRONMENT = "environment"
    DEFAULT = "default"


def setting(options: Options, environ: Mapping[str, str], name: str) -> tuple[object, Source]:
    """A global option's value and its source: given on the line, else its variable (Opt.env), else
    its default. The variable's text is returned as it is (the caller parses it)."""
    value = getattr(options, name)
    for fld, _, decl in declared():
        if fld.name != name:
            continue
        if value != fld.default:
            return value, Source.OPTION
        if decl.env and environ.get(decl.env):
            return environ[decl.env], Source.ENVIRONMENT
        return value, Source.DEFAULT
    raise KeyError(name)


@dataclass(frozen=True)
class RunContext:
    """Everything one fleet command needs to know before it contacts a host."""

    command: Command
    options: Options
    inventory: Inventory
    hosts: tuple[Host, ...]          # what --limit selects, in inventory order
    targets: tuple[Target, ...]      # the same hosts as connection targets
    timeout: float                   # each host's whole deadline
    cluster: ClusterAddress | None = None
    become_password: str | None = field(default=None, repr=False)
    sources: Mapping[str, Source] = field(default_factory=dict)  # setting -> where its value came from
    inventory_paths: tuple[str, ...] = ()  # as named (none: the packaged localhost inventory)
    audit_log: Path | None = None          # a change's audit log (None: the command changes nothing)

    @property
    def ssh(self) -> FleetOptions:
        return self.options.ssh

    @property
    def forks(self) -> int:
        return self.options.forks


def inventory_paths(options: Options, environ: Mapping[str, str]) -> tuple[list[str], Source]:
    """-i, else IMAGESERVING_INVENTORY (os.pathsep-separated), else ./inventory/hosts.yml if there."""
    value, source = setting(options, environ, "inventory")
    if source is Source.ENVIRONMENT:
        return [p for p in str(value).split(os.pathsep) if p], source
    if source is Source.OPTION:
        return list(options.inventory), source
    return ([str(DEFAULT_INVENTORY)] if DEFAULT_INVENTORY.exists() else []), source


def resolve(options: Options, environ: Mapping[str, str], command: Command,
            prompt: Callable[[str], str] | None = None) -> RunContext:
    """Takes the parsed options, the environment and the command; returns its RunContext.

    `prompt` asks for the become password when -K is given (default getpass); it is asked at most
    once, and only when a selected host becomes and the command contacts hosts.
    """
    paths, inventory_source = inventory_paths(options, environ)
    inventory = load_inventory(paths) if paths else default_inventory()
    hosts = tuple(select(inventory, options.limit) if options.limit else inventory.hosts)
    targets = tuple(make_target(h.name, h.vars, options.ssh) for h in hosts)
    if options.forks < 1:
        raise UsageError(f"--forks must be at least 1, got {options.forks}")
    timeout = command.default_timeout
    if options.timeout is not None:
        if not 0 < options.timeout <= MAX_TIMEOUT:  # nan too
            raise UsageError(f"--timeout must be a number of seconds above 0, got {options.timeout!r}")
        timeout = options.timeout
    audit_text, _ = setting(options, environ, "audit_log")
    context = RunContext(command, options, inventory, hosts, targets, timeout, sources={"inventory": inventory_source},
                         inventory_paths=tuple(paths),
                         audit_log=audit_path(str(audit_text) if audit_text else None, {}) if command.changes else None)
    if not command.contacts_hosts:
        return context
    cluster_text, cluster_source = setting(options, environ, "cluster")
    cluster = parse_address(str(cluster_text)) if cluster_text else None
    becomes = any(t.become for t in targets)
    if cluster is not None:
        if not command.through_cluster:
            raise UsageError(f"{command.value} does not run through --cluster (it sends files from this machine); "
                             "run it without --cluster")
        if becomes and (options.ask_become_pass or environ.get(ENV_BECOME_PASS)) and not cluster.encrypted:
            raise UsageError(f"a become password is sent only to a tls:// cluster, and --cluster is {cluster}: "
                             "use tls:// (README: the cluster section), or drop -K/IMAGESERVING_BECOME_PASS")
    password = None
    if becomes:
        password = environ.get(ENV_BECOME_PASS) or None
        if password is None and options.ask_become_pass:
            if prompt is None:
                import getpass

                prompt = getpass.getpass
            password = prompt("BECOME password: ")
    return dataclasses.replace(context, cluster=cluster, become_password=password,
                               sources={**context.sources, "cluster": cluster_source})
