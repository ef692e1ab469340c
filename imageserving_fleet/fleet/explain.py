"""What `hosts` shows: each host's effective connection settings and where each came from.

    explain(target, ssh, ssh_config, wide) -> {setting: {"value", "source"}}

The sources are the command line, IMAGESERVING_*, an inventory variable with the group or host
(and file) that set it, ANSIBLE_*, ansible.cfg with its line, ssh_config, or a default: what
`ansible-config dump --only-changed` and `ansible-inventory --host` say together. Pure.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .runwide import RunWide
from .ssh.settings import SshSettings
from .target import Target

SETTINGS = ("user", "address", "port", "keys", "jump", "host_key_policy", "become", "become_user", "password")


def explain(t: Target, s: SshSettings | None, ssh_config: Mapping[str, Any], wide: RunWide | None
            ) -> dict[str, dict[str, Any]]:
    """Takes a target, its resolved SSH settings (None for a local connection), what ssh_config says
    for it and the run's settings; returns setting -> {"value", "source"}."""
    given = dict(t.sources)
    out: dict[str, dict[str, Any]] = {}

    def put(name: str, value: Any, source: str) -> None:
        out[name] = {"value": value, "source": source}

    if s is None:
        put("user", None, "local connection (no SSH)")
        put("address", t.hostname, given.get("address", "inventory name"))
    else:
        put("user", s.user, given.get("user") or ("ssh_config User" if "user" in ssh_config else
                                                  "default (the local user)"))
        if s.hostname != t.hostname:
            put("address", s.hostname, "ssh_config HostName")
        else:
            put("address", s.hostname, given.get("address", "inventory name"))
        if t.port_explicit:
            put("port", s.port, given.get("port", "inventory"))
        else:
            put("port", s.port, "ssh_config Port" if "port" in ssh_config else "default")
        keys = list(s.identity_files)
        if t.key_file and keys and keys[0] == t.key_file:
            source = given.get("key", "inventory")
            if len(keys) > 1:
                source += "; then ssh_config IdentityFile"
        elif keys:
            source = "ssh_config IdentityFile"
        else:
            source = "default: ssh-agent, then ~/.ssh/id_ed25519, id_ecdsa, id_rsa"
        if s.identities_only:
            source += " (IdentitiesOnly)"
        put("keys", keys, source)
        if s.proxy_jump or s.proxy_command:
            kind = "ProxyJump" if s.proxy_jump else "ProxyCommand"
            put("jump", s.proxy_jump or s.proxy_command, given.get("jump", f"ssh_config {kind}"))
        else:
            put("jump", None, "none")
        if wide is not None:
            if s.host_key_policy is not None and not wide.host_key_policy.source.startswith("command line"):
                put("host_key_policy", s.host_key_policy,
                    f"{given.get('ssh stricthostkeychecking', 'ssh arguments')} (StrictHostKeyChecking)")
            else:
                put("host_key_policy", wide.host_key_policy.value, wide.host_key_policy.source)
        put("password", "set" if t.password is not None else None, given.get("password", "none"))
    put("become", t.become, given.get("become", "default"))
    put("become_user", t.become_user or "root", given.get("become_user", "default (sudo's root)"))
    return out


def text_rows(name: str, explained: Mapping[str, Mapping[str, Any]]) -> list[tuple[str, str, str, str]]:
    """(host, setting, value, source) rows for the table: the host named on its first row only."""
    rows: list[tuple[str, str, str, str]] = []
    for setting in SETTINGS:
        if setting not in explained:
            continue
        value = explained[setting]["value"]
        if isinstance(value, list):
            value = ", ".join(value) or "-"
        rows.append(("" if rows else name, setting, "-" if value is None else str(value),
                     str(explained[setting]["source"])))
    return rows
