"""Run shell commands on a host, over SSH or locally, within deadlines that hold.

    Connector(options)                  one per run: ssh_config, known_hosts and keys read once
      .connect(target, deadline) ──┬──> SshSession     paramiko Transport, one per host, reused
                                   └──> LocalSession   /bin/sh -c on the controller itself
    Session.run(command, stdin=, timeout=) -> CommandResult(exit_code, stdout, stderr)
    Session.put(local, remote)          copy a file (SFTP, or a local copy)
    Session.abort()                     from any thread: a run() blocked on this host returns now
    Connector.close()                   from any thread: connects in progress and all sessions end

Every failure to reach a host or to hear back from it raises `UnreachableError(host, reason,
detail)` with one of `REASONS` as the reason, so the fleet can report it and go on.

Why paramiko's Transport and not SSHClient or Fabric: their timeouts cover only the TCP connect
(fabric#2330, paramiko#664), and SSHClient re-reads keys and known_hosts for every host. Here the
TCP socket is ours, one watchdog thread closes whatever is still blocked when a deadline passes,
and everything a run can share (ssh_config, known_hosts, parsed keys, DNS answers, jump hosts) is
read once. paramiko is imported on the first SSH connection, so a local-only run never pays for it.
"""

from __future__ import annotations

import base64
import errno
import getpass
import glob
import hashlib
import heapq
import hmac
import itertools
import logging
import os
import random
import re
import selectors
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Any, Protocol

from imageserving_fleet.errors import HostError, UnreachableError, UsageError
from imageserving_fleet.fleet.target import FleetOptions, Target, ssh_options

if TYPE_CHECKING:
    import paramiko

REASONS = ("dns", "refused", "timeout", "no route", "auth", "unknown host key", "changed host key",
           "connection lost", "ssh error", "output too large")
DEFAULT_MAX_OUTPUT = 16 * 2**20
DEFAULT_KEYS = ("~/.ssh/id_ed25519", "~/.ssh/id_ecdsa", "~/.ssh/id_rsa")
DEFAULT_KNOWN_HOSTS = ("~/.ssh/known_hosts", "~/.ssh/known_hosts2")
GLOBAL_KNOWN_HOSTS = ("/etc/ssh/ssh_known_hosts", "/etc/ssh/ssh_known_hosts2")
SYSTEM_SSH_CONFIG = "/etc/ssh/ssh_config"

# After a command's exit status arrives, how long to wait for its output to end. A background
# child that kept stdout open would otherwise hold the run forever (OpenSSH's ssh does hang).
_EXIT_LINGER = 1.0
# How often a waiting run() looks at state that raises no wakeup of its own (the exit status).
_POLL = 0.2
# How long closing a channel may take before the whole connection is given up as hung.
_CLOSE_GRACE = 2.0
# Fastest first, as measured on the 2-core box against OpenSSH 9.2 (20 x connect+`true`, median):
# ecdh-nistp256 23.9 ms, curve25519 26.2 ms, dh-group14 50.9 ms; AES-GCM moves 20 MiB in 0.19 s
# where AES-CTR+HMAC takes 0.26 s. The post-quantum hybrid stays first wherever a server offers
# it: a few ms are not worth recorded traffic someone decrypts later. The rest keep paramiko's order.
_FAST_KEX = ("mlkem768x25519-sha256", "ecdh-sha2-nistp256", "curve25519-sha256@libssh.org")
_FAST_CIPHERS = ("aes128-gcm@openssh.com", "aes256-gcm@openssh.com", "aes128-ctr")
_FAST_MACS = ("hmac-sha2-256-etm@openssh.com", "hmac-sha2-256")


@dataclass(frozen=True)
class CommandResult:
    """What a finished command left: its exit code and everything it wrote."""

    exit_code: int
    stdout: bytes
    stderr: bytes


class Session(Protocol):
    """A connection to one host that runs commands on it; reuse it for every command to that host."""

    host: str

    def run(self, command: str, *, stdin: bytes | None = None, timeout: float,
            max_output: int = DEFAULT_MAX_OUTPUT) -> CommandResult:
        """Runs a POSIX shell command line (quoted by the caller) and waits at most `timeout` s."""
        ...

    def sftp(self) -> paramiko.SFTPClient:
        """An SFTP client on this connection (SSH only)."""
        ...

    def put(self, local: str, remote: str, *, timeout: float | None = None) -> None:
        """Copies a local file to the host; a relative or `~/` remote path is under its home."""
        ...

    def close(self) -> None:
        """Ends the connection politely."""
        ...

    def abort(self) -> None:
        """Ends the connection now, from any thread: a blocked run() raises 'connection lost'."""
        ...


# --------------------------------------------------------------------------- deadlines


class _Alarm:
    """One scheduled callback; cancel() tells whether it was cancelled before it fired."""

    __slots__ = ("callback", "fired", "cancelled", "_owner")

    def __init__(self, owner: _Watchdog, callback: Callable[[], None]) -> None:
        self._owner, self.callback, self.fired, self.cancelled = owner, callback, False, False

    def cancel(self) -> bool:
        with self._owner.cond:
            if self.fired:
                return False
            self.cancelled = True
            return True


class _Watchdog:
    """One thread that runs callbacks at monotonic deadlines, so 500 hosts need not 500 timers.

    The callbacks close sockets and channels: whatever paramiko call was blocked on them (banner,
    key exchange, auth, exec) then fails at once, and the caller turns that into "timeout". Each
    fired callback gets a thread of its own, since closing a channel sends a message and that can
    block on a hung connection; alarms that are cancelled in time (nearly all) cost no thread.
    """

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self._heap: list[tuple[float, int, _Alarm]] = []
        self._seq = itertools.count()
        self._thread: threading.Thread | None = None

    def at(self, when: float, callback: Callable[[], None]) -> _Alarm:
        alarm = _Alarm(self, callback)
        with self.cond:
            heapq.heappush(self._heap, (when, next(self._seq), alarm))
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="fleet-watchdog", daemon=True)
                self._thread.start()
            self.cond.notify()
        return alarm

    def _loop(self) -> None:
        while True:
            with self.cond:
                alarm = None
                while alarm is None:
                    if not self._heap:
                        self.cond.wait()
                        continue
                    when, _, top = self._heap[0]
                    if top.cancelled:
                        heapq.heappop(self._heap)
                        continue
                    delay = when - time.monotonic()
                    if delay > 0:
                        self.cond.wait(delay)
                        continue
                    heapq.heappop(self._heap)
                    top.fired = True
                    alarm = top
            threading.Thread(target=_quietly, args=(alarm.callback,), name="fleet-deadline",
                             daemon=True).start()


def _quietly(callback: Callable[[], None]) -> None:
    try:
        callback()
    except Exception:  # noqa: BLE001 - closing something half-dead may fail; it is closed either way
        pass


_WATCHDOG = _Watchdog()


