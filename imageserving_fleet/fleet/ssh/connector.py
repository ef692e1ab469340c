"""Opens sessions to hosts within a deadline: socket, SSH handshake, host key, authentication.

    Connector(options)                 one per run: ssh_config, known_hosts and keys read once
      .settings(destination)           -> SshSettings (settings.resolve, with this run's files)
      .connect(destination, deadline) ─┬─> SshSession     paramiko Transport, one per host
                                       └─> LocalSession   /bin/sh -c on the controller itself
      .close()                         from any thread: connects in progress and sessions end

Why paramiko's Transport and not SSHClient or Fabric: their timeouts cover only the TCP connect
(fabric#2330, paramiko#664), and SSHClient re-reads keys and known_hosts for every host. Here the
TCP socket is ours, the watchdog (deadline.py) closes whatever is still blocked when a deadline
passes, and everything a run can share (ssh_config, known_hosts, parsed keys, DNS answers, jump
hosts) is read once.
"""

from __future__ import annotations

import errno
import getpass
import os
import random
import socket
import sys
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from imageserving_fleet.errors import Reason, SshConfigError, UnreachableError, UsageError

from .auth import Keys, authenticate
from .base import Session, load_paramiko
from .certificates import CERT_HOST_KEY_ALGORITHMS
from .config import SshConfigFiles
from .deadline import WATCHDOG, hard_close, remaining
from .known_hosts import HostKeys, KnownKey, key_type
from .local import LocalSession
from .session import SshSession
from .settings import ClientOptions, Destination, HasDestination, SshSettings, destination_of, resolve, resolve_hop
from .sockets import ChannelSocket, ProxySocket, Resolver, TcpSocket

# Fastest first, as measured on the 2-core box against OpenSSH 9.2 (20 x connect+`true`, median):
# ecdh-nistp256 23.9 ms, curve25519 26.2 ms, dh-group14 50.9 ms; AES-GCM moves 20 MiB in 0.19 s
# where AES-CTR+HMAC takes 0.26 s. The post-quantum hybrid stays first wherever a server offers
# it: a few ms are not worth recorded traffic someone decrypts later. The rest keep paramiko's order.
_FAST_KEX = ("mlkem768x25519-sha256", "ecdh-sha2-nistp256", "curve25519-sha256@libssh.org")
_FAST_CIPHERS = ("aes128-gcm@openssh.com", "aes256-gcm@openssh.com", "aes128-ctr")
_FAST_MACS = ("hmac-sha2-256-etm@openssh.com", "hmac-sha2-256")


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
            hard_close(thing)
        self.done.set()


class _EarlyClose(Exception):
    """The server closed the connection before its banner (sshd's MaxStartups throttling)."""


