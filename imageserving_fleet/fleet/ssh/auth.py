"""Authentication as OpenSSH does it: keys in OpenSSH's order, then a password if there is one.

    identities(s, keys, agent_keys) -> [Identity]   the keys to offer, in ssh(1)'s order (pure)
    authenticate(transport, s, deadline, keys)      offers them, then password / keyboard-interactive

The order (sshconnect2.c `pubkey_prepare`): the ssh-agent's keys in the agent's order, a key that
is also an IdentityFile taking the file's place (so its `-cert.pub` certificate goes with it);
then the IdentityFiles the agent does not hold, in the order given. With `IdentitiesOnly yes`
only the agent keys that are IdentityFiles are offered. No IdentityFile anywhere: the default
~/.ssh/id_* files. A user certificate `KEY-cert.pub` beside a key file is offered with it.

Then, when the host has a password (`-k`, IMAGESERVING_SSH_PASS, ansible_password...):
"password", or "keyboard-interactive" answering its one hidden prompt, whichever the server
allows. The password never reaches argv, a log or a message. Each private key file is parsed
once per run (`Keys`), however many hosts use it.
"""

from __future__ import annotations

import base64
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
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


@dataclass
class Identity:
    """One key to offer: where it came from, and the key (a loaded file key or an agent key)."""

    label: str
    key: Any


@dataclass
class _File:
    path: str
    key: Any  # the loaded private key, or None
    public: bytes | None  # its public blob (from the key, else from KEY.pub): matches agent keys
    problem: str | None


def _public_of(path: str) -> bytes | None:
    """The public key blob in `path`.pub, for a key file that cannot be loaded (encrypted)."""
    try:
        with open(os.path.expanduser(path) + ".pub", encoding="ascii", errors="replace") as handle:
            return base64.b64decode(handle.read().split()[1])
    except (OSError, IndexError, ValueError):
        return None


def _files(s: SshSettings, keys: Keys) -> list[_File]:
    paramiko = load_paramiko()
    paths = list(s.identity_files) or [p for p in DEFAULT_KEYS if os.path.exists(os.path.expanduser(p))]
    found = []
    for path in paths:
        try:
            key = keys.load(path)
        except FileNotFoundError:
            found.append(_File(path, None, _public_of(path), f"{path}: no such file"))
        except paramiko.PasswordRequiredException:
            found.append(_File(path, None, _public_of(path), f"{path}: encrypted (add it to ssh-agent)"))
        except Exception as exc:  # noqa: BLE001 - any unreadable key is reported, not fatal
            found.append(_File(path, None, _public_of(path), f"{path}: {exc}"))
        else:
            found.append(_File(path, key, key.asbytes(), None))
    return found


def identities(files: Sequence[_File], agent_keys: Sequence[Any], identities_only: bool) -> list[Identity]:
    """Takes the identity files (loaded or not) and the agent's keys; returns what to offer, in
    OpenSSH's order: agent keys first (a file's own key in its place), then the other files."""
    offered: list[Identity] = []
    left = list(files)
    for agent_key in agent_keys:
        blob = agent_key.asbytes()
        match = next((f for f in left if f.public == blob), None)
        if match is not None:
            left.remove(match)
            # The file's key carries its -cert.pub certificate; an encrypted file's only signer is the agent.
            offered.append(Identity(f"{match.path}" + ("" if match.key else " (agent)"), match.key or agent_key))
        elif not identities_only:
            offered.append(Identity(f"agent key {fingerprint(blob)}", agent_key))
    offered += [Identity(f.path, f.key) for f in left if f.key is not None]
    return offered


def authenticate(transport: Any, s: SshSettings, deadline: float, keys: Keys) -> None:
    """Offers the host's keys in OpenSSH's order, then its password; raises UnreachableError (auth)."""
    paramiko = load_paramiko()
    files = _files(s, keys)
    problems: list[str] = []
    agent = None
    tried: list[str] = []
    allowed: list[str] | None = None
    try:
        agent_keys: list[Any] = []
        if os.environ.get("SSH_AUTH_SOCK"):
            agent = paramiko.Agent()  # one per connection: its socket is not thread-safe
            agent_keys = list(agent.get_keys())
        held = {k.asbytes() for k in agent_keys}  # an encrypted file the agent holds is not a problem
        problems = [f.problem for f in files if f.problem and f.public not in held]
        for identity in identities(files, agent_keys, s.identities_only):
            transport.auth_timeout = remaining(deadline)
            try:
                more = transport.auth_publickey(s.user, identity.key)
            except paramiko.BadAuthenticationType as exc:
                allowed = list(exc.allowed_types)
                break
            except paramiko.AuthenticationException:
                if time.monotonic() >= deadline:
                    raise TimeoutError() from None
                tried.append(identity.label)
                continue
            if more:
                raise UnreachableError(s.name, Reason.AUTH, f"{s.user}@{s.hostname} wants more than a key "
                                       f"({', '.join(more)}); not supported")
            return
    finally:
        if agent is not None:
            agent.close()
    if s.password is not None:
        if _password(transport, s, deadline):
            return
        tried.append("a password")
    elif allowed is not None and not tried:
        raise UnreachableError(s.name, Reason.AUTH, f"{s.user}@{s.hostname} does not accept keys "
                               f"(allows: {', '.join(allowed)}); a password would need -k or ansible_password")
    methods = "publickey" + (",password" if s.password is not None else "")
    detail = f"{s.user}@{s.hostname}: permission denied ({methods})"
    if tried:
        detail += f"; tried {', '.join(tried)}"
    if problems:
        detail += f"; unusable: {'; '.join(problems)}"
    if not tried and not problems:
        detail += ("; no key to offer (no --private-key, IdentityFile, ssh-agent or ~/.ssh/id_*) and no password "
                   "(-k, IMAGESERVING_SSH_PASS or ansible_password)")
    raise UnreachableError(s.name, Reason.AUTH, detail)


def _password(transport: Any, s: SshSettings, deadline: float) -> bool:
    """Password authentication, or keyboard-interactive where only that is allowed; True when logged in."""
    paramiko = load_paramiko()
    assert s.password is not None
    secret = s.password.reveal()

    def answer(title: str, instructions: str, prompts: Sequence[tuple[str, bool]]) -> list[str]:
        # One hidden prompt is the password prompt (PAM's "Password: "); answer nothing else.
        return [secret if not echo else "" for _, echo in prompts] if len(prompts) == 1 else [""] * len(prompts)

    transport.auth_timeout = remaining(deadline)
    try:
        more = transport.auth_password(s.user, secret, fallback=False)
    except paramiko.BadAuthenticationType as exc:
        if "keyboard-interactive" not in exc.allowed_types:
            raise UnreachableError(s.name, Reason.AUTH, f"{s.user}@{s.hostname} accepts no password "
                                   f"(allows: {', '.join(exc.allowed_types)})") from None
        try:
            more = transport.auth_interactive(s.user, answer)
        except paramiko.AuthenticationException:
            return _timed_out(deadline)
    except paramiko.AuthenticationException:
        return _timed_out(deadline)
    if more:
        raise UnreachableError(s.name, Reason.AUTH, f"{s.user}@{s.hostname} wants more than a password "
                               f"({', '.join(more)}); not supported")
    return True


def _timed_out(deadline: float) -> bool:
    if time.monotonic() >= deadline:
        raise TimeoutError()
    return False