def _hard_close(thing: Any) -> None:
    """Closes a socket, channel or transport so any thread blocked on it wakes up now."""
    if thing is None:
        return
    if isinstance(thing, socket.socket):
        try:
            # shutdown, unlike close, wakes a recv() blocked in another thread.
            thing.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
    try:
        thing.close()
    except Exception:  # noqa: BLE001 - it may be half-dead already; all we want is it closed
        pass


def _close_all(things: list[Any]) -> None:
    for thing in things:
        _hard_close(thing)


# --------------------------------------------------------------------------- paramiko, lazily

_PARAMIKO: Any = None


def _paramiko() -> Any:
    """Imports paramiko on first use (~0.2 s) and keeps its log lines off the user's terminal."""
    global _PARAMIKO
    if _PARAMIKO is None:
        import paramiko

        # Without a handler, logging's last resort prints paramiko's ERROR lines (a refused
        # banner...) on stderr, beside our own report of the same failure.
        logging.getLogger("paramiko").addHandler(logging.NullHandler())
        _PARAMIKO = paramiko
    return _PARAMIKO


def _fingerprint(blob: bytes) -> str:
    """OpenSSH's SHA256 fingerprint of a public key blob (`SHA256:...`)."""
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


def _key_type(blob: bytes) -> str:
    """The algorithm name at the start of a public key blob (`ssh-ed25519`...)."""
    size = int.from_bytes(blob[:4], "big")
    return blob[4:4 + size].decode("ascii", "replace")


# --------------------------------------------------------------------------- known_hosts


@dataclass(frozen=True)
class _KnownKey:
    blob: bytes
    path: str
    line: int
    revoked: bool = False

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}"


def _glob_regex(pattern: str) -> re.Pattern[str]:
    # OpenSSH patterns know only * and ?; fnmatch would read the [ ] of "[host]:port" as a set.
    return re.compile("".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
                      + r"\Z", re.IGNORECASE)


class _KnownHosts:
    """One known_hosts file, indexed once: plain names in a dict, hashed and wildcard lines aside."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.exact: dict[str, list[_KnownKey]] = {}
        self.hashed: list[tuple[bytes, bytes, _KnownKey]] = []
        self.patterns: list[tuple[list[tuple[bool, re.Pattern[str]]], _KnownKey]] = []
        self.lines = 0
        # Aliases of one host share its name: look each name up once (hashed lines cost an HMAC each).
        self._found: dict[str, list[_KnownKey]] = {}
        try:
            with open(path, encoding="utf-8", errors="replace") as handle:
                for self.lines, text in enumerate(handle, 1):
                    self._parse(text, self.lines)
        except FileNotFoundError:
            pass
        except OSError:
            pass  # unreadable: as OpenSSH does, treat it as holding no keys

    def _parse(self, text: str, number: int) -> None:
        fields = text.split()
        if not fields or fields[0].startswith("#"):
            return
        revoked = False
        if fields[0].startswith("@"):
            if fields[0] != "@revoked":
                return  # @cert-authority: host certificates are not verified here
            revoked, fields = True, fields[1:]
        if len(fields) < 3:
            return
        try:
            blob = base64.b64decode(fields[2], validate=True)
        except ValueError:
            return
        key = _KnownKey(blob, self.path, number, revoked)
        names = fields[0]
        if names.startswith("|1|"):
            try:
                _, _, salt, digest = names.split("|")[:4]
                self.hashed.append((base64.b64decode(salt), base64.b64decode(digest), key))
            except ValueError:
                pass
            return
        entries = names.split(",")
        if any("*" in name or "?" in name or name.startswith("!") for name in entries):
            self.patterns.append(([(name.startswith("!"), _glob_regex(name.lstrip("!")))
                                   for name in entries], key))
            return
        for name in entries:
            self.exact.setdefault(name.lower(), []).append(key)

    def lookup(self, name: str) -> list[_KnownKey]:
        name = name.lower()
        cached = self._found.get(name)
        if cached is not None:
            return list(cached)
        found = list(self.exact.get(name, ()))
        for salt, digest, key in self.hashed:
            if hmac.compare_digest(hmac.new(salt, name.encode(), hashlib.sha1).digest(), digest):
                found.append(key)
        for patterns, key in self.patterns:
            hits = [negated for negated, regex in patterns if regex.match(name)]
            if hits and not any(hits):  # a negated pattern that matches vetoes the line
                found.append(key)
        self._found[name] = found
        return list(found)

    def append(self, name: str, blob: bytes, *, hashed: bool) -> None:
        """Records a key as `ssh-keygen`/`ssh` would: one line appended, hashed if asked."""
        if hashed:
            salt = os.urandom(20)
            digest = hmac.new(salt, name.lower().encode(), hashlib.sha1).digest()
            label = f"|1|{base64.b64encode(salt).decode()}|{base64.b64encode(digest).decode()}"
        else:
            label = name
        line = f"{label} {_key_type(blob)} {base64.b64encode(blob).decode()}\n".encode()
        directory = os.path.dirname(self.path)
        if directory:
            os.makedirs(directory, mode=0o700, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            size = os.fstat(fd).st_size
            if size and os.pread(fd, 1, size - 1) != b"\n":
                line = b"\n" + line  # a hand-edited file may lack its final newline
            os.write(fd, line)
        finally:
            os.close(fd)
        self.lines += 1
        self.exact.setdefault(name.lower(), []).append(_KnownKey(blob, self.path, self.lines))
        self._found.pop(name.lower(), None)


# --------------------------------------------------------------------------- settings


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

    @property
    def host_key_name(self) -> str:
        """The name known_hosts files use for this host: `host`, or `[host]:port` off port 22."""
        if self.host_key_alias:
            return self.host_key_alias
        return self.hostname if self.port == 22 else f"[{self.hostname}]:{self.port}"


def _parse_jump(spec: str) -> tuple[str | None, str, int | None]:
    """Takes one ProxyJump hop (`[user@]host[:port]`, `ssh://...`, `[v6]:port`); returns its parts."""
    text = spec.strip().removeprefix("ssh://")
    user = None
    if "@" in text:
        user, text = text.rsplit("@", 1)
    port: int | None = None
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        if rest.startswith(":"):
            port = int(rest[1:])
    elif text.count(":") == 1:
        host, _, number = text.partition(":")
        port = int(number)
    else:
        host = text
    if not host or (port is not None and not 0 < port < 65536):
        raise ValueError(f"bad ProxyJump host {spec!r}")
    return user or None, host, port


def _expand_proxy_command(command: str, hostname: str, port: int, user: str, alias: str) -> str:
    """Expands OpenSSH's %h %p %r %n %% tokens with the values actually used for this host."""
    values = {"h": hostname, "p": str(port), "r": user, "n": alias, "%": "%"}
    return re.sub(r"%(.)", lambda m: values.get(m.group(1), m.group(0)), command)


