"""OpenSSH host certificates, checked as ssh(1) checks them against `@cert-authority` lines.

    parse_certificate(blob)  -> Certificate      the wire format of PROTOCOL.certkeys, pure
    certificate_problem(cert, name, cas, now)    -> None, or why OpenSSH would refuse it:
                                                   CA not trusted, not a host certificate, name not
                                                   a principal, not yet valid, expired, critical
                                                   options, bad CA signature

paramiko (5.1) negotiates `*-cert-v01@openssh.com` host keys and checks that the server holds
the certified key, but validates nothing of the certificate itself (paramiko#771, #2277): this
module does what OpenSSH's `check_host_cert()` does. The signature check uses paramiko's key
classes, so only a CA key type paramiko knows can sign (ed25519, ecdsa, rsa: what ssh-keygen makes).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from imageserving_fleet.errors import ImageServingError

from .keyblob import fingerprint, glob_regex, key_type


class Authority(Protocol):
    """A @cert-authority line (known_hosts.KnownKey): the CA's key and where the line is."""

    @property
    def blob(self) -> bytes: ...
    @property
    def where(self) -> str: ...

CERT_SUFFIX = "-cert-v01@openssh.com"
USER_CERT, HOST_CERT = 1, 2
FOREVER = 2**64 - 1
# How many public-key fields follow the nonce, per plain key type (PROTOCOL.certkeys).
_KEY_FIELDS = {"ssh-ed25519": 1, "ssh-rsa": 2, "ssh-dss": 4, "ecdsa-sha2-nistp256": 2,
               "ecdsa-sha2-nistp384": 2, "ecdsa-sha2-nistp521": 2}
# Host key algorithms, certificates first, in OpenSSH's default order: preferred for a host a CA covers.
CERT_HOST_KEY_ALGORITHMS = (
    "ssh-ed25519-cert-v01@openssh.com", "ecdsa-sha2-nistp256-cert-v01@openssh.com",
    "ecdsa-sha2-nistp384-cert-v01@openssh.com", "ecdsa-sha2-nistp521-cert-v01@openssh.com",
    "rsa-sha2-512-cert-v01@openssh.com", "rsa-sha2-256-cert-v01@openssh.com",
)


class CertificateFormatError(ImageServingError):
    """A blob announced as a certificate does not parse (the host check says so; never raised past it)."""


@dataclass(frozen=True)
class Certificate:
    """The fields of one OpenSSH certificate that a host check reads."""

    blob: bytes  # the whole certificate, as the server sent it
    plain_key: bytes  # the certified public key as a plain key blob (what @revoked lines hold)
    serial: int
    cert_type: int  # USER_CERT or HOST_CERT
    key_id: str
    principals: tuple[str, ...]
    valid_after: int  # seconds since the epoch
    valid_before: int  # FOREVER: no end
    critical_options: bytes
    ca_key: bytes  # the signing CA's public key blob
    signed: bytes  # what the signature covers: every field up to and including ca_key
    signature: bytes

    @property
    def ca_fingerprint(self) -> str:
        return f"{key_type(self.ca_key)} {fingerprint(self.ca_key)}"

    def validity(self) -> str:
        """`from 2026-01-01T00:00:00Z to 2026-01-02T00:00:00Z`, as `ssh-keygen -L` shows it."""
        start = "always" if self.valid_after == 0 else _when(self.valid_after)
        end = "forever" if self.valid_before >= FOREVER else _when(self.valid_before)
        return f"from {start} to {end}"


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def take(self, size: int) -> bytes:
        if self.pos + size > len(self.data):
            raise CertificateFormatError("truncated certificate")
        chunk = self.data[self.pos:self.pos + size]
        self.pos += size
        return chunk

    def string(self) -> bytes:
        return self.take(struct.unpack(">I", self.take(4))[0])

    def uint32(self) -> int:
        return int(struct.unpack(">I", self.take(4))[0])

    def uint64(self) -> int:
        return int(struct.unpack(">Q", self.take(8))[0])


