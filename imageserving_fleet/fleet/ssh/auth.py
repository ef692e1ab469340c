"""Public-key authentication, never a password: explicit keys, else ssh-agent and the default keys.

Each private key file is parsed once per run (`Keys`), however many hosts use it.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

from imageserving_fleet.errors import Reason, UnreachableError

from .base import load_paramiko
from .deadline import remaining
from .known_hosts import fingerprint
from .settings import SshSettings

DEFAULT_KEYS = ("~/.ssh/id_ed25519", "~/.ssh/id_ecdsa", "~/.ssh/id_rsa")


class Keys:
    """The private keys of one run, each parsed once; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._keys: dict[str, Any] = {}  # path -> PKey, or the Exception that loading it raised

    def load(self, path: str) -> Any:
        """The private key at `path`, parsed once per run; raises what loading it raised."""
        paramiko = load_paramiko()
        full = os.path.expanduser(path)
        with self._lock:
            cached = self._keys.get(full)
            if cached is None:
                try:
                    cached = paramiko.PKey.from_path(full)
                except FileNotFoundError as exc:
                    cached = exc
                except paramiko.PasswordRequiredException as exc:
                    cached = exc
                except (paramiko.SSHException, ValueError, TypeError, OSError) as exc:
                    cached = exc
                self._keys[full] = cached
        if isinstance(cached, BaseException):
            raise cached
        return cached


def authenticate(transport: Any, s: SshSettings, deadline: float, keys: Keys) -> None:
    """Public-key authentication, never a password: explicit keys, else ssh-agent and defaults."""
    paramiko = load_paramiko()
    problems: list[str] = []
    candidates: list[tuple[str, Any]] = []
    for path in s.identity_files:
        try:
            candidates.append((path, keys.load(path)))
        except FileNotFoundError:
            problems.append(f"{path}: no such file")
        except paramiko.PasswordRequiredException:
            problems.append(f"{path}: encrypted (add it to ssh-agent)")
        except Exception as exc:  # noqa: BLE001 - any unreadable key is reported, not fatal
            problems.append(f"{path}: {exc}")
    agent = None
    tried: list[str] = []
    try:
        if not candidates:
            if os.environ.get("SSH_AUTH_SOCK"):
                agent = paramiko.Agent()  # one per connection: its socket is not thread-safe
                candidates += [(f"agent key {fingerprint(k.asbytes())}", k) for k in agent.get_keys()]
            if not s.identity_files:
                for path in DEFAULT_KEYS:
                    if os.path.exists(os.path.expanduser(path)):
                        try:
                            candidates.append((path, keys.load(path)))
                        except Exception as exc:  # noqa: BLE001
                            problems.append(f"{path}: {exc}")
        for label, key in candidates:
            transport.auth_timeout = remaining(deadline)
            try:
                more = transport.auth_publickey(s.user, key)
            except paramiko.BadAuthenticationType as exc:
                raise UnreachableError(s.name, Reason.AUTH, f"{s.user}@{s.hostname} does not accept keys "
                                       f"(allows: {', '.join(exc.allowed_types)})") from None
            except paramiko.AuthenticationException:
                if time.monotonic() >= deadline:
                    raise TimeoutError() from None
                tried.append(label)
                continue
            if more:
                raise UnreachableError(s.name, Reason.AUTH, f"{s.user}@{s.hostname} wants more than a key "
                                       f"({', '.join(more)}); not supported")
            return
    finally:
        if agent is not None:
            agent.close()
    detail = f"{s.user}@{s.hostname}: permission denied (publickey)"
    if tried:
        detail += f"; tried {', '.join(tried)}"
    if problems:
        detail += f"; unusable: {'; '.join(problems)}"
    if not tried and not problems:
        detail += "; no key to offer (no --private-key, IdentityFile, ssh-agent or ~/.ssh/id_*)"
    raise UnreachableError(s.name, Reason.AUTH, detail)

# ---- errors
