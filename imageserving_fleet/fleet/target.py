"""How to reach one host: its connection settings, merged from inventory variables and CLI options.

Pure: takes data (the host's inventory variables, the CLI options) and returns a frozen `Target`;
no file, socket or environment is touched, so the `hosts` command and the tests can use it freely.
What ~/.ssh/config adds on top (HostName, IdentityFile, ProxyJump...) is resolved later, once per
run, by the SSH layer (`fleet.ssh`), because reading that file is I/O: `Target.destination` is
all of a Target that layer sees.

Precedence, as with Ansible driving OpenSSH (SPEC §3): the command line (--user, --private-key,
-b) and IMAGESERVING_SSH_PASS, then the host's `ansible_*` variables, then options inside its ssh
arguments (ansible_ssh_args/_common_args/_extra_args, else ansible.cfg's), then ANSIBLE_* and
ansible.cfg (remote_user, remote_port, private_key_file, become...), then ssh_config, then defaults.
Each setting's source is kept in `Target.sources` for `hosts`.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from imageserving_fleet.errors import AnsibleConfigError, InventoryVariableError, UsageError
from imageserving_fleet.fleet.ansiblecfg import AnsibleSettings
from imageserving_fleet.fleet.ssh.settings import Destination, Secret
from imageserving_fleet.fleet.sshargs import port as _port
from imageserving_fleet.fleet.sshargs import ssh_options

HOST_KEY_POLICIES = ("reject", "accept-new", "warn")
PASSWORD_VARS = ("ansible_password", "ansible_ssh_pass", "ansible_ssh_password")
DEFAULT_VENV = "~/.imageserving/venv"

# Ansible's names for its SSH connection plugins all mean "ssh" to us; "smart" is its old default.
_CONNECTIONS = {
    "ssh": "ssh", "paramiko": "ssh", "paramiko_ssh": "ssh", "smart": "ssh", "local": "local",
}
_RESOURCE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}$")
_TRUE = {"true", "yes", "on", "1", "y", "t"}
_FALSE = {"false", "no", "off", "0", "n", "f", ""}


@dataclass(frozen=True)
class FleetOptions:
    """The CLI-level connection settings shared by every host of a run; all optional."""

    user: str | None = None
    private_key: str | None = None
    ssh_config: str | None = None  # None: ~/.ssh/config when it exists (and /etc/ssh/ssh_config)
    host_key_policy: str = "reject"  # reject | accept-new | warn
    # "command line --host-key-policy" holds for every host; any other (ansible.cfg, default) gives way
    # to a host's own `-o StrictHostKeyChecking` in its ssh arguments
    host_key_policy_source: str = "command line --host-key-policy"
    connect_timeout: float = 10.0
    become: bool = False
    # -k/--ask-pass or IMAGESERVING_SSH_PASS: beats the inventory's ansible_password
    password: Secret | None = field(default=None, repr=False)
    password_source: str = "command line -k"
    user_source: str = "command line -u"
    # ANSIBLE_* and ansible.cfg: beneath the inventory's variables (remote_user, become...)
    ansible: AnsibleSettings = field(default_factory=AnsibleSettings)

    def __post_init__(self) -> None:
        if self.host_key_policy not in HOST_KEY_POLICIES:
            raise UsageError(f"--host-key-policy must be one of {', '.join(HOST_KEY_POLICIES)}, "
                             f"got {self.host_key_policy!r}")
        if not self.connect_timeout > 0:
            raise UsageError(f"--connect-timeout must be more than 0 seconds, got {self.connect_timeout!r}")


@dataclass(frozen=True)
class Target:
    """One host as the fleet will reach it: where, as whom, through what, and where the agent is."""

    name: str  # the inventory name, used in every report and error
    hostname: str  # what to connect to (ansible_host); ssh_config's HostName may still map it
    port: int
    user: str | None  # None: ssh_config's User, else the local user name
    key_file: str | None  # an explicit private key; None: IdentityFile, ssh-agent, default keys
    connection: str  # "ssh" | "local"
    common_args: tuple[str, ...]  # ansible_ssh_common_args (+ ansible_ssh_extra_args), split
    become: bool
    become_user: str | None
    agent_command: str | None  # imageserving_command
    venv: str  # imageserving_venv
    home: str | None  # imageserving_home
    config: str | None  # imageserving_config
    # False when the port is only the default 22, so ssh_config's Port may still apply.
    port_explicit: bool = True
    worker: str | None = None  # imageserving_worker: the cluster resource its work must run on (§8)
    # common_args parsed once (ssh_options()): ssh_config keyword -> values, in the order given
    ssh_args: tuple[tuple[str, tuple[str, ...]], ...] = ()
    password: Secret | None = field(default=None, repr=False)  # tried after the keys
    # setting (user, address, port, key, jump, become, become_user, password) -> where it came from;
    # what is not here comes from ssh_config or a default (the `hosts` command says which)
    sources: tuple[tuple[str, str], ...] = field(default=(), compare=False)

    @property
    def destination(self) -> Destination:
        """What the SSH layer needs of this host to reach it."""
        return Destination(name=self.name, hostname=self.hostname, port=self.port,
                           port_explicit=self.port_explicit, user=self.user, key_file=self.key_file,
                           options=self.ssh_args, local=self.connection == "local", password=self.password)

    @property
    def address(self) -> str:
        """`user@host:port` as a person would write it (user and port only when known/non-default)."""
        user = f"{self.user}@" if self.user else ""
        host = f"[{self.hostname}]" if ":" in self.hostname else self.hostname
        return f"{user}{host}" + (f":{self.port}" if self.port != 22 else "")


def make_target(name: str, vars: Mapping[str, Any], options: FleetOptions,
                origins: Mapping[str, str] | None = None) -> Target:
    """Takes a host's inventory name and merged variables plus the run's options (command line,
    IMAGESERVING_*, and beneath the inventory: ANSIBLE_* and ansible.cfg); returns its Target, with
    where each connection setting came from (`Target.sources`). `origins`: variable -> the group or
    host (and file) that set it, for those sources.

    Raises InventoryVariableError naming the host and the variable when a value cannot be used,
    AnsibleConfigError when a setting from ansible.cfg or ANSIBLE_* cannot be.
    """
    var = _VarReader(name, vars)
    cfg = options.ansible
    src: dict[str, str] = {}

    def inv(key: str) -> str:
        where = (origins or {}).get(key)
        return f"inventory {key}" + (f" ({where})" if where else "")

    connection_name = var.text("ansible_connection") or "ssh"
    connection = _CONNECTIONS.get(connection_name.removeprefix("ansible.builtin."))
    if connection is None:
        raise InventoryVariableError(name, "ansible_connection", f"{connection_name!r} is not supported "
                                     f"(use ssh or local)")
    # ssh's command line as ansible-core builds it: ssh_args, then ssh_common_args, then ssh_extra_args,
    # each from the host's variable, else ANSIBLE_*, else ansible.cfg; OpenSSH takes the first value given.
    parts: list[tuple[tuple[str, ...], str, str]] = []  # (args, source, variable for errors)
    for key, configured in (("ansible_ssh_args", cfg.ssh_args), ("ansible_ssh_common_args", cfg.ssh_common_args),
                            ("ansible_ssh_extra_args", cfg.ssh_extra_args)):
        given = var.args(key)
        if key in vars:
            parts.append((given, inv(key), key))
        elif configured is not None:
            parts.append((configured.value, configured.source, key))
    common_args: tuple[str, ...] = ()
    from_args: dict[str, list[str]] = {}
    for args, source, key in parts:
        try:
            options_here = ssh_options(args)
        except ValueError as exc:
            if source.startswith("inventory"):
                raise InventoryVariableError(name, key, str(exc)) from None
            raise AnsibleConfigError(f"{source}: {exc}") from None
        common_args += args
        for option, values in options_here.items():
            if option not in from_args:
                src[f"ssh {option}"] = source
            from_args.setdefault(option, []).extend(values)

    # ansible_host_key_checking (ansible-core's per-host form of host_key_checking): false is what
    # `-o StrictHostKeyChecking=no` says (the policy `warn`), true `yes` (`reject`); a host's own
    # ssh arguments saying it explicitly win, and --host-key-policy on the command line beats both.
    if "ansible_host_key_checking" in vars and "stricthostkeychecking" not in from_args:
        checking = var.flag("ansible_host_key_checking", default=True)
        from_args["stricthostkeychecking"] = ["yes" if checking else "no"]
        src["ssh stricthostkeychecking"] = inv("ansible_host_key_checking")

    # ansible-core lists each option's variables oldest name last and the last one set wins,
    # so the legacy ansible_ssh_host/_port/_user beat ansible_host/_port/_user (plugins/connection/ssh.py).
    hostname = _last(var, ("ansible_host", "ansible_ssh_host"), var.text, src, "address", inv)
    if hostname is None:
        hostname, src["address"] = name, "inventory name"
    port = _last(var, ("ansible_port", "ansible_ssh_port"), var.port, src, "port", inv)
    if port is None and "port" in from_args:
        port, src["port"] = _port(from_args["port"][0]), src["ssh port"]
    if port is None and cfg.remote_port is not None:
        port, src["port"] = cfg.remote_port.value, cfg.remote_port.source
    port_explicit = port is not None
    user = options.user
    if user is not None:
        src["user"] = options.user_source
    else:
        user = _last(var, ("ansible_user", "ansible_ssh_user"), var.text, src, "user", inv)
    if user is None and "user" in from_args:
        user, src["user"] = from_args["user"][0], src["ssh user"]
    if user is None and cfg.remote_user is not None and cfg.remote_user.value:
        user, src["user"] = cfg.remote_user.value, cfg.remote_user.source
    key_file = options.private_key
    if key_file is not None:
        src["key"] = "command line --private-key"
    else:
        key_file = _last(var, ("ansible_private_key_file", "ansible_ssh_private_key_file"), var.text, src, "key", inv)
    if key_file is None and cfg.private_key_file is not None and cfg.private_key_file.value:
        key_file, src["key"] = cfg.private_key_file.value, cfg.private_key_file.source
    if "proxyjump" in from_args:
        src["jump"] = src["ssh proxyjump"]
    become = _become(var, options, src, inv)
    become_user = var.text("ansible_become_user")
    if become_user is not None:
        src["become_user"] = inv("ansible_become_user")
    elif cfg.become_user is not None and cfg.become_user.value:
        become_user, src["become_user"] = cfg.become_user.value, cfg.become_user.source
    method = var.text("ansible_become_method")
    method_source = inv("ansible_become_method")
    if method is None and cfg.become_method is not None:
        method, method_source = cfg.become_method.value, cfg.become_method.source
    if become and method not in (None, "sudo", "ansible.builtin.sudo"):
        why = f"become_method {method!r} is not supported (only sudo)"
        if method_source.startswith("inventory"):
            raise InventoryVariableError(name, "ansible_become_method", why)
        raise AnsibleConfigError(f"{method_source}: {why}")
    password = options.password
    if password is not None:
        src["password"] = options.password_source
    else:
        password = _password(var, src, inv)
    return Target(
        name=name,
        hostname=hostname,
        port=port or 22,
        user=user,
        key_file=key_file,
        connection=connection,
        common_args=common_args,
        become=become,
        become_user=become_user,
        agent_command=var.text("imageserving_command"),
        venv=var.text("imageserving_venv") or DEFAULT_VENV,
        home=var.text("imageserving_home"),
        config=var.text("imageserving_config"),
        port_explicit=port_explicit,
        worker=var.resource("imageserving_worker"),
        ssh_args=tuple((key, tuple(values)) for key, values in from_args.items()),
        password=password,
        sources=tuple(sorted((k, v) for k, v in src.items() if not k.startswith("ssh ")
                             or k == "ssh stricthostkeychecking")),
    )


def _last(var: _VarReader, keys: tuple[str, ...], read: Callable[[str], Any], src: dict[str, str], setting: str,
          inv: Callable[[str], str]) -> Any:
    """Of an option's variables, the last one set wins (ansible-core's `_loop_entries`); records its source."""
    found = None
    for key in keys:
        value = read(key)
        if value is not None:
            found, src[setting] = value, inv(key)
    return found


def _become(var: _VarReader, options: FleetOptions, src: dict[str, str], inv: Callable[[str], str]) -> bool:
    """-b, else ANSIBLE_BECOME/ansible.cfg, else False; an ansible_become variable beats them (as in Ansible)."""
    default, source = False, "default"
    if options.become:
        default, source = True, "command line -b"
    elif options.ansible.become is not None:
        default, source = options.ansible.become.value, options.ansible.become.source
    if "ansible_become" in var.vars and var.vars["ansible_become"] is not None:
        src["become"] = inv("ansible_become")
        return var.flag("ansible_become", default=default)
    src["become"] = source
    return default


def _password(var: _VarReader, src: dict[str, str], inv: Callable[[str], str]) -> Secret | None:
    """ansible_password, ansible_ssh_pass, ansible_ssh_password: the last one set wins (ansible-core)."""
    found = None
    for key in PASSWORD_VARS:
        value = var.vars.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise var._fail(key, "expected a string")  # never the value: it is a secret
        if "{{" in str(value):
            raise var._fail(key, "templated values (a vault lookup?) are not supported here")
        found = str(value)  # not stripped: spaces may be part of a password
        src["password"] = inv(key)
    return Secret(found) if found is not None else None


class _VarReader:
    """Reads typed values out of one host's variables, raising InventoryVariableError that names both."""

    def __init__(self, host: str, vars: Mapping[str, Any]) -> None:
        self.host, self.vars = host, vars

    def _fail(self, key: str, why: str) -> InventoryVariableError:
        return InventoryVariableError(self.host, key, why)

    def text(self, key: str) -> str | None:
        value = self.vars.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise self._fail(key, f"expected a string, got {value!r}")
        text = str(value).strip()
        if "{{" in text or "{%" in text:
            # Ansible would render this with Jinja; passing it on verbatim would connect to nonsense.
            raise self._fail(key, f"templated values are not supported here: {text!r}")
        return text or None

    def resource(self, key: str) -> str | None:
        value = self.text(key)
        if value is not None and not _RESOURCE.match(value):
            raise self._fail(key, f"expected a dask worker resource name (letters, digits, _ . -), got {value!r}")
        return value

    def port(self, key: str) -> int | None:
        value = self.vars.get(key)
        if value is None:
            return None
        try:
            return _port(value)
        except ValueError as exc:
            raise self._fail(key, str(exc)) from None

    def flag(self, key: str, *, default: bool) -> bool:
        value = self.vars.get(key)
        if value is None:
            return default
        if isinstance(value, bool):
            return value
        word = str(value).strip().lower()
        if word in _TRUE:
            return True
        if word in _FALSE:
            return False
        raise self._fail(key, f"expected a boolean (true/false, yes/no), got {value!r}")

    def args(self, key: str) -> tuple[str, ...]:
        value = self.vars.get(key)
        if value is None:
            return ()
        if isinstance(value, list | tuple) and all(isinstance(item, str) for item in value):
            return tuple(value)
        if not isinstance(value, str):
            raise self._fail(key, f"expected a string of ssh options, got {value!r}")
        try:
            return tuple(shlex.split(value))
        except ValueError as exc:
            raise self._fail(key, f"cannot split {value!r}: {exc}") from None
