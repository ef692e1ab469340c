"""What the SSH layer is asked to reach (`Destination`) and what it will use (`SshSettings`).

    Destination      one host before ssh_config: name, address, user, key, parsed ssh options;
                     made from an inventory Target by `Target.destination` (this layer never
                     sees inventory types)
    resolve()        Destination + ssh_config + run options -> SshSettings; the one set of rules,
                     for target hosts and ProxyJump hops alike
    SshSettings      everything needed to open SSH to one host, all merged

Precedence, as OpenSSH's: the command line's options (here: inventory and CLI), then ssh_config
(first value obtained wins), then defaults. Pure but for the ssh_config lookup passed in.
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from imageserving_fleet.errors import SshConfigError

DEFAULT_KNOWN_HOSTS = ("~/.ssh/known_hosts", "~/.ssh/known_hosts2")
GLOBAL_KNOWN_HOSTS = ("/etc/ssh/ssh_known_hosts", "/etc/ssh/ssh_known_hosts2")

# The OpenSSH client options this layer honours, from ssh_config and from ssh arguments (`-o Key=Value`,
# `-p -l -i -J -F`): resolve() reads these and no others (target.unsupported_ssh_args names the rest).
SUPPORTED_SSH_OPTIONS = frozenset((
    "hostname", "port", "user", "identityfile", "identitiesonly", "proxyjump", "proxycommand", "connecttimeout",
    "userknownhostsfile", "globalknownhostsfile", "hostkeyalias", "hashknownhosts", "stricthostkeychecking", "-F",
))
# StrictHostKeyChecking in a host's ssh arguments (`-o StrictHostKeyChecking=no`, common in inventories
# and what ansible-core's host_key_checking = False sends) -> the host key policy it means here.
STRICT_TO_POLICY = {"yes": "reject", "ask": "reject", "accept-new": "accept-new", "no": "warn", "off": "warn"}

# (config path or None for the run's, host name) -> that host's ssh_config options, keys lower-cased
Lookup = Callable[[str | None, str], dict[str, Any]]


class Secret:
    """A password in memory and in transit: its repr and str never show it (logs, dask task reprs)."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __reduce__(self) -> tuple[type, tuple[str]]:
        return (Secret, (self._value,))


class ClientOptions(Protocol):
    """The run-wide settings a Connector reads (the fleet's FleetOptions has them)."""

    @property
    def private_key(self) -> str | None: ...
    @property
    def ssh_config(self) -> str | None: ...
    @property
    def host_key_policy(self) -> str: ...
    @property
    def host_key_policy_source(self) -> str: ...
    @property
    def connect_timeout(self) -> float: ...


@dataclass(frozen=True)
class Destination:
    """One host as the SSH layer is asked to reach it, before ssh_config is applied."""

    name: str  # for messages: the inventory name
    hostname: str  # what to connect to; ssh_config's HostName may still map it
    port: int = 22
    port_explicit: bool = True  # False: only the default 22, so ssh_config's Port may apply
    user: str | None = None  # None: ssh_config's User, else the local user
    key_file: str | None = None  # an explicit private key, tried first
    # OpenSSH client options, parsed: (ssh_config keyword lower-cased, or "-F") -> values in order
    options: tuple[tuple[str, tuple[str, ...]], ...] = ()
    local: bool = False  # run on the controller itself, no SSH
    # tried after the keys (password, then keyboard-interactive): -k, IMAGESERVING_SSH_PASS, ansible_password
    password: Secret | None = field(default=None, repr=False)

    def option_map(self) -> dict[str, list[str]]:
        return {key: list(values) for key, values in self.options}


class HasDestination(Protocol):
    """Anything that can say where it is (the fleet's Target): the SSH layer accepts it too."""

    @property
    def destination(self) -> Destination: ...


def destination_of(thing: Destination | HasDestination) -> Destination:
    return thing if isinstance(thing, Destination) else thing.destination


@dataclass(frozen=True)
class SshSettings:
    """Everything needed to open SSH to one host, after inventory, CLI and ssh_config are merged."""

    name: str  # inventory name, for messages
    hostname: str
    port: int
    user: str
    identity_files: tuple[str, ...]  # explicit keys, in the order to try; empty: agent + defaults
    known_hosts_files: tuple[str, ...]  # the first one is where accept-new records keys
    global_known_hosts_files: tuple[str, ...]
    host_key_alias: str | None = None
    hash_known_hosts: bool = False
    proxy_jump: str | None = None
    proxy_command: str | None = None
    connect_timeout: float = 10.0
    config_path: str | None = None  # the `-F` file the host named; its jump hosts read it too
    identities_only: bool = False  # IdentitiesOnly: no ssh-agent key but those of identity_files
    # from the host's ssh arguments' StrictHostKeyChecking; None: the run's --host-key-policy
    host_key_policy: str | None = None
    password: Secret | None = field(default=None, repr=False)

    @property
    def host_key_name(self) -> str:
        """The name known_hosts files use for this host: `host`, or `[host]:port` off port 22."""
        if self.host_key_alias:
            return self.host_key_alias
        return self.hostname if self.port == 22 else f"[{self.hostname}]:{self.port}"


