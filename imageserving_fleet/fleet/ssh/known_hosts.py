"""known_hosts as OpenSSH reads it, and the host key check that uses it.

    KnownHosts(path)        one file, indexed once: plain names, hashed (|1|) lines, patterns,
                            @revoked and @cert-authority lines (with their host patterns)
    HostKeys(policy, warn)  every file a run reads, each read once; check() accepts a host
                            certificate a @cert-authority line vouches for (certificates.py), refuses
                            a revoked key or CA always, a changed key always, and an unknown one as
                            --host-key-policy says
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import shlex
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from imageserving_fleet.errors import Reason, UnreachableError

from .certificates import CertificateFormatError, certificate_problem, parse_certificate
from .keyblob import fingerprint, glob_regex, key_type
from .settings import SshSettings

__all__ = ["HostKeys", "KnownHosts", "KnownKey", "fingerprint", "glob_regex", "key_type"]


# --------------------------------------------------------------------------- known_hosts


@dataclass(frozen=True)
class KnownKey:
    blob: bytes
    path: str
    line: int
    revoked: bool = False
    authority: bool = False  # a @cert-authority line: the key of a CA that signs host certificates

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}"


class KnownHosts:
    """One known_hosts file, indexed once: plain names in a dict, hashed and wildcard lines aside."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.exact: dict[str, list[KnownKey]] = {}
        self.hashed: list[tuple[bytes, bytes, KnownKey]] = []
        self.patterns: list[tuple[list[tuple[bool, re.Pattern[str]]], KnownKey]] = []
        self.lines = 0
        # Aliases of one host share its name: look each name up once (hashed lines cost an HMAC each).
        self._found: dict[str, list[KnownKey]] = {}
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
        revoked = authority = False
        if fields[0].startswith("@"):
            if fields[0] not in ("@revoked", "@cert-authority"):
                return  # an unknown marker: OpenSSH skips the line too
            revoked, authority, fields = fields[0] == "@revoked", fields[0] == "@cert-authority", fields[1:]
        if len(fields) < 3:
            return
        try:
            blob = base64.b64decode(fields[2], validate=True)
        except ValueError:
            return
        key = KnownKey(blob, self.path, number, revoked, authority)
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
            self.patterns.append(([(name.startswith("!"), glob_regex(name.lstrip("!")))
                                   for name in entries], key))
            return
        for name in entries:
            self.exact.setdefault(name.lower(), []).append(key)

    def lookup(self, name: str) -> list[KnownKey]:
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
        line = f"{label} {key_type(blob)} {base64.b64encode(blob).decode()}\n".encode()
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
        self.exact.setdefault(name.lower(), []).append(KnownKey(blob, self.path, self.lines))
        self._found.pop(name.lower(), None)