class Connector:
    """Opens sessions to hosts; one per run, shared by every worker thread.

    Reads the ssh_config once, each known_hosts file once, parses each private key once, and
    resolves each host name once, however many hosts (or inventory aliases of one host) there are.
    Jump hosts (ProxyJump) are connected once and shared: each target gets its own channel.
    """

    def __init__(self, options: ClientOptions, *, warn: Callable[[str], None] | None = None) -> None:
        self.options = options
        self._lock = threading.RLock()
        self._closed = False
        if options.private_key and not os.path.isfile(os.path.expanduser(options.private_key)):
            raise UsageError(f"--private-key {options.private_key}: no such file")
        self._warn = warn or warn_on_stderr
        self._config = SshConfigFiles(options.ssh_config)
        self._host_keys = HostKeys(options.host_key_policy, self._warn,
                                   fixed=options.host_key_policy_source.startswith("command line"))
        self._keys = Keys()
        self._resolver = Resolver()
        self._jumps: dict[tuple[Any, ...], SshSession] = {}
        self._jump_locks: dict[tuple[Any, ...], threading.Lock] = {}
        self._attempt_objs: dict[int, _Attempt] = {}
        self._sessions: weakref.WeakSet[Any] = weakref.WeakSet()
        self._local_user = getpass.getuser()

    # ---- public

    def connect(self, where: Destination | HasDestination, deadline: float) -> Session:
        """Opens a session to the destination, or raises UnreachableError by `deadline` (monotonic).

        `where` is a Destination, or a Target (anything with `.destination`). Raises UsageError
        when the ssh_config or the destination's ssh options cannot be used.
        """
        dest = destination_of(where)
        if self._closed:
            raise UnreachableError(dest.name, Reason.CONNECTION_LOST, "the run was aborted")
        session: Session
        if dest.local:
            session = LocalSession(dest.name)
        else:
            session = self._connect_ssh(self.settings(dest), deadline)
        with self._lock:
            self._sessions.add(session)
        return session

    def settings(self, where: Destination | HasDestination) -> SshSettings:
        """The SSH settings the destination will use: inventory and CLI first, then ssh_config.

        Worked out once per destination while the ssh_config files read the same (refresh()):
        a holder's every request keys each host's kept connection by them."""
        dest = destination_of(where)
        config = self._config
        cached = config.settings.get(dest)
        if cached is None:
            cached = resolve(dest, config.lookup, connect_timeout=self.options.connect_timeout,
                             local_user=self._local_user)
            config.settings[dest] = cached
        return cached

    def ssh_config_options(self, where: Destination | HasDestination) -> dict[str, Any]:
        """What ssh_config says for this destination (keys lower-cased): for `hosts`' sources."""
        dest = destination_of(where)
        args = dest.option_map()
        return self._config.lookup(args["-F"][0] if "-F" in args else None, dest.hostname)

    def check(self, destinations: Sequence[Destination | HasDestination]) -> None:
        """Resolves every host's settings and jump hosts before any is contacted: a bad ssh_config
        Port or ProxyJump is bad configuration (SshConfigError, exit 1), not one host's failure."""
        for where in destinations:
            dest = destination_of(where)
            if dest.local:
                continue
            s = self.settings(dest)
            for hop in (s.proxy_jump or "").split(",") if s.proxy_jump else ():
                self.hop_settings(s, hop)

    def hop_settings(self, behind: SshSettings, hop: str) -> SshSettings:
        """The settings of one ProxyJump hop of `behind`, by the same rules as any host's."""
        return resolve_hop(behind, hop, self._config.lookup, connect_timeout=self.options.connect_timeout,
                           local_user=self._local_user, private_key=self.options.private_key)

    def refresh(self) -> None:
        """Reads ssh_config, known_hosts, keys and host names afresh at their next use.

        For a long-lived user of one Connector across commands (the connection holder,
        persist/holder.py): each command sees the files as they are now, exactly as a new
        Connector would. Sessions and jump hosts already open are kept.
        """
        same = self._config.unchanged()  # the same text: keep its parse and its lookups
        with self._lock:
            if not same:
                self._config = SshConfigFiles(self.options.ssh_config)
            self._host_keys = HostKeys(self.options.host_key_policy, self._warn)
            self._keys = Keys()
            # The old resolver is not closed: a connect in progress may still be waiting on it.
            self._resolver = Resolver()

    def close(self) -> None:
        """Ends the run: aborts connections in progress and every session and jump host it opened."""
        with self._lock:
            self._closed = True
            attempts = list(self._attempt_objs.values())
            sessions = list(self._sessions) + list(self._jumps.values())
            self._jumps.clear()
        for attempt in attempts:
            attempt.close()
        for session in sessions:
            session.abort()
        self._resolver.close()

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
                    raise UnreachableError(settings.name, Reason.CONNECTION_LOST,
                                           f"{settings.hostname}:{settings.port} closed the connection "
                                           f"before the SSH banner (sshd MaxStartups?)") from None
                time.sleep(pause)
        raise AssertionError("unreachable")

    def _open(self, s: SshSettings, deadline: float, via: SshSession | None = None) -> SshSession:
        """One attempt: socket, SSH handshake, host key check, authentication, all by `deadline`."""
        paramiko = load_paramiko()
        attempt = _Attempt()
        with self._lock:
            if self._closed:
                raise UnreachableError(s.name, Reason.CONNECTION_LOST, "the run was aborted")
            self._attempt_objs[id(attempt)] = attempt
        alarm = WATCHDOG.at(deadline, attempt.close)
        budget = max(deadline - time.monotonic(), 0.0)
        sock: Any
        try:
            known = self._host_keys.known(s)
            if via is not None:
                attempt.phase = "opening a channel through the jump host"
                sock = ChannelSocket(via.transport.open_channel(
                    "direct-tcpip", (s.hostname, s.port), ("127.0.0.1", 0), timeout=remaining(deadline)))
            elif s.proxy_jump:
                sock = self._through_jump(s, deadline)
            elif s.proxy_command:
                attempt.phase = "starting the ProxyCommand"
                sock = ProxySocket.spawn(s.proxy_command)
            else:
                sock = self._tcp(s, deadline, attempt)
            attempt.sock = sock
            attempt.things.append(sock)
            transport = paramiko.Transport(sock)
            attempt.things.append(transport)
            self._tune(transport, known)
            transport.banner_timeout = min(s.connect_timeout, remaining(deadline))
            transport.handshake_timeout = transport.auth_timeout = remaining(deadline)
            attempt.phase = "waiting for the SSH banner and key exchange"
            transport.start_client(event=attempt.done)
            if not attempt.done.wait(remaining(deadline)):
                raise TimeoutError()
            if not transport.is_active():
                raise transport.get_exception() or paramiko.SSHException("negotiation failed")
            attempt.phase = "checking the host key"
            self._host_keys.check(s, transport.get_remote_server_key(), known)
            attempt.phase = "authenticating"
            authenticate(transport, s, deadline, self._keys)
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
        paramiko = load_paramiko()
        if isinstance(exc, UnreachableError) and (exc.reason in (Reason.DNS, Reason.TIMEOUT) or not expired):
            return exc
        if expired or isinstance(exc, TimeoutError):
            return UnreachableError(s.name, Reason.TIMEOUT, f"{s.hostname}:{s.port}: no SSH session within "
                                    f"{budget:.1f}s ({attempt.phase})")
        if self._closed:
            return UnreachableError(s.name, Reason.CONNECTION_LOST, "the run was aborted")
        if isinstance(exc, UsageError | SshConfigError | _EarlyClose):
            return exc
        early_eof = (isinstance(exc, paramiko.SSHException) and "protocol banner" in str(exc)
                     and isinstance(exc.__context__, EOFError | ConnectionResetError))
        if isinstance(attempt.sock, ProxySocket) and (early_eof or isinstance(exc, EOFError | OSError)):
            return UnreachableError(s.name, Reason.CONNECTION_LOST, f"ProxyCommand {s.proxy_command!r} "
                                    f"ended: {attempt.sock.error_text() or 'no output'}")
        if early_eof:
            return _EarlyClose()
        return self._classify(exc, s, attempt.phase)

    def _tcp(self, s: SshSettings, deadline: float, attempt: _Attempt) -> socket.socket:
        """A connected TCP socket to the host, made by us so its timeout is the deadline's."""
        last: OSError | None = None
        for family, kind, proto, _, address in self._resolver.addresses(s.name, s.hostname, s.port, deadline):
            sock = TcpSocket(family, kind, proto)
            attempt.things.append(sock)
            sock.settimeout(min(s.connect_timeout, remaining(deadline)))
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
            raise UnreachableError(s.name, Reason.TIMEOUT, f"{s.hostname}:{s.port}: no answer to the TCP connect "
                                   f"(connect timeout {s.connect_timeout:g}s)")
        raise self._classify(last or OSError("no address"), s, "connecting")

    def _through_jump(self, s: SshSettings, deadline: float) -> Any:
        """A channel to the target through its ProxyJump chain, each hop connected once per run."""
        hops = [self.hop_settings(s, hop) for hop in (s.proxy_jump or "").split(",")]
        via: SshSession | None = None
        chain: tuple[Any, ...] = ()
        for hop in hops:
            chain += ((hop.user, hop.hostname, hop.port),)
            via = self._jump(s, hop, chain, via, deadline)
        assert via is not None
        try:
            return ChannelSocket(via.transport.open_channel(
                "direct-tcpip", (s.hostname, s.port), ("127.0.0.1", 0), timeout=remaining(deadline)))
        except Exception as exc:
            paramiko = load_paramiko()
            if isinstance(exc, paramiko.ChannelException) and exc.code == 2:
                # sshd says only "connect failed": refused, unknown name or no route, seen from there.
                raise UnreachableError(s.name, Reason.REFUSED, f"jump host {hops[-1].hostname} could not connect "
                                       f"to {s.hostname}:{s.port}") from None
            raise

    def _jump(self, s: SshSettings, hop: SshSettings, chain: tuple[Any, ...], via: SshSession | None,
              deadline: float) -> SshSession:
        """The shared session to the last hop of `chain` (reached through `via`), opened once."""
        with self._lock:
            lock = self._jump_locks.setdefault(chain, threading.Lock())
        if not lock.acquire(timeout=remaining(deadline)):
            raise TimeoutError()
        try:
            session = self._jumps.get(chain)
            if session is not None and session.transport.is_active():
                return session
            try:
                session = self._open(hop, deadline, via=via)
            except UnreachableError as exc:
                raise UnreachableError(s.name, exc.reason, f"jump host {hop.hostname}: {exc.detail}") from None
            with self._lock:
                if self._closed:
                    session.abort()
                    raise UnreachableError(s.name, Reason.CONNECTION_LOST, "the run was aborted")
                self._jumps[chain] = session
            return session
        finally:
            lock.release()

    def _tune(self, transport: Any, known: list[KnownKey]) -> None:
        """Fast algorithms first; and the host key types known_hosts holds, as OpenSSH orders them."""
        options = transport.get_security_options()
        options.kex = _prefer(_FAST_KEX, options.kex)
        options.ciphers = _prefer(_FAST_CIPHERS, options.ciphers)
        options.digests = _prefer(_FAST_MACS, options.digests)
        # A host a @cert-authority line covers: certificates first, as OpenSSH orders them (paramiko
        # lists them after every plain type, so the plain key would be negotiated and be "unknown").
        certs = CERT_HOST_KEY_ALGORITHMS if any(k.authority for k in known) else ()
        wanted: list[str] = []
        for entry in known:
            if entry.authority or entry.revoked:
                continue
            kind = key_type(entry.blob)
            wanted += ["rsa-sha2-512", "rsa-sha2-256"] if kind == "ssh-rsa" else [kind]
        if wanted or certs:
            plain = _prefer(tuple(wanted), options.key_types)
            options.key_types = certs + tuple(k for k in plain if k not in certs)

    def _classify(self, exc: BaseException, s: SshSettings, phase: str) -> UnreachableError:
        """Turns what socket or paramiko raised into an UnreachableError with a short reason."""
        paramiko = load_paramiko()
        where = f"{s.hostname}:{s.port}"
        cause = exc.__context__
        if isinstance(exc, socket.gaierror):
            return UnreachableError(s.name, Reason.DNS, f"cannot resolve {s.hostname}: {exc.strerror}")
        if isinstance(exc, ConnectionRefusedError):
            return UnreachableError(s.name, Reason.REFUSED, f"{where}: connection refused")
        if isinstance(exc, OSError) and exc.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH,
                                                      errno.EHOSTDOWN, errno.ENETDOWN):
            return UnreachableError(s.name, Reason.NO_ROUTE, f"{where}: {exc.strerror}")
        if isinstance(exc, paramiko.ProxyCommandFailure):
            return UnreachableError(s.name, Reason.CONNECTION_LOST, f"ProxyCommand failed: {exc}")
        if isinstance(exc, paramiko.SSHException) and "protocol banner" in str(exc):
            if isinstance(cause, TimeoutError):
                return UnreachableError(s.name, Reason.TIMEOUT, f"{where}: no SSH banner within "
                                        f"{s.connect_timeout:g}s")
            return UnreachableError(s.name, Reason.CONNECTION_LOST, f"{where}: {exc}")
        if isinstance(exc, paramiko.AuthenticationException):
            return UnreachableError(s.name, Reason.AUTH, f"{s.user}@{s.hostname}: {exc}")
        if isinstance(exc, EOFError | ConnectionResetError | BrokenPipeError | ConnectionAbortedError):
            return UnreachableError(s.name, Reason.CONNECTION_LOST, f"{where}: closed while {phase}")
        if isinstance(exc, paramiko.IncompatiblePeer):
            return UnreachableError(s.name, Reason.SSH_ERROR, f"{where}: {exc}")
        if isinstance(exc, paramiko.SSHException):
            if isinstance(cause, EOFError | ConnectionResetError) or "Negotiation failed" in str(exc):
                return UnreachableError(s.name, Reason.CONNECTION_LOST, f"{where}: closed while {phase}")
            return UnreachableError(s.name, Reason.SSH_ERROR, f"{where}: {exc or type(exc).__name__} ({phase})")
        return UnreachableError(s.name, Reason.SSH_ERROR, f"{where}: {type(exc).__name__}: {exc} ({phase})")


def _prefer(first: tuple[str, ...], current: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """`current` with those of `first` it contains moved to the front, in `first`'s order."""
    head = [name for name in first if name in current]
    return tuple(head + [name for name in current if name not in head])



_WARN_LOCK = threading.Lock()


def warn_on_stderr(message: str) -> None:
    with _WARN_LOCK:  # whole lines, even from 50 threads at once
        sys.stderr.write(message + "\n")
        sys.stderr.flush()

