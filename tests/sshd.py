"""A real OpenSSH server on loopback for tests and benchmarks, and two ports that misbehave.

    with SshServer() as server:             # sshd on 127.0.0.1:<free port>, keys in a temp dir
        server.port, server.user, server.user_key_path, server.known_hosts_path,
        server.ssh_config_path, server.inventory_vars(), server.ssh_argv("true")
    with silent_listener() as port: ...     # accepts TCP, never says a word (no SSH banner)
    with closed_port() as port: ...         # nothing listens: connecting is refused

A plain module, not a conftest: `from tests.sshd import SshServer` works from the repository root
for pytest fixtures and for bench scripts alike. Stdlib only. Only loopback traffic.
"""

from __future__ import annotations

import getpass
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

SSHD = "/usr/sbin/sshd"
SFTP_SERVER = "/usr/lib/openssh/sftp-server"  # Debian's openssh-sftp-server, which openssh-server pulls in
SSH_KEYGEN = shutil.which("ssh-keygen") or "/usr/bin/ssh-keygen"


def sshd_available() -> bool:
    """True when an OpenSSH server binary is installed (`apt-get install openssh-server`)."""
    return os.access(SSHD, os.X_OK) and os.access(SSH_KEYGEN, os.X_OK)


def keygen(path: str | Path, comment: str = "imageserving-test") -> Path:
    """Writes a new passphrase-less ed25519 key pair at `path` (and `path`.pub); returns `path`."""
    path = Path(path)
    for stale in (path, path.with_name(path.name + ".pub")):
        stale.unlink(missing_ok=True)
    subprocess.run([SSH_KEYGEN, "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class SshServer:
    """An sshd child process that accepts the current user with a fresh key, on a free port.

    Settings follow what works on a 2-core CI box: MaxStartups high enough for hundreds of
    concurrent handshakes, no PAM, no passwords, keys only. The session PATH is the test's own
    PATH (so `python3` over SSH is the interpreter running the tests) unless `path` says otherwise.

    `skip_bashrc`: bash sources ~/.bashrc for every command sshd runs (it sees SSH_CLIENT); on a
    box whose root ~/.bashrc runs `pyenv init` that adds 100-400 ms to every command, which would
    drown what the tests and benchmarks measure. SHLVL=1 in the session makes bash skip it.

    `sftp`: the `Subsystem sftp` program. internal-sftp runs inside sshd; a path such as
    SFTP_SERVER is started through the user's login shell (so a startup file that prints breaks
    it, as on many real hosts); None leaves the line out: no SFTP at all.
    """

    def __init__(self, *, directory: str | Path | None = None, path: str | None = None,
                 extra_config: str = "", max_startups: str = "1000:30:2000", max_sessions: int = 200,
                 skip_bashrc: bool = True, sftp: str | None = "internal-sftp") -> None:
        self._own_dir = directory is None
        self.dir = Path(directory or tempfile.mkdtemp(prefix="imageserving-sshd-"))
        self.user = getpass.getuser()
        self.port = 0
        self.host = "127.0.0.1"
        self.host_key_path = self.dir / "ssh_host_ed25519_key"
        self.user_key_path = self.dir / "id_ed25519"
        self.authorized_keys_path = self.dir / "authorized_keys"
        self.known_hosts_path = self.dir / "known_hosts"
        self.ssh_config_path = self.dir / "ssh_config"
        self.config_path = self.dir / "sshd_config"
        self.log_path = self.dir / "sshd.log"
        self._session_path = os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin") if path is None else path
        self._extra = extra_config
        self._skip_bashrc = skip_bashrc
        self._sftp = sftp
        self._max_startups, self._max_sessions = max_startups, max_sessions
        self.process: subprocess.Popen[bytes] | None = None

    # ---- keys and files

    @property
    def host_pub(self) -> str:
        """The server's public host key line (`ssh-ed25519 AAAA... comment`)."""
        return self.host_key_path.with_name(self.host_key_path.name + ".pub").read_text().strip()

    @property
    def user_pub(self) -> str:
        return self.user_key_path.with_name(self.user_key_path.name + ".pub").read_text().strip()

    @property
    def host_key_name(self) -> str:
        """How known_hosts names this server: `[127.0.0.1]:PORT`."""
        return f"[{self.host}]:{self.port}"

    def known_hosts_line(self, public_key: str | None = None) -> str:
        """A known_hosts line for this server, with its own host key or the one given."""
        kind, blob = (public_key or self.host_pub).split()[:2]
        return f"{self.host_key_name} {kind} {blob}\n"

    def write_known_hosts(self, path: str | Path, public_key: str | None = None) -> Path:
        Path(path).write_text(self.known_hosts_line(public_key))
        return Path(path)

    def write_ssh_config(self, path: str | Path, *, known_hosts: str | Path | None = None,
                         identity: str | Path | None = None, extra: str = "") -> Path:
        """An ssh_config for this server: User, IdentityFile, UserKnownHostsFile, strict checking.

        Port is set too, so `ssh -F CONFIG 127.0.0.1` (or any alias) reaches this sshd.
        """
        text = (
            f"{extra}"
            "Host *\n"
            f"    Port {self.port}\n"
            f"    User {self.user}\n"
            f"    IdentityFile {identity or self.user_key_path}\n"
            "    IdentitiesOnly yes\n"
            f"    UserKnownHostsFile {known_hosts or self.known_hosts_path}\n"
            "    GlobalKnownHostsFile /dev/null\n"
            "    StrictHostKeyChecking yes\n"
            "    BatchMode yes\n"
            "    LogLevel ERROR\n"
        )
        Path(path).write_text(text)
        return Path(path)

    def authorize(self, public_key: str) -> None:
        """Lets one more key log in (sshd reads authorized_keys at every login)."""
        with open(self.authorized_keys_path, "a") as handle:
            handle.write(public_key.strip() + "\n")

    def inventory_vars(self) -> dict[str, object]:
        """Ansible host variables that reach this server with the user key."""
        return {"ansible_host": self.host, "ansible_port": self.port, "ansible_user": self.user,
                "ansible_ssh_private_key_file": str(self.user_key_path)}

    def ssh_argv(self, command: str, host: str | None = None) -> list[str]:
        """The OpenSSH client command line that runs `command` here (for benchmarks)."""
        return ["/usr/bin/ssh", "-F", str(self.ssh_config_path), host or self.host, command]

    # ---- lifecycle

    def start(self) -> SshServer:
        if not sshd_available():
            raise RuntimeError(f"{SSHD} is not installed (apt-get install -y openssh-server)")
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # sshd's privilege-separation directory
        self.dir.mkdir(parents=True, exist_ok=True)
        keygen(self.host_key_path, "imageserving-test-host")
        keygen(self.user_key_path, "imageserving-test-user")
        self.authorized_keys_path.write_text(self.user_pub + "\n")
        for attempt in range(5):
            self.port = free_port()
            self._write_sshd_config()
            # -r: no re-exec of sshd for each connection, about 10 ms less CPU per connection (the suite
            # makes thousands); an OpenSSH that no longer takes it exits at once and the next attempt
            # goes without it. A test that changes sshd's keys or config restarts its server anyway.
            reexec = [] if attempt else ["-r"]
            self.process = subprocess.Popen(
                [SSHD, "-D", "-e", *reexec, "-f", str(self.config_path), "-E", str(self.log_path)],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            if self._wait_ready(timeout=10.0):
                break
            self._terminate()
            if attempt == 4:
                raise RuntimeError(f"sshd did not start: {self.log()}")
        self.write_known_hosts(self.known_hosts_path)
        self.write_ssh_config(self.ssh_config_path)
        return self

    def _write_sshd_config(self) -> None:
        self.config_path.write_text(
            f"ListenAddress {self.host}\n"
            f"Port {self.port}\n"
            f"HostKey {self.host_key_path}\n"
            f"AuthorizedKeysFile {self.authorized_keys_path}\n"
            f"PidFile {self.dir / 'sshd.pid'}\n"
            "PermitRootLogin prohibit-password\n"
            "PubkeyAuthentication yes\n"
            "PasswordAuthentication no\n"
            "KbdInteractiveAuthentication no\n"
            "UsePAM no\n"
            # The default 10:30:100 drops concurrent handshakes of a fleet run.
            f"MaxStartups {self._max_startups}\n"
            f"MaxSessions {self._max_sessions}\n"
            "StrictModes no\n"
            "LogLevel ERROR\n"
            "UseDNS no\n"
            "PrintMotd no\n"
            "AllowTcpForwarding yes\n"
            f"SetEnv PATH={self._session_path}{' SHLVL=1' if self._skip_bashrc else ''}\n"
            + (f"Subsystem sftp {self._sftp}\n" if self._sftp else "")
            + f"{self._extra}"
        )

    def _wait_ready(self, timeout: float) -> bool:
        """True once the port accepts and sends an SSH banner; False if sshd died or never did."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                return False
            try:
                with socket.create_connection((self.host, self.port), timeout=1.0) as sock:
                    if sock.recv(4) == b"SSH-":
                        return True
            except OSError:
                pass
            time.sleep(0.02)
        return False

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def _terminate(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def stop(self) -> None:
        """Stops sshd (sessions in progress die with their connections) and removes its files."""
        self._terminate()
        if self._own_dir:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> SshServer:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc: object) -> None:
        self.stop()


S = TypeVar("S", bound=SshServer)


@contextmanager
def running(servers: dict[str, S]) -> Iterator[dict[str, S]]:
    """Starts every server of a module's set and stops them all on the way out, whatever failed."""
    try:
        for server in servers.values():
            server.start()
        yield servers
    finally:
        for server in servers.values():
            server.stop()


@contextmanager
def silent_listener() -> Iterator[int]:
    """A loopback port that completes TCP handshakes (the kernel's backlog) and never sends a byte."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(1024)
        yield int(sock.getsockname()[1])


@contextmanager
def closed_port() -> Iterator[int]:
    """A loopback port where connecting is refused; it stays reserved (bound, not listening)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))  # bound but not listening: Linux answers a SYN with RST
        yield int(sock.getsockname()[1])


def env_without_agent(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment minus SSH_AUTH_SOCK, so a developer's agent keys cannot mask a test's keys."""
    result = dict(os.environ if env is None else env)
    result.pop("SSH_AUTH_SOCK", None)
    return result