def _read_ssh_config(path: str, base: str, depth: int = 0) -> str:
    """Returns an ssh_config's text with its `Include` lines replaced by the files they name.

    paramiko's SSHConfig ignores Include, and a ~/.ssh/config built of config.d/* files is common;
    inlining is what OpenSSH does for includes at the top level, and close enough inside blocks.
    Relative Include paths are under `base` (~/.ssh for a user's file, /etc/ssh for the system's).
    """
    if depth > 16:
        raise UsageError(f"{path}: Include nested too deeply")
    out = []
    with open(path, encoding="utf-8", errors="replace") as handle:
        for line in handle:
            words = line.strip().split(None, 1)
            if len(words) == 2 and words[0].lower() == "include":
                for pattern in shlex.split(words[1]):
                    pattern = os.path.expanduser(pattern)
                    if not os.path.isabs(pattern):
                        pattern = os.path.join(base, pattern)
                    for included in sorted(glob.glob(pattern)):
                        if os.path.isfile(included):
                            out.append(_read_ssh_config(included, base, depth + 1))
                continue
            out.append(line if line.endswith("\n") else line + "\n")
    return "".join(out)


# --------------------------------------------------------------------------- connector


@dataclass
class _Attempt:
    """The closables of one connection attempt, so a deadline or abort can close them all."""

    things: list[Any] = field(default_factory=list)
    phase: str = "connecting"
    sock: Any = None  # what the SSH transport runs over: TCP socket, jump channel or ProxyCommand
    # Set on close: paramiko leaves start_client's event unset when the transport is closed under it.
    done: threading.Event = field(default_factory=threading.Event)

    def close(self) -> None:
        for thing in reversed(self.things):
            _hard_close(thing)
        self.done.set()


class _EarlyClose(Exception):
    """The server closed the connection before its banner (sshd's MaxStartups throttling)."""


