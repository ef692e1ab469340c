"""Host certificates: `@cert-authority` lines, the certificate's CA, principals, validity and
@revoked, as OpenSSH checks them. Certificates are made by `ssh-keygen -s CA -h` at test time;
the table tests check parsed certificates, the last tests connect to real sshds serving a
`HostCertificate` (one with a good certificate, one with an expired one)."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from imageserving_fleet.fleet.ssh import Connector
from imageserving_fleet.fleet.ssh.certificates import (
    HOST_CERT,
    USER_CERT,
    Certificate,
    certificate_problem,
    parse_certificate,
    principal_matches,
)
from imageserving_fleet.fleet.ssh.known_hosts import KnownHosts, KnownKey
from imageserving_fleet.fleet.target import FleetOptions
from tests.sshd import SSH_KEYGEN, SshServer, keygen, running, sshd_available

from .helpers import soon, target_for, unreachable


def blob_of(pub: Path) -> bytes:
    import base64

    return base64.b64decode(pub.read_text().split()[1])


def sign(ca: Path, key: Path, *, principals: str | None = "127.0.0.1", validity: str | None = None,
         host: bool = True, ident: str = "test-host") -> Path:
    """`ssh-keygen -s CA -I ident [-h] [-n principals] [-V validity] key.pub`; returns key-cert.pub."""
    argv = [SSH_KEYGEN, "-q", "-s", str(ca), "-I", ident]
    argv += ["-h"] if host else []
    argv += ["-n", principals] if principals else []
    argv += ["-V", validity] if validity else []
    subprocess.run([*argv, f"{key}.pub"], check=True, capture_output=True)
    return key.with_name(key.name + "-cert.pub")


@dataclass
class Keys:
    ca: Path
    other_ca: Path
    host: Path
    dir: Path

    def cert(self, **kwargs: object) -> Certificate:
        ca = kwargs.pop("ca", self.ca)
        return parse_certificate(blob_of(sign(ca, self.host, **kwargs)))  # type: ignore[arg-type]

    def authority(self, ca: Path | None = None, where: int = 1) -> KnownKey:
        return KnownKey(blob_of(Path(f"{ca or self.ca}.pub")), "known_hosts", where, authority=True)


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Keys:
    d = tmp_path_factory.mktemp("certs")
    return Keys(keygen(d / "ca"), keygen(d / "other_ca"), keygen(d / "host"), d)


def test_a_certificate_parses_as_ssh_keygen_made_it(keys: Keys) -> None:
    cert = keys.cert(principals="web1.example.com,127.0.0.1", validity="20260101:20270101", ident="web1")
    assert cert.cert_type == HOST_CERT and cert.key_id == "web1"
    assert cert.principals == ("web1.example.com", "127.0.0.1")
    assert cert.plain_key == blob_of(Path(f"{keys.host}.pub"))
    assert cert.ca_key == blob_of(Path(f"{keys.ca}.pub"))
    assert cert.validity().startswith("from 2026-01-01T") and "to 2027-01-01T" in cert.validity()


NOW = time.time()


@pytest.mark.parametrize(("make", "name", "ca", "expect"), [
    ({}, "127.0.0.1", None, None),
    ({"principals": None}, "anything", None, None),                          # no principals: any name
    ({"principals": "*.example.com"}, "web1.example.com", None, None),      # OpenSSH 8.8+ wildcards
    ({"principals": "web1"}, "127.0.0.1", None, "is for web1, not 127.0.0.1"),
    ({"validity": "20200101:20200102"}, "127.0.0.1", None, "expired at 2020-01-0"),
    ({"validity": "+1d:+2d"}, "127.0.0.1", None, "is not yet valid: valid from 20"),
    ({"host": False}, "127.0.0.1", None, "a user certificate"),
    ({}, "127.0.0.1", "other", "which no @cert-authority line for this host trusts"),
])
def test_certificate_problem(keys: Keys, make: dict[str, object], name: str, ca: str | None,
                             expect: str | None) -> None:
    cert = keys.cert(**make)
    authorities = [keys.authority(keys.other_ca if ca else keys.ca)]
    problem = certificate_problem(cert, name, authorities, NOW)
    if expect is None:
        assert problem is None
    else:
        assert problem is not None and expect in problem
        assert "test-host" in problem  # which certificate: its id


def test_a_forged_signature_is_refused(keys: Keys) -> None:
    cert = keys.cert()
    forged = Certificate(**{**cert.__dict__, "signature": cert.signature[:-1] + bytes([cert.signature[-1] ^ 1])})
    problem = certificate_problem(forged, "127.0.0.1", [keys.authority()], NOW)
    assert problem is not None and "valid signature" in problem


def test_the_untrusted_ca_message_names_both_cas(keys: Keys) -> None:
    cert = keys.cert(ca=keys.other_ca)
    problem = certificate_problem(cert, "127.0.0.1", [keys.authority(where=7)], NOW)
    assert problem is not None and cert.ca_fingerprint in problem and "known_hosts:7" in problem


@pytest.mark.parametrize(("principals", "name", "ok"), [
    ((), "x", True), (("a", "b"), "b", True), (("a",), "b", False), (("*.e.com",), "a.e.com", True),
    (("web?",), "web1", True), (("web?",), "web10", False), (("[h]:22",), "h", False),
])
def test_principal_matches(principals: tuple[str, ...], name: str, ok: bool) -> None:
    assert principal_matches(principals, name) is ok


@pytest.mark.parametrize(("line", "name", "found"), [
    ("@cert-authority * {ca}", "[127.0.0.1]:2222", True),
    ("@cert-authority [127.0.0.1]:2222,[localhost]:2222 {ca}", "[localhost]:2222", True),
    ("@cert-authority *.example.com {ca}", "[127.0.0.1]:2222", False),
    ("@cert-authority {hashed} {ca}", "[127.0.0.1]:2222", True),              # hashed names too
    ("@bogus * {ca}", "[127.0.0.1]:2222", False),                           # unknown marker: skipped
])
def test_cert_authority_lines_with_host_patterns(keys: Keys, tmp_path: Path, line: str, name: str,
                                                 found: bool) -> None:
    from .test_known_hosts import hashed

    ca = Path(f"{keys.ca}.pub").read_text().strip()
    path = tmp_path / "known_hosts"
    path.write_text(line.format(ca=ca, hashed=hashed("[127.0.0.1]:2222")) + "\n")
    entries = KnownHosts(str(path)).lookup(name)
    assert bool(entries) is found
    assert all(e.authority and not e.revoked for e in entries)


# ------------------------------------------------------------------ against real sshds


class CertServer(SshServer):
    """An sshd serving a host certificate signed by `ca` when it starts (`ssh-keygen -s -h`)."""

    def __init__(self, ca: Path, validity: str | None = None) -> None:
        super().__init__()
        self.ca, self.validity = ca, validity

    def _write_sshd_config(self) -> None:
        cert = sign(self.ca, self.host_key_path, principals="127.0.0.1,*.certs.test", validity=self.validity)
        self._extra = f"HostCertificate {cert}\n"
        super()._write_sshd_config()


@pytest.fixture(scope="module")
def servers(keys: Keys) -> Iterator[dict[str, CertServer]]:
    if not sshd_available():
        pytest.skip("/usr/sbin/sshd is not installed")
    with running({"good": CertServer(keys.ca), "expired": CertServer(keys.ca, "20200101:20200102")}) as made:
        yield made


def options_for(server: SshServer, tmp_path: Path, known_hosts: str) -> FleetOptions:
    path = tmp_path / "known_hosts"
    path.write_text(known_hosts)
    config = server.write_ssh_config(tmp_path / "ssh_config", known_hosts=path)
    return FleetOptions(ssh_config=str(config), connect_timeout=10.0)


def ca_line(server: SshServer, ca: Path, names: str | None = None) -> str:
    return f"@cert-authority {names or server.host_key_name} {Path(f'{ca}.pub').read_text().strip()}\n"


def test_a_host_a_ca_vouches_for_is_reached_with_its_certificate(servers: dict[str, CertServer], keys: Keys,
                                                                 tmp_path: Path) -> None:
    server = servers["good"]
    options = options_for(server, tmp_path, ca_line(server, keys.ca))
    session = Connector(options).connect(target_for(server, options), soon())
    assert session.run("true", timeout=10).exit_code == 0
    assert session.transport.host_key_type == "ssh-ed25519-cert-v01@openssh.com"  # type: ignore[attr-defined]
    assert (tmp_path / "known_hosts").read_text() == ca_line(server, keys.ca)  # nothing pinned


@pytest.mark.parametrize("policy", ["reject", "accept-new"])
def test_a_certificate_from_another_ca_is_refused_and_no_key_is_pinned(
        servers: dict[str, CertServer], keys: Keys, tmp_path: Path, policy: str) -> None:
    server = servers["good"]
    options = options_for(server, tmp_path, ca_line(server, keys.other_ca))
    options = FleetOptions(ssh_config=options.ssh_config, host_key_policy=policy)
    error, _ = unreachable(lambda: Connector(options).connect(target_for(server, options), soon()))
    assert error.reason == "unknown host key"
    assert "which no @cert-authority line for this host trusts" in error.detail
    assert "test-host" in error.detail
    assert (tmp_path / "known_hosts").read_text() == ca_line(server, keys.other_ca)


def test_an_expired_host_certificate_is_refused_with_its_dates(servers: dict[str, CertServer], keys: Keys,
                                                               tmp_path: Path) -> None:
    server = servers["expired"]
    options = options_for(server, tmp_path, ca_line(server, keys.ca))
    error, _ = unreachable(lambda: Connector(options).connect(target_for(server, options), soon()))
    assert error.reason == "unknown host key"
    assert "expired at 2020-01-02T" in error.detail and "renew" in error.detail


def test_a_name_not_among_the_principals_is_refused(servers: dict[str, CertServer], keys: Keys,
                                                    tmp_path: Path) -> None:
    server = servers["good"]
    names = f"[localhost]:{server.port}"
    options = options_for(server, tmp_path, ca_line(server, keys.ca, names))
    target = target_for(server, options, "h1", ansible_host="localhost")
    error, _ = unreachable(lambda: Connector(options).connect(target, soon()))
    assert "is for 127.0.0.1, *.certs.test, not localhost" in error.detail


def test_a_wildcard_principal_and_a_host_key_alias(servers: dict[str, CertServer], keys: Keys,
                                                   tmp_path: Path) -> None:
    server = servers["good"]
    options = options_for(server, tmp_path, ca_line(server, keys.ca, "web7.certs.test"))
    target = target_for(server, options, "h1", ansible_ssh_common_args="-o HostKeyAlias=web7.certs.test")
    session = Connector(options).connect(target, soon())
    assert session.run("true", timeout=10).exit_code == 0


@pytest.mark.parametrize("revoke", ["host", "ca"])
def test_a_revoked_host_key_or_ca_is_refused(servers: dict[str, CertServer], keys: Keys, tmp_path: Path,
                                             revoke: str) -> None:
    server = servers["good"]
    revoked = server.host_pub if revoke == "host" else Path(f"{keys.ca}.pub").read_text().strip()
    options = options_for(server, tmp_path, f"@revoked * {revoked}\n" + ca_line(server, keys.ca))
    options = FleetOptions(ssh_config=options.ssh_config, host_key_policy="warn")
    error, _ = unreachable(lambda: Connector(options).connect(target_for(server, options), soon()))
    assert error.reason == "changed host key" and "@revoked" in error.detail
    assert ("whose key is" if revoke == "host" else "whose CA") in error.detail


def test_user_certificates_are_not_host_certificates(keys: Keys) -> None:
    assert keys.cert(host=False).cert_type == USER_CERT
