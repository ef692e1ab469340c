"""A real dask cluster on loopback for tests and benchmarks: a `dask scheduler`, named `dask worker`s.

    with DaskCluster(tmp) as cluster:
        cluster.add_worker("east", resources="east=4")   # a process; cluster.workers["east"].address
        cluster.wait_workers(2)
        cluster.kill("east"); cluster.add_worker("east", resources="east=4")  # SIGKILL, then anew

Workers run without a nanny, so SIGKILL kills the worker itself (nothing restarts it) and the
scheduler sees it lost at once. No dashboard; free ports on 127.0.0.1 only. `tls_files()` writes
a CA and one certificate for scheduler, workers and client, for tls:// clusters.
"""

from __future__ import annotations

import datetime
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .fleetlab import ROOT, free_port

DASK = str(Path(sys.executable).with_name("dask"))


@dataclass
class Worker:
    name: str
    address: str
    process: subprocess.Popen[bytes]
    log: Path


class DaskCluster:
    def __init__(self, directory: Path, *, tls: dict[str, str] | None = None, nthreads: int = 2) -> None:
        self.dir, self.tls, self.nthreads = directory, tls, nthreads
        self.protocol = "tls" if tls else "tcp"
        self.port = free_port()
        self.address = f"{self.protocol}://127.0.0.1:{self.port}"
        self.workers: dict[str, Worker] = {}
        self.scheduler: subprocess.Popen[bytes] | None = None
        self.env = {k: v for k, v in os.environ.items() if k != "SSH_AUTH_SOCK"}
        self.env["PYTHONPATH"] = str(ROOT)
        self.env.pop("IMAGESERVING_CLUSTER", None)

    def _tls_args(self) -> list[str]:
        if not self.tls:
            return []
        return ["--tls-ca-file", self.tls["ca"], "--tls-cert", self.tls["cert"], "--tls-key", self.tls["key"]]

    def _spawn(self, argv: list[str], log: Path) -> subprocess.Popen[bytes]:
        with log.open("ab") as out:
            return subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=self.env, cwd=self.dir,
                                    stdin=subprocess.DEVNULL)

    def start(self) -> DaskCluster:
        self.scheduler = self._spawn([DASK, "scheduler", "--host", "127.0.0.1", "--port", str(self.port),
                                      "--protocol", self.protocol, "--no-dashboard", *self._tls_args()],
                                     self.dir / "scheduler.log")
        return self

    def add_worker(self, name: str, resources: str | None = None) -> Worker:
        port = free_port()
        log = self.dir / f"worker-{name}.log"
        argv = [DASK, "worker", self.address, "--nworkers", "1", "--nthreads", str(self.nthreads), "--no-nanny",
                "--no-dashboard", "--host", "127.0.0.1", "--worker-port", str(port), "--name", name,
                *(["--resources", resources] if resources else []), *self._tls_args()]
        worker = Worker(name, f"{self.protocol}://127.0.0.1:{port}", self._spawn(argv, log), log)
        self.workers[name] = worker
        return worker

    def client_env(self) -> dict[str, str]:
        """Environment for a controller process that talks to this cluster."""
        env = dict(self.env)
        if self.tls:
            env.update({"DASK_DISTRIBUTED__COMM__TLS__CA_FILE": self.tls["ca"],
                        "DASK_DISTRIBUTED__COMM__TLS__CLIENT__CERT": self.tls["cert"],
                        "DASK_DISTRIBUTED__COMM__TLS__CLIENT__KEY": self.tls["key"]})
        return env

    def info(self) -> dict[str, Any]:
        """The scheduler's view (workers and what they are running), through a short-lived client."""
        from distributed import Client
        from distributed.security import Security

        security = (Security(tls_ca_file=self.tls["ca"], tls_client_cert=self.tls["cert"],
                             tls_client_key=self.tls["key"], require_encryption=True) if self.tls else None)
        with Client(self.address, timeout=30, security=security, set_as_default=False) as client:
            return {"workers": client.scheduler_info(n_workers=-1)["workers"], "processing": client.processing()}

    def wait_workers(self, names: set[str], deadline: float = 90.0) -> None:
        """Polls the scheduler until exactly these workers (by address) are connected."""
        want = {self.workers[n].address for n in names}
        end = time.monotonic() + deadline
        seen: set[str] = set()
        while time.monotonic() < end:
            for w in self.workers.values():
                if w.process.poll() is not None and w.name in names:
                    raise RuntimeError(f"worker {w.name} exited: {w.log.read_text()[-2000:]}")
            try:
                seen = set(self.info()["workers"])
            except OSError:
                seen = set()
            if seen == want:
                return
            time.sleep(0.2)
        raise RuntimeError(f"workers {sorted(want)} not all connected (saw {sorted(seen)})")

    def ensure_workers(self, resources: dict[str, str | None]) -> None:
        """Starts whichever of these named workers is not running (a test killed it), then waits for all."""
        for name, offered in resources.items():
            if name not in self.workers:
                self.add_worker(name, offered)
        self.wait_workers(set(resources))

    def running_on(self, key_part: str) -> str | None:
        """The name of the worker processing a task whose key contains key_part, if any."""
        by_address = {w.address: w.name for w in self.workers.values()}
        for address, keys in self.info()["processing"].items():
            if any(key_part in str(k) for k in keys):
                return by_address.get(address)
        return None

    def kill(self, name: str) -> None:
        worker = self.workers.pop(name)
        worker.process.send_signal(signal.SIGKILL)
        worker.process.wait(30)

    def stop(self) -> None:
        for w in list(self.workers.values()):
            w.process.terminate()
        for w in list(self.workers.values()):
            try:
                w.process.wait(20)
            except subprocess.TimeoutExpired:
                w.process.kill()
        self.workers.clear()
        if self.scheduler is not None:
            self.scheduler.terminate()
            try:
                self.scheduler.wait(20)
            except subprocess.TimeoutExpired:
                self.scheduler.kill()

    def __enter__(self) -> DaskCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def blocking_agent(directory: Path, agent: Path) -> tuple[Path, Path, Path]:
    """An agent wrapper that, once started, waits until RELEASE (then runs the agent) or ABORT (exit 3).

    Returns (wrapper, started, release); ABORT is release's sibling. It lets a test hold a shard
    provably in flight on one worker while it kills that worker.
    """
    started, release, abort = directory / "STARTED", directory / "RELEASE", directory / "ABORT"
    wrapper = directory / "imageserving-blocking"
    wrapper.write_text(f"#!/bin/sh\ntouch {started}\n"
                       f"while [ ! -e {release} ]; do [ -e {abort} ] && exit 3; sleep 0.05; done\n"
                       f"exec {agent} \"$@\"\n")
    wrapper.chmod(0o755)
    return wrapper, started, release


def tls_files(directory: Path) -> dict[str, str]:
    """A throwaway CA and a certificate for 127.0.0.1 signed by it (PEM files); returns their paths."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "imageserving test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
          .not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                                                        x509.DNSName("localhost")]), critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    paths = {"ca": directory / "ca.pem", "cert": directory / "cert.pem", "key": directory / "key.pem"}
    paths["ca"].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths["cert"].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths["key"].write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
    paths["key"].chmod(0o600)
    return {k: str(v) for k, v in paths.items()}
