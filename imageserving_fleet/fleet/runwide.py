"""The run-wide settings, each with where it came from: command line, IMAGESERVING_*, ANSIBLE_*,
ansible.cfg, default (SPEC §3 "Ansible configuration").

    resolve_run(cli, env, ansible, cwd) -> RunWide    pure but for checking that paths exist

Per-host settings (user, port, key, become...) are resolved by target.make_target, beneath the
inventory's variables; this module does what is one value for the whole run: the inventory, the
forks, the SSH connect timeout (ansible's `timeout`) and the host key policy (`host_key_checking
= False` means `warn` unless the command line says otherwise). It also words the notices a run
prints on stderr: the packaged localhost inventory in use, ansible.cfg's own warnings, and the
ssh arguments from ansible.cfg or ANSIBLE_* the SSH layer does not honour (one line).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import AnsibleConfigError
from .ansiblecfg import AnsibleSettings, Sourced
from .sshargs import unsupported_ssh_args

DEFAULT_INVENTORY = os.path.join("inventory", "hosts.yml")
DEFAULT_FORKS = 50
DEFAULT_CONNECT_TIMEOUT = 10.0
PACKAGED = "packaged inventory (localhost only)"


@dataclass(frozen=True)
class CommandLine:
    """What the command line gave for the run-wide settings; None: not given."""

    inventories: Sequence[str] = ()
    forks: int | None = None
    connect_timeout: float | None = None
    host_key_policy: str | None = None


@dataclass(frozen=True)
class RunWide:
    """The run's inventory, forks, connect timeout and host key policy, each with its source."""

    inventories: Sourced[tuple[str, ...]]  # empty: the packaged localhost inventory
    forks: Sourced[int]
    connect_timeout: Sourced[float]
    host_key_policy: Sourced[str]
    ansible: AnsibleSettings
    notices: tuple[str, ...] = ()  # to print on stderr, one line each

    def as_dict(self) -> dict[str, dict[str, object]]:
        """For `hosts --json`: {"inventory": {"value", "source"}, ...}."""
        shown: dict[str, Sourced[Any]] = {"inventory": self.inventories, "forks": self.forks,
                                          "connect_timeout": self.connect_timeout,
                                          "host_key_policy": self.host_key_policy}
        table: dict[str, dict[str, object]] = {k: {"value": list(v.value) if isinstance(v.value, tuple) else v.value,
                                                   "source": v.source} for k, v in shown.items()}
        table["ansible_cfg"] = {"value": self.ansible.path, "source": "ansible-core's search"}
        return table


def resolve_run(cli: CommandLine, env: Mapping[str, str], ansible: AnsibleSettings, cwd: str) -> RunWide:
    """Takes the command line, the environment, what ansible.cfg/ANSIBLE_* say and the current
    directory; returns the run-wide settings. Raises AnsibleConfigError (exit 1) when an inventory
    named by ansible.cfg or ANSIBLE_INVENTORY does not exist."""
    notices = list(ansible.warnings)
    inventories = _inventories(cli, env, ansible, cwd)
    if not inventories.value:
        notices.append(f"imageserving-fleet: no inventory given (-i, IMAGESERVING_INVENTORY, ANSIBLE_INVENTORY or "
                       f"ansible.cfg) and none at ./{DEFAULT_INVENTORY}: using the {PACKAGED}")
    forks: Sourced[int] = Sourced(DEFAULT_FORKS, "default")
    if cli.forks is not None:
        forks = Sourced(cli.forks, "command line -f")
    elif ansible.forks is not None:
        forks = ansible.forks
    timeout: Sourced[float] = Sourced(DEFAULT_CONNECT_TIMEOUT, "default")
    if cli.connect_timeout is not None:
        timeout = Sourced(cli.connect_timeout, "command line --connect-timeout")
    elif ansible.timeout is not None:
        timeout = Sourced(float(ansible.timeout.value), ansible.timeout.source)
    policy: Sourced[str] = Sourced("reject", "default")
    if cli.host_key_policy is not None:
        policy = Sourced(cli.host_key_policy, "command line --host-key-policy")
    elif ansible.host_key_checking is not None:
        checking = ansible.host_key_checking
        policy = Sourced("reject" if checking.value else "warn",
                         f"{checking.source} = {checking.value}")
    unsupported = []
    for part in ansible.ssh_arg_sources():
        try:
            left = unsupported_ssh_args(part.value)
        except ValueError as exc:
            raise AnsibleConfigError(f"{part.source}: {exc}") from None
        if left:
            unsupported.append(f"{' '.join(left)} ({part.source})")
    if unsupported:
        notices.append("imageserving-fleet: warning: ssh arguments not honoured (the SSH layer uses -o options it "
                       "knows, -p -l -i -J -F, and keeps its own connections): " + "; ".join(unsupported))
    return RunWide(inventories, forks, timeout, policy, ansible, tuple(notices))


def _inventories(cli: CommandLine, env: Mapping[str, str], ansible: AnsibleSettings,
                 cwd: str) -> Sourced[tuple[str, ...]]:
    if cli.inventories:
        return Sourced(tuple(cli.inventories), "command line -i")
    given = [p for p in env.get("IMAGESERVING_INVENTORY", "").split(os.pathsep) if p]
    if given:
        return Sourced(tuple(given), "env IMAGESERVING_INVENTORY")
    if ansible.inventory is not None and ansible.inventory.value:
        missing = [p for p in ansible.inventory.value if not os.path.exists(p)]
        if missing:
            raise AnsibleConfigError(f"{ansible.inventory.source}: inventory {', '.join(missing)} does not exist")
        return ansible.inventory
    if os.path.exists(os.path.join(cwd, DEFAULT_INVENTORY)):
        return Sourced((DEFAULT_INVENTORY,), "default")
    return Sourced((), "default")