class Connector:
    """Opens sessions to hosts; one per run, shared by every worker thread.

    Reads the ssh_config once, each known_hosts file once, parses each private key once, and
    resolves each host name once, however many hosts (or inventory aliases of one host) there are.
    Jump hosts (ProxyJump) are connected once and shared: each target gets its own channel.
    """

    def __init__(self, options: FleetOptions, *, warn: Callable[[str], None] | None = None) -> None:
        self.options = options
        self._warn = warn or _warn_on_stderr
        self._lock = threading.RLock()
        self._closed = False
        if options.private_key and not os.path.isfile(os.path.expanduser(options.private_key)):
            raise UsageError(f"--private-key {options.private_key}: no such file")
        # Read now so a missing --ssh-config is a usage error before any host is contacted;
        # parsed on the first SSH connection (it needs paramiko).
        self._config_texts: dict[str | None, str] = {None: self._config_text(options.ssh_config)}
        self._configs: dict[str | None, Any] = {}
        self._lookups: dict[tuple[str | None, str], dict[str, Any]] = {}
        self._known: dict[str, _KnownHosts] = {}
        self._warned: set[tuple[str, bytes]] = set()
        self._keys: dict[str, Any] = {}  # path -> PKey, or the Exception that loading it raised
        self._dns: dict[tuple[str, int], Future[list[Any]]] = {}
        self._resolver: ThreadPoolExecutor | None = None
        self._jumps: dict[tuple[Any, ...], SshSession] = {}
        self._jump_locks: dict[tuple[Any, ...], threading.Lock] = {}
        self._attempt_objs: dict[int, _Attempt] = {}
        self._sessions: weakref.WeakSet[Any] = weakref.WeakSet()
        self._local_user = getpass.getuser()

    # ---- public

    def connect(self, target: Target, deadline: float) -> Session:
        """Opens a session to the target, or raises UnreachableError by `deadline` (monotonic).

        Raises UsageError when the ssh_config or the target's ssh options cannot be used.
        """
        if self._closed:
            raise UnreachableError(target.name, "connection lost", "the run was aborted")
        session: Session
        if target.connection == "local":
            session = LocalSession(target.name)
        else:
            session = self._connect_ssh(self.settings(target), deadline)
        with self._lock:
            self._sessions.add(session)
        return session

    def settings(self, target: Target) -> SshSettings:
        """The SSH settings the target will use: inventory and CLI first, then ssh_config."""
        try:
            args = ssh_options(target.common_args)
        except ValueError as exc:
            raise UsageError(f"host {target.name}: ansible_ssh_common_args: {exc}") from None
        config_path = args["-F"][0] if "-F" in args else None
        cfg = self._lookup(config_path, target.hostname)

        def first(key: str) -> str | None:
            value = args[key][0] if key in args else cfg.get(key)
            return None if value is None or str(value).lower() == "none" else str(value)

        hostname = (first("hostname") or target.hostname).replace("%h", target.hostname)
        port = target.port
        if not target.port_explicit and cfg.get("port"):
            try:
                port = int(cfg["port"])
            except ValueError:
                raise UsageError(f"host {target.name}: ssh_config Port {cfg['port']!r} is not a number"
                                 ) from None
        user = target.user or cfg.get("user") or self._local_user
        identities = [target.key_file] if target.key_file else []
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
            command = _expand_proxy_command(command, hostname, port, user, target.hostname)
        timeout = self.options.connect_timeout
        configured = first("connecttimeout") or ""
        if re.fullmatch(r"\d+(\.\d+)?", configured) and float(configured) > 0:
            timeout = min(timeout, float(configured))  # both are limits: the tighter one holds
        return SshSettings(
            name=target.name, hostname=hostname, port=port, user=user,
            identity_files=_dedupe(identities),
            known_hosts_files=self._known_files(first("userknownhostsfile"), DEFAULT_KNOWN_HOSTS),
            global_known_hosts_files=self._known_files(first("globalknownhostsfile"), GLOBAL_KNOWN_HOSTS),
            host_key_alias=first("hostkeyalias"),
            hash_known_hosts=(first("hashknownhosts") or "").lower() == "yes",
            proxy_jump=jump, proxy_command=command, connect_timeout=timeout,
        )

    def close(self) -> None:
        """Ends the run: aborts connections in progress and every session and jump host it opened."""
        with self._lock:
            self._closed = True
            attempts = list(self._attempt_objs.values())
            sessions = list(self._sessions) + list(self._jumps.values())
            self._jumps.clear()
            resolver, self._resolver = self._resolver, None
        for attempt in attempts:
            attempt.close()
        for session in sessions:
            session.abort()
        if resolver is not None:
            resolver.shutdown(wait=False, cancel_futures=True)

    # ---- ssh_config

    @staticmethod
    def _config_text(path: str | None) -> str:
        if path is None:
            texts = []
            # OpenSSH reads the user's file, then the system's: the first value obtained wins.
            for candidate, base in ((os.path.expanduser("~/.ssh/config"), os.path.expanduser("~/.ssh")),
                                    (SYSTEM_SSH_CONFIG, os.path.dirname(SYSTEM_SSH_CONFIG))):
                try:
                    texts.append(_read_ssh_config(candidate, base))
                except OSError:
                    pass
            return "".join(texts)
        try:
            return _read_ssh_config(os.path.expanduser(path), os.path.expanduser("~/.ssh"))
        except OSError as exc:
            raise UsageError(f"--ssh-config {path}: {exc.strerror or exc}") from None

    def _lookup(self, config_path: str | None, hostname: str) -> dict[str, Any]:
        key = (config_path, hostname)
        with self._lock:
            found = self._lookups.get(key)
            if found is not None:
                return found
            config = self._configs.get(config_path)
            if config is None:
                config = self._configs[config_path] = self._parse_config(config_path)
            found = self._lookups[key] = dict(config.lookup(hostname))
            return found

    def _parse_config(self, path: str | None) -> Any:
        paramiko = _paramiko()
        text = self._config_texts.get(path)
        if text is None:
            text = self._config_texts[path] = self._config_text(path)
        try:
            config = paramiko.SSHConfig.from_text(text)
        except paramiko.SSHException as exc:
            raise UsageError(f"ssh_config {path or '~/.ssh/config'}: {exc}") from None
        # ProxyCommand's %p/%r must be the port and user we actually use (an inventory
        # ansible_port beats the file's Port), so we expand those tokens ourselves.
        config.TOKENS_BY_CONFIG_KEY = {key: tokens for key, tokens in config.TOKENS_BY_CONFIG_KEY.items()
                                       if key not in ("proxycommand", "proxyjump")}
        return config

    def _known_files(self, configured: str | None, default: tuple[str, ...]) -> tuple[str, ...]:
        names = shlex.split(configured) if configured else list(default)
        return tuple(os.path.expanduser(name.replace("%d", "~").replace("%u", self._local_user))
                     for name in names)

    # ---- connecting

    def _connect_ssh(self, settings: SshSettings, deadline: float) -> SshSession:
        for attempt in range(3):
            try:
                return self._open(settings, deadline)
            except _EarlyClose:
                # A server that closes before its banner is often sshd shedding load (MaxStartups,
                # paramiko#664): it accepts again a moment later.
                pause = random.uniform(0.05, 0.25) * (attempt + 1)  # jitter: the others retry too
                if attempt == 2 or time.monotonic() + pause + 0.5 > deadline:
                    raise UnreachableError(settings.name, "connection lost",
                                           f"{settings.hostname}:{settings.port} closed the connection "
                                           f"before the SSH banner (sshd MaxStartups?)") from None
                time.sleep(pause)
        raise AssertionError("unreachable")

    def _open(self, s: SshSettings, deadline: float, via: SshSession | None = None) -> SshSession:
        """One attempt: socket, SSH handshake, host key check, authentication, all by `deadline`."""
        paramiko = _paramiko()
        attempt = _Attempt()
        with self._lock:
            if self._closed:
                raise UnreachableError(s.name, "connection lost", "the run was aborted")
            self._attempt_objs[id(attempt)] = attempt
        alarm = _WATCHDOG.at(deadline, attempt.close)
        budget = max(deadline - time.monotonic(), 0.0)
        sock: Any
        try:
            known = self._known_keys(s)
            if via is not None:
                attempt.phase = "opening a channel through the jump host"
                sock = _ChannelSocket(via.transport.open_channel(
                    "direct-tcpip", (s.hostname, s.port), ("127.0.0.1", 0), timeout=_remaining(deadline)))
            elif s.proxy_jump:
                sock = self._through_jump(s, deadline)
            elif s.proxy_command:
                attempt.phase = "starting the ProxyCommand"
                sock = _ProxySocket.spawn(s.proxy_command)
            else:
                sock = self._tcp(s, deadline, attempt)
            attempt.sock = sock
            attempt.things.append(sock)
            transport = paramiko.Transport(sock)
            attempt.things.append(transport)
            self._tune(transport, known)
            transport.banner_timeout = min(s.connect_timeout, _remaining(deadline))
            transport.handshake_timeout = transport.auth_timeout = _remaining(deadline)
            attempt.phase = "waiting for the SSH banner and key exchange"
            transport.start_client(event=attempt.done)
            if not attempt.done.wait(_remaining(deadline)):
                raise TimeoutError()
            if not transport.is_active():
                raise transport.get_exception() or paramiko.SSHException("negotiation failed")
            attempt.phase = "checking the host key"
            self._check_host_key(s, transport.get_remote_server_key(), known)
            attempt.phase = "authenticating"
            self._authenticate(transport, s, deadline)
            if not alarm.cancel():
                raise TimeoutError()
            # A rolling restart may leave a session idle for minutes: keep NATs and firewalls from
            # forgetting it.
            transport.set_keepalive(30)
            return SshSession(s.name, transport, sock)
        except BaseException as exc:
            alarm.cancel()
            attempt.close()
            if not isinstance(exc, Exception):
                raise  # KeyboardInterrupt and friends are not a host's failure
            expired = alarm.fired or time.monotonic() >= deadline
            raise self._failure(exc, s, attempt, expired, budget) from None
        finally:
            with self._lock:
                self._attempt_objs.pop(id(attempt), None)

    def _failure(self, exc: Exception, s: SshSettings, attempt: _Attempt, expired: bool,
                 budget: float) -> Exception:
        """The exception to raise for a failed attempt: an UnreachableError, or _EarlyClose to retry."""
        paramiko = _paramiko()
        if isinstance(exc, UnreachableError) and (exc.reason in ("dns", "timeout") or not expired):
            return exc
        if expired or isinstance(exc, TimeoutError):
            return UnreachableError(s.name, "timeout", f"{s.hostname}:{s.port}: no SSH session within "
                                    f"{budget:.1f}s ({attempt.phase})")
        if self._closed:
            return UnreachableError(s.name, "connection lost", "the run was aborted")
        if isinstance(exc, UsageError | _EarlyClose):
            return exc
        early_eof = (isinstance(exc, paramiko.SSHException) and "protocol banner" in str(exc)
                     and isinstance(exc.__context__, EOFError | ConnectionResetError))
        if isinstance(attempt.sock, _ProxySocket) and (early_eof or isinstance(exc, EOFError | OSError)):
            return UnreachableError(s.name, "connection lost", f"ProxyCommand {s.proxy_command!r} "
                                    f"ended: {attempt.sock.error_text() or 'no output'}")
        if early_eof:
            return _EarlyClose()
        return self._classify(exc, s, attempt.phase)

    def _tcp(self, s: SshSettings, deadline: float, attempt: _Attempt) -> socket.socket:
        """A connected TCP socket to the host, made by us so its timeout is the deadline's."""
        last: OSError | None = None
        for family, kind, proto, _, address in self._resolve(s, deadline):
            sock = _TcpSocket(family, kind, proto)
            attempt.things.append(sock)
            sock.settimeout(min(s.connect_timeout, _remaining(deadline)))
            try:
                sock.connect(address)
            except OSError as exc:
                sock.close()
                last = exc
                if time.monotonic() >= deadline:
                    break
                continue
            # The handshake is a ping-pong of small packets: Nagle's delay would add up.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            attempt.things.remove(sock)
            return sock
        if isinstance(last, TimeoutError):
            raise UnreachableError(s.name, "timeout", f"{s.hostname}:{s.port}: no answer to the TCP connect "
                                   f"(connect timeout {s.connect_timeout:g}s)")
        raise self._classify(last or OSError("no address"), s, "connecting")

    def _resolve(self, s: SshSettings, deadline: float) -> list[Any]:
        """Addresses for the host; each name is looked up once per run, within the deadline."""
        try:  # an address literal needs no lookup (and no thread)
            return socket.getaddrinfo(s.hostname, s.port, type=socket.SOCK_STREAM,
                                      flags=socket.AI_NUMERICHOST)
        except socket.gaierror:
            pass
        key = (s.hostname, s.port)
        with self._lock:
            future = self._dns.get(key)
            if future is None:
                if self._resolver is None:
                    # getaddrinfo cannot be interrupted: a thread lets us stop waiting at the deadline.
                    self._resolver = ThreadPoolExecutor(max_workers=16, thread_name_prefix="fleet-dns")
                future = self._dns[key] = self._resolver.submit(
                    socket.getaddrinfo, s.hostname, s.port, type=socket.SOCK_STREAM)
        try:
            return future.result(timeout=_remaining(deadline))
        except TimeoutError:
            raise UnreachableError(s.name, "dns", f"looking up {s.hostname} took too long") from None
        except socket.gaierror as exc:
            if exc.errno == socket.EAI_AGAIN:  # a transient failure: let the next host try again
                with self._lock:
                    self._dns.pop(key, None)
            raise UnreachableError(s.name, "dns", f"cannot resolve {s.hostname}: {exc.strerror}") from None

    def _through_jump(self, s: SshSettings, deadline: float) -> Any:
        """A channel to the target through its ProxyJump chain, each hop connected once per run."""
        hops: list[tuple[str | None, str, int | None]] = []
        try:
            hops = [_parse_jump(hop) for hop in (s.proxy_jump or "").split(",")]
        except ValueError as exc:
            raise UsageError(f"host {s.name}: {exc}") from None
        via: SshSession | None = None
        chain: tuple[Any, ...] = ()
        for user, host, port in hops:
            chain += ((user, host, port),)
            via = self._jump(s, chain, via, deadline)
        assert via is not None
        try:
            return _ChannelSocket(via.transport.open_channel(
                "direct-tcpip", (s.hostname, s.port), ("127.0.0.1", 0), timeout=_remaining(deadline)))
        except Exception as exc:
            paramiko = _paramiko()
            if isinstance(exc, paramiko.ChannelException) and exc.code == 2:
                # sshd says only "connect failed": refused, unknown name or no route, seen from there.
                raise UnreachableError(s.name, "refused", f"jump host {hops[-1][1]} could not connect to "
                                       f"{s.hostname}:{s.port}") from None
            raise

    def _jump(self, s: SshSettings, chain: tuple[Any, ...], via: SshSession | None,
              deadline: float) -> SshSession:
        with self._lock:
            lock = self._jump_locks.setdefault(chain, threading.Lock())
        if not lock.acquire(timeout=_remaining(deadline)):
            raise TimeoutError()
        try:
            session = self._jumps.get(chain)
            if session is not None and session.transport.is_active():
                return session
            user, host, port = chain[-1]
            cfg = self._lookup(None, host)
            hostname = str(cfg.get("hostname") or host)
            hop = SshSettings(
                name=s.name, hostname=hostname, port=port or int(cfg.get("port") or 22),
                user=user or cfg.get("user") or self._local_user,
                # OpenSSH gives a jump host only its own IdentityFile; the run's keys are tried too,
                # since one key for the bastion and the hosts behind it is the common setup.
                identity_files=_dedupe(list(cfg.get("identityfile", []))
                                       + [k for k in (self.options.private_key, *s.identity_files) if k]),
                known_hosts_files=self._known_files(cfg.get("userknownhostsfile"), DEFAULT_KNOWN_HOSTS),
                global_known_hosts_files=self._known_files(cfg.get("globalknownhostsfile"),
                                                           GLOBAL_KNOWN_HOSTS),
                host_key_alias=cfg.get("hostkeyalias"),
                hash_known_hosts=str(cfg.get("hashknownhosts", "")).lower() == "yes",
                connect_timeout=s.connect_timeout,
            )
            try:
                session = self._open(hop, deadline, via=via)
            except UnreachableError as exc:
                raise UnreachableError(s.name, exc.reason, f"jump host {host}: {exc.detail}") from None
            with self._lock:
                if self._closed:
                    session.abort()
                    raise UnreachableError(s.name, "connection lost", "the run was aborted")
                self._jumps[chain] = session
            return session
        finally:
            lock.release()

    def _tune(self, transport: Any, known: list[_KnownKey]) -> None:
        """Fast algorithms first; and the host key types known_hosts holds, as OpenSSH orders them."""
        options = transport.get_security_options()
        options.kex = _prefer(_FAST_KEX, options.kex)
        options.ciphers = _prefer(_FAST_CIPHERS, options.ciphers)
        options.digests = _prefer(_FAST_MACS, options.digests)
        wanted: list[str] = []
        for entry in known:
            kind = _key_type(entry.blob)
            wanted += ["rsa-sha2-512", "rsa-sha2-256"] if kind == "ssh-rsa" else [kind]
        if wanted:
            options.key_types = _prefer(tuple(wanted), options.key_types)

    # ---- host keys

    def _known_keys(self, s: SshSettings) -> list[_KnownKey]:
        name = s.host_key_name
        found: list[_KnownKey] = []
        with self._lock:
            for path in s.known_hosts_files + s.global_known_hosts_files:
                index = self._known.get(path)
                if index is None:
                    index = self._known[path] = _KnownHosts(path)
                found += index.lookup(name)
        return found

    def _check_host_key(self, s: SshSettings, key: Any, known: list[_KnownKey]) -> None:
        """Refuses a changed key always; an unknown one as --host-key-policy says."""
        blob = key.asbytes()
        name = s.host_key_name
        offered = f"{_key_type(blob)} {_fingerprint(blob)}"
        with self._lock:
            # Look again: another alias of the same host may have recorded it meanwhile.
            known = self._known_keys(s) if not known else known
            same = [k for k in known if k.blob == blob]
            if any(k.revoked for k in same):
                raise UnreachableError(s.name, "changed host key", f"{name} offers {offered}, which is "
                                       f"marked @revoked in {same[0].where}")
            if same:
                return
            others = [k for k in known if not k.revoked]
            if others:
                old = others[0]
                raise UnreachableError(s.name, "changed host key", (
                    f"{name} now offers {offered}, but {old.where} holds {_key_type(old.blob)} "
                    f"{_fingerprint(old.blob)}; if the host was reinstalled, remove the old key with "
                    f"ssh-keygen -R {shlex.quote(name)} -f {shlex.quote(old.path)}"))
            policy = self.options.host_key_policy
            if policy == "reject":
                raise UnreachableError(s.name, "unknown host key", (
                    f"{name} offers {offered}, which is not in {', '.join(s.known_hosts_files[:1])}; "
                    f"check the fingerprint, then run with --host-key-policy accept-new to trust it"))
            if policy == "accept-new":
                path = s.known_hosts_files[0]
                index = self._known.get(path) or self._known.setdefault(path, _KnownHosts(path))
                try:
                    index.append(name, blob, hashed=s.hash_known_hosts)
                except OSError as exc:
                    raise UnreachableError(s.name, "unknown host key",
                                           f"cannot record {offered} in {path}: {exc.strerror}") from None
                return
            if (name, blob) in self._warned:
                return
            self._warned.add((name, blob))
        self._warn(f"warning: {s.name}: unknown host key {offered} for {name} accepted, not recorded "
                   f"(--host-key-policy warn)")

    # ---- authentication

    def _load_key(self, path: str) -> Any:
        """The private key at `path`, parsed once per run; raises what loading it raised."""
        paramiko = _paramiko()
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

    def _authenticate(self, transport: Any, s: SshSettings, deadline: float) -> None:
        """Public-key authentication, never a password: explicit keys, else ssh-agent and defaults."""
        paramiko = _paramiko()
        problems: list[str] = []
        candidates: list[tuple[str, Any]] = []
        for path in s.identity_files:
            try:
                candidates.append((path, self._load_key(path)))
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
                    candidates += [(f"agent key {_fingerprint(k.asbytes())}", k) for k in agent.get_keys()]
                if not s.identity_files:
                    for path in DEFAULT_KEYS:
                        if os.path.exists(os.path.expanduser(path)):
                            try:
                                candidates.append((path, self._load_key(path)))
                            except Exception as exc:  # noqa: BLE001
                                problems.append(f"{path}: {exc}")
            for label, key in candidates:
                transport.auth_timeout = _remaining(deadline)
                try:
                    more = transport.auth_publickey(s.user, key)
                except paramiko.BadAuthenticationType as exc:
                    raise UnreachableError(s.name, "auth", f"{s.user}@{s.hostname} does not accept keys "
                                           f"(allows: {', '.join(exc.allowed_types)})") from None
                except paramiko.AuthenticationException:
                    if time.monotonic() >= deadline:
                        raise TimeoutError() from None
                    tried.append(label)
                    continue
                if more:
                    raise UnreachableError(s.name, "auth", f"{s.user}@{s.hostname} wants more than a key "
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
        raise UnreachableError(s.name, "auth", detail)

    # ---- errors

    def _classify(self, exc: BaseException, s: SshSettings, phase: str) -> UnreachableError:
        """Turns what socket or paramiko raised into an UnreachableError with a short reason."""
        paramiko = _paramiko()
        where = f"{s.hostname}:{s.port}"
        cause = exc.__context__
        if isinstance(exc, socket.gaierror):
            return UnreachableError(s.name, "dns", f"cannot resolve {s.hostname}: {exc.strerror}")
        if isinstance(exc, ConnectionRefusedError):
            return UnreachableError(s.name, "refused", f"{where}: connection refused")
        if isinstance(exc, OSError) and exc.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH,
                                                      errno.EHOSTDOWN, errno.ENETDOWN):
            return UnreachableError(s.name, "no route", f"{where}: {exc.strerror}")
        if isinstance(exc, paramiko.ProxyCommandFailure):
            return UnreachableError(s.name, "connection lost", f"ProxyCommand failed: {exc}")
        if isinstance(exc, paramiko.SSHException) and "protocol banner" in str(exc):
            if isinstance(cause, TimeoutError):
                return UnreachableError(s.name, "timeout", f"{where}: no SSH banner within "
                                        f"{s.connect_timeout:g}s")
            return UnreachableError(s.name, "connection lost", f"{where}: {exc}")
        if isinstance(exc, paramiko.AuthenticationException):
            return UnreachableError(s.name, "auth", f"{s.user}@{s.hostname}: {exc}")
        if isinstance(exc, EOFError | ConnectionResetError | BrokenPipeError | ConnectionAbortedError):
            return UnreachableError(s.name, "connection lost", f"{where}: closed while {phase}")
        if isinstance(exc, paramiko.IncompatiblePeer):
            return UnreachableError(s.name, "ssh error", f"{where}: {exc}")
        if isinstance(exc, paramiko.SSHException):
            if isinstance(cause, EOFError | ConnectionResetError) or "Negotiation failed" in str(exc):
                return UnreachableError(s.name, "connection lost", f"{where}: closed while {phase}")
            return UnreachableError(s.name, "ssh error", f"{where}: {exc or type(exc).__name__} ({phase})")
        return UnreachableError(s.name, "ssh error", f"{where}: {type(exc).__name__}: {exc} ({phase})")


