"""One fleet run's settings, resolved once at the edge into a frozen RunContext handed down.

    resolve(options, environ, command, prompt=) -> RunContext

The options (options.py), the environment variables they fall back to, ansible.cfg and the
ANSIBLE_* variables (ansiblecfg.py, runwide.py: SPEC §3's precedence), the inventory (parsed
once, with group_vars/host_vars beside the current directory), the hosts --limit selects
(selected once), the cluster address, the SSH password (IMAGESERVING_SSH_PASS or one -k prompt)
and the become password (IMAGESERVING_BECOME_PASS or one -K prompt) are settled here, in this
order, and nowhere else: below this, nothing reads os.environ, ansible.cfg or an inventory file.
Every refusal is an InventoryError or AnsibleConfigError (exit 1) or a UsageError (exit 5),
before any host is contacted.

Where each setting came from is kept: `RunContext.sources` (option, environment, ansible,
default) for the run's, `RunContext.wide` with the file and line or variable, and each
`Target.sources` for a host's (what `hosts` shows). `notices` are for stderr.
"""

from __future__ import annotations

import dataclasses
import enum
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import UsageError
from .ansiblecfg import AnsibleSettings, load_ansible_config
from .audit import audit_path
from .cluster.address import ClusterAddress, parse_address
from .inventory import Host, Inventory, default_inventory, load_inventory, select
from .options import ENV_BECOME_PASS, ENV_SSH_PASS, Options, declared
from .persist.place import persist_seconds
from .runwide import DEFAULT_FORKS, CommandLine, RunWide, resolve_run
from .ssh.settings import Secret
from .target import FleetOptions, Target, make_target

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

    @property
    def through_holder(self) -> bool:
        """Asked through the user's connection holder when --persist allows (§9): not deploy (files from
        this machine), not the long-lived watch and exporter (they keep their own connections)."""
        return self not in (Command.DEPLOY, Command.WATCH, Command.EXPORTER, Command.HOSTS)


class Source(enum.StrEnum):
    """Where a setting's value came from."""

    OPTION = "option"
    ENVIRONMENT = "environment"
    ANSIBLE = "ansible"  # ansible.cfg or an ANSIBLE_* variable (RunContext.wide says which)
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
    persist: float = 0.0             # --persist: seconds connections are kept unused (§9); 0 = off
    sources: Mapping[str, Source] = field(default_factory=dict)  # setting -> where its value came from
    # the run-wide settings with their sources (inventory, forks, connect timeout, host key policy)
    wide: RunWide | None = None
    # every host's connection options: the command line's, IMAGESERVING_SSH_PASS, ANSIBLE_*, ansible.cfg
    resolved_ssh: FleetOptions | None = field(default=None, repr=False)
    inventory_paths: tuple[str, ...] = ()  # as named (none: the packaged localhost inventory)
    audit_log: Path | None = None          # a change's audit log (None: the command changes nothing)

    @property
    def ssh(self) -> FleetOptions:
        return self.resolved_ssh or self.options.ssh

    @property
    def forks(self) -> int:
        return self.wide.forks.value if self.wide is not None else DEFAULT_FORKS

    @property
    def notices(self) -> tuple[str, ...]:
        """What stderr must say before anything else: the packaged inventory in use, settings not honoured."""
        return self.wide.notices if self.wide is not None else ()


def _settle(options: Options, environ: Mapping[str, str], cwd: str) -> tuple[AnsibleSettings, RunWide, FleetOptions]:
    """ansible.cfg, the run-wide settings and every host's connection options (before any prompt)."""
    ansible = load_ansible_config(environ, cwd)
    wide = resolve_run(CommandLine(options.inventory, options.forks, options.connect_timeout, options.host_key_policy),
                       environ, ansible, cwd)
    if wide.forks.value < 1:
        raise UsageError(f"--forks must be at least 1, got {wide.forks.value}")
    ssh = dataclasses.replace(options.ssh, host_key_policy=wide.host_key_policy.value,
                              host_key_policy_source=wide.host_key_policy.source,
                              connect_timeout=wide.connect_timeout.value, ansible=ansible)
    if not options.ask_pass and environ.get(ENV_SSH_PASS):
        ssh = dataclasses.replace(ssh, password=Secret(environ[ENV_SSH_PASS]), password_source=f"env {ENV_SSH_PASS}")
    return ansible, wide, ssh


def _select(options: Options, wide: RunWide, ssh: FleetOptions, cwd: str
            ) -> tuple[list[str], Inventory, tuple[Host, ...], tuple[Target, ...]]:
    """The inventory read once and the hosts --limit selects in it, as connection targets."""
    paths = list(wide.inventories.value)
    inventory = load_inventory(paths, cwd) if paths else default_inventory()
    hosts = tuple(select(inventory, options.limit) if options.limit else inventory.hosts)
    return paths, inventory, hosts, tuple(make_target(h.name, h.vars, ssh, h.origins) for h in hosts)