class HostKeys:
    """The known_hosts files of one run, each indexed once and shared by every worker thread."""

    def __init__(self, policy: str, warn: Callable[[str], None], *, fixed: bool = True) -> None:
        self.policy, self._warn = policy, warn
        self.fixed = fixed  # the command line gave the policy: no host's StrictHostKeyChecking changes it
        self._lock = threading.RLock()
        self._known: dict[str, KnownHosts] = {}
        self._warned: set[tuple[str, bytes]] = set()

    def known(self, s: SshSettings) -> list[KnownKey]:
        name = s.host_key_name
        found: list[KnownKey] = []
        with self._lock:
            for path in s.known_hosts_files + s.global_known_hosts_files:
                index = self._known.get(path)
                if index is None:
                    index = self._known[path] = KnownHosts(path)
                found += index.lookup(name)
        return found

    def check(self, s: SshSettings, key: Any, known: list[KnownKey]) -> None:
        """Accepts a host certificate a CA line vouches for, else checks the plain key: a revoked or
        changed one is refused always, an unknown one as --host-key-policy says (OpenSSH's order)."""
        blob = key.asbytes()
        name = s.host_key_name
        offered = f"{key_type(blob)} {fingerprint(blob)}"
        cert_blob = _certificate_blob(key)
        with self._lock:
            # Look again: another alias of the same host may have recorded it meanwhile.
            known = self.known(s) if not known else known
            revoked = [k for k in known if k.revoked]
            authorities = [k for k in known if k.authority]
            keys = [k for k in known if not k.revoked and not k.authority]
            cert_problem = None
            if cert_blob is not None:
                cert_problem = self._check_certificate(s, cert_blob, revoked, authorities)
                if cert_problem is None:
                    return
            same = [k for k in revoked if k.blob == blob]
            if same:
                raise UnreachableError(s.name, Reason.CHANGED_HOST_KEY, f"{name} offers {offered}, which is "
                                       f"marked @revoked in {same[0].where}")
            if any(k.blob == blob for k in keys):
                return  # as OpenSSH: a certificate not accepted falls back to its plain key
            note = f"; its host certificate was not accepted: {cert_problem}" if cert_problem else ""
            if keys:
                old = keys[0]
                raise UnreachableError(s.name, Reason.CHANGED_HOST_KEY, (
                    f"{name} now offers {offered}, but {old.where} holds {key_type(old.blob)} "
                    f"{fingerprint(old.blob)}{note}; if the host was reinstalled, remove the old key with "
                    f"ssh-keygen -R {shlex.quote(name)} -f {shlex.quote(old.path)}"))
            # The command line's policy holds for every host; else a host's own StrictHostKeyChecking.
            policy = self.policy if self.fixed or s.host_key_policy is None else s.host_key_policy
            if policy == "reject" or (policy == "accept-new" and authorities):
                # A host a CA vouches for is never pinned by its plain key: that would bypass the CA.
                if cert_problem:
                    advice = "renew or re-sign its host certificate"
                elif authorities:
                    advice = (f"a @cert-authority line ({authorities[0].where}) covers it, but it offered "
                              f"no certificate: set HostCertificate in its sshd_config")
                else:
                    advice = "check the fingerprint, then run with --host-key-policy accept-new to trust it"
                raise UnreachableError(s.name, Reason.UNKNOWN_HOST_KEY, (
                    f"{name} offers {offered}, which is not in {', '.join(s.known_hosts_files[:1])}{note}; "
                    f"{advice}"))
            if policy == "accept-new":
                path = s.known_hosts_files[0]
                index = self._known.get(path) or self._known.setdefault(path, KnownHosts(path))
                try:
                    index.append(name, blob, hashed=s.hash_known_hosts)
                except OSError as exc:
                    raise UnreachableError(s.name, Reason.UNKNOWN_HOST_KEY,
                                           f"cannot record {offered} in {path}: {exc.strerror}") from None
                return
            if (name, blob) in self._warned:
                return
            self._warned.add((name, blob))
        self._warn(f"warning: {s.name}: unknown host key {offered} for {name} accepted, not recorded "
                   f"(--host-key-policy warn){note}")

    def _check_certificate(self, s: SshSettings, cert_blob: bytes, revoked: list[KnownKey],
                           authorities: list[KnownKey]) -> str | None:
        """None when the host certificate is good; why not otherwise. A revoked key or CA raises."""
        try:
            cert = parse_certificate(cert_blob)
        except CertificateFormatError as exc:
            return str(exc)
        for entry in revoked:
            if entry.blob in (cert.plain_key, cert.ca_key):
                what = "key" if entry.blob == cert.plain_key else f"CA {cert.ca_fingerprint}"
                raise UnreachableError(s.name, Reason.CHANGED_HOST_KEY, (
                    f"{s.host_key_name} offers a host certificate (id {cert.key_id!r}) whose {what} is marked "
                    f"@revoked in {entry.where}"))
        # The principal is the name the user connects to, without the port (OpenSSH's check_host_cert).
        principal = (s.host_key_alias or s.hostname).lower()
        return certificate_problem(cert, principal, authorities, time.time())


def _certificate_blob(key: Any) -> bytes | None:
    """The certificate paramiko negotiated as the host key, or None for a plain key."""
    public = getattr(key, "public_blob", None)
    if public is not None and str(public.key_type).endswith("-cert-v01@openssh.com"):
        return bytes(public.key_blob)
    return None