def _remaining(deadline: float) -> float:
    # Never 0: several paramiko waits read 0 or None as "forever".
    return max(deadline - time.monotonic(), 0.001)


def _prefer(first: tuple[str, ...], current: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """`current` with those of `first` it contains moved to the front, in `first`'s order."""
    head = [name for name in first if name in current]
    return tuple(head + [name for name in current if name not in head])


def _dedupe(items: list[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(item for item in items if item))


_WARN_LOCK = threading.Lock()


def _warn_on_stderr(message: str) -> None:
    with _WARN_LOCK:  # whole lines, even from 50 threads at once
        sys.stderr.write(message + "\n")
        sys.stderr.flush()


class _ChannelSocket:
    """A channel through a jump host, dressed as the socket a nested Transport reads and writes.

    Closing a channel whose jump host is already gone raises EOFError; inside paramiko's reader
    thread that would print a traceback on the user's terminal, so close() here never raises.
    """

    def __init__(self, channel: Any) -> None:
        self.channel = channel

    def send(self, data: bytes) -> int:
        return int(self.channel.send(data))

    def recv(self, size: int) -> bytes:
        return bytes(self.channel.recv(size))

    def settimeout(self, timeout: float | None) -> None:
        self.channel.settimeout(timeout)

    @property
    def _closed(self) -> bool:  # read by Transport.stop_thread
        return bool(self.channel.closed)

    def close(self) -> None:
        try:
            self.channel.close()
        except Exception:  # noqa: BLE001 - the jump host is gone: the channel is closed anyway
            pass


class _TcpSocket(socket.socket):
    """A TCP socket that acknowledges what it receives at once.

    Linux delays ACKs while sshd (Nagle on, for non-interactive sessions) holds its next small
    packet until the ACK comes: the first channel open stalled 40 ms per host. TCP_QUICKACK
    does not stick, hence once per recv (a cheap setsockopt); measured here: 75 -> 30 ms/host.
    """

    def recv(self, size: int, flags: int = 0) -> bytes:
        if _QUICKACK is not None:
            try:
                self.setsockopt(socket.IPPROTO_TCP, _QUICKACK, 1)
            except OSError:
                pass
        return super().recv(size, flags)


_QUICKACK: int | None = getattr(socket, "TCP_QUICKACK", None)


class _ProxySocket(socket.socket):
    """One end of a socketpair whose other end is a ProxyCommand's stdin and stdout.

    paramiko's own ProxyCommand spins on EOF and never reads the command's stderr; a real socket
    gives timeouts, shutdown and EOF for free, which is also how OpenSSH runs a ProxyCommand.
    """

    process: subprocess.Popen[bytes] | None = None
    errors: IO[bytes] | None = None

    @classmethod
    def spawn(cls, command: str) -> _ProxySocket:
        ours, theirs = socket.socketpair()
        sock = cls(ours.family, ours.type, ours.proto, fileno=ours.detach())
        sock.errors = tempfile.TemporaryFile()
        try:
            sock.process = subprocess.Popen(["/bin/sh", "-c", command], stdin=theirs.fileno(),
                                            stdout=theirs.fileno(), stderr=sock.errors,
                                            start_new_session=True)
        except OSError:
            sock.close()
            raise
        finally:
            theirs.close()
        return sock

    def error_text(self) -> str:
        """The last line the command wrote on stderr, to explain why it ended."""
        if self.errors is None or self.errors.closed:
            return ""
        self.errors.seek(0)
        lines = self.errors.read()[-2000:].decode(errors="replace").strip().splitlines()
        return lines[-1] if lines else ""

    def close(self) -> None:
        super().close()
        if self.process is not None and self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGTERM)
            except OSError:
                pass


# --------------------------------------------------------------------------- sessions


class _Wakeup:
    """An Event paramiko's stdout and stderr buffers both set, and only we clear.

    A buffer clears its event when *it* runs dry, which could swallow a wakeup meant for the other.
    """

    def __init__(self) -> None:
        self._event = threading.Event()

    def set(self) -> None:
        self._event.set()

    def clear(self) -> None:
        pass

    def reset(self) -> None:
        self._event.clear()

    def wait(self, timeout: float) -> bool:
        return self._event.wait(timeout)


class SshSession:
    """An authenticated SSH connection to one host; run() opens one channel per command on it."""

    def __init__(self, host: str, transport: Any, sock: Any) -> None:
        self.host, self.transport, self._sock = host, transport, sock
        self._aborted = False

    @property
    def alive(self) -> bool:
        return bool(self.transport.is_active()) and not self._aborted

    def run(self, command: str, *, stdin: bytes | None = None, timeout: float,
            max_output: int = DEFAULT_MAX_OUTPUT) -> CommandResult:
        """Runs the command with the user's shell on the host; UnreachableError if it cannot finish."""
        deadline = time.monotonic() + timeout
        channel: list[Any] = []
        alarm = _WATCHDOG.at(deadline, lambda: _close_all(channel))
        try:
            if not self.alive:
                raise self._lost("the connection is closed")
            chan = self.transport.open_session(timeout=_remaining(deadline))
            channel.append(chan)
            wake = _Wakeup()
            chan.in_buffer.set_event(wake)
            chan.in_stderr_buffer.set_event(wake)
            chan.exec_command(command)  # waits for sshd's answer: the alarm bounds that wait
            return self._pump(chan, wake, stdin, deadline, timeout, max_output)
        except UnreachableError:
            raise
        except Exception as exc:
            if alarm.fired or time.monotonic() >= deadline:
                raise UnreachableError(self.host, "timeout", f"command did not finish within {timeout:g}s"
                                       ) from None
            if self._aborted or not self.transport.is_active():
                raise self._lost(f"{type(exc).__name__}: {exc}") from None
            raise UnreachableError(self.host, "ssh error", f"{type(exc).__name__}: {exc}") from None
        finally:
            alarm.cancel()
            for chan in channel:
                self._close_channel(chan)

    def _pump(self, chan: Any, wake: _Wakeup, stdin: bytes | None, deadline: float, timeout: float,
              max_output: int) -> CommandResult:
        """Feeds stdin and collects stdout and stderr until the command ends or time runs out."""
        out, err = bytearray(), bytearray()
        pending = memoryview(stdin) if stdin else None
        if pending is None:
            chan.shutdown_write()  # stdin at EOF at once, as `ssh -n` does: no command waits for it
        chan.settimeout(0.0)
        exited_at: float | None = None
        while True:
            wake.reset()
            while chan.recv_ready() or chan.recv_stderr_ready():
                if chan.recv_ready():
                    out += chan.recv(65536)
                if chan.recv_stderr_ready():
                    err += chan.recv_stderr(65536)
                if len(out) + len(err) > max_output:  # checked per read: a flood must not fill memory
                    raise UnreachableError(self.host, "output too large",
                                           f"the command wrote more than {max_output} bytes")
            while pending is not None and chan.send_ready():
                try:
                    sent = chan.send(pending[:32768])
                except OSError:
                    pending = None  # the command closed its stdin: fine, as with a pipe
                    break
                pending = pending[sent:] if sent < len(pending) else None
                if pending is None:
                    chan.shutdown_write()
            # Not exit_status_ready(): it is also true of a channel merely closed (by an abort...).
            if chan.exit_status != -1:
                if chan.eof_received or chan.closed:
                    if not (chan.recv_ready() or chan.recv_stderr_ready()):
                        break
                    continue
                now = time.monotonic()
                exited_at = exited_at or now
                if now - exited_at >= _EXIT_LINGER:
                    break
            elif chan.closed:
                if time.monotonic() >= deadline:  # the watchdog closed it
                    raise UnreachableError(self.host, "timeout",
                                           f"command did not finish within {timeout:g}s")
                if self._aborted or not self.transport.is_active():
                    raise self._lost("closed during the command")
                if not (chan.recv_ready() or chan.recv_stderr_ready()):
                    break
                continue
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise UnreachableError(self.host, "timeout", f"command did not finish within {timeout:g}s")
            wait = min(remaining, _POLL)
            if pending is not None and not chan.send_ready():
                wait = min(wait, 0.01)  # no wakeup when the remote window reopens
            wake.wait(wait)
        status = chan.exit_status
        # -1: no exit-status (the command died of a signal): report 255, as the ssh client does.
        return CommandResult(status if status >= 0 else 255, bytes(out), bytes(err))

    def open_streamlocal(self, path: str, *, timeout: float) -> Any:
        """A channel to a Unix socket on the host (direct-streamlocal@openssh.com; ssh/streamlocal.py)."""
        from .ssh.streamlocal import open_streamlocal

        return open_streamlocal(self.transport, path, timeout=timeout)

    def _close_channel(self, chan: Any) -> None:
        # Closing sends a message, which blocks on a hung connection: give it a moment, then abort.
        guard = _WATCHDOG.at(time.monotonic() + _CLOSE_GRACE, self.abort)
        _hard_close(chan)
        guard.cancel()

    def _lost(self, detail: str) -> UnreachableError:
        return UnreachableError(self.host, "connection lost", "aborted" if self._aborted else detail)

    def sftp(self, *, timeout: float = 30.0) -> paramiko.SFTPClient:
        """An SFTP client on this connection; `timeout` bounds the opening and each later request."""
        deadline = time.monotonic() + timeout
        opened: list[Any] = []
        alarm = _WATCHDOG.at(deadline, lambda: _close_all(opened))
        try:
            chan = self.transport.open_session(timeout=_remaining(deadline))
            opened.append(chan)
            chan.invoke_subsystem("sftp")
            client = _paramiko().SFTPClient(chan)
            chan.settimeout(timeout)
        except Exception as exc:
            for chan in opened:
                _hard_close(chan)
            if alarm.fired:
                raise UnreachableError(self.host, "timeout", f"no SFTP session within {timeout:g}s") from None
            if not self.alive:
                raise self._lost(str(exc)) from None
            raise UnreachableError(self.host, "ssh error", f"SFTP: {exc}") from None
        finally:
            alarm.cancel()
        return client

    def put(self, local: str, remote: str, *, timeout: float | None = None) -> None:
        """Uploads a file over SFTP, keeping its permission bits; relative paths are under home."""
        remote = remote.removeprefix("~/")  # SFTP paths are already relative to the home directory
        client = self.sftp(timeout=min(timeout, 30.0) if timeout else 30.0)
        chan = client.get_channel()
        alarm = _WATCHDOG.at(time.monotonic() + timeout, lambda: _hard_close(chan)) if timeout else None
        try:
            client.put(local, remote, confirm=True)
            client.chmod(remote, os.stat(local).st_mode & 0o7777)
        except Exception as exc:
            if alarm is not None and alarm.fired:
                raise UnreachableError(self.host, "timeout", f"upload of {local} took more than {timeout:g}s"
                                       ) from None
            if not self.alive:
                raise self._lost(f"during the upload of {local}") from None
            if isinstance(exc, OSError) and exc.errno is not None:  # the server's answer: no such dir...
                raise HostError(self.host, "upload failed", f"{remote}: {exc.strerror or exc}") from None
            raise UnreachableError(self.host, "ssh error", f"upload of {local}: {type(exc).__name__}: {exc}"
                                   ) from None
        finally:
            if alarm is not None:
                alarm.cancel()
            self._close_channel(chan)

    def close(self) -> None:
        self.transport.close()
        _hard_close(self._sock)

    def abort(self) -> None:
        self._aborted = True
        _hard_close(self._sock)  # wakes paramiko's reader thread, which ends the transport
        self.transport.close()


class LocalSession:
    """Runs commands on the controller itself (ansible_connection=local), like SSH would remotely."""

    def __init__(self, host: str) -> None:
        self.host = host
        self._lock = threading.Lock()
        self._running: set[subprocess.Popen[bytes]] = set()
        self._aborted = False

    def run(self, command: str, *, stdin: bytes | None = None, timeout: float,
            max_output: int = DEFAULT_MAX_OUTPUT) -> CommandResult:
        """Runs `/bin/sh -c command` in the home directory, in its own process group."""
        deadline = time.monotonic() + timeout
        if self._aborted:
            raise UnreachableError(self.host, "connection lost", "aborted")
        process = subprocess.Popen(
            ["/bin/sh", "-c", command], stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=os.path.expanduser("~"),
            # its own group, so a timeout kills the command's children too, not only the shell
            start_new_session=True)
        with self._lock:
            self._running.add(process)
        try:
            out, err = self._pump(process, stdin, deadline, timeout, max_output)
            code = process.wait(timeout=_remaining(deadline))
        except subprocess.TimeoutExpired:
            raise UnreachableError(self.host, "timeout", f"command did not finish within {timeout:g}s"
                                   ) from None
        finally:
            with self._lock:
                self._running.discard(process)
            for pipe in (process.stdin, process.stdout, process.stderr):
                if pipe is not None:
                    pipe.close()
            if process.poll() is None:
                _killpg(process)
                process.wait()
        if self._aborted:
            raise UnreachableError(self.host, "connection lost", "aborted")
        # A signal death reads -N from Popen: report it as a shell would, 128+N.
        return CommandResult(code if code >= 0 else 128 - code, out, err)

    def _pump(self, process: subprocess.Popen[bytes], stdin: bytes | None, deadline: float,
              timeout: float, max_output: int) -> tuple[bytes, bytes]:
        assert process.stdout is not None and process.stderr is not None
        chunks: dict[int, bytearray] = {process.stdout.fileno(): bytearray(),
                                         process.stderr.fileno(): bytearray()}
        pending = memoryview(stdin) if stdin else None
        total = 0
        exited_at: float | None = None
        with selectors.DefaultSelector() as selector:
            for fd in chunks:
                selector.register(fd, selectors.EVENT_READ)
            if pending is not None and process.stdin is not None:
                os.set_blocking(process.stdin.fileno(), False)
                selector.register(process.stdin.fileno(), selectors.EVENT_WRITE)
            while any(fd in chunks for fd in selector.get_map()):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise subprocess.TimeoutExpired(process.args, timeout)
                for key, _ in selector.select(min(remaining, _POLL)):
                    if key.fd in chunks:
                        data = os.read(key.fd, 65536)
                        if not data:
                            selector.unregister(key.fd)
                            continue
                        chunks[key.fd] += data
                        total += len(data)
                        if total > max_output:
                            raise UnreachableError(self.host, "output too large",
                                                   f"the command wrote more than {max_output} bytes")
                    elif pending is not None:
                        try:
                            written = os.write(key.fd, pending[:65536])
                        except BrokenPipeError:
                            written = len(pending)  # it stopped reading: fine, as with a pipe
                        pending = pending[written:] if written < len(pending) else None
                        if pending is None:
                            selector.unregister(key.fd)
                            assert process.stdin is not None
                            process.stdin.close()
                if process.poll() is not None:
                    # Exited, but a background child may hold the pipes: wait a moment, not forever.
                    exited_at = exited_at or time.monotonic()
                    if time.monotonic() - exited_at >= _EXIT_LINGER:
                        break
        return bytes(chunks[process.stdout.fileno()]), bytes(chunks[process.stderr.fileno()])

    def sftp(self) -> paramiko.SFTPClient:
        raise UsageError(f"host {self.host} uses a local connection: there is no SFTP; use put()")

    def put(self, local: str, remote: str, *, timeout: float | None = None) -> None:
        """Copies the file, keeping its permission bits; a relative or `~/` path is under home."""
        target = os.path.join(os.path.expanduser("~"), os.path.expanduser(remote))
        try:
            shutil.copyfile(local, target)
            shutil.copymode(local, target)
        except OSError as exc:
            raise HostError(self.host, "upload failed", f"{remote}: {exc.strerror or exc}") from None

    def close(self) -> None:
        pass

    def abort(self) -> None:
        self._aborted = True
        with self._lock:
            running = list(self._running)
        for process in running:
            _killpg(process)


def _killpg(process: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except OSError:
        pass