def select_targets(options: Options, environ: Mapping[str, str], cwd: str | None = None) -> tuple[Target, ...]:
    """The hosts as resolve() selects them, read again (the exporter's SIGHUP)."""
    cwd = os.getcwd() if cwd is None else cwd
    _, wide, ssh = _settle(options, environ, cwd)
    return _select(options, wide, ssh, cwd)[3]


def resolve(options: Options, environ: Mapping[str, str], command: Command,
            prompt: Callable[[str], str] | None = None, cwd: str | None = None) -> RunContext:
    """Takes the parsed options, the environment, the command (and the current directory, where
    ansible.cfg and the playbook's group_vars are looked for); returns its RunContext.

    `prompt` asks for the passwords when -k/-K (or ansible.cfg's ask_pass/become_ask_pass) say so
    (default getpass); each is asked at most once, and only when the command contacts hosts (and,
    for -K, a selected host becomes).
    """
    cwd = os.getcwd() if cwd is None else cwd
    ansible, wide, ssh = _settle(options, environ, cwd)
    asks_password = options.ask_pass or bool(ansible.ask_pass and ansible.ask_pass.value)
    paths, inventory, hosts, targets = _select(options, wide, ssh, cwd)
    timeout = command.default_timeout
    if options.timeout is not None:
        if not 0 < options.timeout <= MAX_TIMEOUT:  # nan too
            raise UsageError(f"--timeout must be a number of seconds above 0, got {options.timeout!r}")
        timeout = options.timeout
    audit_text, _ = setting(options, environ, "audit_log")
    context = RunContext(command, options, inventory, hosts, targets, timeout,
                         sources={"inventory": _source(wide.inventories.source)}, wide=wide, resolved_ssh=ssh,
                         inventory_paths=tuple(paths),
                         audit_log=audit_path(str(audit_text) if audit_text else None, {}) if command.changes else None)
    if not command.contacts_hosts:
        return context
    _, persist_source = setting(options, environ, "persist")
    persist = persist_seconds(options.persist, environ)  # the option, else IMAGESERVING_PERSIST, else 60
    cluster_text, cluster_source = setting(options, environ, "cluster")
    cluster = parse_address(str(cluster_text)) if cluster_text else None
    becomes = any(t.become for t in targets)
    ask_become = options.ask_become_pass or bool(ansible.become_ask_pass and ansible.become_ask_pass.value)
    if cluster is not None:
        if not command.through_cluster:
            raise UsageError(f"{command.value} does not run through --cluster (it sends files from this machine); "
                             "run it without --cluster")
        if becomes and (ask_become or environ.get(ENV_BECOME_PASS)) and not cluster.encrypted:
            raise UsageError(f"a become password is sent only to a tls:// cluster, and --cluster is {cluster}: "
                             "use tls:// (README: the cluster section), or drop -K/IMAGESERVING_BECOME_PASS")
        if (ssh.password is not None or asks_password or any(t.password is not None for t in targets)) \
                and not cluster.encrypted:
            raise UsageError(f"an SSH password (-k, IMAGESERVING_SSH_PASS or ansible_password) is sent only to a "
                             f"tls:// cluster, and --cluster is {cluster}: use tls://, or keys")
    if asks_password and ssh.password is None:  # -k: asked once, after every refusal that needs no password
        if prompt is None:
            import getpass

            prompt = getpass.getpass
        source = "command line -k" if options.ask_pass else f"prompt ({ansible.ask_pass.source})"  # type: ignore[union-attr]
        ssh = dataclasses.replace(ssh, password=Secret(prompt("SSH password: ")), password_source=source)
        targets = tuple(make_target(h.name, h.vars, ssh, h.origins) for h in hosts)
    password = None
    if becomes:
        password = environ.get(ENV_BECOME_PASS) or None
        if password is None and ask_become:
            if prompt is None:
                import getpass

                prompt = getpass.getpass
            password = prompt("BECOME password: ")
    return dataclasses.replace(context, targets=targets, resolved_ssh=ssh, cluster=cluster, become_password=password,
                               persist=persist, sources={**context.sources, "cluster": cluster_source,
                                                         "persist": persist_source})


def _source(text: str) -> Source:
    """A Sourced's wording (runwide.py) as a Source."""
    if text.startswith("command line"):
        return Source.OPTION
    if text.startswith("env IMAGESERVING_"):
        return Source.ENVIRONMENT
    return Source.DEFAULT if text == "default" else Source.ANSIBLE