def resolve(dest: Destination, lookup: Lookup, *, connect_timeout: float, local_user: str,
            config_path: str | None = None) -> SshSettings:
    """Takes a destination, the ssh_config lookup and the run's limits; returns its SshSettings.

    `config_path` is the `-F` file to read when the destination names none (a jump host reads
    the file of the host behind it). Raises SshConfigError naming the host when a value is unusable.
    """
    args = dest.option_map()
    config_path = args["-F"][0] if "-F" in args else config_path
    cfg = lookup(config_path, dest.hostname)

    def first(key: str) -> str | None:
        value = args[key][0] if key in args else cfg.get(key)
        return None if value is None or str(value).lower() == "none" else str(value)

    hostname = (first("hostname") or dest.hostname).replace("%h", dest.hostname)
    port = dest.port
    if not dest.port_explicit and cfg.get("port"):
        try:
            port = int(cfg["port"])
        except ValueError:
            raise SshConfigError(f"host {dest.name}: ssh_config Port {cfg['port']!r} is not a number") from None
    user = dest.user or cfg.get("user") or local_user
    identities = [dest.key_file] if dest.key_file else []
    identities += args.get("identityfile", []) + list(cfg.get("identityfile", []))
    # ProxyJump and ProxyCommand are one setting in OpenSSH: the command line's first wins
    # (`-o ProxyJump=none` turns off the file's too), then the file's (ProxyJump if both).
    given = [key for key in args if key in ("proxyjump", "proxycommand")]
    proxy_key = given[0] if given else next(
        (key for key in ("proxyjump", "proxycommand") if cfg.get(key) is not None), None)
    proxy = first(proxy_key) if proxy_key else None
    jump = proxy if proxy_key == "proxyjump" else None
    command = proxy if proxy_key == "proxycommand" and proxy else None
    if command:
        command = expand_proxy_command(command, hostname, port, user, dest.hostname)
    strict = args["stricthostkeychecking"][0].lower() if "stricthostkeychecking" in args else None
    if strict is not None and strict not in STRICT_TO_POLICY:
        raise SshConfigError(f"host {dest.name}: StrictHostKeyChecking {strict!r} is not one of "
                             f"{', '.join(STRICT_TO_POLICY)}")
    timeout = connect_timeout
    configured = first("connecttimeout") or ""
    if re.fullmatch(r"\d+(\.\d+)?", configured) and float(configured) > 0:
        timeout = min(timeout, float(configured))  # both are limits: the tighter one holds
    return SshSettings(
        name=dest.name, hostname=hostname, port=port, user=user,
        identity_files=dedupe(identities),
        known_hosts_files=known_files(first("userknownhostsfile"), DEFAULT_KNOWN_HOSTS, local_user),
        global_known_hosts_files=known_files(first("globalknownhostsfile"), GLOBAL_KNOWN_HOSTS, local_user),
        host_key_alias=first("hostkeyalias"),
        hash_known_hosts=(first("hashknownhosts") or "").lower() == "yes",
        proxy_jump=jump, proxy_command=command, connect_timeout=timeout, config_path=config_path,
        identities_only=(first("identitiesonly") or "").lower() == "yes", password=dest.password,
        host_key_policy=STRICT_TO_POLICY[strict] if strict else None,
    )


def resolve_hop(behind: SshSettings, hop: str, lookup: Lookup, *, connect_timeout: float,
                local_user: str, private_key: str | None) -> SshSettings:
    """The settings of one ProxyJump hop (`[user@]host[:port]`) of the host `behind`.

    The same rules as for any host (resolve()), reading the ssh_config `behind` read; then two
    differences: the chain is `behind`'s, so the hop's own proxy settings do not apply, and the
    run's keys are tried after the hop's own IdentityFile (OpenSSH gives a jump host only its
    own, but one key for the bastion and the hosts behind it is the common setup).
    """
    try:
        user, host, port = parse_jump(hop)
    except ValueError as exc:
        raise SshConfigError(f"host {behind.name}: {exc}") from None
    dest = Destination(name=behind.name, hostname=host, port=port or 22, port_explicit=port is not None,
                       user=user)
    s = resolve(dest, lookup, connect_timeout=connect_timeout, local_user=local_user,
                config_path=behind.config_path)
    keys = dedupe([*s.identity_files, *(k for k in (private_key, *behind.identity_files) if k)])
    # The host's password is the host's: a jump host gets none (keys and the agent only).
    return replace(s, identity_files=keys, proxy_jump=None, proxy_command=None, password=None)


def parse_jump(spec: str) -> tuple[str | None, str, int | None]:
    """Takes one ProxyJump hop (`[user@]host[:port]`, `ssh://...`, `[v6]:port`); returns its parts."""
    text = spec.strip().removeprefix("ssh://")
    user = None
    if "@" in text:
        user, text = text.rsplit("@", 1)
    port: int | None = None
    number = None
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        number = rest[1:] if rest.startswith(":") else None
    elif text.count(":") == 1:
        host, _, number = text.partition(":")
    else:
        host = text
    if number is not None:
        port = int(number) if number.isdigit() else 0
    if not host or (port is not None and not 0 < port < 65536):
        raise ValueError(f"bad ProxyJump host {spec!r}")
    return user or None, host, port


def expand_proxy_command(command: str, hostname: str, port: int, user: str, alias: str) -> str:
    """Expands OpenSSH's %h %p %r %n %% tokens with the values actually used for this host."""
    values = {"h": hostname, "p": str(port), "r": user, "n": alias, "%": "%"}
    return re.sub(r"%(.)", lambda m: values.get(m.group(1), m.group(0)), command)



def known_files(configured: str | None, default: tuple[str, ...], local_user: str) -> tuple[str, ...]:
    """UserKnownHostsFile/GlobalKnownHostsFile's paths, with OpenSSH's %d and %u expanded."""
    names = shlex.split(configured) if configured else list(default)
    return tuple(os.path.expanduser(name.replace("%d", "~").replace("%u", local_user)) for name in names)


def dedupe(items: list[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(item for item in items if item))