def _pack(data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + data


def is_certificate(blob: bytes) -> bool:
    return key_type(blob).endswith(CERT_SUFFIX)


def parse_certificate(blob: bytes) -> Certificate:
    """Takes a `*-cert-v01@openssh.com` key blob; returns its fields or raises CertificateFormatError."""
    r = _Reader(blob)
    kind = r.string().decode("ascii", "replace")
    if not kind.endswith(CERT_SUFFIX):
        raise CertificateFormatError(f"{kind} is not a certificate type")
    plain_type = kind[: -len(CERT_SUFFIX)]
    fields = _KEY_FIELDS.get(plain_type)
    if fields is None:
        raise CertificateFormatError(f"unknown certificate key type {kind}")
    r.string()  # nonce
    start = r.pos
    for _ in range(fields):
        r.string()
    plain = _pack(plain_type.encode()) + blob[start:r.pos]
    serial, cert_type = r.uint64(), r.uint32()
    key_id = r.string().decode("utf-8", "replace")
    names = _Reader(r.string())
    principals = []
    while names.pos < len(names.data):
        principals.append(names.string().decode("utf-8", "replace"))
    valid_after, valid_before = r.uint64(), r.uint64()
    critical = r.string()
    r.string()  # extensions: permissions for user certificates, nothing a host check reads
    r.string()  # reserved
    ca_key = r.string()
    signed = blob[:r.pos]
    signature = r.string()
    return Certificate(blob=blob, plain_key=plain, serial=serial, cert_type=cert_type, key_id=key_id,
                       principals=tuple(principals), valid_after=valid_after, valid_before=valid_before,
                       critical_options=critical, ca_key=ca_key, signed=signed, signature=signature)


def _when(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def principal_matches(principals: Sequence[str], name: str) -> bool:
    """OpenSSH's rule for host certificates: no principals = any name; else a principal (which may
    hold * and ? wildcards, OpenSSH 8.8+) must match the name the user connects to."""
    if not principals:
        return True
    return any(glob_regex(p).match(name) for p in principals)


def certificate_problem(cert: Certificate, name: str, authorities: Sequence[Authority], now: float) -> str | None:
    """Takes a host certificate, the name it must be valid for, the @cert-authority lines that cover
    the host and the time; returns None when OpenSSH would accept it, else why not (one sentence)."""
    trusted = [ca for ca in authorities if ca.blob == cert.ca_key]
    if not trusted:
        known = "; ".join(f"{key_type(ca.blob)} {fingerprint(ca.blob)} ({ca.where})" for ca in authorities)
        return (f"its certificate (id {cert.key_id!r}) is signed by CA {cert.ca_fingerprint}, which no "
                f"@cert-authority line for this host trusts" + (f" (trusted: {known})" if known else ""))
    if cert.cert_type != HOST_CERT:
        return f"its certificate (id {cert.key_id!r}) is a user certificate, not a host certificate"
    if not principal_matches(cert.principals, name):
        return (f"its certificate (id {cert.key_id!r}, CA {cert.ca_fingerprint}) is for "
                f"{', '.join(cert.principals)}, not {name}")
    if now < cert.valid_after:
        return (f"its certificate (id {cert.key_id!r}, CA {cert.ca_fingerprint}) is not yet valid: "
                f"valid {cert.validity()}")
    if now >= cert.valid_before:
        return (f"its certificate (id {cert.key_id!r}, CA {cert.ca_fingerprint}) expired at "
                f"{_when(cert.valid_before)} (valid {cert.validity()})")
    if cert.critical_options:
        return f"its certificate (id {cert.key_id!r}) carries critical options, which a host certificate may not"
    if is_certificate(cert.ca_key) or not _signature_ok(cert):
        return (f"its certificate (id {cert.key_id!r}) does not carry a valid signature of CA "
                f"{cert.ca_fingerprint} ({trusted[0].where})")
    return None


def _signature_ok(cert: Certificate) -> bool:
    from .base import load_paramiko

    paramiko = load_paramiko()
    try:
        ca = paramiko.PKey.from_type_string(key_type(cert.ca_key), cert.ca_key)
        return bool(ca.verify_ssh_sig(cert.signed, paramiko.Message(cert.signature)))
    except Exception:  # noqa: BLE001 - a CA key or signature paramiko cannot read is not a valid signature
        return False
