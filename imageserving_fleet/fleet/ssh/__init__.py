"""The fleet's SSH layer: run shell commands on a host, over SSH or locally, within deadlines that hold.

    Connector(options)                   connector.py  one per run: ssh_config, known_hosts, keys read once
      .connect(destination, deadline) ─┬─> SshSession    session.py  paramiko Transport, one per host
                                       └─> LocalSession  local.py    /bin/sh -c on the controller itself
    Session.run(command, stdin=, timeout=) -> CommandResult(exit_code, stdout, stderr)    base.py
    Session.put(local, remote)           copy a file (SFTP, or a local copy)
    Session.abort()                      from any thread: a run() blocked on this host returns now
    Connector.close()                    from any thread: connects in progress and all sessions end

    settings.py     Destination (what to reach, made from a Target) -> SshSettings, one set of rules
                    for hosts and ProxyJump hops
    config.py       ssh_config (+Include), read once per run
    known_hosts.py  known_hosts files (@cert-authority, @revoked, hashed, patterns) and the host key check
    certificates.py OpenSSH host certificates: parsed, checked as ssh(1) does (CA, principal, dates)
    keyblob.py      key blobs (type, SHA256 fingerprint) and OpenSSH host patterns
    auth.py         keys in OpenSSH's order (ssh-agent with key files, IdentitiesOnly), then a password
    sockets.py      DNS, TCP, jump-host channel and ProxyCommand sockets
    deadline.py     the watchdog: one thread that closes whatever is blocked when a deadline passes
    mock.py         MockConnector: sessions a test's handler answers (the fan-out's logic tests)

Every failure to reach a host or to hear back from it raises `UnreachableError(host, reason,
detail)` with a `Reason` as the reason, so the fleet can report it and go on. This package knows
nothing of inventories: it takes a `Destination` and a run's `ClientOptions`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .base import MAX_OUTPUT, CommandResult, Connecting, Session
from .settings import ClientOptions, Destination, SshSettings

if TYPE_CHECKING:
    from .connector import Connector
    from .local import LocalSession
    from .session import SshSession

# Imported on first use: the connector pulls in the SSH library (0.2 s of CPU), which a command
# answered by the connection holder (fleet/persist) never needs.
_LAZY = {"Connector": ".connector", "LocalSession": ".local", "SshSession": ".session"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["MAX_OUTPUT", "ClientOptions", "CommandResult", "Connecting", "Connector", "Destination", "LocalSession",
           "Session", "SshSession", "SshSettings"]
